"""``heart up``: the whole system on one machine: broker, topics, every stage, a city."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from heart.agents.registry import STAGES
from heart.cli.supervisor import Supervisor
from heart.streams.admin import create_topics
from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.ports import can_listen, find_free_port, port_in_use
from heart.streams.settings import HeartSettings

log = logging.getLogger(__name__)
ZONE = ZoneInfo("America/New_York")


def default_start(zone: ZoneInfo = ZONE) -> datetime:
    """The most recent weekday 07:30 local, so a newcomer sees the pilots open up."""
    now = datetime.now(zone)
    local = now.replace(hour=7, minute=30, second=0, microsecond=0)
    while local.weekday() >= 5 or local > now:
        local -= timedelta(days=1)
    return local.astimezone(UTC)


async def _until_stopped(
    stop: asyncio.Event,
    duration: float | None,
    status_every: float,
    status_line: callable,  # type: ignore[valid-type]
    supervisor: Supervisor | None,
    tasks: list[asyncio.Task[None]],
) -> None:
    began = time.monotonic()
    next_status = began + status_every
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        if supervisor is not None:
            for message in supervisor.check():
                print(message, flush=True)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]
        if time.monotonic() >= next_status:
            print(status_line(), flush=True)
            next_status += status_every
        if duration is not None and time.monotonic() - began >= duration:
            stop.set()


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def run_simulation(
    settings: HeartSettings, *, speed: float, duration: float | None, status_every: float, seed: int
) -> int:
    """``heart simulate``: only the city, against stages running elsewhere (compose)."""
    from heart.simulator.city import City

    stop = asyncio.Event()
    _stop_on_signals(stop)
    city = City(settings, default_start(), speed, seed)
    task = asyncio.create_task(city.run(stop))
    print(
        f"simulating Durham from {city.start.astimezone(ZONE):%a %Y-%m-%d %H:%M} at {speed:g}x",
        flush=True,
    )
    await _until_stopped(
        stop, duration, status_every, lambda: city.status.line(city.sim_now(), ZONE), None, [task]
    )
    await asyncio.wait_for(task, 10)
    return 0


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
    from heart.simulator.city import City

    stages = sorted(STAGES)
    last_first = 65_535 - len(stages) + 1
    if not 1 <= metrics_port <= last_first:
        print(
            f"heart up: --metrics-port {metrics_port}: the first of {len(stages)} stage "
            f"ports must be between 1 and {last_first}",
            file=sys.stderr,
        )
        return 2
    busy = [
        f"{port} ({stage})"
        for port, stage in enumerate(stages, start=metrics_port)
        if not can_listen(settings.metrics_host, port, reuse=True)
    ]
    if busy:
        print(
            f"heart up: --metrics-port {metrics_port}: the stages need ports {metrics_port}-"
            f"{metrics_port + len(stages) - 1}, but {', '.join(busy)} "
            f"{'is' if len(busy) == 1 else 'are'} in use; "
            "choose another first port",
            file=sys.stderr,
        )
        return 2
    broker: EmbeddedBroker | None = None
    stop = asyncio.Event()
    _stop_on_signals(stop)
    if "HEART_KAFKA_BOOTSTRAP" not in os.environ:
        port = 9092 if not port_in_use("127.0.0.1", 9092) else find_free_port()
        broker = EmbeddedBroker(port=port).start()
        # The broker just started is the embedded one, whatever HEART_BROKER says.
        settings = settings.model_copy(
            update={"kafka_bootstrap": broker.bootstrap, "broker": "embedded"}
        )
        print(f"embedded broker on {broker.bootstrap} (memory only)", flush=True)
    else:
        print(f"using Kafka at {settings.kafka_bootstrap}", flush=True)
    logs = log_dir or Path(tempfile.mkdtemp(prefix="heart-up-"))
    logs.mkdir(parents=True, exist_ok=True)
    supervisor: Supervisor | None = None
    try:
        created = await create_topics(settings)
        fresh = sum(v == "created" for v in created.values())
        print(f"topics: {fresh} created, {len(created) - fresh} existing", flush=True)
        env = {
            **os.environ,
            "HEART_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HEART_BROKER": settings.broker,
            "HEART_TOPIC_PREFIX": settings.topic_prefix,
            # Simulated time runs faster than the wall: stages follow event time.
            "HEART_CLOCK": "event" if simulate and speed != 1 else settings.clock,
        }
        supervisor = Supervisor(stages, env, logs, metrics_port)
        supervisor.start()
        for p in supervisor.processes:
            print(
                f"stage {p.stage:10} metrics http://127.0.0.1:{p.metrics_port}/metrics "
                f"log {p.log_path}",
                flush=True,
            )
        tasks: list[asyncio.Task[None]] = []
        city = City(settings, default_start(), speed, seed)
        if simulate:
            print(
                f"simulating Durham from {city.start.astimezone(ZONE):%a %Y-%m-%d %H:%M} "
                f"at {speed:g}x (Ctrl-C stops everything)",
                flush=True,
            )
            tasks.append(asyncio.create_task(city.run(stop)))
        await _until_stopped(
            stop,
            duration,
            status_every,
            lambda: city.status.line(city.sim_now(), ZONE),
            supervisor,
            tasks,
        )
        print("stopping...", flush=True)
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        return 0
    finally:
        if supervisor is not None:
            supervisor.stop()
        if broker is not None:
            broker.stop()
        print("stopped: no stage or broker process left running", flush=True)
