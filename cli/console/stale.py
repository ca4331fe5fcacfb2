"""What the page says when the board already shows an action as stale.

A stale action is sent all the same: the stage that owns the topic refuses it and its dead
letter keeps what the person pressed, for the record. The message says which stage will
refuse it and why, in the board's terms, so that the person learns what became of the call
or case. Where the stage takes the event after all (a clinician documenting a call after it
ended), the message says that instead. Messages name opaque ids only.
"""

from __future__ import annotations

from heart.agents.dispatch.units import IllegalTransition, transition
from heart.cli.console.board import Board, CallRow, ConsultRow, FollowupTask, TeamRow
from heart.cli.console.views import allowed_actions
from heart.schemas.dispatch import UnitStatus

_KEPT = "It was sent, and the dead letter keeps it for the record."


def team_action(
    team: TeamRow, action: str, status: UnitStatus, label: str, call_id: str | None
) -> str | None:
    """Why dispatch will refuse the team's report, or None when it will take it.
    ``call_id`` is the call the team's page showed when the button was pressed."""
    where = _team_where(team)
    if call_id is not None and call_id != team.call_id:
        now = f"on call {team.call_id}" if team.call_id else "on no call"
        return (
            f'Dispatch will refuse "{label}" for call {call_id}: the team no longer holds '
            f"that call (it was cancelled, reassigned or cleared); the board has it {now}. " + _KEPT
        )
    if action in allowed_actions(team):
        return None
    if action == "backup":
        return (
            f'Dispatch will refuse "{label}": backup is asked for a call, and the board has '
            f"this team {where}. {_KEPT}"
        )
    try:
        transition(team.status, status)
    except IllegalTransition as exc:
        return (
            f'Dispatch will refuse "{label}": {exc.reason} (the board has this team {where}). '
            + _KEPT
        )
    return f'The board already has this team {where}: "{label}" changes nothing.'


def _team_where(team: TeamRow) -> str:
    status = team.status.replace("_", " ")
    return f"{status}, on call {team.call_id}" if team.call_id else f"{status}, on no call"


def outcome(task: FollowupTask | None, case_id: str) -> str | None:
    """Why Care Navigation will refuse an outcome, or None for an open case."""
    if task is None:
        return (
            f"Case {case_id} is not open on the board: no follow-up is open under that id, so "
            f"Care Navigation will refuse the outcome (unknown_case). {_KEPT}"
        )
    if not task.open:
        last = (task.last_outcome or "none").replace("_", " ")
        return (
            f"Case {case_id} is already closed (last outcome: {last}): Care Navigation will "
            f"refuse a further outcome (case_closed). {_KEPT}"
        )
    return None


#: What each clinician's event is called on the page.
ASSESSMENT_WORDS = {
    "ccd.engaged": "engagement",
    "ccd.screened": "screening",
    "ccd.safety_plan": "safety plan",
    "ccd.referral": "referral",
    "ccd.disposition": "disposition",
}


def assessment(board: Board, call_id: str, event_type: str, clinician_id: str) -> str | None:
    """What becomes of a clinician's event on a call the board does not show open, or on a
    call another clinician holds; None for the usual case."""
    call = board.calls.get(call_id)
    what = ASSESSMENT_WORDS[event_type]
    if call is None or call.ended_at is not None:
        how = _call_end(call)
        if event_type == "ccd.disposition":
            return _late_disposition(call, call_id, how)
        return (
            f"Call {call_id} is not open on the board ({how}): the CCD stage records the "
            f"{what} for the call, but it changes nothing for the call."
        )
    engaged = board.engagements.get(call_id)
    if event_type == "ccd.engaged" and engaged is not None and engaged.clinician_id != clinician_id:
        return (
            f"{engaged.clinician_id} is already on call {call_id}: your engagement is "
            f"recorded too, and the board keeps showing {engaged.clinician_id} on the line."
        )
    return None


def _late_disposition(call: CallRow | None, call_id: str, how: str) -> str:
    if call is None:
        return (
            f"The board has no decision for call {call_id}: triage waits for the call "
            "(HEART_CCD_DISPOSITION_HOLD_S, 120 s by default), then dead-letters the "
            f"disposition as unknown_call. {_KEPT}"
        )
    if call.ended_by == "closed":
        return (
            f"Call {call_id} is not open on the board ({how}): triage changes no decision for "
            "a closed call. It recognises the disposition for HEART_TRIAGE_CLOSED_RETENTION_H "
            "(2 hours by default) and dead-letters it as unknown_call after that."
        )
    return (
        f"Call {call_id} is not open on the board ({how}): triage applies the disposition "
        "only while the 911 center still has the call open."
    )


def _call_end(call: CallRow | None) -> str:
    if call is None:
        return "the board has no decision for it"
    ended_by = call.ended_by or ""
    if ended_by == "cleared":
        return "its team cleared it"
    if ended_by == "closed":
        return "the 911 center closed it"
    if ended_by.startswith("fallback:"):
        return f"it went to police ({ended_by.removeprefix('fallback:').replace('_', ' ')})"
    return "it ended"


def consult(row: ConsultRow | None, consult_id: str, step: str) -> str | None:
    """Why the CCD stage will refuse an answer or a close, or None when it will take it."""
    if row is None:
        return (
            f"Consult {consult_id} is not on the board: the CCD stage will refuse the {step} "
            f"(unknown_consult). {_KEPT}"
        )
    if step == "answer" and row.answered_at is not None:
        return (
            f"Consult {consult_id} is already answered: the CCD stage will refuse a second "
            f"answer (consult_answered_twice). {_KEPT}"
        )
    if step == "answer" and row.closed_at is not None:
        return (
            f"Consult {consult_id} was closed unanswered: the CCD stage will refuse the answer "
            f"(consult_answered_after_close). {_KEPT}"
        )
    if step == "close" and row.closed_at is not None:
        return (
            f"Consult {consult_id} is already closed: the CCD stage will refuse a second close "
            f"(consult_closed_twice). {_KEPT}"
        )
    return None


def consult_request(board: Board, call_id: str | None) -> str | None:
    """A consult about a call that has ended is asked all the same: the question may be
    about what follows it."""
    if call_id is None:
        return None
    call = board.calls.get(call_id)
    if call is None or call.ended_at is not None:
        return (
            f"Call {call_id} is not open on the board ({_call_end(call)}): the consult was "
            "asked all the same."
        )
    return None
