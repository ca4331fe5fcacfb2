"""The dispatch stage as a real worker process on the embedded broker, on event time."""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from heart.agents.triage.decide import decide
from heart.policy import load_policy
from heart.schemas import DeadLetter, DispatchEvent, TriageDecision, UnitStatusReport
from heart.streams.admin import create_topics
from heart.streams.codec import decode
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    DEADLETTER,
    DISPATCH_AREAS,
    DISPATCH_CLEARED,
    DISPATCH_EVENTS,
    TRIAGE_DECISIONS,
    UNITS_STATUS,
)
from tests.factories import T0, call_received
from tests.kafka import Worker, produce, read_topic

pytestmark = pytest.mark.broker
POLICY = load_policy()
# Event time: the stage's clock follows the events, so Monday 10:00 EDT is "now".
EVENT_CLOCK = {"HEART_CLOCK": "event"}


def decision(call_id: str, beat: str, at=T0, **call: object) -> TriageDecision:
    received = call_received(
        call_id=call_id, beat=beat, occurred_at=at, event_id=f"e-{call_id}", **call
    )
    return decide(received, POLICY, event_id=f"d-{call_id}", now=at)


def report(team: str, status: str, at, call_id: str | None = None, **extra: object):
    return UnitStatusReport(
        team_id=team,
        status=status,
        occurred_at=at,
        call_id=call_id,
        event_id=f"r-{team}-{status}-{at.isoformat()}",
        **extra,
    )


def dispatch_events(records) -> list[DispatchEvent]:
    return [decode(DispatchEvent, r.value) for r in records]


def kinds(records, kind: str) -> list[DispatchEvent]:
    return [e for e in dispatch_events(records) if e.event_type == kind]


@pytest.fixture
async def scoped(settings: HeartSettings, unique: str) -> HeartSettings:
    scoped = settings.model_copy(update={"topic_prefix": f"dsp{unique}."})
    await create_topics(scoped)
    return scoped


@pytest.fixture
async def dispatcher(scoped: HeartSettings, tmp_path: Path) -> AsyncIterator[Worker]:
    worker = Worker("dispatch", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await worker.wait_ready()
        yield worker
    finally:
        worker.kill(signal.SIGTERM)


async def test_assign_prefer_beat_queue_release_and_refusals(
    scoped: HeartSettings, dispatcher: Worker
) -> None:
    # Four calls in the four CRT teams' home beats: each goes to the team at home.
    homes = {"C-111": "111", "C-214": "214", "C-411": "411", "C-512": "512"}
    first = [decision(c, b) for c, b in homes.items()]
    await produce(scoped, TRIAGE_DECISIONS, [(d.call_id, d) for d in first] + [("C-111", first[0])])
    out = await read_topic(
        scoped, DISPATCH_EVENTS, until=lambda r: len(kinds(r, "dispatch.assigned")) >= 4, settle=1.5
    )
    assigned = {e.call_id: e.team_id for e in kinds(out, "dispatch.assigned")}
    assert assigned == {"C-111": "CRT-1", "C-214": "CRT-2", "C-411": "CRT-3", "C-512": "CRT-4"}
    assert all(r.key.decode() == dispatch_events([r])[0].team_id for r in out)

    # A fifth call finds every team busy and waits; CRT-3 clears and takes it.
    queued = decision("C-Q", "113", at=T0 + timedelta(minutes=1))
    await produce(scoped, TRIAGE_DECISIONS, [("C-Q", queued)])
    await read_topic(
        scoped, DISPATCH_EVENTS, until=lambda r: kinds(r, "dispatch.queued"), timeout=20
    )
    t = T0 + timedelta(minutes=2)
    await produce(
        scoped,
        UNITS_STATUS,
        [
            ("CRT-3", report("CRT-3", "en_route", t, "C-411")),
            ("CRT-3", report("CRT-3", "on_scene", t + timedelta(minutes=3), "C-411")),
            ("CRT-1", report("CRT-1", "dispatched", t, "C-111", backup_requested=True)),
            ("CRT-2", report("CRT-2", "transporting", t, "C-214")),  # illegal from dispatched
            ("NOPE-9", report("NOPE-9", "en_route", t)),  # unknown team
            ("CRT-3", report("CRT-3", "cleared", t + timedelta(minutes=6), "C-411")),
        ],
    )
    out = await read_topic(
        scoped,
        DISPATCH_EVENTS,
        until=lambda r: any(e.call_id == "C-Q" for e in kinds(r, "dispatch.assigned")),
        settle=1.0,
    )
    [late] = [e for e in kinds(out, "dispatch.assigned") if e.call_id == "C-Q"]
    assert late.team_id == "CRT-3"
    assert late.decision_to_assignment_s == pytest.approx(7 * 60)
    [on_scene] = kinds(out, "dispatch.on_scene")
    assert on_scene.assignment_to_on_scene_s == pytest.approx(5 * 60)
    [cleared] = kinds(out, "dispatch.cleared")
    assert cleared.time_on_scene_s == pytest.approx(3 * 60)
    # The clearing again, keyed by its call, for Care Navigation.
    [again] = await read_topic(scoped, DISPATCH_CLEARED, until=lambda r: len(r) >= 1, settle=0.5)
    assert again.key == b"C-411"
    assert decode(DispatchEvent, again.value) == cleared
    [backup] = kinds(out, "dispatch.backup_requested")
    assert backup.team_id == "CRT-1"
    assert len(kinds(out, "dispatch.assigned")) == 5, "the redelivered decision assigned nobody"
    assert all(e.location is None or e.location.address for e in dispatch_events(out))

    dead = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 2, settle=1.0)
    reasons = sorted(DeadLetter.from_headers(r.headers).reason for r in dead)
    assert reasons == ["illegal_transition", "unknown_team"]
    [illegal] = [
        r for r in dead if DeadLetter.from_headers(r.headers).reason == "illegal_transition"
    ]
    assert decode(UnitStatusReport, illegal.value).status == "transporting"


async def test_fallback_to_police_after_the_maximum_wait(
    scoped: HeartSettings, dispatcher: Worker
) -> None:
    cor_calls = [
        decision(f"W-{i}", beat, call_type="Mental Health Crisis", weapon_involved=True)
        for i, beat in enumerate(("111", "214", "411"))
    ]
    assert {d.route for d in cor_calls} == {"cor"}
    await produce(scoped, TRIAGE_DECISIONS, [(d.call_id, d) for d in cor_calls])
    out = await read_topic(scoped, DISPATCH_EVENTS, until=lambda r: kinds(r, "dispatch.queued"))
    [waiting] = kinds(out, "dispatch.queued")
    # Event time moves on 11 minutes with a team's report; the next tick releases the call.
    later = T0 + timedelta(minutes=11)
    await produce(scoped, UNITS_STATUS, [("COR-1", report("COR-1", "en_route", later))])
    out = await read_topic(scoped, DISPATCH_EVENTS, until=lambda r: kinds(r, "dispatch.fallback"))
    [fallback] = kinds(out, "dispatch.fallback")
    assert (fallback.call_id, fallback.reason) == (waiting.call_id, "no_team_free")
    assert fallback.route == "cor"


async def test_team_states_survive_sigkill(scoped: HeartSettings, tmp_path: Path) -> None:
    worker = Worker("dispatch", scoped, tmp_path, **EVENT_CLOCK).start()
    await worker.wait_ready()
    busy = [decision(f"K-{beat}", beat) for beat in ("111", "214", "411")]
    await produce(scoped, TRIAGE_DECISIONS, [(d.call_id, d) for d in busy])
    await read_topic(
        scoped, DISPATCH_EVENTS, until=lambda r: len(kinds(r, "dispatch.assigned")) >= 3, settle=1.0
    )
    worker.kill(signal.SIGKILL)

    restarted = Worker("dispatch", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await restarted.wait_ready()
        # Two more calls in CRT-1's home beat: only CRT-4 is free, the other waits.
        more = [decision(f"K-n{i}", "111", at=T0 + timedelta(minutes=1)) for i in range(2)]
        await produce(scoped, TRIAGE_DECISIONS, [(d.call_id, d) for d in more])
        out = await read_topic(
            scoped,
            DISPATCH_EVENTS,
            until=lambda r: kinds(r, "dispatch.queued"),
            settle=1.5,
        )
    finally:
        restarted.kill(signal.SIGTERM)
    teams = [e.team_id for e in kinds(out, "dispatch.assigned")]
    assert sorted(teams) == ["CRT-1", "CRT-2", "CRT-3", "CRT-4"], "no busy team sent twice"
    # The two new calls reach dispatch in either order: one takes CRT-4, the other waits.
    [waiting] = [e.call_id for e in kinds(out, "dispatch.queued")]
    [took] = [e.call_id for e in kinds(out, "dispatch.assigned") if e.team_id == "CRT-4"]
    assert {waiting, took} == {"K-n0", "K-n1"}


async def test_a_cleared_call_is_recognised_after_a_crash(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    # Bug 20: a value without the cleared call landed and the call's ledger entry did not,
    # so the decision, replayed after the crash, re-opened the call and sent a second team.
    worker = Worker("dispatch", scoped, tmp_path, **EVENT_CLOCK).start()
    await worker.wait_ready()
    call = decision("L-1", "111")
    await produce(scoped, TRIAGE_DECISIONS, [(call.call_id, call)])
    await read_topic(scoped, DISPATCH_EVENTS, until=lambda r: kinds(r, "dispatch.assigned"))
    t = T0 + timedelta(minutes=2)
    await produce(
        scoped,
        UNITS_STATUS,
        [
            ("CRT-1", report("CRT-1", "on_scene", t, "L-1")),
            ("CRT-1", report("CRT-1", "cleared", t + timedelta(minutes=5), "L-1")),
        ],
    )
    await read_topic(scoped, DISPATCH_EVENTS, until=lambda r: kinds(r, "dispatch.cleared"))

    def left_the_area(records: list) -> list:
        return [
            r
            for r in records
            if r.key == b'"durham"' and r.value and "L-1" not in orjson.loads(r.value)["calls"]
        ]

    changelog = await read_topic(
        scoped, DISPATCH_AREAS.changelog, until=lambda r: left_the_area(r), settle=0.5
    )
    worker.kill(signal.SIGKILL)
    [entry] = [r for r in changelog if r.key == b'"durham|call|L-1"']
    value = left_the_area(changelog)[0]
    # One changelog partition, the entry first: no recovery sees the value without it.
    assert (entry.topic, entry.partition) == (value.topic, value.partition)
    assert entry.offset < value.offset
    assert orjson.loads(entry.value)["status"] == "cleared"

    restarted = Worker("dispatch", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await restarted.wait_ready()
        # The decision again, as a survivor replaying uncommitted input would read it,
        # then a new call in the same beat to show when the worker has handled both.
        later = decision("L-2", "111", at=t + timedelta(minutes=6))
        await produce(scoped, TRIAGE_DECISIONS, [(call.call_id, call), (later.call_id, later)])
        out = await read_topic(
            scoped,
            DISPATCH_EVENTS,
            until=lambda r: any(e.call_id == "L-2" for e in kinds(r, "dispatch.assigned")),
            settle=1.0,
        )
    finally:
        restarted.kill(signal.SIGTERM)
    assert [e.call_id for e in kinds(out, "dispatch.assigned")] == ["L-1", "L-2"]


async def test_a_decision_too_old_to_act_on_gets_no_team_even_a_free_one(
    scoped: HeartSettings, dispatcher: Worker
) -> None:
    """Event time has reached T0+30 min when a decision made at T0 arrives (dispatch was
    paused or down): the CAD's standard response has had the call for 20 minutes past the
    policy's 10, so no team goes, although three are free."""
    fresh = decision("C-NOW", "111", at=T0 + timedelta(minutes=30))
    old = decision("C-OLD", "214", at=T0)
    await produce(scoped, TRIAGE_DECISIONS, [("C-NOW", fresh)])
    await read_topic(scoped, DISPATCH_EVENTS, until=lambda r: kinds(r, "dispatch.assigned"))
    await produce(scoped, TRIAGE_DECISIONS, [("C-OLD", old)])
    out = await read_topic(
        scoped, DISPATCH_EVENTS, until=lambda r: kinds(r, "dispatch.fallback"), settle=1.5
    )
    assert [e.call_id for e in kinds(out, "dispatch.assigned")] == ["C-NOW"]
    [fallback] = kinds(out, "dispatch.fallback")
    assert (fallback.call_id, fallback.reason, fallback.route) == ("C-OLD", "stale", "crt")
    body = urllib.request.urlopen(
        f"http://127.0.0.1:{dispatcher.metrics_port}/metrics", timeout=5
    ).read()
    assert b'heart_stale_calls_total{stage="dispatch"} 1.0' in body
    assert b'heart_fallbacks_total{reason="stale",route="crt"} 1.0' in body
