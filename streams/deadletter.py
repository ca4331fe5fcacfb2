"""Dead-letter handling: a bad message never stops a stage and is never lost.

The record goes to ``heart.deadletter`` with its key, value and headers unchanged, plus
``heart.dlq.*`` headers naming the source topic, partition, offset, stage and error.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from faust.types import EventT, StreamT, TopicT

from heart.schemas.commands import SourceRef
from heart.schemas.deadletter import DeadLetter
from heart.streams import metrics
from heart.streams.breaker import CircuitBreaker
from heart.streams.clock import Clock
from heart.streams.codec import MAX_MESSAGE_BYTES, DecodeError, decode
from heart.streams.drain import DEFAULT_BATCH, Batch, event_batches
from heart.streams.lag import note_processed
from heart.streams.outbox import Outbox
from heart.streams.settings import HeartSettings
from heart.streams.topics import DEADLETTER, UNITS_STATUS, TopicSpec

DEADLETTER_NAME = DEADLETTER.name
#: Values larger than this are copied truncated (with size and digest headers).
MAX_DEADLETTER_VALUE = 512 * 1024

log = logging.getLogger(__name__)


def _header_list(headers: Any) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    items: Iterable[tuple[str, Any]] = headers.items() if isinstance(headers, dict) else headers
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in items]


class FutureTimestamp(Exception):
    """An event dated further ahead of the stage's time than its topic allows."""


@dataclass(frozen=True)
class FutureLimit:
    """How far ahead of the stage's time an event's ``occurred_at`` may be, per topic."""

    default: timedelta
    #: Catalog topic name -> its own tolerance.
    per_topic: Mapping[str, timedelta] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: HeartSettings) -> FutureLimit:
        if settings.clock == "event":
            # The stage's time is the newest event it has read; under `heart up --speed N`
            # a report can be ahead of it by the consumer lag times N, so no topic gets
            # the tight bound here.
            return cls(timedelta(seconds=settings.future_tolerance_event_clock_s))
        return cls(
            timedelta(seconds=settings.future_tolerance_s),
            {UNITS_STATUS.name: timedelta(seconds=settings.future_tolerance_status_s)},
        )

    def tolerance(self, topic: str) -> timedelta:
        return self.per_topic.get(topic, self.default)

    def refusal(
        self, topic: str, occurred_at: datetime, clock: Clock, wall: datetime | None = None
    ) -> FutureTimestamp | None:
        """Why an event dated ``occurred_at`` is too far ahead, or None when it is not."""
        if not clock.known:
            # An event clock that has seen nothing has no time to compare with, and the
            # wall is no substitute: a simulation runs days ahead of it.
            return None
        # The wall clock is a floor, so that the event clock is never stricter than it: a
        # replay of 2018 data that skips a few days (an export gap) is still in the past.
        reference = max(clock.now(), wall or datetime.now(UTC))
        tolerance = self.tolerance(topic)
        ahead = occurred_at - reference
        if ahead <= tolerance:
            return None
        # Timestamps only: the message must never quote the event's other fields.
        return FutureTimestamp(
            f"occurred_at {occurred_at.isoformat()} is {ahead.total_seconds():.0f} s ahead of "
            f"the stage's time {reference.isoformat()} (tolerance "
            f"{tolerance.total_seconds():.0f} s)"
        )


class DeadLetterSink:
    def __init__(
        self,
        topic: TopicT,
        stage: str,
        clock: Clock,
        breaker: CircuitBreaker | None = None,
        future: FutureLimit | None = None,
    ) -> None:
        self.topic = topic
        self.stage = stage
        self.clock = clock
        self.breaker = breaker or CircuitBreaker(stage)
        #: None accepts any date (sinks built without settings, e.g. in unit tests).
        self.future = future

    async def send(self, event: EventT, error: Exception, reason: str | None = None) -> DeadLetter:
        """Dead-letter the record a stream is processing now."""
        message = event.message
        return await self.send_record(
            key=message.key,
            value=message.value,
            headers=_header_list(message.headers),
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            error=error,
            reason=reason,
        )

    async def send_source(
        self, source: SourceRef, error: Exception, reason: str | None = None
    ) -> DeadLetter:
        """Dead-letter the original record a re-keyed command carried along."""
        return await self.send_record(
            key=source.key.encode() if source.key is not None else None,
            value=source.raw.encode(),
            headers=[],
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            error=error,
            reason=reason,
        )

    async def send_record(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        topic: str,
        partition: int,
        offset: int,
        error: Exception,
        reason: str | None = None,
    ) -> DeadLetter:
        """Dead-letter a record by its coordinates (e.g. one a command carried along)."""
        if isinstance(error, DecodeError):
            reason = reason or error.reason
            error_class, error_message = error.error_class, error.detail
        else:
            reason = reason or "processing_error"
            error_class, error_message = type(error).__name__, str(error)
        letter = DeadLetter(
            occurred_at=self.clock.now(),
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            stage=self.stage,
            reason=reason,
            error_class=error_class,
            error_message=error_message[:2000],
        )
        extra = letter.headers()
        if value is not None and len(value) > MAX_DEADLETTER_VALUE:
            # The producer refuses records over 1 MiB; a record too big to copy is kept
            # as its head plus its size and digest, so it can be matched to the source.
            extra += [
                ("heart.dlq.value.truncated", b"true"),
                ("heart.dlq.value.size", str(len(value)).encode()),
                ("heart.dlq.value.sha256", hashlib.sha256(value).hexdigest().encode()),
            ]
            value = value[:MAX_DEADLETTER_VALUE]
        try:
            await self.topic.send(key=key, value=value, headers=headers + extra)
        except Exception as exc:
            metrics.DEADLETTER_FAILURES.labels(self.stage).inc()
            log.critical(
                "could not dead-letter %s[%d]@%d (%s): %s",
                topic,
                partition,
                offset,
                reason,
                type(exc).__name__,
            )
        metrics.DEADLETTERS.labels(self.stage, reason).inc()
        metrics.EVENTS_PRODUCED.labels(self.stage, DEADLETTER_NAME).inc()
        # The error text names fields, never values, so it is safe to log.
        log.warning(
            "dead-lettered %s[%d]@%d stage=%s reason=%s: %s",
            topic,
            partition,
            offset,
            self.stage,
            reason,
            error_message[:300],
        )
        return letter


def source_ref(event: EventT) -> SourceRef:
    """Where a record came from, and its bytes, for a command that re-keys it."""
    m = event.message
    return SourceRef(
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        key=m.key.decode("utf-8", "replace") if m.key else None,
        raw=m.value.decode("utf-8"),
    )


@contextlib.asynccontextmanager
async def guarded(sink: DeadLetterSink, event: EventT) -> AsyncIterator[None]:
    """Dead-letter the record being processed if its handling raises, and go on.

    A bug or an unforeseen input must not stop the stage or silently skip the record.
    Only the exception's class is logged here: its text may quote the input.
    """
    try:
        yield
    except Exception as exc:
        log.error(
            "stage %s failed on %s[%d]@%d: %s; record dead-lettered",
            sink.stage,
            event.message.topic,
            event.message.partition,
            event.message.offset,
            type(exc).__name__,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        sink.breaker.record("processing_error")
        await sink.send(event, ProcessingError(type(exc).__name__), "processing_error")


class ProcessingError(Exception):
    """Stands in for an unexpected exception on the dead-letter topic: class name only."""


def decoded(
    stream: StreamT,
    spec: TopicSpec,
    sink: DeadLetterSink,
    wanted: Callable[[dict[str, Any]], bool] | None = None,
    outbox: Outbox | None = None,
    limit: int = DEFAULT_BATCH,
) -> AsyncIterator[tuple[Any, EventT]]:
    """Yield ``(model, event)`` for each valid message; dead-letter the rest and go on.

    ``wanted`` is for a stage that reads another stage's topic for a few of its events (the
    dispatch stage reads triage decisions for those that need a team): it sees the parsed
    JSON, and a message it does not want is skipped before validation. Such a reader dead-letters
    only what it wants and cannot use; an unreadable message is the owning stage's to
    dead-letter, so each bad message is reported once.

    The stream is read a batch at a time (:func:`heart.streams.drain.event_batches`); what the
    stage queues in ``outbox`` while it handles a batch is sent before the batch is acked.
    """
    return decode_batches(event_batches(stream, limit, outbox), spec, sink, wanted)


async def decode_batches(
    batches: AsyncIterable[Batch],
    spec: TopicSpec,
    sink: DeadLetterSink,
    wanted: Callable[[dict[str, Any]], bool] | None = None,
) -> AsyncIterator[tuple[Any, EventT]]:
    """:func:`decoded` over batches of events, each made the current event in turn."""
    adapter = spec.adapter
    topic_label = spec.name
    consumed = metrics.EVENTS_CONSUMED.labels(sink.stage, topic_label)
    breaker = sink.breaker
    future = sink.future
    try:
        async for batch in batches:
            for event in batch:
                if breaker.is_open:  # wait() returns at once when closed; skip the coroutine
                    await breaker.wait()
                if not batch.take(event):
                    break  # stopping or rebalancing: the rest go back to the channel
                consumed.inc()
                message = event.message
                note_processed(message.tp, message.offset, message.timestamp)
                try:
                    if wanted is not None and not wanted_message(event.value, wanted):
                        continue
                    model = decode(adapter, event.value)
                except DecodeError as exc:
                    # Only unreadable input counts toward the breaker: a valid report refused
                    # for its content (an unknown team) is the app's mistake, not a format
                    # change.
                    breaker.record(exc.reason)
                    await sink.send(event, exc)
                    continue
                breaker.record(None)
                # Commands on internal topics carry no occurred_at: their payloads were
                # checked when they came in from outside.
                occurred_at = getattr(model, "occurred_at", None)
                if future is not None and occurred_at is not None:
                    refused = future.refusal(topic_label, occurred_at, sink.clock)
                    if refused is not None:
                        # Not counted by the breaker: one device's broken clock is not a
                        # format change, and pausing the stage would stop every other source.
                        await sink.send(event, refused, "future_timestamp")
                        continue
                yield model, event
    finally:
        # Closed with this generator, not whenever it is collected: the reader puts an
        # unfinished batch back for the agent Faust restarts.
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


def wanted_message(raw: bytes | str | None, wanted: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether a reader with a ``wanted`` filter keeps this message; unreadable ones no."""
    if raw is None or len(raw) > MAX_MESSAGE_BYTES:
        return False
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and bool(wanted(data))
