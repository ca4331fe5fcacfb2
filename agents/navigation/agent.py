"""The Care Navigation stage: durable 48-hour follow-up timers.

Contacts (a CCD call closed, a team clearing its call), outcomes and per-partition ticks
are re-keyed by case onto ``heart.navigation.commands``; one agent owns each case's record
in a changelogged table. A tick sweeps the cases of its own partition, so timers follow
their partitions on rebalance, and a worker restarted after a crash fires every timer
missed while it was down, once each, in batches of at most ``sweep_batch_limit``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from faust.types import StreamT

from agents.navigation.cases import (
    Case,
    Contact,
    contact_from_call_closed,
    contact_from_dispatch,
    on_outcome,
    outcome_rejection,
    schedule,
    skip_reason,
    sweep,
)
from policy import Policy, load_policy
from schemas.commands import NavigationCommand, RouteNote
from schemas.followup import FollowupDue, FollowupOverdue
from streams import expiry, metrics
from streams.codec import encode
from streams.deadletter import decoded, guarded, source_ref
from streams.stage import Stage
from streams.topics import (
    CAD_CALLS,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    NAVIGATION_CASES,
    NAVIGATION_COMMANDS,
    TRIAGE_DECISIONS,
)

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 1.0
#: Closed cases, and routes whose call never closed, are forgotten after this.
RETENTION = timedelta(days=7)


def _iso(moment: datetime | None) -> str | None:
    return expiry.iso(moment) if moment is not None else None


def _record(
    partition: int,
    *,
    route: str | None,
    revision: int,
    pending_close: Contact | None,
    case: Case | None,
    touched: datetime,
) -> dict[str, Any]:
    """A case's table value. ``partition`` and ``pending_at`` let a tick filter cheaply;
    ``partition`` and ``touched`` are the stamp every expiring table value carries."""
    value = {
        "route": route,
        "revision": revision,
        "pending_close": pending_close.model_dump(mode="json") if pending_close else None,
        "case": case.model_dump(mode="json") if case else None,
        "pending_at": _iso(case.pending_at()) if case else None,
    }
    return expiry.stamped(value, partition=partition, touched=touched)


# Navigation reads three other stages' topics for a few of their events; the rest are
# skipped unvalidated (their owners dead-letter what is bad).
def _route_matters(data: dict[str, Any]) -> bool:
    return data.get("route") == "ccd" or data.get("supersedes") is not None


def _closing(data: dict[str, Any]) -> bool:
    return data.get("event_type") == "call.closed"


def _clearing(data: dict[str, Any]) -> bool:
    return data.get("event_type") == "dispatch.cleared"


def register(stage: Stage) -> None:
    policy = load_policy(stage.settings.policy)
    cases = stage.table(NAVIGATION_CASES)
    commands = stage.topic(NAVIGATION_COMMANDS)
    latency = metrics.PROCESSING_SECONDS.labels(stage.name)

    async def forward(key: str, command: NavigationCommand) -> None:
        await stage.send(NAVIGATION_COMMANDS, key, command)

    @stage.app.agent(stage.topic(TRIAGE_DECISIONS), name="navigation-routes")
    async def take_routes(stream: StreamT) -> None:
        async for decision, _event in decoded(
            stream, TRIAGE_DECISIONS, stage.deadletters, wanted=_route_matters
        ):
            # Only a phone-resolved call ends in call.closed; a later decision away from
            # ccd must reach the case too.
            if decision.route != "ccd" and decision.supersedes is None:
                continue
            note = RouteNote(
                call_id=decision.call_id,
                route=decision.route,
                revision=decision.revision,
                decided_at=decision.occurred_at,
            )
            await forward(decision.call_id, NavigationCommand(kind="route", route=note))

    @stage.app.agent(stage.topic(CAD_CALLS), name="navigation-closed")
    async def take_closed(stream: StreamT) -> None:
        async for call, event in decoded(stream, CAD_CALLS, stage.deadletters, wanted=_closing):
            if call.event_type == "call.closed":
                command = NavigationCommand(kind="closed", closed=call, source=source_ref(event))
                await forward(call.call_id, command)

    @stage.app.agent(stage.topic(DISPATCH_EVENTS), name="navigation-cleared")
    async def take_cleared(stream: StreamT) -> None:
        async for dispatched, event in decoded(
            stream, DISPATCH_EVENTS, stage.deadletters, wanted=_clearing
        ):
            if dispatched.event_type == "dispatch.cleared":
                command = NavigationCommand(
                    kind="cleared", cleared=dispatched, source=source_ref(event)
                )
                await forward(dispatched.call_id, command)

    @stage.app.agent(stage.topic(FOLLOWUP_OUTCOMES), name="navigation-outcomes")
    async def take_outcomes(stream: StreamT) -> None:
        async for outcome, event in decoded(stream, FOLLOWUP_OUTCOMES, stage.deadletters):
            command = NavigationCommand(kind="outcome", outcome=outcome, source=source_ref(event))
            await forward(outcome.case_id, command)

    @stage.app.timer(TICK_INTERVAL_S, name="navigation-tick")
    async def tick() -> None:
        # One tick per partition, sent to that partition: whichever worker owns it
        # sweeps it, so timers follow their partitions on rebalance.
        raw = encode(NavigationCommand(kind="tick", tick_at=stage.clock.now()))
        for partition in range(NAVIGATION_COMMANDS.partitions):
            await commands.send(value=raw, partition=partition)

    @stage.app.agent(commands, name="navigation")
    async def navigate(stream: StreamT) -> None:
        async for command, event in decoded(stream, NAVIGATION_COMMANDS, stage.deadletters):
            started = time.perf_counter()
            partition = event.message.partition
            async with guarded(stage.deadletters, event):
                if command.kind == "tick":
                    await _sweep(stage, cases, policy, partition)
                else:
                    await _handle(stage, cases, policy, command, partition)
            latency.observe(time.perf_counter() - started)


async def _handle(
    stage: Stage, cases: Any, policy: Policy, command: NavigationCommand, partition: int
) -> None:
    payload = command.route or command.closed or command.cleared or command.outcome
    assert payload is not None
    moment = payload.decided_at if isinstance(payload, RouteNote) else payload.occurred_at
    stage.clock.observe(moment)
    now = stage.clock.now()
    key = payload.call_id if not command.outcome else command.outcome.case_id
    stored = cases.get(key)
    route = stored["route"] if stored else None
    revision = stored["revision"] if stored else 0
    pending = (
        Contact.model_validate(stored["pending_close"])
        if stored and stored["pending_close"]
        else None
    )
    case = Case.model_validate(stored["case"]) if stored and stored["case"] else None
    contact: Contact | None = None

    if command.route is not None:
        if command.route.revision <= revision:
            return
        route, revision = command.route.route, command.route.revision
        if pending is not None and route == "ccd":
            contact, pending = pending, None
    elif command.closed is not None:
        if route == "ccd":
            contact = contact_from_call_closed(command.closed, "ccd")
        elif route is None:
            # The decision may still be on its way; keep the close until it arrives.
            pending = contact_from_call_closed(command.closed, "ccd")
        else:
            return
    elif command.cleared is not None:
        contact = contact_from_dispatch(command.cleared)
        if contact is None:
            return
    elif command.outcome is not None:
        reason = outcome_rejection(case, command.outcome)
        if reason in ("unknown_case", "case_closed"):
            await _refuse(stage, command, reason)
            return
        if reason == "duplicate":
            metrics.DUPLICATES.labels(stage.name, FOLLOWUP_OUTCOMES.name).inc()
            return
        updated, events = on_outcome(case, command.outcome, policy, now)
        if updated is not None:
            await _emit(stage, updated.pilot, events)
        if updated is not None and not updated.is_open and case is not None and case.is_open:
            metrics.FOLLOWUPS_COMPLETED.labels(
                updated.pilot,
                command.outcome.outcome,
                str(bool(updated.completed_within_deadline)).lower(),
            ).inc()
        case = updated

    if contact is not None:
        skipped = skip_reason(contact, policy, case)
        if skipped is not None:
            if skipped == "duplicate":
                metrics.DUPLICATES.labels(stage.name, NAVIGATION_COMMANDS.name).inc()
            else:
                metrics.FOLLOWUPS_SKIPPED.labels(skipped).inc()
        else:
            case, scheduled = schedule(contact, policy, now, case)
            if scheduled is not None and case is not None:
                await stage.send(FOLLOWUP_TIMERS, case.case_id, scheduled)
                metrics.FOLLOWUPS_SCHEDULED.labels(case.pilot).inc()
                if case.at_risk:
                    metrics.FOLLOWUPS_AT_RISK.labels(case.pilot).inc()

    cases[key] = _record(
        partition, route=route, revision=revision, pending_close=pending, case=case, touched=now
    )


async def _sweep(stage: Stage, cases: Any, policy: Policy, partition: int) -> None:
    if not stage.clock.known:
        # On event time, before this process has seen an event, time stands still: firing
        # by the wall clock would release every open follow-up as due and overdue.
        return
    now = stage.clock.now()
    horizon = _iso(now - RETENTION)
    now_iso = _iso(now)
    due: list[Case] = []
    forget: list[str] = []
    open_cases = 0
    for key, stored in list(cases.items()):
        if stored is None or stored["partition"] != partition:
            continue
        pending_at = stored["pending_at"]
        if pending_at is not None:
            open_cases += 1
            # ISO-8601 in UTC sorts as time does.
            if pending_at <= now_iso:
                due.append(Case.model_validate(stored["case"]))
        elif stored["touched"] < horizon:
            forget.append(key)
    for key in forget:
        del cases[key]
    limit = policy.pilots.cn.sweep_batch_limit
    for case, events in sweep(due, now, limit):
        await _emit(stage, case.pilot, events)
        stored = cases[case.case_id]
        cases[case.case_id] = {
            **stored,
            "case": case.model_dump(mode="json"),
            "pending_at": _iso(case.pending_at()),
            "touched": _iso(now),
        }
    metrics.FOLLOWUPS_OPEN.set(open_cases)


async def _emit(stage: Stage, pilot: str, events: list[FollowupDue | FollowupOverdue]) -> None:
    for out in events:
        await stage.send(FOLLOWUP_TASKS, out.case_id, out)
        if isinstance(out, FollowupDue):
            metrics.FOLLOWUPS_DUE.labels(pilot).inc()
        else:
            metrics.FOLLOWUPS_OVERDUE.labels(pilot).inc()


async def _refuse(stage: Stage, command: NavigationCommand, reason: str) -> None:
    source = command.source
    if source is None:
        return
    await stage.deadletters.send_source(source, LookupError(f"outcome refused: {reason}"), reason)
