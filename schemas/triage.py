"""Triage's output: decisions on ``triage.decisions`` (where a call goes, and why) and
closures on ``triage.closures`` (a phone-resolved call closed by the CAD)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from heart.schemas.base import Event, WireModel
from heart.schemas.calls import Location

Route = Literal["ccd", "crt", "cor", "police"]
Pilot = Literal["ccd", "crt", "cor", "cn"]
#: Why a pilot whose call types match could not take the call.
IneligibleReason = Literal[
    "outside_hours",
    "outside_service_area",
    "weapon",
    "violence",
    "unknown_beat",
    "pilot_disabled",
    # Decided too long after the CAD event (policy ``dispatch.stale_call_minutes``): the
    # CAD's standard response has taken over. Neither eligible nor a coverage miss.
    "stale",
]

#: Reasons that mean "eligible by the call's nature, but the pilot's coverage missed it":
#: the figures the department plans staffing from. Weapon and violence are not misses.
COVERAGE_REASONS: frozenset[str] = frozenset(
    {"outside_hours", "outside_service_area", "unknown_beat", "pilot_disabled"}
)
#: Reasons that make an eligible call a miss: coverage, and ``stale`` (decided too late to
#: act on, because a stage was paused or down: an outage is a miss like a gap in hours).
MISS_REASONS: frozenset[str] = COVERAGE_REASONS | {"stale"}


class PilotEligibility(WireModel):
    pilot: Pilot
    eligible: bool
    reasons: list[IneligibleReason] = Field(default_factory=list)


class TriageDecision(Event):
    event_type: Literal["triage.decision"] = "triage.decision"
    call_id: str = Field(min_length=1, max_length=64)
    route: Route
    rules_route: Route | None = Field(
        None,
        description="The route the policy's rules chose, when a clinician's disposition "
        "decided this revision (route is then the route in force, the clinician's). None "
        "when the rules decided it: route is the rules' route.",
    )
    pilots: list[Pilot] = Field(default_factory=list, description="Pilots involved in the call.")
    reasons: list[str] = Field(default_factory=list, description="Machine-readable reasons.")
    eligibility: list[PilotEligibility] = Field(
        default_factory=list, description="One entry per pilot whose call types match."
    )
    interpreter: str | None = Field(None, description="Caller's language when not English.")
    policy_version: str
    revision: int = Field(1, ge=1, description="1 for the first decision, +1 per re-decision.")
    supersedes: str | None = Field(None, description="event_id of the decision this replaces.")
    source_event_id: str = Field(description="event_id of the call event decided on.")
    source_occurred_at: AwareDatetime | None = Field(
        None,
        description="occurred_at of the call event decided on: the call's receipt for a "
        "first decision, the update's time for a re-decision. HEART acts on a decision only "
        "within the policy's stale_call_minutes of it. None in decisions that predate it.",
    )
    call_received_at: AwareDatetime
    call_type: str
    category: str | None = Field(None, description="Policy call-type category matched.")
    beat: str | None = None
    district: str | None = None
    priority: int | None = None
    language: str = "en"
    location: Location | None = None
    safety_notes: str | None = None
    weapon_involved: bool = False
    violence_reported: bool = False


class TriageClosure(Event):
    """The CAD closed a call whose effective route was ``ccd``: a Crisis Call Diversion
    contact ended, and Care Navigation's 48 hours start.

    Triage sends it because it alone knows the call's route when the close arrives, in the
    call's own order (one partition per call): a reader of ``cad.calls`` would have to hold
    every close, of every call, until the call's decision came. Calls on other routes end
    elsewhere (a team clearing ends a CRT contact) and get no closure. ``occurred_at`` is
    the CAD's close time; ``event_id`` is derived from the close's, so a closure re-sent
    after a crash carries the same id.
    """

    event_type: Literal["triage.closed"] = "triage.closed"
    call_id: str = Field(min_length=1, max_length=64)
    route: Route
    revision: int = Field(ge=1, description="Revision of the decision in force at the close.")
    decision_id: str = Field(description="event_id of the decision in force at the close.")
    source_event_id: str = Field(description="event_id of the CAD's call.closed.")
    disposition: str | None = Field(None, max_length=64)
    followup_declined: bool = False
