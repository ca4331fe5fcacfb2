"""One service area's dispatch state and its pure step: commands in, state and events out.

The dispatch agent keeps an :class:`AreaState` per service area in one Faust table entry
(all of an area's teams live in one partition, so one agent applies that area's commands
one at a time and no two decisions can take the same team). It feeds :func:`apply` three
kinds of command: a :class:`~heart.schemas.triage.TriageDecision`, a
:class:`~heart.schemas.dispatch.UnitStatusReport` and a periodic :class:`Tick`. No Faust, no I/O,
no clock here: the agent passes ``now``, so replaying the same commands at the same times
gives the same state and the same events, with the same event ids.

Assignment
    A free team is ``available`` and on shift at ``now`` (shift windows in the policy's
    zone), of the decision's kind (``crt`` -> CRT team, ``cor`` -> CoR pair). Preference,
    most important first: same beat as the call, then same district (the decision's
    district, else the roster's district of its beat), then any; within a tier a team that
    speaks the caller's language (primary subtag: ``es-MX`` matches ``es``); then the team
    idle longest; then the team id. Assignment moves the team to ``dispatched``.

Queue
    A call no free team can take waits, ordered by priority (lower number first, none
    last), then by when it was decided, then by call id. After every command the queue is
    drained in that order: each call takes the best free team of its kind, so a team that
    clears (or comes back in service, or starts its shift) takes the first call it can
    serve. A new decision joins the queue before the drain, so it never jumps ahead of an
    older call of the same priority.

Release (``dispatch.fallback``, route = the pilot whose team was wanted)
    - ``no_team_free``: waited ``policy.dispatch.max_queue_wait_minutes`` or longer since
      the decision (the seed's "eligible, missed: no team free");
    - ``no_team_on_shift``: no team of that kind is on shift now, so waiting cannot help;
    - ``no_team_of_kind``: the roster has no team of that kind in the area;
    - ``superseded``: a newer decision routes a queued call elsewhere (ccd or police):
      ``dispatch.cancelled`` is the queued call's terminal event.
    - ``stale``: the decision arrived more than ``policy.dispatch.stale_call_minutes``
      after the CAD event behind it (its ``source_occurred_at``, else its own time), say
      after dispatch was paused or down: the CAD's standard response has taken over, so
      no team goes, even a free one. It is never queued, and is not a miss.
    Releases are checked after every command, so a decision that arrives late is released
    at once rather than queued. A Tick is the command that does only that. No team is
    ever assigned to a call staler than ``stale_call_minutes``: a queued call that turns
    stale before its maximum wait is released as ``no_team_free`` (it waited for one).

Exactly one assignment per call
    Each call's record keeps the latest decision's id and revision. A redelivered decision,
    or an older one arriving late, is a duplicate. A newer decision for a queued call
    updates it in place (kind, priority, place, notes) and keeps its age; for an assigned
    call it never brings a second team: the assigned team stays on and reports, unless
    the newer decision is ``ccd`` (a clinician resolved the call by phone) and the team
    is not on scene yet: then the team is stood down (``dispatch.cancelled``, reason
    ``superseded:ccd``, the team freed). A call released to police stays released.

Open and finished calls are kept apart
    The area value holds only teams, the queue and open calls (queued or assigned), so its
    size follows the work in hand, not the hours of calls behind it. A call that finishes
    (released or cleared) leaves it in :attr:`Result.finished` as a slim
    :class:`FinishedCall`; the agent files it in a per-call ledger
    (:mod:`heart.agents.dispatch.finished`) and passes it back in ``finished=`` when a later
    command names that call. The ledger forgets a finished call :data:`CALL_MEMORY` after
    it finished; a decision older than that for an unknown call is refused
    (``stale_decision``), so a very late redelivery cannot dispatch a forgotten call again.

Unit status reports
    Checked in this order; a refused report leaves the state exactly as it was:
    ``unknown_team`` (not in the roster for this area), duplicate event id (ignored, not
    refused: one of the team's recent reports, or a report already applied to the call it
    names, so a report re-forwarded after a crash is recognised however old),
    ``stale_report`` (older than the team's last accepted report),
    ``call_mismatch`` (names a call other than the one the team holds),
    ``illegal_transition`` (see :mod:`heart.agents.dispatch.units`), ``backup_without_call``.
    ``cleared`` frees the team at once (``cleared -> available``). ``transporting`` has no
    dispatch event type; it is audited only. ``backup_requested`` emits
    ``dispatch.backup_requested`` once per call (the counted outcome is per call).

Timings
    - ``decision_to_assignment_s``: assignment time minus the first decision's
      ``occurred_at``. Measured from the decision, not from ``call_received_at``: it is the
      dispatch stage's own share, queue wait included; triage latency is measured there.
    - ``assignment_to_on_scene_s``: the team's on-scene report time minus assignment time.
    - ``time_on_scene_s``: cleared report time minus on-scene report time (transport
      included), None when the team cleared before arriving.
    Report times are the responder app's ``occurred_at``; negative spans from clock skew
    are reported as 0.

Event ids are uuid5 names, so an event re-emitted after a crash keeps its id: queued,
assigned and fallback are once per call and named by the decision that opened the call;
en route, on scene, cleared and backup requested are named by the report that caused them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from heart.agents.dispatch.queue_rule import is_stale, pick_team, queue_key, release_reason
from heart.agents.dispatch.roster import Roster, Team
from heart.agents.dispatch.units import ON_CALL, IllegalTransition, assign, transition
from heart.agents.ids import uuid5_hex
from heart.policy.model import Policy
from heart.schemas.calls import Location
from heart.schemas.dispatch import DispatchEvent, DispatchEventType, UnitStatus, UnitStatusReport
from heart.schemas.triage import TriageDecision

#: Routes that ask for a team; the route names the team kind.
TEAM_ROUTES: frozenset[str] = frozenset({"crt", "cor"})
#: How long a finished call is remembered, against redelivered and superseding decisions.
CALL_MEMORY = timedelta(hours=6)
#: Report event ids remembered per team; apps retry recent reports, not old ones.
RECENT_REPORTS = 16
#: Report event ids remembered per call: every report a team sends about one call.
CALL_REPORTS = 64

_EVENT_NS = uuid.UUID("0b7e3c52-5d1e-4b8e-9a57-2f6c4d9e1a38")

TeamKind = Literal["crt", "cor"]
CallStatus = Literal["queued", "assigned", "released", "cleared"]
Outcome = Literal["applied", "duplicate", "ignored", "rejected"]
RejectionReason = Literal[
    "unknown_team",
    "stale_report",
    "call_mismatch",
    "illegal_transition",
    "backup_without_call",
    "stale_decision",
]
FINISHED: frozenset[str] = frozenset({"released", "cleared"})

_M = TypeVar("_M", bound=BaseModel)


# --- commands and results -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic maintenance: release calls waited too long, hand queued calls to teams
    whose shift started, forget old calls. ``now`` is when the timer fired; :func:`apply`
    judges by its own ``now`` argument, which the agent takes from the same clock."""

    now: datetime


Command = TriageDecision | UnitStatusReport | Tick


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a command was refused; the agent sends the original record to the dead letters."""

    reason: RejectionReason
    message: str


class AuditRecord(BaseModel):
    """One change of one team's status: who, from, to, when, and which event caused it."""

    model_config = ConfigDict(frozen=True)

    team_id: str
    call_id: str | None
    from_status: UnitStatus
    to_status: UnitStatus
    at: AwareDatetime
    #: ``assigned`` by the dispatcher, ``reported`` by the team, ``freed`` on clearing.
    cause: Literal["assigned", "reported", "freed"]
    #: The decision or report that caused it, or None when a Tick did.
    cause_event_id: str | None


# --- state --------------------------------------------------------------------------------


class CallInfo(BaseModel):
    """What a team needs to respond. The caller's personal data is never here."""

    call_type: str
    category: str | None = None
    location: Location | None = None
    language: str = "en"
    interpreter: str | None = None
    safety_notes: str | None = None
    weapon_involved: bool = False
    violence_reported: bool = False


class CallRecord(BaseModel):
    """A call dispatch was asked to staff: queued, assigned, or finished and remembered."""

    call_id: str
    kind: TeamKind
    status: CallStatus
    #: The decision that opened the call here; names its once-per-call events.
    opened_by: str
    #: The latest decision applied, and its revision.
    decision_id: str
    revision: int
    #: The first decision's ``occurred_at``: queue age and decision-to-assignment from it.
    decided_at: AwareDatetime
    #: When the CAD event behind the first decision occurred: staleness is judged from it.
    #: None in records written before it was kept (judged from ``decided_at``).
    needed_since: AwareDatetime | None = None
    priority: int | None = None
    beat: str | None = None
    district: str | None = None
    info: CallInfo
    team_id: str | None = None
    assigned_at: AwareDatetime | None = None
    en_route_at: AwareDatetime | None = None
    on_scene_at: AwareDatetime | None = None
    backup_requested_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    #: Why it was released, for released calls.
    reason: str | None = None
    #: Event ids of the reports applied to this call, to recognise a repeat of any of them.
    reports: list[str] = Field(default_factory=list)


class FinishedCall(BaseModel):
    """What is kept of a released or cleared call: enough to recognise a repeated or
    superseding decision and a repeated report, none of the call's details."""

    call_id: str
    kind: TeamKind
    status: Literal["released", "cleared"]
    opened_by: str
    decision_id: str
    revision: int
    team_id: str | None = None
    finished_at: AwareDatetime
    reason: str | None = None
    reports: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, record: CallRecord) -> FinishedCall:
        return cls.model_validate(
            record.model_dump(
                include={
                    "call_id",
                    "kind",
                    "status",
                    "opened_by",
                    "decision_id",
                    "revision",
                    "team_id",
                    "finished_at",
                    "reason",
                    "reports",
                }
            )
        )


class TeamState(BaseModel):
    status: UnitStatus = "available"
    call_id: str | None = None
    #: When the team entered its status; for an available team, how long it has been idle.
    since: AwareDatetime
    last_report_at: AwareDatetime | None = None
    recent_reports: list[str] = Field(default_factory=list)


class AreaState(BaseModel):
    """Everything dispatch keeps for one service area; one Faust table value.

    Round-trips through ``model_dump(mode="json")`` and ``model_validate``.
    """

    area: str
    teams: dict[str, TeamState] = Field(default_factory=dict)
    #: Open calls only: queued or assigned (see "Open and finished calls are kept apart").
    calls: dict[str, CallRecord] = Field(default_factory=dict)
    #: Queued call ids in dispatch order.
    queue: list[str] = Field(default_factory=list)


class StoredForm:
    """One area's table value (``model_dump(mode="json")``) and its JSON, kept up to date
    cheaply.

    :func:`apply` shares the records it does not change with the state it was given, so
    a record still present as the same object still has the forms made for it last time.
    With dozens of teams and open calls per area, dumping and encoding only what changed
    is most of the saving.
    """

    def __init__(self) -> None:
        self._forms: dict[int, tuple[BaseModel, dict[str, Any], bytes]] = {}

    def dump(self, state: AreaState) -> tuple[dict[str, Any], bytes]:
        """The table value and its JSON encoding."""
        known = self._forms
        forms: dict[int, tuple[BaseModel, dict[str, Any], bytes]] = {}

        def form(key: str, model: BaseModel) -> tuple[BaseModel, dict[str, Any], bytes]:
            # A record is filed under one key (its team's or call's id) for good, so its
            # JSON object member is made with it.
            hit = known.get(id(model))
            if hit is None or hit[0] is not model:
                value = model.model_dump(mode="json")
                hit = (model, value, orjson.dumps(key) + b":" + orjson.dumps(value))
            forms[id(model)] = hit
            return hit

        teams = {team_id: form(team_id, team) for team_id, team in state.teams.items()}
        calls = {call_id: form(call_id, call) for call_id, call in state.calls.items()}
        self._forms = forms
        value = {
            "area": state.area,
            "teams": {team_id: f[1] for team_id, f in teams.items()},
            "calls": {call_id: f[1] for call_id, f in calls.items()},
            "queue": list(state.queue),
        }
        encoded = b"".join(
            (
                b'{"area":',
                orjson.dumps(state.area),
                b',"teams":',
                _spliced(teams),
                b',"calls":',
                _spliced(calls),
                b',"queue":',
                orjson.dumps(value["queue"]),
                b"}",
            )
        )
        return value, encoded


def _spliced(forms: dict[str, tuple[BaseModel, dict[str, Any], bytes]]) -> bytes:
    # A JSON object from its members' encodings, each made once.
    return b"{" + b",".join([f[2] for f in forms.values()]) + b"}"


@dataclass(frozen=True)
class Result:
    """What one command did. ``state`` is the very object passed in when nothing changed,
    so the agent writes the table only when ``result.state is not state``."""

    state: AreaState
    events: list[DispatchEvent] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    outcome: Outcome = "applied"
    #: Calls that finished (or, finished already, were re-decided) with this command.
    finished: list[FinishedCall] = field(default_factory=list)


def call_named(command: Command) -> str | None:
    """The call a command names, whose finished record :func:`apply` may need."""
    if isinstance(command, TriageDecision):
        return command.call_id
    if isinstance(command, UnitStatusReport):
        return command.call_id
    return None


def event_key(event: DispatchEvent) -> str:
    """The Kafka key: the team, so a team's events stay in order; the call when no team."""
    return event.team_id or event.call_id


# --- the step -----------------------------------------------------------------------------


@dataclass
class _Step:
    state: AreaState
    roster: Roster
    policy: Policy
    now: datetime
    #: The finished record of the call the command names, if the caller has one.
    finished_in: FinishedCall | None = None
    #: The command's event id (None for a Tick), named as the cause in audit records.
    cause: str | None = None
    events: list[DispatchEvent] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    finished: list[FinishedCall] = field(default_factory=list)
    #: Records and team states this step has its own copies of, by id (see :meth:`call`).
    owned: dict[int, BaseModel] = field(default_factory=dict)

    def call(self, call_id: str) -> CallRecord:
        """The call's record, for writing."""
        return self._own(self.state.calls, call_id)

    def team(self, team_id: str) -> TeamState:
        """The team's state, for writing."""
        return self._own(self.state.teams, team_id)

    def _own(self, models: dict[str, _M], key: str) -> _M:
        # Copy on write: the step starts from the caller's records, shared, and copies
        # only those it changes. A deep copy of the whole area cost more than the command.
        # Fields are only ever replaced, never changed in place, so a shallow copy is
        # enough.
        model = models[key]
        if id(model) not in self.owned:
            model = models[key] = model.model_copy()
            self.owned[id(model)] = model
        return model


def apply(
    state: AreaState,
    command: Command,
    *,
    roster: Roster,
    policy: Policy,
    now: datetime,
    finished: FinishedCall | None = None,
) -> Result:
    """Apply one command to one area's state (see the module docstring for the rules).

    ``finished`` is the caller's record of the call the command names
    (:func:`call_named`), when that call finished earlier and left the area.
    """
    if finished is not None and finished.call_id != call_named(command):
        raise ValueError(f"finished record {finished.call_id} is not the command's call")
    # The containers are the step's own; the records in them are shared until written.
    own = state.model_copy(
        update={"teams": dict(state.teams), "calls": dict(state.calls), "queue": list(state.queue)}
    )
    step = _Step(own, roster, policy, now, finished)
    _sync_teams(step)
    outcome: Outcome | Rejection
    new_call: str | None = None
    if isinstance(command, TriageDecision):
        step.cause = command.event_id
        outcome = _on_decision(step, command)
        if outcome == "applied" and command.call_id in step.state.queue:
            new_call = command.call_id if command.call_id not in state.calls else None
    elif isinstance(command, UnitStatusReport):
        step.cause = command.event_id
        outcome = _on_report(step, command)
    elif isinstance(command, Tick):
        outcome = "applied"
    else:
        raise TypeError(f"not a dispatch command: {type(command).__name__}")

    if isinstance(outcome, Rejection):
        return Result(state, rejections=[outcome], outcome="rejected")
    if outcome != "applied":
        return Result(state, outcome=outcome)

    _drain(step)
    _release(step)
    if new_call is not None and step.state.calls[new_call].status == "queued":
        _emit(step, "dispatch.queued", step.state.calls[new_call], reason="no_team_free")
    _retire(step)
    if step.state == state and not step.finished:
        return Result(state)
    return Result(step.state, step.events, [], step.audit, finished=step.finished)


def _sync_teams(step: _Step) -> None:
    # A team added to the roster starts available; one removed keeps its entry (it may
    # hold a call) but is no longer a candidate and its reports are refused.
    for team in step.roster.teams_in(step.state.area):
        if team.id not in step.state.teams:
            step.state.teams[team.id] = TeamState(since=step.now)


# --- decisions ----------------------------------------------------------------------------


def _on_decision(step: _Step, decision: TriageDecision) -> Outcome | Rejection:
    record = step.state.calls.get(decision.call_id)
    done = step.finished_in
    if record is None and done is not None:
        if decision.event_id == done.decision_id or decision.revision <= done.revision:
            return "duplicate"
        # Gone to police or cleared: a newer decision does not reopen it, but a later
        # repeat of this one must be recognised.
        update = {"decision_id": decision.event_id, "revision": decision.revision}
        step.finished.append(done.model_copy(update=update))
        return "applied"
    if record is not None:
        if decision.event_id == record.decision_id or decision.revision <= record.revision:
            return "duplicate"
        return _supersede(step, record, decision)
    if decision.route not in TEAM_ROUTES:
        return "ignored"
    if decision.occurred_at < step.now - CALL_MEMORY:
        return Rejection(
            "stale_decision",
            f"decision for call {decision.call_id} made at {decision.occurred_at.isoformat()}"
            f" is older than {CALL_MEMORY} and the call is not remembered",
        )
    record = CallRecord(
        call_id=decision.call_id,
        kind=_kind(decision),
        status="queued",
        opened_by=decision.event_id,
        decision_id=decision.event_id,
        revision=decision.revision,
        decided_at=decision.occurred_at,
        needed_since=decision.source_occurred_at or decision.occurred_at,
        **_details(decision),
    )
    step.state.calls[record.call_id] = record
    step.owned[id(record)] = record
    step.state.queue.append(record.call_id)
    if _stale(step, record):
        _finish_release(step, record, "stale", queued=False)
    return "applied"


def _kind(decision: TriageDecision) -> TeamKind:
    return "cor" if decision.route == "cor" else "crt"


def _details(decision: TriageDecision) -> dict[str, Any]:
    return {
        "priority": decision.priority,
        "beat": decision.beat,
        "district": decision.district,
        "info": CallInfo(
            call_type=decision.call_type,
            category=decision.category,
            location=decision.location,
            language=decision.language,
            interpreter=decision.interpreter,
            safety_notes=decision.safety_notes,
            weapon_involved=decision.weapon_involved,
            violence_reported=decision.violence_reported,
        ),
    }


def _supersede(step: _Step, record: CallRecord, decision: TriageDecision) -> Outcome:
    record = step.call(record.call_id)
    record.decision_id = decision.event_id
    record.revision = decision.revision
    if record.status in FINISHED:
        # Gone to police or cleared: a newer decision does not reopen it.
        return "applied"
    # Keep the newest place, notes and language for later events (a backup request
    # should carry the updated safety notes).
    for name, value in _details(decision).items():
        setattr(record, name, value)
    if record.status == "assigned" and decision.route == "ccd" and record.on_scene_at is None:
        # A clinician resolved the call by phone before the team got there: stand the
        # team down, free for the next call. A team on scene stays and clears as usual.
        team_id = record.team_id
        record.status = "released"
        record.reason = "superseded"
        record.finished_at = step.now
        _emit(step, "dispatch.cancelled", record, team_id=team_id, reason="superseded:ccd")
        if team_id is not None and step.team(team_id).call_id == record.call_id:
            _set_status(step, team_id, "available", step.now, "freed")
        return "applied"
    if record.status == "assigned":
        # Never a second team: the assigned team stays on and reports. But it must hear
        # what changed (a weapon now reported) before it arrives unprepared.
        _emit(
            step,
            "dispatch.updated",
            record,
            team_id=record.team_id,
            reason=f"redecided:{decision.route}",
        )
        return "applied"
    if decision.route in TEAM_ROUTES:
        record.kind = _kind(decision)
        return "applied"
    record.status = "released"
    record.reason = "superseded"
    record.finished_at = step.now
    step.state.queue.remove(record.call_id)
    _emit(step, "dispatch.cancelled", record, reason=f"superseded:{decision.route}")
    return "applied"


# --- unit status reports ------------------------------------------------------------------


def _on_report(step: _Step, report: UnitStatusReport) -> Outcome | Rejection:
    area = step.state.area
    team = step.roster.team(report.team_id)
    if team is None or team.area != area:
        where = f"area {team.area!r}" if team is not None else "no area"
        return Rejection(
            "unknown_team", f"team {report.team_id!r} is not on area {area!r}'s roster ({where})"
        )
    current = step.state.teams[team.id]
    if report.event_id in current.recent_reports or _applied_to_call(step, report):
        return "duplicate"
    if current.last_report_at is not None and report.occurred_at < current.last_report_at:
        return Rejection(
            "stale_report",
            f"team {team.id} report at {report.occurred_at.isoformat()} is older than its "
            f"last accepted report at {current.last_report_at.isoformat()}",
        )
    if (
        report.call_id is not None
        and current.call_id is not None
        and report.call_id != current.call_id
    ):
        return Rejection(
            "call_mismatch",
            f"team {team.id} reported on call {report.call_id} but holds call {current.call_id}",
        )
    try:
        transition(current.status, report.status)
    except IllegalTransition as exc:
        return Rejection("illegal_transition", f"team {team.id}: {exc}")
    record = step.state.calls.get(current.call_id) if current.call_id else None
    if report.backup_requested and record is None:
        return Rejection(
            "backup_without_call", f"team {team.id} requested backup but holds no call"
        )

    at = report.occurred_at
    current = step.team(team.id)
    if record is not None:
        record = step.call(record.call_id)
    current.last_report_at = at
    current.recent_reports = [*current.recent_reports, report.event_id][-RECENT_REPORTS:]
    if record is not None:
        record.reports = [*record.reports, report.event_id][-CALL_REPORTS:]
    if record is not None and report.backup_requested and record.backup_requested_at is None:
        record.backup_requested_at = at
        _emit(step, "dispatch.backup_requested", record, team_id=team.id, at=at)
    if report.status == current.status:
        return "applied"

    _set_status(step, team.id, report.status, at, "reported")
    if record is None:
        return "applied"
    if report.status == "en_route":
        record.en_route_at = at
        _emit(step, "dispatch.en_route", record, team_id=team.id, at=at, full=False)
    elif report.status == "on_scene":
        record.on_scene_at = at
        _emit(
            step,
            "dispatch.on_scene",
            record,
            team_id=team.id,
            at=at,
            full=False,
            assignment_to_on_scene_s=_span(record.assigned_at, at),
        )
    elif report.status == "cleared":
        record.status = "cleared"
        record.finished_at = at
        _emit(
            step,
            "dispatch.cleared",
            record,
            team_id=team.id,
            at=at,
            full=False,
            time_on_scene_s=_span(record.on_scene_at, at),
            followup_declined=report.followup_declined,
        )
        # Clearing frees the team; the drain that follows hands it the queue's head.
        _set_status(step, team.id, "available", at, "freed")
    return "applied"


def _applied_to_call(step: _Step, report: UnitStatusReport) -> bool:
    if report.call_id is None:
        return False
    record = step.state.calls.get(report.call_id) or step.finished_in
    return (
        record is not None
        and record.team_id == report.team_id
        and (report.event_id in record.reports)
    )


def _set_status(
    step: _Step,
    team_id: str,
    status: UnitStatus,
    at: datetime,
    cause: Literal["assigned", "reported", "freed"],
    call_id: str | None = None,
) -> None:
    team = step.team(team_id)
    step.audit.append(
        AuditRecord(
            team_id=team_id,
            call_id=call_id or team.call_id,
            from_status=team.status,
            to_status=status,
            at=at,
            cause=cause,
            cause_event_id=step.cause,
        )
    )
    team.status = status
    team.since = at
    if status == "dispatched":
        team.call_id = call_id
    elif status not in ON_CALL and status != "cleared":
        team.call_id = None


# --- queue --------------------------------------------------------------------------------


def _queue_order(record: CallRecord) -> tuple[bool, int, datetime, str]:
    return queue_key(record.priority, record.decided_at, record.call_id)


def _free(step: _Step, team: Team) -> bool:
    state = step.state.teams.get(team.id)
    return (
        state is not None
        and state.status == "available"
        and team.id in step.roster.on_shift_in(step.state.area, step.now, step.policy.zone)
    )


def _pick(step: _Step, record: CallRecord) -> str | None:
    area = step.state.area
    return pick_team(
        step.roster.teams_in(area),
        kind=record.kind,
        beat=record.beat,
        district=record.district or step.roster.district_of(area, record.beat),
        language=record.info.language,
        free=lambda team: _free(step, team),
        home_district=step.roster.home_district,
        idle_since=lambda team_id: step.state.teams[team_id].since,
    )


def _free_kinds(step: _Step) -> set[str]:
    return {team.kind for team in step.roster.teams_in(step.state.area) if _free(step, team)}


def _drain(step: _Step) -> None:
    queue = step.state.queue
    if not queue:
        return
    # Kept sorted so the stored queue reads in dispatch order (Timsort on a sorted list
    # is linear).
    queue.sort(key=lambda call_id: _queue_order(step.state.calls[call_id]))
    # Most commands find no free team; knowing that up front keeps a long queue cheap.
    free = _free_kinds(step)
    if not free:
        return
    for call_id in list(queue):
        record = step.state.calls[call_id]
        if record.kind not in free or _stale(step, record):
            continue
        team_id = _pick(step, record)
        if team_id is None:
            continue
        assign(step.state.teams[team_id].status)
        _set_status(step, team_id, "dispatched", step.now, "assigned", call_id=call_id)
        record = step.call(call_id)
        record.status = "assigned"
        record.team_id = team_id
        record.assigned_at = step.now
        queue.remove(call_id)
        _emit(
            step,
            "dispatch.assigned",
            record,
            team_id=team_id,
            decision_to_assignment_s=_span(record.decided_at, step.now),
        )
        free = _free_kinds(step)
        if not free:
            return


def _release(step: _Step) -> None:
    if not step.state.queue:
        return
    max_wait = timedelta(minutes=step.policy.dispatch.max_queue_wait_minutes)
    teams = step.roster.teams_in(step.state.area)
    kinds = {team.kind for team in teams}
    shift = step.roster.on_shift_in(step.state.area, step.now, step.policy.zone)
    on_shift = {team.kind for team in teams if team.id in shift}
    for call_id in list(step.state.queue):
        record = step.state.calls[call_id]
        reason = release_reason(
            kind_on_roster=record.kind in kinds,
            kind_on_shift=record.kind in on_shift,
            waited=step.now - record.decided_at,
            max_wait=max_wait,
            stale=_stale(step, record),
        )
        if reason is not None:
            _finish_release(step, record, reason)


def _stale(step: _Step, record: CallRecord) -> bool:
    """Whether the call is past the policy's ``stale_call_minutes``: no team may go."""
    since = record.needed_since or record.decided_at
    return is_stale(step.now, since, timedelta(minutes=step.policy.dispatch.stale_call_minutes))


def _finish_release(step: _Step, record: CallRecord, reason: str, *, queued: bool = True) -> None:
    record = step.call(record.call_id)
    record.status = "released"
    record.reason = reason
    record.finished_at = step.now
    step.state.queue.remove(record.call_id)
    _emit(
        step,
        "dispatch.fallback",
        record,
        reason=reason,
        # A call refused as stale on arrival never waited in the queue.
        queue_wait_s=_span(record.decided_at, step.now) if queued else None,
    )


def _retire(step: _Step) -> None:
    calls = step.state.calls
    for call_id in [c for c, r in calls.items() if r.status in FINISHED]:
        step.finished.append(FinishedCall.of(calls.pop(call_id)))


# --- events -------------------------------------------------------------------------------


def _span(start: datetime | None, end: datetime) -> float | None:
    return None if start is None else max(0.0, (end - start).total_seconds())


_ONCE_PER_CALL = frozenset(
    {"dispatch.queued", "dispatch.assigned", "dispatch.fallback", "dispatch.cancelled"}
)


def _emit(
    step: _Step,
    kind: DispatchEventType,
    record: CallRecord,
    *,
    team_id: str | None = None,
    at: datetime | None = None,
    full: bool = True,
    **extra: Any,
) -> None:
    # Once-per-call events are named by the call's opening decision, whichever command
    # triggered them, so a replay after a crash re-emits the same id even if a Tick, not
    # the same report, triggers it this time. Report-driven events are named by the report.
    cause = record.opened_by if kind in _ONCE_PER_CALL else step.cause
    event_id = uuid5_hex(_EVENT_NS, f"{cause}|{kind}|{record.call_id}")
    info = record.info
    # En route, on scene and cleared go to a team that already has the call's details.
    details: dict[str, Any] = (
        info.model_dump(exclude={"call_type", "category", "language"}) if full else {}
    )
    step.events.append(
        DispatchEvent(
            event_id=event_id,
            event_type=kind,
            occurred_at=at or step.now,
            call_id=record.call_id,
            route=record.kind,
            team_id=team_id,
            service_area=step.state.area,
            call_type=info.call_type,
            category=info.category,
            language=info.language,
            **details,
            **extra,
        )
    )
