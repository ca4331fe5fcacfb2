"""The reporting stage: every decision, dispatch, follow-up, clinician (``ccd.assessments``)
and consult (``ccd.consults``) event, summed by month and pilot, published as one snapshot
per month on ``reports.monthly``.

Two hops over one internal topic, ``heart.reports.commands``:

1. Intake agents reduce each input event to a :class:`~heart.agents.reporting.aggregate.Fact`
   (no personal data survives this step), keyed by its call (or case) id. The partition
   owning that id keeps the call's :class:`Record` in the ``report-records`` table, so
   duplicates, superseding decisions and joins across topics (an outcome needs its
   case's deadline) are settled per call, in one place, in any arrival order. An input
   that arrived on that partition already (the stages key decisions and clinicians'
   events by call and follow-up events by case, and every input topic has the commands
   topic's partition count) is applied where it is: its worker owns the partition on both
   topics, since Faust assigns topics of one partition count together. Only the rest
   (dispatch events, keyed by team; consults, whose record key is prefixed so that no
   consult id can name a call; an outside producer's own partitioning) go through the
   topic as a ``fact`` command.
2. Each record's changed :class:`Part` of a month is held (:class:`PartOutbox`) and goes
   out with the partition's other parts of that month, keyed by month, on the next tick
   (or once enough are held). The partition owning the month stores each in
   ``report-parts`` (key ``month|call``), replacing that call's previous part; a part
   whose sequence number is not newer is a redelivery. Held parts lost in a crash are
   sent again: the first time a worker sees a partition, every record there sends its
   parts.

Both tables are changelogged, one small value per call, so a month of Durham's ~30,000
calls never becomes one large value rewritten on every event. The month's totals are an
in-memory sum over its parts, built from the table the first time a partition is seen
(after a start or a rebalance) and kept up to date part by part.

Forgetting (``settle.py``): every few ticks, a partition's owner forgets the records idle
for longer than ``HEART_REPORTING_RECORD_RETENTION_H`` (wall time) and has each month they touched
fold the call's part into the month's settled base, so memory holds the calls of the last
retention period plus one base per month.

Publishing: a timer sends a tick to every partition every ``SNAPSHOT_INTERVAL_S``; the
partition's owner publishes each of its months that changed since the last tick. A
rebuilt partition publishes all its months once, so a crash between storing a part and
publishing never leaves a stale snapshot behind. Snapshots carry a ``version`` that only
grows, so a reader takes the largest even if a former owner published late.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from faust.types import StreamT

from heart.agents.reporting import settle
from heart.agents.reporting.aggregate import (
    Record,
    Totals,
    accept,
    changed_parts,
    fact_of,
    organisation_of,
    parts_of,
    report_from_totals,
)
from heart.policy import load_policy
from heart.policy.model import CcdWork
from heart.schemas.reports import Fact, KeyedPart, Part, ReportCommand
from heart.streams import expiry, metrics
from heart.streams.clock import WallClock
from heart.streams.codec import encode
from heart.streams.stage import Stage
from heart.streams.topics import (
    CCD_ASSESSMENTS,
    CCD_CONSULTS,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    REPORT_PARTS,
    REPORT_RECORDS,
    REPORTS_COMMANDS,
    REPORTS_MONTHLY,
    TRIAGE_DECISIONS,
    TopicSpec,
)

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_S = 2.0
#: Most records one partition forgets per tick: a backlog (a restart, a jump in event
#: time) drains in batches rather than in one burst of tombstones and settlements.
SETTLE_BATCH = 1_000
#: A partition's records are scanned for idle ones every this many of its ticks: the
#: scan reads the whole table, and retention is hours, not seconds.
FORGET_EVERY_TICKS = 5
#: Parts a partition holds before it sends them without waiting for its tick.
FLUSH_PARTS = 512
#: Most parts in one command (a part is a few hundred bytes; a command stays far below
#: the 1 MiB message limit).
PARTS_CHUNK = 500
INPUTS: tuple[TopicSpec, ...] = (
    TRIAGE_DECISIONS,
    DISPATCH_EVENTS,
    FOLLOWUP_TIMERS,
    FOLLOWUP_TASKS,
    FOLLOWUP_OUTCOMES,
    CCD_ASSESSMENTS,
    CCD_CONSULTS,
)


@dataclass
class MonthCache:
    """This worker's months: totals per month (settled base plus live parts) and each
    month's base, derived from the parts table.

    Never changelogged: it is rebuilt from ``report-parts`` for each partition the first
    time a command of that partition is processed, so it cannot drift from the table.
    """

    totals: dict[str, Totals] = field(default_factory=dict)
    bases: dict[str, Totals] = field(default_factory=dict)
    partition_of: dict[str, int] = field(default_factory=dict)
    built: set[int] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)

    def ensure(self, partition: int, table: Any) -> None:
        if partition in self.built:
            return
        started = time.perf_counter()
        months, bases, leftovers = settle.rebuild(list(table.items()), partition)
        for month, totals in months.items():
            self.totals[month] = totals
            self.partition_of[month] = partition
        self.bases.update(bases)
        # Called while a command of this partition is processed, so the tombstones go
        # to this partition's changelog.
        for table_key in leftovers:
            del table[table_key]
        # Publish everything once: the last snapshot before a crash may be missing.
        self.dirty |= set(months)
        self.built.add(partition)
        log.info(
            "reporting: partition %d holds %d month(s), rebuilt in %.3fs",
            partition,
            len(months),
            time.perf_counter() - started,
        )

    def replace(self, partition: int, month: str, old: Part | None, new: Part) -> None:
        self.totals.setdefault(month, Totals()).replace(old, new)
        self.partition_of[month] = partition
        self.dirty.add(month)

    def base(self, partition: int, month: str) -> Totals:
        self.partition_of.setdefault(month, partition)
        return self.bases.setdefault(month, Totals())

    def drop(self, partitions: set[int]) -> None:
        """Forget partitions this worker no longer owns; a new owner rebuilds them."""
        self.built -= partitions
        for month in [m for m, p in self.partition_of.items() if p in partitions]:
            self.totals.pop(month, None)
            self.bases.pop(month, None)
            self.partition_of.pop(month, None)
            self.dirty.discard(month)


@dataclass
class PartOutbox:
    """Parts waiting to be sent, per call partition, newest per month and call.

    Sending each part as its own command made the part hop as costly as the fact hop;
    held here, a partition's parts go out in a few commands per month on each tick, or
    sooner when :data:`FLUSH_PARTS` are waiting. What a crash loses is sent again by
    the next owner (``resend_all``)."""

    pending: dict[int, dict[str, dict[str, Part]]] = field(default_factory=dict)
    resent: set[int] = field(default_factory=set)

    def hold(self, partition: int, key: str, parts: dict[str, Part]) -> None:
        months = self.pending.setdefault(partition, {})
        for month, part in parts.items():
            months.setdefault(month, {})[key] = part

    def full(self, partition: int) -> bool:
        return sum(map(len, self.pending.get(partition, {}).values())) >= FLUSH_PARTS

    def take(self, partition: int) -> list[tuple[str, list[KeyedPart]]]:
        """The partition's held parts, emptied, in chunks of at most :data:`PARTS_CHUNK`."""
        out: list[tuple[str, list[KeyedPart]]] = []
        for month, entries in sorted(self.pending.pop(partition, {}).items()):
            keyed = [KeyedPart(key=key, part=part) for key, part in entries.items()]
            out += [(month, keyed[i : i + PARTS_CHUNK]) for i in range(0, len(keyed), PARTS_CHUNK)]
        return out

    def drop(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.pending.pop(partition, None)
            self.resent.discard(partition)


def register(stage: Stage) -> None:
    policy = load_policy(stage.settings.policy)
    zone = policy.zone
    ccd = policy.ccd_work
    organisation = organisation_of(policy)
    records = stage.table(REPORT_RECORDS)
    parts = stage.table(REPORT_PARTS)
    commands = stage.topic(REPORTS_COMMANDS)
    cache = MonthCache()
    outbox = PartOutbox()
    ticks: Counter[int] = Counter()
    latency = metrics.PROCESSING_SECONDS.labels(stage.name)
    duplicates = metrics.DUPLICATES.labels(stage.name, REPORTS_COMMANDS.name)
    commands_name = REPORTS_COMMANDS.full_name(stage.settings.topic_prefix)
    retention = timedelta(hours=stage.settings.reporting_record_retention_h)
    # Retention is wall time even on the event clock: a replay runs weeks of event time in
    # minutes, so a crash's redeliveries, minutes old, could be weeks old in event time and
    # find their calls forgotten, to be counted again as new ones.
    wall = WallClock()

    async def apply_here(fact: Fact, partition: int) -> bool:
        """Apply ``fact`` now if the input's partition is the one owning its key."""
        if stage.partition_of(REPORTS_COMMANDS, fact.key) != partition:
            return False
        await resend_all(partition)
        await on_fact(fact, partition)
        return True

    for spec in INPUTS:
        _intake(stage, spec, zone, ccd, apply_here)

    async def flush(partition: int) -> None:
        """Send the parts this call partition holds, one command per month and chunk."""
        for month, entries in outbox.take(partition):
            await stage.send(
                REPORTS_COMMANDS, month, ReportCommand(kind="parts", month=month, parts=entries)
            )

    async def resend_all(partition: int) -> None:
        # After a start or a rebalance: the parts held when the last owner stopped are
        # lost, so every record of the partition sends its parts again (repeats are
        # recognised by sequence number on the month's side).
        if partition in outbox.resent:
            return
        outbox.resent.add(partition)
        for key, stored in list(records.items()):
            if stored is not None and stored.get("partition") == partition:
                outbox.hold(partition, key, parts_of(Record.model_validate(stored)))
        await flush(partition)

    async def on_fact(fact: Fact, partition: int) -> None:
        stored = stage.get(records, fact.key)
        old = Record.model_validate(stored) if stored is not None else None
        new = accept(old, fact)
        if new is None:
            duplicates.inc()
            if old is not None:
                # Parts are idempotent downstream: sending them again costs little and
                # repairs a month that missed one.
                outbox.hold(partition, fact.key, parts_of(old))
        else:
            # Stamped for forgetting: a new fact is the call's latest sign of life.
            stage.put(
                records,
                fact.key,
                expiry.stamped(new.dump(), partition=partition, touched=wall.now()),
            )
            outbox.hold(partition, fact.key, changed_parts(old, new))
        if outbox.full(partition):
            await flush(partition)

    def on_parts(command: ReportCommand, partition: int) -> None:
        month = command.month
        assert month is not None
        for entry in command.parts:
            key, part = entry.key, entry.part
            table_key = settle.part_key(month, key)
            stored = stage.get(parts, table_key)
            if stored is not None and stored["seq"] >= part.seq:
                duplicates.inc()
                continue
            old = Part.model_validate(stored["part"]) if stored is not None else None
            stage.put(parts, table_key, settle.part_value(partition, month, part))
            cache.replace(partition, month, old, part)

    def on_settle(command: ReportCommand, partition: int) -> None:
        month = command.month
        assert month is not None
        moved = settle.settle(
            parts, cache.base(partition, month), partition, month, command.settled
        )
        metrics.REPORT_PARTS_SETTLED.inc(len(moved))

    async def forget_idle(partition: int) -> None:
        """Forget this partition's records idle past the retention; settle their parts."""
        ticks[partition] += 1
        if ticks[partition] % FORGET_EVERY_TICKS != 1:
            return
        before = wall.now() - retention
        gone = settle.expired_records(records, partition, before, SETTLE_BATCH)
        for key, _record in gone:
            # The tick's partition is the record's: the tombstone lands where it belongs.
            stage.delete(records, key)
        for month, settled in settle.settlements(gone).items():
            await stage.send(
                REPORTS_COMMANDS,
                month,
                ReportCommand(kind="settle", month=month, settled=settled),
            )
        if gone:
            metrics.REPORT_RECORDS_FORGOTTEN.inc(len(gone))
            log.info(
                "reporting: partition %d forgot %d idle record(s); %d record(s), %d part(s) held",
                partition,
                len(gone),
                len(records),
                len(parts),
            )

    async def publish(partition: int) -> None:
        for month in sorted(m for m in cache.dirty if cache.partition_of.get(m) == partition):
            snapshot = report_from_totals(
                cache.totals[month],
                month,
                policy.timezone,
                organisation,
                ccd.referral_resources,
            )
            await stage.send(REPORTS_MONTHLY, month, snapshot)
            metrics.REPORT_SNAPSHOTS.inc()
            cache.dirty.discard(month)

    @stage.app.timer(SNAPSHOT_INTERVAL_S, name="reporting-tick")
    async def tick() -> None:
        # Sent to every partition: whichever worker owns a month publishes it, so
        # publishing follows the months' partitions on rebalance.
        raw = encode(ReportCommand(kind="tick"))
        for partition in range(REPORTS_COMMANDS.partitions):
            await commands.send(value=raw, partition=partition)

    async def on_revoked(_app: Any, revoked: set[Any], **_: Any) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == commands_name}
        cache.drop(gone)
        outbox.drop(gone)

    stage.app.on_partitions_revoked.connect(on_revoked)

    @stage.app.agent(commands, name="reporting")
    async def aggregate(stream: StreamT) -> None:
        async for command, event in stage.read(stream, REPORTS_COMMANDS):
            started = time.perf_counter()
            partition = event.message.partition
            cache.ensure(partition, parts)
            await resend_all(partition)
            if command.kind == "fact":
                assert command.fact is not None
                await on_fact(command.fact, partition)
            elif command.kind == "parts":
                on_parts(command, partition)
            elif command.kind == "settle":
                on_settle(command, partition)
            else:
                # Held parts go out before any settlement: a month must not settle a
                # call's older part and then receive its newer one as a new call's.
                await flush(partition)
                await forget_idle(partition)
                await publish(partition)
            latency.observe(time.perf_counter() - started)


def _intake(
    stage: Stage,
    spec: TopicSpec,
    zone: ZoneInfo,
    ccd: CcdWork,
    apply_here: Callable[[Fact, int], Awaitable[bool]],
) -> None:
    # A topic of another partition count is not co-assigned with the commands topic.
    local = spec.partitions == REPORTS_COMMANDS.partitions
    latency = metrics.PROCESSING_SECONDS.labels(stage.name)

    @stage.app.agent(stage.topic(spec), name=f"reporting-{spec.name}")
    async def intake(stream: StreamT) -> None:
        async for event, raw in stage.read(stream, spec):
            fact = fact_of(event, zone, ccd)
            if fact is None:
                continue
            started = time.perf_counter()
            if local and await apply_here(fact, raw.message.partition):
                latency.observe(time.perf_counter() - started)
                continue
            await stage.send(REPORTS_COMMANDS, fact.key, ReportCommand(kind="fact", fact=fact))
