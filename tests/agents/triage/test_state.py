"""Per-call triage state: de-duplication, supersession, and the closure of a phone call."""

from __future__ import annotations

from datetime import timedelta

from agents.triage.state import step
from policy import load_policy
from schemas import CallClosed, CallUpdated
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
