"""The triage stage: one decision per call on ``triage.decisions``, superseded on updates;
a closure on ``triage.closures`` when the CAD closes a call resolved by phone."""

from __future__ import annotations

import functools
import logging
import time
from datetime import timedelta
from typing import Any

from faust.types import EventT, StreamT

from heart.agents.triage.decide import missed
from heart.agents.triage.state import CallState, Lateness, step
from heart.policy import load_policy
from heart.schemas.registry import CadEvent
from heart.schemas.triage import TriageDecision
from heart.streams import expiry, metrics
from heart.streams.clock import EventClock
from heart.streams.deadletter import guarded
from heart.streams.stage import Stage
from heart.streams.topics import CAD_CALLS, TRIAGE_CALLS, TRIAGE_CLOSURES, TRIAGE_DECISIONS

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
    latency = metrics.PROCESSING_SECONDS.labels(stage.name)
    duplicates = metrics.DUPLICATES.labels(stage.name, CAD_CALLS.name)
    stale_calls = metrics.STALE_CALLS.labels(stage.name)
    lateness = Lateness(on_event_time=isinstance(stage.clock, EventClock))

    async def handle(event: CadEvent, raw: EventT) -> None:
        stage.clock.observe(event.occurred_at)
        now = stage.clock.now()
        stored = stage.get(calls, event.call_id)
        state = CallState.model_validate(stored) if stored is not None else None
        reference = lateness.reference(raw.message.partition, event.occurred_at, now)
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
            await stage.send(TRIAGE_DECISIONS, decision.call_id, decision)
            if result.outcome != "duplicate":
                _count(decision, result.superseded_route)
                # Once per call: a stale call's re-decisions are stale too.
                stale = result.state is not None and result.state.stale
                if stale and (state is None or not state.stale):
                    stale_calls.inc()
        if result.closure is not None:
            await stage.send(TRIAGE_CLOSURES, result.closure.call_id, result.closure)
        if result.state is None:
            stage.delete(calls, event.call_id)
        elif result.state is not state:
            # Stamped for the expiry sweep: a new event (not a redelivered one) is the
            # call's latest sign of life, on the stage's clock.
            stage.put(
                calls,
                event.call_id,
                expiry.stamped(
                    result.state.model_dump(mode="json"),
                    partition=raw.message.partition,
                    touched=stage.clock.now(),
                ),
            )

    @stage.app.agent(stage.topic(CAD_CALLS), name="triage")
    async def triage(stream: StreamT) -> None:
        async for event, raw in stage.read(stream, CAD_CALLS):
            started = time.perf_counter()
            async with guarded(stage.deadletters, raw):
                await handle(event, raw)
            latency.observe(time.perf_counter() - started)

    @stage.app.timer(EXPIRY_INTERVAL_S, name="triage-expiry")
    async def expire() -> None:
        # A CAD that never sends call.closed must not grow the stage without bound.
        expiry.sweep(stage.app, calls, stage.clock, retention, EXPIRY_BATCH)


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
