"""What each role may see of the board, as JSON-ready dicts.

Each view is built from the board alone and holds only what its role is allowed: a team
gets its own team's assignment (the fields dispatch sent it), a navigator the follow-up
tasks, an analyst counts only. Times are ISO 8601 in UTC; ages are whole seconds at
``now``, so that the page shows the same figure the alerts were computed from.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from heart.agents.dispatch.units import ON_CALL, IllegalTransition, transition
from heart.cli.console.alerts import alerts
from heart.cli.console.board import Board, CallRow, ConsultRow, TeamRow
from heart.cli.console.console_settings import ConsoleSettings
from heart.policy.model import Policy
from heart.schemas.ccd import URGENCIES
from heart.schemas.dispatch import UnitStatus

#: The team page's buttons, in the order shown: the status each reports, and its label.
TEAM_ACTIONS: tuple[tuple[str, UnitStatus, str], ...] = (
    ("en_route", "en_route", "En route"),
    ("on_scene", "on_scene", "On scene"),
    ("transporting", "transporting", "Transporting"),
    ("cleared", "cleared", "Cleared"),
    ("cleared_declined", "cleared", "Cleared, follow-up declined"),
    # Sent with the team's current status, unchanged.
    ("backup", "on_scene", "Request backup"),
    ("out_of_service", "out_of_service", "Out of service"),
    ("available", "available", "Back in service"),
)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def _age(now: datetime, at: datetime | None) -> int | None:
    return max(0, int((now - at).total_seconds())) if at is not None else None


def open_calls(board: Board, now: datetime, settings: ConsoleSettings) -> list[CallRow]:
    """Calls still in HEART's hands, oldest first. A police call leaves after
    ``board.police_call_minutes``: HEART does not follow it further."""
    police_for = timedelta(minutes=settings.board.police_call_minutes)
    return sorted(
        (
            c
            for c in board.calls.values()
            if c.ended_at is None and not (c.route == "police" and now - c.decided_at >= police_for)
        ),
        key=lambda c: (c.call_received_at, c.call_id),
    )


def supervisor_view(
    board: Board, now: datetime, policy: Policy, settings: ConsoleSettings
) -> dict[str, Any]:
    calls = open_calls(board, now, settings)
    return {
        "now": _iso(now),
        "calls": [
            {
                "call_id": c.call_id,
                "route": c.route,
                "rules_route": c.rules_route if c.overruled else None,
                "reasons": list(c.reasons),
                "revision": c.revision,
                "call_type": c.call_type,
                "priority": c.priority,
                "team_id": c.team_id,
                "dispatch": c.dispatch,
                "age_s": _age(now, c.call_received_at),
            }
            for c in calls
        ],
        "queue": [
            {
                "call_id": c.call_id,
                "route": c.route,
                "priority": c.priority,
                "waiting_s": _age(now, c.queued_at),
                "limit_s": policy.dispatch.max_queue_wait_minutes * 60,
            }
            for c in sorted(
                (c for c in calls if c.dispatch == "queued" and c.queued_at is not None),
                key=lambda c: (c.queued_at, c.call_id),
            )
        ],
        "on_the_line": [
            {
                "call_id": e.call_id,
                "clinician_id": e.clinician_id,
                "on_line_s": _age(now, e.since),
                "disposition": e.disposition,
            }
            for e in sorted(board.engagements.values(), key=lambda e: (e.since, e.call_id))
            if e.on_the_line
            and (call := board.calls.get(e.call_id)) is not None
            and call.ended_at is None
        ],
        "teams": [_team_summary(t, now) for t in sorted(board.teams.values(), key=_team_order)],
        "consults": [
            {
                "consult_id": c.consult_id,
                "requested_by": c.requested_by,
                "urgency": c.urgency,
                "waiting_s": _age(now, c.requested_at),
                "call_id": c.call_id,
                "team_id": c.team_id,
            }
            for c in sorted(board.consults.values(), key=lambda c: (c.requested_at, c.consult_id))
            if c.waiting
        ],
        "alerts": _alerts(board, now, policy, settings),
        "fallbacks": [
            {
                "call_id": f.call_id,
                "route": f.route,
                "reason": f.reason,
                "at": _iso(f.at),
                "queue_wait_s": f.queue_wait_s,
            }
            for f in board.fallbacks
        ],
        "backups": [
            {"call_id": b.call_id, "team_id": b.team_id, "at": _iso(b.at)} for b in board.backups
        ],
    }


def _alerts(
    board: Board, now: datetime, policy: Policy, settings: ConsoleSettings
) -> list[dict[str, Any]]:
    return [
        {
            "kind": a.kind,
            "severity": a.severity,
            "subject": a.subject,
            "message": a.message,
            "age_s": _age(now, a.since),
        }
        for a in alerts(board, now, policy, settings)
    ]


def _team_order(team: TeamRow) -> tuple[str, str]:
    return (team.team_id.split("-")[0], team.team_id)


def _team_summary(team: TeamRow, now: datetime) -> dict[str, Any]:
    return {
        "team_id": team.team_id,
        "status": team.status,
        "in_status_s": _age(now, team.since),
        "call_id": team.call_id,
    }


def allowed_actions(team: TeamRow) -> list[str]:
    """The team page's buttons that the dispatch stage would accept now."""
    allowed = []
    for action, status, _label in TEAM_ACTIONS:
        if action == "backup":
            ok = team.call_id is not None and team.status in ON_CALL
        else:
            try:
                transition(team.status, status)
                ok = status != team.status
            except IllegalTransition:
                ok = False
        if ok:
            allowed.append(action)
    return allowed


def team_view(board: Board, team_id: str, now: datetime) -> dict[str, Any]:
    """One team's own page: its status and its current assignment, as dispatch sent it."""
    team = board.teams.get(team_id)
    if team is None:
        team = TeamRow(team_id)
    assignment = None
    if team.assignment is not None and team.call_id == team.assignment.call_id:
        a = team.assignment
        assignment = {
            "call_id": a.call_id,
            "route": a.route,
            "call_type": a.call_type,
            "category": a.category,
            "address": a.location.address if a.location else None,
            "language": a.language,
            "interpreter": a.interpreter,
            "safety_notes": a.safety_notes,
            "weapon_involved": a.weapon_involved,
            "violence_reported": a.violence_reported,
            "assigned_at": _iso(a.occurred_at),
        }
    return {
        "now": _iso(now),
        **_team_summary(team, now),
        "assignment": assignment,
        "actions": allowed_actions(team),
    }


def navigator_view(board: Board, now: datetime) -> dict[str, Any]:
    """Open follow-up tasks, nearest deadline first."""
    tasks = sorted(
        (t for t in board.tasks.values() if t.open), key=lambda t: (t.deadline, t.case_id)
    )
    return {
        "now": _iso(now),
        "tasks": [
            {
                "case_id": t.case_id,
                "call_id": t.call_id,
                "pilot": t.pilot,
                "released_at": _iso(t.released_at),
                "release_at": _iso(t.release_at),
                "deadline": _iso(t.deadline),
                "deadline_in_s": int((t.deadline - now).total_seconds()),
                "at_risk": t.at_risk,
                "overdue": t.overdue_at is not None or now >= t.deadline,
                "attempt": t.attempt,
                "attempts_made": t.attempts_made,
                "last_outcome": t.last_outcome,
            }
            for t in tasks
        ],
    }


def analyst_view(
    board: Board, now: datetime, policy: Policy, settings: ConsoleSettings
) -> dict[str, Any]:
    """Counts only: no call, case, team or clinician id."""
    calls = open_calls(board, now, settings)
    return {
        "now": _iso(now),
        "open_calls_by_route": dict(sorted(Counter(c.route for c in calls).items())),
        "open_calls": len(calls),
        "overruled_open_calls": sum(c.overruled for c in calls),
        "teams_by_status": dict(sorted(Counter(t.status for t in board.teams.values()).items())),
        "teams": len(board.teams),
        "queued": sum(c.dispatch == "queued" for c in calls),
        "followups_open": sum(t.open for t in board.tasks.values()),
        "consults_waiting": sum(c.waiting for c in board.consults.values()),
        "alerts_by_kind": dict(
            sorted(Counter(a.kind for a in alerts(board, now, policy, settings)).items())
        ),
        # Where the figures behind these counts are: the console settings' [links].
        "links": settings.links.model_dump(),
    }


def clinician_view(
    board: Board, now: datetime, policy: Policy, settings: ConsoleSettings, clinician_id: str
) -> dict[str, Any]:
    """A CCD clinician's calls and the consult queue.

    The calls are the open ones on the ``ccd`` route or with a clinician engaged: the
    clinician's own first, then those waiting for a clinician, then other clinicians'.
    Waiting consults come in the CCD stage's queue order (urgency, then age, then id), with
    their policy target; answered ones stay listed until someone closes them.
    """
    rows = []
    for call in open_calls(board, now, settings):
        engaged = board.engagements.get(call.call_id)
        if call.route != "ccd" and engaged is None:
            continue
        mine = engaged is not None and engaged.clinician_id == clinician_id
        rows.append(
            (
                0 if mine else 1 if engaged is None else 2,
                {
                    "call_id": call.call_id,
                    "route": call.route,
                    "rules_route": call.rules_route if call.overruled else None,
                    "reasons": list(call.reasons),
                    "call_type": call.call_type,
                    "priority": call.priority,
                    "team_id": call.team_id,
                    "dispatch": call.dispatch,
                    "age_s": _age(now, call.call_received_at),
                    "clinician_id": engaged.clinician_id if engaged else None,
                    "mine": mine,
                    "on_the_line": engaged.on_the_line if engaged else False,
                    "engaged_s": _age(now, engaged.since) if engaged else None,
                    "disposition": engaged.disposition if engaged else None,
                },
            )
        )
    rows.sort(key=lambda row: row[0])
    rank = {urgency: i for i, urgency in enumerate(URGENCIES)}
    open_consults = sorted(
        (c for c in board.consults.values() if c.closed_at is None),
        key=lambda c: (not c.waiting, rank.get(c.urgency, len(rank)), c.requested_at, c.consult_id),
    )
    return {
        "now": _iso(now),
        "clinician_id": clinician_id,
        "calls": [row for _, row in rows],
        "consults": [_consult_row(c, now, policy) for c in open_consults],
    }


def _consult_row(consult: ConsultRow, now: datetime, policy: Policy) -> dict[str, Any]:
    target_s = policy.ccd_work.consult_targets.minutes(consult.urgency) * 60
    # The same rule as the consult_overdue alert, so that the page and the alert agree.
    late = now >= consult.requested_at + timedelta(seconds=target_s)
    return {
        "consult_id": consult.consult_id,
        "requested_by": consult.requested_by,
        "urgency": consult.urgency,
        "call_id": consult.call_id,
        "team_id": consult.team_id,
        "waiting": consult.waiting,
        "waiting_s": _age(now, consult.requested_at) if consult.waiting else None,
        "target_s": target_s,
        "overdue": consult.waiting and (consult.overdue_at is not None or late),
        "answered_at": _iso(consult.answered_at),
    }
