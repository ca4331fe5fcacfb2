"""Smoke run of ``python -m bench.staffing --quick``: it runs, prints its figures and writes
them as JSON. The figures of a quick run (two weeks, three team counts) mean nothing; this
keeps the benchmark from rotting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "staffing.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.staffing", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["quick"] is True and figures["days"] == 14
    assert figures["calls"] > 10_000
    assert figures["teams_max"] == 3
    seconds = figures["seconds"]
    for name in ("decide_incl_generate", "search_every_count", "decide_and_search_every_count"):
        assert seconds[name] > 0
    # Every policy and count simulated: 3 policies x (3 counts + the hourly run) for CRT.
    assert figures["runs"]["every_count"] == 3 * (3 + 1)
    assert set(figures["team_calls"]) == set(figures["policies"])
    memory = figures["memory"]
    assert memory["peak_rss_mb_search_1_count"] > 0
    assert memory["peak_rss_mb_search_3_counts"] > 0
    assert "decide + search" in done.stdout
