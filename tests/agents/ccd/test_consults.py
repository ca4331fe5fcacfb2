"""The consult queue: order by urgency then age, overdue once past the policy's target,
and the events it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from heart.agents.ccd.consults import (
    ANSWERED_AFTER_CLOSE,
    ANSWERED_TWICE,
    CLOSED_TWICE,
    DETAILS,
    REQUESTED_TWICE,
    UNKNOWN_CONSULT,
    Consult,
    overdue,
    queue,
    step,
)
from heart.policy.model import ConsultTargets
from heart.schemas.ccd import ConsultAnswered, ConsultClosed, ConsultRequested, Urgency

T0 = datetime(2024, 7, 16, 14, 0, tzinfo=UTC)
TARGETS = ConsultTargets()  # urgent 2, soon 10, routine 30 minutes


def requested(consult_id: str, urgency: Urgency, minute: float = 0) -> ConsultRequested:
    return ConsultRequested(
        consult_id=consult_id,
        requested_by="dispatcher",
        call_id=f"C-{consult_id}",
        urgency=urgency,
        occurred_at=T0 + timedelta(minutes=minute),
    )


def opened(consult_id: str, urgency: Urgency, minute: float = 0) -> Consult:
    state = step(None, requested(consult_id, urgency, minute)).state
    assert state is not None
    return state


def answered(consult_id: str, minute: float = 1) -> ConsultAnswered:
    return ConsultAnswered(
        consult_id=consult_id, clinician_id="CL-7", occurred_at=T0 + timedelta(minutes=minute)
    )


def closed(consult_id: str, minute: float = 5) -> ConsultClosed:
    return ConsultClosed(
        consult_id=consult_id, clinician_id="CL-7", occurred_at=T0 + timedelta(minutes=minute)
    )


def test_queue_orders_by_urgency_then_age() -> None:
    consults = [
        opened("r-old", "routine", 0),
        opened("s-new", "soon", 4),
        opened("u-new", "urgent", 3),
        opened("s-old", "soon", 1),
        opened("u-old", "urgent", 2),
        opened("r-new", "routine", 5),
    ]
    assert [c.consult_id for c in queue(consults)] == [
        "u-old",
        "u-new",
        "s-old",
        "s-new",
        "r-old",
        "r-new",
    ]


def test_same_age_and_urgency_queue_by_id_whatever_the_input_order() -> None:
    a, b = opened("A", "soon"), opened("B", "soon")
    assert queue([b, a]) == queue([a, b]) == [a, b]


def test_answered_and_closed_consults_leave_the_queue() -> None:
    first = opened("1", "urgent")
    answered_state = step(first, answered("1")).state
    closed_state = step(opened("2", "urgent"), closed("2")).state
    waiting = opened("3", "routine")
    assert queue([answered_state, closed_state, waiting]) == [waiting]  # type: ignore[list-item]


@pytest.mark.parametrize(("urgency", "target"), [("urgent", 2), ("soon", 10), ("routine", 30)])
def test_overdue_only_past_the_target(urgency: Urgency, target: int) -> None:
    consult = opened("1", urgency)
    assert overdue([consult], T0 + timedelta(minutes=target), TARGETS) == []
    late = T0 + timedelta(minutes=target, seconds=1)
    ((marked, notice),) = overdue([consult], late, TARGETS)
    assert marked.overdue_sent and marked.consult_id == "1"
    assert notice.event_type == "consult.overdue"
    assert (notice.urgency, notice.requested_by, notice.call_id) == (urgency, "dispatcher", "C-1")
    assert notice.requested_at == T0 and notice.due_at == T0 + timedelta(minutes=target)
    assert notice.occurred_at == late


def test_overdue_is_sent_once() -> None:
    consult = opened("1", "urgent")
    ((marked, notice),) = overdue([consult], T0 + timedelta(minutes=3), TARGETS)
    assert overdue([marked], T0 + timedelta(minutes=60), TARGETS) == []
    # Computed again from the unmarked state (a crash before the mark was kept), the
    # notice is the same event: consumers drop the repeat.
    ((_, again),) = overdue([consult], T0 + timedelta(minutes=4), TARGETS)
    assert again.event_id == notice.event_id


def test_an_answered_consult_is_never_overdue() -> None:
    state = step(opened("1", "urgent"), answered("1", minute=1.5)).state
    assert overdue([state], T0 + timedelta(minutes=60), TARGETS) == []  # type: ignore[list-item]


def test_overdue_follows_the_policy_targets() -> None:
    consult = opened("1", "urgent")
    assert overdue([consult], T0 + timedelta(minutes=3), ConsultTargets(urgent=5)) == []


def test_overdue_notices_come_in_queue_order() -> None:
    consults = [opened("r", "routine"), opened("u", "urgent", 1), opened("s", "soon")]
    notices = overdue(consults, T0 + timedelta(hours=1), TARGETS)
    assert [n.consult_id for _, n in notices] == ["u", "s", "r"]


def test_answered_twice_is_refused_and_changes_nothing() -> None:
    state = step(opened("1", "urgent"), answered("1")).state
    second = step(state, answered("1", minute=2))
    assert (second.outcome, second.reason, second.state) == ("refused", ANSWERED_TWICE, state)


def test_the_same_answer_redelivered_is_a_duplicate_not_an_error() -> None:
    event = answered("1")
    state = step(opened("1", "urgent"), event).state
    again = step(state, event)
    assert (again.outcome, again.reason, again.state) == ("duplicate", None, state)


def test_a_request_redelivered_is_a_duplicate_and_a_second_request_refused() -> None:
    event = requested("1", "urgent")
    state = step(None, event).state
    assert step(state, event).outcome == "duplicate"
    refused = step(state, requested("1", "routine"))
    assert (refused.outcome, refused.reason, refused.state) == ("refused", REQUESTED_TWICE, state)


def test_events_for_an_unknown_consult_are_refused() -> None:
    for event in (answered("9"), closed("9")):
        result = step(None, event)
        assert (result.outcome, result.reason, result.state) == ("refused", UNKNOWN_CONSULT, None)


def test_close_then_answer_and_close_twice_are_refused() -> None:
    close = closed("1")
    state = step(opened("1", "soon"), close).state
    assert step(state, answered("1", minute=6)).reason == ANSWERED_AFTER_CLOSE
    assert step(state, closed("1", minute=7)).reason == CLOSED_TWICE
    assert step(state, close).outcome == "duplicate"


def test_answer_then_close() -> None:
    state = step(opened("1", "soon"), answered("1")).state
    result = step(state, closed("1"))
    assert result.outcome == "closed" and result.state is not None
    assert result.state.answered_at == T0 + timedelta(minutes=1)
    assert result.state.closed_at == T0 + timedelta(minutes=5)


def test_consult_state_survives_serialisation() -> None:
    # The stage keeps it in a changelog-backed table: what is written must read back.
    state = step(opened("1", "urgent"), answered("1")).state
    assert state is not None
    assert Consult.model_validate_json(state.model_dump_json()) == state


# What the stage's timers and metrics read off a consult.
# (urgency, answered after minutes or None, closed, overdue sent) -> pending_at in minutes.
PENDING = [
    ("urgent", None, False, False, 2),
    ("routine", None, False, False, 30),
    ("urgent", 1.0, False, False, None),
    ("urgent", None, True, False, None),
    ("urgent", None, False, True, None),
]


@pytest.mark.parametrize(("urgency", "answer", "close", "sent", "pending"), PENDING)
def test_pending_at_is_the_target_while_a_notice_may_still_be_due(
    urgency: Urgency, answer: float | None, close: bool, sent: bool, pending: float | None
) -> None:
    state = opened("1", urgency)
    if answer is not None:
        state = step(state, answered("1", minute=answer)).state  # type: ignore[assignment]
    if close:
        state = step(state, closed("1")).state  # type: ignore[assignment]
    if sent:
        state = state.model_copy(update={"overdue_sent": True})
    expected = None if pending is None else T0 + timedelta(minutes=pending)
    assert state.pending_at(TARGETS) == expected


@pytest.mark.parametrize(
    ("urgency", "minute", "within"),
    [("urgent", 1.5, True), ("urgent", 2, True), ("urgent", 2.5, False), ("soon", 9, True)],
)
def test_wait_and_whether_within_target(urgency: Urgency, minute: float, within: bool) -> None:
    state = step(opened("1", urgency), answered("1", minute=minute)).state
    assert state is not None
    assert state.wait(TARGETS) == (minute * 60, within)
    assert opened("2", urgency).wait(TARGETS) is None


def test_every_refusal_has_a_detail_naming_the_field() -> None:
    reasons = {UNKNOWN_CONSULT, REQUESTED_TWICE, ANSWERED_TWICE, CLOSED_TWICE, ANSWERED_AFTER_CLOSE}
    assert set(DETAILS) == reasons
    assert all(detail.startswith("consult_id: ") for detail in DETAILS.values())
