"""Care Navigation cases and their pure transitions: schedule, outcome, timer sweep.

One case per contact (``case_id`` = the call id) lives in a changelogged table; the Faust
agent only moves data between topics and that table and passes in ``now`` from an
injectable clock. Everything here is deterministic given its arguments, so a replay or a
test can move 48 hours in a second and a restarted worker recomputes the same events.

Rules chosen (the issue leaves them open):

- The deadline is ``followup_within_hours`` of real elapsed time after the contact ended
  (48 h; across a DST change that is 47 or 49 wall-clock hours).
- ``release_at`` is the first staffed moment at or after the contact ended. It may be after
  the deadline (a Friday 17:00 contact is released Monday 08:30, deadline Sunday 17:00).
- Structurally at risk: fewer than ``at_risk_below_staffed_minutes`` (120) staffed minutes
  between release and deadline. A Friday 15:00 contact leaves 90; a contact whose release
  falls after its deadline leaves 0. The figure itself is kept on the case
  (``staffed_minutes_to_deadline``) because it is what weekend hours would buy.
- Attempt ``n`` has the timer id ``"{case_id}:{n}"``. Attempt 1 is due at ``release_at``;
  after ``unable_to_reach`` the next attempt is due ``retry_after_minutes`` staffed minutes
  after ``now``, while attempts made < 1 + ``unable_to_reach_retries``; the last one
  exhausts the case.
- Overdue is a flag, not a status: a case past its deadline is still worked, and its
  retries still fire. It is raised once, when the deadline passes while the case is open
  (scheduled or released). Completed, declined and exhausted cases are not overdue; an
  exhausted case stays visible by its status.
- ``completed_within_deadline`` compares the outcome's ``occurred_at`` (capped at ``now``,
  so a fast clock cannot claim the future) with the deadline: it measures when the person
  was reached, even if the report arrived late.
- Missed timers fire when found due, whatever the hour: a task released on a Sunday after
  an outage waits in the navigators' queue, which is better than holding it back.
- Event ids are uuid5 of the schedule's id (itself uuid5 of the source event id), so an
  event re-emitted after a crash carries the same id and consumers drop it.
- A ``high`` C-SSRS screening on the call shortens the deadline to the policy's
  ``ccd.high_risk_followup_within_hours`` when it is set (:meth:`Policy.followup_within_hours`).
  A screening before the contact is kept with the call and applied when the case is
  scheduled; one after it moves the deadline of a case still waiting for its first task
  (:func:`on_screening`), announced by a revised ``followup.scheduled`` for the same case.
  A follow-up already released, retried, overdue or closed keeps the deadline the
  navigators were given.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from heart.agents.ids import uuid5_hex
from heart.agents.navigation.staffed import (
    add_staffed_minutes,
    next_staffed_moment,
    staffed_minutes_between,
)
from heart.policy import Policy
from heart.schemas.ccd import RiskLevel
from heart.schemas.dispatch import DispatchEvent
from heart.schemas.followup import (
    ContactPilot,
    FollowupDue,
    FollowupOutcome,
    FollowupOverdue,
    FollowupScheduled,
    Outcome,
)
from heart.schemas.triage import TriageClosure

_EVENT_NS = uuid.UUID("3b8f7a52-1c9e-4d6b-8e0f-5a2d9c4e7b13")

CaseStatus = Literal["scheduled", "released", "completed", "declined", "exhausted"]
#: Statuses in which a timer or the deadline can still fire.
OPEN: frozenset[str] = frozenset({"scheduled", "released"})
#: Outcomes that end the follow-up.
CLOSING: frozenset[str] = frozenset({"reached", "connected_to_care", "declined"})

SkipReason = Literal["cn_disabled", "not_followed", "declined", "duplicate"]
RejectReason = Literal["unknown_case", "duplicate", "case_closed"]

TimerEvent = FollowupDue | FollowupOverdue


class Contact(BaseModel):
    """A contact with a pilot that has ended: what a follow-up is scheduled from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    call_id: str = Field(min_length=1, max_length=64)
    pilot: ContactPilot
    ended_at: AwareDatetime
    declined: bool = False
    #: The event that reported the end of the contact; seeds every derived event id.
    source_event_id: str = Field(min_length=1, max_length=128)


def contact_from_closure(closure: TriageClosure) -> Contact:
    """A CCD contact ended: the CAD closed a call triage had resolved by phone.

    Named by the CAD's close event, as the contact was before triage relayed closures, so
    follow-up ids stay the same."""
    return Contact(
        call_id=closure.call_id,
        pilot="ccd",
        ended_at=closure.occurred_at,
        declined=closure.followup_declined,
        source_event_id=closure.source_event_id,
    )


def contact_from_dispatch(event: DispatchEvent) -> Contact | None:
    """A contact ended by a team clearing its call, or None for any other dispatch event."""
    if event.event_type != "dispatch.cleared" or event.route == "police":
        return None
    return Contact(
        call_id=event.call_id,
        pilot=event.route,
        ended_at=event.occurred_at,
        declined=event.followup_declined,
        source_event_id=event.event_id,
    )


class Case(BaseModel):
    """One follow-up, as kept in the navigation table. Round-trips through JSON."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    case_id: str = Field(min_length=1, max_length=64)
    call_id: str = Field(min_length=1, max_length=64)
    pilot: ContactPilot
    source_event_id: str = Field(min_length=1, max_length=128)
    #: The ``followup.scheduled`` event's id; every later event id derives from it.
    schedule_event_id: str
    policy_version: str
    contact_ended_at: AwareDatetime
    deadline: AwareDatetime
    release_at: AwareDatetime
    at_risk: bool
    staffed_minutes_to_deadline: float = Field(ge=0)
    status: CaseStatus = "scheduled"
    #: The current attempt, 1-based; its timer id is ``"{case_id}:{attempt}"``.
    attempt: int = Field(1, ge=1)
    #: Outcomes reported so far (unable to reach, or the one that closed the case).
    attempts_made: int = Field(0, ge=0)
    #: When the current attempt's task is (or was) due for release.
    next_due_at: AwareDatetime | None = None
    overdue: bool = False
    last_outcome: Outcome | None = None
    care_kind: str | None = None
    closed_at: AwareDatetime | None = None
    completed_within_deadline: bool | None = None
    #: Timer ids already released; a timer fires at most once per id.
    fired_timer_ids: tuple[str, ...] = ()
    #: Outcome event ids applied; a redelivered outcome is ignored.
    outcome_event_ids: tuple[str, ...] = ()
    #: The C-SSRS risk level that set the deadline, when a screening did.
    risk_level: RiskLevel | None = None

    @property
    def timer_id(self) -> str:
        return f"{self.case_id}:{self.attempt}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def pending_at(self) -> datetime | None:
        """The earliest moment at which this case has something to fire, if any."""
        if not self.is_open:
            return None
        moments = []
        if self.next_due_at is not None and self.timer_id not in self.fired_timer_ids:
            moments.append(self.next_due_at)
        if not self.overdue:
            moments.append(self.deadline)
        return min(moments, default=None)


def _event_id(*parts: str) -> str:
    return uuid5_hex(_EVENT_NS, ":".join(parts))


def _utc(moment: datetime) -> datetime:
    # One zone in the table, so that stored cases compare and serialise identically.
    return moment.astimezone(UTC)


def skip_reason(
    contact: Contact, policy: Policy, existing: Case | None = None
) -> SkipReason | None:
    """Why ``contact`` gets no follow-up, or None when it gets one."""
    cn = policy.pilots.cn
    if not cn.enabled:
        return "cn_disabled"
    if contact.pilot not in cn.follows:
        return "not_followed"
    if contact.declined:
        return "declined"
    if existing is not None:
        return "duplicate"
    return None


def schedule(
    contact: Contact,
    policy: Policy,
    now: datetime,
    existing: Case | None = None,
    risk_level: RiskLevel | None = None,
) -> tuple[Case | None, FollowupScheduled | None]:
    """A new case and its ``followup.scheduled`` event, or ``(None, None)`` (see skip_reason).

    ``existing`` is the table's case for ``contact.call_id``: a contact reported twice
    (redelivery, or both ``call.closed`` and ``dispatch.cleared``) schedules once.
    ``risk_level`` is the call's screening seen before the contact, if any: ``high`` may
    shorten the deadline. The first task is not released here; :func:`advance` or the
    next sweep does that.
    """
    if skip_reason(contact, policy, existing) is not None:
        return None, None
    cn = policy.pilots.cn
    ended = _utc(contact.ended_at)
    deadline = ended + timedelta(hours=policy.followup_within_hours(risk_level))
    release_at = _utc(next_staffed_moment(ended, policy))
    staffed = staffed_minutes_between(release_at, deadline, policy)
    at_risk = staffed < cn.at_risk_below_staffed_minutes
    schedule_id = _event_id("followup.scheduled", contact.source_event_id)
    case = Case(
        case_id=contact.call_id,
        call_id=contact.call_id,
        pilot=contact.pilot,
        source_event_id=contact.source_event_id,
        schedule_event_id=schedule_id,
        policy_version=policy.version_id,
        contact_ended_at=ended,
        deadline=deadline,
        release_at=release_at,
        at_risk=at_risk,
        staffed_minutes_to_deadline=staffed,
        next_due_at=release_at,
        risk_level=risk_level,
    )
    return case, _scheduled(case, schedule_id, now)


def _scheduled(case: Case, event_id: str, now: datetime) -> FollowupScheduled:
    return FollowupScheduled(
        event_id=event_id,
        occurred_at=now,
        case_id=case.case_id,
        call_id=case.call_id,
        pilot=case.pilot,
        contact_ended_at=case.contact_ended_at,
        deadline=case.deadline,
        release_at=case.release_at,
        at_risk=case.at_risk,
        staffed_minutes_to_deadline=case.staffed_minutes_to_deadline,
    )


def on_screening(
    case: Case, risk_level: RiskLevel, policy: Policy, now: datetime
) -> tuple[Case, FollowupScheduled | None]:
    """Apply a screening that arrived after the contact: a ``high`` one moves the deadline
    of a case still waiting for its first task earlier, with a revised
    ``followup.scheduled`` (same case, its own event id; later task and overdue ids still
    derive from the first schedule). Anything else returns the case unchanged and no event.

    A case whose first task was released, that was retried, is overdue or closed keeps its
    deadline: the navigators already work to it.
    """
    if risk_level != "high":
        return case, None
    waiting = (
        case.status == "scheduled"
        and case.attempt == 1
        and not case.fired_timer_ids
        and not case.overdue
    )
    deadline = case.contact_ended_at + timedelta(hours=policy.followup_within_hours(risk_level))
    if not waiting or deadline >= case.deadline:
        return case, None
    cn = policy.pilots.cn
    staffed = staffed_minutes_between(case.release_at, deadline, policy)
    shortened = case.model_copy(
        update={
            "deadline": deadline,
            "staffed_minutes_to_deadline": staffed,
            "at_risk": staffed < cn.at_risk_below_staffed_minutes,
            "risk_level": risk_level,
        }
    )
    revised = _event_id("followup.scheduled", case.schedule_event_id, "risk", risk_level)
    return shortened, _scheduled(shortened, revised, now)


def outcome_rejection(case: Case | None, outcome: FollowupOutcome) -> RejectReason | None:
    """Why ``outcome`` does not apply to ``case``, or None when it does."""
    if case is None:
        return "unknown_case"
    if outcome.event_id in case.outcome_event_ids:
        return "duplicate"
    if case.is_open:
        return None
    # Someone reached after the retries ran out is still worth recording.
    if case.status == "exhausted" and outcome.outcome in CLOSING:
        return None
    return "case_closed"


def on_outcome(
    case: Case | None, outcome: FollowupOutcome, policy: Policy, now: datetime
) -> tuple[Case | None, list[TimerEvent]]:
    """Apply a navigator's outcome. Rejected outcomes return the case unchanged and no events.

    ``(None, [])`` for an unknown case; :func:`outcome_rejection` says why.
    """
    if case is None or outcome_rejection(case, outcome) is not None:
        return case, []
    cn = policy.pilots.cn
    seen = (*case.outcome_event_ids, outcome.event_id)
    attempts = case.attempts_made + 1
    # When the navigator acted, capped at now: a fast clock cannot claim the future.
    acted_at = min(_utc(outcome.occurred_at), _utc(now))
    if outcome.outcome in CLOSING:
        closed = case.model_copy(
            update={
                "status": "declined" if outcome.outcome == "declined" else "completed",
                "attempts_made": attempts,
                "last_outcome": outcome.outcome,
                "care_kind": outcome.care_kind,
                "closed_at": acted_at,
                "completed_within_deadline": acted_at <= case.deadline,
                "outcome_event_ids": seen,
            }
        )
        return closed, []
    if attempts < 1 + cn.unable_to_reach_retries:
        retry = case.model_copy(
            update={
                "status": "scheduled",
                "attempt": attempts + 1,
                "attempts_made": attempts,
                "next_due_at": _utc(add_staffed_minutes(now, cn.retry_after_minutes, policy)),
                "last_outcome": outcome.outcome,
                "outcome_event_ids": seen,
            }
        )
        # Fires only when the retry is somehow already due (replaying with an old clock).
        return advance(retry, now)
    exhausted = case.model_copy(
        update={
            "status": "exhausted",
            "attempts_made": attempts,
            "last_outcome": outcome.outcome,
            "closed_at": acted_at,
            "completed_within_deadline": False,
            "outcome_event_ids": seen,
        }
    )
    return exhausted, []


def advance(case: Case, now: datetime) -> tuple[Case, list[TimerEvent]]:
    """Fire what is due on ``case`` at ``now``: its task, then its overdue, each at most once.

    Returns the case unchanged and no events when nothing is due.
    """
    if not case.is_open:
        return case, []
    events: list[TimerEvent] = []
    update: dict[str, object] = {}
    timer_id = case.timer_id
    if (
        case.next_due_at is not None
        and case.next_due_at <= now
        and timer_id not in case.fired_timer_ids
    ):
        events.append(
            FollowupDue(
                event_id=_event_id("followup.due", case.schedule_event_id, str(case.attempt)),
                occurred_at=now,
                case_id=case.case_id,
                call_id=case.call_id,
                timer_id=timer_id,
                due_at=case.next_due_at,
                deadline=case.deadline,
                attempt=case.attempt,
                at_risk=case.at_risk,
            )
        )
        update["status"] = "released"
        update["fired_timer_ids"] = (*case.fired_timer_ids, timer_id)
    if not case.overdue and case.deadline <= now:
        events.append(
            FollowupOverdue(
                event_id=_event_id("followup.overdue", case.schedule_event_id),
                occurred_at=now,
                case_id=case.case_id,
                call_id=case.call_id,
                deadline=case.deadline,
                attempts=case.attempts_made,
            )
        )
        update["overdue"] = True
    if not events:
        return case, []
    return case.model_copy(update=update), events


def sweep(cases: Iterable[Case], now: datetime, limit: int) -> list[tuple[Case, list[TimerEvent]]]:
    """Advance at most ``limit`` cases with something due at ``now``, oldest due first.

    Only changed cases are returned; the caller writes each back to the table with its
    events, then sweeps again until this returns fewer than ``limit`` (or nothing), so a
    restart after an outage drains in bounded batches and every missed timer fires once.
    """
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    due: list[tuple[datetime, str, Case]] = []
    for case in cases:
        pending = case.pending_at()
        if pending is not None and pending <= now:
            due.append((pending, case.case_id, case))
    # Case ids break ties so the order, and so each batch, is the same on every replay.
    oldest = heapq.nsmallest(limit, due, key=lambda item: (item[0], item[1]))
    return [advance(case, now) for _, _, case in oldest]
