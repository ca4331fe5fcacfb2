"""A clinician's disposition applied to a call's triage state, as pure transitions.

The disposition (``ccd.disposition`` on ``ccd.assessments``) overrules the rules' route
through :func:`heart.agents.ccd.disposition.redecide`: the call's next revision, reason
``clinician_disposition``, which dispatch treats as any re-decision. This module decides
when and to what it applies:

- **A known, open call**: the next revision, made at ``now``. It is stale, and sends no
  team, when the call already was or when the disposition came more than the policy's
  ``stale_call_minutes`` before the stage's time. A ``resolved_by_phone`` that leaves the
  call on ``ccd`` ends the CCD contact: a ``triage.closed`` starts Care Navigation, once
  per call (the CAD's later close sends none).
- **A call the CAD closed**: nothing is re-decided (the call is over), but a
  ``resolved_by_phone`` still ends the CCD contact if the close did not.
- **A call not received yet**: held (the CCD desk and the CAD are separate producers, and
  a disposition can overtake its call). The triage stage applies what it holds when the
  call arrives and dead-letters it as ``unknown_call`` after the bounded wait
  (``HeartSettings.ccd_disposition_hold_s``).

A redelivered disposition (an ``event_id`` the call has seen) changes nothing; the
decision and closure it made are made again, identical, in case they were lost in a
crash after the state was written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from heart.agents.ccd.disposition import redecide
from heart.agents.ids import uuid5_hex
from heart.agents.triage.decide import decide, is_stale, missed
from heart.agents.triage.state import CallState, ClosedCall, _remember
from heart.policy import Policy
from heart.schemas.ccd import CcdDisposition
from heart.schemas.triage import TriageClosure, TriageDecision

Outcome = Literal["applied", "duplicate", "after_close"]

#: The disposition that ends a CCD contact (and starts Care Navigation's hours).
ENDS_CONTACT = "resolved_by_phone"

_CLOSURE_NS = uuid.UUID("0d6c3f8e-7a21-4b9c-9e54-2f1a8b7c6d30")


@dataclass(frozen=True, slots=True)
class DispositionStep:
    outcome: Outcome
    #: The open call's state after the disposition (None after the close).
    state: CallState | None = None
    #: The closed call's record after the disposition (None for an open call).
    closed: ClosedCall | None = None
    decision: TriageDecision | None = None
    closure: TriageClosure | None = None
    #: The route in force before, when the disposition re-decided the call.
    superseded_route: str | None = None
    #: ``(pilot, reason)`` of each pilot this decision misses and the one before did not.
    newly_missed: tuple[tuple[str, str], ...] = ()


def in_force(state: CallState, policy: Policy) -> TriageDecision:
    """The call's decision in force, as it was sent."""
    if state.decision is not None:
        return state.decision
    return decide(
        state.call,
        policy,
        revision=state.revision,
        supersedes=state.supersedes,
        event_id=state.decision_id,
        now=state.decided_at or state.call.occurred_at,
        source_occurred_at=state.source_at,
        stale=state.stale,
    )


def contact_closure(decision: TriageDecision, disposition: CcdDisposition) -> TriageClosure:
    """The end of the CCD contact a ``resolved_by_phone`` disposition records; its id is
    derived from the disposition's, so a closure made again after a crash is a repeat."""
    return _closure(disposition, decision.revision, decision.event_id)


def _closure(disposition: CcdDisposition, revision: int, decision_id: str) -> TriageClosure:
    return TriageClosure(
        event_id=uuid5_hex(_CLOSURE_NS, f"{disposition.call_id}|{disposition.event_id}"),
        occurred_at=disposition.occurred_at,
        call_id=disposition.call_id,
        route="ccd",
        revision=revision,
        decision_id=decision_id,
        source_event_id=disposition.event_id,
        disposition=ENDS_CONTACT,
    )


def apply(
    state: CallState,
    disposition: CcdDisposition,
    policy: Policy,
    now: datetime,
    reference: datetime | None = None,
) -> DispositionStep:
    """What ``disposition`` does to an open call; ``reference`` (default ``now``) is the
    stage's time for judging lateness, as in :func:`heart.agents.triage.state.step`."""
    if disposition.event_id in state.seen:
        made = state.decision
        if made is None or made.source_event_id != disposition.event_id:
            return DispositionStep("duplicate", state)
        closure = None
        if state.closure_sent and made.route == "ccd" and disposition.disposition == ENDS_CONTACT:
            closure = contact_closure(made, disposition)
        return DispositionStep("duplicate", state, decision=made, closure=closure)

    current = in_force(state, policy)
    stale = state.stale or is_stale(disposition.occurred_at, reference or now, policy)
    decision = redecide(current, disposition, policy, now=now, stale=stale).decision
    ends = disposition.disposition == ENDS_CONTACT and decision.route == "ccd"
    closure = contact_closure(decision, disposition) if ends and not state.closure_sent else None
    already = {pilot for pilot, _ in missed(current)}
    newly = tuple((pilot, why) for pilot, why in missed(decision) if pilot not in already)
    after = state.model_copy(
        update={
            "decision_id": decision.event_id,
            "route": decision.route,
            "revision": decision.revision,
            "seen": _remember(state.seen, disposition.event_id),
            "decided_at": decision.occurred_at,
            "supersedes": decision.supersedes,
            "source_at": disposition.occurred_at,
            "stale": stale,
            "disposition": disposition,
            "decision": decision,
            "closure_sent": state.closure_sent or closure is not None,
        }
    )
    return DispositionStep(
        "applied",
        after,
        decision=decision,
        closure=closure,
        superseded_route=state.route,
        newly_missed=newly,
    )


def after_close(closed: ClosedCall, disposition: CcdDisposition) -> DispositionStep:
    """What ``disposition`` does to a call the CAD has closed: no new decision; a
    ``resolved_by_phone`` ends the CCD contact if nothing has yet."""
    if disposition.event_id in closed.seen:
        return DispositionStep("duplicate", closed=closed)
    closure = None
    if disposition.disposition == ENDS_CONTACT and not closed.closure_sent:
        closure = _closure(disposition, closed.revision, closed.decision_id)
    after = closed.model_copy(
        update={
            "seen": _remember(closed.seen, disposition.event_id),
            "closure_sent": closed.closure_sent or closure is not None,
        }
    )
    return DispositionStep("after_close", closed=after, closure=closure)
