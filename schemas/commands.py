"""Internal command topics: a stage re-keys its inputs so that one partition owns a whole
piece of state (a service area, a follow-up case). Not part of the public contract."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from heart.schemas.base import WireModel
from heart.schemas.ccd import CcdAssessmentEvent, CcdScreened, ConsultEvent
from heart.schemas.dispatch import DispatchEvent, UnitStatusReport
from heart.schemas.followup import FollowupOutcome
from heart.schemas.triage import TriageClosure, TriageDecision


class SourceRef(WireModel):
    """Where the command's original record came from, so a refusal names it exactly."""

    topic: str
    partition: int
    offset: int
    key: str | None = None
    raw: str = Field(description="The original record value, unchanged.")


class DispatchCommand(WireModel):
    kind: Literal["decision", "status", "tick"]
    area: str = Field(min_length=1, max_length=64)
    decision: TriageDecision | None = None
    status: UnitStatusReport | None = None
    tick_at: AwareDatetime | None = None
    source: SourceRef | None = None


class NavigationCommand(WireModel):
    kind: Literal["closed", "cleared", "outcome", "screened", "tick"]
    closed: TriageClosure | None = None
    cleared: DispatchEvent | None = None
    outcome: FollowupOutcome | None = None
    #: A C-SSRS screening the stage can score: its risk level may shorten the deadline.
    screened: CcdScreened | None = None
    tick_at: AwareDatetime | None = None
    source: SourceRef | None = None


class CcdCommand(WireModel):
    """What the ccd stage's internal commands topic carries: an input sent on to the
    partition that owns its call or consult (a ``dispatch.on_scene`` keyed by team, or an
    event an outside producer put on another partition), or a per-partition tick.

    ``source`` is the original record, so
    that a refusal dead-letters it unchanged.
    """

    kind: Literal["assessment", "consult", "on_scene", "tick"]
    assessment: CcdAssessmentEvent | None = None
    consult: ConsultEvent | None = None
    on_scene: DispatchEvent | None = None
    tick_at: AwareDatetime | None = None
    source: SourceRef | None = None
