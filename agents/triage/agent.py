"""The triage stage: one decision per call on ``triage.decisions``, superseded on updates
and on a clinician's disposition (``ccd.disposition`` on ``ccd.assessments``); a closure
on ``triage.closures`` when a CCD contact ends (the CAD closes a call on ``ccd``, or a
clinician resolves it by phone), once per call."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from faust.types import EventT, StreamT
from pydantic import ValidationError

from heart.agents.triage import dispositions
from heart.agents.triage.decide import missed
from heart.agents.triage.state import CallState, ClosedCall, Held, HeldDisposition, Lateness, step
from heart.policy import load_policy
from heart.schemas.ccd import CcdDisposition
from heart.schemas.registry import CadEvent
from heart.schemas.triage import TriageDecision
from heart.streams import expiry, metrics
from heart.streams.clock import EventClock
from heart.streams.deadletter import guarded, source_ref
from heart.streams.stage import Stage
from heart.streams.topics import (
    CAD_CALLS,
    CCD_ASSESSMENTS,
    TRIAGE_CALLS,
    TRIAGE_CLOSURES,
    TRIAGE_DECISIONS,
)

log = logging.getLogger(__name__)

#: How often each worker forgets the idle calls of the partitions it owns.
EXPIRY_INTERVAL_S = 5.0
#: Most calls one sweep forgets: a backlog (a restart, a jump in event time) drains in
#: batches of tombstones rather than one burst on the changelog.
EXPIRY_BATCH = 2_000


def register(stage: Stage) -> None:
    policy = load_policy(stage.settings.policy)
    log.info("triage policy %s", policy.version_id)
    calls = stage.table(TRIAGE_CALLS)
    retention = timedelta(hours=stage.settings.triage_call_retention_h)
    closed_retention = timedelta(hours=stage.settings.triage_closed_retention_h)
    hold = timedelta(seconds=stage.settings.ccd_disposition_hold_s)
    latency = metrics.PROCESSING_SECONDS.labels(stage.name)
    duplicates = metrics.DUPLICATES.labels(stage.name, CAD_CALLS.name)
    disposition_duplicates = metrics.DUPLICATES.labels(stage.name, CCD_ASSESSMENTS.name)
    stale_calls = metrics.STALE_CALLS.labels(stage.name)
    on_event_time = isinstance(stage.clock, EventClock)
    lateness = Lateness(on_event_time=on_event_time)
    disposition_lateness = Lateness(on_event_time=on_event_time)

    def remember(key: str, value: dict[str, Any], partition: int, touched: datetime) -> None:
        stage.put(calls, key, expiry.stamped(value, partition=partition, touched=touched))

    def remember_state(state: CallState, partition: int) -> None:
        # Stamped for the expiry sweep: a new event (not a redelivered one) is the
        # call's latest sign of life, on the stage's clock.
        remember(state.call.call_id, state.model_dump(mode="json"), partition, stage.clock.now())

    async def send_decision(decision: TriageDecision, superseded_route: str | None) -> None:
        await stage.send(TRIAGE_DECISIONS, decision.call_id, decision)
        _count(decision, superseded_route)

    async def handle(event: CadEvent, raw: EventT) -> None:
        stage.clock.observe(event.occurred_at)
        now = stage.clock.now()
        partition = raw.message.partition
        stored = _stored(stage.get(calls, event.call_id))
        if isinstance(stored, ClosedCall) and event.event_id in stored.seen:
            duplicates.inc()  # a redelivery after the close
            return
        state = stored if isinstance(stored, CallState) else None
        reference = lateness.reference(partition, event.occurred_at, now)
        result = step(state, event, policy, now, reference)

        if result.outcome == "unknown_call":
            if event.event_type == "call.updated":
                await stage.deadletters.send(
                    raw, LookupError("call.updated for a call never received"), "unknown_call"
                )
            return
        if result.outcome == "duplicate":
            duplicates.inc()
        # Send before remembering: a crash in between re-decides the call on redelivery
        # (same deterministic event_id, recognisable downstream) instead of losing it.
        # A duplicate of the event behind the current decision sends it again, in case
        # the state was written and the decision lost (agents.triage.state.resent).
        if result.decision is not None:
            decision = result.decision
            if result.outcome == "duplicate":
                await stage.send(TRIAGE_DECISIONS, decision.call_id, decision)
            else:
                await send_decision(decision, result.superseded_route)
                # Once per call: a stale call's re-decisions are stale too.
                stale = result.state is not None and result.state.stale
                if stale and (state is None or not state.stale):
                    stale_calls.inc()
        if result.closure is not None:
            await stage.send(TRIAGE_CLOSURES, result.closure.call_id, result.closure)
        after = result.state
        if isinstance(stored, Held) and after is not None:
            # Dispositions that overtook their call apply now, in the order they came.
            for item in stored.items:
                applied = dispositions.apply(after, item.disposition, policy, now)
                after = await settle(applied, after)
        if result.closed is not None:
            remember(
                event.call_id, {"closed": result.closed.model_dump(mode="json")}, partition, now
            )
        elif after is None:
            stage.delete(calls, event.call_id)
        elif after is not state:
            remember_state(after, partition)

    async def settle(applied: dispositions.DispositionStep, state: CallState) -> CallState:
        """Send what a disposition made; the call's state after it."""
        if applied.decision is not None:
            if applied.outcome == "duplicate":
                await stage.send(TRIAGE_DECISIONS, applied.decision.call_id, applied.decision)
            else:
                await send_decision(applied.decision, applied.superseded_route)
                _count_disposition(applied)
        if applied.closure is not None:
            await stage.send(TRIAGE_CLOSURES, applied.closure.call_id, applied.closure)
        return applied.state if applied.state is not None else state

    async def handle_disposition(disposition: CcdDisposition, raw: EventT) -> None:
        stage.clock.observe(disposition.occurred_at)
        now = stage.clock.now()
        partition = raw.message.partition
        key = disposition.call_id
        stored = _stored(stage.get(calls, key))
        if isinstance(stored, CallState):
            reference = disposition_lateness.reference(partition, disposition.occurred_at, now)
            applied = dispositions.apply(stored, disposition, policy, now, reference)
            if applied.outcome == "duplicate":
                disposition_duplicates.inc()
            after = await settle(applied, stored)
            if after is not stored:
                remember_state(after, partition)
        elif isinstance(stored, ClosedCall):
            late = dispositions.after_close(stored, disposition)
            if late.outcome == "duplicate":
                disposition_duplicates.inc()
                return
            if late.closure is not None:
                await stage.send(TRIAGE_CLOSURES, late.closure.call_id, late.closure)
            assert late.closed is not None
            remember(key, {"closed": late.closed.model_dump(mode="json")}, partition, now)
        else:
            held = stored if isinstance(stored, Held) else Held(items=[], since=now)
            if any(i.disposition.event_id == disposition.event_id for i in held.items):
                disposition_duplicates.inc()
                return
            item = HeldDisposition(disposition=disposition, source=source_ref(raw))
            held = held.model_copy(update={"items": [*held.items, item]})
            # Stamped with the first one's arrival: the wait is bounded from it.
            remember(key, {"held": held.model_dump(mode="json")}, partition, held.since)

    @stage.app.agent(stage.topic(CAD_CALLS), name="triage")
    async def triage(stream: StreamT) -> None:
        async for event, raw in stage.read(stream, CAD_CALLS):
            started = time.perf_counter()
            async with guarded(stage.deadletters, raw):
                await handle(event, raw)
            latency.observe(time.perf_counter() - started)

    @stage.app.agent(stage.topic(CCD_ASSESSMENTS), name="triage-dispositions")
    async def take_dispositions(stream: StreamT) -> None:
        # Only valid dispositions: the ccd stage dead-letters what is wrong on this topic,
        # so that each bad message is reported once.
        async for disposition, raw in stage.read(stream, CCD_ASSESSMENTS, _valid_disposition):
            started = time.perf_counter()
            async with guarded(stage.deadletters, raw):
                await handle_disposition(disposition, raw)
            latency.observe(time.perf_counter() - started)

    @stage.app.timer(EXPIRY_INTERVAL_S, name="triage-expiry")
    async def expire() -> None:
        # A CAD that never sends call.closed must not grow the stage without bound.
        expiry.sweep(stage.app, calls, stage.clock, retention, EXPIRY_BATCH, keep=_closed_or_held)
        expiry.sweep(
            stage.app, calls, stage.clock, closed_retention, EXPIRY_BATCH, keep=_not_closed
        )
        await _release_held(stage, calls, hold)


async def _release_held(stage: Stage, calls: Any, hold: timedelta) -> None:
    """Dead-letter, as ``unknown_call``, the dispositions held longer than ``hold`` for a
    call that never came; then forget them."""
    if not stage.clock.known:
        return
    partitions = expiry.owned_partitions(stage.app, calls)
    if not partitions:
        return
    gone = expiry.expired(
        calls.data.items(),
        partitions=partitions,
        before=stage.clock.now() - hold,
        limit=EXPIRY_BATCH,
        keep=_not_held,
    )
    for key, partition in gone:
        value = calls.data.get(key)
        held = Held.model_validate(value["held"])
        for item in held.items:
            error = LookupError(
                f"ccd.disposition for call {key!r}: no call.received within "
                f"{hold.total_seconds():.0f} s (ccd_disposition_hold_s)"
            )
            await stage.deadletters.send_source(item.source, error, "unknown_call")
        # The call may have come while the dead letters went out: then it took them.
        if calls.data.get(key) is value:
            expiry.forget(calls, key, partition)


def _stored(value: Any) -> CallState | ClosedCall | Held | None:
    """A triage table value: an open call, a closed one, or dispositions held for a call."""
    if value is None:
        return None
    if "closed" in value:
        return ClosedCall.model_validate(value["closed"])
    if "held" in value:
        return Held.model_validate(value["held"])
    return CallState.model_validate(value)


def _closed_or_held(stored: Mapping[str, Any]) -> bool:
    return "closed" in stored or "held" in stored


def _not_closed(stored: Mapping[str, Any]) -> bool:
    return "closed" not in stored


def _not_held(stored: Mapping[str, Any]) -> bool:
    return "held" not in stored


def _valid_disposition(data: dict[str, Any]) -> bool:
    if data.get("event_type") != "ccd.disposition":
        return False
    try:
        CcdDisposition.model_validate(data)
    except ValidationError:
        return False
    return True


def _count_disposition(applied: dispositions.DispositionStep) -> None:
    decision = applied.decision
    assert decision is not None
    if decision.rules_route is not None and decision.route != decision.rules_route:
        _child(metrics.CCD_OVERRIDES, decision.rules_route, decision.route).inc()
    for pilot, reason in applied.newly_missed:
        _child(metrics.ELIGIBLE_MISSED, pilot, reason).inc()


def _count(decision: TriageDecision, superseded_route: str | None) -> None:
    if superseded_route is not None:
        _child(metrics.DECISIONS_SUPERSEDED, superseded_route, decision.route).inc()
        return
    _child(metrics.CALLS, decision.route).inc()
    for pilot in decision.pilots:
        _child(metrics.PILOT_CALLS, pilot).inc()
    for pilot, reason in missed(decision):
        _child(metrics.ELIGIBLE_MISSED, pilot, reason).inc()


@functools.cache
def _child(metric: Any, *labels: str) -> Any:
    """A metric's labelled child, looked up once: ``labels()`` validates and locks on
    every call. The label values are a small closed set (routes, pilots, reasons)."""
    return metric.labels(*labels)
