"""``heart replay`` on a slice of a real export, through every stage on the real broker."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import orjson
import pytest

from agents.triage.decide import decide
from cad.importer import import_rows
from cad.mapping import load_mapping
from schemas.calls import CallReceived
from streams.replay import LANE_WINDOW, TEAM_ROUTES, Replayer, run_replay
from streams.settings import HeartSettings
from tests.cad import shared_file

pytestmark = pytest.mark.broker


@pytest.fixture
def slice_of_san_jose(tmp_path: Path) -> Path:
    """Weekday-heavy sample: the 600 rows of the file's first months, in file order."""
    source = shared_file("sanjose-2024-calls-sample.csv")
    with source.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader][:600]
    out = tmp_path / "slice.csv"
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return out


async def test_replay_runs_every_call_through_every_stage(
    settings: HeartSettings,
    unique: str,
    slice_of_san_jose: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEART_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    scoped = settings.model_copy(update={"topic_prefix": f"rp{unique}."})
    mapping = load_mapping("sanjose-2024")
    policy = mapping.load_policy()
    calls = import_rows(slice_of_san_jose, mapping).events
    team_calls = sum(decide(c, policy).route in ("crt", "cor") for c in calls)
    assert team_calls > 5, "the slice exercises dispatch"

    sent: list[tuple[str, CallReceived]] = []  # (lane, call) in the order they were sent
    send = Replayer._send

    async def recording(self: Replayer, producer, spec, key, event) -> None:  # type: ignore[no-untyped-def]
        if isinstance(event, CallReceived):
            team = decide(event, policy).route in TEAM_ROUTES
            sent.append(("team" if team else "other", event))
        await send(self, producer, spec, key, event)

    monkeypatch.setattr(Replayer, "_send", recording)
    out = tmp_path / "out"
    code = await run_replay(
        scoped,
        slice_of_san_jose,
        "sanjose-2024",
        policy_path=None,
        roster_path=None,
        speed=None,
        out_dir=out,
        log_dir=tmp_path / "logs",
    )
    assert code == 0
    summary = orjson.loads((out / "replay-summary.json").read_bytes())
    assert summary["calls"] == len(calls)
    assert summary["sync_timeouts"] == 0 or summary["sync_timeouts"] < team_calls // 10
    dispatch = summary["dispatch"]
    # Every team call was answered by dispatch: assigned, or queued then assigned or released.
    answered = dispatch.get("dispatch.assigned", 0) + dispatch.get("dispatch.fallback", 0)
    assert answered == team_calls
    assert dispatch.get("dispatch.cleared", 0) == dispatch.get("dispatch.assigned", 0)
    assert summary["followups_due"] > 0
    assert_lanes_within_window(sent)
    # The monthly report comes out at the end and counts every replayed call.
    months = Counter(c.occurred_at.astimezone(policy.zone).strftime("%Y-%m") for c in calls)
    for month, n in months.items():
        report = orjson.loads((out / f"heart-report-{month}.json").read_bytes())
        assert report["calls"] == n
        page = (out / f"heart-report-{month}.html").read_text()
        assert page.lower().startswith("<!doctype html>")


def assert_lanes_within_window(sent: list[tuple[str, CallReceived]]) -> None:
    """When a team call goes to triage, the other lane has sent every call more than
    LANE_WINDOW older (it would otherwise go into triage beside the team call) and none
    more than LANE_WINDOW newer (stage clocks stay within minutes of each other)."""
    assert sorted(c.call_id for _, c in sent) == sorted({c.call_id for _, c in sent})
    for lane in ("team", "other"):
        times = [c.occurred_at for name, c in sent if name == lane]
        assert times == sorted(times), f"{lane} lane out of event-time order"
    others = [c.occurred_at for name, c in sent if name == "other"]
    checked = 0
    for i, (lane, call) in enumerate(sent):
        if lane != "team":
            continue
        before = [c.occurred_at for name, c in sent[:i] if name == "other"]
        owed = [t for t in others if t < call.occurred_at - LANE_WINDOW]
        assert len(before) >= len(owed), f"team call {call.call_id} sent ahead of older calls"
        assert all(t <= call.occurred_at + LANE_WINDOW for t in before), call.call_id
        checked += 1
    assert checked > 5
