"""Alerts: what on the board needs a person's eyes now, re-evaluated at any time.

:func:`alerts` reads the board at ``now``: a team that has been in a status for too long
alerts when the clock passes its threshold, with no new event. The thresholds are the
console's settings (:mod:`heart.cli.console.console_settings`); the queue's fallback limit
and the consult targets are the policy's, the same figures the stages act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from heart.cli.console.board import Board
from heart.cli.console.console_settings import ConsoleSettings
from heart.policy.model import Policy

AlertKind = Literal[
    "team_status", "queue_wait", "consult_overdue", "followup_overdue", "followup_at_risk"
]
Severity = Literal["critical", "warning"]

_SEVERITY_ORDER = {"critical": 0, "warning": 1}


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    severity: Severity
    #: The team, call, consult or case the alert is about (an opaque id).
    subject: str
    message: str
    #: When the condition began to hold: the alert's age.
    since: datetime


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _span(delta: timedelta) -> str:
    """A span as people read it: "47 min", "2 h 05 min"."""
    minutes = max(0, _minutes(delta))
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def alerts(board: Board, now: datetime, policy: Policy, settings: ConsoleSettings) -> list[Alert]:
    """Every alert that holds at ``now``, most severe first, then oldest first."""
    found: list[Alert] = []
    for team in board.teams.values():
        limit = policy.dispatch.status_alerts.get(team.status)
        if limit is None or team.since is None:
            continue
        passed = team.since + timedelta(minutes=limit)
        if now >= passed:
            found.append(
                Alert(
                    "team_status",
                    "warning",
                    team.team_id,
                    f"{team.team_id} {team.status.replace('_', ' ')} for "
                    f"{_span(now - team.since)} (alert at {limit:g} min)",
                    passed,
                )
            )

    max_wait = timedelta(minutes=policy.dispatch.max_queue_wait_minutes)
    warn_at = max_wait - timedelta(minutes=settings.queue.warn_before_fallback_minutes)
    for call in board.calls.values():
        if call.ended_at is not None or call.dispatch != "queued" or call.queued_at is None:
            continue
        if now - call.queued_at >= warn_at:
            found.append(
                Alert(
                    "queue_wait",
                    "critical",
                    call.call_id,
                    f"call {call.call_id} waiting {_span(now - call.queued_at)} for a "
                    f"{call.route.upper()} team; police take it at "
                    f"{policy.dispatch.max_queue_wait_minutes} min",
                    call.queued_at + warn_at,
                )
            )

    targets = policy.ccd_work.consult_targets
    for consult in board.consults.values():
        if not consult.waiting:
            continue
        due = consult.requested_at + timedelta(minutes=targets.minutes(consult.urgency))
        if consult.overdue_at is not None or now >= due:
            found.append(
                Alert(
                    "consult_overdue",
                    "critical" if consult.urgency == "urgent" else "warning",
                    consult.consult_id,
                    f"{consult.urgency} consult from {consult.requested_by} unanswered for "
                    f"{_span(now - consult.requested_at)} (target "
                    f"{targets.minutes(consult.urgency)} min)",
                    min(due, consult.overdue_at or due),
                )
            )

    for task in board.tasks.values():
        if not task.open:
            continue
        if task.overdue_at is not None or now >= task.deadline:
            found.append(
                Alert(
                    "followup_overdue",
                    "critical",
                    task.case_id,
                    f"follow-up {task.case_id} past its deadline "
                    f"({_span(now - task.deadline)} ago), {task.attempts_made} "
                    f"attempt{'s' if task.attempts_made != 1 else ''} made",
                    min(task.deadline, task.overdue_at or task.deadline),
                )
            )
        elif task.at_risk:
            found.append(
                Alert(
                    "followup_at_risk",
                    "warning",
                    task.case_id,
                    f"follow-up {task.case_id} at risk: its deadline falls outside "
                    f"staffed hours ({_span(task.deadline - now)} left)",
                    task.release_at or task.contact_ended_at or task.deadline,
                )
            )
    found.sort(key=lambda a: (_SEVERITY_ORDER[a.severity], a.since, a.kind, a.subject))
    return found
