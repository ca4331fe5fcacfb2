"""CI smoke run of ``bench/console.py --quick``: every section runs and reports figures.

The figures of a quick run mean little; this only keeps the benchmark from rotting, and
checks that each call the bench sent reached the browser and the streams.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench.test_run_smoke import _number

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "console.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "console.py"), "--quick", "--json", str(out)],
        cwd=tmp_path_factory.mktemp("cwd"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(out.read_text()), proc.stdout


def test_at_durhams_pace_every_call_reaches_the_browser_and_the_stream(
    quick: tuple[dict[str, Any], str],
) -> None:
    results, _ = quick
    figures = results["durham"]
    assert figures["calls"] > 0
    for reader in ("dom", "stream"):
        latency = figures[f"{reader}_ms"]
        assert (latency["n"], figures[f"{reader}_missing"]) == (figures["calls"], 0), figures
        assert all(_number(latency[k]) and latency[k] >= 0 for k in ("p50", "p99")), latency
    assert _number(figures["console_rss_mib"])


def test_at_100_calls_a_second_every_call_reaches_the_stream_and_the_page_keeps_drawing(
    quick: tuple[dict[str, Any], str],
) -> None:
    results, _ = quick
    figures = results["rate"]
    assert figures["calls"] > 0
    assert (figures["stream_ms"]["n"], figures["stream_missing"]) == (figures["calls"], 0)
    # The page draws only the newest view, so a call that came and went between two
    # drawings is never drawn; it still draws, and accounts for every call.
    dom = figures["dom_ms"]
    assert dom["n"] > 0 and dom["n"] + figures["dom_missing"] == figures["calls"], figures


def test_the_stream_ladder_and_the_rebuild_report_figures(
    quick: tuple[dict[str, Any], str],
) -> None:
    results, printed = quick
    steps = results["streams"]["steps"]
    assert [s["streams"] for s in steps][:1] == [5]
    assert results["streams"]["max_streams_within_limit"] in [0] + [s["streams"] for s in steps]
    rebuilt = results["rebuild"]
    assert rebuilt["history_calls"] == 1_000
    assert rebuilt["calls_in_topics"] >= rebuilt["history_calls"]
    assert 0 < rebuilt["serving_s"] <= rebuilt["live_s"]
    assert "one console process serves" in printed and "rebuild:" in printed
