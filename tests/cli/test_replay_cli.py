"""``heart replay`` as a person runs it: reproducible reports, a short summary, clear failures.

Each test runs the command as a subprocess with its own embedded broker, in a folder of
its own (which must stay clean: worker state goes under HEART_DATA_DIR).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from heart.cli.replay import TIMINGS_FILE
from tests.cad import shared_file

pytestmark = pytest.mark.broker

SAMPLE = "sanjose-2024-calls-sample.csv"


def replay(
    tmp: Path, export: Path, out: str, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HEART_KAFKA_BOOTSTRAP"}
    env["HEART_DATA_DIR"] = str(tmp / "state")
    command = ["replay", str(export), "--mapping", "sanjose-2024", "--out", out, *args]
    return subprocess.run(
        [sys.executable, "-m", "heart.cli", *command],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def figures(out: Path) -> dict[str, Any]:
    """Every figure a replay wrote: each month's report (all but its publication counter)
    and the replay's own counts."""
    found: dict[str, Any] = {}
    for path in sorted(out.glob("heart-report-*.json")):
        report = orjson.loads(path.read_bytes())
        report.pop("version")
        found[path.name] = report
    summary = orjson.loads((out / "replay-summary.json").read_bytes())
    found["replay"] = {k: v for k, v in summary.items() if k not in ("run", "months", "stage_logs")}
    return found


def test_the_same_replay_twice_gives_the_same_reports(tmp_path: Path) -> None:
    export = shared_file(SAMPLE)
    began = time.monotonic()
    first = replay(tmp_path, export, "first")
    took = time.monotonic() - began
    assert first.returncode == 0, first.stderr[-3000:]
    second = replay(tmp_path, export, "second")
    assert second.returncode == 0, second.stderr[-3000:]
    one, two = figures(tmp_path / "first"), figures(tmp_path / "second")
    months = [name for name in one if name.startswith("heart-report-")]
    assert len(months) >= 10, one.keys()
    # Follow-ups are what used to differ from run to run.
    assert sum(one[m]["followups"]["scheduled"] for m in months) > 50
    assert sum(one[m]["followups"]["completed"] for m in months) > 50
    assert one["replay"]["followup_mismatches"] == 0
    assert one["replay"]["followups_unscheduled"] == 0
    for name in one:
        assert one[name] == two[name], f"{name} differs between two runs of the same replay"
    assert one.keys() == two.keys()
    # The dispatch timings too, byte for byte: --timings calibrates from them.
    timings = [(tmp_path / run / TIMINGS_FILE).read_bytes() for run in ("first", "second")]
    assert timings[0] == timings[1] and timings[0].count(b"\n") > 100
    # The terminal gets a short summary, not the JSON.
    out = first.stdout
    assert not out.lstrip().startswith("{"), out
    assert len(out.splitlines()) <= 25, out
    assert f"replayed 4,998 calls from {SAMPLE}" in out
    assert "seed 2022" in out
    assert "cad/mappings/sanjose-demo-policy.toml" in out
    for name in months:
        assert name.removesuffix(".json").removeprefix("heart-report-") in out
        assert name.replace(".json", ".html") in out
    assert "replay-summary.json" in out and "took " in out
    print(f"one replay of {SAMPLE}: {took:.0f} s")  # the brief: keep it near a minute
    # Nothing left behind: no Faust data folders here, no worker state after the run.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "second", "state"]
    assert [p.name for p in (tmp_path / "state").iterdir()] == []


def test_another_seed_gives_other_simulated_answers(tmp_path: Path) -> None:
    slice_ = tmp_path / "slice.csv"
    with shared_file(SAMPLE).open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    with slice_.open("w", newline="") as f:
        csv.writer(f).writerows(rows[:1201])
    a = replay(tmp_path, slice_, "a", "--seed", "1")
    b = replay(tmp_path, slice_, "b", "--seed", "2")
    assert a.returncode == 0 and b.returncode == 0, a.stderr[-2000:] + b.stderr[-2000:]
    assert "seed 1" in a.stdout and "seed 2" in b.stdout
    one, two = figures(tmp_path / "a"), figures(tmp_path / "b")
    assert one["replay"]["seed"] == 1 and two["replay"]["seed"] == 2
    # The calls are the export's; what the simulated teams and navigators did is the seed's.
    assert one["replay"]["routes"] == two["replay"]["routes"]
    followups = [
        {k: r["followups"] for k, r in f.items() if k.startswith("heart-report-")}
        for f in (one, two)
    ]
    assert followups[0] != followups[1]


def test_a_stage_that_cannot_start_is_named_with_its_own_error(tmp_path: Path) -> None:
    slice_ = tmp_path / "slice.csv"
    with shared_file(SAMPLE).open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    with slice_.open("w", newline="") as f:
        csv.writer(f).writerows(rows[:50])
    roster = tmp_path / "roster.toml"
    roster.write_text('name = "broken"\nversion = 1\n[[teams]]\nid = 5\n')
    began = time.monotonic()
    result = replay(tmp_path, slice_, "out", "--roster", str(roster), timeout=120)
    assert result.returncode == 1, result.stderr[-3000:]
    err = result.stderr
    assert "Traceback" not in err, err
    assert "RuntimeError" not in err, err
    assert "heart replay: stage dispatch could not start: roster file" in err, err
    # The roster's own explanation, line by line, and where the whole log is.
    assert 'version: must be a string, got integer 1 (quote it: "1")' in err, err
    assert "(full log: " in err and "dispatch.log)" in err, err
    assert time.monotonic() - began < 60
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roster.toml", "slice.csv", "state"]
