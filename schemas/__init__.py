"""The wire contract: one pydantic model per event, one module per topic family."""

from heart.schemas.base import SCHEMA_VERSION, Event
from heart.schemas.calls import CallClosed, CallReceived, CallUpdated
from heart.schemas.deadletter import DeadLetter
from heart.schemas.dispatch import DispatchEvent, UnitAudit, UnitStatusReport
from heart.schemas.followup import FollowupDue, FollowupOutcome, FollowupOverdue, FollowupScheduled
from heart.schemas.triage import PilotEligibility, TriageClosure, TriageDecision

__all__ = [
    "SCHEMA_VERSION",
    "CallClosed",
    "CallReceived",
    "CallUpdated",
    "DeadLetter",
    "DispatchEvent",
    "Event",
    "FollowupDue",
    "FollowupOutcome",
    "FollowupOverdue",
    "FollowupScheduled",
    "PilotEligibility",
    "TriageClosure",
    "TriageDecision",
    "UnitAudit",
    "UnitStatusReport",
]
