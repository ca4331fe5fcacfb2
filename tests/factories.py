"""Factories for valid events; tests override only what they are about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from heart.schemas import (
    CallClosed,
    CallReceived,
    CallUpdated,
    DeadLetter,
    DispatchEvent,
    FollowupDue,
    FollowupOutcome,
    FollowupOverdue,
    FollowupScheduled,
    TriageClosure,
    TriageDecision,
    UnitAudit,
    UnitStatusReport,
)

T0 = datetime(2024, 7, 15, 14, 0, tzinfo=UTC)  # Monday 10:00 EDT, inside every pilot's hours


def call_received(**overrides: Any) -> CallReceived:
    data: dict[str, Any] = {
        "call_id": "C-1001",
        "call_type": "Welfare Check",
        "occurred_at": T0,
        "beat": "111",
        "needs_in_person": True,
        "language": "en",
        "location": {"address": "101 City Hall Plaza", "lat": 35.994, "lon": -78.898},
        "caller": {"name": "Jordan Example", "phone": "919-555-0100"},
    }
    data.update(overrides)
    return CallReceived.model_validate(data)


def every_event() -> list[Any]:
    """One valid instance of every event model on the wire."""
    deadline = T0 + timedelta(hours=48)
    return [
        call_received(),
        CallUpdated(call_id="C-1001", occurred_at=T0, weapon_involved=True),
        CallClosed(call_id="C-1001", occurred_at=T0, disposition="resolved"),
        TriageDecision(
            call_id="C-1001",
            occurred_at=T0,
            route="crt",
            pilots=["crt", "cn"],
            reasons=["crt_eligible"],
            policy_version="durham@test",
            source_event_id="e1",
            call_received_at=T0,
            call_type="Welfare Check",
        ),
        TriageClosure(
            call_id="C-1002",
            occurred_at=T0,
            route="ccd",
            revision=1,
            decision_id="d1",
            source_event_id="e2",
            disposition="resolved_by_phone",
        ),
        DispatchEvent(
            event_type="dispatch.assigned", call_id="C-1001", occurred_at=T0, route="crt"
        ),
        UnitStatusReport(team_id="CRT-1", status="en_route", occurred_at=T0, call_id="C-1001"),
        UnitAudit(
            team_id="CRT-1",
            occurred_at=T0,
            from_status="available",
            to_status="dispatched",
            cause="assigned",
            call_id="C-1001",
        ),
        FollowupScheduled(
            case_id="K-1",
            call_id="C-1001",
            pilot="crt",
            occurred_at=T0,
            contact_ended_at=T0,
            deadline=deadline,
            release_at=T0,
        ),
        FollowupDue(
            case_id="K-1", call_id="C-1001", timer_id="K-1:1", occurred_at=T0, deadline=deadline
        ),
        FollowupOutcome(
            case_id="K-1", outcome="connected_to_care", care_kind="outpatient", occurred_at=T0
        ),
        FollowupOverdue(case_id="K-1", call_id="C-1001", occurred_at=deadline, deadline=deadline),
        DeadLetter(
            occurred_at=T0,
            source_topic="cad.calls",
            source_partition=0,
            source_offset=7,
            stage="triage",
            reason="invalid_json",
            error_class="JSONDecodeError",
            error_message="unexpected character",
        ),
    ]
