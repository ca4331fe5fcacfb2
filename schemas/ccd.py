"""Crisis Call Diversion clinicians' work: ``ccd.assessments`` (keyed by ``call_id``) and
``ccd.consults`` (keyed by ``consult_id``).

These events carry what a clinician did, never what was said: answers as yes/no, safety
plan steps as completion flags, resources as ids from the policy's list. The clinical
record stays in the clinical system (``record_ref`` points to it). So that a narrative
field cannot slip onto a topic, these models refuse unknown fields instead of ignoring
them as the other events do: a producer adding a field here must wait for consumers that
know it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from heart.schemas.base import STAFF_ID_PATTERN, Event, WireModel

#: A clinician's id is an opaque staff id.
CLINICIAN_ID_PATTERN = STAFF_ID_PATTERN
#: A referral resource's id, as the policy's ``[ccd.referral_resources]`` table keys it.
RESOURCE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
#: A pointer into the clinical record system: no whitespace, so no sentence fits in it.
RECORD_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/#-]*$"

ClinicianId = Annotated[str, Field(min_length=1, max_length=64, pattern=CLINICIAN_ID_PATTERN)]
ResourceId = Annotated[str, Field(min_length=1, max_length=64, pattern=RESOURCE_ID_PATTERN)]

#: The C-SSRS screener's risk levels, as its triage points name them, lowest first.
RiskLevel = Literal["none", "low", "moderate", "high"]
RISK_LEVELS: tuple[RiskLevel, ...] = ("none", "low", "moderate", "high")
#: When the suicidal behaviour of Q6 happened, as the screener asks it.
BehaviourWhen = Literal["past_3_months", "longer_ago"]

Disposition = Literal[
    "resolved_by_phone",
    "dispatch_crt",
    "dispatch_cor",
    "police_needed",
    "ems_needed",
    "transferred_988",
    "disconnected",
]
Requester = Literal["dispatcher", "police", "crt", "cor"]
#: Most urgent first: the consult queue's order (targets in the policy's ``[ccd.consult_targets]``).
Urgency = Literal["urgent", "soon", "routine"]
URGENCIES: tuple[Urgency, ...] = ("urgent", "soon", "routine")

_CallId = Annotated[str, Field(min_length=1, max_length=64)]
_ConsultId = Annotated[str, Field(min_length=1, max_length=64)]


class _Closed(WireModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _CcdEvent(Event):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- ccd.assessments ----------------------------------------------------------------------


class CssrsAnswers(_Closed):
    """The Columbia Suicide Severity Rating Scale screener's yes/no answers.

    As the screener is given, Q3 to Q5 are asked only when Q2 is yes, and the timing of
    Q6 only when Q6 is yes; those answers are absent otherwise. Which answers a screening
    must have is checked by the CCD stage (``heart.agents.ccd.screening``), which
    dead-letters an incomplete one with its reason.
    """

    q1: bool = Field(description="Wished to be dead or not wake up (past month).")
    q2: bool = Field(description="Had thoughts of killing oneself (past month).")
    q3: bool | None = Field(None, description="Thought about how (method); asked if Q2 yes.")
    q4: bool | None = Field(None, description="Intention of acting on them; asked if Q2 yes.")
    q5: bool | None = Field(None, description="Worked out details / a plan; asked if Q2 yes.")
    q6: bool = Field(description="Ever done, started or prepared to do anything to end one's life.")
    q6_when: BehaviourWhen | None = Field(
        None, description="When Q6's behaviour happened; asked if Q6 yes."
    )


class SafetyPlanSteps(_Closed):
    """The six steps of the Stanley-Brown Safety Planning Intervention: completed or not."""

    warning_signs: bool = Field(description="1. Warning signs.")
    internal_coping: bool = Field(description="2. Internal coping strategies.")
    distraction: bool = Field(description="3. People and social settings that distract.")
    people_for_help: bool = Field(description="4. People to ask for help.")
    professionals: bool = Field(description="5. Professionals and agencies (988 among them).")
    safe_environment: bool = Field(description="6. Making the environment safe.")

    @property
    def completed(self) -> int:
        return sum(getattr(self, name) for name in SafetyPlanSteps.model_fields)


class CcdEngaged(_CcdEvent):
    """A clinician joins a call: on a ``ccd`` route, or on the line of another route."""

    event_type: Literal["ccd.engaged"] = "ccd.engaged"
    call_id: _CallId
    clinician_id: ClinicianId


class CcdScreened(_CcdEvent):
    event_type: Literal["ccd.screened"] = "ccd.screened"
    call_id: _CallId
    clinician_id: ClinicianId
    answers: CssrsAnswers


class CcdSafetyPlan(_CcdEvent):
    event_type: Literal["ccd.safety_plan"] = "ccd.safety_plan"
    call_id: _CallId
    clinician_id: ClinicianId
    steps: SafetyPlanSteps
    record_ref: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=RECORD_REF_PATTERN,
        description="Opaque pointer to the plan in the clinical record system.",
    )


class CcdReferral(_CcdEvent):
    event_type: Literal["ccd.referral"] = "ccd.referral"
    call_id: _CallId
    clinician_id: ClinicianId
    resource: ResourceId = Field(description="A key of the policy's referral resources.")
    warm_handoff: bool = Field(description="The clinician connected the person in person.")


class CcdDisposition(_CcdEvent):
    """The clinician's outcome: it overrules the policy's route (hours and area still apply)."""

    event_type: Literal["ccd.disposition"] = "ccd.disposition"
    call_id: _CallId
    clinician_id: ClinicianId
    disposition: Disposition


CcdAssessmentEvent = Annotated[
    CcdEngaged | CcdScreened | CcdSafetyPlan | CcdReferral | CcdDisposition,
    Field(discriminator="event_type"),
]


# --- ccd.consults -------------------------------------------------------------------------


class ConsultRequested(_CcdEvent):
    """A dispatcher (function 5) or responders in the field (function 7) ask a clinician."""

    event_type: Literal["consult.requested"] = "consult.requested"
    consult_id: _ConsultId
    requested_by: Requester
    call_id: _CallId | None = None
    team_id: str | None = Field(None, min_length=1, max_length=64)
    urgency: Urgency

    @model_validator(mode="after")
    def _names_call_or_team(self) -> ConsultRequested:
        if self.call_id is None and self.team_id is None:
            raise ValueError("a consult names its call_id, its team_id, or both")
        return self


class ConsultAnswered(_CcdEvent):
    event_type: Literal["consult.answered"] = "consult.answered"
    consult_id: _ConsultId
    clinician_id: ClinicianId


class ConsultClosed(_CcdEvent):
    event_type: Literal["consult.closed"] = "consult.closed"
    consult_id: _ConsultId
    clinician_id: ClinicianId


class ConsultOverdue(_CcdEvent):
    """A consult still unanswered past its urgency's target; sent once per consult."""

    event_type: Literal["consult.overdue"] = "consult.overdue"
    consult_id: _ConsultId
    requested_by: Requester
    urgency: Urgency
    call_id: _CallId | None = None
    team_id: str | None = Field(None, min_length=1, max_length=64)
    requested_at: AwareDatetime
    due_at: AwareDatetime = Field(description="requested_at plus the urgency's target.")


ConsultEvent = Annotated[
    ConsultRequested | ConsultAnswered | ConsultClosed | ConsultOverdue,
    Field(discriminator="event_type"),
]
