"""The console's Kafka side: a consumer that folds the topics into the board, a producer for
people's actions, and the connection state the pages show.

The consumer has no consumer group: every console process reads every partition of every
topic from the beginning, so a restarted console, or a second replica, rebuilds the same
board from Kafka and keeps no state of its own. A group would hand each replica only some
partitions, and so only some of the calls, while every page needs all of them. A record
that does not validate is counted and skipped (the stage that owns the topic dead-letters
it); its content is never logged.

Each live update's id is an :class:`UpdateId`: the next offset of every partition the
board has read, and the clock's step. It comes from Kafka and the clock alone, never from
a counter of the process, so two replicas that have read as far give the same id, and a
browser that reconnects to either can be told whether it already shows the current view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import BaseModel

from heart.streams import embedded
from heart.streams.codec import DecodeError, decode, encode
from heart.streams.kafka.explicit_topics import ExplicitTopicsProducer, use_explicit_topics
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CCD_ASSESSMENTS,
    CCD_CONSULTS,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    TRIAGE_CLOSURES,
    TRIAGE_DECISIONS,
    UNITS_AUDIT,
    TopicSpec,
)

log = logging.getLogger("heart.console")

#: What the board is built from.
TOPICS: tuple[TopicSpec, ...] = (
    TRIAGE_DECISIONS,
    TRIAGE_CLOSURES,
    DISPATCH_EVENTS,
    UNITS_AUDIT,
    CCD_ASSESSMENTS,
    CCD_CONSULTS,
    FOLLOWUP_TIMERS,
    FOLLOWUP_TASKS,
    FOLLOWUP_OUTCOMES,
)
#: The Kafka header naming the signed-in person who caused an event: the audit trail.
ACTOR_HEADER = "heart.actor"

FeedState = Literal["connecting", "live", "reconnecting"]
#: Seconds between checks that a broker still answers.
REACH_CHECK_S = 2.0
#: How long a stream waits for its console to read as far as a reconnecting browser's
#: page shows before it sends the view it has.
CATCH_UP_WAIT_S = 5.0
#: How soon a browser's EventSource retries after losing its stream.
STREAM_RETRY_MS = 1000

Offsets = tuple[tuple[int, ...], ...]
_ID_PATTERN = re.compile(r"[0-9a-z]+(-[0-9a-z]+)*")


@dataclass(frozen=True)
class UpdateId:
    """What a live update shows: how far the board has read Kafka, and the clock's step.

    ``offsets`` holds, for each topic of :data:`TOPICS` in that order, the next offset of
    each partition by partition number (a partition with nothing read is 0, and zeros at
    the end are left out, so equal positions always give equal ids). ``step`` is the
    console's clock divided into ``clock_interval_s`` steps: updates between two reads of
    Kafka change only ages and time-based alerts, and keep their id within a step. The
    clock is the wall clock or the newest event's time, never a count kept by one process,
    so replicas agree on it as they agree on the offsets.

    Encoded as ``<step>:<topic>.<topic>...``, each topic its partitions' offsets joined by
    ``-``, every number in base 36: a few hundred characters at most for the nine topics.
    """

    offsets: Offsets
    step: int

    def encode(self) -> str:
        topics = ".".join("-".join(_b36(o) for o in parts) for parts in self.offsets)
        return f"{_b36(self.step)}:{topics}"

    @classmethod
    def parse(cls, text: str | None) -> UpdateId | None:
        """The id a browser sent back (``Last-Event-ID``), or None if it is not one of
        ours: a malformed, foreign or older-format id is answered with the current view."""
        if not text or len(text) > 4096:
            return None
        step_text, sep, topics_text = text.strip().partition(":")
        topics = topics_text.split(".")
        if not sep or not _ID_PATTERN.fullmatch(step_text) or len(topics) != len(TOPICS):
            return None
        if any(t and not _ID_PATTERN.fullmatch(t) for t in topics):
            return None
        offsets = tuple(tuple(int(o, 36) for o in t.split("-")) if t else () for t in topics)
        return cls(tuple(_trimmed(parts) for parts in offsets), int(step_text, 36))

    def covers(self, other: UpdateId) -> bool:
        """Whether this board has read every partition at least as far as ``other``'s: it
        shows all that ``other`` showed, and maybe more."""
        for mine, theirs in zip(self.offsets, other.offsets, strict=True):
            for partition, offset in enumerate(theirs):
                if (mine[partition] if partition < len(mine) else 0) < offset:
                    return False
        return True


def offsets_of(positions: Mapping[str, int], prefix: str) -> Offsets:
    """``topic:partition`` -> next offset, as :attr:`UpdateId.offsets`."""
    per_topic: list[dict[int, int]] = [{} for _ in TOPICS]
    index = {spec.full_name(prefix): i for i, spec in enumerate(TOPICS)}
    for key, offset in positions.items():
        topic, _, partition = key.rpartition(":")
        if topic in index:
            per_topic[index[topic]][int(partition)] = offset
    return tuple(
        _trimmed(tuple(parts.get(p, 0) for p in range(max(parts, default=-1) + 1)))
        for parts in per_topic
    )


def _trimmed(parts: tuple[int, ...]) -> tuple[int, ...]:
    end = len(parts)
    while end and parts[end - 1] == 0:
        end -= 1
    return parts[:end]


def _b36(number: int) -> str:
    if number < 0:
        raise ValueError("an offset or a clock step is never negative")
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
        if not number:
            return digits


class Feed:
    """Reads :data:`TOPICS` into ``apply`` and calls ``changed`` after each batch."""

    def __init__(
        self,
        settings: HeartSettings,
        apply: Callable[[BaseModel], None],
        changed: Callable[[], None],
    ) -> None:
        self.settings = settings
        self._apply = apply
        self._changed = changed
        self.state: FeedState = "connecting"
        #: ``topic:partition`` -> next offset: how far the board has read.
        self.positions: dict[str, int] = {}
        self.invalid_records = 0
        self._specs = {spec.full_name(settings.topic_prefix): spec for spec in TOPICS}

    def offsets(self) -> Offsets:
        """How far the board has read each partition, as :attr:`UpdateId.offsets`."""
        return offsets_of(self.positions, self.settings.topic_prefix)

    def _set_state(self, state: FeedState) -> None:
        if state != self.state:
            self.state = state
            if state == "reconnecting":
                log.warning(
                    "console feed reconnecting: no answer from Kafka at %s",
                    self.settings.kafka_bootstrap,
                )
            else:
                log.info("console feed %s", state)
            self._changed()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                *self._specs,
                group_id=None,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                fetch_max_wait_ms=self.settings.fetch_wait_ms,
                **self.settings.aiokafka_kwargs(),  # type: ignore[arg-type]
            )
            # A missing topic stays missing until the catalog creates it: never auto-created
            # with the broker's default partition count (docs/reliability.md).
            use_explicit_topics(consumer._client)
            try:
                await consumer.start()
            except KafkaError:
                self._set_state("reconnecting")
                # A consumer that failed to start still holds its client: closed here, or
                # asyncio reports an unclosed consumer on every retry.
                with contextlib.suppress(Exception):
                    await consumer.stop()
                await _sleep_or_stop(stop, 1.0)
                continue
            embedded.tune_fetch_wait(consumer, self.settings)
            try:
                await self._consume(consumer, stop)
            except KafkaError as exc:
                log.warning("console feed lost Kafka (%s); reconnecting", type(exc).__name__)
                self._set_state("reconnecting")
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        resumed: set[str] = set()
        #: End offsets when this consumer joined: until the board has read that far it is
        #: still catching up, and the pages do not call it live.
        ends: dict[str, int] | None = None
        checked_at = 0.0
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=2_000)
            assigned = consumer.assignment()
            # A reconnect starts a new consumer: it resumes where the board is, not at 0.
            for tp in assigned:
                key = f"{tp.topic}:{tp.partition}"
                if key not in resumed:
                    resumed.add(key)
                    if key in self.positions:
                        consumer.seek(tp, self.positions[key])
            if ends is None and {tp.topic for tp in assigned} == set(self._specs):
                reported = await consumer.end_offsets(list(assigned))
                true_ends = await embedded.end_offsets(self.settings, assigned, reported)
                ends = {f"{tp.topic}:{tp.partition}": int(end) for tp, end in true_ends.items()}
            applied = 0
            for tp, records in batch.items():
                key = f"{tp.topic}:{tp.partition}"
                spec = self._specs[tp.topic]
                for record in records:
                    if record.offset < self.positions.get(key, 0):
                        continue  # read again after a seek: already on the board
                    try:
                        self._apply(decode(spec.adapter, record.value))
                    except DecodeError:
                        self.invalid_records += 1
                    self.positions[key] = record.offset + 1
                    applied += 1
            now = time.monotonic()
            if now - checked_at >= REACH_CHECK_S or applied:
                checked_at = now
                if not await self._reachable():
                    self._set_state("reconnecting")
                elif ends is not None and all(
                    self.positions.get(key, 0) >= end for key, end in ends.items()
                ):
                    self._set_state("live")
            if applied:
                self._changed()

    async def _reachable(self) -> bool:
        """Whether a broker accepts a connection: aiokafka retries quietly, so a consumer
        whose broker went away only returns empty batches."""
        for server in self.settings.bootstrap_servers:
            host, _, port = server.rpartition(":")
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host or "127.0.0.1", int(port)), 1.0
                )
            except (OSError, TimeoutError, ValueError):
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return False


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class SendError(RuntimeError):
    """An action could not be written to Kafka."""


Sender = Callable[[TopicSpec, str, BaseModel, str], Awaitable[None]]


class KafkaSender:
    """Writes people's actions to their topics, keyed as the catalog says, with the actor's
    opaque id in the :data:`ACTOR_HEADER` header."""

    def __init__(self, settings: HeartSettings) -> None:
        self.settings = settings
        self._producer: ExplicitTopicsProducer | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, spec: TopicSpec, key: str, event: BaseModel, actor_id: str) -> None:
        async with self._lock:
            if self._producer is None:
                producer = ExplicitTopicsProducer(
                    acks="all",
                    request_timeout_ms=5_000,
                    **self.settings.aiokafka_kwargs(),  # type: ignore[arg-type]
                )
                try:
                    await producer.start()
                except KafkaError as exc:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise SendError("Kafka cannot be reached") from exc
                self._producer = producer
        try:
            await self._producer.send_and_wait(
                spec.full_name(self.settings.topic_prefix),
                value=encode(event),
                key=key.encode(),
                headers=[(ACTOR_HEADER, actor_id.encode())],
            )
        except KafkaError as exc:
            raise SendError("Kafka did not accept the event") from exc

    async def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
