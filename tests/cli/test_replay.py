"""``heart replay`` on a slice of a real export, through every stage on the real broker."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from heart.agents.triage.decide import decide
from heart.cad.importer import import_rows
from heart.cad.mapping import load_mapping
from heart.cli.replay import TEAM_ROUTES, Replayer, run_replay
from heart.policy import Policy
from heart.schemas.calls import CallClosed, CallReceived
from heart.schemas.dispatch import UnitStatusReport
from heart.streams.settings import HeartSettings
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

    sent: list[Sent] = []  # in the order the replayer sent them
    send = Replayer._send

    async def recording(self: Replayer, producer, spec, key, event) -> None:  # type: ignore[no-untyped-def]
        sent.append(Sent.of(event, policy))
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
    assert (
        summary["run"]["sync_timeouts"] == 0 or summary["run"]["sync_timeouts"] < team_calls // 10
    )
    dispatch = summary["dispatch"]
    # Every team call was answered by dispatch: assigned, or queued then assigned or released.
    answered = dispatch.get("dispatch.assigned", 0) + dispatch.get("dispatch.fallback", 0)
    assert answered == team_calls
    assert dispatch.get("dispatch.cleared", 0) == dispatch.get("dispatch.assigned", 0)
    # Every follow-up the navigators worked was one Care Navigation scheduled, as planned.
    assert summary["followups_planned"] > 0
    assert summary["followup_mismatches"] == 0
    assert summary["followups_unscheduled"] == 0
    assert summary["outcomes"] >= summary["followups_planned"]
    assert_lanes_in_event_time_order(sent)
    # The monthly report comes out at the end and counts every replayed call.
    months = Counter(c.occurred_at.astimezone(policy.zone).strftime("%Y-%m") for c in calls)
    for month, n in months.items():
        report = orjson.loads((out / f"heart-report-{month}.json").read_bytes())
        assert report["calls"] == n
        page = (out / f"heart-report-{month}.html").read_text()
        assert page.lower().startswith("<!doctype html>")


@dataclass(frozen=True)
class Sent:
    lane: str  # "team": team calls and status reports; "other": the rest
    kind: str
    at: datetime
    ident: str

    @classmethod
    def of(cls, event: Any, policy: Policy) -> Sent:
        if isinstance(event, CallReceived):
            team = decide(event, policy).route in TEAM_ROUTES
            return cls("team" if team else "other", "call", event.occurred_at, event.call_id)
        if isinstance(event, UnitStatusReport):
            return cls("team", "report", event.occurred_at, event.event_id)
        # Closings are known from the start; outcomes only once navigation asks for them.
        kind = "closing" if isinstance(event, CallClosed) else type(event).__name__
        return cls("other", kind, event.occurred_at, event.event_id)


def assert_lanes_in_event_time_order(sent: list[Sent]) -> None:
    """When the team lane sends a call or a report, the other lane has sent every call
    and closing older than it (stages would otherwise see them out of event-time order,
    and stamp decisions with a later call's time) and nothing newer."""
    ids = [s.ident for s in sent]
    assert len(ids) == len(set(ids)), "something was sent twice"
    for lane in ("team", "other"):
        times = [s.at for s in sent if s.lane == lane and s.kind == "call"]
        assert times == sorted(times), f"{lane} lane's calls out of event-time order"
    known = [s.at for s in sent if s.lane == "other" and s.kind in ("call", "closing")]
    kinds = Counter(s.kind for s in sent)
    # The shipped demo policies route no call to CCD, so no closing is sent here.
    assert kinds["report"] and kinds["FollowupOutcome"], kinds
    checked = 0
    for i, item in enumerate(sent):
        if item.lane != "team":
            continue
        before = [s for s in sent[:i] if s.lane == "other"]
        owed = [t for t in known if t < item.at]
        done = [s for s in before if s.kind in ("call", "closing")]
        assert len(done) >= len(owed), f"team {item.kind} {item.ident} ahead of older calls"
        ahead = [s for s in before if s.at > item.at]
        assert not ahead, f"team {item.kind} {item.ident} behind newer {ahead[0]}"
        checked += 1
    assert checked > 20
