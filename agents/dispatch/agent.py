"""The dispatch stage: decisions and unit reports in, exactly one team (or a fallback) out.

Inputs are re-keyed by service area onto ``heart.dispatch.commands`` so that one partition
owns a whole area: one agent applies that area's commands one at a time, and no two
decisions can take the same team.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

from faust.types import EventT, StreamT

from heart.agents.dispatch.area import (
    TEAM_ROUTES,
    AreaState,
    AuditRecord,
    StoredForm,
    Tick,
    apply,
    call_named,
    event_key,
)
from heart.agents.dispatch.finished import FinishedLedger
from heart.agents.dispatch.roster import Roster, load_roster
from heart.agents.dispatch.units import ON_CALL, STATUSES
from heart.agents.ids import uuid5_hex
from heart.policy import Policy, load_policy
from heart.schemas.commands import DispatchCommand
from heart.schemas.dispatch import DispatchEvent, UnitAudit, UnitStatusReport
from heart.schemas.triage import TriageDecision
from heart.streams import metrics
from heart.streams.deadletter import guarded, source_ref
from heart.streams.stage import Stage, TableWriter
from heart.streams.topics import (
    DISPATCH_AREAS,
    DISPATCH_CLEARED,
    DISPATCH_COMMANDS,
    DISPATCH_EVENTS,
    TRIAGE_DECISIONS,
    UNITS_AUDIT,
    UNITS_STATUS,
)

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 1.0
_AUDIT_NS = uuid.UUID("0b7d7c57-7a53-4b8e-9a55-2f3c7e0c1d2a")


def audit_event_id(record: AuditRecord) -> str:
    """The id of a team's status change on ``units.audit``.

    An assignment and the freeing after a call are each made once per team and call, but
    which input makes them (the decision, a clearing that drains the queue, a tick)
    depends on the order a restarted worker reads its inputs in; named by team and call,
    a replay after a crash that reaches them another way keeps their ids. A reported
    change is named by its report, whose id the responder app keeps.
    """
    if record.cause in ("assigned", "freed") and record.call_id is not None:
        name = f"{record.cause}|{record.team_id}|{record.call_id}|{record.to_status}"
    else:
        name = f"{record.cause_event_id}|{record.team_id}|{record.to_status}|{record.at}"
    return uuid5_hex(_AUDIT_NS, name)


def register(stage: Stage) -> None:
    policy = load_policy(stage.settings.policy)
    roster = load_roster(stage.settings.roster)
    log.info("dispatch roster %s, policy %s", roster.version_id, policy.version_id)
    areas = stage.table(DISPATCH_AREAS)
    # The ledger shares the areas' table, so its entries and the area's value go to one
    # changelog partition, where the producer keeps their order: a value that no longer
    # holds a finished call can never be recovered without the ledger entry that still
    # recognises the call's decision when it is replayed after a crash (a replayed
    # decision re-opened a cleared call; docs/reliability.md, "Records lost around a
    # rebalance"). Area names hold no '|'; ledger keys do.
    ledger = FinishedLedger(TableWriter(stage, areas))
    # The validated state last written per area: revalidating the stored JSON on every
    # command costs more than the command. Identity with the table's value proves it is
    # still current (a recovery or another writer replaces the value object).
    models: dict[str, tuple[object, AreaState]] = {}
    forms: dict[str, StoredForm] = {}
    latency = metrics.PROCESSING_SECONDS.labels(stage.name)
    duplicates = metrics.DUPLICATES.labels(stage.name, DISPATCH_COMMANDS.name)

    async def forward_decision(decision: TriageDecision, event: EventT) -> None:
        area = roster.area_for(decision.beat, decision.district)
        if area is None:
            await stage.deadletters.send(
                event, LookupError("no service area covers this call"), "no_service_area"
            )
            return
        command = DispatchCommand(
            kind="decision", area=area, decision=decision, source=source_ref(event)
        )
        await stage.send(DISPATCH_COMMANDS, area, command)

    async def forward_report(report: UnitStatusReport, event: EventT) -> None:
        team = roster.team(report.team_id)
        if team is None:
            await stage.deadletters.send(
                event,
                LookupError(f"team {report.team_id!r} is not on the roster"),
                "unknown_team",
            )
            return
        command = DispatchCommand(
            kind="status", area=team.area, status=report, source=source_ref(event)
        )
        await stage.send(DISPATCH_COMMANDS, team.area, command)

    # Every reader handles its events inside guarded: the stage's own failure on a valid
    # message pauses that reader and holds the message (heart.streams.breaker).
    @stage.app.agent(stage.topic(TRIAGE_DECISIONS), name="dispatch-decisions")
    async def take_decisions(stream: StreamT) -> None:
        async for decision, event in stage.read(stream, TRIAGE_DECISIONS, wanted=_needs_dispatch):
            async with guarded(stage.deadletters, event):
                await forward_decision(decision, event)

    @stage.app.agent(stage.topic(UNITS_STATUS), name="dispatch-status")
    async def take_reports(stream: StreamT) -> None:
        async for report, event in stage.read(stream, UNITS_STATUS):
            async with guarded(stage.deadletters, event):
                await forward_report(report, event)

    @stage.app.timer(TICK_INTERVAL_S, name="dispatch-tick")
    async def tick() -> None:
        # Every replica ticks every area: a Tick only releases what waited too long, so a
        # second one is harmless, and a lost one is made up by the next.
        now = stage.clock.now()
        for area in roster.areas:
            await stage.send(
                DISPATCH_COMMANDS, area, DispatchCommand(kind="tick", area=area, tick_at=now)
            )

    def load(area: str) -> AreaState:
        stored = stage.get(areas, area)
        cached = models.get(area)
        if cached is not None and cached[0] is stored:
            return cached[1]
        return AreaState.model_validate(stored) if stored is not None else AreaState(area=area)

    async def handle(command: DispatchCommand) -> None:
        state = load(command.area)
        # Time advances here, in command order, not in the intake agents: on event
        # time a report read ahead must not age the queue before its turn.
        payload = command.decision or command.status
        if payload is not None:
            stage.clock.observe(payload.occurred_at)
        elif not stage.clock.known:
            # A restarted worker on event time has no time until an event arrives: a tick
            # now would judge queued calls by the wall clock and release them all.
            return
        now = stage.clock.now()
        payload = payload or Tick(now)
        call_id = call_named(payload)
        finished = ledger.get(command.area, call_id) if call_id not in state.calls else None
        result = apply(state, payload, roster=roster, policy=policy, now=now, finished=finished)
        if result.outcome == "duplicate":
            duplicates.inc()
        for rejection in result.rejections:
            await _dead_letter(stage, command, rejection.reason, rejection.message)
        for out in result.events:
            await stage.send(DISPATCH_EVENTS, event_key(out), out)
            if out.event_type == "dispatch.cleared":
                # Again by call, where Care Navigation keeps the call's follow-up: read
                # from dispatch.events, keyed by team, each clearing had to be re-keyed.
                await stage.send(DISPATCH_CLEARED, out.call_id, out)
            _count(out, stage.name)
        for record in result.audit:
            audit = UnitAudit(
                event_id=audit_event_id(record),
                occurred_at=record.at,
                team_id=record.team_id,
                call_id=record.call_id,
                from_status=record.from_status,
                to_status=record.to_status,
                cause=record.cause,
                cause_event_id=record.cause_event_id,
            )
            await stage.send(UNITS_AUDIT, record.team_id, audit)
        for record in result.finished:
            ledger.put(command.area, record)
        if isinstance(payload, Tick):
            ledger.prune(command.area, now)
        if result.state is not state:
            stored, encoded = forms.setdefault(command.area, StoredForm()).dump(result.state)
            stage.put(areas, command.area, stored, encoded=encoded)
            models[command.area] = (stored, result.state)
        _gauge(result.state, roster, policy, now)

    @stage.app.agent(stage.topic(DISPATCH_COMMANDS), name="dispatch")
    async def dispatch(stream: StreamT) -> None:
        async for command, event in stage.read(stream, DISPATCH_COMMANDS):
            started = time.perf_counter()
            async with guarded(stage.deadletters, event):
                await handle(command)
            latency.observe(time.perf_counter() - started)


def _needs_dispatch(data: dict[str, Any]) -> bool:
    # A superseding decision matters even when its route is police: it may cancel a
    # queued call or warn a team on its way. Police decisions are most of the topic and
    # are skipped unvalidated; triage, which wrote them, validated them.
    return data.get("route") in TEAM_ROUTES or data.get("supersedes") is not None


async def _dead_letter(stage: Stage, command: DispatchCommand, reason: str, message: str) -> None:
    source = command.source
    if source is None:
        log.error("dispatch refused a tick: %s (%s)", reason, message)
        return
    await stage.deadletters.send_source(source, ValueError(message), reason)


def _count(event: DispatchEvent, stage: str) -> None:
    route = event.route
    metrics.DISPATCH_EVENTS.labels(event.event_type, route).inc()
    if event.event_type == "dispatch.assigned" and event.decision_to_assignment_s is not None:
        metrics.DECISION_TO_ASSIGNMENT_SECONDS.labels(route).observe(event.decision_to_assignment_s)
    elif event.event_type == "dispatch.on_scene" and event.assignment_to_on_scene_s is not None:
        metrics.ASSIGNMENT_TO_ON_SCENE_SECONDS.labels(route).observe(event.assignment_to_on_scene_s)
    elif event.event_type == "dispatch.cleared" and event.time_on_scene_s is not None:
        metrics.TIME_ON_SCENE_SECONDS.labels(route).observe(event.time_on_scene_s)
    elif event.event_type == "dispatch.fallback":
        reason = event.reason or "unknown"
        metrics.FALLBACKS.labels(route, reason).inc()
        if reason in ("no_team_free", "no_team_on_shift", "no_team_of_kind"):
            metrics.ELIGIBLE_MISSED.labels(route, "no_team_free").inc()
        elif reason == "stale":
            metrics.STALE_CALLS.labels(stage).inc()
    elif event.event_type == "dispatch.backup_requested":
        metrics.BACKUP_REQUESTS.labels(route).inc()


def _gauge(state: AreaState, roster: Roster, policy: Policy, now: datetime) -> None:
    on_shift = roster.on_shift_in(state.area, now, policy.zone)
    for kind in ("crt", "cor"):
        queued = [c for c in state.queue if state.calls[c].kind == kind]
        metrics.QUEUE_LENGTH.labels(state.area, kind).set(len(queued))
        oldest = min((state.calls[c].decided_at for c in queued), default=None)
        wait = (now - oldest).total_seconds() if oldest else 0.0
        metrics.QUEUE_OLDEST_WAIT_SECONDS.labels(state.area, kind).set(max(0.0, wait))
        ids = [t.id for t in roster.teams_in(state.area) if t.kind == kind]
        statuses = Counter(state.teams[i].status for i in ids if i in state.teams)
        for status in STATUSES:
            metrics.TEAMS.labels(state.area, kind, status).set(statuses[status])
        busy = sum(statuses[status] for status in ON_CALL)
        shift = sum(1 for i in ids if i in on_shift)
        metrics.TEAM_UTILISATION.labels(state.area, kind).set(
            min(1.0, busy / shift) if shift else 0.0
        )
