"""Care Navigation follow-ups: ``followup.timers``, ``followup.tasks``, ``followup.outcomes``."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from heart.schemas.base import Event

ContactPilot = Literal["ccd", "crt", "cor"]
Outcome = Literal["reached", "connected_to_care", "declined", "unable_to_reach"]


class FollowupScheduled(Event):
    event_type: Literal["followup.scheduled"] = "followup.scheduled"
    case_id: str = Field(min_length=1, max_length=64)
    call_id: str = Field(min_length=1, max_length=64)
    pilot: ContactPilot
    contact_ended_at: AwareDatetime
    deadline: AwareDatetime = Field(description="48 hours after the contact ended.")
    release_at: AwareDatetime = Field(description="First staffed moment to work the case.")
    at_risk: bool = Field(False, description="The deadline cannot be met inside staffed hours.")
    staffed_minutes_to_deadline: float | None = Field(
        None, ge=0, description="Staffed minutes between release and deadline."
    )


class FollowupDue(Event):
    """A task released to care navigators at a staffed moment."""

    event_type: Literal["followup.due"] = "followup.due"
    case_id: str = Field(min_length=1, max_length=64)
    call_id: str = Field(min_length=1, max_length=64)
    timer_id: str = Field(min_length=1, max_length=128)
    due_at: AwareDatetime | None = Field(
        None, description="When the timer was due; occurred_at is when it fired."
    )
    deadline: AwareDatetime
    attempt: int = Field(1, ge=1)
    at_risk: bool = False


class FollowupOutcome(Event):
    event_type: Literal["followup.outcome"] = "followup.outcome"
    case_id: str = Field(min_length=1, max_length=64)
    outcome: Outcome
    care_kind: str | None = Field(None, max_length=100)
    navigator_id: str | None = Field(None, max_length=64)


class FollowupOverdue(Event):
    event_type: Literal["followup.overdue"] = "followup.overdue"
    case_id: str = Field(min_length=1, max_length=64)
    call_id: str = Field(min_length=1, max_length=64)
    deadline: AwareDatetime
    attempts: int = Field(0, ge=0)
