"""The dispatch core of one service area: assignment, queue, fallback, unit status, audit.

A small hand-made roster keeps each preference visible: team ids are chosen so that the
id tie-break would pick a different team than the rule under test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from heart.agents.dispatch.area import (
    CALL_MEMORY,
    AreaState,
    FinishedCall,
    Result,
    StoredForm,
    Tick,
    apply,
    call_named,
    event_key,
)
from heart.agents.dispatch.finished import FinishedLedger
from heart.agents.dispatch.roster import Roster, load_roster, parse_roster
from heart.policy import Policy, load_policy
from heart.schemas.dispatch import UnitStatusReport
from heart.schemas.triage import TriageDecision

T0 = datetime(2024, 7, 15, 14, 0, tzinfo=UTC)  # Monday 10:00 in Durham, inside every shift
SATURDAY = datetime(2024, 7, 20, 14, 0, tzinfo=UTC)
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
AREA = "city"
DISTRICTS = {"D1": ["111", "112", "113"], "D2": ["211", "212"], "D3": ["311"]}
ROLES = {"crt": ["clinician", "peer_support", "emt"], "cor": ["clinician", "police_officer"]}


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# --- factories ----------------------------------------------------------------------------


def team(
    team_id: str,
    kind: str = "crt",
    *,
    beat: str | None = None,
    district: str | None = None,
    languages: tuple[str, ...] = ("en",),
    days: list[str] = WEEKDAYS,
    start: str = "08:30",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": team_id,
        "kind": kind,
        "area": AREA,
        "roles": ROLES[kind],
        "languages": list(languages),
        "shift": [{"days": days, "start": start, "end": "16:30"}],
    }
    if beat is not None:
        spec["home_beat"] = beat
    if district is not None or beat is None:
        spec["home_district"] = district or "D3"
    return spec


def roster(*teams: dict[str, Any]) -> Roster:
    return parse_roster(
        {
            "name": "test",
            "version": "1",
            "areas": {AREA: {"districts": DISTRICTS}, "elsewhere": {"districts": {"E": ["9"]}}},
            "teams": [*teams, {**team("FAR-1"), "area": "elsewhere", "home_district": "E"}],
        },
        source="test",
    )


def decision(
    call_id: str = "C-1",
    route: str = "crt",
    *,
    at: datetime = T0,
    revision: int = 1,
    **overrides: Any,
) -> TriageDecision:
    fields: dict[str, Any] = {
        "event_id": f"decision-{call_id}-{revision}",
        "call_id": call_id,
        "route": route,
        "occurred_at": at,
        "call_received_at": at - timedelta(seconds=30),
        "policy_version": "durham@test",
        "source_event_id": f"call-{call_id}-{revision}",
        "revision": revision,
        "call_type": "TRESPASS",
        "category": "Trespass",
        "beat": "111",
        "location": {"address": "101 City Hall Plaza", "lat": 35.994, "lon": -78.898},
        "safety_notes": "dog in yard",
    }
    fields.update(overrides)
    return TriageDecision.model_validate(fields)


_report_ids = iter(range(10**9))


def report(team_id: str, status: str, at: datetime, **overrides: Any) -> UnitStatusReport:
    fields: dict[str, Any] = {
        "event_id": f"report-{next(_report_ids)}",
        "team_id": team_id,
        "status": status,
        "occurred_at": at,
    }
    fields.update(overrides)
    return UnitStatusReport.model_validate(fields)


class Desk:
    """One area's state and finished-call ledger fed command by command, as the agent
    would, at an injected time."""

    def __init__(self, roster: Roster, policy: Policy, area: str = AREA) -> None:
        self.roster = roster
        self.policy = policy
        self.state = AreaState(area=area)
        self.table: dict[str, Any] = {}
        self.ledger = FinishedLedger(self.table)
        self.form = StoredForm()
        self.now = T0

    def send(self, command: Any, at: datetime | None = None) -> Result:
        if at is not None:
            self.now = at
        area, call_id = self.state.area, call_named(command)
        finished = self.ledger.get(area, call_id) if call_id not in self.state.calls else None
        before = self.state.model_dump()
        result = apply(
            self.state,
            command,
            roster=self.roster,
            policy=self.policy,
            now=self.now,
            finished=finished,
        )
        # apply shares the records it does not change with the state it was given; the
        # agent keeps that state as its cache of the stored value, so it must stay intact.
        assert self.state.model_dump() == before, "apply changed the state it was given"
        stored, encoded = self.form.dump(result.state)
        assert stored == result.state.model_dump(mode="json")
        assert orjson.loads(encoded) == stored
        # A worker that takes the area over (or re-reads its changelog at a rebalance)
        # must find the state this worker had in memory.
        assert AreaState.model_validate(orjson.loads(encoded)) == result.state
        # The ledger's values pass through JSON, as they do through the table's changelog.
        for record in result.finished:
            self.ledger.put(area, FinishedCall.model_validate_json(record.model_dump_json()))
        if isinstance(command, Tick):
            self.ledger.prune(area, self.now)
        self.state = result.state
        return result

    def finished(self, call_id: str) -> FinishedCall | None:
        return self.ledger.get(self.state.area, call_id)

    def status(self, team_id: str) -> tuple[str, str | None]:
        current = self.state.teams[team_id]
        return current.status, current.call_id


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def desk(policy: Policy) -> Any:
    def make(*teams: dict[str, Any]) -> Desk:
        return Desk(roster(*teams), policy)

    return make


def types(result: Result) -> list[str]:
    return [event.event_type for event in result.events]


def assigned(result: Result) -> dict[str, str]:
    """call id -> team id of the result's assignments."""
    return {
        e.call_id: e.team_id or "" for e in result.events if e.event_type == "dispatch.assigned"
    }


# --- assignment preferences ---------------------------------------------------------------


def test_same_beat_then_same_district_then_any(desk: Any) -> None:
    d = desk(team("A-far", beat="211"), team("B-district", beat="112"), team("C-beat", beat="111"))
    assert assigned(d.send(decision("C-1", beat="111"))) == {"C-1": "C-beat"}
    assert assigned(d.send(decision("C-2", beat="111"))) == {"C-2": "B-district"}
    assert assigned(d.send(decision("C-3", beat="111"))) == {"C-3": "A-far"}
    result = d.send(decision("C-4", beat="111"))
    assert types(result) == ["dispatch.queued"]
    assert d.state.queue == ["C-4"]


def test_district_comes_from_the_decision_else_from_the_roster(desk: Any) -> None:
    d = desk(team("A-one", beat="111"), team("B-two", beat="212"))
    # Beat not in the roster's map: the decision's district decides.
    assert assigned(d.send(decision("C-1", beat="999", district="D2"))) == {"C-1": "B-two"}
    d = desk(team("A-two", beat="212"), team("B-one", beat="113"))
    # No district on the decision: the roster maps beat 112 to D1.
    assert assigned(d.send(decision("C-1", beat="112", district=None))) == {"C-1": "B-one"}


def test_caller_language_within_a_tier(desk: Any) -> None:
    d = desk(team("A-en", beat="112"), team("B-es", beat="113", languages=("en", "es")))
    assert assigned(d.send(decision("C-1", beat="111", language="es-MX"))) == {"C-1": "B-es"}
    d = desk(team("A-en", beat="112"), team("B-es", beat="113", languages=("en", "es")))
    assert assigned(d.send(decision("C-1", beat="111", language="en"))) == {"C-1": "A-en"}


def test_tier_outranks_language(desk: Any) -> None:
    d = desk(team("A-en", beat="112"), team("B-es", beat="211", languages=("es",)))
    assert assigned(d.send(decision("C-1", beat="111", language="es"))) == {"C-1": "A-en"}


def test_longest_idle_then_team_id(desk: Any) -> None:
    d = desk(team("A", beat="112"), team("B", beat="113"))
    assert assigned(d.send(decision("C-1"))) == {"C-1": "A"}
    assert assigned(d.send(decision("C-2"))) == {"C-2": "B"}
    d.send(report("B", "cleared", T0 + minutes(5), call_id="C-2"), at=T0 + minutes(5))
    d.send(report("A", "cleared", T0 + minutes(9), call_id="C-1"), at=T0 + minutes(9))
    assert assigned(d.send(decision("C-3", at=T0 + minutes(10)))) == {"C-3": "B"}


def test_a_crt_call_never_gets_a_cor_pair_and_back(desk: Any) -> None:
    d = desk(team("A-cor", "cor", beat="111"), team("Z-crt", beat="311"))
    assert assigned(d.send(decision("C-1", "crt"))) == {"C-1": "Z-crt"}
    result = d.send(decision("C-2", "crt"))
    assert types(result) == ["dispatch.queued"]
    assert assigned(d.send(decision("C-3", "cor"))) == {"C-3": "A-cor"}


def test_decisions_for_other_routes_are_ignored(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    for route in ("ccd", "police"):
        result = d.send(decision("C-1", route))
        assert result.outcome == "ignored"
        assert result.events == []
    assert d.state.calls == {}


# --- never a team that is not free --------------------------------------------------------


def test_busy_and_out_of_service_teams_are_never_sent(desk: Any) -> None:
    d = desk(team("A", beat="111"), team("B", beat="112"))
    d.send(decision("C-1"))
    d.send(report("B", "out_of_service", T0))
    result = d.send(decision("C-2"))
    assert types(result) == ["dispatch.queued"]
    assert d.status("A") == ("dispatched", "C-1")
    assert d.status("B") == ("out_of_service", None)


def test_off_shift_team_is_never_sent(desk: Any) -> None:
    d = desk(team("A", beat="111"), team("B-weekend", beat="112", days=["sat", "sun"]))
    d.send(decision("C-1"))
    result = d.send(decision("C-2"))
    assert types(result) == ["dispatch.queued"]
    assert d.status("B-weekend") == ("available", None)


def test_no_team_on_shift_releases_at_once(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.now = SATURDAY
    result = d.send(decision("C-1", at=SATURDAY))
    assert types(result) == ["dispatch.fallback"]
    assert result.events[0].reason == "no_team_on_shift"
    assert d.state.queue == []


def test_no_team_of_the_kind_releases_at_once(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    result = d.send(decision("C-1", "cor"))
    assert [(e.event_type, e.reason, e.route) for e in result.events] == [
        ("dispatch.fallback", "no_team_of_kind", "cor")
    ]


def test_shift_end_releases_a_waiting_call(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    late = datetime(2024, 7, 15, 20, 25, tzinfo=UTC)  # 16:25 in Durham
    d.send(decision("C-1", at=late), at=late)
    d.send(decision("C-2", at=late), at=late)
    result = d.send(Tick(late + minutes(5)), at=late + minutes(5))
    assert [(e.call_id, e.reason) for e in result.events] == [("C-2", "no_team_on_shift")]


def test_a_team_starting_its_shift_takes_the_queue(desk: Any) -> None:
    d = desk(team("A", beat="111"), team("B-late", beat="112", start="10:30"))
    d.send(decision("C-1"))
    d.send(decision("C-2", at=T0 + minutes(25)), at=T0 + minutes(25))
    assert d.state.queue == ["C-2"]
    assert d.send(Tick(T0 + minutes(29)), at=T0 + minutes(29)).events == []
    result = d.send(Tick(T0 + minutes(30)), at=T0 + minutes(30))  # 10:30 in Durham
    assert assigned(result) == {"C-2": "B-late"}
    assert result.audit[0].cause_event_id is None  # a Tick caused it


# --- exactly one assignment per call ------------------------------------------------------


def test_redelivered_decision_assigns_nobody_else(desk: Any) -> None:
    d = desk(team("A", beat="111"), team("B", beat="112"))
    first = d.send(decision("C-1"))
    before = d.state
    again = d.send(decision("C-1"), at=T0 + minutes(1))
    assert again.outcome == "duplicate"
    assert again.events == [] and again.audit == [] and again.rejections == []
    assert again.state is before
    assert d.status("B") == ("available", None)
    assert assigned(first) == {"C-1": "A"}


def test_redelivery_after_restart_from_the_changelog(desk: Any, policy: Policy) -> None:
    d = desk(team("A", beat="111"), team("B", beat="112"))
    d.send(decision("C-1"))
    restored = AreaState.model_validate(json.loads(json.dumps(d.state.model_dump(mode="json"))))
    result = apply(restored, decision("C-1"), roster=d.roster, policy=policy, now=T0)
    assert result.outcome == "duplicate"
    assert result.state is restored


def test_superseding_decision_for_an_assigned_call_keeps_the_one_team(desk: Any) -> None:
    d = desk(team("A", beat="111"), team("B", beat="112"), team("P", "cor", beat="113"))
    d.send(decision("C-1"))
    for revision, route in ((2, "crt"), (3, "cor"), (4, "police")):
        result = d.send(
            decision(
                "C-1",
                route,
                revision=revision,
                supersedes=f"decision-C-1-{revision - 1}",
                safety_notes=f"update {revision}",
            ),
            at=T0 + minutes(revision),
        )
        assert result.outcome == "applied"
        # The team on its way hears what changed, and no other team is sent.
        assert [(e.event_type, e.team_id, e.reason, e.safety_notes) for e in result.events] == [
            ("dispatch.updated", "A", f"redecided:{route}", f"update {revision}")
        ]
    assert d.status("A") == ("dispatched", "C-1")
    assert d.status("B") == ("available", None)
    assert d.status("P") == ("available", None)
    # The latest notes travel with later events, e.g. a backup request.
    backup = d.send(report("A", "dispatched", T0 + minutes(5), backup_requested=True))
    assert backup.events[0].safety_notes == "update 4"


def test_a_call_resolved_by_phone_stands_down_its_team_before_it_arrives(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-1"))
    d.send(decision("C-2", at=T0 + minutes(1)), at=T0 + minutes(1))
    assert d.status("A") == ("dispatched", "C-1") and d.state.queue == ["C-2"]
    result = d.send(
        decision("C-1", "ccd", revision=2, supersedes="decision-C-1-1"), at=T0 + minutes(4)
    )
    # Stood down and freed: the queue's head takes the team at once.
    assert [(e.event_type, e.call_id, e.team_id, e.reason) for e in result.events] == [
        ("dispatch.cancelled", "C-1", "A", "superseded:ccd"),
        ("dispatch.assigned", "C-2", "A", None),
    ]
    assert d.status("A") == ("dispatched", "C-2")


def test_a_team_on_scene_stays_when_the_call_is_resolved_by_phone(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-1"))
    d.send(report("A", "on_scene", T0 + minutes(3)), at=T0 + minutes(3))
    result = d.send(
        decision("C-1", "ccd", revision=2, supersedes="decision-C-1-1"), at=T0 + minutes(4)
    )
    assert [(e.event_type, e.team_id, e.reason) for e in result.events] == [
        ("dispatch.updated", "A", "redecided:ccd")
    ]
    assert d.status("A") == ("on_scene", "C-1")


def test_an_older_decision_arriving_late_is_a_duplicate(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-0"))
    d.send(decision("C-1"))
    d.send(decision("C-1", "police", revision=2))
    result = d.send(decision("C-1", revision=1, event_id="decision-C-1-1-again"))
    assert result.outcome == "duplicate"


def test_superseded_queued_call_leaves_the_queue(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-0"))
    d.send(decision("C-1"))
    result = d.send(decision("C-1", "police", revision=2, supersedes="decision-C-1-1"))
    assert [(e.event_type, e.reason, event_key(e)) for e in result.events] == [
        ("dispatch.cancelled", "superseded:police", "C-1")
    ]
    assert d.state.queue == []
    cleared = d.send(report("A", "cleared", T0 + minutes(3)), at=T0 + minutes(3))
    assert assigned(cleared) == {}
    assert d.status("A") == ("available", None)


def test_superseded_queued_call_keeps_its_age_and_takes_new_priority(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-0"))
    d.send(decision("C-1", priority=3))
    d.send(decision("C-2", priority=2, at=T0 + minutes(1)), at=T0 + minutes(1))
    assert d.state.queue == ["C-2", "C-1"]
    d.send(decision("C-1", priority=1, revision=2, at=T0 + minutes(2)), at=T0 + minutes(2))
    assert d.state.queue == ["C-1", "C-2"]
    assert d.state.calls["C-1"].decided_at == T0
    # A re-decision to CoR is now served by the pair, still measured from the first decision.
    d2 = desk(team("A", beat="111"), team("P", "cor", beat="311"))
    d2.send(decision("C-0"))
    d2.send(decision("C-1"))
    result = d2.send(decision("C-1", "cor", revision=2), at=T0 + minutes(1))
    assert assigned(result) == {"C-1": "P"}
    assert result.events[0].decision_to_assignment_s == 60.0


# --- queue --------------------------------------------------------------------------------


def test_queue_order_priority_then_age_then_unprioritised(desk: Any) -> None:
    d = desk(team("A", beat="111"), team("P", "cor", beat="111"))
    d.send(decision("C-0"))
    d.send(decision("K-0", "cor"))
    d.send(decision("C-1", priority=3, at=T0 + minutes(1)), at=T0 + minutes(1))
    d.send(decision("C-2", priority=None, at=T0 + minutes(1.5)), at=T0 + minutes(2))
    d.send(decision("C-3", priority=1, at=T0 + minutes(3)), at=T0 + minutes(3))
    d.send(decision("C-4", priority=3, at=T0 + minutes(0.5)), at=T0 + minutes(4))
    d.send(decision("K-1", "cor", priority=0, at=T0 + minutes(4)), at=T0 + minutes(4))
    assert d.state.queue == ["K-1", "C-3", "C-4", "C-1", "C-2"]

    # The CRT team that clears takes the first CRT call, not the CoR call ahead of it.
    at = T0 + minutes(5)
    result = d.send(report("A", "cleared", at, call_id="C-0"), at=at)
    assert types(result) == ["dispatch.cleared", "dispatch.assigned"]
    assert assigned(result) == {"C-3": "A"}
    assert result.events[1].decision_to_assignment_s == 120.0
    assert d.state.queue == ["K-1", "C-4", "C-1", "C-2"]


def test_queued_event_carries_what_police_or_a_team_needs(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-0"))
    result = d.send(decision("C-1", language="es", interpreter="es"))
    [queued] = result.events
    assert queued.event_type == "dispatch.queued"
    assert queued.reason == "no_team_free"
    assert queued.team_id is None and event_key(queued) == "C-1"
    assert queued.service_area == AREA
    assert queued.location is not None and queued.location.address == "101 City Hall Plaza"
    assert (queued.language, queued.interpreter, queued.safety_notes) == ("es", "es", "dog in yard")
    assert "caller" not in queued.model_dump()


def test_a_team_back_in_service_takes_the_queue(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(report("A", "out_of_service", T0))
    d.send(decision("C-1"))
    result = d.send(report("A", "available", T0 + minutes(2)), at=T0 + minutes(2))
    assert assigned(result) == {"C-1": "A"}


# --- fallback -----------------------------------------------------------------------------


def test_fallback_after_the_maximum_wait(desk: Any, policy: Policy) -> None:
    assert policy.dispatch.max_queue_wait_minutes == 10
    d = desk(team("A", beat="111"))
    d.send(decision("C-0"))
    d.send(decision("C-1", at=T0 + minutes(1)), at=T0 + minutes(1))
    before = d.state
    quiet = d.send(Tick(T0 + minutes(10.99)), at=T0 + minutes(10.99))
    assert quiet.events == [] and quiet.state is before
    result = d.send(Tick(T0 + minutes(11)), at=T0 + minutes(11))
    [fallback] = result.events
    assert (fallback.event_type, fallback.reason, fallback.route) == (
        "dispatch.fallback",
        "no_team_free",
        "crt",
    )
    assert event_key(fallback) == "C-1"
    assert fallback.location is not None
    assert d.state.queue == [] and "C-1" not in d.state.calls
    released = d.finished("C-1")
    assert released is not None and (released.status, released.reason) == (
        "released",
        "no_team_free",
    )
    # Released means released: the team that clears later does not go.
    later = d.send(report("A", "cleared", T0 + minutes(12)), at=T0 + minutes(12))
    assert assigned(later) == {}
    # And a re-decision does not reopen it.
    again = d.send(decision("C-1", revision=2), at=T0 + minutes(13))
    assert again.events == []
    assert d.status("A") == ("available", None)


# --- stale calls: no team after the policy's stale_call_minutes -------------------------


def test_a_decision_arriving_stale_gets_no_team_even_a_free_one(desk: Any) -> None:
    # Dispatch was paused or down: the decision comes 12 minutes after its call.
    d = desk(team("A", beat="111"))
    result = d.send(decision("C-1", at=T0, source_occurred_at=T0), at=T0 + minutes(12))
    [fallback] = result.events
    assert (fallback.event_type, fallback.reason, fallback.route) == (
        "dispatch.fallback",
        "stale",
        "crt",
    )
    assert fallback.queue_wait_s is None, "it never waited in the queue"
    assert fallback.location is not None, "police get what a team would have"
    assert d.status("A") == ("available", None) and d.state.queue == []
    released = d.finished("C-1")
    assert released is not None and (released.status, released.reason) == ("released", "stale")
    # Its repeat is recognised, and the team is still not sent.
    again = d.send(decision("C-1", at=T0, source_occurred_at=T0), at=T0 + minutes(13))
    assert again.outcome == "duplicate" and again.events == []


@pytest.mark.parametrize(
    ("age_minutes", "assigned_to"),
    [(9.5, {"C-1": "A"}), (10, {"C-1": "A"}), (10.01, {}), (60, {})],
    ids=["fresh", "at-the-limit", "just-past", "an-hour"],
)
def test_staleness_is_judged_from_the_call_event_behind_the_decision(
    desk: Any, age_minutes: float, assigned_to: dict[str, str]
) -> None:
    # Triage decided at once; dispatch reads the decision age_minutes after the call.
    d = desk(team("A", beat="111"))
    received = T0 - minutes(age_minutes)
    result = d.send(decision("C-1", at=received, source_occurred_at=received), at=T0)
    assert assigned(result) == assigned_to
    if not assigned_to:
        assert [(e.event_type, e.reason) for e in result.events] == [("dispatch.fallback", "stale")]


def test_a_decision_made_late_by_triage_leaves_only_the_rest_of_the_limit(desk: Any) -> None:
    # Triage decided 9 minutes after the call: 2 minutes later the call is 11 minutes old.
    d = desk(team("A", beat="111"))
    late = decision("C-1", at=T0, source_occurred_at=T0 - minutes(9))
    result = d.send(late, at=T0 + minutes(2))
    assert [(e.event_type, e.reason) for e in result.events] == [("dispatch.fallback", "stale")]


def test_a_re_decision_is_judged_from_its_own_call_event(desk: Any) -> None:
    # A phone clinician asks for a team 20 minutes into the call: the update is fresh.
    d = desk(team("A", beat="111"))
    update = decision(
        "C-1", at=T0, revision=2, call_received_at=T0 - minutes(20), source_occurred_at=T0
    )
    assert assigned(d.send(update, at=T0 + minutes(1))) == {"C-1": "A"}


def test_a_queued_call_is_never_assigned_once_stale(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-0", source_occurred_at=T0))  # takes A
    d.send(decision("C-1", source_occurred_at=T0 - minutes(1)))  # waits
    # A clears when C-1 is 10.5 minutes old but has waited only 9.5: too old to send a team.
    at = T0 + minutes(9.5)
    result = d.send(report("A", "cleared", at), at=at)
    assert assigned(result) == {}
    assert [(e.event_type, e.reason) for e in result.events if e.call_id == "C-1"] == [
        ("dispatch.fallback", "no_team_free")
    ]
    assert d.status("A") == ("available", None)


def test_a_policy_with_a_shorter_stale_limit_releases_queued_calls_sooner(
    desk: Any, policy: Policy
) -> None:
    strict = policy.model_copy(
        update={"dispatch": policy.dispatch.model_copy(update={"stale_call_minutes": 5})}
    )
    d = Desk(roster(team("A", beat="111")), strict)
    d.send(decision("C-0", source_occurred_at=T0))
    d.send(decision("C-1", source_occurred_at=T0))
    assert d.send(Tick(T0 + minutes(5)), at=T0 + minutes(5)).events == []
    result = d.send(Tick(T0 + minutes(5.1)), at=T0 + minutes(5.1))
    assert [(e.call_id, e.reason) for e in result.events] == [("C-1", "no_team_free")]


def test_a_record_stored_before_staleness_was_kept_is_judged_from_its_decision(
    desk: Any,
) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-0"))
    d.send(decision("C-1", source_occurred_at=T0 - minutes(30)))
    assert d.finished("C-1") is not None, "a decision 30 minutes after its call is stale"
    d.send(decision("C-2"))
    old = d.state.model_dump(mode="json")
    del old["calls"]["C-2"]["needed_since"]
    d.state = AreaState.model_validate(old)
    at = T0 + minutes(9)
    assert assigned(d.send(report("A", "cleared", at), at=at)) == {"C-2": "A"}


# --- unit status reports ------------------------------------------------------------------


def test_full_call_timings_and_audit(desk: Any) -> None:
    d = desk(team("A", beat="111"), team("B", beat="112"))
    d.send(decision("C-0"))
    d.send(decision("C-1"))
    d.send(decision("C-9", at=T0), at=T0 + timedelta(seconds=3))
    assert d.state.queue == ["C-9"]
    events = []
    audit = []
    steps = [
        ("en_route", 1),
        ("on_scene", 8),
        ("transporting", 30),
        ("cleared", 50),
    ]
    d.send(report("A", "cleared", T0 + minutes(0.05), call_id="C-0"), at=T0 + minutes(0.05))
    assert d.status("A") == ("dispatched", "C-9")
    reports = []
    for status, minute in steps:
        r = report("A", status, T0 + minutes(minute), call_id="C-9")
        reports.append(r)
        result = d.send(r, at=T0 + minutes(minute) + timedelta(seconds=1))
        events += result.events
        audit += result.audit
    assert [e.event_type for e in events] == [
        "dispatch.en_route",
        "dispatch.on_scene",
        "dispatch.cleared",
    ]
    on_scene, cleared = events[1], events[2]
    assert on_scene.assignment_to_on_scene_s == 8 * 60 - 3
    assert on_scene.occurred_at == T0 + minutes(8)
    assert cleared.time_on_scene_s == 42 * 60
    assert all(event_key(e) == "A" for e in events)
    # Later events go to a team that already has the details.
    assert on_scene.location is None and on_scene.safety_notes is None
    assert [(a.from_status, a.to_status, a.cause, a.cause_event_id, a.call_id) for a in audit] == [
        ("dispatched", "en_route", "reported", reports[0].event_id, "C-9"),
        ("en_route", "on_scene", "reported", reports[1].event_id, "C-9"),
        ("on_scene", "transporting", "reported", reports[2].event_id, "C-9"),
        ("transporting", "cleared", "reported", reports[3].event_id, "C-9"),
        ("cleared", "available", "freed", reports[3].event_id, "C-9"),
    ]
    assert d.status("A") == ("available", None)
    done = d.finished("C-9")
    assert done is not None and (done.status, done.team_id) == ("cleared", "A")
    assert done.reports == [r.event_id for r in reports]
    assert "C-9" not in d.state.calls


def test_assignment_is_audited_with_its_decision(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    result = d.send(decision("C-1"), at=T0 + timedelta(seconds=4))
    [record] = result.audit
    assert (record.team_id, record.call_id, record.from_status, record.to_status) == (
        "A",
        "C-1",
        "available",
        "dispatched",
    )
    assert (record.cause, record.cause_event_id, record.at) == (
        "assigned",
        "decision-C-1-1",
        T0 + timedelta(seconds=4),
    )
    [event] = result.events
    assert event.decision_to_assignment_s == 4.0
    assert event.team_id == "A" and event_key(event) == "A"
    assert event.location is not None and event.safety_notes == "dog in yard"


def test_cleared_before_arrival_has_no_time_on_scene(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-1"))
    result = d.send(
        report("A", "cleared", T0 + minutes(4), followup_declined=True), at=T0 + minutes(4)
    )
    [cleared] = result.events
    assert cleared.time_on_scene_s is None
    assert cleared.followup_declined


def test_dispatched_straight_to_on_scene_is_accepted(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-1"))
    result = d.send(report("A", "on_scene", T0 + minutes(6)), at=T0 + minutes(6))
    assert types(result) == ["dispatch.on_scene"]
    assert result.events[0].assignment_to_on_scene_s == 360.0


@pytest.mark.parametrize(
    ("make_report", "reason"),
    [
        (lambda: report("NOBODY", "en_route", T0 + minutes(2)), "unknown_team"),
        (lambda: report("FAR-1", "out_of_service", T0 + minutes(2)), "unknown_team"),
        (lambda: report("A", "available", T0 + minutes(2)), "illegal_transition"),
        (lambda: report("A", "dispatched", T0 + minutes(2)), "illegal_transition"),
        (lambda: report("A", "out_of_service", T0 + minutes(2)), "illegal_transition"),
        (lambda: report("B", "on_scene", T0 + minutes(2)), "illegal_transition"),
        (lambda: report("A", "on_scene", T0 + minutes(0.5)), "stale_report"),
        (lambda: report("A", "on_scene", T0 + minutes(2), call_id="C-OLD"), "call_mismatch"),
        (
            lambda: report("B", "available", T0 + minutes(2), backup_requested=True),
            "backup_without_call",
        ),
    ],
)
def test_refused_reports_leave_state_unchanged(desk: Any, make_report: Any, reason: str) -> None:
    d = desk(team("A", beat="111"), team("B", beat="112"))
    d.send(decision("C-1"))
    d.send(report("A", "en_route", T0 + minutes(1)), at=T0 + minutes(1))
    before = d.state
    snapshot = before.model_dump(mode="json")
    result = d.send(make_report(), at=T0 + minutes(3))
    assert result.outcome == "rejected"
    assert [r.reason for r in result.rejections] == [reason]
    assert result.rejections[0].message
    assert result.events == [] and result.audit == []
    assert result.state is before
    assert before.model_dump(mode="json") == snapshot


def test_duplicate_report_is_ignored_silently(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-1"))
    en_route = report("A", "en_route", T0 + minutes(1))
    assert types(d.send(en_route, at=T0 + minutes(1))) == ["dispatch.en_route"]
    before = d.state
    again = d.send(en_route, at=T0 + minutes(2))
    assert again.outcome == "duplicate"
    assert again.rejections == [] and again.events == []
    assert again.state is before


def test_repeating_the_current_status_changes_nothing(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-1"))
    d.send(report("A", "on_scene", T0 + minutes(5)), at=T0 + minutes(5))
    result = d.send(report("A", "on_scene", T0 + minutes(6)), at=T0 + minutes(6))
    assert result.outcome == "applied"
    assert result.events == [] and result.audit == []
    assert d.state.teams["A"].last_report_at == T0 + minutes(6)


def test_backup_request_is_an_event_once_per_call(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-1"))
    first = d.send(
        report("A", "on_scene", T0 + minutes(7), backup_requested=True), at=T0 + minutes(7)
    )
    assert types(first) == ["dispatch.backup_requested", "dispatch.on_scene"]
    backup = first.events[0]
    assert (backup.team_id, backup.call_id, backup.route) == ("A", "C-1", "crt")
    assert backup.location is not None  # police need to know where to go
    assert d.state.calls["C-1"].backup_requested_at == T0 + minutes(7)
    second = d.send(
        report("A", "on_scene", T0 + minutes(8), backup_requested=True), at=T0 + minutes(8)
    )
    assert second.outcome == "applied" and second.events == []


def test_an_off_shift_team_can_still_finish_its_call(desk: Any) -> None:
    d = desk(team("A", beat="111"), team("B", beat="112"))
    late = datetime(2024, 7, 15, 20, 20, tzinfo=UTC)  # 16:20 in Durham
    d.send(decision("C-1", at=late), at=late)
    after = late + minutes(40)
    result = d.send(report("A", "cleared", after), at=after)
    assert types(result) == ["dispatch.cleared"]
    assert d.status("A") == ("available", None)


# --- determinism, persistence, memory -----------------------------------------------------


def test_replay_from_the_changelog_reemits_the_same_event_ids(desk: Any, policy: Policy) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-0"))
    d.send(decision("C-1"))
    snapshot = json.dumps(d.state.model_dump(mode="json"))
    clear = report("A", "cleared", T0 + minutes(2))
    first = d.send(clear, at=T0 + minutes(2))
    restored = AreaState.model_validate(json.loads(snapshot))
    replay = apply(restored, clear, roster=d.roster, policy=policy, now=T0 + minutes(2))
    assert [e.event_id for e in replay.events] == [e.event_id for e in first.events]
    assert replay.state == first.state
    assert len({e.event_id for e in first.events}) == 2


def test_state_round_trips_through_json(desk: Any) -> None:
    d = desk(team("A", beat="111"), team("P", "cor", beat="112"))
    d.send(decision("C-0", language="es-MX", priority=2))
    d.send(decision("C-1", priority=1))
    d.send(decision("K-1", "cor"))
    d.send(report("P", "on_scene", T0 + minutes(4), backup_requested=True), at=T0 + minutes(4))
    d.send(report("P", "cleared", T0 + minutes(9)), at=T0 + minutes(9))
    d.send(decision("K-2", "cor", at=T0 + minutes(9)))
    d.send(decision("K-3", "cor", at=T0 + minutes(9)))
    d.send(report("P", "on_scene", T0 + minutes(12)), at=T0 + minutes(12))
    wire = json.dumps(d.state.model_dump(mode="json"))
    restored = AreaState.model_validate(json.loads(wire))
    assert restored == d.state
    assert restored.calls["K-2"].on_scene_at == T0 + minutes(12)
    assert restored.calls["K-2"].decided_at.tzinfo is not None
    assert restored.queue == ["K-3"]
    finished = d.finished("K-1")
    assert finished is not None and finished.finished_at == T0 + minutes(9)


def test_finished_calls_are_forgotten_and_ancient_decisions_refused(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-1"))
    d.send(report("A", "cleared", T0 + minutes(30)), at=T0 + minutes(30))
    assert "C-1" not in d.state.calls  # finished calls leave the area at once
    d.send(Tick(T0 + minutes(30) + CALL_MEMORY), at=T0 + minutes(30) + CALL_MEMORY)
    assert d.finished("C-1") is not None
    late = T0 + minutes(31) + CALL_MEMORY
    d.send(Tick(late), at=late)
    assert d.finished("C-1") is None
    assert d.table == {"city|finished-buckets": []}  # nothing left behind
    result = d.send(decision("C-1"), at=late)
    assert [r.reason for r in result.rejections] == ["stale_decision"]
    assert d.status("A") == ("available", None)


def test_tick_without_anything_to_do_returns_the_same_state(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(Tick(T0))
    before = d.state
    assert d.send(Tick(T0 + minutes(1)), at=T0 + minutes(1)).state is before


def test_new_roster_teams_start_available(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(Tick(T0))
    assert set(d.state.teams) == {"A"}  # FAR-1 is another area's
    assert d.status("A") == ("available", None)


def test_the_durham_default_pool_dispatches(policy: Policy) -> None:
    d = Desk(load_roster(), policy, area="durham")
    spanish = d.send(decision("C-1", beat="413", district="D4", language="es"))
    assert assigned(spanish) == {"C-1": "CRT-3"}
    risky = d.send(decision("C-2", "cor", beat="214", weapon_involved=True))
    assert assigned(risky) == {"C-2": "COR-1"}


# --- open and finished calls kept apart ---------------------------------------------------


def test_a_report_replayed_after_a_crash_is_a_repeat_not_stale(desk: Any) -> None:
    # After a crash the intake re-forwards reports the area had applied; once the team has
    # moved on they are older than its last report but must not be refused as stale.
    d = desk(team("A", beat="111"), team("B", beat="311"))
    d.send(decision("C-1"))
    trail = [
        report("A", status, T0 + minutes(n), call_id="C-1")
        for status, n in (("en_route", 1), ("on_scene", 6), ("cleared", 30))
    ]
    for r in trail:
        d.send(r, at=r.occurred_at)
    d.send(decision("C-2", at=T0 + minutes(31)), at=T0 + minutes(31))
    later = [report("A", "en_route", T0 + minutes(32 + n), call_id="C-2") for n in range(20)]
    d.send(later[0], at=later[0].occurred_at)  # the team's 16 recent ids now roll over
    for r in later[1:]:
        d.send(report("A", "en_route", r.occurred_at, call_id="C-2"), at=r.occurred_at)
    before = d.state
    for r in trail:  # C-1 finished: recognised from the ledger
        replay = d.send(r, at=T0 + minutes(60))
        assert (replay.outcome, replay.rejections, replay.events) == ("duplicate", [], [])
    replay = d.send(later[0], at=T0 + minutes(60))  # C-2 open: recognised from the call
    assert (replay.outcome, replay.rejections) == ("duplicate", [])
    assert d.state is before
    # A report that was never applied is still refused when it is older.
    stale = d.send(report("A", "on_scene", T0 + minutes(2), call_id="C-1"), at=T0 + minutes(60))
    assert [r.reason for r in stale.rejections] == ["stale_report"]
    # Another team's report naming C-1 does not borrow A's history.
    other = d.send(
        report("B", "on_scene", T0 + minutes(6), call_id="C-1", event_id=trail[1].event_id),
        at=T0 + minutes(60),
    )
    assert [r.reason for r in other.rejections] == ["illegal_transition"]


def test_the_area_value_holds_only_open_calls(desk: Any) -> None:
    d = desk(team("A", beat="111"), team("B", beat="112"))
    sizes = []
    for n in range(300):
        at = T0 + minutes(n)
        d.send(decision(f"C-{n}", at=at), at=at)
        holder = "A" if d.state.teams["A"].call_id == f"C-{n}" else "B"
        d.send(report(holder, "cleared", at + minutes(0.5), call_id=f"C-{n}"), at=at)
        sizes.append(len(json.dumps(d.state.model_dump(mode="json"))))
    assert d.state.calls == {} and d.state.queue == []
    # Bounded by the teams, not by the 300 calls behind them.
    assert max(sizes[100:]) <= max(sizes[:10]) + 200
    assert all(d.finished(f"C-{n}") is not None for n in range(300))


def test_a_finished_call_is_not_reopened_and_its_repeats_are_recognised(desk: Any) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-1"))
    d.send(report("A", "cleared", T0 + minutes(20), call_id="C-1"), at=T0 + minutes(20))
    newer = d.send(decision("C-1", "cor", revision=2), at=T0 + minutes(21))
    assert (newer.outcome, newer.events, newer.audit) == ("applied", [], [])
    assert [(f.call_id, f.revision, f.status) for f in newer.finished] == [("C-1", 2, "cleared")]
    for again in (decision("C-1", "cor", revision=2), decision("C-1", revision=1)):
        assert d.send(again, at=T0 + minutes(22)).outcome == "duplicate"
    assert d.status("A") == ("available", None)


def test_apply_refuses_a_finished_record_of_another_call(desk: Any, policy: Policy) -> None:
    d = desk(team("A", beat="111"))
    d.send(decision("C-1"))
    d.send(report("A", "cleared", T0 + minutes(20), call_id="C-1"), at=T0 + minutes(20))
    record = d.finished("C-1")
    with pytest.raises(ValueError, match="not the command's call"):
        apply(d.state, decision("C-2"), roster=d.roster, policy=policy, now=T0, finished=record)
