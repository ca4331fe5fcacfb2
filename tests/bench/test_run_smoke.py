"""CI smoke run of ``bench/run.py --quick``: every section runs and reports figures.

The figures of a quick run mean nothing (tiny sizes, every worker started at once on a
small machine); this only keeps the benchmark from rotting.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.broker


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out)],
        cwd=tmp_path_factory.mktemp("cwd"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(out.read_text()), proc.stdout


def test_floor_references(quick: tuple[dict[str, Any], str]) -> None:
    results, _ = quick
    for name in ("raw_aiokafka", "faust_passthrough", "stage_runtime"):
        figures = results["floor"][name]
        assert _number(figures["events_per_s"]), (name, figures)
        assert figures["events_per_s"] > 0
        assert _number(figures["cpu_us_per_event"]), (name, figures)


def test_every_stage_alone(quick: tuple[dict[str, Any], str]) -> None:
    from heart.agents.registry import STAGES

    results, _ = quick
    stages = results["stages"]
    expected = {"triage", "dispatch", "navigation"} | ({"reporting"} & set(STAGES))
    assert expected <= set(stages)
    for name in expected:
        figures = stages[name]
        assert figures["drained"], (name, figures)
        for key in ("events_per_s", "ratio_to_passthrough", "ratio_to_runtime", "cpu_us_per_event"):
            assert _number(figures[key]), (name, key, figures)
        assert _number(figures["rss_mib"]["ready"]), (name, figures)


def test_latency_at_each_rate(quick: tuple[dict[str, Any], str]) -> None:
    results, _ = quick
    latency = results["latency"]
    for path in ("pipeline", "raw_2hop", "raw_3hop"):
        assert set(latency[path]) == {"10", "100", "500"}, path
        for rate, figures in latency[path].items():
            assert figures["timed"] > 0, (path, rate)
            for key in ("p50_ms", "p90_ms", "p99_ms"):
                assert _number(figures[key]), (path, rate, key, figures)
            assert figures["p50_ms"] <= figures["p90_ms"] <= figures["p99_ms"]


def test_replay_through_every_stage(quick: tuple[dict[str, Any], str]) -> None:
    results, _ = quick
    replay = results["replay"]
    assert replay["calls"] > 0
    assert {"triage", "dispatch", "navigation"} <= set(replay["stages"])
    assert _number(replay["wall_s"]) and _number(replay["calls_per_s"]), replay


def test_memory_of_every_worker(quick: tuple[dict[str, Any], str]) -> None:
    results, _ = quick
    memory = results["memory"]
    assert memory["calls_sent"] > 0
    assert {"triage", "dispatch", "navigation"} <= set(memory["stages"])
    for name, figures in memory["stages"].items():
        for key in ("start_mib", "end_mib", "growth_from_start_pct"):
            assert _number(figures[key]), (name, key, figures)


def test_table_and_targets(quick: tuple[dict[str, Any], str]) -> None:
    results, stdout = quick
    assert "Faust passthrough agent" in stdout
    assert "CAD -> first dispatch event" in stdout
    assert "replay" in stdout and "memory at" in stdout
    assert {
        "each_stage_at_least_80pct_of_passthrough",
        "p99_at_100_per_s_at_most_150ms",
        "milwaukee_replay_at_most_60s",
        "memory_growth_under_10pct",
    } <= set(results["targets"])
