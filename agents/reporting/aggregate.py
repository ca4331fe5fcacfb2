"""The monthly pilot report as pure aggregation: events in, per-month per-pilot figures out.

No Faust, no I/O, no clock. The same functions serve the live stage, replays and tests:
:func:`apply` folds any mix of triage, dispatch, follow-up, clinician and consult events
(in any order, redelivered or not) into an :class:`AggregateState`; :func:`report` reads
one month.

Three layers, so that the stage can split them across partitions (see ``agent.py``):

1. :func:`fact_of` reduces an event to a :class:`Fact`: what the report needs and nothing
   personal (no location, notes, caller or language; the call id only routes the fact).
   Events that no figure uses give None.
2. A :class:`Record` per call (or follow-up case) keeps the facts that matter, so that
   each figure is counted once per call whatever arrives twice: the latest decision
   revision only, the earliest of each dispatch or follow-up event, and the digests of
   the event ids applied. :func:`parts_of` turns a record into its :class:`Part` in each
   month it touches.
3. :class:`Totals` sums a month's parts; replacing a call's part subtracts the old one,
   so a superseding decision replaces its predecessor in every count.

Attribution (policy time zone): a call's figures (decided, eligible and its parts, HEART
handled) count in the month the call was received (``call_received_at``), whenever its
team was assigned or its follow-up scheduled; response times and police backup in the
month they happened; a follow-up's figures (scheduled, completed, within 48 h, overdue,
connected to care) in the month it was scheduled, whenever it was completed. A call
received on 31 July at 23:55 whose team arrives at 00:05 on 1 August is reached in July,
and its response time is August's.

Figures, per pilot, in the terms of :data:`heart.schemas.glossary.GLOSSARY`:

- eligible: the decision lists the pilot as eligible, or as ineligible only for coverage
  (``outside_hours``, ``outside_service_area``, ``unknown_beat``, ``pilot_disabled``).
  Weapon and violence exclusions are neither eligible nor missed. cn is eligible when the
  decision involves it, or names it ineligible for coverage.
- Each eligible call is in exactly one part, so ``eligible = reached + missed + other``:

  - reached: ccd: the route is ccd (resolved by phone); crt, cor: a team of that kind was
    assigned; cn: a follow-up was scheduled.
  - missed, by reason: a coverage-only ineligibility counts under its first reason; a
    ``dispatch.fallback`` for want of a team (``no_team_free``, ``no_team_on_shift``,
    ``no_team_of_kind``) counts as ``no_team_free``.
  - other, by name (:data:`~heart.schemas.reports.OTHER_PART_LABELS`): ccd: needed someone
    in person; crt, cor: still waiting for a team, resolved by phone instead, or went to
    police or another team; cn: no follow-up scheduled.

- response time: ``assignment_to_on_scene_s`` of ``dispatch.on_scene``; median (mean of
  the two middle values when even) and p90 by nearest rank.
- follow-ups: scheduled and at risk (``followup.scheduled``), overdue
  (``followup.overdue``), completed (the first closing outcome: reached, connected to care
  or declined, i.e. the person was reached) and whether that was by the deadline. cn holds
  all follow-ups; ccd, crt and cor hold those of their own contacts. Because cn's reached
  calls count in the call's month and follow-ups in their own, the two reconcile as
  ``scheduled = cn reached - reached in another month + for other calls``.
- top call types: the policy category, else the CAD call type, of the calls reached.
- police backup requests: ``dispatch.backup_requested``, per team pilot.

A call whose decision is not in the data (an export's dispatch rows without the call)
is in no call figure: only its response time, backup requests and follow-up count.

Crisis Call Diversion (the clinicians' work, ``ccd.assessments`` and ``ccd.consults``), in
the month the call was received, for calls whose decision is in the data:

- engaged: calls with a ``ccd.engaged``; screenings: one per C-SSRS screening the CCD stage
  scores (:func:`~heart.agents.ccd.screening.risk_level`), by risk level; a screening it
  refuses counts nowhere, as does a referral to a resource not in the policy's list.
- safety plans: calls with a ``ccd.safety_plan``, their steps the union over the call's
  plan events, and of them those with all six steps.
- referrals: each resource once per call, a warm handoff if any of them was.
- dispositions: the call's last (by event time), so they add up to calls with one.
- overrides: the effective decision's ``rules_route`` when it differs from its route, by
  direction.
- time on the line: from the call's first ``ccd.engaged`` to its first
  ``dispatch.on_scene`` (any route) at or after it; counted with the call, not in the
  month the responders arrived, so that its calls are among the month's calls engaged.
- consults: in the month requested, by requester; answered within target when the first
  answer came by the request time plus the policy's target for its urgency.

A month with none of these has no clinician events, and the section says so (every
figure None) rather than show zeros: a CAD export's replay has none.

Month-wide: calls decided by route; HEART handled (calls reached by ccd, crt or cor, each
once); resolved by phone (ccd reached) and its share of HEART handled; the first and last
event time counted, and whether they leave part of the month out (a partial month).
"""

from __future__ import annotations

import calendar
import hashlib
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from math import ceil
from typing import Any, get_args
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from heart.agents.ccd.screening import risk_level, screening_problem
from heart.policy import Policy, load_policy
from heart.policy.model import CcdWork
from heart.schemas.ccd import (
    RISK_LEVELS,
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    ConsultAnswered,
    ConsultClosed,
    ConsultOverdue,
    ConsultRequested,
    RiskLevel,
    SafetyPlanSteps,
)
from heart.schemas.dispatch import DispatchEvent
from heart.schemas.followup import (
    ContactPilot,
    FollowupDue,
    FollowupOutcome,
    FollowupOverdue,
    FollowupScheduled,
)
from heart.schemas.reports import (
    CONSULT_KEY_PREFIX,
    DISPOSITIONS,
    FOLLOWUP_FLAGS,
    MONTH_PATTERN,
    OTHER_PARTS,
    REQUESTERS,
    CallTypeCount,
    CcdWorkReport,
    ConsultFigures,
    DispositionFigures,
    Fact,
    FactKind,
    FollowupFigures,
    MonthReport,
    Organisation,
    OverrideDirection,
    OverrideFigures,
    Part,
    PilotReport,
    ReferralFigures,
    RequesterConsults,
    ResourceReferrals,
    ResponseTimes,
    SafetyPlanFigures,
    ScreeningFigures,
    TimeOnLine,
)
from heart.schemas.triage import MISS_REASONS, Pilot, Route, TriageDecision

PILOTS: tuple[Pilot, ...] = get_args(Pilot)
ROUTES: tuple[Route, ...] = get_args(Route)
TEAM_PILOTS: tuple[Pilot, ...] = ("crt", "cor")
HEART_PILOTS: frozenset[str] = frozenset({"ccd", "crt", "cor"})
PILOT_NAMES: dict[str, str] = {
    "ccd": "Crisis Call Diversion",
    "crt": "Community Response Teams",
    "cor": "Co-Response",
    "cn": "Care Navigation",
}
#: Missed reasons in the order the report lists them.
MISSED_REASONS: tuple[str, ...] = (
    "outside_hours",
    "outside_service_area",
    "unknown_beat",
    "pilot_disabled",
    "no_team_free",
    "stale",
)
#: Dispatch fallbacks that mean "eligible, but no team could go".
FALLBACK_MISSES: frozenset[str] = frozenset({"no_team_free", "no_team_on_shift", "no_team_of_kind"})
#: Dispatch fallbacks that are misses, and the reason each counts under.
FALLBACK_REASONS: dict[str, str] = {reason: "no_team_free" for reason in FALLBACK_MISSES} | {
    "stale": "stale"
}
#: Outcomes that close a follow-up with the person reached.
CLOSING_OUTCOMES: frozenset[str] = frozenset({"reached", "connected_to_care", "declined"})
TOP_CALL_TYPES = 5
#: Event-id digests a record remembers; every fact is idempotent anyway, this only spares
#: the work (and lets the stage re-send a record's parts when a duplicate arrives).
SEEN_LIMIT = 32


def month_of(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m")


def is_month(text: str) -> bool:
    return MONTH_PATTERN.match(text) is not None


def _digest(event_id: str) -> str:
    # Short and fixed-size: a record keeps a few dozen of them.
    return hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()


# --- facts --------------------------------------------------------------------------------


ReportInput = (
    TriageDecision
    | DispatchEvent
    | FollowupScheduled
    | FollowupDue
    | FollowupOverdue
    | FollowupOutcome
    | CcdEngaged
    | CcdScreened
    | CcdSafetyPlan
    | CcdReferral
    | CcdDisposition
    | ConsultRequested
    | ConsultAnswered
    | ConsultClosed
    | ConsultOverdue
)
#: The ``[ccd]`` table of a policy file without one.
DEFAULT_CCD_WORK = CcdWork()


def _label(category: str | None, call_type: str | None) -> str | None:
    if category:
        return category
    if not call_type:
        return None
    text = " ".join(call_type.split())
    # CADs shout or whisper the same type ("ASSIST PERSON", "assist person"): one label.
    return text.title() if text.isupper() or text.islower() else text


def _decision_fact(decision: TriageDecision, zone: ZoneInfo) -> Fact:
    eligible: list[Pilot] = []
    missed: dict[Pilot, str] = {}
    for entry in decision.eligibility:
        if entry.eligible:
            eligible.append(entry.pilot)
        elif entry.reasons and set(entry.reasons) <= MISS_REASONS:
            eligible.append(entry.pilot)
            missed[entry.pilot] = entry.reasons[0]
    if "cn" in decision.pilots:
        eligible.append("cn")
    else:
        for reason in decision.reasons:
            why = reason.removeprefix("cn_ineligible:")
            if why != reason and why in MISS_REASONS:
                eligible.append("cn")
                missed["cn"] = why
                break
    return Fact(
        event_id=decision.event_id,
        kind="decision",
        key=decision.call_id,
        month=month_of(decision.call_received_at, zone),
        at=decision.call_received_at,
        revision=decision.revision,
        route=decision.route,
        eligible=list(dict.fromkeys(eligible)),
        missed=missed,
        label=_label(decision.category, decision.call_type),
        policy_version=decision.policy_version,
        rules_route=decision.rules_route,
    )


_DISPATCH_KINDS: dict[str, FactKind] = {
    "dispatch.assigned": "assigned",
    "dispatch.on_scene": "on_scene",
    "dispatch.fallback": "fallback",
    "dispatch.backup_requested": "backup",
}


def _steps_done(steps: SafetyPlanSteps) -> list[str]:
    return [name for name in SafetyPlanSteps.model_fields if getattr(steps, name)]


AssessmentEvent = CcdEngaged | CcdScreened | CcdSafetyPlan | CcdReferral | CcdDisposition
ConsultInput = ConsultRequested | ConsultAnswered | ConsultClosed | ConsultOverdue


def _assessment_fact(event: AssessmentEvent, base: dict[str, Any], ccd: CcdWork) -> Fact | None:
    """A clinician's event on a call, or None for one the CCD stage refuses (and
    dead-letters): a screening without a level, a referral to a resource not in the
    policy's list."""
    if isinstance(event, CcdEngaged):
        return Fact(**base, kind="engaged", key=event.call_id)
    if isinstance(event, CcdScreened):
        if screening_problem(event.answers) is not None:
            return None
        return Fact(
            **base, kind="screened", key=event.call_id, risk_level=risk_level(event.answers)
        )
    if isinstance(event, CcdSafetyPlan):
        steps = _steps_done(event.steps)
        return Fact(**base, kind="safety_plan", key=event.call_id, steps=steps)
    if isinstance(event, CcdReferral):
        if event.resource not in ccd.referral_resources:
            return None
        return Fact(
            **base,
            kind="referral",
            key=event.call_id,
            resource=event.resource,
            warm_handoff=event.warm_handoff,
        )
    return Fact(**base, kind="disposition", key=event.call_id, disposition=event.disposition)


def _consult_fact(event: ConsultInput, base: dict[str, Any], ccd: CcdWork) -> Fact | None:
    key = CONSULT_KEY_PREFIX + event.consult_id
    if isinstance(event, ConsultRequested):
        due = event.occurred_at + timedelta(minutes=ccd.consult_targets.minutes(event.urgency))
        return Fact(
            **base,
            kind="consult_requested",
            key=key,
            requested_by=event.requested_by,
            deadline=due,
        )
    if isinstance(event, ConsultAnswered):
        return Fact(**base, kind="consult_answered", key=key)
    # consult.closed and consult.overdue: "answered within target" needs neither.
    return None


def fact_of(event: ReportInput, zone: ZoneInfo, ccd: CcdWork | None = None) -> Fact | None:
    """What ``event`` contributes to a report, or None when no figure uses it. ``ccd``:
    the policy's ``[ccd]`` table (referral resources, consult targets); its defaults when
    None."""
    if isinstance(event, TriageDecision):
        return _decision_fact(event, zone)
    month = month_of(event.occurred_at, zone)
    base = {"event_id": event.event_id, "month": month, "at": event.occurred_at}
    if isinstance(event, AssessmentEvent):
        return _assessment_fact(event, base, ccd or DEFAULT_CCD_WORK)
    if isinstance(event, ConsultInput):
        return _consult_fact(event, base, ccd or DEFAULT_CCD_WORK)
    if isinstance(event, DispatchEvent):
        kind = _DISPATCH_KINDS.get(event.event_type)
        if kind == "on_scene":
            # Any responders' arrival ends a clinician's time on the line; only a team
            # pilot's, with its assignment time, is also a response time.
            timed = event.route in TEAM_PILOTS and event.assignment_to_on_scene_s is not None
            return Fact(
                **base,
                kind="on_scene",
                key=event.call_id,
                pilot=event.route if timed else None,
                label=_label(event.category, event.call_type),
                seconds=event.assignment_to_on_scene_s if timed else None,
            )
        if kind is None or event.route not in TEAM_PILOTS:
            return None
        if kind == "fallback" and event.reason not in FALLBACK_REASONS:
            return None
        return Fact(
            **base,
            kind=kind,
            key=event.call_id,
            pilot=event.route,
            label=_label(event.category, event.call_type),
            reason=FALLBACK_REASONS[event.reason] if kind == "fallback" else None,
        )
    if isinstance(event, FollowupScheduled):
        return Fact(
            **base,
            kind="scheduled",
            key=event.case_id,
            pilot=event.pilot,
            deadline=event.deadline,
            at_risk=event.at_risk,
        )
    if isinstance(event, FollowupOverdue):
        return Fact(**base, kind="overdue", key=event.case_id)
    if isinstance(event, FollowupOutcome):
        if event.outcome not in CLOSING_OUTCOMES:
            return None
        return Fact(**base, kind="outcome", key=event.case_id, outcome=event.outcome)
    return None


# --- records ------------------------------------------------------------------------------


class Mark(BaseModel):
    """When something happened, the month it counts in, and its value if any."""

    model_config = ConfigDict(frozen=True)

    month: str
    at: AwareDatetime
    value: float | str | None = None


def _earliest(current: Mark | None, new: Mark) -> Mark:
    # Earliest wins, ties by value: the result does not depend on arrival order.
    if current is None or (new.at, str(new.value)) < (current.at, str(current.value)):
        return new
    return current


def _latest(current: Mark | None, new: Mark) -> Mark:
    # Latest wins (the clinician's last word), ties by value: independent of arrival order.
    if current is None or (new.at, str(new.value)) > (current.at, str(current.value)):
        return new
    return current


class Record(BaseModel):
    """What the report keeps of one call (or follow-up case). Table value; JSON round-trip."""

    seq: int = 0
    seen: list[str] = Field(default_factory=list)
    # The effective decision: the highest revision applied.
    decision: str | None = None
    revision: int = 0
    month: str | None = None
    route: Route | None = None
    eligible: list[Pilot] = Field(default_factory=list)
    missed: dict[Pilot, str] = Field(default_factory=dict)
    label: str | None = None
    policy_version: str | None = None
    # Dispatch, per team pilot: the earliest event of each kind.
    assigned: dict[Pilot, Mark] = Field(default_factory=dict)
    on_scene: dict[Pilot, Mark] = Field(default_factory=dict)
    fallback: dict[Pilot, Mark] = Field(default_factory=dict)
    backup: dict[Pilot, Mark] = Field(default_factory=dict)
    dispatch_label: str | None = None
    # The follow-up case.
    scheduled: Mark | None = None
    case_pilot: ContactPilot | None = None
    deadline: AwareDatetime | None = None
    at_risk: bool = False
    overdue: Mark | None = None
    closed: Mark | None = None
    # The effective decision's rules route (set when a clinician's disposition decided it).
    rules_route: Route | None = None
    # Dispatch: the responders' first on-scene report, any route (ends time on the line).
    arrived: Mark | None = None
    # The clinicians' work on the call (ccd.assessments).
    engaged: Mark | None = None
    #: Event-id digest -> risk level, so that a screening counts once however often sent.
    screenings: dict[str, RiskLevel] = Field(default_factory=dict)
    #: The safety plan's completed steps, over all its events; None: no safety plan.
    plan_steps: list[str] | None = None
    #: Resource id -> whether any referral of the call to it was a warm handoff.
    referrals: dict[str, bool] = Field(default_factory=dict)
    disposition: Mark | None = None
    # A consult (ccd.consults): the request (value: who asked), its target time, the answer.
    consult_requested: Mark | None = None
    consult_due: AwareDatetime | None = None
    consult_answered: Mark | None = None
    #: Earliest and latest fact time per month, for "data from" and "data through".
    first: dict[str, AwareDatetime] = Field(default_factory=dict)
    last: dict[str, AwareDatetime] = Field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)


def accept(record: Record | None, fact: Fact) -> Record | None:
    """``record`` with ``fact`` applied, or None when the fact changes nothing (a duplicate,
    or a decision older than the one applied)."""
    current = record or Record()
    digest = _digest(fact.event_id)
    if digest in current.seen:
        return None
    update: dict[str, Any] = {}
    if fact.kind == "decision":
        if (fact.revision, digest) <= (current.revision, current.decision or ""):
            return None
        update = {
            "decision": digest,
            "revision": fact.revision,
            "month": fact.month,
            "route": fact.route,
            "eligible": fact.eligible,
            "missed": fact.missed,
            "label": fact.label,
            "policy_version": fact.policy_version,
            "rules_route": fact.rules_route,
        }
    elif fact.kind == "on_scene" and fact.pilot is None:
        update = {"arrived": _earliest(current.arrived, Mark(month=fact.month, at=fact.at))}
    elif fact.kind in ("assigned", "on_scene", "fallback", "backup"):
        assert fact.pilot is not None
        marks = dict(getattr(current, fact.kind))
        # A fallback's value is the reason it is missed under; the others' their seconds.
        value = fact.reason if fact.kind == "fallback" else fact.seconds
        mark = Mark(month=fact.month, at=fact.at, value=value)
        marks[fact.pilot] = _earliest(marks.get(fact.pilot), mark)
        update[fact.kind] = marks
        if fact.kind == "assigned" and current.dispatch_label is None:
            update["dispatch_label"] = fact.label
        if fact.kind == "on_scene":
            update["arrived"] = _earliest(current.arrived, Mark(month=fact.month, at=fact.at))
    elif fact.kind == "scheduled":
        mark = _earliest(current.scheduled, Mark(month=fact.month, at=fact.at))
        update = {"scheduled": mark}
        if mark is not current.scheduled:
            update |= {"case_pilot": fact.pilot, "at_risk": fact.at_risk}
        # A revised schedule (after a high screening) only brings the deadline forward, so
        # the earliest deadline is the one in force, whatever order the two arrive in.
        if fact.deadline is not None and (
            current.deadline is None or fact.deadline < current.deadline
        ):
            update["deadline"] = fact.deadline
    elif fact.kind == "overdue":
        update = {"overdue": _earliest(current.overdue, Mark(month=fact.month, at=fact.at))}
    elif fact.kind == "outcome":
        mark = Mark(month=fact.month, at=fact.at, value=fact.outcome)
        update = {"closed": _earliest(current.closed, mark)}
    else:
        update = _accept_ccd(current, fact, digest)
    if fact.kind == "on_scene" and fact.pilot is None:
        # An arrival only matters with a clinician on the line: it widens no month's
        # data range and touches no month by itself.
        return current.model_copy(
            update={**update, "seq": current.seq + 1, "seen": [*current.seen, digest][-SEEN_LIMIT:]}
        )
    first = current.first.get(fact.month)
    last = current.last.get(fact.month)
    return current.model_copy(
        update={
            **update,
            "seq": current.seq + 1,
            "seen": [*current.seen, digest][-SEEN_LIMIT:],
            "first": {**current.first, fact.month: min(first, fact.at) if first else fact.at},
            "last": {**current.last, fact.month: max(last, fact.at) if last else fact.at},
        }
    )


def _accept_ccd(current: Record, fact: Fact, digest: str) -> dict[str, Any]:
    """The update a clinician's or a consult's fact makes to a record."""
    mark = Mark(month=fact.month, at=fact.at)
    if fact.kind == "engaged":
        return {"engaged": _earliest(current.engaged, mark)}
    if fact.kind == "screened":
        assert fact.risk_level is not None
        return {"screenings": {**current.screenings, digest: fact.risk_level}}
    if fact.kind == "safety_plan":
        # Steps completed stay completed: the plan is the union of its events' steps.
        steps = set(current.plan_steps or ()) | set(fact.steps)
        return {"plan_steps": [s for s in SafetyPlanSteps.model_fields if s in steps]}
    if fact.kind == "referral":
        assert fact.resource is not None
        warm = current.referrals.get(fact.resource, False) or fact.warm_handoff
        return {"referrals": {**current.referrals, fact.resource: warm}}
    if fact.kind == "disposition":
        value = Mark(month=fact.month, at=fact.at, value=fact.disposition)
        return {"disposition": _latest(current.disposition, value)}
    if fact.kind == "consult_requested":
        request = Mark(month=fact.month, at=fact.at, value=fact.requested_by)
        earliest = _earliest(current.consult_requested, request)
        if earliest is current.consult_requested:
            return {}
        return {"consult_requested": earliest, "consult_due": fact.deadline}
    assert fact.kind == "consult_answered", fact.kind
    return {"consult_answered": _earliest(current.consult_answered, mark)}


# --- parts --------------------------------------------------------------------------------


def _share(record: Record, pilot: Pilot) -> tuple[str, str | None]:
    """Which part of ``pilot``'s eligible calls this call is in: ``("reached", None)``,
    ``("missed", reason)`` or ``("other", part name)``; exactly one, so the parts add up."""
    route = record.route
    if pilot == "ccd":
        if route == "ccd":
            return "reached", None
        if pilot in record.missed:
            return "missed", record.missed[pilot]
        return "other", "needed_in_person"
    if pilot == "cn":
        if record.scheduled is not None:
            return "reached", None
        if pilot in record.missed:
            return "missed", record.missed[pilot]
        return "other", "no_followup_scheduled"
    if pilot in record.assigned:
        return "reached", None
    if pilot in record.missed:
        return "missed", record.missed[pilot]
    if pilot in record.fallback:
        return "missed", str(record.fallback[pilot].value or "no_team_free")
    if route == pilot:
        return "other", "waiting_for_team"
    if route == "ccd":
        return "other", "resolved_by_phone"
    return "other", "other_responder"


def _reached_at(record: Record, pilot: Pilot) -> Mark | None:
    """The event that reached the call, for the pilots whose reaching is an event."""
    if pilot == "cn":
        return record.scheduled
    return record.assigned.get(pilot)


def _on_line_s(record: Record) -> float | None:
    """Seconds from the first ccd.engaged to the first on-scene report after it; None
    when the responders were there first, or never reported."""
    if record.engaged is None or record.arrived is None:
        return None
    seconds = (record.arrived.at - record.engaged.at).total_seconds()
    return seconds if seconds >= 0 else None


def _ccd_part(record: Record) -> dict[str, Any]:
    """The clinicians' work on the call, for the call's month (empty: none)."""
    work: dict[str, Any] = {}
    if record.engaged is not None:
        work["engaged"] = True
    if record.screenings:
        work["screenings"] = sorted(record.screenings.values(), key=RISK_LEVELS.index)
    if record.plan_steps is not None:
        work["plan_steps"] = len(record.plan_steps)
    if record.referrals:
        work["referrals"] = dict(sorted(record.referrals.items()))
    if record.disposition is not None:
        work["disposition"] = record.disposition.value
    if record.rules_route is not None and record.rules_route != record.route:
        work["override_from"] = record.rules_route
    if not work:
        return {}
    on_line = _on_line_s(record)
    if on_line is not None:
        work["on_line_s"] = on_line
    return {"ccd_work": True, **work}


def parts_of(record: Record) -> dict[str, Part]:
    """The record's part in every month it touches."""
    draft: dict[str, dict[str, Any]] = {}

    def part(month: str) -> dict[str, Any]:
        return draft.setdefault(
            month,
            {
                "reached": [],
                "missed": {},
                "other": {},
                "reached_in_other_month": [],
                "response": {},
                "backup": [],
                "followup": [],
            },
        )

    # Every month a fact fell in keeps a part, empty or not: a month never loses a part
    # it was sent, so a figure that moves (a decision arriving after its call's team was
    # assigned) is taken out of the month it leaves.
    for month in record.last:
        part(month)
    if record.month is not None:
        p = part(record.month)
        p |= {
            "route": record.route,
            "policy_version": record.policy_version,
            "eligible": list(record.eligible),
        }
        for pilot in record.eligible:
            share, what = _share(record, pilot)
            if share == "reached":
                p["reached"].append(pilot)
                mark = _reached_at(record, pilot)
                if mark is not None and mark.month != record.month:
                    p["reached_in_other_month"].append(pilot)
            elif share == "missed":
                p["missed"][pilot] = what
            else:
                p["other"][pilot] = what
        if p["reached"]:
            p["label"] = record.label or record.dispatch_label
        p |= _ccd_part(record)
    for pilot, mark in record.on_scene.items():
        if isinstance(mark.value, int | float):
            part(mark.month)["response"][pilot] = float(mark.value)
    for pilot, mark in record.backup.items():
        part(mark.month)["backup"].append(pilot)
    if record.consult_requested is not None:
        # A consult counts in the month it was requested, answered or not; an answer to a
        # consult whose request is not in the data counts nowhere.
        p = part(record.consult_requested.month)
        p["consult_by"] = record.consult_requested.value
        answered = record.consult_answered
        if answered is not None:
            p["consult"] = ["answered"]
            if record.consult_due is not None and answered.at <= record.consult_due:
                p["consult"].append("within_target")
    if record.scheduled is not None:
        # Every follow-up figure counts in the month the follow-up was scheduled, so that
        # no month completes more than it scheduled. Overdue and outcomes count only for a
        # case known to be scheduled: Care Navigation refuses outcomes for cases it does
        # not have.
        p = part(record.scheduled.month)
        flags = p["followup"]
        flags.append("scheduled")
        if record.at_risk:
            flags.append("at_risk")
        if record.overdue is not None:
            flags.append("overdue")
        if record.closed is not None:
            flags.append("completed")
            if record.deadline is not None and record.closed.at <= record.deadline:
                flags.append("within_48h")
            if record.closed.value == "connected_to_care":
                flags.append("connected_to_care")
        p["followup_pilot"] = record.case_pilot
        p["followup_elsewhere"] = (
            record.month != record.scheduled.month or "cn" not in record.eligible
        )
    return {
        month: Part(
            seq=record.seq, first_at=record.first.get(month), last_at=record.last.get(month), **p
        )
        for month, p in draft.items()
    }


def changed_parts(old: Record | None, new: Record) -> dict[str, Part]:
    """The parts of ``new`` whose figures differ from ``old``'s (new months included)."""
    before = parts_of(old) if old is not None else {}
    return {m: p for m, p in parts_of(new).items() if not p.same_figures(before.get(m))}


# --- totals -------------------------------------------------------------------------------


def _keys(part: Part) -> Iterator[tuple[Any, ...]]:
    if part.route is not None:
        yield ("route", part.route)
        if part.policy_version:
            yield ("policy", part.policy_version)
    for pilot in part.eligible:
        yield ("eligible", pilot)
    for pilot in part.reached:
        yield ("reached", pilot)
        if part.label:
            yield ("label", pilot, part.label)
    for pilot in part.reached_in_other_month:
        yield ("reached_in_other_month", pilot)
    reached = set(part.reached)
    if reached & HEART_PILOTS:
        yield ("heart",)
        if "ccd" in reached:
            yield ("phone",)
    for pilot, reason in part.missed.items():
        yield ("missed", pilot, reason)
    for pilot, what in part.other.items():
        yield ("other", pilot, what)
    for pilot, seconds in part.response.items():
        yield ("response", pilot, seconds)
    for pilot in part.backup:
        yield ("backup", pilot)
    for flag in part.followup:
        yield ("followup", "cn", flag)
        if part.followup_pilot is not None:
            yield ("followup", part.followup_pilot, flag)
    if part.followup_elsewhere:
        yield ("followup", "cn", "for_other_calls")
    yield from _ccd_keys(part)


def _ccd_keys(part: Part) -> Iterator[tuple[Any, ...]]:
    if part.ccd_work:
        yield ("ccd", "calls")
    if part.engaged:
        yield ("ccd", "engaged")
    for level in part.screenings:
        yield ("ccd_screening", level)
    if part.plan_steps is not None:
        yield ("ccd_plan", part.plan_steps)
    for resource, warm in part.referrals.items():
        yield ("ccd_referral", resource)
        if warm:
            yield ("ccd_warm", resource)
    if part.disposition is not None:
        yield ("ccd_disposition", part.disposition)
    if part.override_from is not None and part.route is not None:
        yield ("ccd_override", part.override_from, part.route)
    if part.on_line_s is not None:
        yield ("ccd_line", part.on_line_s)
    if part.consult_by is not None:
        yield ("consult", part.consult_by, "requested")
        for flag in part.consult:
            yield ("consult", part.consult_by, flag)


@dataclass
class Totals:
    """One month's sums over its parts. ``version`` (the sum of the parts' record sequence
    numbers) only grows, so of two snapshots of a month the larger version is newer."""

    counts: Counter[tuple[Any, ...]] = field(default_factory=Counter)
    version: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None

    def _count(self, key: tuple[Any, ...], n: int) -> None:
        # A figure that sums to zero is dropped, so equal sums compare equal.
        value = self.counts[key] + n
        if value:
            self.counts[key] = value
        else:
            del self.counts[key]

    def _seen(self, first_at: datetime | None, last_at: datetime | None) -> None:
        # Only ever widened: a replaced part's times were seen, and a call's facts keep
        # their times.
        if first_at is not None:
            self.first_at = first_at if self.first_at is None else min(self.first_at, first_at)
        if last_at is not None:
            self.last_at = last_at if self.last_at is None else max(self.last_at, last_at)

    def add(self, part: Part, sign: int = 1) -> None:
        for key in _keys(part):
            self._count(key, sign)
        self.version += sign * part.seq
        if sign > 0:
            self._seen(part.first_at, part.last_at)

    def replace(self, old: Part | None, new: Part) -> None:
        if old is not None:
            self.add(old, -1)
        self.add(new, 1)

    @classmethod
    def of(cls, parts: Iterable[Part]) -> Totals:
        totals = cls()
        for part in parts:
            totals.add(part)
        return totals

    def merge(self, other: Totals) -> None:
        """Add ``other``'s sums to these (a month's settled base to its live parts)."""
        for key, n in other.counts.items():
            self._count(key, n)
        self.version += other.version
        self._seen(other.first_at, other.last_at)

    def dump(self) -> dict[str, Any]:
        """JSON-ready; :meth:`load` gives back equal totals (keys are tuples of str/float)."""
        return {
            "counts": [[list(key), n] for key, n in self.counts.items()],
            "version": self.version,
            "first_at": self.first_at.isoformat() if self.first_at is not None else None,
            "last_at": self.last_at.isoformat() if self.last_at is not None else None,
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Totals:
        first_at, last_at = data.get("first_at"), data.get("last_at")
        return cls(
            counts=Counter({tuple(key): n for key, n in data["counts"]}),
            version=data["version"],
            first_at=datetime.fromisoformat(first_at) if first_at is not None else None,
            last_at=datetime.fromisoformat(last_at) if last_at is not None else None,
        )


# --- the report ---------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return float(ordered[ceil(0.9 * len(ordered)) - 1])


def _followups(counts: Counter[tuple[Any, ...]], who: str) -> FollowupFigures:
    return FollowupFigures(
        **{flag: counts[("followup", who, flag)] for flag in FOLLOWUP_FLAGS},
        for_other_calls=counts[("followup", who, "for_other_calls")],
    )


def _ordered_reasons(reasons: Iterable[str]) -> list[str]:
    return sorted(
        set(reasons), key=lambda r: (MISSED_REASONS.index(r) if r in MISSED_REASONS else 99, r)
    )


def month_days(month: str) -> tuple[date, date]:
    """The first and last day of ``month``."""
    year, mon = (int(x) for x in month.split("-"))
    return date(year, mon, 1), date(year, mon, calendar.monthrange(year, mon)[1])


def is_partial(
    month: str, zone: ZoneInfo, data_from: datetime | None, data_through: datetime | None
) -> bool:
    """Whether the events counted leave days of ``month`` out, at either end (in the
    policy's zone). A month without data is not partial: it has no figures to qualify."""
    if data_from is None or data_through is None:
        return False
    first_day, last_day = month_days(month)
    return (
        data_from.astimezone(zone).date() > first_day
        or data_through.astimezone(zone).date() < last_day
    )


def _pilot_report(
    pilot: Pilot, by_kind: dict[str, list[tuple[tuple[Any, ...], int]]], counts: Counter[Any]
) -> PilotReport:
    def of_pilot(kind: str) -> list[tuple[tuple[Any, ...], int]]:
        return [(k, n) for k, n in by_kind.get(kind, []) if k[1] == pilot]

    missed = {
        reason: counts[("missed", pilot, reason)]
        for reason in _ordered_reasons(k[2] for k, _ in of_pilot("missed"))
    }
    other = {
        part: counts[("other", pilot, part)]
        for part in OTHER_PARTS
        if counts[("other", pilot, part)]
    }
    samples = [float(k[2]) for k, n in of_pilot("response") for _ in range(n)]
    labels = sorted(((k[2], n) for k, n in of_pilot("label")), key=lambda i: (-i[1], i[0]))
    return PilotReport(
        pilot=pilot,
        name=PILOT_NAMES[pilot],
        eligible=counts[("eligible", pilot)],
        reached=counts[("reached", pilot)],
        missed=sum(missed.values()),
        missed_by_reason=missed,
        other=other,
        reached_in_other_month=counts[("reached_in_other_month", pilot)],
        response_time=ResponseTimes(
            calls=len(samples), median_s=median(samples), p90_s=p90(samples)
        )
        if samples
        else None,
        backup_requests=counts[("backup", pilot)],
        followups=_followups(counts, pilot),
        top_call_types=[
            CallTypeCount(call_type=label, calls=n) for label, n in labels[:TOP_CALL_TYPES]
        ],
    )


def _share_of(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _consults(counts: Counter[tuple[Any, ...]]) -> ConsultFigures:
    rows = [
        RequesterConsults(
            requested_by=who,
            requested=counts[("consult", who, "requested")],
            answered=counts[("consult", who, "answered")],
            answered_within_target=counts[("consult", who, "within_target")],
            share_within_target=_share_of(
                counts[("consult", who, "within_target")], counts[("consult", who, "requested")]
            ),
        )
        for who in REQUESTERS
    ]
    requested = sum(r.requested for r in rows)
    within = sum(r.answered_within_target for r in rows)
    return ConsultFigures(
        requested=requested,
        answered=sum(r.answered for r in rows),
        answered_within_target=within,
        share_within_target=_share_of(within, requested),
        by_requester=rows,
    )


def ccd_work_report(
    by_kind: dict[str, list[tuple[tuple[Any, ...], int]]],
    counts: Counter[tuple[Any, ...]],
    resources: Mapping[str, str],
) -> CcdWorkReport:
    """The Crisis Call Diversion section; every figure None when the month has no
    clinician event (a CAD export's replay has none: zeros would be no fact)."""
    consults = _consults(counts)
    if not counts[("ccd", "calls")] and not consults.requested:
        return CcdWorkReport()
    levels = {level: counts[("ccd_screening", level)] for level in RISK_LEVELS}
    plans = sum(n for k, n in by_kind.get("ccd_plan", []))
    all_six = counts[("ccd_plan", len(SafetyPlanSteps.model_fields))]
    referred = {k[1] for k, _ in by_kind.get("ccd_referral", [])}
    # The policy's resources in its order, then any it no longer lists.
    ids = [r for r in resources if r in referred] + sorted(referred - set(resources))
    by_resource = [
        ResourceReferrals(
            resource=r,
            name=resources.get(r, r),
            referrals=counts[("ccd_referral", r)],
            warm_handoffs=counts[("ccd_warm", r)],
        )
        for r in ids
    ]
    dispositions = {d: counts[("ccd_disposition", d)] for d in DISPOSITIONS}
    directions = sorted(
        ((k[1], k[2], n) for k, n in by_kind.get("ccd_override", [])),
        key=lambda d: (ROUTES.index(d[0]), ROUTES.index(d[1])),
    )
    line = [float(k[1]) for k, n in by_kind.get("ccd_line", []) for _ in range(n)]
    return CcdWorkReport(
        clinician_events=True,
        note=None,
        calls_engaged=counts[("ccd", "engaged")],
        screenings=ScreeningFigures(total=sum(levels.values()), by_risk_level=levels),
        safety_plans=SafetyPlanFigures(
            plans=plans, all_six_steps=all_six, fewer_steps=plans - all_six
        ),
        referrals=ReferralFigures(
            total=sum(r.referrals for r in by_resource),
            warm_handoffs=sum(r.warm_handoffs for r in by_resource),
            by_resource=by_resource,
        ),
        dispositions=DispositionFigures(calls=sum(dispositions.values()), by_value=dispositions),
        overrides=OverrideFigures(
            calls=sum(n for _, _, n in directions),
            by_direction=[
                OverrideDirection(rules_route=rules, route=route, calls=n)
                for rules, route, n in directions
            ],
        ),
        consults=consults,
        time_on_line=TimeOnLine(
            calls=len(line),
            median_s=median(line) if line else None,
            p90_s=p90(line) if line else None,
        ),
    )


def report_from_totals(
    totals: Totals,
    month: str,
    timezone: str,
    organisation: Organisation | None = None,
    resources: Mapping[str, str] | None = None,
) -> MonthReport:
    """The month's report from its totals; ``resources``: the policy's referral resources
    (id -> name), which name the referrals (the default ``[ccd]`` table's when None)."""
    counts = totals.counts
    by_kind: dict[str, list[tuple[tuple[Any, ...], int]]] = {}
    for key, n in counts.items():
        by_kind.setdefault(key[0], []).append((key, n))
    heart, phone = counts[("heart",)], counts[("phone",)]
    return MonthReport(
        month=month,
        timezone=timezone,
        organisation=organisation,
        version=totals.version,
        data_from=totals.first_at,
        data_through=totals.last_at,
        partial=is_partial(month, ZoneInfo(timezone), totals.first_at, totals.last_at),
        policy_versions=sorted(k[1] for k, _ in by_kind.get("policy", [])),
        calls=sum(counts[("route", r)] for r in ROUTES),
        routes={r: counts[("route", r)] for r in ROUTES},
        heart_handled=heart,
        resolved_by_phone=phone,
        phone_share=phone / heart if heart else None,
        followups=_followups(counts, "cn"),
        pilots=[_pilot_report(pilot, by_kind, counts) for pilot in PILOTS],
        ccd_work=ccd_work_report(
            by_kind,
            counts,
            resources if resources is not None else DEFAULT_CCD_WORK.referral_resources,
        ),
    )


def organisation_of(policy: Policy) -> Organisation | None:
    """The names a report is headed with, from the policy; None when it names none."""
    names = policy.organisation
    return Organisation(**names.model_dump()) if names is not None else None


# --- the whole fold -----------------------------------------------------------------------


@dataclass
class AggregateState:
    """Every record, every month's parts and totals. :func:`apply` updates it in place (a
    copy per event would make a month's replay quadratic) and returns it."""

    timezone: str = "America/New_York"
    organisation: Organisation | None = None
    ccd: CcdWork = field(default_factory=CcdWork)
    records: dict[str, Record] = field(default_factory=dict)
    parts: dict[str, dict[str, Part]] = field(default_factory=dict)
    totals: dict[str, Totals] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.zone = ZoneInfo(self.timezone)


def new_state(policy: Policy | None = None) -> AggregateState:
    """An empty state in the policy's time zone (the default policy's when None)."""
    policy = policy or load_policy()
    return AggregateState(
        timezone=policy.timezone, organisation=organisation_of(policy), ccd=policy.ccd_work
    )


def apply_fact(state: AggregateState, fact: Fact) -> AggregateState:
    old = state.records.get(fact.key)
    new = accept(old, fact)
    if new is None:
        return state
    state.records[fact.key] = new
    for month, part in changed_parts(old, new).items():
        parts = state.parts.setdefault(month, {})
        state.totals.setdefault(month, Totals()).replace(parts.get(fact.key), part)
        parts[fact.key] = part
    return state


def apply(state: AggregateState, event: ReportInput) -> AggregateState:
    """Fold one decision, dispatch, follow-up, clinician or consult event into ``state``."""
    fact = fact_of(event, state.zone, state.ccd)
    return apply_fact(state, fact) if fact is not None else state


def report(state: AggregateState, month: str) -> MonthReport:
    """The month's figures (all zero for a month without data)."""
    if not is_month(month):
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    return report_from_totals(
        state.totals.get(month, Totals()),
        month,
        state.timezone,
        state.organisation,
        state.ccd.referral_resources,
    )
