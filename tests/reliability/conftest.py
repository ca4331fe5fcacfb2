"""Start the long reliability scenarios at once, in the background, for the whole session.

Most of a chaos scenario's time is spent waiting (for a worker to start, for a group to
rebalance after a SIGKILL), not computing. So the scenarios of every selected module, and
the load benchmark's quick run, start together when the session starts; each test then
awaits its own scenario and judges it. Selecting one file starts only its scenarios.

On several worker processes (pytest-xdist) every worker collects every test but runs only
some, so there a scenario starts when its first test asks for it, in that test's worker:
started at session start, each would run once per worker.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from heart.streams.settings import HeartSettings
from tests.kafka import ROOT


@dataclass
class Background:
    starters: dict[str, Callable[[], Awaitable[Any]]] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    bench_json: Path | None = None
    bench_argv: list[str] | None = None
    bench: subprocess.Popen[str] | None = None

    def start(self, name: str) -> None:
        if name not in self.tasks:
            self.tasks[name] = asyncio.create_task(self.starters[name]())  # type: ignore[arg-type]

    async def result(self, name: str) -> Any:
        if name not in self.starters:
            pytest.fail(f"scenario {name} was not started")
        self.start(name)
        return await self.tasks[name]

    def start_bench(self) -> None:
        if self.bench is None and self.bench_argv is not None and self.bench_json is not None:
            log = open(self.bench_json.with_suffix(".log"), "w")  # noqa: SIM115
            self.bench = subprocess.Popen(
                self.bench_argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True
            )


@pytest.fixture(scope="session", autouse=True)
async def background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Background]:
    selected = {item.path.name for item in request.session.items}
    started = Background()
    if "test_bench_smoke.py" in selected:
        out = tmp_path_factory.mktemp("bench") / "load.json"
        started.bench_json = out
        started.bench_argv = [
            sys.executable,
            "bench/load.py",
            "--quick",
            "--rate",
            "100",
            "--json",
            str(out),
        ]
    wanted = selected & {"test_chaos.py", "test_restart_clock.py"}
    if wanted:
        broker = request.getfixturevalue("broker")
        settings = HeartSettings(kafka_bootstrap=broker.bootstrap)

        def scenario(name: str, runner: Callable[..., Awaitable[Any]]) -> None:
            path = tmp_path_factory.mktemp(name)
            started.starters[name] = lambda: runner(settings, path)

        if "test_chaos.py" in selected:
            from tests.reliability import test_chaos as chaos

            scenario("chaos-triage", chaos.run_triage)
            scenario("chaos-dispatch", chaos.run_dispatch)
            scenario("chaos-navigation", chaos.run_navigation)
        if "test_restart_clock.py" in selected:
            from tests.reliability import test_restart_clock as clock

            scenario("clock-dispatch", clock.dispatch_after_restart)
            scenario("clock-navigation", clock.navigation_after_restart)
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        started.start_bench()
        for name in started.starters:
            started.start(name)
    yield started
    for task in started.tasks.values():
        task.cancel()
    await asyncio.gather(*started.tasks.values(), return_exceptions=True)
    if started.bench is not None and started.bench.poll() is None:
        started.bench.terminate()
        started.bench.wait(30)
