"""A clinician's disposition applied to a call's triage state (pure transitions)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from heart.agents.triage.dispositions import after_close, apply, in_force
from heart.agents.triage.state import CallState, step
from heart.policy import load_policy
from heart.schemas import CallClosed, CallUpdated
from heart.schemas.ccd import CcdDisposition, Disposition
from tests.factories import T0, call_received

POLICY = load_policy()
MINUTE = timedelta(minutes=1)


def decided(call_id: str, *, in_person: bool) -> CallState:
    call = call_received(
        call_id=call_id, call_type="Mental Health Crisis", needs_in_person=in_person
    )
    state = step(None, call, POLICY, T0).state
    assert state is not None
    return state


def disposition(
    call_id: str, value: Disposition, *, at: timedelta = 5 * MINUTE, event_id: str = ""
) -> CcdDisposition:
    return CcdDisposition(
        call_id=call_id,
        clinician_id="CL-101",
        disposition=value,
        occurred_at=T0 + at,
        event_id=event_id or f"d-{call_id}-{value}",
    )


def test_a_phone_call_the_clinician_sends_a_team_to_is_redecided_for_crt() -> None:
    state = decided("D-1", in_person=False)
    assert state.route == "ccd"
    done = apply(state, disposition("D-1", "dispatch_crt"), POLICY, T0 + 5 * MINUTE)
    assert done.outcome == "applied" and done.decision is not None
    d = done.decision
    assert (d.route, d.rules_route, d.revision, d.supersedes) == (
        "crt",
        "ccd",
        2,
        state.decision_id,
    )
    assert d.reasons[:2] == ["clinician_disposition", "disposition:dispatch_crt"]
    assert d.source_occurred_at == T0 + 5 * MINUTE  # dispatch judges staleness from here
    assert done.closure is None and done.superseded_route == "ccd"
    assert done.state is not None and done.state.route == "crt" and done.state.revision == 2


def test_resolved_by_phone_ends_the_contact_once_and_the_cad_close_sends_no_second() -> None:
    state = decided("D-2", in_person=True)
    assert state.route == "crt"
    done = apply(state, disposition("D-2", "resolved_by_phone"), POLICY, T0 + 5 * MINUTE)
    assert done.decision is not None and done.decision.route == "ccd"
    assert done.decision.rules_route == "crt"
    assert done.closure is not None
    assert (done.closure.route, done.closure.decision_id) == ("ccd", done.decision.event_id)
    assert done.closure.disposition == "resolved_by_phone"
    assert done.state is not None and done.state.closure_sent
    close = CallClosed(call_id="D-2", occurred_at=T0 + 9 * MINUTE, event_id="close-D-2")
    closed = step(done.state, close, POLICY, T0 + 9 * MINUTE)
    assert closed.outcome == "closed" and closed.closure is None
    assert closed.closed is not None and closed.closed.closure_sent


def test_a_close_first_ends_the_contact_and_a_later_resolved_by_phone_sends_nothing() -> None:
    state = decided("D-3", in_person=False)
    close = CallClosed(call_id="D-3", occurred_at=T0 + 9 * MINUTE, event_id="close-D-3")
    closed = step(state, close, POLICY, T0 + 9 * MINUTE)
    assert closed.closure is not None and closed.closed is not None
    late = after_close(closed.closed, disposition("D-3", "resolved_by_phone", at=12 * MINUTE))
    assert (late.outcome, late.closure, late.decision) == ("after_close", None, None)


def test_resolved_by_phone_after_the_close_of_a_team_call_still_starts_the_follow_up() -> None:
    state = decided("D-4", in_person=True)
    close = CallClosed(call_id="D-4", occurred_at=T0 + 9 * MINUTE, event_id="close-D-4")
    closed = step(state, close, POLICY, T0 + 9 * MINUTE)
    assert closed.closure is None and closed.closed is not None
    late = after_close(closed.closed, disposition("D-4", "resolved_by_phone", at=12 * MINUTE))
    assert late.closure is not None and late.closure.route == "ccd"
    assert late.closed is not None and late.closed.closure_sent
    again = after_close(late.closed, disposition("D-4", "resolved_by_phone", at=12 * MINUTE))
    assert (again.outcome, again.closure) == ("duplicate", None)


def test_a_team_asked_for_outside_its_hours_goes_to_police_and_counts_as_missed() -> None:
    state = decided("D-5", in_person=False)
    # 17:30 in Durham: CRT's hours end at 16:30.
    late = 7 * timedelta(hours=1) + 30 * MINUTE
    done = apply(state, disposition("D-5", "dispatch_crt", at=late), POLICY, T0 + late)
    assert done.decision is not None
    assert (done.decision.route, done.decision.rules_route) == ("police", "ccd")
    assert "crt_ineligible:outside_hours" in done.decision.reasons
    assert done.newly_missed == (("crt", "outside_hours"),)


def test_a_disposition_judged_too_late_sends_no_team() -> None:
    state = decided("D-6", in_person=False)
    when = T0 + 5 * MINUTE
    reference = when + timedelta(minutes=POLICY.dispatch.stale_call_minutes + 1)
    done = apply(state, disposition("D-6", "dispatch_crt"), POLICY, reference, reference)
    assert done.decision is not None and done.decision.route == "police"
    assert done.decision.reasons[-1] == "stale"
    assert done.newly_missed == (("crt", "stale"),)
    assert done.state is not None and done.state.stale


def test_a_redelivered_disposition_changes_nothing_and_makes_the_same_events() -> None:
    state = decided("D-7", in_person=True)
    event = disposition("D-7", "resolved_by_phone")
    done = apply(state, event, POLICY, T0 + 5 * MINUTE)
    assert done.state is not None
    again = apply(done.state, event, POLICY, T0 + timedelta(hours=2))
    assert (again.outcome, again.state) == ("duplicate", done.state)
    assert (again.decision, again.closure) == (done.decision, done.closure)


def test_a_cad_update_after_a_disposition_keeps_the_clinicians_route() -> None:
    state = decided("D-8", in_person=True)
    done = apply(state, disposition("D-8", "resolved_by_phone"), POLICY, T0 + 5 * MINUTE)
    assert done.state is not None
    update = CallUpdated(call_id="D-8", occurred_at=T0 + 6 * MINUTE, beat="214", event_id="u-8")
    later = step(done.state, update, POLICY, T0 + 6 * MINUTE)
    assert later.decision is not None and later.state is not None
    d = later.decision
    assert (d.route, d.rules_route, d.revision) == ("ccd", "crt", 3)
    assert d.supersedes == done.state.decision_id and d.source_event_id == "u-8"
    assert "clinician_disposition" in d.reasons
    assert later.state.disposition is not None and later.state.closure_sent
    # Redelivered, the update sends the same decision again.
    assert step(later.state, update, POLICY, T0 + timedelta(hours=1)).decision == d


@pytest.mark.parametrize(
    ("value", "route"),
    [
        ("resolved_by_phone", "ccd"),
        ("transferred_988", "ccd"),
        ("dispatch_crt", "crt"),
        ("police_needed", "police"),
        ("ems_needed", "police"),
        ("disconnected", "crt"),
    ],
)
def test_each_disposition_on_a_team_call_in_hours(value: Disposition, route: str) -> None:
    state = decided(f"D-9-{value}", in_person=True)
    done = apply(state, disposition(state.call.call_id, value), POLICY, T0 + 5 * MINUTE)
    assert done.decision is not None and done.decision.route == route
    assert in_force(done.state, POLICY) == done.decision  # type: ignore[arg-type]
