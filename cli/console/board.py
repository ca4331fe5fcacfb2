"""The console's board: the topics folded into what people look at.

Pure: no I/O and no clock. :meth:`Board.apply` folds one decoded event from any of the
topics the console reads; :mod:`heart.cli.console.alerts` and :mod:`heart.cli.console.views`
read the board at a time the caller gives. The same events, in the same order per topic,
give the same board, so a console that restarts and reads the topics from the beginning
shows the board it showed before.

Events of different topics arrive interleaved in no guaranteed order (a team's audit
record may come before or after the dispatch event of the same change), so every fold
that could race keeps the newest by the event's own time, never by arrival.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from heart.schemas.base import Event
from heart.schemas.ccd import (
    CcdDisposition,
    CcdEngaged,
    ConsultAnswered,
    ConsultClosed,
    ConsultOverdue,
    ConsultRequested,
)
from heart.schemas.dispatch import DispatchEvent, UnitAudit, UnitStatus
from heart.schemas.followup import FollowupDue, FollowupOutcome, FollowupOverdue, FollowupScheduled
from heart.schemas.triage import TriageClosure, TriageDecision

#: Dispositions that end the clinician's part on the phone: nobody else will arrive.
PHONE_ENDINGS: frozenset[str] = frozenset({"resolved_by_phone", "transferred_988", "disconnected"})
#: Outcomes after which Care Navigation closes the case (``unable_to_reach`` may retry).
FINAL_OUTCOMES: frozenset[str] = frozenset({"reached", "connected_to_care", "declined"})


@dataclass
class CallRow:
    """One decided call: the decision in force, and where dispatch has it."""

    call_id: str
    route: str
    rules_route: str | None
    reasons: tuple[str, ...]
    revision: int
    decided_at: datetime
    call_received_at: datetime
    call_type: str
    category: str | None
    priority: int | None
    team_id: str | None = None
    #: The last dispatch step: queued, assigned, en_route, on_scene, cancelled.
    dispatch: str | None = None
    queued_at: datetime | None = None
    #: The time of the dispatch step in :attr:`dispatch`.
    dispatch_at: datetime | None = None
    ended_at: datetime | None = None
    #: Why the call left the board: cleared, closed, or ``fallback:<reason>``.
    ended_by: str | None = None

    @property
    def overruled(self) -> bool:
        """A clinician's disposition put the call on another route than the rules'."""
        return self.rules_route is not None and self.rules_route != self.route


@dataclass
class TeamRow:
    team_id: str
    status: UnitStatus = "available"
    #: When the team entered its status; None for a roster team with no event yet.
    since: datetime | None = None
    call_id: str | None = None
    #: The dispatch event that last described the team's call (assigned, updated, ...):
    #: what the team is told, and never more than dispatch sent it.
    assignment: DispatchEvent | None = None


@dataclass
class Engagement:
    """A clinician on a call (``ccd.engaged``) until the phone part ends or responders
    arrive."""

    call_id: str
    clinician_id: str
    since: datetime
    disposition: str | None = None
    disposed_at: datetime | None = None
    responders_on_scene_at: datetime | None = None

    @property
    def on_the_line(self) -> bool:
        return self.responders_on_scene_at is None and self.disposition not in PHONE_ENDINGS


@dataclass
class ConsultRow:
    consult_id: str
    requested_by: str
    urgency: str
    requested_at: datetime
    call_id: str | None
    team_id: str | None
    answered_at: datetime | None = None
    closed_at: datetime | None = None
    #: When the CCD stage reported it overdue (``consult.overdue``), if it has.
    overdue_at: datetime | None = None

    @property
    def waiting(self) -> bool:
        return self.answered_at is None and self.closed_at is None


@dataclass
class FollowupTask:
    """A Care Navigation case, as its timers, tasks and outcomes describe it."""

    case_id: str
    call_id: str
    deadline: datetime
    pilot: str | None = None
    contact_ended_at: datetime | None = None
    release_at: datetime | None = None
    at_risk: bool = False
    #: When the current attempt's task was released to navigators (``followup.due``).
    released_at: datetime | None = None
    attempt: int = 0
    attempts_made: int = 0
    last_outcome: str | None = None
    overdue_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class Fallback:
    call_id: str
    route: str
    reason: str | None
    at: datetime
    queue_wait_s: float | None


@dataclass(frozen=True)
class BackupRequest:
    call_id: str
    team_id: str | None
    at: datetime


@dataclass
class Board:
    """Everything the console shows, built only from the topics."""

    #: Care Navigation's retries after ``unable_to_reach`` (``pilots.cn`` in the policy):
    #: a case is closed once every attempt is used.
    unable_to_reach_retries: int = 0
    recent_items: int = 20
    calls: dict[str, CallRow] = field(default_factory=dict)
    teams: dict[str, TeamRow] = field(default_factory=dict)
    engagements: dict[str, Engagement] = field(default_factory=dict)
    consults: dict[str, ConsultRow] = field(default_factory=dict)
    tasks: dict[str, FollowupTask] = field(default_factory=dict)
    fallbacks: deque[Fallback] = field(default_factory=deque)
    backups: deque[BackupRequest] = field(default_factory=deque)
    #: Call id -> dispatch events and closures read before the call's decision.
    early: dict[str, list[DispatchEvent | TriageClosure]] = field(default_factory=dict)
    #: The newest ``occurred_at`` folded: the event clock.
    newest_event_at: datetime | None = None
    #: Events folded; an update's number for the browser.
    applied: int = 0

    def add_roster_teams(self, team_ids: Iterable[str]) -> None:
        """List the roster's teams before any event names them."""
        for team_id in team_ids:
            self.teams.setdefault(team_id, TeamRow(team_id))

    def apply(self, event: Event) -> None:
        """Fold one event; an event type the board does not show changes nothing."""
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return
        handler(self, event)
        self.applied += 1
        if self.newest_event_at is None or event.occurred_at > self.newest_event_at:
            self.newest_event_at = event.occurred_at

    def prune(self, now: datetime, keep: timedelta) -> None:
        """Forget what ended more than ``keep`` before ``now``, so that the board's size
        follows the work in hand, not the hours behind it."""
        cutoff = now - keep
        for table, ended in (
            (self.calls, lambda c: c.ended_at),
            (self.tasks, lambda t: t.closed_at),
            (self.consults, lambda c: c.closed_at),
            (self.engagements, _engagement_end),
        ):
            for key in [k for k, row in table.items() if (e := ended(row)) and e < cutoff]:
                del table[key]
        # Dispatch events of a call whose decision never came (another city's prefix, a
        # decision past the topic's retention) are not kept for ever either.
        for call_id in [k for k, events in self.early.items() if events[-1].occurred_at < cutoff]:
            del self.early[call_id]

    # --- folds, one per event type ---------------------------------------------------------

    def _decision(self, d: TriageDecision) -> None:
        row = self.calls.get(d.call_id)
        if row is not None and d.revision < row.revision:
            return  # an older revision arriving late
        fields = {
            "route": d.route,
            "rules_route": d.rules_route,
            "reasons": tuple(d.reasons),
            "revision": d.revision,
            "decided_at": d.occurred_at,
            "call_received_at": d.call_received_at,
            "call_type": d.call_type,
            "category": d.category,
            "priority": d.priority,
        }
        if row is None:
            self.calls[d.call_id] = CallRow(call_id=d.call_id, **fields)  # type: ignore[arg-type]
            for early in self.early.pop(d.call_id, []):
                self._call_step(d.call_id, early)
        else:
            for name, value in fields.items():
                setattr(row, name, value)

    def _closure(self, c: TriageClosure) -> None:
        self._call_step(c.call_id, c)

    def _dispatch(self, e: DispatchEvent) -> None:
        kind = e.event_type.removeprefix("dispatch.")
        at = e.occurred_at
        self._call_step(e.call_id, e)
        team = self._team(e.team_id) if e.team_id else None
        if kind in ("assigned", "updated", "en_route", "on_scene"):
            if team is not None and (team.assignment is None or at >= team.assignment.occurred_at):
                team.assignment = e
                team.call_id = e.call_id
                if kind != "updated":
                    status: UnitStatus = "dispatched" if kind == "assigned" else kind  # type: ignore[assignment]
                    self._set_status(team, status, at, e.call_id)
            if kind == "on_scene" and (engaged := self.engagements.get(e.call_id)):
                engaged.responders_on_scene_at = engaged.responders_on_scene_at or at
        elif kind in ("cleared", "cancelled"):
            if team is not None:
                self._free(team, at, e.call_id)
        elif kind == "fallback":
            self._push(self.fallbacks, Fallback(e.call_id, e.route, e.reason, at, e.queue_wait_s))
        elif kind == "backup_requested":
            self._push(self.backups, BackupRequest(e.call_id, e.team_id, at))

    def _call_step(self, call_id: str, e: DispatchEvent | TriageClosure) -> None:
        """Where dispatch (or the CAD's close) has the call. A call's dispatch events come
        keyed by team or by call, on other partitions than its decision: one read before
        the decision waits in :attr:`early` and is applied when the decision comes."""
        call = self.calls.get(call_id)
        if call is None:
            self.early.setdefault(call_id, []).append(e)
            return
        at = e.occurred_at
        if isinstance(e, TriageClosure):
            self._end_call(call_id, at, "closed")
            return
        kind = e.event_type.removeprefix("dispatch.")
        if kind == "cleared":
            self._end_call(call_id, at, "cleared")
        elif kind == "fallback":
            self._end_call(call_id, at, f"fallback:{e.reason or 'unknown'}")
        elif kind in ("queued", "assigned", "updated", "en_route", "on_scene", "cancelled"):
            if call.dispatch_at is not None and at < call.dispatch_at:
                return  # an earlier step read after a later one
            call.dispatch_at = at
            if kind == "queued":
                call.dispatch = "queued"
                call.queued_at = call.queued_at or at
            elif kind == "cancelled":
                call.dispatch, call.team_id, call.queued_at = "cancelled", None, None
            else:
                call.team_id = e.team_id or call.team_id
                call.dispatch = "assigned" if kind == "updated" else kind
                call.queued_at = None

    def _audit(self, a: UnitAudit) -> None:
        team = self._team(a.team_id)
        self._set_status(team, a.to_status, a.occurred_at, a.call_id)

    def _engaged(self, e: CcdEngaged) -> None:
        self.engagements.setdefault(
            e.call_id, Engagement(e.call_id, e.clinician_id, since=e.occurred_at)
        )

    def _disposition(self, d: CcdDisposition) -> None:
        engaged = self.engagements.setdefault(
            d.call_id, Engagement(d.call_id, d.clinician_id, since=d.occurred_at)
        )
        engaged.disposition, engaged.disposed_at = d.disposition, d.occurred_at

    def _consult_requested(self, r: ConsultRequested) -> None:
        self.consults.setdefault(
            r.consult_id,
            ConsultRow(
                r.consult_id, r.requested_by, r.urgency, r.occurred_at, r.call_id, r.team_id
            ),
        )

    def _consult_answered(self, a: ConsultAnswered) -> None:
        if (row := self.consults.get(a.consult_id)) and row.answered_at is None:
            row.answered_at = a.occurred_at

    def _consult_closed(self, c: ConsultClosed) -> None:
        if (row := self.consults.get(c.consult_id)) and row.closed_at is None:
            row.closed_at = c.occurred_at

    def _consult_overdue(self, o: ConsultOverdue) -> None:
        row = self.consults.setdefault(
            o.consult_id,
            ConsultRow(
                o.consult_id, o.requested_by, o.urgency, o.requested_at, o.call_id, o.team_id
            ),
        )
        row.overdue_at = row.overdue_at or o.occurred_at

    def _scheduled(self, s: FollowupScheduled) -> None:
        task = self.tasks.setdefault(s.case_id, FollowupTask(s.case_id, s.call_id, s.deadline))
        task.pilot, task.contact_ended_at = s.pilot, s.contact_ended_at
        task.deadline, task.release_at = s.deadline, s.release_at
        task.at_risk = task.at_risk or s.at_risk

    def _due(self, d: FollowupDue) -> None:
        task = self.tasks.setdefault(d.case_id, FollowupTask(d.case_id, d.call_id, d.deadline))
        if d.attempt < task.attempt:
            return  # an earlier attempt's task arriving late
        task.attempt, task.released_at = d.attempt, d.occurred_at
        task.deadline = d.deadline
        task.at_risk = task.at_risk or d.at_risk

    def _overdue(self, o: FollowupOverdue) -> None:
        task = self.tasks.setdefault(o.case_id, FollowupTask(o.case_id, o.call_id, o.deadline))
        task.overdue_at = task.overdue_at or o.occurred_at

    def _outcome(self, o: FollowupOutcome) -> None:
        task = self.tasks.get(o.case_id)
        if task is None or not task.open:
            return  # Care Navigation refuses it too; its dead letter keeps it
        task.last_outcome = o.outcome
        task.attempts_made += 1
        if o.outcome in FINAL_OUTCOMES or task.attempts_made >= 1 + self.unable_to_reach_retries:
            task.closed_at = o.occurred_at

    # --- helpers ---------------------------------------------------------------------------

    def _team(self, team_id: str) -> TeamRow:
        return self.teams.setdefault(team_id, TeamRow(team_id))

    def _set_status(
        self, team: TeamRow, status: UnitStatus, at: datetime, call_id: str | None
    ) -> None:
        if team.since is not None and at < team.since:
            return  # an older change read after a newer one (another topic)
        # Clearing frees a team at once: the board shows it available, as dispatch keeps it.
        status = "available" if status == "cleared" else status
        if status != team.status or team.since is None:
            team.status, team.since = status, at
        if status in ("available", "out_of_service"):
            team.call_id, team.assignment = None, None
        elif call_id is not None:
            team.call_id = call_id

    def _free(self, team: TeamRow, at: datetime, call_id: str) -> None:
        if team.call_id in (None, call_id):
            self._set_status(team, "available", at, None)

    def _end_call(self, call_id: str, at: datetime, why: str) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.ended_at is None:
            call.ended_at, call.ended_by, call.queued_at = at, why, None

    def _push(self, items: deque, item: object) -> None:  # type: ignore[type-arg]
        items.appendleft(item)
        while len(items) > self.recent_items:
            items.pop()


def _engagement_end(e: Engagement) -> datetime | None:
    if e.on_the_line:
        return None
    return e.responders_on_scene_at or e.disposed_at


_HANDLERS = {
    TriageDecision: Board._decision,
    TriageClosure: Board._closure,
    DispatchEvent: Board._dispatch,
    UnitAudit: Board._audit,
    CcdEngaged: Board._engaged,
    CcdDisposition: Board._disposition,
    ConsultRequested: Board._consult_requested,
    ConsultAnswered: Board._consult_answered,
    ConsultClosed: Board._consult_closed,
    ConsultOverdue: Board._consult_overdue,
    FollowupScheduled: Board._scheduled,
    FollowupDue: Board._due,
    FollowupOverdue: Board._overdue,
    FollowupOutcome: Board._outcome,
}
