"""The monthly report on the wire: ``reports.monthly`` (:class:`MonthReport`) and the
reporting stage's internal ``heart.reports.commands`` (:class:`ReportCommand`, with the
:class:`Fact` and :class:`Part` it carries). Counts only: no personal data.

The terms are those of :data:`heart.schemas.glossary.GLOSSARY`; how each figure is counted
is set out in ``heart.agents.reporting.aggregate``, which computes them.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from heart.schemas.base import WireModel
from heart.schemas.ccd import Disposition, Requester, RiskLevel
from heart.schemas.followup import ContactPilot
from heart.schemas.glossary import GLOSSARY
from heart.schemas.triage import Pilot, Route

MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

FactKind = Literal[
    "decision",
    "assigned",
    "on_scene",
    "fallback",
    "backup",
    "scheduled",
    "overdue",
    "outcome",
    # A CCD clinician's work on a call (ccd.assessments).
    "engaged",
    "screened",
    "safety_plan",
    "referral",
    "disposition",
    # A consult (ccd.consults), keyed by CONSULT_KEY_PREFIX + its consult id.
    "consult_requested",
    "consult_answered",
]
FollowupFlag = Literal[
    "scheduled", "at_risk", "completed", "within_48h", "connected_to_care", "overdue"
]
FOLLOWUP_FLAGS: tuple[FollowupFlag, ...] = get_args(FollowupFlag)

#: What became of an eligible call a pilot neither reached nor missed. With reached and
#: missed these parts add up to eligible, per pilot and month.
OtherPart = Literal[
    "needed_in_person",
    "waiting_for_team",
    "resolved_by_phone",
    "other_responder",
    "no_followup_scheduled",
]
OTHER_PARTS: tuple[OtherPart, ...] = get_args(OtherPart)
DISPOSITIONS: tuple[Disposition, ...] = get_args(Disposition)
REQUESTERS: tuple[Requester, ...] = get_args(Requester)
ConsultFlag = Literal["answered", "within_target"]
#: A consult's record key: the prefix keeps a consult id from ever naming a call's record.
CONSULT_KEY_PREFIX = "consult:"
#: Longest record key: a call or case id (64), or a consult id (64) with its prefix.
KEY_MAX = 64 + len(CONSULT_KEY_PREFIX)
#: What the Crisis Call Diversion section says for a month without clinician events.
NO_CLINICIAN_EVENTS = (
    "No clinician events: a CAD export records none; these figures come only from the "
    "clinicians' own events (ccd.assessments, ccd.consults), so none are shown rather "
    "than zeros."
)
#: Each part as pages and terminal summaries name it.
OTHER_PART_LABELS: dict[str, str] = {
    # CCD: the call taker judged someone must go, or a weapon or violence was reported.
    "needed_in_person": "needed someone in person",
    # CRT, CoR: routed to the pilot, no team assigned and none refused by the data's end.
    "waiting_for_team": "still waiting for a team",
    # CRT, CoR: a CCD clinician closed the call by phone instead.
    "resolved_by_phone": "resolved by phone instead",
    # CRT, CoR: routed to police or to the other team pilot (no one needed in person and
    # no clinician for the call, or re-decided).
    "other_responder": "went to police or another team",
    # CN: no contact to follow up (no team went), or the contact had not ended.
    "no_followup_scheduled": "no follow-up scheduled",
}


class Fact(WireModel):
    """One input event reduced to what the report needs. ``key`` (the call or case id) only
    routes the fact to its record; it never reaches a report."""

    event_id: str = Field(min_length=1, max_length=128)
    kind: FactKind
    key: str = Field(min_length=1, max_length=KEY_MAX)
    month: str = Field(pattern=MONTH_PATTERN.pattern)
    at: AwareDatetime
    pilot: Pilot | None = None
    revision: int = 1
    route: Route | None = None
    eligible: list[Pilot] = Field(default_factory=list)
    missed: dict[Pilot, str] = Field(default_factory=dict)
    label: str | None = None
    policy_version: str | None = None
    seconds: float | None = None
    deadline: AwareDatetime | None = None
    at_risk: bool = False
    outcome: str | None = None
    #: A dispatch fallback's missed reason (no_team_free or stale).
    reason: str | None = None
    #: A decision's rules route, when a clinician's disposition decided it.
    rules_route: Route | None = None
    #: ccd.screened: the C-SSRS risk level.
    risk_level: RiskLevel | None = None
    #: ccd.safety_plan: the Stanley-Brown steps completed, by field name.
    steps: list[str] = Field(default_factory=list)
    #: ccd.referral: the resource id and whether it was a warm handoff.
    resource: str | None = None
    warm_handoff: bool = False
    #: ccd.disposition: the clinician's outcome.
    disposition: Disposition | None = None
    #: consult.requested: who asked.
    requested_by: Requester | None = None


class Part(BaseModel):
    """One record's contribution to one month; what the month's totals sum."""

    model_config = ConfigDict(frozen=True)

    seq: int = 0
    route: Route | None = None
    policy_version: str | None = None
    eligible: list[Pilot] = Field(default_factory=list)
    missed: dict[Pilot, str] = Field(default_factory=dict)
    #: Eligible pilots that took the call; with ``missed`` and ``other``, each eligible
    #: pilot is in exactly one of the three.
    reached: list[Pilot] = Field(default_factory=list)
    other: dict[Pilot, OtherPart] = Field(default_factory=dict)
    #: Reached pilots whose reaching event (a team assigned, a follow-up scheduled) fell
    #: in another month than the call's.
    reached_in_other_month: list[Pilot] = Field(default_factory=list)
    label: str | None = None
    response: dict[Pilot, float] = Field(default_factory=dict)
    backup: list[Pilot] = Field(default_factory=list)
    followup_pilot: ContactPilot | None = None
    followup: list[FollowupFlag] = Field(default_factory=list)
    #: The follow-up is scheduled in this month but is not one of this month's Care
    #: Navigation reached calls (a call of another month, or one CN was not eligible for).
    followup_elsewhere: bool = False
    # Crisis Call Diversion, in the call's month: the clinicians' work on the call.
    #: Any clinician work counted for the call (an assessment event or an override).
    ccd_work: bool = False
    engaged: bool = False
    #: One risk level per screening, sorted.
    screenings: list[RiskLevel] = Field(default_factory=list)
    #: Steps of the call's safety plan completed (0-6); None: no safety plan.
    plan_steps: int | None = None
    #: Resource id -> a warm handoff to it.
    referrals: dict[str, bool] = Field(default_factory=dict)
    disposition: Disposition | None = None
    #: The rules' route, when a clinician's disposition put the call on another.
    override_from: Route | None = None
    #: Seconds from the first ccd.engaged to the responders' first on-scene report.
    on_line_s: float | None = None
    # A consult, in the month it was requested.
    consult_by: Requester | None = None
    consult: list[ConsultFlag] = Field(default_factory=list)
    first_at: AwareDatetime | None = None
    last_at: AwareDatetime | None = None

    def same_figures(self, other: Part | None) -> bool:
        return other is not None and self.model_dump(exclude={"seq"}) == other.model_dump(
            exclude={"seq"}
        )


class ResponseTimes(WireModel):
    """Assignment to on scene, in seconds."""

    calls: int
    median_s: float
    p90_s: float


class FollowupFigures(WireModel):
    """Follow-ups scheduled in the month, and what became of them (whenever it happened:
    a follow-up completed in August is counted in July when it was scheduled in July)."""

    scheduled: int = 0
    at_risk: int = 0
    completed: int = 0
    within_48h: int = 0
    connected_to_care: int = 0
    overdue: int = 0
    for_other_calls: int = Field(
        0,
        description="Of scheduled, those not among this month's Care Navigation reached "
        "calls: for a call received in another month, or one CN was not eligible for.",
    )


class CallTypeCount(WireModel):
    call_type: str
    calls: int


class PilotReport(WireModel):
    """One pilot's month. The parts add up: ``eligible = reached + missed + sum(other)``
    and ``missed = sum(missed_by_reason)``, all counted in the month the call came in."""

    pilot: Pilot
    name: str
    eligible: int = Field(description=GLOSSARY["eligible"])
    reached: int = Field(description=GLOSSARY["reached"])
    missed: int = Field(description=GLOSSARY["missed"])
    missed_by_reason: dict[str, int]
    other: dict[OtherPart, int] = Field(
        default_factory=dict,
        description="Eligible calls neither reached nor missed, by what became of them.",
    )
    reached_in_other_month: int = Field(
        0,
        description="Of reached, calls whose team was assigned or follow-up scheduled in "
        "another month than the call's.",
    )
    response_time: ResponseTimes | None = Field(None, description="Team pilots only.")
    backup_requests: int = 0
    followups: FollowupFigures = Field(description="cn: all; others: their own contacts'.")
    top_call_types: list[CallTypeCount] = Field(description="Among the calls reached.")

    @property
    def parts_total(self) -> int:
        return self.reached + self.missed + sum(self.other.values())


class ScreeningFigures(WireModel):
    """C-SSRS screenings scored in the month: ``total = sum(by_risk_level)``."""

    total: int
    by_risk_level: dict[RiskLevel, int] = Field(description=GLOSSARY["risk level"])


class SafetyPlanFigures(WireModel):
    """Calls with a Stanley-Brown safety plan: ``plans = all_six_steps + fewer_steps``."""

    plans: int
    all_six_steps: int
    fewer_steps: int


class ResourceReferrals(WireModel):
    resource: str = Field(description="The resource's id in the policy's [ccd.referral_resources].")
    name: str
    referrals: int
    warm_handoffs: int = Field(description=GLOSSARY["warm handoff"])


class ReferralFigures(WireModel):
    """Referrals, each resource once per call: ``total = sum(by_resource.referrals)``."""

    total: int
    warm_handoffs: int = Field(description=GLOSSARY["warm handoff"])
    by_resource: list[ResourceReferrals]


class DispositionFigures(WireModel):
    """Calls with a clinician disposition, each as last disposed: ``calls = sum(by_value)``."""

    calls: int
    by_value: dict[Disposition, int]


class OverrideDirection(WireModel):
    rules_route: Route
    route: Route
    calls: int


class OverrideFigures(WireModel):
    """``calls = sum(by_direction.calls)``."""

    calls: int = Field(description=GLOSSARY["override"])
    by_direction: list[OverrideDirection]


class RequesterConsults(WireModel):
    requested_by: Requester
    requested: int
    answered: int
    answered_within_target: int = Field(description=GLOSSARY["answered within target"])
    share_within_target: float | None = Field(
        description="answered_within_target / requested; None when none was requested."
    )


class ConsultFigures(WireModel):
    """Consults requested in the month, by requester (each figure sums over requesters)."""

    requested: int
    answered: int
    answered_within_target: int = Field(description=GLOSSARY["answered within target"])
    share_within_target: float | None
    by_requester: list[RequesterConsults]


class TimeOnLine(WireModel):
    """From a clinician's first ``ccd.engaged`` to the responders' first on-scene report,
    in seconds, over the calls timed (the median and p90 are None when none was)."""

    calls: int
    median_s: float | None
    p90_s: float | None


class CcdWorkReport(WireModel):
    """The Crisis Call Diversion section: what the clinicians did in the month, counted in
    the month each call came in (consults in the month they were requested).

    ``clinician_events`` False (a CAD export's replay, a month before clinicians reported
    their work): ``note`` says so and every figure is None, not zero."""

    clinician_events: bool = False
    note: str | None = NO_CLINICIAN_EVENTS
    calls_engaged: int | None = Field(None, description=GLOSSARY["engaged"])
    screenings: ScreeningFigures | None = None
    safety_plans: SafetyPlanFigures | None = None
    referrals: ReferralFigures | None = None
    dispositions: DispositionFigures | None = None
    overrides: OverrideFigures | None = None
    consults: ConsultFigures | None = None
    time_on_line: TimeOnLine | None = Field(None, description=GLOSSARY["on the line"])


class Organisation(WireModel):
    """Who runs the pilots, as the policy names them; a report is headed with these."""

    department: str | None = None
    city: str | None = None
    program: str | None = None


class MonthReport(WireModel):
    """One month's figures per pilot, as published on ``reports.monthly``. Counts only:
    no call id, person, phone number or place."""

    month: str = Field(pattern=MONTH_PATTERN.pattern)
    timezone: str
    organisation: Organisation | None = Field(
        None, description="From the policy; None: the report has a neutral heading."
    )
    version: int = Field(0, ge=0, description="Grows with every change; larger is newer.")
    data_from: AwareDatetime | None = Field(None, description="Earliest event time counted.")
    data_through: AwareDatetime | None = Field(None, description="Latest event time counted.")
    partial: bool = Field(False, description=GLOSSARY["partial month"])
    policy_versions: list[str] = Field(default_factory=list)
    calls: int = Field(0, description=GLOSSARY["decided"])
    routes: dict[Route, int] = Field(default_factory=dict)
    heart_handled: int = Field(0, description=GLOSSARY["HEART handled"])
    resolved_by_phone: int = Field(0, description=GLOSSARY["resolved by phone"])
    phone_share: float | None = None
    followups: FollowupFigures = Field(default_factory=FollowupFigures)
    pilots: list[PilotReport] = Field(default_factory=list)
    ccd_work: CcdWorkReport = Field(
        default_factory=CcdWorkReport, description="The Crisis Call Diversion section."
    )

    def pilot(self, pilot: str) -> PilotReport:
        return next(p for p in self.pilots if p.pilot == pilot)


class Settled(BaseModel):
    """A forgotten record's part of a month, up to the record's last sequence number."""

    key: str = Field(min_length=1, max_length=KEY_MAX)
    seq: int = Field(ge=0)


class KeyedPart(BaseModel):
    """A call's (or case's, or consult's) part of a month."""

    key: str = Field(min_length=1, max_length=KEY_MAX)
    part: Part


class ReportCommand(WireModel):
    """``heart.reports.commands``: facts keyed by call; batches of parts and settlements
    keyed by month; ticks by partition. Internal; carries no personal data."""

    kind: Literal["fact", "parts", "settle", "tick"]
    fact: Fact | None = None
    month: str | None = Field(None, pattern=MONTH_PATTERN.pattern)
    parts: list[KeyedPart] = Field(default_factory=list)
    settled: list[Settled] = Field(default_factory=list)
