"""The monthly report on the wire: ``reports.monthly`` (:class:`MonthReport`) and the
reporting stage's internal ``heart.reports.commands`` (:class:`ReportCommand`, with the
:class:`Fact` and :class:`Part` it carries). Counts only: no personal data.

The figures' meanings are defined in ``heart.agents.reporting.aggregate``, which computes
them.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from heart.schemas.base import WireModel
from heart.schemas.followup import ContactPilot
from heart.schemas.triage import Pilot, Route

MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

FactKind = Literal[
    "decision", "assigned", "on_scene", "fallback", "backup", "scheduled", "overdue", "outcome"
]
FollowupFlag = Literal[
    "scheduled", "at_risk", "completed", "within_48h", "connected_to_care", "overdue"
]
FOLLOWUP_FLAGS: tuple[FollowupFlag, ...] = get_args(FollowupFlag)


class Fact(WireModel):
    """One input event reduced to what the report needs. ``key`` (the call or case id) only
    routes the fact to its record; it never reaches a report."""

    event_id: str = Field(min_length=1, max_length=128)
    kind: FactKind
    key: str = Field(min_length=1, max_length=64)
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


class Part(BaseModel):
    """One record's contribution to one month; what the month's totals sum."""

    model_config = ConfigDict(frozen=True)

    seq: int = 0
    route: Route | None = None
    policy_version: str | None = None
    eligible: list[Pilot] = Field(default_factory=list)
    missed: dict[Pilot, str] = Field(default_factory=dict)
    handled: list[Pilot] = Field(default_factory=list)
    label: str | None = None
    response: dict[Pilot, float] = Field(default_factory=dict)
    backup: list[Pilot] = Field(default_factory=list)
    followup_pilot: ContactPilot | None = None
    followup: list[FollowupFlag] = Field(default_factory=list)
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
    scheduled: int = 0
    at_risk: int = 0
    completed: int = 0
    within_48h: int = 0
    connected_to_care: int = 0
    overdue: int = 0


class CallTypeCount(WireModel):
    call_type: str
    calls: int


class PilotReport(WireModel):
    pilot: Pilot
    name: str
    calls_handled: int
    eligible: int
    missed: int
    reached: int = Field(description="Eligible calls not missed.")
    missed_by_reason: dict[str, int]
    response_time: ResponseTimes | None = Field(None, description="Team pilots only.")
    backup_requests: int = 0
    followups: FollowupFigures = Field(description="cn: all; others: their own contacts'.")
    top_call_types: list[CallTypeCount]


class MonthReport(WireModel):
    """One month's figures per pilot, as published on ``reports.monthly``. Counts only:
    no call id, person, phone number or place."""

    month: str = Field(pattern=MONTH_PATTERN.pattern)
    timezone: str
    version: int = Field(0, ge=0, description="Grows with every change; larger is newer.")
    data_through: AwareDatetime | None = Field(None, description="Latest event time counted.")
    policy_versions: list[str] = Field(default_factory=list)
    calls: int = Field(0, description="Calls decided (effective decisions).")
    routes: dict[Route, int] = Field(default_factory=dict)
    heart_handled: int = Field(0, description="Calls handled by phone or by a team.")
    resolved_by_phone: int = 0
    phone_share: float | None = None
    followups: FollowupFigures = Field(default_factory=FollowupFigures)
    pilots: list[PilotReport] = Field(default_factory=list)

    def pilot(self, pilot: str) -> PilotReport:
        return next(p for p in self.pilots if p.pilot == pilot)


class Settled(BaseModel):
    """A forgotten record's part of a month, up to the record's last sequence number."""

    key: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0)


class KeyedPart(BaseModel):
    """A call's (or case's) part of a month."""

    key: str = Field(min_length=1, max_length=64)
    part: Part


class ReportCommand(WireModel):
    """``heart.reports.commands``: facts keyed by call; batches of parts and settlements
    keyed by month; ticks by partition. Internal; carries no personal data."""

    kind: Literal["fact", "parts", "settle", "tick"]
    fact: Fact | None = None
    month: str | None = Field(None, pattern=MONTH_PATTERN.pattern)
    parts: list[KeyedPart] = Field(default_factory=list)
    settled: list[Settled] = Field(default_factory=list)
