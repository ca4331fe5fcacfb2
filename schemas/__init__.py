"""The wire contract: one pydantic model per event, one module per topic family."""

from schemas.base import SCHEMA_VERSION, Event
from schemas.calls import CallClosed, CallReceived, CallUpdated
from schemas.deadletter import DeadLetter
from schemas.dispatch import DispatchEvent, UnitAudit, UnitStatusReport
from schemas.followup import FollowupDue, FollowupOutcome, FollowupOverdue, FollowupScheduled
from schemas.triage import PilotEligibility, TriageClosure, TriageDecision

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
