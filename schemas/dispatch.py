"""Dispatch events on ``dispatch.events`` (and the clearings again on ``dispatch.cleared``)
and unit status reports on ``units.status``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from heart.schemas.base import STAFF_ID_PATTERN, Event
from heart.schemas.calls import Location
from heart.schemas.triage import Route

UnitStatus = Literal[
    "available",
    "dispatched",
    "en_route",
    "on_scene",
    "transporting",
    "cleared",
    "out_of_service",
]

DispatchEventType = Literal[
    "dispatch.assigned",
    "dispatch.queued",
    "dispatch.en_route",
    "dispatch.on_scene",
    "dispatch.cleared",
    "dispatch.fallback",
    "dispatch.cancelled",
    "dispatch.updated",
    "dispatch.backup_requested",
]


class UnitStatusReport(Event):
    """A responder app reports its team's status."""

    event_type: Literal["unit.status"] = "unit.status"
    team_id: str = Field(min_length=1, max_length=64)
    status: UnitStatus
    call_id: str | None = Field(None, max_length=64)
    backup_requested: bool = False
    followup_declined: bool = Field(
        False, description="On cleared: the person declined a follow-up."
    )
    actor_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=STAFF_ID_PATTERN,
        description="Opaque id of the person who reported it (e.g. signed in to the console).",
    )


class UnitAudit(Event):
    """One change of one team's status, kept for the audit trail on ``units.audit``."""

    event_type: Literal["unit.audit"] = "unit.audit"
    team_id: str = Field(min_length=1, max_length=64)
    call_id: str | None = None
    from_status: UnitStatus
    to_status: UnitStatus
    cause: Literal["assigned", "reported", "freed"]
    cause_event_id: str | None = Field(None, description="Decision or report; None for a tick.")


class DispatchEvent(Event):
    """What a team needs to respond, and the timings analysts measure; never the CAD record."""

    event_type: DispatchEventType
    call_id: str = Field(min_length=1, max_length=64)
    route: Route
    team_id: str | None = Field(None, max_length=64)
    service_area: str | None = None
    call_type: str | None = None
    category: str | None = None
    location: Location | None = None
    language: str = "en"
    interpreter: str | None = None
    safety_notes: str | None = None
    weapon_involved: bool = False
    violence_reported: bool = False
    reason: str | None = Field(None, description="Why, for fallback and queued events.")
    decision_to_assignment_s: float | None = Field(None, ge=0)
    assignment_to_on_scene_s: float | None = Field(None, ge=0)
    time_on_scene_s: float | None = Field(None, ge=0)
    queue_wait_s: float | None = Field(None, ge=0, description="On assigned and fallback.")
    followup_declined: bool = False


def _cleared_only(event: DispatchEvent) -> DispatchEvent:
    if event.event_type != "dispatch.cleared":
        raise ValueError("only dispatch.cleared events belong on this topic")
    return event


#: The value of ``dispatch.cleared``: a dispatch event, and a clearing.
DispatchCleared = Annotated[DispatchEvent, AfterValidator(_cleared_only)]
