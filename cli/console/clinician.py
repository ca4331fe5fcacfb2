"""The clinician's forms and the consult buttons, turned into CCD events.

Each builder takes the JSON a page posted and returns the event to send (:class:`Action`),
or raises :class:`FormProblem` naming the field to fix; nothing is sent then. The forms
carry what a clinician did, never what was said: yes/no answers, completion flags, ids from
the policy's lists and an opaque record reference. A key a form does not have (a
free-text note, say) is refused rather than dropped, as the CCD schemas refuse it.

The screener is checked here by the CCD stage's own rule
(:func:`heart.agents.ccd.screening.screening_problem`): Q3 to Q5 are answered only after a
yes to Q2, and Q6's timing only after a yes to Q6.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from heart.agents.ccd.screening import screening_problem
from heart.cli.console import stale
from heart.cli.console.board import Board
from heart.policy.model import Policy
from heart.schemas.base import Event
from heart.schemas.ccd import (
    URGENCIES,
    BehaviourWhen,
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    ConsultAnswered,
    ConsultClosed,
    ConsultRequested,
    CssrsAnswers,
    Disposition,
    Requester,
    SafetyPlanSteps,
)
from heart.streams.codec import describe_validation_error
from heart.streams.topics import CCD_ASSESSMENTS, CCD_CONSULTS, TopicSpec

QUESTIONS: tuple[str, ...] = ("q1", "q2", "q3", "q4", "q5", "q6")
#: Always asked; Q3 to Q5 follow a yes to Q2.
ALWAYS_ASKED: tuple[str, ...] = ("q1", "q2", "q6")
STEPS: tuple[str, ...] = tuple(SafetyPlanSteps.model_fields)
DISPOSITIONS: tuple[str, ...] = get_args(Disposition)
WHEN: tuple[str, ...] = get_args(BehaviourWhen)


class FormProblem(ValueError):
    """A form that cannot become an event: ``field`` is the form's field to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Action:
    """An event to send, where, and what to tell the person about it."""

    topic: TopicSpec
    key: str
    event: Event
    warning: str | None = None


def form_config(policy: Policy) -> dict[str, Any]:
    """What the clinician page's forms offer: question and step labels from the schemas,
    referral resources from the policy, the dispositions and urgencies from the wire."""
    return {
        "questions": [_labelled(CssrsAnswers, q) for q in QUESTIONS],
        "always_asked": list(ALWAYS_ASKED),
        "q6_when": list(WHEN),
        "steps": [_labelled(SafetyPlanSteps, step) for step in STEPS],
        "resources": dict(policy.ccd_work.referral_resources),
        "dispositions": list(DISPOSITIONS),
        "urgencies": list(URGENCIES),
    }


def _labelled(model: type[BaseModel], name: str) -> dict[str, str]:
    return {"id": name, "label": (model.model_fields[name].description or name).rstrip(".")}


# --- ccd.assessments ----------------------------------------------------------------------


def engage(body: Mapping[str, Any], clinician_id: str, board: Board, now: datetime) -> Action:
    _only(body, "call_id")
    call_id = _id(body, "call_id", "choose a call from the list")
    event = _build(CcdEngaged, call_id=call_id, clinician_id=clinician_id, occurred_at=now)
    return _assessment(event, board, clinician_id)


def screened(body: Mapping[str, Any], clinician_id: str, board: Board, now: datetime) -> Action:
    _only(body, "call_id", "answers")
    call_id = _id(body, "call_id", "choose a call from the list")
    raw = body.get("answers")
    if not isinstance(raw, Mapping):
        raise FormProblem("q1", "answers: answer the screener's questions")
    _only(raw, *QUESTIONS, "q6_when")
    answers: dict[str, Any] = {q: _yes_no(raw, q) for q in QUESTIONS}
    for q in ALWAYS_ASKED:
        if answers[q] is None:
            raise FormProblem(q, f"{q}: answer yes or no; Q1, Q2 and Q6 are always asked")
    when = raw.get("q6_when")
    if when is not None and when not in WHEN:
        raise FormProblem("q6_when", f"q6_when: choose {' or '.join(WHEN)}")
    answers["q6_when"] = when
    checked = _build(CssrsAnswers, **answers)
    problem = screening_problem(checked)
    if problem is not None:
        first = re.search(r"q\d(?:_when)?", problem.detail)
        raise FormProblem(first.group(0) if first else "q2", f"Screener: {problem.detail}")
    event = _build(
        CcdScreened, call_id=call_id, clinician_id=clinician_id, answers=checked, occurred_at=now
    )
    return _assessment(event, board, clinician_id)


def safety_plan(body: Mapping[str, Any], clinician_id: str, board: Board, now: datetime) -> Action:
    _only(body, "call_id", "steps", "record_ref")
    call_id = _id(body, "call_id", "choose a call from the list")
    raw = body.get("steps")
    if not isinstance(raw, Mapping):
        raise FormProblem("steps", "steps: tick the safety plan steps completed")
    _only(raw, *STEPS)
    # A checkbox left unticked is a step not completed.
    steps = {step: bool(_yes_no(raw, step)) for step in STEPS}
    if not any(steps.values()):
        raise FormProblem("steps", "steps: tick the steps completed with the person; none is")
    record_ref = body.get("record_ref")
    if isinstance(record_ref, str):
        record_ref = record_ref.strip() or None
    try:
        event = CcdSafetyPlan(
            call_id=call_id,
            clinician_id=clinician_id,
            steps=SafetyPlanSteps(**steps),
            record_ref=record_ref,
            occurred_at=now,
        )
    except ValidationError as exc:
        if any(err["loc"][:1] == ("record_ref",) for err in exc.errors()):
            raise FormProblem(
                "record_ref",
                "record_ref: the plan's id in the clinical record system: letters, digits and "
                ". _ : / # - only, no spaces, at most 128 characters (or leave it empty)",
            ) from None
        raise _problem(exc) from None
    return _assessment(event, board, clinician_id)


def referral(
    body: Mapping[str, Any],
    clinician_id: str,
    board: Board,
    now: datetime,
    resources: Mapping[str, str],
) -> Action:
    _only(body, "call_id", "resource", "warm_handoff")
    call_id = _id(body, "call_id", "choose a call from the list")
    resource = body.get("resource")
    if resource not in resources:
        raise FormProblem(
            "resource", f"resource: choose one of the policy's resources ({', '.join(resources)})"
        )
    event = _build(
        CcdReferral,
        call_id=call_id,
        clinician_id=clinician_id,
        resource=resource,
        warm_handoff=bool(_yes_no(body, "warm_handoff")),
        occurred_at=now,
    )
    return _assessment(event, board, clinician_id)


def disposition(body: Mapping[str, Any], clinician_id: str, board: Board, now: datetime) -> Action:
    _only(body, "call_id", "disposition")
    call_id = _id(body, "call_id", "choose a call from the list")
    chosen = body.get("disposition")
    if chosen not in DISPOSITIONS:
        raise FormProblem("disposition", f"disposition: choose one of {', '.join(DISPOSITIONS)}")
    event = _build(
        CcdDisposition,
        call_id=call_id,
        clinician_id=clinician_id,
        disposition=chosen,
        occurred_at=now,
    )
    return _assessment(event, board, clinician_id)


def _assessment(event: Any, board: Board, clinician_id: str) -> Action:
    warning = stale.assessment(board, event.call_id, event.event_type, clinician_id)
    return Action(CCD_ASSESSMENTS, event.call_id, event, warning)


# --- ccd.consults -------------------------------------------------------------------------


def answer(body: Mapping[str, Any], clinician_id: str, board: Board, now: datetime) -> Action:
    _only(body, "consult_id")
    consult_id = _id(body, "consult_id", "choose a consult from the queue")
    event = _build(
        ConsultAnswered, consult_id=consult_id, clinician_id=clinician_id, occurred_at=now
    )
    warning = stale.consult(board.consults.get(consult_id), consult_id, "answer")
    return Action(CCD_CONSULTS, consult_id, event, warning)


def close(body: Mapping[str, Any], clinician_id: str, board: Board, now: datetime) -> Action:
    _only(body, "consult_id")
    consult_id = _id(body, "consult_id", "choose a consult from the queue")
    event = _build(ConsultClosed, consult_id=consult_id, clinician_id=clinician_id, occurred_at=now)
    warning = stale.consult(board.consults.get(consult_id), consult_id, "close")
    return Action(CCD_CONSULTS, consult_id, event, warning)


def request(
    body: Mapping[str, Any],
    requested_by: Requester,
    board: Board,
    now: datetime,
    *,
    call_id: str | None = None,
    team_id: str | None = None,
) -> Action:
    """A consult asked of a clinician. A dispatcher names the call in the form; a team's
    call and team id come from the board and the users file, never from the form."""
    if requested_by == "dispatcher":
        _only(body, "call_id", "urgency")
        call_id = _id(body, "call_id", "choose a call from the board")
    else:
        _only(body, "urgency")
    urgency = body.get("urgency")
    if urgency not in URGENCIES:
        raise FormProblem("urgency", f"urgency: choose one of {', '.join(URGENCIES)}")
    event = _build(
        ConsultRequested,
        consult_id=f"con-{uuid.uuid4().hex[:16]}",
        requested_by=requested_by,
        call_id=call_id,
        team_id=team_id,
        urgency=urgency,
        occurred_at=now,
    )
    warning = stale.consult_request(board, call_id) if requested_by == "dispatcher" else None
    return Action(CCD_CONSULTS, event.consult_id, event, warning)


# --- helpers ------------------------------------------------------------------------------


def _only(body: Mapping[str, Any], *fields: str) -> None:
    """Refuse a key the form does not have: a note typed into a crafted request never
    reaches a topic, even as a refused field."""
    for key in body:
        if key not in fields:
            raise FormProblem(
                str(key), f"{key}: not a field of this form (it has {', '.join(fields)})"
            )


def _id(body: Mapping[str, Any], name: str, fix: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise FormProblem(name, f"{name}: {fix}")
    return value


def _yes_no(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise FormProblem(name, f"{name}: answer yes or no")


def _build(model: type[Any], **fields: Any) -> Any:
    try:
        return model(**fields)
    except ValidationError as exc:
        raise _problem(exc) from None


def _problem(exc: ValidationError) -> FormProblem:
    loc = exc.errors(include_url=False, include_input=False)[0]["loc"]
    return FormProblem(str(loc[-1]) if loc else "form", describe_validation_error(exc))
