"""The ccd stage: Crisis Call Diversion clinicians' work on the stream.

It owns ``ccd.assessments`` and ``ccd.consults``: it reads every message of both and
dead-letters what is unreadable or refused (an incomplete or inconsistent screening, a
referral to a resource the policy does not list, a consult answered twice...), changing no
state for it. Valid events are counted (``heart_ccd_*``); dispositions are applied by the
triage stage, which reads the same topic.

State lives in two changelogged tables, both co-partitioned with ``heart.ccd.commands``:
per call (``ccd.engaged`` time, the responders' first ``dispatch.on_scene``, recent event
ids), for the time a clinician stays on the line; per consult (:mod:`heart.agents.ccd.consults`),
for the queue and its overdue notices. An input is handled on the partition it arrives on
when that partition owns its key; otherwise (``dispatch.events`` is keyed by team, or an
outside producer partitioned its own way) it is sent on through the commands topic.

Per-partition ticks on the commands topic fire overdue consults from the table, on the
stage's clock (event or wall): timers follow their partitions on rebalance, and after a
crash the worker that takes a partition over sends what came due, once (the notice's id is
derived from the consult's, so one re-sent after a crash is recognisably the same).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from faust.types import EventT, StreamT

from heart.agents.ccd.calls import Assessed, AssessmentEvent, CallRecord, arrived, assess
from heart.agents.ccd.consults import DETAILS, Consult, overdue, step
from heart.agents.navigation.due_index import DueIndex
from heart.policy import load_policy
from heart.policy.model import ConsultTargets
from heart.schemas.ccd import (
    URGENCIES,
    CcdDisposition,
    CcdReferral,
    CcdSafetyPlan,
    ConsultOverdue,
)
from heart.schemas.commands import CcdCommand
from heart.schemas.dispatch import DispatchEvent
from heart.streams import expiry, metrics
from heart.streams.codec import encode
from heart.streams.deadletter import guarded, source_ref
from heart.streams.stage import Stage
from heart.streams.topics import (
    CCD_ASSESSMENTS,
    CCD_CALLS,
    CCD_COMMANDS,
    CCD_CONSULT_STATES,
    CCD_CONSULTS,
    DISPATCH_EVENTS,
)

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 1.0
#: Ticks of a partition between two full reads of its consults (answered and closed ones
#: forgotten, waiting ones counted, the due index rebuilt).
FULL_SCAN_EVERY = 10
#: Most overdue notices one tick of a partition sends: a backlog drains in batches.
OVERDUE_BATCH = 100
EXPIRY_INTERVAL_S = 5.0
EXPIRY_BATCH = 2_000

#: Keyed by call or consult, each with the commands topic's partitions.
INPUTS = (CCD_ASSESSMENTS, CCD_CONSULTS, DISPATCH_EVENTS)


def _on_scene(data: dict[str, Any]) -> bool:
    # dispatch.events belongs to the dispatch stage: only its on-scene reports are ours.
    return data.get("event_type") == "dispatch.on_scene"


def register(stage: Stage) -> None:
    policy = load_policy(stage.settings.policy)
    work = policy.ccd_work
    resources = frozenset(work.referral_resources)
    targets = work.consult_targets
    calls = stage.table(CCD_CALLS)
    consults = stage.table(CCD_CONSULT_STATES)
    commands = stage.topic(CCD_COMMANDS)
    latency = metrics.PROCESSING_SECONDS.labels(stage.name)
    assessment_duplicates = metrics.DUPLICATES.labels(stage.name, CCD_ASSESSMENTS.name)
    consult_duplicates = metrics.DUPLICATES.labels(stage.name, CCD_CONSULTS.name)
    call_retention = timedelta(hours=stage.settings.ccd_call_retention_h)
    consult_retention = timedelta(hours=stage.settings.ccd_consult_retention_h)
    sweeper = _ConsultSweeper(stage, consults, targets, consult_retention)
    stage.require_copartitioned(INPUTS, CCD_COMMANDS)

    async def route(key: str, command: CcdCommand, event: EventT) -> None:
        """Handle ``command`` where it arrived if that partition owns ``key``, else send it,
        with its original record, to the partition that does."""
        if stage.partition_of(CCD_COMMANDS, key) != event.message.partition:
            forwarded = command.model_copy(update={"source": source_ref(event)})
            await stage.send(CCD_COMMANDS, key, forwarded)
            return
        await handle(command, event)

    async def handle(command: CcdCommand, event: EventT) -> None:
        started = time.perf_counter()
        partition = event.message.partition
        async with guarded(stage.deadletters, event):
            if command.kind == "tick":
                await sweeper.tick(partition)
            elif command.assessment is not None:
                await on_assessment(command.assessment, command, event)
            elif command.consult is not None:
                await on_consult(command.consult, command, event)
            elif command.on_scene is not None:
                on_arrival(command.on_scene, partition)
        latency.observe(time.perf_counter() - started)

    async def refuse(command: CcdCommand, event: EventT, reason: str, detail: str) -> None:
        error = ValueError(detail)
        if command.source is not None:
            await stage.deadletters.send_source(command.source, error, reason)
        else:
            await stage.deadletters.send(event, error, reason)

    def write_call(record: CallRecord, partition: int) -> None:
        # Stamped for the expiry sweep: the call's latest sign of life, on the stage's clock.
        stored = expiry.stamped(
            record.model_dump(mode="json"), partition=partition, touched=stage.clock.now()
        )
        stage.put(calls, record.call_id, stored)

    def read_call(call_id: str) -> CallRecord | None:
        stored = stage.get(calls, call_id)
        return CallRecord.model_validate(stored) if stored is not None else None

    async def on_assessment(payload: Any, command: CcdCommand, event: EventT) -> None:
        stage.clock.observe(payload.occurred_at)
        state = read_call(payload.call_id)
        result = assess(state, payload, resources)
        if result.outcome == "refused":
            assert result.reason is not None and result.detail is not None
            await refuse(command, event, result.reason, f"{payload.event_type}: {result.detail}")
            return
        if result.outcome == "duplicate":
            assessment_duplicates.inc()
            return
        _count_assessment(payload, result)
        assert result.state is not None
        write_call(result.state, event.message.partition)

    def on_arrival(report: DispatchEvent, partition: int) -> None:
        stage.clock.observe(report.occurred_at)
        state = read_call(report.call_id)
        record, seconds = arrived(state, report)
        if record is state:
            return  # a later team's report, or a redelivery
        if seconds is not None:
            metrics.CCD_ON_LINE_SECONDS.observe(seconds)
        write_call(record, partition)

    async def on_consult(payload: Any, command: CcdCommand, event: EventT) -> None:
        stage.clock.observe(payload.occurred_at)
        stored = stage.get(consults, payload.consult_id)
        state = Consult.model_validate(stored["consult"]) if stored is not None else None
        result = step(state, payload)
        if result.outcome == "refused":
            assert result.reason is not None
            detail = f"{payload.event_type}: {DETAILS[result.reason]}"
            await refuse(command, event, result.reason, detail)
            return
        if result.outcome == "duplicate":
            consult_duplicates.inc()
            return
        assert result.state is not None
        _count_consult(result.state, result.outcome, targets)
        sweeper.write(result.state, event.message.partition, stage.clock.now())

    @stage.app.agent(stage.topic(CCD_ASSESSMENTS), name="ccd-assessments")
    async def take_assessments(stream: StreamT) -> None:
        # Every message, no filter: this stage dead-letters what is wrong on the topic.
        async for assessment, event in stage.read(stream, CCD_ASSESSMENTS):
            command = CcdCommand(kind="assessment", assessment=assessment)
            await route(assessment.call_id, command, event)

    @stage.app.agent(stage.topic(CCD_CONSULTS), name="ccd-consults")
    async def take_consults(stream: StreamT) -> None:
        async for consult, event in stage.read(stream, CCD_CONSULTS):
            if isinstance(consult, ConsultOverdue):
                continue  # this stage's own notices, on the same topic
            command = CcdCommand(kind="consult", consult=consult)
            await route(consult.consult_id, command, event)

    @stage.app.agent(stage.topic(DISPATCH_EVENTS), name="ccd-on-scene")
    async def take_on_scene(stream: StreamT) -> None:
        async for report, event in stage.read(stream, DISPATCH_EVENTS, _on_scene):
            await route(report.call_id, CcdCommand(kind="on_scene", on_scene=report), event)

    @stage.app.timer(TICK_INTERVAL_S, name="ccd-tick")
    async def tick() -> None:
        # One tick per partition, sent to that partition: whichever worker owns it fires
        # its overdue consults, so timers follow their partitions on rebalance.
        raw = encode(CcdCommand(kind="tick", tick_at=stage.clock.now()))
        for partition in range(CCD_COMMANDS.partitions):
            await commands.send(value=raw, partition=partition)

    @stage.app.agent(commands, name="ccd")
    async def take_commands(stream: StreamT) -> None:
        async for command, event in stage.read(stream, CCD_COMMANDS):
            await handle(command, event)

    @stage.app.timer(EXPIRY_INTERVAL_S, name="ccd-expiry")
    async def expire() -> None:
        # Calls never attended (resolved by phone) are measured never: forgotten in time.
        expiry.sweep(stage.app, calls, stage.clock, call_retention, EXPIRY_BATCH)


def _count_assessment(event: AssessmentEvent, result: Assessed) -> None:
    if result.first_engagement:
        metrics.CCD_CALLS_ENGAGED.inc()
    if result.on_line_s is not None:
        metrics.CCD_ON_LINE_SECONDS.observe(result.on_line_s)
    if result.risk_level is not None:
        _child(metrics.CCD_SCREENINGS, result.risk_level).inc()
    elif isinstance(event, CcdSafetyPlan):
        _child(metrics.CCD_SAFETY_PLANS, str(event.steps.completed)).inc()
    elif isinstance(event, CcdReferral):
        _child(metrics.CCD_REFERRALS, event.resource, _bool(event.warm_handoff)).inc()
    elif isinstance(event, CcdDisposition):
        _child(metrics.CCD_DISPOSITIONS, event.disposition).inc()


def _count_consult(consult: Consult, outcome: str, targets: ConsultTargets) -> None:
    if outcome == "requested":
        _child(metrics.CCD_CONSULTS_REQUESTED, consult.requested_by, consult.urgency).inc()
        return
    wait = consult.wait(targets) if outcome == "answered" else None
    if wait is not None:
        seconds, within = wait
        _child(metrics.CCD_CONSULT_WAIT_SECONDS, consult.urgency).observe(seconds)
        labels = (consult.requested_by, consult.urgency, _bool(within))
        _child(metrics.CCD_CONSULTS_ANSWERED, *labels).inc()


def _bool(value: bool) -> str:
    return "true" if value else "false"


@functools.cache
def _child(metric: Any, *labels: str) -> Any:
    """A metric's labelled child, looked up once. The label values are small closed sets
    (risk levels, steps, the policy's resources, dispositions, requesters, urgencies)."""
    return metric.labels(*labels)


def _consult_record(
    consult: Consult, targets: ConsultTargets, partition: int, touched: datetime
) -> dict[str, Any]:
    """A consult's table value: ``pending_at`` (its overdue notice's due time, while one is
    pending) lets a tick find what is due without reading every consult."""
    pending = consult.pending_at(targets)
    value = {
        "consult": consult.model_dump(mode="json"),
        "pending_at": expiry.iso(pending) if pending is not None else None,
    }
    return expiry.stamped(value, partition=partition, touched=touched)


@dataclass
class _ConsultSweeper:
    """Sends the overdue notices of a partition's consults from the due index; every
    :data:`FULL_SCAN_EVERY` ticks of a partition (and first after the worker's partitions
    change) it reads the whole partition instead, to forget settled consults, count the
    waiting ones and rebuild the index. In between, the stage's own writes keep the count."""

    stage: Stage
    consults: Any
    targets: ConsultTargets
    retention: timedelta
    index: DueIndex = field(default_factory=DueIndex)
    ticks: Counter[int] = field(default_factory=Counter)
    #: Per partition read in full since the worker's partitions last changed: its waiting
    #: consults' ids and urgencies, for the gauge.
    waiting: dict[int, dict[str, str]] = field(default_factory=dict)
    assignment: frozenset[int] | None = None

    def write(self, consult: Consult, partition: int, now: datetime) -> None:
        record = _consult_record(consult, self.targets, partition, now)
        self.stage.put(self.consults, consult.consult_id, record)
        self.index.note(partition, consult.consult_id, record["pending_at"])
        ids = self.waiting.get(partition)
        if ids is not None:  # else its first full scan counts it
            if consult.waiting:
                ids[consult.consult_id] = consult.urgency
            else:
                ids.pop(consult.consult_id, None)
            self._publish()

    async def tick(self, partition: int) -> None:
        if not self.stage.clock.known:
            # On event time, before this process has seen an event, time stands still:
            # judging by the wall clock would report every waiting consult overdue.
            return
        owned = expiry.owned_partitions(self.stage.app, self.consults)
        if partition not in owned:
            # A rebalance or a recovery is under way: the next settled tick rebuilds.
            self.index.invalidate(None)
            self.assignment = None
            return
        assignment = frozenset(owned)
        self.index.invalidate(assignment)
        if assignment != self.assignment:
            # Partitions came or went: each is read in full at its next tick.
            self.assignment = assignment
            self.ticks.clear()
            self.waiting = {p: ids for p, ids in self.waiting.items() if p in assignment}
            self._publish()
        now = self.stage.clock.now()
        if self.ticks[partition] % FULL_SCAN_EVERY == 0:
            self._full_scan(partition, now)
        self.ticks[partition] += 1
        keys = self.index.due(
            partition,
            expiry.iso(now),
            OVERDUE_BATCH,
            functools.partial(Stage.get, self.consults),
            lambda: list(self.consults.items()),
        )
        due = [Consult.model_validate(self.consults[key]["consult"]) for key in keys]
        for marked, notice in overdue(due, now, self.targets):
            # Sent, then marked: a crash in between sends it again with the same event id.
            await self.stage.send(CCD_CONSULTS, notice.consult_id, notice)
            _child(metrics.CCD_CONSULTS_OVERDUE, notice.requested_by, notice.urgency).inc()
            self.write(marked, partition, now)

    def _full_scan(self, partition: int, now: datetime) -> None:
        horizon = expiry.iso(now - self.retention)
        forget: list[str] = []
        waiting: dict[str, str] = {}
        for key, stored in list(self.consults.items()):
            if stored is None or stored.get("partition") != partition:
                continue
            if stored["pending_at"] is None and stored["touched"] < horizon:
                # Nothing left to send; one never answered was reported overdue long ago.
                forget.append(key)
                continue
            consult = stored["consult"]
            if consult["answered_at"] is None and consult["closed_at"] is None:
                waiting[key] = consult["urgency"]
        for key in forget:
            self.stage.delete(self.consults, key)
        self.waiting[partition] = waiting
        self._publish()
        # Rebuilt on the next lookup: compacts entries of consults that have moved on.
        self.index.drop(partition)

    def _publish(self) -> None:
        counts = Counter(u for ids in self.waiting.values() for u in ids.values())
        for urgency in URGENCIES:
            metrics.CCD_CONSULTS_WAITING.labels(urgency).set(counts[urgency])
