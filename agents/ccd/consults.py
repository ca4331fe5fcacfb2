"""The consult queue as pure transitions: a consult's state, one event at a time.

A consult is asked by a dispatcher or responders (``consult.requested``), answered by a
clinician (``consult.answered``) and closed (``consult.closed``). Unanswered consults wait
in a queue ordered by urgency, then age (oldest first), then id, so that the same consults
always queue the same way. One still unanswered past its urgency's target (the policy's
``[ccd.consult_targets]``) is overdue: :func:`overdue` says so once per consult.

Redelivery is not an error: an event whose ``event_id`` the consult already holds changes
nothing and is not dead-lettered. A second, different answer (or request, or close) is:
:attr:`ConsultStep.reason` names it, and the state is unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from heart.agents.ids import uuid5_hex
from heart.policy.model import ConsultTargets
from heart.schemas.ccd import (
    URGENCIES,
    ConsultAnswered,
    ConsultClosed,
    ConsultOverdue,
    ConsultRequested,
    Requester,
    Urgency,
)

#: Dead-letter reasons.
UNKNOWN_CONSULT = "unknown_consult"
REQUESTED_TWICE = "consult_requested_twice"
ANSWERED_TWICE = "consult_answered_twice"
CLOSED_TWICE = "consult_closed_twice"
ANSWERED_AFTER_CLOSE = "consult_answered_after_close"

#: What each refusal means, for the dead letter: fields only, never a value of the event.
DETAILS = {
    UNKNOWN_CONSULT: "consult_id: no consult.requested opened this consult (or it was "
    "forgotten after the retention); send the request first",
    REQUESTED_TWICE: "consult_id: another consult.requested already opened this consult; "
    "a new question needs a new consult_id",
    ANSWERED_TWICE: "consult_id: another consult.answered already answered this consult",
    CLOSED_TWICE: "consult_id: another consult.closed already closed this consult",
    ANSWERED_AFTER_CLOSE: "consult_id: this consult was closed unanswered before this answer",
}

_RANK = {urgency: index for index, urgency in enumerate(URGENCIES)}
_OVERDUE_NS = uuid.UUID("5e0b9f43-2c7a-4d18-b6e5-1f9a3c8d7e24")

Outcome = Literal["requested", "answered", "closed", "duplicate", "refused"]


class Consult(BaseModel):
    """What the stage keeps per consult; no clinician or requester names, only ids."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    consult_id: str
    requested_by: Requester
    urgency: Urgency
    requested_at: AwareDatetime
    call_id: str | None = None
    team_id: str | None = None
    request_event_id: str
    answered_at: AwareDatetime | None = None
    answer_event_id: str | None = None
    closed_at: AwareDatetime | None = None
    close_event_id: str | None = None
    overdue_sent: bool = False

    @property
    def waiting(self) -> bool:
        """Unanswered and open: in the queue."""
        return self.answered_at is None and self.closed_at is None

    def due_at(self, targets: ConsultTargets) -> datetime:
        return self.requested_at + timedelta(minutes=targets.minutes(self.urgency))

    def pending_at(self, targets: ConsultTargets) -> datetime | None:
        """When this consult's overdue notice comes due; None once nothing is pending (it
        was answered, closed or already reported)."""
        return None if self.overdue_sent or not self.waiting else self.due_at(targets)

    def wait(self, targets: ConsultTargets) -> tuple[float, bool] | None:
        """An answered consult's wait in seconds, and whether it was within the target."""
        if self.answered_at is None:
            return None
        seconds = (self.answered_at - self.requested_at).total_seconds()
        return seconds, self.answered_at <= self.due_at(targets)


@dataclass(frozen=True, slots=True)
class ConsultStep:
    outcome: Outcome
    #: The consult after the event (unchanged when refused or a duplicate; None when an
    #: event for an unknown consult is refused).
    state: Consult | None
    #: Dead-letter reason when ``outcome`` is ``refused``.
    reason: str | None = None


def step(
    state: Consult | None, event: ConsultRequested | ConsultAnswered | ConsultClosed
) -> ConsultStep:
    """What ``event`` does to the consult ``state`` (None: not seen yet)."""
    if isinstance(event, ConsultRequested):
        if state is None:
            return ConsultStep(
                "requested",
                Consult(
                    consult_id=event.consult_id,
                    requested_by=event.requested_by,
                    urgency=event.urgency,
                    requested_at=event.occurred_at,
                    call_id=event.call_id,
                    team_id=event.team_id,
                    request_event_id=event.event_id,
                ),
            )
        if event.event_id == state.request_event_id:
            return ConsultStep("duplicate", state)
        return ConsultStep("refused", state, REQUESTED_TWICE)
    if state is None:
        return ConsultStep("refused", None, UNKNOWN_CONSULT)
    if isinstance(event, ConsultAnswered):
        if event.event_id == state.answer_event_id:
            return ConsultStep("duplicate", state)
        if state.answered_at is not None:
            return ConsultStep("refused", state, ANSWERED_TWICE)
        if state.closed_at is not None:
            return ConsultStep("refused", state, ANSWERED_AFTER_CLOSE)
        answered = {"answered_at": event.occurred_at, "answer_event_id": event.event_id}
        return ConsultStep("answered", state.model_copy(update=answered))
    if event.event_id == state.close_event_id:
        return ConsultStep("duplicate", state)
    if state.closed_at is not None:
        return ConsultStep("refused", state, CLOSED_TWICE)
    closed = {"closed_at": event.occurred_at, "close_event_id": event.event_id}
    return ConsultStep("closed", state.model_copy(update=closed))


def queue(consults: Iterable[Consult]) -> list[Consult]:
    """The unanswered, open consults in the order a clinician takes them."""
    return sorted(
        (c for c in consults if c.waiting),
        key=lambda c: (_RANK[c.urgency], c.requested_at, c.consult_id),
    )


def overdue(
    consults: Iterable[Consult], now: datetime, targets: ConsultTargets
) -> list[tuple[Consult, ConsultOverdue]]:
    """Consults waiting past their target at ``now`` and not yet reported, in queue order:
    each with its state marked reported and its ``consult.overdue`` event (whose id is
    derived from the consult's, so a re-sent notice after a crash is a repeat)."""
    out = []
    for consult in queue(consults):
        due = consult.due_at(targets)
        if consult.overdue_sent or now <= due:
            continue
        notice = ConsultOverdue(
            event_id=uuid5_hex(_OVERDUE_NS, consult.consult_id),
            occurred_at=now,
            consult_id=consult.consult_id,
            requested_by=consult.requested_by,
            urgency=consult.urgency,
            call_id=consult.call_id,
            team_id=consult.team_id,
            requested_at=consult.requested_at,
            due_at=due,
        )
        out.append((consult.model_copy(update={"overdue_sent": True}), notice))
    return out
