"""Dispatch stage: turns crt and cor decisions into exactly one team on its way, or a fallback."""

from heart.agents.dispatch.area import (
    AreaState,
    AuditRecord,
    Rejection,
    Result,
    Tick,
    apply,
    event_key,
)
from heart.agents.dispatch.roster import Roster, RosterError, Team, default_roster_path, load_roster
from heart.agents.dispatch.units import IllegalTransition, transition

__all__ = [
    "AreaState",
    "AuditRecord",
    "IllegalTransition",
    "Rejection",
    "Result",
    "Roster",
    "RosterError",
    "Team",
    "Tick",
    "apply",
    "default_roster_path",
    "event_key",
    "load_roster",
    "transition",
]
