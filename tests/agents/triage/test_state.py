"""Per-call triage state: de-duplication, supersession, and the closure of a phone call."""

from __future__ import annotations

from datetime import timedelta

from heart.agents.triage.state import step
from heart.policy import load_policy
from heart.schemas import CallClosed, CallUpdated
from tests.factories import T0, call_received

POLICY = load_policy()


def test_a_redelivered_call_is_a_duplicate_and_an_update_supersedes() -> None:
    call = call_received(call_id="S-1", call_type="Mental Health Crisis")
    first = step(None, call, POLICY, T0)
    assert first.outcome == "decided" and first.decision is not None
    assert step(first.state, call, POLICY, T0).outcome == "duplicate"
    update = CallUpdated(call_id="S-1", occurred_at=T0, weapon_involved=True)
    second = step(first.state, update, POLICY, T0)
    assert second.outcome == "redecided" and second.decision is not None
    assert (second.decision.revision, second.decision.supersedes) == (2, first.decision.event_id)


def test_a_redelivery_of_the_event_behind_the_decision_sends_that_decision_again() -> None:
    # The state may have been written and the decision lost in a crash: the redelivery is
    # the one chance to send it, identical, so that consumers drop it if it had arrived.
    call = call_received(call_id="S-9", call_type="Mental Health Crisis")
    first = step(None, call, POLICY, T0)
    again = step(first.state, call, POLICY, T0 + timedelta(hours=3))
    assert (again.outcome, again.state) == ("duplicate", first.state)
    assert again.decision == first.decision
    update = CallUpdated(call_id="S-9", occurred_at=T0, weapon_involved=True, event_id="u-9")
    second = step(first.state, update, POLICY, T0 + timedelta(minutes=5))
    assert second.decision is not None and second.decision.revision == 2
    redelivered = step(second.state, update, POLICY, T0 + timedelta(hours=3))
    assert redelivered.decision == second.decision
    # The original call's event is no longer behind the current decision: nothing to send.
    assert step(second.state, call, POLICY, T0).decision is None


def test_no_decision_is_sent_again_for_a_new_event_or_a_state_that_lacks_its_time() -> None:
    call = call_received(call_id="S-10", call_type="Mental Health Crisis")
    first = step(None, call, POLICY, T0)
    assert first.state is not None
    # The CAD sends the same call again under a new event id, nothing changed.
    same = call.model_copy(update={"event_id": "other-id"})
    assert step(first.state, same, POLICY, T0).decision is None
    # A state written before the decision's time was kept cannot remake it identically.
    old = first.state.model_copy(update={"decided_at": None})
    assert step(old, call, POLICY, T0).decision is None


def test_closing_a_phone_resolved_call_yields_one_closure_with_a_stable_id() -> None:
    call = call_received(call_id="S-2", call_type="Mental Health Crisis", needs_in_person=False)
    decided = step(None, call, POLICY, T0)
    assert decided.decision is not None and decided.decision.route == "ccd"
    close = CallClosed(call_id="S-2", occurred_at=T0 + timedelta(minutes=9), event_id="c-2")
    closed = step(decided.state, close, POLICY, T0)
    assert (closed.outcome, closed.state) == ("closed", None)
    assert closed.closure is not None
    assert (closed.closure.route, closed.closure.decision_id) == ("ccd", decided.decision.event_id)
    assert closed.closure.occurred_at == close.occurred_at
    # Re-derived after a crash, the closure keeps its id.
    assert step(decided.state, close, POLICY, T0).closure == closed.closure


def test_other_routes_and_unknown_calls_give_no_closure() -> None:
    team = step(None, call_received(call_id="S-3", call_type="Mental Health Crisis"), POLICY, T0)
    assert team.decision is not None and team.decision.route == "crt"
    close = CallClosed(call_id="S-3", occurred_at=T0)
    assert step(team.state, close, POLICY, T0).closure is None
    unknown = step(None, CallClosed(call_id="S-404", occurred_at=T0), POLICY, T0)
    assert (unknown.outcome, unknown.closure) == ("unknown_call", None)
