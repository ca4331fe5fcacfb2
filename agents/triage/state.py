"""Per-call triage state and its pure transitions: de-duplication, decision, supersession."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from heart.agents.ccd.disposition import redecide
from heart.agents.ids import uuid5_hex
from heart.agents.triage.decide import apply_update, decide, is_stale, needs_redecision
from heart.policy import Policy
from heart.schemas.calls import CallClosed, CallReceived, CallUpdated
from heart.schemas.ccd import CcdDisposition
from heart.schemas.commands import SourceRef
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
    #: When the CAD event behind the current decision occurred, and whether the decision
    #: was stale: with ``decided_at``, what :func:`resent` needs to make it again.
    source_at: datetime | None = None
    stale: bool = False
    #: The clinician's disposition in force, and the decision in force when a disposition
    #: made or shaped it: kept whole, since the call alone cannot make it again. A later
    #: CAD update is decided by the rules and the disposition applied on top of it.
    disposition: CcdDisposition | None = None
    decision: TriageDecision | None = None
    #: A ``triage.closed`` went out for this call (a ``resolved_by_phone`` disposition):
    #: Care Navigation starts once, so the CAD's close sends no second one.
    closure_sent: bool = False


class ClosedCall(BaseModel):
    """What triage keeps of a call the CAD closed, for a while: enough to tell a late
    disposition (a clinician documenting after the close) and a redelivered CAD event
    from ones for a call never received."""

    model_config = ConfigDict(extra="ignore")

    route: str
    revision: int
    decision_id: str
    closure_sent: bool
    seen: list[str] = Field(default_factory=list)


class HeldDisposition(BaseModel):
    """A disposition that arrived before its call (the CCD desk and the CAD are separate
    producers), with its source record so that it can be dead-lettered exactly."""

    disposition: CcdDisposition
    source: SourceRef


class Held(BaseModel):
    """Dispositions waiting for their call, since the first of them arrived."""

    items: list[HeldDisposition]
    since: datetime


@dataclass(frozen=True)
class Step:
    outcome: Outcome
    state: CallState | None
    decision: TriageDecision | None = None
    superseded_route: str | None = None
    closure: TriageClosure | None = None
    #: When the CAD closes the call: what triage keeps of it.
    closed: ClosedCall | None = None


class Lateness:
    """The time a call's lateness is judged against, as :func:`step` takes it.

    On the wall clock, now. On the event clock, the newest event time read from the call's
    own partition of ``cad.calls``, not the stage's newest over all partitions: a CAD writes
    each partition in time order, but how far the stage has read one partition ahead of
    another depends on fetching, and a replay's routes must not.
    """

    def __init__(self, *, on_event_time: bool) -> None:
        self.on_event_time = on_event_time
        self._newest: dict[int, datetime] = {}

    def reference(self, partition: int, event_at: datetime, now: datetime) -> datetime:
        if not self.on_event_time:
            return now
        newest = self._newest.get(partition)
        if newest is None or event_at > newest:
            self._newest[partition] = newest = event_at
        return newest


def decision_id(source_event_id: str, call_id: str = "") -> str:
    # Deterministic, so that a decision re-emitted after a crash carries the same
    # event_id and downstream consumers drop it as a duplicate. The call id is part of the
    # name: a CAD that reuses an event id for two calls must not make their decisions look
    # like repeats of each other.
    return uuid5_hex(_DECISION_NS, f"{call_id}|{source_event_id}")


def closure(state: CallState, event: CallClosed) -> TriageClosure | None:
    """The end of a CCD contact when the CAD closes a call triage routed to ccd; None for
    any other route (its contact, if any, ends elsewhere), and None when a clinician's
    ``resolved_by_phone`` already ended it: Care Navigation starts once."""
    if state.route != "ccd" or state.closure_sent:
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
    if state.decision is not None:
        # A decision a disposition shaped cannot be made from the call alone: it is kept.
        made_by_this = state.decision.event_id == decision_id(event_id, state.call.call_id)
        return state.decision if made_by_this else None
    if state.decided_at is None or decision_id(event_id, state.call.call_id) != state.decision_id:
        return None
    return decide(
        state.call,
        policy,
        revision=state.revision,
        supersedes=state.supersedes,
        event_id=state.decision_id,
        now=state.decided_at,
        source_occurred_at=state.source_at,
        stale=state.stale,
    )


def _remember(seen: list[str], event_id: str) -> list[str]:
    return [*seen, event_id][-SEEN_LIMIT:]


def step(
    state: CallState | None,
    event: CallReceived | CallUpdated | CallClosed,
    policy: Policy,
    now: datetime,
    reference: datetime | None = None,
) -> Step:
    """What ``event`` does to a call's ``state``, decided at ``now``.

    A decision on an event that occurred more than the policy's ``stale_call_minutes``
    before ``reference`` (default ``now``; the stage's time for judging lateness) is
    stale: police, reason ``stale`` (:mod:`heart.agents.triage.decide`, "Stale calls").
    """
    stale = is_stale(event.occurred_at, reference or now, policy)
    if state is not None and event.event_id in state.seen:
        return Step("duplicate", state, resent(state, event.event_id, policy))

    if isinstance(event, CallClosed):
        if state is None:
            return Step("unknown_call", None)
        ended = closure(state, event)
        kept = ClosedCall(
            route=state.route,
            revision=state.revision,
            decision_id=state.decision_id,
            closure_sent=state.closure_sent or ended is not None,
            seen=_remember(state.seen, event.event_id),
        )
        return Step("closed", None, closure=ended, closed=kept)

    if isinstance(event, CallReceived):
        call = event.model_copy(update={"caller": None})
        if state is None:
            decision = decide(
                call,
                policy,
                event_id=decision_id(event.event_id, event.call_id),
                now=now,
                source_occurred_at=event.occurred_at,
                stale=stale,
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
                    source_at=event.occurred_at,
                    stale=stale,
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

    # Once stale, always stale: the CAD's standard response took the call, and a later
    # update must not bring a HEART team to it as well.
    stale = stale or state.stale
    decision = decide(
        merged,
        policy,
        revision=state.revision + 1,
        supersedes=state.decision_id,
        event_id=decision_id(event.event_id, event.call_id),
        now=now,
        source_occurred_at=event.occurred_at,
        stale=stale,
    )
    if state.disposition is not None:
        # The clinician's judgement outlives a CAD correction: applied on top of the rules.
        decision = overlay(decision, state.disposition, policy, now=now, stale=stale)
    new_state = CallState(
        call=merged,
        decision_id=decision.event_id,
        route=decision.route,
        revision=decision.revision,
        seen=_remember(state.seen, event.event_id),
        decided_at=decision.occurred_at,
        supersedes=decision.supersedes,
        source_at=event.occurred_at,
        stale=stale,
        disposition=state.disposition,
        decision=decision if state.disposition is not None else None,
        closure_sent=state.closure_sent,
    )
    return Step("redecided", new_state, decision, superseded_route=state.route)


def overlay(
    rules: TriageDecision,
    disposition: CcdDisposition,
    policy: Policy,
    *,
    now: datetime,
    stale: bool,
) -> TriageDecision:
    """``rules`` (a decision the rules just made) with the clinician's ``disposition``
    applied: the same revision, id, cause and supersession as ``rules``, the route the
    disposition sets, and ``rules_route`` the route the rules chose."""
    made = redecide(
        rules.model_copy(update={"revision": rules.revision - 1}),
        disposition,
        policy,
        now=now,
        stale=stale,
        event_id=rules.event_id,
    ).decision
    return made.model_copy(
        update={
            "supersedes": rules.supersedes,
            "source_event_id": rules.source_event_id,
            "source_occurred_at": rules.source_occurred_at,
        }
    )
