"""``heart up``: the whole system on one machine: broker, topics, every stage, a city."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.admin import create_topics
from streams.broker import EmbeddedBroker, find_free_port, port_in_use
from streams.codec import encode
from streams.settings import HeartSettings
from streams.supervisor import Supervisor
from streams.topics import CAD_CALLS, DISPATCH_EVENTS, FOLLOWUP_TASKS, TRIAGE_DECISIONS
from streams.worker import STAGES

log = logging.getLogger(__name__)


@dataclass
class Status:
    calls: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    dispatch: Counter[str] = field(default_factory=Counter)
    busy: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)
    followups_due: int = 0

    def line(self, sim_now: datetime, zone: ZoneInfo) -> str:
        routes = " ".join(f"{r}={self.routes[r]}" for r in ("ccd", "crt", "cor", "police"))
        local = sim_now.astimezone(zone)
        return (
            f"[{local:%a %Y-%m-%d %H:%M}] calls={self.calls} decisions: {routes} | "
            f"teams busy={len(self.busy)} queue={len(self.queued)} "
            f"fallbacks={self.dispatch['dispatch.fallback']} | followups due={self.followups_due}"
        )


def default_start(zone: ZoneInfo) -> datetime:
    """The most recent weekday 07:30 local, so a newcomer sees the pilots open up."""
    local = datetime.now(zone).replace(hour=7, minute=30, second=0, microsecond=0)
    while local.weekday() >= 5 or local > datetime.now(zone):
        local -= timedelta(days=1)
    return local.astimezone(UTC)


async def _watch(settings: HeartSettings, status: Status, stop: asyncio.Event) -> None:
    import orjson

    topics = [
        s.full_name(settings.topic_prefix)
        for s in (TRIAGE_DECISIONS, DISPATCH_EVENTS, FOLLOWUP_TASKS)
    ]
    consumer = AIOKafkaConsumer(
        *topics, auto_offset_reset="earliest", fetch_max_wait_ms=50, **settings.aiokafka_kwargs()
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    data = orjson.loads(r.value)
                    kind = data.get("event_type", "")
                    if kind == "triage.decision" and data.get("revision") == 1:
                        status.routes[data["route"]] += 1
                    elif kind.startswith("dispatch."):
                        status.dispatch[kind] += 1
                        team, call = data.get("team_id"), data.get("call_id")
                        if kind == "dispatch.assigned" and team:
                            status.busy.add(team)
                            status.queued.discard(call)
                        elif kind == "dispatch.cleared" and team:
                            status.busy.discard(team)
                        elif kind == "dispatch.queued":
                            status.queued.add(call)
                        elif kind == "dispatch.fallback":
                            status.queued.discard(call)
                    elif kind == "followup.due":
                        status.followups_due += 1
    finally:
        await consumer.stop()


async def _simulate(
    settings: HeartSettings,
    start: datetime,
    speed: float,
    status: Status,
    stop: asyncio.Event,
    seed: int,
) -> None:
    from simulator.cad_feed import CadFeed

    feed = CadFeed(start, seed=seed)
    producer = AIOKafkaProducer(linger_ms=5, **settings.aiokafka_kwargs())
    await producer.start()
    topic = CAD_CALLS.full_name(settings.topic_prefix)
    began = time.monotonic()
    try:
        while not stop.is_set():
            sim_now = start + timedelta(seconds=(time.monotonic() - began) * speed)
            for item in feed.events_until(sim_now):
                await producer.send(topic, encode(item.event), key=item.event.call_id.encode())
                if item.event.event_type == "call.received":
                    status.calls += 1
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()


async def run_up(
    settings: HeartSettings,
    *,
    speed: float,
    duration: float | None,
    status_every: float,
    simulate: bool,
    seed: int,
    log_dir: Path | None,
    metrics_port: int,
) -> int:
    zone = ZoneInfo("America/New_York")
    broker: EmbeddedBroker | None = None
    if "HEART_KAFKA_BOOTSTRAP" not in os.environ:
        port = 9092 if not port_in_use("127.0.0.1", 9092) else find_free_port()
        broker = EmbeddedBroker(port=port).start()
        settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        print(f"embedded broker on {broker.bootstrap} (memory only)", flush=True)
    else:
        print(f"using Kafka at {settings.kafka_bootstrap}", flush=True)
    logs = log_dir or Path(tempfile.mkdtemp(prefix="heart-up-"))
    logs.mkdir(parents=True, exist_ok=True)
    supervisor: Supervisor | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        created = await create_topics(settings)
        print(
            f"topics: {sum(v == 'created' for v in created.values())} created, "
            f"{sum(v == 'exists' for v in created.values())} existing",
            flush=True,
        )
        env = {
            **os.environ,
            "HEART_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HEART_TOPIC_PREFIX": settings.topic_prefix,
            # Simulated time runs faster than the wall: stages follow event time.
            "HEART_CLOCK": "event" if simulate and speed != 1 else settings.clock,
        }
        supervisor = Supervisor(sorted(STAGES), env, logs, metrics_port)
        supervisor.start()
        for p in supervisor.processes:
            print(
                f"stage {p.stage:10} metrics http://127.0.0.1:{p.metrics_port}/metrics "
                f"log {p.log_path}",
                flush=True,
            )
        status = Status()
        start = default_start(zone)
        began = time.monotonic()
        tasks = [asyncio.create_task(_watch(settings, status, stop))]
        if simulate:
            print(
                f"simulating Durham from {start.astimezone(zone):%a %Y-%m-%d %H:%M} "
                f"at {speed:g}x (Ctrl-C stops everything)",
                flush=True,
            )
            tasks.append(asyncio.create_task(_simulate(settings, start, speed, status, stop, seed)))
        next_status = time.monotonic() + status_every
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            for message in supervisor.check():
                print(message, flush=True)
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception():
                    raise t.exception()  # type: ignore[misc]
            if time.monotonic() >= next_status:
                sim_now = start + timedelta(seconds=(time.monotonic() - began) * speed)
                print(status.line(sim_now, zone), flush=True)
                next_status += status_every
            if duration is not None and time.monotonic() - began >= duration:
                stop.set()
        print("stopping...", flush=True)
        for t in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, 5)
        return 0
    finally:
        if supervisor is not None:
            supervisor.stop()
        if broker is not None:
            broker.stop()
        print("stopped: no stage or broker process left running", flush=True)
