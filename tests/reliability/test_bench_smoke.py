"""Smoke test of the load benchmark: ``bench/load.py --quick`` runs and reports its figures.

The benchmark itself (10 minutes at 200 calls/s) is not a CI test; this only proves the
script works end to end: its own embedded broker, the three stage workers, the load, the
samples and the JSON. ``conftest.py`` starts the quick run when the session starts, so that
it overlaps with the other tests; this test waits for it and reads its JSON.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.reliability.conftest import Background

pytestmark = pytest.mark.broker


async def test_quick_load_run_reports_lag_memory_and_latency(background: Background) -> None:
    background.start_bench()
    bench, out = background.bench, background.bench_json
    assert bench is not None and out is not None
    deadline = time.monotonic() + 240
    while bench.poll() is None:
        assert time.monotonic() < deadline, "bench/load.py --quick did not finish"
        await asyncio.sleep(0.5)
    printed = out.with_suffix(".log").read_text()
    assert bench.returncode == 0, printed[-3000:]
    result = json.loads(out.read_text())
    assert result["calls_sent"] > 500
    assert all(result["workers_alive_at_end"].values())
    assert result["decided"] == result["calls_sent"], "every call decided"
    assert result["assigned"] > 0, "dispatch assigned teams"
    for name in ("call_to_decision", "call_to_assignment"):
        figures = result["latency_ms"][name]
        assert figures["n"] > 0
        assert 0 <= figures["p50"] <= figures["p90"] <= figures["p99"]
    stages = ("triage", "dispatch", "navigation")
    assert len(result["lag"]) >= 3 and len(result["rss_mib"]) >= 3
    for row in result["rss_mib"]:
        assert all(row[s] and row[s] > 10 for s in stages), row
    for row in result["lag"]:
        assert all(row[s] is not None for s in stages), row
    assert "p99" in printed and "RSS" in printed, "the table is printed"
