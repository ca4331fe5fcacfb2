"""The Care Navigation stage: durable 48-hour follow-up timers.

It also reads the clinicians' ``ccd.screened`` events on ``ccd.assessments`` (keyed by
call, co-partitioned too): a ``high`` screening may shorten the call's deadline
(:func:`heart.agents.navigation.cases.on_screening`). Before the contact, the screening's
risk level waits in the call's table record, stamped to expire like the others.

Contacts (triage's closure of a phone-resolved call on ``triage.closures``, a team
clearing its call on ``dispatch.cleared``) and outcomes arrive keyed by call (= case) on
topics co-partitioned with ``heart.navigation.commands``, and are handled on the partition
they arrive on, which owns the case's record in a changelogged table; only an event some
producer put on another partition is re-keyed onto the commands topic first. Per-partition
ticks arrive on the commands topic. A tick sweeps the cases of its own
partition, so timers follow their partitions on rebalance, and a worker restarted after a
crash fires every timer missed while it was down, once each, in batches of at most
``sweep_batch_limit``.
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
from pydantic import ValidationError

from heart.agents.ccd.screening import risk_level, screening_problem
from heart.agents.navigation.cases import (
    Case,
    Contact,
    contact_from_closure,
    contact_from_dispatch,
    on_outcome,
    on_screening,
    outcome_rejection,
    schedule,
    skip_reason,
    sweep,
)
from heart.agents.navigation.due_index import DueIndex
from heart.policy import Policy, load_policy
from heart.schemas.ccd import CcdScreened
from heart.schemas.commands import NavigationCommand
from heart.schemas.followup import FollowupDue, FollowupOverdue
from heart.streams import expiry, metrics
from heart.streams.codec import encode
from heart.streams.deadletter import guarded, source_ref
from heart.streams.stage import Stage
from heart.streams.topics import (
    CCD_ASSESSMENTS,
    DISPATCH_CLEARED,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    NAVIGATION_CASES,
    NAVIGATION_COMMANDS,
    TRIAGE_CLOSURES,
)

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 1.0
#: Ticks of a partition between two full reads of it (finished cases forgotten, open ones
#: counted, the due index rebuilt); in between, a tick reads only what is due.
FULL_SCAN_EVERY = 60
#: Ticks finding no settled partitions for this long are logged as a warning: a rebalance
#: with its table recovery takes seconds, and no follow-up fires meanwhile.
SWEEP_PAUSE_WARN_S = 30.0


def _iso(moment: datetime | None) -> str | None:
    return expiry.iso(moment) if moment is not None else None


def _record(
    partition: int, *, case: Case | None, touched: datetime, risk: str | None = None
) -> dict[str, Any]:
    """A case's table value. ``partition`` and ``pending_at`` let a tick filter cheaply;
    ``partition`` and ``touched`` are the stamp every expiring table value carries.
    ``risk`` is the call's screening risk level seen before it had a case."""
    value = {
        "case": case.model_dump(mode="json") if case else None,
        "pending_at": _iso(case.pending_at()) if case else None,
    }
    if risk is not None and case is None:
        value["risk_level"] = risk
    return expiry.stamped(value, partition=partition, touched=touched)


#: Keyed by call (= case), each co-partitioned with the commands topic.
INPUTS = (TRIAGE_CLOSURES, DISPATCH_CLEARED, FOLLOWUP_OUTCOMES, CCD_ASSESSMENTS)


def wanted_screening(data: dict[str, Any]) -> bool:
    """A ``ccd.screened`` event the stage can score; anything else on ``ccd.assessments``
    (other clinician events, and screenings that are invalid or incomplete, which the
    ccd stage dead-letters) is skipped, so each bad message is reported once."""
    if data.get("event_type") != "ccd.screened":
        return False
    try:
        screening = CcdScreened.model_validate(data)
    except ValidationError:
        return False
    return screening_problem(screening.answers) is None


def register(stage: Stage) -> None:
    policy = load_policy(stage.settings.policy)
    cases = stage.table(NAVIGATION_CASES)
    commands = stage.topic(NAVIGATION_COMMANDS)
    latency = metrics.PROCESSING_SECONDS.labels(stage.name)
    retention = timedelta(hours=stage.settings.navigation_closed_retention_h)
    sweeper = _Sweeper(stage, cases, policy, retention)
    stage.require_copartitioned(INPUTS, NAVIGATION_COMMANDS)

    async def route(key: str, command: NavigationCommand, event: EventT) -> None:
        """Handle ``command`` where it arrived if that partition owns ``key``, else send it
        on to the one that does: every input is keyed by call (= case) and has the commands
        topic's partitions, so an event an outside producer partitioned its own way is the
        only one that takes the extra hop."""
        if stage.partition_of(NAVIGATION_COMMANDS, key) != event.message.partition:
            await stage.send(NAVIGATION_COMMANDS, key, command)
            return
        await handle(command, event)

    async def handle(command: NavigationCommand, event: EventT) -> None:
        """Apply ``command`` on the partition ``event`` came from, which owns its case."""
        started = time.perf_counter()
        partition = event.message.partition
        async with guarded(stage.deadletters, event):
            if command.kind == "tick":
                await sweeper.tick(partition)
            elif command.screened is not None:
                await _screened(stage, cases, policy, command.screened, partition, sweeper)
            else:
                await _handle(stage, cases, policy, command, partition, sweeper)
        latency.observe(time.perf_counter() - started)

    @stage.app.agent(stage.topic(TRIAGE_CLOSURES), name="navigation-closures")
    async def take_closures(stream: StreamT) -> None:
        async for closure, event in stage.read(stream, TRIAGE_CLOSURES):
            command = NavigationCommand(kind="closed", closed=closure, source=source_ref(event))
            await route(closure.call_id, command, event)

    @stage.app.agent(stage.topic(DISPATCH_CLEARED), name="navigation-cleared")
    async def take_cleared(stream: StreamT) -> None:
        async for clearing, event in stage.read(stream, DISPATCH_CLEARED):
            command = NavigationCommand(kind="cleared", cleared=clearing, source=source_ref(event))
            await route(clearing.call_id, command, event)

    @stage.app.agent(stage.topic(FOLLOWUP_OUTCOMES), name="navigation-outcomes")
    async def take_outcomes(stream: StreamT) -> None:
        async for outcome, event in stage.read(stream, FOLLOWUP_OUTCOMES):
            command = NavigationCommand(kind="outcome", outcome=outcome, source=source_ref(event))
            await route(outcome.case_id, command, event)

    @stage.app.agent(stage.topic(CCD_ASSESSMENTS), name="navigation-screenings")
    async def take_screenings(stream: StreamT) -> None:
        async for screening, event in stage.read(stream, CCD_ASSESSMENTS, wanted=wanted_screening):
            command = NavigationCommand(
                kind="screened", screened=screening, source=source_ref(event)
            )
            await route(screening.call_id, command, event)

    @stage.app.timer(TICK_INTERVAL_S, name="navigation-tick")
    async def tick() -> None:
        # One tick per partition, sent to that partition: whichever worker owns it
        # sweeps it, so timers follow their partitions on rebalance.
        raw = encode(NavigationCommand(kind="tick", tick_at=stage.clock.now()))
        for partition in range(NAVIGATION_COMMANDS.partitions):
            await commands.send(value=raw, partition=partition)

    @stage.app.agent(commands, name="navigation")
    async def navigate(stream: StreamT) -> None:
        async for command, event in stage.read(stream, NAVIGATION_COMMANDS):
            await handle(command, event)


async def _handle(
    stage: Stage,
    cases: Any,
    policy: Policy,
    command: NavigationCommand,
    partition: int,
    sweeper: _Sweeper,
) -> None:
    payload = command.closed or command.cleared or command.outcome
    assert payload is not None
    stage.clock.observe(payload.occurred_at)
    now = stage.clock.now()
    key = payload.call_id if not command.outcome else command.outcome.case_id
    stored = stage.get(cases, key)
    case = Case.model_validate(stored["case"]) if stored and stored["case"] else None
    contact: Contact | None = None

    if command.closed is not None:
        contact = contact_from_closure(command.closed)
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

    # A screening seen before the call had a case; kept until one is scheduled.
    risk = stored.get("risk_level") if stored else None
    if contact is not None:
        skipped = skip_reason(contact, policy, case)
        if skipped is not None:
            if skipped == "duplicate":
                metrics.DUPLICATES.labels(stage.name, NAVIGATION_COMMANDS.name).inc()
            else:
                metrics.FOLLOWUPS_SKIPPED.labels(skipped).inc()
        else:
            case, scheduled = schedule(contact, policy, now, case, risk_level=risk)
            if scheduled is not None and case is not None:
                await stage.send(FOLLOWUP_TIMERS, case.case_id, scheduled)
                metrics.FOLLOWUPS_SCHEDULED.labels(case.pilot).inc()
                if case.at_risk:
                    metrics.FOLLOWUPS_AT_RISK.labels(case.pilot).inc()

    record = _record(partition, case=case, touched=now, risk=risk)
    stage.put(cases, key, record)
    sweeper.written(partition, key, record)


async def _screened(
    stage: Stage,
    cases: Any,
    policy: Policy,
    screening: CcdScreened,
    partition: int,
    sweeper: _Sweeper,
) -> None:
    """Apply a screening on the partition that owns its call: before the contact, keep its
    risk level in the call's record; after it, maybe shorten the open case's deadline."""
    stage.clock.observe(screening.occurred_at)
    now = stage.clock.now()
    level = risk_level(screening.answers)
    if level != "high":
        return  # only a high screening changes a deadline: nothing to keep
    key = screening.call_id
    stored = stage.get(cases, key)
    case = Case.model_validate(stored["case"]) if stored and stored["case"] else None
    if case is None:
        record = _record(partition, case=None, touched=now, risk=level)
    else:
        updated, revised = on_screening(case, level, policy, now)
        if revised is None:
            return
        await stage.send(FOLLOWUP_TIMERS, updated.case_id, revised)
        if updated.at_risk and not case.at_risk:
            metrics.FOLLOWUPS_AT_RISK.labels(updated.pilot).inc()
        record = _record(partition, case=updated, touched=now)
    stage.put(cases, key, record)
    sweeper.written(partition, key, record)


@dataclass
class _Sweeper:
    """Fires due follow-ups per partition from the index; every :data:`FULL_SCAN_EVERY`
    ticks of a partition it reads the whole partition instead, to forget finished cases,
    count open ones and rebuild the index."""

    stage: Stage
    cases: Any
    policy: Policy
    #: Closed cases are forgotten this long after their last event.
    retention: timedelta
    index: DueIndex = field(default_factory=DueIndex)
    ticks: Counter[int] = field(default_factory=Counter)
    open_by_partition: dict[int, int] = field(default_factory=dict)
    #: The partitions the last settled tick found this worker owning.
    sweeping: frozenset[int] = frozenset()
    #: When ticks began to find no settled partitions (monotonic), and whether it was logged.
    paused_since: float | None = None
    pause_reported: bool = False

    def written(self, partition: int, key: str, record: dict[str, Any]) -> None:
        self.index.note(partition, key, record["pending_at"])

    async def tick(self, partition: int) -> None:
        if not self.stage.clock.known:
            # On event time, before this process has seen an event, time stands still:
            # firing by the wall clock would release every open follow-up as due and overdue.
            return
        owned = expiry.owned_partitions(self.stage.app, self.cases)
        if partition not in owned:
            # A rebalance or a recovery is under way: the table may be changing under
            # the index. The next tick, on settled partitions, rebuilds it.
            self.index.invalidate(None)
            self._paused()
            return
        self._sweeping(frozenset(owned))
        self.index.invalidate(frozenset(owned), getattr(self.stage.app, "rebalancing_count", 0))
        now = self.stage.clock.now()
        if self.ticks[partition] % FULL_SCAN_EVERY == 0:
            self._full_scan(partition, now)
        self.ticks[partition] += 1
        keys = self.index.due(
            partition,
            _iso(now) or "",
            self.policy.pilots.cn.sweep_batch_limit,
            functools.partial(Stage.get, self.cases),
            lambda: list(self.cases.items()),
        )
        due = [Case.model_validate(self.cases[key]["case"]) for key in keys]
        for case, events in sweep(due, now, len(due) or 1):
            await _emit(self.stage, case.pilot, events)
            stored = self.cases[case.case_id]
            record = {
                **stored,
                "case": case.model_dump(mode="json"),
                "pending_at": _iso(case.pending_at()),
                "touched": _iso(now),
            }
            self.stage.put(self.cases, case.case_id, record)
            self.written(partition, case.case_id, record)

    def _paused(self) -> None:
        """Ticks find this worker without settled partitions: say so once it lasts, since
        no follow-up of this worker fires meanwhile."""
        moment = time.monotonic()
        if self.paused_since is None:
            self.paused_since = moment
        elif not self.pause_reported and moment - self.paused_since >= SWEEP_PAUSE_WARN_S:
            self.pause_reported = True
            app = self.stage.app
            log.warning(
                "follow-up sweeps paused for %.0fs: no settled partitions "
                "(rebalancing=%s, recovering=%s)",
                moment - self.paused_since,
                getattr(app, "rebalancing", None),
                getattr(app, "in_recovery", None),
            )

    def _sweeping(self, owned: frozenset[int]) -> None:
        """Logs the partitions whose follow-ups this worker fires, when they change."""
        if self.paused_since is not None and self.pause_reported:
            log.info("follow-up sweeps resumed after %.0fs", time.monotonic() - self.paused_since)
        self.paused_since, self.pause_reported = None, False
        if owned != self.sweeping:
            self.sweeping = owned
            log.info("sweeping follow-ups of partitions %s", sorted(owned))

    def _full_scan(self, partition: int, now: datetime) -> None:
        horizon = _iso(now - self.retention) or ""
        forget: list[str] = []
        open_cases = 0
        for key, stored in list(self.cases.items()):
            if stored is None or stored["partition"] != partition:
                continue
            if stored["pending_at"] is not None:
                open_cases += 1
            elif stored["touched"] < horizon:
                forget.append(key)
        for key in forget:
            self.stage.delete(self.cases, key)
        self.open_by_partition[partition] = open_cases
        metrics.FOLLOWUPS_OPEN.set(sum(self.open_by_partition.values()))
        # Rebuilt on the next lookup: compacts entries of cases that have moved on.
        self.index.drop(partition)


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
