"""``heart replay``: last year's real calls through the running pipeline, on event time.

Every stage runs on the event clock, so hours, queues, team availability and 48-hour
follow-ups behave as they would have on the days the calls came in. Simulated responder
apps and care navigators answer what the stages publish, with event times derived from the
events they answer.

Teams are the one feedback loop that event time cannot run ahead of: whether the next call
finds a free team depends on the previous assignment and on when its team cleared. The
replayer therefore works in lock-step only there: after a call the policy routes to a team,
and after a team clears while calls wait, it waits until dispatch has answered before it
sends anything later. Everything else streams as fast as the pipeline takes it (``--speed
max``) or paced at N event seconds per wall second.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from heart.agents.registry import STAGES
from heart.agents.triage.decide import decide
from heart.cli.progress import ProgressBar
from heart.cli.supervisor import Supervisor
from heart.policy import Policy, load_policy
from heart.schemas.calls import CallClosed, CallReceived
from heart.schemas.dispatch import UnitStatusReport
from heart.schemas.followup import FollowupOutcome
from heart.streams import embedded
from heart.streams.admin import create_topics
from heart.streams.codec import encode
from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CAD_CALLS,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    UNITS_STATUS,
    TopicSpec,
)

log = logging.getLogger(__name__)

#: Stages a replay runs; intake adapters (EIDO) are not needed for an export.
REPLAY_STAGES = ("triage", "dispatch", "navigation", "reporting")
SYNC_TIMEOUT_S = 15.0
#: A team that clears takes a waiting call in the same step when one fits, and dispatch
#: sends that assignment right behind the clearing: this wait starts once the clearing has
#: arrived, so it only covers an assignment split into the next fetch. When none fits (off
#: shift, another area) no answer comes. Measured on the Milwaukee month: a 2 s wait here
#: cost 166 of 266 s of replay.
ASSIGN_AFTER_CLEAR_TIMEOUT_S = 0.1
#: How far ahead of the team lane, in event time, the other lane may send.
LANE_WINDOW = timedelta(minutes=15)
TEAM_ROUTES = frozenset({"crt", "cor"})


@dataclass
class ReplayStats:
    calls: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    dispatch: Counter[str] = field(default_factory=Counter)
    followups_due: int = 0
    outcomes: int = 0
    syncs: int = 0
    sync_timeouts: int = 0
    #: Each wait for dispatch's answers, in wall seconds, per kind of wait: where a
    #: lock-step replay's time goes.
    sync_waits: dict[str, list[float]] = field(default_factory=dict)
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "routes": dict(self.routes),
            "dispatch": dict(self.dispatch),
            "followups_due": self.followups_due,
            "outcomes": self.outcomes,
            "syncs": self.syncs,
            "sync_timeouts": self.sync_timeouts,
            "sync_wait_s": {k: round(sum(v), 2) for k, v in self.sync_waits.items()},
            "sync_wait_ms": {k: _spread(v) for k, v in self.sync_waits.items()},
            "wall_s": round(self.wall_s, 2),
            "calls_per_s": round(self.calls / self.wall_s, 1) if self.wall_s else None,
        }


def _spread(seconds: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of waits, in milliseconds."""
    # quantiles needs two points; one wait is every percentile of itself.
    if len(seconds) > 1:
        cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    else:
        cuts = seconds * 99
    return {
        **{f"p{q}": round(1000 * cuts[q - 1], 1) for q in (50, 90, 99)},
        "max": round(1000 * max(seconds), 1),
    }


class Replayer:
    """Sends calls in event-time order and plays the city's apps around the pipeline.

    Two lanes, each in event-time order. The team lane (calls routed to a team and the
    teams' status reports) is dispatch's feedback loop: before it sends anything it waits
    until dispatch has answered what it sent before (the call assigned, queued or
    released; after a clear while calls wait, the team's next assignment), because the
    answer decides which reports come next. The other lane (police and phone calls, their
    closing, follow-up outcomes) feeds no loop; it streams meanwhile, within
    :data:`LANE_WINDOW` of event time of the team lane either way, so the stages' event clocks
    stay within minutes of each other while every round trip to dispatch overlaps with
    useful work.
    """

    def __init__(
        self,
        settings: HeartSettings,
        policy: Policy,
        speed: float | None,
        seed: int = 2018,
        progress: ProgressBar | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.speed = speed
        self.rng = random.Random(seed)
        self.stats = ReplayStats()
        self.progress = progress
        self._team_agenda: list[tuple[datetime, int, TopicSpec, str, BaseModel]] = []
        self._other_agenda: list[tuple[datetime, int, TopicSpec, str, BaseModel]] = []
        self._seq = itertools.count()
        self._waiting: dict[tuple[str, str], asyncio.Event] = {}
        self._queued: dict[str, str] = {}  # queued call -> kind
        self._team_kind: dict[str, str] = {}
        #: Event time the team lane has reached; the other lane may run LANE_WINDOW ahead.
        self._team_time: datetime | None = None
        #: Set when the other lane may have more to send: the team lane moved, or a
        #: reaction put something on the other lane's agenda.
        self._wake_other = asyncio.Event()
        self._team_done = False
        #: Event time of the other lane's next call; None once every call is sent.
        self._other_call: datetime | None = None
        self._other_moved = asyncio.Event()
        self._other_done = False
        self._sent = 0
        self._total = 0
        #: Calls whose team's clearing was sent / has come back from dispatch.
        self._clearings_sent: set[str] = set()
        self._clearings_seen: set[str] = set()

    # --- reactions ------------------------------------------------------------------------

    def _later(self, at: datetime, spec: TopicSpec, key: str, event: BaseModel) -> None:
        agenda = self._team_agenda if spec is UNITS_STATUS else self._other_agenda
        heapq.heappush(agenda, (at, next(self._seq), spec, key, event))
        if agenda is self._other_agenda:
            self._wake_other.set()

    def _resolve(self, kind: str, ident: str) -> None:
        waiter = self._waiting.get((kind, ident))
        if waiter is not None:
            waiter.set()

    def _react(self, data: dict[str, Any]) -> None:
        kind = data.get("event_type", "")
        at = datetime.fromisoformat(data["occurred_at"])
        if kind.startswith("dispatch."):
            self.stats.dispatch[kind] += 1
            call, team = data["call_id"], data.get("team_id")
            if kind == "dispatch.assigned" and team:
                self._queued.pop(call, None)
                self._team_kind[team] = data["route"]
                self._respond(team, call, at)
                self._resolve("assigned", team)
            elif kind == "dispatch.queued":
                self._queued[call] = data["route"]
            elif kind in ("dispatch.fallback", "dispatch.cancelled"):
                self._queued.pop(call, None)
            elif kind == "dispatch.cleared":
                self._clearings_seen.add(call)
                self._resolve("cleared", call)
            if kind in ("dispatch.assigned", "dispatch.queued", "dispatch.fallback"):
                self._resolve("dispatch", call)
        elif kind == "followup.due":
            self.stats.followups_due += 1
            self._work_task(data["case_id"], at)

    def _minutes(self, a: float, b: float) -> timedelta:
        return timedelta(minutes=self.rng.uniform(a, b))

    def _respond(self, team: str, call: str, at: datetime) -> None:
        from heart.simulator.city import BACKUP_SHARE, DECLINE_FOLLOWUP_SHARE

        arrive = at + timedelta(minutes=self.rng.lognormvariate(1.9, 0.45))
        clear = arrive + self._minutes(15, 55)
        steps = [(at + self._minutes(0.3, 1.5), "en_route", False), (arrive, "on_scene", False)]
        if self.rng.random() < BACKUP_SHARE:
            steps.append((arrive + self._minutes(2, 10), "on_scene", True))
        steps.append((clear, "cleared", False))
        for when, status, backup in steps:
            report = UnitStatusReport(
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{call}|{team}|{status}|{backup}").hex,
                team_id=team,
                status=status,  # type: ignore[arg-type]
                call_id=call,
                occurred_at=when,
                backup_requested=backup,
                followup_declined=status == "cleared"
                and self.rng.random() < DECLINE_FOLLOWUP_SHARE,
            )
            self._later(when, UNITS_STATUS, team, report)

    def _work_task(self, case_id: str, at: datetime) -> None:
        from heart.simulator.city import OUTCOMES

        when = at + self._minutes(20, 180)
        outcome = self.rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
        self._later(
            when,
            FOLLOWUP_OUTCOMES,
            case_id,
            FollowupOutcome(
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{case_id}|{at.isoformat()}").hex,
                case_id=case_id,
                outcome=outcome,  # type: ignore[arg-type]
                occurred_at=when,
            ),
        )

    def _closing(self, call: CallReceived) -> None:
        closed_at = call.occurred_at + self._minutes(8, 35)
        self._later(
            closed_at,
            CAD_CALLS,
            call.call_id,
            CallClosed(
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{call.event_id}|closed").hex,
                call_id=call.call_id,
                occurred_at=closed_at,
                disposition="resolved_by_phone",
            ),
        )

    # --- the run ------------------------------------------------------------------------

    async def run(self, calls: Iterable[CallReceived]) -> ReplayStats:
        kwargs = self.settings.aiokafka_kwargs()
        prefix = self.settings.topic_prefix
        producer = AIOKafkaProducer(linger_ms=2, **kwargs)  # type: ignore[arg-type]
        consumer = AIOKafkaConsumer(
            DISPATCH_EVENTS.full_name(prefix),
            FOLLOWUP_TASKS.full_name(prefix),
            auto_offset_reset="earliest",
            fetch_max_wait_ms=5,
            **kwargs,  # type: ignore[arg-type]
        )
        team_calls: list[CallReceived] = []
        other_calls: list[CallReceived] = []
        for call in calls:
            route = decide(call, self.policy).route
            self.stats.routes[route] += 1
            (team_calls if route in TEAM_ROUTES else other_calls).append(call)
            if route == "ccd":
                self._closing(call)
        self._total = len(team_calls) + len(other_calls)
        self._other_call = other_calls[0].occurred_at if other_calls else None
        starts = [c[0].occurred_at for c in (team_calls, other_calls) if c]
        first = min(starts) if starts else None
        await producer.start()
        await consumer.start()
        embedded.tune_fetch_wait(consumer, self.settings)
        stop = asyncio.Event()
        reader = asyncio.create_task(self._read(consumer, stop))
        began = time.monotonic()
        try:
            if first is not None:
                # Each lane waits only on its own answers; the first failure stops both.
                async with asyncio.TaskGroup() as lanes:
                    lanes.create_task(self._team_lane(producer, team_calls, first, began))
                    lanes.create_task(self._other_lane(producer, other_calls, first, began))
                # Let the last follow-ups be worked.
                end = datetime.max.replace(tzinfo=first.tzinfo)
                await self._flush(producer, self._other_agenda, end, team=False)
            await producer.flush()
        finally:
            self.stats.wall_s = time.monotonic() - began
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader, 5)
            await consumer.stop()
            await producer.stop()
            if self.progress is not None:
                self.progress.done(self.stats.calls, "calls")
        return self.stats

    async def _team_lane(
        self,
        producer: AIOKafkaProducer,
        calls: list[CallReceived],
        first: datetime,
        began: float,
    ) -> None:
        try:
            for call in calls:
                await self._flush(producer, self._team_agenda, call.occurred_at, team=True)
                self._advance_team(call.occurred_at)
                await self._other_caught_up(call.occurred_at - LANE_WINDOW)
                await self._pace(first, call.occurred_at, began)
                await self._send_call(producer, call)
                await producer.flush()
                await self._sync("dispatch", call.call_id)
            # The last teams clear in their own time, not after the rest of the export.
            end = datetime.max.replace(tzinfo=first.tzinfo)
            await self._flush(producer, self._team_agenda, end, team=True)
            await producer.flush()
            await self._all_cleared()
        finally:
            self._team_done = True
            self._advance_team(None)

    async def _other_lane(
        self,
        producer: AIOKafkaProducer,
        calls: list[CallReceived],
        first: datetime,
        began: float,
    ) -> None:
        try:
            for i, call in enumerate(calls):
                await self._follow_team(producer, call.occurred_at)
                await self._pace(first, call.occurred_at, began)
                await self._send_call(producer, call)
                self._other_call = calls[i + 1].occurred_at if i + 1 < len(calls) else None
            # Closings and follow-up outcomes still to come keep to the window too.
            await self._follow_team(producer, None)
        finally:
            self._other_done = True
            self._other_moved.set()

    async def _follow_team(self, producer: AIOKafkaProducer, until: datetime | None) -> None:
        """Send the other agenda as far as the window allows, until ``until`` (the next
        call) is within it; ``None``: until the team lane is done, whose rest the run
        sends at the end."""
        while True:
            self._wake_other.clear()
            horizon = until
            if not self._team_done:
                limit = None if self._team_time is None else self._team_time + LANE_WINDOW
                horizon = limit if until is None or limit is None else min(until, limit)
            if horizon is not None:
                await self._flush(producer, self._other_agenda, horizon, team=False)
            self._other_moved.set()
            if self._team_done or (
                until is not None and self._team_time is not None and until <= horizon
            ):
                return
            await self._wake_other.wait()

    def _other_position(self) -> datetime | None:
        """Event time of the first thing the other lane has still to send (None: nothing
        it knows of)."""
        heads = [self._other_call, self._other_agenda[0][0] if self._other_agenda else None]
        return min((t for t in heads if t is not None), default=None)

    async def _all_cleared(self) -> None:
        # The replay is over when dispatch has seen the last team clear, not when the
        # replayer has sent it.
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while self._clearings_sent - self._clearings_seen and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        missing = len(self._clearings_sent - self._clearings_seen)
        if missing:
            self.stats.sync_timeouts += 1
            log.warning("replay: %d team clearings not answered by dispatch", missing)

    def _advance_team(self, at: datetime | None) -> None:
        if at is not None:
            self._team_time = at
        self._wake_other.set()

    async def _other_caught_up(self, at: datetime) -> None:
        # The other lane can fall behind when the pipeline is slower than the producer;
        # a team call sent then would move the stages' event clocks ahead of calls not
        # yet sent, and every stage would see them out of event-time order.
        while not self._other_done:
            self._other_moved.clear()
            position = self._other_position()
            if position is None or position >= at:
                return
            self._wake_other.set()
            await self._other_moved.wait()

    async def _send_call(self, producer: AIOKafkaProducer, call: CallReceived) -> None:
        await self._send(producer, CAD_CALLS, call.call_id, call)
        self.stats.calls += 1
        self._sent += 1
        if self.progress is not None:
            self.progress.update(self._sent, self._total, self._sent, "calls")

    async def _read(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=20)
            for records in batch.values():
                for record in records:
                    self._react(orjson.loads(record.value))

    async def _flush(
        self,
        producer: AIOKafkaProducer,
        agenda: list[tuple[datetime, int, TopicSpec, str, BaseModel]],
        until: datetime,
        *,
        team: bool,
    ) -> None:
        while agenda and agenda[0][0] <= until:
            at, _, spec, key, event = heapq.heappop(agenda)
            if team:
                self._advance_team(at)
                await self._other_caught_up(at - LANE_WINDOW)
            await self._send(producer, spec, key, event)
            if spec is FOLLOWUP_OUTCOMES:
                self.stats.outcomes += 1
            if isinstance(event, UnitStatusReport) and event.status == "cleared":
                self._clearings_sent.add(event.call_id or "")
                kind = self._team_kind.get(event.team_id)
                if kind not in self._queued.values():
                    continue
                # The team that cleared takes the head of the queue: learn its next call
                # before time moves on, so that its reports are on the agenda. Dispatch
                # sends the assignment right behind the clearing, to the same partition.
                await producer.flush()
                await self._sync("cleared", event.call_id or "")
                if not self._assigned_since(event):
                    await self._sync(
                        "assigned", event.team_id, timeout=ASSIGN_AFTER_CLEAR_TIMEOUT_S
                    )

    def _assigned_since(self, cleared: UnitStatusReport) -> bool:
        # An assignment that arrived in the clearing's batch already put the team's next
        # reports on the agenda.
        return any(
            isinstance(e, UnitStatusReport) and e.team_id == cleared.team_id
            for _, _, _, _, e in self._team_agenda
        )

    async def _sync(self, kind: str, ident: str, timeout: float = SYNC_TIMEOUT_S) -> None:
        waiter = self._waiting.setdefault((kind, ident), asyncio.Event())
        self.stats.syncs += 1
        began = time.monotonic()
        try:
            await asyncio.wait_for(waiter.wait(), timeout)
        except TimeoutError:
            self.stats.sync_timeouts += 1
            log.warning("replay: no %s answer for %s within %.1fs", kind, ident, timeout)
        finally:
            self._waiting.pop((kind, ident), None)
            self.stats.sync_waits.setdefault(kind, []).append(time.monotonic() - began)

    async def _pace(self, first: datetime, now: datetime, began: float) -> None:
        if self.speed is None:
            return
        due = began + (now - first).total_seconds() / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _send(
        self, producer: AIOKafkaProducer, spec: TopicSpec, key: str, event: BaseModel
    ) -> None:
        await producer.send(
            spec.full_name(self.settings.topic_prefix), encode(event), key=key.encode()
        )


async def wait_stages_ready(supervisor: Supervisor, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    pending = {p.stage: p for p in supervisor.processes}
    while pending and time.monotonic() < deadline:
        for name, proc in list(pending.items()):
            text = proc.log_path.read_text(errors="replace") if proc.log_path.exists() else ""
            if "[^Worker]: Ready" in text:
                del pending[name]
            elif not proc.alive():
                raise RuntimeError(f"stage {name} exited at start; see {proc.log_path}")
        await asyncio.sleep(0.2)
    if pending:
        raise TimeoutError(f"stages not ready after {timeout:.0f}s: {', '.join(pending)}")


async def run_replay(
    settings: HeartSettings,
    file: Path,
    mapping_name: str,
    *,
    policy_path: Path | None,
    roster_path: Path | None,
    speed: float | None,
    out_dir: Path,
    log_dir: Path | None = None,
) -> int:
    from heart.cad.importer import import_rows
    from heart.cad.mapping import load_mapping

    mapping = load_mapping(mapping_name)
    policy_file = policy_path or mapping.policy_path
    roster_file = roster_path or mapping.roster_path
    policy = load_policy(policy_file)
    print(f"importing {file} with mapping {mapping.city} ...", file=sys.stderr, flush=True)
    imported = import_rows(file, mapping)
    print(imported.summary(), file=sys.stderr, flush=True)
    calls = imported.events
    if not calls:
        print("heart replay: no calls to replay", file=sys.stderr)
        return 1

    broker: EmbeddedBroker | None = None
    if "HEART_KAFKA_BOOTSTRAP" not in os.environ:
        broker = EmbeddedBroker(port=find_free_port()).start()
        # The broker just started is the embedded one, whatever HEART_BROKER says.
        settings = settings.model_copy(
            update={"kafka_bootstrap": broker.bootstrap, "broker": "embedded"}
        )
    # A replay writes to its own topics, never into live ones.
    prefix = f"{settings.topic_prefix}replay-{mapping.city}-{uuid.uuid4().hex[:6]}."
    settings = settings.model_copy(update={"topic_prefix": prefix})
    logs = log_dir or Path(tempfile.mkdtemp(prefix="heart-replay-"))
    logs.mkdir(parents=True, exist_ok=True)
    supervisor: Supervisor | None = None
    try:
        await create_topics(settings)
        env = {
            **os.environ,
            "HEART_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HEART_BROKER": settings.broker,
            "HEART_TOPIC_PREFIX": prefix,
            "HEART_CLOCK": "event",
            "HEART_POLICY": str(policy_file),
        }
        if roster_file is not None:
            env["HEART_ROSTER"] = str(roster_file)
        stages = [s for s in REPLAY_STAGES if s in STAGES]
        supervisor = Supervisor(stages, env, logs, find_free_port(count=len(stages)))
        supervisor.start()
        await wait_stages_ready(supervisor)
        print(
            f"replaying {len(calls)} calls ({calls[0].occurred_at:%Y-%m-%d} to "
            f"{calls[-1].occurred_at:%Y-%m-%d}) at "
            f"{'max speed' if speed is None else f'{speed:g}x'}; stage logs in {logs}",
            file=sys.stderr,
            flush=True,
        )
        bar = ProgressBar(f"replay {file.name}", sys.stderr)
        stats = await Replayer(settings, policy, speed, progress=bar).run(calls)
        months = Counter(c.occurred_at.astimezone(policy.zone).strftime("%Y-%m") for c in calls)
        code = await _reports(settings, months, out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = {"file": str(file), "mapping": mapping.city, **stats.as_dict()}
        (out_dir / "replay-summary.json").write_bytes(
            orjson.dumps(summary, option=orjson.OPT_INDENT_2)
        )
        print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        return code
    finally:
        if supervisor is not None:
            supervisor.stop()
        if broker is not None:
            broker.stop()


async def _reports(
    settings: HeartSettings, calls_by_month: Counter[str], out_dir: Path, timeout: float = 120.0
) -> int:
    """Wait until the reporting stage has counted every replayed call, then write each
    month's report. Returns 1 if a month's figures never caught up."""
    from heart.cli.report import fetch_snapshot, summary, write_report

    code = 0
    for month, expected in sorted(calls_by_month.items()):
        deadline = time.monotonic() + timeout
        snapshot = None
        while time.monotonic() < deadline:
            snapshot = await fetch_snapshot(settings, month)
            if snapshot is not None and snapshot.calls >= expected:
                break
            await asyncio.sleep(1.0)
        if snapshot is None or snapshot.calls < expected:
            got = snapshot.calls if snapshot else 0
            print(
                f"heart replay: the {month} report counts {got} of {expected} calls after "
                f"{timeout:.0f}s; writing what there is",
                file=sys.stderr,
            )
            code = 1
            if snapshot is None:
                continue
        print(summary(snapshot))
        for path in write_report(snapshot, out_dir):
            print(f"wrote {path}")
    return code
