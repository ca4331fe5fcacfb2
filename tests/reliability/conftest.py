"""Start the long reliability scenarios at once, in the background, for the whole session.

Most of a chaos scenario's time is spent waiting (for a worker to start, for a group to
rebalance after a SIGKILL), not computing. So the scenarios of every selected module, and
the load benchmark's quick run, start together when the session starts; each test then
awaits its own scenario and judges it. Selecting one file starts only its scenarios.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from heart.streams.settings import HeartSettings
from tests.kafka import ROOT


@dataclass
class Background:
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    bench: subprocess.Popen[str] | None = None
    bench_json: Path | None = None

    async def result(self, name: str) -> Any:
        if name not in self.tasks:
            pytest.fail(f"scenario {name} was not started")
        return await self.tasks[name]


@pytest.fixture(scope="session", autouse=True)
async def background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Background]:
    selected = {item.path.name for item in request.session.items}
    started = Background()
    if "test_bench_smoke.py" in selected:
        out = tmp_path_factory.mktemp("bench") / "load.json"
        log = open(out.with_suffix(".log"), "w")  # noqa: SIM115
        started.bench = subprocess.Popen(
            [sys.executable, "bench/load.py", "--quick", "--rate", "100", "--json", str(out)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.bench_json = out
    wanted = selected & {"test_chaos.py", "test_restart_clock.py"}
    if wanted:
        broker = request.getfixturevalue("broker")
        settings = HeartSettings(kafka_bootstrap=broker.bootstrap)
        if "test_chaos.py" in selected:
            from tests.reliability import test_chaos as chaos

            for name, runner in (
                ("triage", chaos.run_triage),
                ("dispatch", chaos.run_dispatch),
                ("navigation", chaos.run_navigation),
            ):
                path = tmp_path_factory.mktemp(f"chaos-{name}")
                started.tasks[f"chaos-{name}"] = asyncio.create_task(runner(settings, path))
        if "test_restart_clock.py" in selected:
            from tests.reliability import test_restart_clock as clock

            for name, runner in (
                ("dispatch", clock.dispatch_after_restart),
                ("navigation", clock.navigation_after_restart),
            ):
                path = tmp_path_factory.mktemp(f"clock-{name}")
                started.tasks[f"clock-{name}"] = asyncio.create_task(runner(settings, path))
    yield started
    for task in started.tasks.values():
        task.cancel()
    await asyncio.gather(*started.tasks.values(), return_exceptions=True)
    if started.bench is not None and started.bench.poll() is None:
        started.bench.terminate()
        started.bench.wait(30)
