"""Events for the console's tests, built with the real schemas (and only opaque ids)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from heart.schemas.ccd import (
    CcdDisposition,
    CcdEngaged,
    ConsultAnswered,
    ConsultOverdue,
    ConsultRequested,
)
from heart.schemas.dispatch import DispatchEvent, UnitAudit
from heart.schemas.followup import FollowupDue, FollowupOutcome, FollowupOverdue, FollowupScheduled
from heart.schemas.triage import TriageClosure, TriageDecision

T0 = datetime(2024, 3, 4, 14, 0, tzinfo=UTC)
_start = [T0]


def start_at(when: datetime) -> None:
    """Date the events from ``when`` on (the browser test runs on the wall clock)."""
    _start[0] = when


def at(minutes: float) -> datetime:
    return _start[0] + timedelta(minutes=minutes)


def decision(call_id: str, route: str = "crt", minute: float = 0, **kw: Any) -> TriageDecision:
    return TriageDecision(
        call_id=call_id,
        route=route,  # type: ignore[arg-type]
        reasons=kw.pop("reasons", [f"category:{route}"]),
        policy_version="durham@test",
        source_event_id=f"src-{call_id}",
        call_received_at=kw.pop("received", at(minute)),
        call_type="WELFARE CHECK",
        occurred_at=at(minute),
        **kw,
    )


def dispatch(kind: str, call_id: str, minute: float, team_id: str | None = None, **kw: Any):
    return DispatchEvent(
        event_type=f"dispatch.{kind}",  # type: ignore[arg-type]
        call_id=call_id,
        route=kw.pop("route", "crt"),
        team_id=team_id,
        occurred_at=at(minute),
        **kw,
    )


def audit(team_id: str, before: str, after: str, minute: float, call_id: str | None = None):
    return UnitAudit(
        team_id=team_id,
        call_id=call_id,
        from_status=before,  # type: ignore[arg-type]
        to_status=after,  # type: ignore[arg-type]
        cause="reported",
        occurred_at=at(minute),
    )


def closure(call_id: str, minute: float) -> TriageClosure:
    return TriageClosure(
        call_id=call_id,
        route="ccd",
        revision=1,
        decision_id="d",
        source_event_id="s",
        occurred_at=at(minute),
    )


def engaged(call_id: str, minute: float, clinician: str = "clin-0001") -> CcdEngaged:
    return CcdEngaged(call_id=call_id, clinician_id=clinician, occurred_at=at(minute))


def disposed(call_id: str, disposition: str, minute: float) -> CcdDisposition:
    return CcdDisposition(
        call_id=call_id,
        clinician_id="clin-0001",
        disposition=disposition,  # type: ignore[arg-type]
        occurred_at=at(minute),
    )


def consult(consult_id: str, minute: float, urgency: str = "urgent") -> ConsultRequested:
    return ConsultRequested(
        consult_id=consult_id,
        requested_by="dispatcher",
        call_id="c-9",
        urgency=urgency,  # type: ignore[arg-type]
        occurred_at=at(minute),
    )


def answered(consult_id: str, minute: float) -> ConsultAnswered:
    return ConsultAnswered(consult_id=consult_id, clinician_id="clin-0001", occurred_at=at(minute))


def consult_overdue(consult_id: str, minute: float) -> ConsultOverdue:
    return ConsultOverdue(
        consult_id=consult_id,
        requested_by="dispatcher",
        urgency="routine",
        call_id="c-9",
        requested_at=at(0),
        due_at=at(30),
        occurred_at=at(minute),
    )


def scheduled(case_id: str, deadline_h: float = 48, at_risk: bool = False) -> FollowupScheduled:
    return FollowupScheduled(
        case_id=case_id,
        call_id=case_id,
        pilot="crt",
        contact_ended_at=at(0),
        deadline=at(deadline_h * 60),
        release_at=at(60),
        at_risk=at_risk,
        occurred_at=at(0),
    )


def due(case_id: str, minute: float, attempt: int = 1, deadline_h: float = 48) -> FollowupDue:
    return FollowupDue(
        case_id=case_id,
        call_id=case_id,
        timer_id=f"{case_id}:{attempt}",
        deadline=at(deadline_h * 60),
        attempt=attempt,
        occurred_at=at(minute),
    )


def outcome(case_id: str, result: str, minute: float) -> FollowupOutcome:
    return FollowupOutcome(
        case_id=case_id,
        outcome=result,  # type: ignore[arg-type]
        navigator_id="nav-0001",
        occurred_at=at(minute),
    )


def followup_overdue(case_id: str, minute: float) -> FollowupOverdue:
    return FollowupOverdue(
        case_id=case_id, call_id=case_id, deadline=at(60), attempts=1, occurred_at=at(minute)
    )
