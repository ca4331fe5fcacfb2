"""Builders for the clinicians' events (``ccd.assessments``, ``ccd.consults``) that the
Crisis Call Diversion section counts. Call, clinician and consult ids carry a telling
prefix, so that a leak of any id into a report is easy to find."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from heart.schemas import DispatchEvent, TriageDecision
from heart.schemas.ccd import (
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    ConsultAnswered,
    ConsultClosed,
    ConsultRequested,
    CssrsAnswers,
    SafetyPlanSteps,
)
from tests.agents.reporting.synthetic import cid, decision, dispatch, local

#: An opaque staff id (it must hold a digit) that no report may show.
CLINICIAN = "SECRETCLIN-7"
CONSULT_PREFIX = "SECRETCONSULT"

#: One valid set of answers per risk level (and the Q6 routes to two of them).
ANSWERS: dict[str, CssrsAnswers] = {
    "none": CssrsAnswers(q1=False, q2=False, q6=False),
    "low": CssrsAnswers(q1=True, q2=False, q6=False),
    "moderate": CssrsAnswers(q1=True, q2=True, q3=True, q4=False, q5=False, q6=False),
    "moderate_q6": CssrsAnswers(q1=False, q2=False, q6=True, q6_when="longer_ago"),
    "high": CssrsAnswers(q1=True, q2=True, q3=True, q4=True, q5=False, q6=False),
    "high_q6": CssrsAnswers(q1=False, q2=False, q6=True, q6_when="past_3_months"),
    # Q2 yes, Q3 to Q5 missing: the CCD stage dead-letters it.
    "incomplete": CssrsAnswers(q1=True, q2=True, q6=False),
}
STEPS = tuple(SafetyPlanSteps.model_fields)


def call(name: str, received: datetime, route: str = "ccd") -> TriageDecision:
    return decision(
        name, route, received, "Mental Health Crisis", eligibility={"ccd": []}, pilots=["ccd"]
    )


def overridden(
    name: str, received: datetime, rules_route: str, route: str, revision: int = 2
) -> TriageDecision:
    """The call's re-decision by a clinician's disposition: ``route`` in force, the rules'
    ``rules_route`` kept."""
    redecided = decision(
        name, route, received, "Mental Health Crisis",
        eligibility={"ccd": []}, pilots=["ccd"], revision=revision,
    )  # fmt: skip
    return redecided.model_copy(update={"rules_route": rules_route})


def _base(kind: str, name: str, at: datetime, eid: str | None) -> dict[str, Any]:
    return {
        "event_id": eid or f"{kind}-{name}-{at:%d%H%M%S}",
        "occurred_at": at,
        "call_id": cid(name),
        "clinician_id": CLINICIAN,
    }


def engaged(name: str, at: datetime, eid: str | None = None) -> CcdEngaged:
    return CcdEngaged(**_base("eng", name, at, eid))


def screened(name: str, at: datetime, answers: str, eid: str | None = None) -> CcdScreened:
    return CcdScreened(**_base("scr", name, at, eid), answers=ANSWERS[answers])


def plan(name: str, at: datetime, steps: int | set[str], eid: str | None = None) -> CcdSafetyPlan:
    """A safety plan with these steps completed (an int: the first that many)."""
    done = set(STEPS[:steps]) if isinstance(steps, int) else steps
    flags = {step: step in done for step in STEPS}
    return CcdSafetyPlan(
        **_base("plan", name, at, eid), steps=SafetyPlanSteps(**flags), record_ref="EHR:42"
    )


def referral(
    name: str, at: datetime, resource: str, warm: bool, eid: str | None = None
) -> CcdReferral:
    return CcdReferral(**_base("ref", name, at, eid), resource=resource, warm_handoff=warm)


def disposition(name: str, at: datetime, value: str, eid: str | None = None) -> CcdDisposition:
    return CcdDisposition(**_base("disp", name, at, eid), disposition=value)


def consult_id(name: str) -> str:
    return f"{CONSULT_PREFIX}-{name}"


def requested(
    name: str, at: datetime, by: str, urgency: str, eid: str | None = None
) -> ConsultRequested:
    return ConsultRequested(
        event_id=eid or f"creq-{name}",
        occurred_at=at,
        consult_id=consult_id(name),
        requested_by=by,
        call_id=cid(name),
        urgency=urgency,
    )


def answered(name: str, at: datetime, eid: str | None = None) -> ConsultAnswered:
    return ConsultAnswered(
        event_id=eid or f"cans-{name}-{at:%d%H%M%S}",
        occurred_at=at,
        consult_id=consult_id(name),
        clinician_id=CLINICIAN,
    )


def closed(name: str, at: datetime) -> ConsultClosed:
    return ConsultClosed(
        event_id=f"cclose-{name}", occurred_at=at, consult_id=consult_id(name),
        clinician_id=CLINICIAN,
    )  # fmt: skip


def on_scene(
    name: str, at: datetime, route: str, seconds: float | None = None, eid: str | None = None
) -> DispatchEvent:
    """Responders on scene: a team pilot's with its assignment time, or police's."""
    return dispatch(
        name, "on_scene", at, route, assignment_to_on_scene_s=seconds,
        event_id=eid or f"on_scene-{name}-{at:%d%H%M%S}",
    )  # fmt: skip


def minutes(at: datetime, n: float) -> datetime:
    return at + timedelta(minutes=n)


def busy_month() -> list[Any]:
    """Three calls a clinician worked and two consults on 10 July 2024, every figure of
    the section non-zero (the page, summary and broker tests read these)."""
    at = local(2024, 7, 10, 9)
    return [
        call("A", at),
        overridden("A", at, "ccd", "crt"),
        engaged("A", at),
        screened("A", minutes(at, 2), "high"),
        plan("A", minutes(at, 4), 6),
        referral("A", minutes(at, 5), "988", warm=True),
        disposition("A", minutes(at, 6), "dispatch_crt"),
        on_scene("A", minutes(at, 12), "crt", seconds=300),
        call("B", at),
        engaged("B", at),
        screened("B", minutes(at, 2), "low"),
        plan("B", minutes(at, 4), 4),
        referral("B", minutes(at, 5), "outpatient", warm=False),
        disposition("B", minutes(at, 6), "resolved_by_phone"),
        call("C", at, route="crt"),
        overridden("C", at, "crt", "ccd"),
        engaged("C", at),
        disposition("C", minutes(at, 3), "resolved_by_phone"),
        requested("K1", at, "dispatcher", "urgent"),
        answered("K1", minutes(at, 1)),
        requested("K2", at, "crt", "soon"),
    ]
