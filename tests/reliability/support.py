"""Shared helpers for the reliability tests: topic watchers, paced feeds, de-duplication.

Everything runs against the real embedded broker. A :class:`TopicWatch` reads a topic from
its beginning in the background, so a test can wait for "N outputs seen", act (SIGKILL a
worker), and at the end judge every record that reached the topic, duplicates included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from pydantic import BaseModel

from heart.schemas.registry import ANY_EVENT
from heart.streams import embedded
from heart.streams.codec import encode
from heart.streams.settings import HeartSettings
from heart.streams.topics import TopicSpec


class TopicWatch:
    """Reads one topic from the beginning, in the background, for as long as it runs."""

    def __init__(self, settings: HeartSettings, spec: TopicSpec) -> None:
        self.settings = settings
        self.spec = spec
        self.records: list[ConsumerRecord] = []
        self.last_change = time.monotonic()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._decoded: list[Any] = []

    async def start(self) -> TopicWatch:
        self._consumer = AIOKafkaConsumer(
            self.spec.full_name(self.settings.topic_prefix),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            **self.settings.aiokafka_kwargs(),  # type: ignore[arg-type]
        )
        await self._consumer.start()
        embedded.tune_fetch_wait(self._consumer, self.settings)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for records in batch.values():
                if records:
                    self.records.extend(records)
                    self.last_change = time.monotonic()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def events(self) -> list[Any]:
        """Every record decoded as a HEART event, in arrival order (duplicates kept)."""
        while len(self._decoded) < len(self.records):
            self._decoded.append(ANY_EVENT.validate_json(self.records[len(self._decoded)].value))
        return list(self._decoded)

    async def wait(
        self, condition: Callable[[TopicWatch], bool], *, timeout: float, what: str
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if condition(self):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(
            f"{self.spec.name}: {what} not seen in {timeout:.0f}s ({len(self.records)} records)"
        )

    async def wait_progress(
        self,
        condition: Callable[[TopicWatch], bool],
        progress: Callable[[TopicWatch], int],
        *,
        stall: float,
        what: str,
        limit: float = 600.0,
        missing: Callable[[TopicWatch], str] = lambda _: "",
    ) -> None:
        """Wait for ``condition`` for as long as ``progress`` keeps growing: fail when it
        has not grown for ``stall`` seconds (or after ``limit`` in all). On a loaded
        machine the work is slower but keeps moving; a stage that stopped does not.

        The error gives the progress over time and what ``missing`` describes."""
        started = last_growth = time.monotonic()
        best = progress(self)
        samples = [(0.0, best)]
        while True:
            self.check_alive()
            if condition(self):
                return
            now = time.monotonic()
            value = progress(self)
            if value > best:
                best, last_growth = value, now
                samples.append((now - started, value))
            if now - last_growth > stall or now - started > limit:
                timeline = ", ".join(f"{v} at {t:.0f}s" for t, v in samples[-12:])
                why = f"no progress for {stall:.0f}s" if now - started <= limit else "too slow"
                raise TimeoutError(
                    f"{self.spec.name}: {what} not seen after {now - started:.0f}s, {why} "
                    f"({len(self.records)} records; progress {timeline}); {missing(self)}"
                )
            await asyncio.sleep(0.1)

    async def quiet(self, seconds: float, timeout: float = 60.0) -> None:
        """Wait until no new record has arrived for ``seconds``: late duplicates show up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last_change < seconds:
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.spec.name} never went quiet")
            await asyncio.sleep(0.1)

    def check_alive(self) -> None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            exc = self._task.exception()
            if exc is not None:
                raise exc


class Feed:
    """One producer shared by a scenario; sends batches paced in wall time."""

    def __init__(self, settings: HeartSettings) -> None:
        self.settings = settings
        self.producer = AIOKafkaProducer(
            linger_ms=2,
            max_request_size=8 * 1024 * 1024,
            **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
        )

    async def start(self) -> Feed:
        await self.producer.start()
        return self

    async def stop(self) -> None:
        await self.producer.stop()

    async def send(
        self,
        spec: TopicSpec,
        key: str | None,
        value: bytes | BaseModel | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        raw = encode(value) if isinstance(value, BaseModel) else value
        await self.producer.send(
            spec.full_name(self.settings.topic_prefix),
            value=raw,
            key=key.encode() if key is not None else None,
            headers=headers,
            partition=partition,
        )

    async def paced(
        self,
        items: Sequence[tuple[TopicSpec, str | None, bytes | BaseModel]],
        *,
        per_second: float,
        chunk: int = 20,
    ) -> None:
        """Send ``items`` in order at about ``per_second``, so work is in flight for a while."""
        started = time.monotonic()
        for i in range(0, len(items), chunk):
            for spec, key, value in items[i : i + chunk]:
                await self.send(spec, key, value)
            await self.producer.flush()
            due = started + (i + chunk) / per_second
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        await self.producer.flush()


def distinct(events: Iterable[Any]) -> list[Any]:
    """Events de-duplicated on ``event_id``, first occurrence kept: what a consumer sees."""
    seen: set[str] = set()
    out = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            out.append(event)
    return out


def ids_by(events: Iterable[Any], field: str) -> dict[str, set[str]]:
    """Distinct event ids grouped by a field (call_id, timer_id, ...)."""
    grouped: dict[str, set[str]] = defaultdict(set)
    for event in events:
        grouped[getattr(event, field)].add(event.event_id)
    return grouped


def of_type(events: Iterable[Any], *kinds: str) -> list[Any]:
    return [e for e in events if e.event_type in kinds]


def stop_worker(worker: Any) -> None:
    """SIGTERM a ``tests.kafka.Worker``, then SIGKILL its process group if it lingers, so
    that a stage that will not stop (a circuit breaker sleeping, say) never outlives the
    test that started it."""
    proc = worker.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
