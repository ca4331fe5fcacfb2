"""What every section of ``bench.run`` uses: the sizes, the run's shared state (broker
settings, worker fleet, topic prefixes, the processes planned per section) and the live
traffic clients of the latency and memory sections."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from bench import rawhop, workload
from bench.harness import Fleet, Proc
from heart.streams import embedded
from heart.streams.codec import encode
from heart.streams.settings import HeartSettings
from heart.streams.topics import UNITS_STATUS

#: Each section's processes by key (not started); quick mode starts them all at once.
Plan = dict[str, list[Proc]]
#: The dispatch events that answer a team call first.
FIRST_EVENTS = ("dispatch.assigned", "dispatch.queued", "dispatch.fallback")


@dataclass(frozen=True)
class Sizes:
    raw: int
    passthrough: int
    triage: int
    dispatch: int
    navigation: int
    reporting: int
    rates: tuple[int, ...]
    latency_s: float
    latency_tail_s: float
    replay_rows: int | None  # None: the whole export
    sustain_rate: int
    sustain_s: float
    drain_timeout_s: float


#: Each size in a full run and in a ``--quick`` one (every section, tiny: a smoke run for
#: CI whose figures mean nothing).
_FULL_AND_QUICK: dict[str, tuple[Any, Any]] = {
    "raw": (100_000, 2_000),
    "passthrough": (60_000, 1_000),
    "triage": (30_000, 400),
    "dispatch": (4_000, 400),
    "navigation": (20_000, 200),
    "reporting": (20_000, 200),
    "rates": ((10, 100, 500), (10, 100, 500)),
    "latency_s": (30.0, 1.0),
    "latency_tail_s": (20.0, 2.0),
    "replay_rows": (None, 200),
    "sustain_rate": (200, 200),
    "sustain_s": (600.0, 4.0),
    "drain_timeout_s": (900.0, 120.0),
}
FULL = Sizes(**{name: full for name, (full, _) in _FULL_AND_QUICK.items()})
QUICK = Sizes(**{name: quick for name, (_, quick) in _FULL_AND_QUICK.items()})


class Bench:
    """One run: its settings, sizes, work directory and worker fleet, on one broker."""

    def __init__(self, settings: HeartSettings, sizes: Sizes, work: Path, quick: bool) -> None:
        self.settings = settings
        self.sizes = sizes
        self.work = work
        self.quick = quick
        self.fleet = Fleet(settings, work)
        self.run_id = uuid.uuid4().hex[:6]
        self._prestarted: Plan = {}

    def prefix(self, name: str) -> str:
        return f"b{self.run_id}-{name}."

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def s(self, prefix: str) -> HeartSettings:
        return self.settings.model_copy(update={"topic_prefix": prefix})

    def live_env(self) -> dict[str, str]:
        """The stages' environment for live traffic: the 24/7 policy and bench roster."""
        return {"HEART_POLICY": str(workload.POLICY_24X7), "HEART_ROSTER": str(workload.ROSTER)}

    def rawhop(self, name: str, src: str, dst: str, prefix: str) -> Proc:
        proc = self.fleet.module(name, "bench.rawhop", prefix, src, dst, f"rawhop-{name}")
        proc.ready_markers = (rawhop.READY,)
        return proc

    def prestarted(self, key: str) -> bool:
        return key in self._prestarted

    async def prestart(self, planned: Plan) -> None:
        procs = [p for ps in planned.values() for p in ps]
        self.log(f"starting {len(procs)} processes together (quick mode)")
        await self.fleet.start(*procs, timeout=180)
        self._prestarted = dict(planned)

    async def workers(self, key: str, planned: Plan) -> list[Proc]:
        procs = planned[key]
        if key not in self._prestarted:
            await self.fleet.start(*procs)
        return procs

    def release(self, key: str, planned: Plan) -> None:
        for proc in planned.get(key, []):
            proc.sample_rss("end")
            proc.stop()


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


Batch = dict[TopicPartition, list[ConsumerRecord]]


class Traffic:
    """Live traffic: a producer, and a consumer reading ``topics`` from their end whose
    batches a reader task hands to ``on_batch`` until :meth:`stop`."""

    def __init__(
        self,
        s: HeartSettings,
        *topics: str,
        linger_ms: int,
        fetch_max_wait_ms: int,
        backlog_wait: bool = True,
    ) -> None:
        kwargs = s.aiokafka_kwargs()
        self.settings = s
        self.poll_ms = fetch_max_wait_ms
        self.backlog_wait = backlog_wait
        self.producer = AIOKafkaProducer(linger_ms=linger_ms, **kwargs)  # type: ignore[arg-type]
        self.consumer = AIOKafkaConsumer(
            *topics,
            auto_offset_reset="latest",
            fetch_max_wait_ms=fetch_max_wait_ms,
            **kwargs,  # type: ignore[arg-type]
        )
        self._stop = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, on_batch: Callable[[Batch], Awaitable[None]]) -> None:
        """Start both clients, wait for the consumer's assignment and positions, then
        start reading."""
        await self.producer.start()
        await self.consumer.start()
        if self.backlog_wait:
            embedded.tune_fetch_wait(self.consumer, self.settings)
        await wait_assignment(self.consumer)
        self._reader = asyncio.create_task(self._read(on_batch))

    async def _read(self, on_batch: Callable[[Batch], Awaitable[None]]) -> None:
        while not self._stop.is_set():
            await on_batch(await self.consumer.getmany(timeout_ms=self.poll_ms))

    async def clear_if_assigned(self, event: dict[str, Any]) -> None:
        """Answer a team's ``dispatch.assigned`` as its responder app: cleared at once, so
        that the team is free again."""
        if event["event_type"] == "dispatch.assigned" and event.get("team_id"):
            report = workload.clear_report(event["team_id"], event["call_id"])
            await self.producer.send(
                UNITS_STATUS.full_name(self.settings.topic_prefix),
                encode(report),
                key=report.team_id.encode(),
            )

    async def stop(self) -> None:
        self._stop.set()
        if self._reader is not None:
            await self._reader
        await self.consumer.stop()
        await self.producer.stop()


async def wait_assignment(consumer: AIOKafkaConsumer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not consumer.assignment() and time.monotonic() < deadline:
        await consumer.getmany(timeout_ms=50)
    # ``latest`` is resolved lazily; make sure positions are fixed before sending.
    for tp in consumer.assignment():
        await consumer.position(tp)
