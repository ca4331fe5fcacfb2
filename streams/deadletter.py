"""Dead-letter handling: a bad message never stops a stage and is never lost.

The record goes to ``heart.deadletter`` with its key, value and headers unchanged, plus
``heart.dlq.*`` headers naming the source topic, partition, offset, stage and error.

What goes there, and what does not:

- input that cannot be decoded or validated, and valid input a stage refuses for its
  content (an unknown team, a far-future date): at full speed, never pausing the stage, so
  that good messages behind a flood of bad ones keep flowing. A high rate is loud instead:
  ``heart_deadletters_total`` by stage and reason, the alert rule in
  ``deploy/prometheus/alerts.yml``, and a CRITICAL line once a minute while it lasts
  (:class:`DeadLetterAlarm`);
- not the stage's own exception on a valid message: :func:`guarded` holds that message and
  pauses its reader (:mod:`heart.streams.breaker`), because dead-lettering a valid call
  would lose it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from contextvars import ContextVar
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
#: The window the dead-letter rate is judged over; the alert rule uses the same ([5m]).
ALARM_WINDOW_S = 300.0
#: While the rate is high, one CRITICAL line per this many seconds, not one per message.
ALARM_LOG_EVERY_S = 60.0
#: The rate is kept in buckets of this many seconds: bounded memory in any flood.
_ALARM_BUCKET_S = 10.0
_DEFAULT_ALARM_PER_MIN: float = HeartSettings.model_fields["deadletter_alarm_per_min"].default
#: Reasons any stage's input can be refused for. Their counters exist at 0 from the start:
#: a series that appears already at 300 after a flood shows Prometheus no increase, and
#: the dead-letter alert would miss the flood that created it.
INPUT_REASONS = (
    "empty_message",
    "too_large",
    "invalid_json",
    "invalid_event",
    "unknown_event_type",
    "naive_timestamp",
    "missing_field",
    "future_timestamp",
    "processing_error",
)

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


class DeadLetterAlarm:
    """A stage's dead letters over the last :data:`ALARM_WINDOW_S`, and the CRITICAL line
    while there are more than ``per_min`` a minute on average: the in-process twin of the
    ``HeartDeadLettersHigh`` alert rule."""

    def __init__(
        self,
        stage: str,
        per_min: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage = stage
        self.per_min = per_min
        #: More than this many dead letters in the window is high.
        self.limit = per_min * ALARM_WINDOW_S / 60
        self._monotonic = monotonic
        self._buckets: deque[tuple[float, Counter[str]]] = deque()
        self._last_line = -float("inf")

    def note(self, reason: str) -> bool:
        """Count one dead letter; whether the rate is high now (logged when it is)."""
        now = self._monotonic()
        start = now - now % _ALARM_BUCKET_S
        if not self._buckets or self._buckets[-1][0] != start:
            self._buckets.append((start, Counter()))
        self._buckets[-1][1][reason] += 1
        while self._buckets and self._buckets[0][0] <= now - ALARM_WINDOW_S:
            self._buckets.popleft()
        reasons: Counter[str] = Counter()
        for _start, counts in self._buckets:
            reasons.update(counts)
        total = sum(reasons.values())
        if total <= self.limit:
            return False
        if now - self._last_line >= ALARM_LOG_EVERY_S:
            self._last_line = now
            log.critical(
                "DEAD LETTERS HIGH: stage %s dead-lettered %d messages in the last %.0f min "
                "(%s), above %g a minute (HEART_DEADLETTER_ALARM_PER_MIN). Bad input is set "
                "aside and the stage keeps routing; per-message lines are left out while this "
                "lasts. Inspect with `heart deadletter summary`; redrive after a fix.",
                self.stage,
                total,
                ALARM_WINDOW_S / 60,
                ", ".join(f"{r}={n}" for r, n in reasons.most_common(5)),
                self.per_min,
            )
        return True


class DeadLetterSink:
    def __init__(
        self,
        topic: TopicT,
        stage: str,
        clock: Clock,
        breaker: CircuitBreaker | None = None,
        future: FutureLimit | None = None,
        alarm: DeadLetterAlarm | None = None,
    ) -> None:
        self.topic = topic
        self.stage = stage
        self.clock = clock
        self.breaker = breaker or CircuitBreaker(stage)
        #: None accepts any date (sinks built without settings, e.g. in unit tests).
        self.future = future
        self.alarm = alarm or DeadLetterAlarm(stage, _DEFAULT_ALARM_PER_MIN)
        for reason in INPUT_REASONS:
            metrics.DEADLETTERS.labels(stage, reason)

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
        if self.alarm.note(reason):
            return letter  # the alarm's line stands for this one
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


class Reader:
    """One stage reader (an agent's stream) while it runs: the event it handed out last,
    so that :func:`guarded` knows which message to hold."""

    __slots__ = ("current", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.current: EventT | None = None


#: The reader of the running agent task (set by :func:`decode_batches`, which runs in it).
_current_reader: ContextVar[Reader | None] = ContextVar("heart_reader", default=None)


@contextlib.asynccontextmanager
async def guarded(sink: DeadLetterSink, event: EventT) -> AsyncIterator[None]:
    """Hold the record being processed if its handling raises: its reader pauses, and
    retries it after the breaker's cool-down, a reset or a restart (:mod:`heart.streams.breaker`).

    A valid record the stage fails on is the stage's fault (a bad deploy), not the sender's:
    dead-lettering it would lose a valid call. Only the exception's class is logged: its
    text may quote the input. Outside a reader (nothing to hold the record in) the record
    is dead-lettered as ``processing_error`` instead.
    """
    try:
        yield
    except Exception as exc:
        message = event.message
        log.error(
            "stage %s failed on %s[%d]@%d: %s",
            sink.stage,
            message.topic,
            message.partition,
            message.offset,
            type(exc).__name__,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        reader = _current_reader.get()
        if reader is not None and reader.current is event:
            sink.breaker.hold(
                reader, message.topic, message.partition, message.offset, type(exc).__name__
            )
            return
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
    """:func:`decoded` over batches of events, each made the current event in turn.

    A message :func:`guarded` holds (the stage failed on it) is given back to the batch
    untaken, so the batch ends there: what went before it is sent and acked, and the held
    message waits, unacknowledged, at the head of the reader's queue. Its retry (or, on
    request, its dead letter) comes when the breaker's wait ends; the wait is before the
    message is taken again, so that a rebalance or a shutdown never waits on it.
    """
    adapter = spec.adapter
    topic_label = spec.name
    consumed = metrics.EVENTS_CONSUMED.labels(sink.stage, topic_label)
    breaker = sink.breaker
    future = sink.future
    reader = Reader(topic_label)
    _current_reader.set(reader)
    try:
        async for batch in batches:
            for event in batch:
                message = event.message
                hold = breaker.held(reader)
                if hold is not None and not hold.is_at(
                    message.topic, message.partition, message.offset
                ):
                    # The held message did not come back first: a rebalance took it away.
                    breaker.release(reader, "gone")
                    hold = None
                verdict = None
                if hold is not None:
                    verdict = await breaker.wait(reader, functools.partial(_moved, batch, event))
                    if verdict is None:
                        break  # a rebalance: the held message goes back with the rest
                if not batch.take(event):
                    break  # stopping or rebalancing: the rest go back to the channel
                if hold is not None:
                    breaker.taken(reader)
                    if verdict == "skip":
                        breaker.release(reader, "skipped")
                        await sink.send(
                            event, ProcessingError(hold.error_class), "processing_error"
                        )
                        continue
                else:
                    consumed.inc()
                    note_processed(message.tp, message.offset, message.timestamp)
                # Inline, not a helper coroutine: this runs for every event of every stage.
                model: Any = None
                try:
                    if wanted is None or wanted_message(event.value, wanted):
                        model = decode(adapter, event.value)
                except DecodeError as exc:
                    # The sender's fault, never the breaker's: set aside at full speed.
                    await sink.send(event, exc)
                # Commands on internal topics carry no occurred_at: their payloads were
                # checked when they came in from outside.
                occurred_at = getattr(model, "occurred_at", None)
                if future is not None and occurred_at is not None:
                    refused = future.refusal(topic_label, occurred_at, sink.clock)
                    if refused is not None:
                        # One device's broken clock: refused, and every other source goes on.
                        await sink.send(event, refused, "future_timestamp")
                        model = None
                if model is None:
                    if hold is not None:  # a held message decoded before; kept for safety
                        breaker.release(reader, "succeeded")
                    continue
                failures = 0 if hold is None else hold.failures
                reader.current = event
                yield model, event
                reader.current = None
                now_held = breaker.held(reader)
                if now_held is not None and now_held.failures > failures:
                    # The stage failed on it: give it back untaken; the batch ends here.
                    batch.taken -= 1
                    break
                if hold is not None:
                    breaker.release(reader, "succeeded")
    finally:
        breaker.forget(reader)
        # Closed with this generator, not whenever it is collected: the reader puts an
        # unfinished batch back for the agent Faust restarts.
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


def _moved(batch: Batch, event: EventT) -> bool:
    """Whether :meth:`Batch.take` would refuse ``event`` now: flow control is off, or a
    rebalance began since it was read (its generation is not the consumer's)."""
    app = batch.stream.app
    return not (
        app.flow_control.is_active() and event.message.generation_id == app.consumer_generation_id
    )


def wanted_message(raw: bytes | str | None, wanted: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether a reader with a ``wanted`` filter keeps this message; unreadable ones no."""
    if raw is None or len(raw) > MAX_MESSAGE_BYTES:
        return False
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and bool(wanted(data))
