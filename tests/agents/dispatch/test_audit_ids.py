"""Audit record ids survive a replay that reaches the same status change another way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from heart.agents.dispatch.agent import audit_event_id
from heart.agents.dispatch.area import AuditRecord

AT = datetime(2024, 7, 15, 14, tzinfo=UTC)


def change(**overrides: object) -> AuditRecord:
    fields: dict[str, object] = {
        "team_id": "CRT-4",
        "call_id": "D-112",
        "from_status": "available",
        "to_status": "dispatched",
        "at": AT,
        "cause": "assigned",
        "cause_event_id": "decision-1",
    }
    fields.update(overrides)
    return AuditRecord.model_validate(fields)


def test_an_assignment_keeps_its_id_whatever_caused_it_and_whenever() -> None:
    # Found by the dispatch chaos test: after a crash the restarted worker assigned the
    # same team to the same call on a tick instead of on the decision.
    by_decision = change()
    by_tick = change(cause_event_id=None, at=AT + timedelta(seconds=3))
    by_clearing = change(cause_event_id="report-9")
    assert audit_event_id(by_decision) == audit_event_id(by_tick) == audit_event_id(by_clearing)


def test_different_calls_teams_and_changes_get_different_ids() -> None:
    ids = {
        audit_event_id(change()),
        audit_event_id(change(call_id="D-113")),
        audit_event_id(change(team_id="CRT-1")),
        audit_event_id(change(cause="freed", from_status="cleared", to_status="available")),
    }
    assert len(ids) == 4


def test_a_reported_change_is_named_by_its_report() -> None:
    # A team can report the same change twice on one call (on scene, en route to a
    # hospital, on scene again): two reports, two records.
    first = change(cause="reported", from_status="en_route", to_status="on_scene")
    again = change(
        cause="reported",
        from_status="en_route",
        to_status="on_scene",
        cause_event_id="report-2",
        at=AT + timedelta(minutes=30),
    )
    assert audit_event_id(first) != audit_event_id(again)
    assert audit_event_id(first) == audit_event_id(change(**{**first.model_dump()}))
