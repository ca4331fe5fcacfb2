"""``heart up``: the whole system on one machine: broker, topics, every stage, a city.

While it runs, ``heart up`` leaves its broker's address and its pid in the data directory
(``HEART_DATA_DIR``), so that other ``heart`` commands started without
``HEART_KAFKA_BOOTSTRAP`` find it. Its workers keep their local state in a folder of their
own under the data directory, removed when ``heart up`` stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from heart.agents.registry import STAGES
from heart.cli.progress import LiveStatus
from heart.cli.supervisor import StageStartError, Supervisor
from heart.streams.admin import create_topics
from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.ports import can_listen, find_free_port, port_in_use
from heart.streams.settings import (
    HeartSettings,
    RunningUp,
    remove_up_state,
    write_up_state,
)

if TYPE_CHECKING:
    from heart.simulator.clinicians import Clinicians

log = logging.getLogger(__name__)
ZONE = ZoneInfo("America/New_York")
#: The embedded broker's port when it is free: the one every tool expects.
DEFAULT_BROKER_PORT = 9092


def default_start(zone: ZoneInfo = ZONE) -> datetime:
    """The most recent weekday 07:30 local, so a newcomer sees the pilots open up."""
    now = datetime.now(zone)
    local = now.replace(hour=7, minute=30, second=0, microsecond=0)
    while local.weekday() >= 5 or local > now:
        local -= timedelta(days=1)
    return local.astimezone(UTC)


#: The status: (lines for a terminal, one plain line for anything else).
StatusView = Callable[[], tuple[Sequence[str], str]]


async def _until_stopped(
    stop: asyncio.Event,
    duration: float | None,
    status: LiveStatus,
    view: StatusView,
    supervisor: Supervisor | None,
    tasks: list[asyncio.Task[None]],
) -> None:
    began = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        if supervisor is not None:
            for message in supervisor.check():
                status.note(message)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]
        lines, plain = view()
        status.show(lines, plain)
        if duration is not None and time.monotonic() - began >= duration:
            stop.set()


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}"


def _clinicians(settings: HeartSettings, seed: int) -> Clinicians | str:
    """The city's clinicians, from the shipped clinicians file and the stages' policy (its
    referral resources, consult targets and CCD hours); or what is wrong with either file."""
    from heart.policy import PolicyError, load_policy
    from heart.simulator.city import DECLINE_FOLLOWUP_SHARE
    from heart.simulator.clinician_config import ClinicianConfigError, load_clinician_config
    from heart.simulator.clinicians import Clinicians

    try:
        config = load_clinician_config()
        policy = load_policy(settings.policy)
    except (ClinicianConfigError, PolicyError) as exc:
        return str(exc)
    return Clinicians(config, policy, seed=seed, decline_followup_share=DECLINE_FOLLOWUP_SHARE)


async def run_simulation(
    settings: HeartSettings, *, speed: float, duration: float | None, status_every: float, seed: int
) -> int:
    """``heart simulate``: only the city, against stages running elsewhere (compose)."""
    from heart.simulator.city import City

    clinicians = _clinicians(settings, seed)
    if isinstance(clinicians, str):
        print(f"heart simulate: {clinicians}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    _stop_on_signals(stop)
    city = City(settings, default_start(), speed, seed, clinicians)
    task = asyncio.create_task(city.run(stop))
    print(
        f"simulating Durham from {city.start.astimezone(ZONE):%a %Y-%m-%d %H:%M} at {speed:g}x "
        f"against the broker at {settings.kafka_bootstrap} (Ctrl-C stops)",
        flush=True,
    )
    began = time.monotonic()

    def view() -> tuple[Sequence[str], str]:
        header = f"heart simulate · {speed:g}x · running {_elapsed(time.monotonic() - began)}"
        now = city.sim_now()
        return [header, *city.status.lines(now, ZONE)], city.status.line(now, ZONE)

    with LiveStatus(sys.stdout, status_every) as status:
        await _until_stopped(stop, duration, status, view, None, [task])
    await asyncio.wait_for(task, 10)
    return 0


def _broker_port() -> tuple[int, str | None]:
    """The embedded broker's port, and what to tell the user when it is not 9092."""
    if not port_in_use("127.0.0.1", DEFAULT_BROKER_PORT):
        return DEFAULT_BROKER_PORT, None
    port = find_free_port()
    return port, (
        f"port {DEFAULT_BROKER_PORT} is taken (another broker?), so the embedded broker "
        f"listens on 127.0.0.1:{port} instead.\n"
        f"  heart commands started without HEART_KAFKA_BOOTSTRAP find this heart up by "
        f"themselves; for other tools, or to be explicit:\n"
        f"  export HEART_KAFKA_BOOTSTRAP=127.0.0.1:{port}"
    )


def _check_metrics_ports(settings: HeartSettings, stages: list[str], first: int) -> str | None:
    last_first = 65_535 - len(stages) + 1
    if not 1 <= first <= last_first:
        return (
            f"--metrics-port {first}: the first of {len(stages)} stage "
            f"ports must be between 1 and {last_first}"
        )
    busy = [
        f"{port} ({stage})"
        for port, stage in enumerate(stages, start=first)
        if not can_listen(settings.metrics_host, port, reuse=True)
    ]
    if busy:
        return (
            f"--metrics-port {first}: the stages need ports {first}-"
            f"{first + len(stages) - 1}, but {', '.join(busy)} "
            f"{'is' if len(busy) == 1 else 'are'} in use; choose another first port"
        )
    return None


DEFAULT_CONSOLE_PORT = 8600


def _check_console_port(port: int, metrics_port: int, stages: int) -> str | None:
    if metrics_port <= port < metrics_port + stages:
        return (
            f"--console-port {port}: the stages' metrics use ports {metrics_port}-"
            f"{metrics_port + stages - 1}; choose a port outside them"
        )
    if not can_listen("127.0.0.1", port, reuse=True):
        return f"--console-port {port}: the port is in use; choose another"
    return None


def _default_console_port(metrics_port: int, stages: int) -> tuple[int, str | None]:
    """8600, or a free port with a notice when 8600 is taken (another heart up, say)."""
    if _check_console_port(DEFAULT_CONSOLE_PORT, metrics_port, stages) is None:
        return DEFAULT_CONSOLE_PORT, None
    port = find_free_port()
    return port, f"port {DEFAULT_CONSOLE_PORT} is taken: the console is on {port} instead"


def _start_console(env: dict[str, str], logs: Path, port: int) -> subprocess.Popen[bytes]:
    """The console as its own process, on the stages' broker, topics and clock (alerts
    follow simulated time)."""
    log = open(logs / "console.log", "ab")  # noqa: SIM115 - the child keeps it
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "heart.cli", "console", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def _stop_console(console: subprocess.Popen[bytes]) -> None:
    if console.poll() is None:
        console.send_signal(signal.SIGTERM)
        try:
            console.wait(10)
        except subprocess.TimeoutExpired:
            console.kill()
            console.wait(5)


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
    console: bool = True,
    console_port: int | None = None,
) -> int:
    from heart.simulator.city import City

    stages = sorted(STAGES)
    problem = _check_metrics_ports(settings, stages, metrics_port)
    console_note: str | None = None
    if problem is None and console:
        if console_port is None:
            console_port, console_note = _default_console_port(metrics_port, len(stages))
        else:
            problem = _check_console_port(console_port, metrics_port, len(stages))
    if problem is not None:
        print(f"heart up: {problem}", file=sys.stderr)
        return 2
    clinicians = _clinicians(settings, seed) if simulate else None
    if isinstance(clinicians, str):
        print(f"heart up: {clinicians}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    _stop_on_signals(stop)
    logs = log_dir or Path(tempfile.mkdtemp(prefix="heart-up-"))
    logs.mkdir(parents=True, exist_ok=True)
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    # The workers' local state lives as long as this run.
    state = Path(tempfile.mkdtemp(prefix="up-", dir=data_dir))
    broker: EmbeddedBroker | None = None
    supervisor: Supervisor | None = None
    console_process: subprocess.Popen[bytes] | None = None
    status = LiveStatus(sys.stdout, status_every)
    moved: str | None = None
    try:
        if "HEART_KAFKA_BOOTSTRAP" not in os.environ:
            port, moved = _broker_port()
            broker = EmbeddedBroker(port=port).start()
            # The broker just started is the embedded one, whatever HEART_BROKER says.
            settings = settings.model_copy(
                update={"kafka_bootstrap": broker.bootstrap, "broker": "embedded"}
            )
        # Before saying where the broker is: whoever reads that may look for the file.
        write_up_state(
            data_dir,
            RunningUp(pid=os.getpid(), bootstrap=settings.kafka_bootstrap, broker=settings.broker),
        )
        if broker is not None:
            print(f"embedded broker on {broker.bootstrap} (memory only)", flush=True)
            if moved is not None:
                print(moved, flush=True)
        else:
            print(f"using Kafka at {settings.kafka_bootstrap}", flush=True)
        created = await create_topics(settings)
        fresh = sum(v == "created" for v in created.values())
        print(f"topics: {fresh} created, {len(created) - fresh} existing", flush=True)
        env = {
            **os.environ,
            "HEART_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HEART_BROKER": settings.broker,
            "HEART_TOPIC_PREFIX": settings.topic_prefix,
            # The simulated city starts in the past (the last weekday 07:30), so its stages
            # follow event time at any speed; on the wall clock every call would be stale.
            "HEART_CLOCK": "event" if simulate else settings.clock,
            "HEART_DATA_DIR": str(state),
        }
        supervisor = Supervisor(stages, env, logs, metrics_port)
        supervisor.start()
        for p in supervisor.processes:
            print(
                f"stage {p.stage:10} metrics http://127.0.0.1:{p.metrics_port}/metrics "
                f"log {p.log_path}",
                flush=True,
            )
        if console and console_port is not None:
            console_process = _start_console(env, logs, console_port)
            from heart.cli.console.server import DEMO_SIGNIN

            print(
                f"console         http://127.0.0.1:{console_port} · {DEMO_SIGNIN}",
                flush=True,
            )
            if console_note is not None:
                print(console_note, flush=True)
        tasks: list[asyncio.Task[None]] = []
        city = City(settings, default_start(), speed, seed, clinicians)
        if simulate:
            print(
                f"simulating Durham from {city.start.astimezone(ZONE):%a %Y-%m-%d %H:%M} "
                f"at {speed:g}x (Ctrl-C stops everything)",
                flush=True,
            )
            tasks.append(asyncio.create_task(city.run(stop)))
        began = time.monotonic()
        procs = supervisor.processes

        def view() -> tuple[Sequence[str], str]:
            now = city.sim_now()
            running = sum(p.alive() for p in procs)
            restarts = sum(p.restarts for p in procs)
            header = (
                f"heart up · broker {settings.kafka_bootstrap} · running "
                f"{_elapsed(time.monotonic() - began)} · Ctrl-C stops everything"
            )
            stage_line = (
                f"stages          {running} of {len(procs)} running"
                + (f", {restarts} restart{'s' if restarts != 1 else ''}" if restarts else "")
                + f" (logs in {logs})"
            )
            city_lines = city.status.lines(now, ZONE) if simulate else ["no simulated city"]
            return [header, stage_line, *city_lines], city.status.line(now, ZONE)

        try:
            with status:
                await _until_stopped(stop, duration, status, view, supervisor, tasks)
        except StageStartError as exc:
            print(f"heart up: {exc.describe()}", file=sys.stderr, flush=True)
            stop.set()
            return 1
        finally:
            print("stopping...", flush=True)
            for task in tasks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 5)
        return 0
    finally:
        status.close()
        if console_process is not None:
            _stop_console(console_process)
        if supervisor is not None:
            supervisor.stop()
        if broker is not None:
            broker.stop()
        remove_up_state(data_dir, os.getpid())
        shutil.rmtree(state, ignore_errors=True)
        print("stopped: no stage or broker process left running", flush=True)
