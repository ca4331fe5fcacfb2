"""Bug 8: a triage call's table value carries the stamp its expiry is judged by."""

from __future__ import annotations

from datetime import timedelta

from heart.agents.triage.state import CallState, step
from heart.policy import load_policy
from heart.schemas import CallUpdated
from heart.streams import expiry
from tests.factories import T0, call_received

POLICY = load_policy()
HOUR = timedelta(hours=1)


def stored_after(*events, partition: int = 2) -> tuple[CallState, dict]:
    state = None
    for event in events:
        state = step(state, event, POLICY, event.occurred_at).state
    assert state is not None
    value = expiry.stamped(
        state.model_dump(mode="json"), partition=partition, touched=events[-1].occurred_at
    )
    return state, value


def test_a_stamped_value_reads_back_as_the_same_call_state() -> None:
    state, value = stored_after(call_received(call_id="C-1"))
    assert CallState.model_validate(value) == state
    assert value["call"]["caller"] is None and "Jordan" not in str(value)


def test_a_call_is_judged_by_its_last_event_not_its_first() -> None:
    received = call_received(call_id="C-1", occurred_at=T0)
    update = CallUpdated(call_id="C-1", occurred_at=T0 + 10 * HOUR, weapon_involved=True)
    _, updated = stored_after(received, update)
    _, untouched = stored_after(call_received(call_id="C-2", occurred_at=T0))
    items = [("C-1", updated), ("C-2", untouched)]
    horizon = T0 + 13 * HOUR - 12 * HOUR
    assert expiry.expired(items, partitions={2}, before=horizon, limit=10) == [("C-2", 2)]
