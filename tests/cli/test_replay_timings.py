"""``heart replay`` writes the dispatch timings it read, in the format ``--timings`` reads,
so a replay's own timings calibrate ``heart staffing`` end to end; the file keeps only the
timings, never the call's place or safety notes."""

from __future__ import annotations

import csv
import os
import random
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from heart.cli.replay import TIMINGS_FILE, Replayer, timing_line, write_timings
from heart.cli.whatif import read_timings
from heart.policy import load_policy
from heart.schemas.calls import Location
from heart.schemas.dispatch import DispatchEvent
from heart.streams.codec import encode
from heart.streams.settings import HeartSettings
from tests.cad import shared_file
from tests.cli.test_replay_cli import SAMPLE, replay

POLICY = Path(__file__).resolve().parents[2] / "cad" / "mappings" / "sanjose-demo-policy.toml"
TIMING_KEYS = {"event_type", "occurred_at", "route"}
START = datetime(2024, 3, 1, 9, tzinfo=UTC)


def dispatch_event(kind: str, n: int, **timing: float) -> dict[str, object]:
    """A dispatch event as it comes off ``dispatch.events``, with a place and notes."""
    event = DispatchEvent(
        event_id=f"{kind}-{n}",
        event_type=kind,  # type: ignore[arg-type]
        occurred_at=START + timedelta(minutes=7 * n),
        call_id=f"C{n:04d}",
        route="crt",
        team_id="crt-1",
        location=Location(address="12 Example St", lat=37.3, lon=-121.9),
        safety_notes="dog in the yard",
        **timing,
    )
    return orjson.loads(encode(event))


def test_the_replayer_keeps_only_timings_once_each(tmp_path: Path) -> None:
    replayer = Replayer(HeartSettings(), load_policy(POLICY), speed=None)
    events = [
        dispatch_event("dispatch.on_scene", n, assignment_to_on_scene_s=300 + n) for n in range(25)
    ]
    events += [
        dispatch_event("dispatch.cleared", n, time_on_scene_s=2400 + 6 * n) for n in range(25)
    ]
    # Not timings: an assignment, and an on-scene report without a span.
    events += [dispatch_event("dispatch.assigned", 99), dispatch_event("dispatch.on_scene", 98)]
    shuffled = events + events[:5]  # a redelivered event counts once
    random.Random(1).shuffle(shuffled)
    for event in shuffled:
        replayer._react(event)
    written = write_timings(replayer.timings.values(), tmp_path / TIMINGS_FILE)
    assert (written.arrivals, written.clearings) == (25, 25)

    lines = [orjson.loads(line) for line in written.path.read_bytes().splitlines()]
    assert len(lines) == 50
    for line in lines:
        assert set(line) - TIMING_KEYS in ({"assignment_to_on_scene_s"}, {"time_on_scene_s"})
    assert b"Example St" not in written.path.read_bytes()
    times = [datetime.fromisoformat(line["occurred_at"]) for line in lines]
    assert times == sorted(times)
    # Another arrival order gives the same file.
    again = write_timings(reversed(list(replayer.timings.values())), tmp_path / "again.jsonl")
    assert again.path.read_bytes() == written.path.read_bytes()

    model = read_timings(written.path)
    assert model.travel.mean == pytest.approx(statistics.fmean(300 + n for n in range(25)) / 60)
    assert model.on_scene.mean == pytest.approx(
        statistics.fmean(2400 + 6 * n for n in range(25)) / 60
    )


def test_timing_line_skips_events_without_a_timing() -> None:
    assert timing_line(dispatch_event("dispatch.fallback", 1)) is None
    assert timing_line(dispatch_event("dispatch.cleared", 1)) is None
    line = timing_line(dispatch_event("dispatch.cleared", 1, time_on_scene_s=60.0))
    assert line == {
        "event_type": "dispatch.cleared",
        "occurred_at": "2024-03-01T09:07:00+00:00",
        "route": "crt",
        "time_on_scene_s": 60.0,
    }


@pytest.mark.broker
def test_a_replays_timings_calibrate_staffing(tmp_path: Path) -> None:
    slice_ = tmp_path / "slice.csv"
    with shared_file(SAMPLE).open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    with slice_.open("w", newline="") as f:
        csv.writer(f).writerows(rows[:801])
    result = replay(tmp_path, slice_, "out")
    assert result.returncode == 0, result.stderr[-3000:]

    timings = tmp_path / "out" / TIMINGS_FILE
    lines = [orjson.loads(line) for line in timings.read_bytes().splitlines()]
    travel = [x["assignment_to_on_scene_s"] / 60 for x in lines if "assignment_to_on_scene_s" in x]
    scene = [x["time_on_scene_s"] / 60 for x in lines if "time_on_scene_s" in x]
    assert len(travel) + len(scene) == len(lines)
    # One arrival and one clearing for each call a team took, as dispatch counted them.
    summary = orjson.loads((tmp_path / "out" / "replay-summary.json").read_bytes())
    assert len(travel) == summary["dispatch"]["dispatch.on_scene"] >= 20
    assert len(scene) == summary["dispatch"]["dispatch.cleared"] >= 20
    assert summary["dispatch_timings"] == {
        "file": TIMINGS_FILE,
        "arrivals": len(travel),
        "clearings": len(scene),
    }
    assert (
        f"dispatch timings in out/{TIMINGS_FILE} ({len(travel)} arrivals, {len(scene)} "
        "clearings)" in result.stdout
    )

    env = {k: v for k, v in os.environ.items() if k != "HEART_KAFKA_BOOTSTRAP"}
    command = ["staffing", str(slice_), "--mapping", "sanjose-2024", "--teams-max", "2"]
    staffing = subprocess.run(
        [sys.executable, "-m", "heart.cli", *command, "--timings", f"out/{TIMINGS_FILE}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert staffing.returncode == 0, staffing.stderr[-3000:]
    table = staffing.stdout
    assert (
        f"calibrated from timings file out/{TIMINGS_FILE} ({len(travel)} arrivals, "
        f"{len(scene)} clearings)"
    ) in table
    assert f"travel mean {statistics.fmean(travel):.1f} min, as observed" in table
    assert f"on scene mean {statistics.fmean(scene):.1f} min, as observed" in table
    report = orjson.loads((tmp_path / "staffing-out" / "staffing.json").read_bytes())
    assumed = report["staffing"]["assumptions"]["time_on_call"]
    assert assumed["travel"]["mean_minutes"] == round(statistics.fmean(travel), 3)
    assert assumed["on_scene"]["mean_minutes"] == round(statistics.fmean(scene), 3)
