"""The ccd stage's per-call rules: refusals with their reasons and no state change,
de-duplication, and the time on the line from engagement to the responders' arrival."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from heart.agents.ccd.calls import (
    SEEN_LIMIT,
    UNKNOWN_RESOURCE,
    CallRecord,
    arrived,
    assess,
    refusal,
)
from heart.agents.ccd.screening import INCOMPLETE, INCONSISTENT
from heart.policy.model import DEFAULT_REFERRAL_RESOURCES
from heart.schemas.ccd import (
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
)
from heart.schemas.dispatch import DispatchEvent

T0 = datetime(2024, 7, 16, 14, 0, tzinfo=UTC)
RESOURCES = frozenset(DEFAULT_REFERRAL_RESOURCES)
CALL = "C-1"
STEPS = dict.fromkeys(
    (
        "warning_signs",
        "internal_coping",
        "distraction",
        "people_for_help",
        "professionals",
        "safe_environment",
    ),
    True,
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def engaged(minute: float = 0, event_id: str | None = None) -> CcdEngaged:
    extra: dict[str, Any] = {"event_id": event_id} if event_id else {}
    return CcdEngaged(call_id=CALL, clinician_id="CL-1", occurred_at=at(minute), **extra)


def screened(**answers: Any) -> CcdScreened:
    return CcdScreened(call_id=CALL, clinician_id="CL-1", occurred_at=T0, answers=answers)


def referral(resource: str, warm: bool = True) -> CcdReferral:
    return CcdReferral(
        call_id=CALL, clinician_id="CL-1", occurred_at=T0, resource=resource, warm_handoff=warm
    )


def on_scene(minute: float, team: str = "CRT-1") -> DispatchEvent:
    return DispatchEvent(
        event_type="dispatch.on_scene",
        occurred_at=at(minute),
        call_id=CALL,
        route="crt",
        team_id=team,
    )


NO = {"q1": False, "q2": False, "q6": False}


@pytest.mark.parametrize(
    ("event", "reason", "names"),
    [
        (screened(q1=True, q2=True, q3=True, q6=False), INCOMPLETE, ["q4", "q5"]),
        (
            screened(q1=True, q2=True, q3=False, q4=False, q5=False, q6=True),
            INCOMPLETE,
            ["q6_when"],
        ),
        (screened(**NO, q4=False), INCONSISTENT, ["q4"]),
        (screened(**{**NO, "q6_when": "longer_ago"}), INCONSISTENT, ["q6_when"]),
        (referral("psychic_hotline"), UNKNOWN_RESOURCE, ["resource", *sorted(RESOURCES)]),
    ],
    ids=["q2-yes-missing-q4-q5", "q6-yes-no-when", "q4-without-q2", "when-without-q6", "resource"],
)
def test_refused_with_reason_and_detail_naming_fields_never_values(
    event: Any, reason: str, names: list[str]
) -> None:
    before = CallRecord(call_id=CALL, engaged_at=T0, seen=["e-0"])
    result = assess(before, event, RESOURCES)
    assert (result.outcome, result.reason) == ("refused", reason)
    assert result.state is before, "a refused event changes nothing"
    assert result.detail is not None
    for name in names:
        assert name in result.detail
    assert "psychic_hotline" not in result.detail, "the dead letter never quotes the value"
    assert assess(None, event, RESOURCES).state is None


@pytest.mark.parametrize(
    "event",
    [
        engaged(),
        screened(**NO),
        screened(q1=True, q2=True, q3=True, q4=True, q5=False, q6=True, q6_when="longer_ago"),
        CcdSafetyPlan(call_id=CALL, clinician_id="CL-1", occurred_at=T0, steps=STEPS),
        referral("988"),
        referral("shelter", warm=False),
        CcdDisposition(
            call_id=CALL, clinician_id="CL-1", occurred_at=T0, disposition="dispatch_crt"
        ),
    ],
    ids=lambda e: e.event_type,
)
def test_valid_events_are_counted_once(event: Any) -> None:
    assert refusal(event, RESOURCES) is None
    first = assess(None, event, RESOURCES)
    assert first.outcome == "counted"
    assert first.state is not None and first.state.seen == [event.event_id]
    again = assess(first.state, event, RESOURCES)
    assert (again.outcome, again.state) == ("duplicate", first.state)


@pytest.mark.parametrize(
    ("answers", "level"),
    [
        (NO, "none"),
        ({"q1": True, "q2": False, "q6": False}, "low"),
        ({"q1": True, "q2": True, "q3": True, "q4": False, "q5": False, "q6": False}, "moderate"),
        ({"q1": True, "q2": True, "q3": True, "q4": False, "q5": True, "q6": False}, "high"),
        ({**NO, "q6": True, "q6_when": "past_3_months"}, "high"),
    ],
)
def test_a_scored_screening_carries_its_risk_level(answers: dict[str, Any], level: str) -> None:
    assert assess(None, screened(**answers), RESOURCES).risk_level == level


def test_seen_ids_are_bounded() -> None:
    state = None
    for i in range(SEEN_LIMIT + 5):
        state = assess(state, engaged(event_id=f"e-{i}"), RESOURCES).state
    assert state is not None
    assert state.seen == [f"e-{i}" for i in range(5, SEEN_LIMIT + 5)]


def test_a_call_counts_as_engaged_once_and_keeps_its_earliest_engagement() -> None:
    first = assess(None, engaged(5), RESOURCES)
    second = assess(first.state, engaged(2), RESOURCES)
    third = assess(second.state, engaged(9), RESOURCES)
    assert [r.first_engagement for r in (first, second, third)] == [True, False, False]
    assert third.state is not None and third.state.engaged_at == at(2)


# Time on the line: (events in the order handled, seconds measured by each).
ON_LINE = {
    "engaged then arrived": ([engaged(0), on_scene(7)], [None, 420.0]),
    "arrival handled first": ([on_scene(7), engaged(0)], [None, 420.0]),
    "backup team and redelivery measured once": (
        [engaged(0), on_scene(7), on_scene(9, "CRT-2"), on_scene(7)],
        [None, 420.0, None, None],
    ),
    "clinician joined after the arrival": ([on_scene(3), engaged(5)], [None, None]),
    "second clinician after the measurement": (
        [engaged(1), on_scene(4), engaged(0, "late")],
        [None, 180.0, None],
    ),
    "no responders (resolved by phone)": ([engaged(0)], [None]),
    "responders without a clinician": ([on_scene(3)], [None]),
}


@pytest.mark.parametrize("name", list(ON_LINE))
def test_time_on_the_line_is_measured_once_per_call(name: str) -> None:
    events, expected = ON_LINE[name]
    state: CallRecord | None = None
    measured: list[float | None] = []
    for event in events:
        if isinstance(event, DispatchEvent):
            state, seconds = arrived(state, event)
        else:
            result = assess(state, event, RESOURCES)
            state, seconds = result.state, result.on_line_s
        measured.append(seconds)
    assert measured == expected


def test_a_repeated_arrival_returns_the_same_record() -> None:
    state, _ = arrived(None, on_scene(3))
    again, seconds = arrived(state, on_scene(3))
    assert again is state and seconds is None
