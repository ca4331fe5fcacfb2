"""Per-call triage state and its pure transitions: de-duplication, decision, supersession."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from heart.agents.ids import uuid5_hex
from heart.agents.triage.decide import apply_update, decide, needs_redecision
from heart.policy import Policy
from heart.schemas.calls import CallClosed, CallReceived, CallUpdated
from heart.schemas.triage import TriageClosure, TriageDecision

#: Event ids remembered per call; a CAD redelivers recent events, not ancient ones.
SEEN_LIMIT = 32

_DECISION_NS = uuid.UUID("6f1d2c0e-8f0a-4c55-9a43-4f2e1b6c9d11")
_CLOSURE_NS = uuid.UUID("3c9e5a27-1d4b-4f0e-8b6a-7e2d9c4f1a05")

Outcome = Literal["decided", "redecided", "duplicate", "unchanged", "closed", "unknown_call"]


class CallState(BaseModel):
    """What the triage stage keeps per open call. The caller's personal data is dropped."""

    model_config = ConfigDict(extra="ignore")

    call: CallReceived
    decision_id: str
    route: str
    revision: int
    seen: list[str] = Field(default_factory=list)
    #: With ``call``, what the current decision was made from, so that it can be made
    #: again, identical (:func:`resent`). None in states written before they were kept.
    decided_at: datetime | None = None
    supersedes: str | None = None


@dataclass(frozen=True)
class Step:
    outcome: Outcome
    state: CallState | None
    decision: TriageDecision | None = None
    superseded_route: str | None = None
    closure: TriageClosure | None = None


def decision_id(source_event_id: str, call_id: str = "") -> str:
    # Deterministic, so that a decision re-emitted after a crash carries the same
    # event_id and downstream consumers drop it as a duplicate. The call id is part of the
    # name: a CAD that reuses an event id for two calls must not make their decisions look
    # like repeats of each other.
    return uuid5_hex(_DECISION_NS, f"{call_id}|{source_event_id}")


def closure(state: CallState, event: CallClosed) -> TriageClosure | None:
    """The end of a CCD contact when the CAD closes a call triage routed to ccd; None for
    any other route (its contact, if any, ends elsewhere)."""
    if state.route != "ccd":
        return None
    return TriageClosure(
        event_id=uuid5_hex(_CLOSURE_NS, f"{event.call_id}|{event.event_id}"),
        occurred_at=event.occurred_at,
        call_id=event.call_id,
        route=state.route,
        revision=state.revision,
        decision_id=state.decision_id,
        source_event_id=event.event_id,
        disposition=event.disposition,
        followup_declined=event.followup_declined,
    )


def resent(state: CallState, event_id: str, policy: Policy) -> TriageDecision | None:
    """The current decision again, identical, when ``event_id`` is the CAD event that
    produced it; None otherwise.

    A stage sends its decision before it writes the call's state, but the two leave in
    different batches: a crash in between can leave the state written and the decision
    never delivered, and the CAD's redelivery would then be suppressed as a duplicate.
    Sending it again costs a repeat with the same ``event_id``, which consumers drop.
    """
    if state.decided_at is None or decision_id(event_id, state.call.call_id) != state.decision_id:
        return None
    return decide(
        state.call,
        policy,
        revision=state.revision,
        supersedes=state.supersedes,
        event_id=state.decision_id,
        now=state.decided_at,
    )


def _remember(seen: list[str], event_id: str) -> list[str]:
    return [*seen, event_id][-SEEN_LIMIT:]


def step(
    state: CallState | None,
    event: CallReceived | CallUpdated | CallClosed,
    policy: Policy,
    now: datetime,
) -> Step:
    if state is not None and event.event_id in state.seen:
        return Step("duplicate", state, resent(state, event.event_id, policy))

    if isinstance(event, CallClosed):
        if state is None:
            return Step("unknown_call", None)
        return Step("closed", None, closure=closure(state, event))

    if isinstance(event, CallReceived):
        call = event.model_copy(update={"caller": None})
        if state is None:
            decision = decide(
                call, policy, event_id=decision_id(event.event_id, event.call_id), now=now
            )
            return Step(
                "decided",
                CallState(
                    call=call,
                    decision_id=decision.event_id,
                    route=decision.route,
                    revision=1,
                    seen=[event.event_id],
                    decided_at=decision.occurred_at,
                ),
                decision,
            )
        if not needs_redecision(state.call, call):
            return Step(
                "duplicate",
                state.model_copy(update={"seen": _remember(state.seen, event.event_id)}),
            )
        merged = call
    else:
        if state is None:
            return Step("unknown_call", None)
        merged = apply_update(state.call, event)
        if not needs_redecision(state.call, merged):
            return Step(
                "unchanged",
                state.model_copy(
                    update={"call": merged, "seen": _remember(state.seen, event.event_id)}
                ),
            )

    decision = decide(
        merged,
        policy,
        revision=state.revision + 1,
        supersedes=state.decision_id,
        event_id=decision_id(event.event_id, event.call_id),
        now=now,
    )
    new_state = CallState(
        call=merged,
        decision_id=decision.event_id,
        route=decision.route,
        revision=decision.revision,
        seen=_remember(state.seen, event.event_id),
        decided_at=decision.occurred_at,
        supersedes=decision.supersedes,
    )
    return Step("redecided", new_state, decision, superseded_route=state.route)
