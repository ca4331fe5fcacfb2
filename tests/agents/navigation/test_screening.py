"""A ``high`` C-SSRS screening shortens a call's follow-up deadline, when the policy says so;
and a contact reported twice by different events schedules one follow-up."""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from heart.agents.navigation.agent import wanted_screening
from heart.agents.navigation.cases import (
    Case,
    Contact,
    advance,
    contact_from_closure,
    on_outcome,
    on_screening,
    schedule,
    skip_reason,
)
from heart.policy import Policy, default_policy_path
from heart.policy.model import parse_policy
from heart.schemas.followup import FollowupOutcome, FollowupOverdue
from heart.schemas.triage import TriageClosure

DURHAM = ZoneInfo("America/New_York")
TUESDAY_10 = datetime(2024, 7, 16, 10, tzinfo=DURHAM)
FRIDAY_15 = datetime(2024, 7, 19, 15, tzinfo=DURHAM)
SATURDAY_22 = datetime(2024, 7, 20, 22, tzinfo=DURHAM)


def policy(high_risk_hours: int | None) -> Policy:
    data = tomllib.loads(default_policy_path().read_text(encoding="utf-8"))
    if high_risk_hours is not None:
        data["ccd"] = {"high_risk_followup_within_hours": high_risk_hours}
    return parse_policy(data, source="test")


SHORTER = policy(24)
DEFAULT = policy(None)


def contact(ended_at: datetime = TUESDAY_10, **extra: Any) -> Contact:
    return Contact(
        call_id="C-1", pilot="ccd", ended_at=ended_at, source_event_id="close-C-1", **extra
    )


def scheduled(rules: Policy, ended_at: datetime = TUESDAY_10) -> Case:
    case, _ = schedule(contact(ended_at), rules, ended_at)
    assert case is not None
    return case


# --- a screening before the contact ---------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "risk", "ended_at", "hours", "at_risk"),
    [
        (SHORTER, "high", TUESDAY_10, 24, False),
        (SHORTER, "high", FRIDAY_15, 24, True),  # deadline Saturday 15:00
        (SHORTER, "moderate", TUESDAY_10, 48, False),
        (SHORTER, "low", TUESDAY_10, 48, False),
        (SHORTER, None, TUESDAY_10, 48, False),
        (DEFAULT, "high", TUESDAY_10, 48, False),  # not set: everyone's 48 hours
    ],
)
def test_a_screening_before_the_contact_sets_the_deadline_it_is_scheduled_with(
    rules: Policy, risk: Any, ended_at: datetime, hours: int, at_risk: bool
) -> None:
    case, event = schedule(contact(ended_at), rules, ended_at, risk_level=risk)
    assert case is not None and event is not None
    assert case.deadline == ended_at + timedelta(hours=hours)
    assert (event.deadline, event.at_risk) == (case.deadline, at_risk)
    assert case.at_risk is at_risk
    assert case.risk_level == risk


# --- a screening after the contact ----------------------------------------------------------


def _released(case: Case) -> Case:
    return advance(case, case.release_at)[0]


def _retried(case: Case) -> Case:
    released = _released(case)
    at = released.release_at + timedelta(minutes=10)
    out = FollowupOutcome(case_id="C-1", outcome="unable_to_reach", occurred_at=at, event_id="o1")
    retry, _ = on_outcome(released, out, SHORTER, at)
    assert retry is not None and retry.status == "scheduled" and retry.attempt == 2
    return retry


def _completed(case: Case) -> Case:
    at = case.release_at + timedelta(minutes=10)
    out = FollowupOutcome(case_id="C-1", outcome="reached", occurred_at=at, event_id="o2")
    done, _ = on_outcome(case, out, SHORTER, at)
    assert done is not None and not done.is_open
    return done


@pytest.mark.parametrize(
    ("name", "ended_at", "state", "rules", "risk", "moved"),
    [
        # Saturday night: released Monday 08:30, so the case still waits for its task.
        ("waiting, high, 24 h set", SATURDAY_22, lambda c: c, SHORTER, "high", True),
        ("waiting, high, not set", SATURDAY_22, lambda c: c, DEFAULT, "high", False),
        ("waiting, moderate", SATURDAY_22, lambda c: c, SHORTER, "moderate", False),
        ("waiting, none", SATURDAY_22, lambda c: c, SHORTER, "none", False),
        ("task already released", TUESDAY_10, _released, SHORTER, "high", False),
        ("retry scheduled", TUESDAY_10, _retried, SHORTER, "high", False),
        ("completed", TUESDAY_10, _completed, SHORTER, "high", False),
    ],
)
def test_a_screening_after_the_contact_moves_only_a_waiting_deadline(
    name: str, ended_at: datetime, state: Any, rules: Policy, risk: Any, moved: bool
) -> None:
    case = state(scheduled(rules, ended_at))
    now = ended_at + timedelta(hours=1)
    updated, event = on_screening(case, risk, rules, now)
    if not moved:
        assert (updated, event) == (case, None), name
        return
    assert updated.deadline == ended_at + timedelta(hours=24)
    assert updated.risk_level == "high"
    # Sunday 22:00 is before anyone is on duty: no staffed minute left, at risk.
    assert (updated.staffed_minutes_to_deadline, updated.at_risk) == (0, True)
    assert event is not None
    assert (event.case_id, event.deadline, event.at_risk) == ("C-1", updated.deadline, True)
    assert event.event_id != case.schedule_event_id
    assert event.release_at == case.release_at and event.occurred_at == now
    # The same screening applied again (redelivered, or recomputed after a crash) moves
    # nothing more and would carry the same id.
    assert on_screening(updated, risk, rules, now) == (updated, None)
    again, same = on_screening(case, risk, rules, now)
    assert (again, same) == (updated, event)


def test_a_shortened_deadline_raises_overdue_at_the_new_time_with_the_first_schedules_ids() -> None:
    case = scheduled(SHORTER, SATURDAY_22)
    shortened, _ = on_screening(case, "high", SHORTER, SATURDAY_22 + timedelta(hours=1))
    sunday_22 = SATURDAY_22 + timedelta(hours=24)
    assert advance(shortened, sunday_22 - timedelta(minutes=1)) == (shortened, [])
    _, events = advance(shortened, sunday_22)
    [overdue] = events
    assert isinstance(overdue, FollowupOverdue)
    assert overdue.deadline == sunday_22
    _, unchanged = advance(case, SATURDAY_22 + timedelta(hours=48))
    assert [e.event_id for e in unchanged if isinstance(e, FollowupOverdue)] == [overdue.event_id]


def test_an_overdue_case_keeps_its_deadline() -> None:
    case = scheduled(SHORTER, SATURDAY_22)
    overdue, events = advance(case, SATURDAY_22 + timedelta(hours=49))
    assert overdue.overdue and events
    assert on_screening(overdue, "high", SHORTER, SATURDAY_22 + timedelta(hours=50)) == (
        overdue,
        None,
    )


# --- which events of ccd.assessments the stage reads ----------------------------------------


def _screened(**answers: Any) -> dict[str, Any]:
    return {
        "event_type": "ccd.screened",
        "event_id": "s-1",
        "occurred_at": "2024-07-16T14:00:00+00:00",
        "call_id": "C-1",
        "clinician_id": "clin-7",
        "answers": {"q1": True, "q2": True, "q6": False, **answers},
    }


@pytest.mark.parametrize(
    ("data", "wanted"),
    [
        (_screened(q3=True, q4=True, q5=False), True),
        (_screened(q3=False, q4=False, q5=False), True),
        (_screened(q3=True), False),  # incomplete: the ccd stage dead-letters it
        ({**_screened(q3=True, q4=True, q5=False), "narrative": "x"}, False),  # invalid
        ({**_screened(q3=True, q4=True, q5=False), "call_id": ""}, False),
        ({"event_type": "ccd.engaged", "call_id": "C-1", "clinician_id": "clin-7"}, False),
        ({"event_type": "ccd.disposition", "call_id": "C-1"}, False),
        ({}, False),
    ],
)
def test_the_stage_reads_only_screenings_it_can_score(data: dict[str, Any], wanted: bool) -> None:
    assert wanted_screening(data) is wanted


# --- a contact reported twice -----------------------------------------------------------------


def _closure(source_event_id: str, minutes: int) -> TriageClosure:
    return TriageClosure(
        call_id="C-1",
        occurred_at=TUESDAY_10 + timedelta(minutes=minutes),
        route="ccd",
        revision=2,
        decision_id="d-2",
        source_event_id=source_event_id,
        event_id=f"closure-{source_event_id}",
    )


@pytest.mark.parametrize(
    "order",
    [
        ("disposition-resolved_by_phone", "cad-close"),
        ("cad-close", "disposition-resolved_by_phone"),
    ],
)
def test_a_second_contact_with_another_event_id_schedules_nothing(order: tuple[str, str]) -> None:
    first, second = (contact_from_closure(_closure(e, i * 5)) for i, e in enumerate(order))
    assert first.source_event_id != second.source_event_id
    case, event = schedule(first, SHORTER, first.ended_at)
    assert case is not None and event is not None
    assert case.source_event_id == order[0]
    assert skip_reason(second, SHORTER, case) == "duplicate"
    assert schedule(second, SHORTER, second.ended_at, case) == (None, None)
    assert schedule(second, SHORTER, second.ended_at, case, risk_level="high") == (None, None)
