"""``heart replay``: last year's real calls through the running pipeline, on event time.

Every stage runs on the event clock, so hours, queues, team availability and 48-hour
follow-ups behave as they would have on the days the calls came in. Simulated responder
apps and care navigators answer what the stages publish, with event times derived from the
events they answer.

The same export, mapping, policy, roster and seed give the same reports, however fast the
machine. Three rules make it so:

- Every random draw of a simulated actor comes from a generator seeded with the seed and
  the event it answers (a team's assignment, a call, a follow-up attempt), never from one
  shared generator drawn in the order answers happen to arrive.
- Simulated actors act on event time: a team's reports follow the assignment's time, a
  navigator works a follow-up at a time derived from when Care Navigation releases it.
  The release is computed with Care Navigation's own rules when the contact ends, so the
  outcome is on the agenda before the replay sends anything later (waiting until the task
  was seen would let the stages' clocks run past the deadline first).
- Calls, reports and outcomes reach the stages in event-time order. The team lane (calls
  routed to a team and the teams' status reports) is dispatch's feedback loop: before it
  sends anything it waits until dispatch has answered what it sent before (the call
  assigned, queued or released; after a clear while calls wait, the team's next
  assignment), because the answer decides which reports come next. The other lane
  (police and phone calls, their closing, follow-up outcomes) streams meanwhile, but never
  past the team lane's time, and the team lane never sends past what the other lane still
  has to send: a stage's event clock is the newest time it has seen, and one call read
  early would stamp another's decision with its time.

``--speed max`` streams as fast as the pipeline takes it; ``--speed N`` paces at N event
seconds per wall second. At the end the replay waits until every stage has consumed
everything and the monthly figures no longer change, then writes each month's report, and
the dispatch timings it read (:data:`TIMINGS_FILE`, what ``heart staffing --timings`` and
``heart whatif --timings`` calibrate from).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel

from heart.agents.navigation.cases import Contact, schedule, skip_reason
from heart.agents.navigation.staffed import add_staffed_minutes
from heart.agents.registry import STAGES, stage_inputs
from heart.agents.triage.decide import decide
from heart.cli.progress import ProgressBar
from heart.cli.supervisor import READY_MARKER, StageStartError, Supervisor, stage_error
from heart.policy import Policy, load_policy
from heart.schemas.calls import CallClosed, CallReceived
from heart.schemas.dispatch import UnitStatusReport
from heart.schemas.followup import FollowupOutcome
from heart.schemas.reports import MonthReport
from heart.simulator.city import BACKUP_SHARE, DECLINE_FOLLOWUP_SHARE, OUTCOMES
from heart.streams import embedded
from heart.streams.admin import all_topics, create_topics
from heart.streams.app import app_id
from heart.streams.codec import encode
from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CAD_CALLS,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    UNITS_STATUS,
    TopicSpec,
)

log = logging.getLogger(__name__)

#: The seed when none is given: the same replay twice gives the same reports.
DEFAULT_SEED = 2022
#: Stages a replay runs; intake adapters (EIDO) are not needed for an export.
REPLAY_STAGES = ("triage", "dispatch", "navigation", "reporting")
SYNC_TIMEOUT_S = 15.0
#: A team that clears takes a waiting call in the same step when one fits, and dispatch
#: sends that assignment in the same record batch as the clearing, to the same partition
#: (streams/outbox.py), so it arrives with the clearing. This wait, which starts once the
#: clearing has arrived, is only a guard; when no call fits (off shift, another area) no
#: answer comes, and that is no failure. Measured on the Milwaukee month: a 2 s wait here
#: cost 166 of 266 s of replay.
ASSIGN_AFTER_CLEAR_TIMEOUT_S = 0.1
TEAM_ROUTES = frozenset({"crt", "cor"})
#: A navigator works a released follow-up this many minutes after its release.
NAVIGATOR_DELAY_MIN = (20.0, 180.0)
#: The figures must stay the same this long, with every stage caught up, to be final:
#: longer than the stages' timers (Care Navigation's sweep each second, the reporting
#: stage's snapshot every two) plus a commit interval.
SETTLE_S = 3.5
REPORT_TIMEOUT_S = 180.0
#: The dispatch timings a replay read, in its report directory: one JSON object a line,
#: the format ``--timings`` reads.
TIMINGS_FILE = "dispatch-timings.jsonl"
#: Which dispatch events carry a timing, and which field (agents/capacity/timing.py).
TIMING_FIELDS = {
    "dispatch.on_scene": "assignment_to_on_scene_s",
    "dispatch.cleared": "time_on_scene_s",
}


@dataclass
class ReplayStats:
    #: What was replayed: the same for the same input and seed.
    calls: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    dispatch: Counter[str] = field(default_factory=Counter)
    followups_planned: int = 0
    outcomes: int = 0
    #: Follow-ups whose schedule differed from Care Navigation's (should stay 0), and
    #: outcomes not sent because Care Navigation never scheduled the case.
    followup_mismatches: int = 0
    followups_unscheduled: int = 0
    #: How the run went: depends on the machine, not on the input.
    followups_released: int = 0
    syncs: int = 0
    sync_timeouts: int = 0
    #: Each wait for the stages' answers, in wall seconds, per kind of wait: where a
    #: lock-step replay's time goes.
    sync_waits: dict[str, list[float]] = field(default_factory=dict)
    wall_s: float = 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "routes": dict(sorted(self.routes.items())),
            "dispatch": dict(sorted(self.dispatch.items())),
            "followups_planned": self.followups_planned,
            "outcomes": self.outcomes,
            "followup_mismatches": self.followup_mismatches,
            "followups_unscheduled": self.followups_unscheduled,
        }

    def as_dict(self) -> dict[str, Any]:
        """Figures and how the run went, in one mapping (the benchmark reads both)."""
        return {**self.figures(), **self.run()}

    def run(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 2),
            "calls_per_s": round(self.calls / self.wall_s, 1) if self.wall_s else None,
            # Released tasks the replayer saw: Care Navigation releases on its own timer.
            "followups_released": self.followups_released,
            "syncs": self.syncs,
            "sync_timeouts": self.sync_timeouts,
            "sync_wait_s": {k: round(sum(v), 2) for k, v in self.sync_waits.items()},
            "sync_wait_ms": {k: _spread(v) for k, v in self.sync_waits.items()},
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


def timing_line(event: dict[str, Any]) -> dict[str, Any] | None:
    """The timing a dispatch event carries, as a line of the timings file; None for an
    event without one. Only what calibration reads, with the event's time and route: the
    event also carries the call's place and safety notes, which a timings file does not
    need."""
    field_name = TIMING_FIELDS.get(event.get("event_type", ""))
    if field_name is None or event.get(field_name) is None:
        return None
    return {
        "event_type": event["event_type"],
        "occurred_at": event["occurred_at"],
        "route": event.get("route"),
        field_name: event[field_name],
    }


@dataclass(frozen=True)
class TimingsWritten:
    path: Path
    #: ``dispatch.on_scene`` lines (travel) and ``dispatch.cleared`` lines (on scene).
    arrivals: int
    clearings: int


def write_timings(lines: Iterable[dict[str, Any]], path: Path) -> TimingsWritten:
    """The timings file, in event-time order: the replayer reads partitions in whatever
    order they arrive, and the same replay must give the same file."""
    ordered = sorted(
        lines,
        key=lambda line: (
            datetime.fromisoformat(line["occurred_at"]),
            line["event_type"],
            orjson.dumps(line, option=orjson.OPT_SORT_KEYS),
        ),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in ordered))
    kinds = Counter(line["event_type"] for line in ordered)
    return TimingsWritten(path, kinds["dispatch.on_scene"], kinds["dispatch.cleared"])


Agenda = list[tuple[datetime, int, TopicSpec, str, BaseModel]]


class Replayer:
    """Sends calls in event-time order and plays the city's apps around the pipeline.

    Two lanes, each in event-time order (see the module docstring): the team lane waits
    for dispatch's answers, the other lane streams up to the team lane's time.
    """

    def __init__(
        self,
        settings: HeartSettings,
        policy: Policy,
        speed: float | None,
        seed: int = DEFAULT_SEED,
        progress: ProgressBar | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.speed = speed
        self.seed = seed
        self.stats = ReplayStats()
        self.progress = progress
        self._team_agenda: Agenda = []
        self._other_agenda: Agenda = []
        self._seq = itertools.count()
        self._waiting: dict[tuple[str, str], asyncio.Event] = {}
        self._queued: dict[str, str] = {}  # queued call -> kind
        self._team_kind: dict[str, str] = {}
        #: Event time the team lane has reached; the other lane sends nothing later.
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
        #: Follow-up cases planned (release, deadline as predicted), and those Care
        #: Navigation has scheduled.
        self._planned: dict[str, tuple[datetime, datetime]] = {}
        self._scheduled: set[str] = set()
        self._unscheduled: set[str] = set()
        #: Dispatch timings read, by event id: a redelivered event counts once.
        self.timings: dict[str, dict[str, Any]] = {}

    def _rng(self, *about: str) -> random.Random:
        """The generator for one decision about one event: seeded by the seed and the
        event, so the draw is the same whatever order the answers arrive in."""
        return random.Random("|".join((str(self.seed), *about)))

    # --- reactions ------------------------------------------------------------------------

    def _later(self, at: datetime, spec: TopicSpec, key: str, event: BaseModel) -> None:
        agenda = self._team_agenda if spec is UNITS_STATUS else self._other_agenda
        heapq.heappush(agenda, (at, next(self._seq), spec, key, event))
        if agenda is self._other_agenda:
            self._wake_other.set()

    def _expect(self, kind: str, ident: str) -> None:
        """Register interest in an answer before sending what it answers, so that an answer
        arriving before :meth:`_sync` starts waiting is not missed."""
        self._waiting.setdefault((kind, ident), asyncio.Event())

    def _resolve(self, kind: str, ident: str) -> None:
        waiter = self._waiting.get((kind, ident))
        if waiter is not None:
            waiter.set()

    def _react(self, data: dict[str, Any]) -> None:
        kind = data.get("event_type", "")
        if kind.startswith("dispatch."):
            at = datetime.fromisoformat(data["occurred_at"])
            self.stats.dispatch[kind] += 1
            call, team = data["call_id"], data.get("team_id")
            if kind == "dispatch.assigned" and team:
                self._queued.pop(call, None)
                self._team_kind[team] = data["route"]
                self._respond(team, call, data["route"], at)
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
            timing = timing_line(data)
            if timing is not None:
                self.timings[data["event_id"]] = timing
        elif kind == "followup.scheduled":
            self._on_scheduled(data)
        elif kind == "followup.due":
            self.stats.followups_released += 1

    def _on_scheduled(self, data: dict[str, Any]) -> None:
        case = data["case_id"]
        self._scheduled.add(case)
        planned = self._planned.get(case)
        actual = (
            datetime.fromisoformat(data["release_at"]),
            datetime.fromisoformat(data["deadline"]),
        )
        if planned is None or planned != actual:
            self.stats.followup_mismatches += 1
            log.warning(
                "replay: follow-up %s scheduled for release %s, deadline %s; the replayer "
                "planned %s",
                case,
                actual[0].isoformat(),
                actual[1].isoformat(),
                "nothing" if planned is None else f"{planned[0]:%Y-%m-%d %H:%M}",
            )
        self._resolve("scheduled", case)

    def _minutes(self, rng: random.Random, a: float, b: float) -> timedelta:
        return timedelta(minutes=rng.uniform(a, b))

    def _respond(self, team: str, call: str, route: str, at: datetime) -> None:
        """The team's app: en route, on scene, maybe backup, cleared; times from ``at``,
        the assignment's event time."""
        rng = self._rng("respond", call, team, at.isoformat())
        arrive = at + timedelta(minutes=rng.lognormvariate(1.9, 0.45))
        clear = arrive + self._minutes(rng, 15, 55)
        steps = [
            (at + self._minutes(rng, 0.3, 1.5), "en_route", False),
            (arrive, "on_scene", False),
        ]
        if rng.random() < BACKUP_SHARE:
            steps.append((arrive + self._minutes(rng, 2, 10), "on_scene", True))
        steps.append((clear, "cleared", False))
        declined = rng.random() < DECLINE_FOLLOWUP_SHARE
        for when, status, backup in steps:
            report = UnitStatusReport(
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{call}|{team}|{status}|{backup}").hex,
                team_id=team,
                status=status,  # type: ignore[arg-type]
                call_id=call,
                occurred_at=when,
                backup_requested=backup,
                followup_declined=status == "cleared" and declined,
            )
            self._later(when, UNITS_STATUS, team, report)
        if route in TEAM_ROUTES:
            self._plan_followup(call, route, clear, declined)

    def _plan_followup(self, case_id: str, pilot: str, ended: datetime, declined: bool) -> None:
        """The care navigators' work on the follow-up Care Navigation will schedule for a
        contact that ended at ``ended``: each attempt at a time after the task's release,
        until a closing outcome or the last retry.

        Release and deadline come from Care Navigation's own rules (a function of the
        contact and the policy); the follow-up's ``followup.scheduled`` is checked
        against them when it arrives.
        """
        if case_id in self._planned:
            return  # Care Navigation schedules one follow-up per call.
        contact = Contact(
            call_id=case_id,
            pilot=pilot,  # type: ignore[arg-type]
            ended_at=ended,
            declined=declined,
            source_event_id=case_id,
        )
        if skip_reason(contact, self.policy) is not None:
            return
        case, _ = schedule(contact, self.policy, ended)
        assert case is not None
        self._planned[case_id] = (case.release_at, case.deadline)
        self.stats.followups_planned += 1
        cn = self.policy.pilots.cn
        due = case.release_at
        names, weights = [o for o, _ in OUTCOMES], [w for _, w in OUTCOMES]
        for attempt in range(1, cn.unable_to_reach_retries + 2):
            rng = self._rng("followup", case_id, str(attempt))
            when = due + self._minutes(rng, *NAVIGATOR_DELAY_MIN)
            outcome = rng.choices(names, weights)[0]
            self._later(
                when,
                FOLLOWUP_OUTCOMES,
                case_id,
                FollowupOutcome(
                    event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{case_id}|{attempt}").hex,
                    case_id=case_id,
                    outcome=outcome,  # type: ignore[arg-type]
                    occurred_at=when,
                ),
            )
            if outcome != "unable_to_reach":
                break
            # Care Navigation releases the next attempt this long after the last one.
            due = add_staffed_minutes(when, cn.retry_after_minutes, self.policy)

    def _closing(self, call: CallReceived) -> None:
        closed_at = call.occurred_at + self._minutes(self._rng("closing", call.call_id), 8, 35)
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
        self._plan_followup(call.call_id, "ccd", closed_at, declined=False)

    # --- the run ------------------------------------------------------------------------

    async def run(self, calls: Iterable[CallReceived]) -> ReplayStats:
        kwargs = self.settings.aiokafka_kwargs()
        prefix = self.settings.topic_prefix
        producer = AIOKafkaProducer(linger_ms=2, **kwargs)  # type: ignore[arg-type]
        consumer = AIOKafkaConsumer(
            DISPATCH_EVENTS.full_name(prefix),
            FOLLOWUP_TIMERS.full_name(prefix),
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
        # Before either lane starts: the other lane must not run ahead of the first team call.
        self._team_time = team_calls[0].occurred_at if team_calls else None
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
                await self._other_caught_up(call.occurred_at)
                await self._pace(first, call.occurred_at, began)
                self._expect("dispatch", call.call_id)
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
            # Closings and follow-up outcomes still to come keep to the team lane too.
            await self._follow_team(producer, None)
        finally:
            self._other_done = True
            self._other_moved.set()

    async def _follow_team(self, producer: AIOKafkaProducer, until: datetime | None) -> None:
        """Send the other agenda up to the team lane's time, until ``until`` (the next
        call) is within it; ``None``: until the team lane is done, whose rest the run
        sends at the end."""
        while True:
            self._wake_other.clear()
            horizon = until
            if not self._team_done and self._team_time is not None:
                limit = self._team_time
                horizon = limit if until is None else min(until, limit)
            if horizon is not None:
                await self._flush(producer, self._other_agenda, horizon, team=False)
            self._other_moved.set()
            if self._team_done or (until is not None and horizon is not None and until <= horizon):
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
        # Everything the other lane has before ``at`` goes first: a team item sent now
        # would move the stages' event clocks past it, and they would read it late.
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
        self, producer: AIOKafkaProducer, agenda: Agenda, until: datetime, *, team: bool
    ) -> None:
        while agenda and agenda[0][0] <= until:
            at, _, spec, key, event = heapq.heappop(agenda)
            if team:
                self._advance_team(at)
                await self._other_caught_up(at)
            if isinstance(event, FollowupOutcome) and not await self._case_known(
                producer, event.case_id
            ):
                continue
            clears = isinstance(event, UnitStatusReport) and event.status == "cleared"
            if clears:
                assert isinstance(event, UnitStatusReport)
                self._expect("cleared", event.call_id or "")
                self._expect("assigned", event.team_id)
            await self._send(producer, spec, key, event)
            if spec is FOLLOWUP_OUTCOMES:
                self.stats.outcomes += 1
            if not clears:
                continue
            assert isinstance(event, UnitStatusReport)
            self._clearings_sent.add(event.call_id or "")
            kind = self._team_kind.get(event.team_id)
            if kind not in self._queued.values():
                self._waiting.pop(("cleared", event.call_id or ""), None)
                self._waiting.pop(("assigned", event.team_id), None)
                continue
            # The team that cleared takes the head of the queue: learn its next call
            # before time moves on, so that its reports are on the agenda. Dispatch
            # sends the assignment right behind the clearing, to the same partition.
            await producer.flush()
            await self._sync("cleared", event.call_id or "")
            if self._assigned_since(event):
                self._waiting.pop(("assigned", event.team_id), None)
            else:
                wait = ASSIGN_AFTER_CLEAR_TIMEOUT_S
                await self._sync("assigned", event.team_id, timeout=wait, may_not_come=True)

    async def _case_known(self, producer: AIOKafkaProducer, case_id: str) -> bool:
        """Whether Care Navigation has the case, waiting for it if need be: it refuses an
        outcome for a case it has not scheduled. The contact that schedules it went out
        earlier, but through another stage."""
        if case_id in self._unscheduled:
            return False
        if case_id not in self._scheduled:
            self._expect("scheduled", case_id)
            if case_id not in self._scheduled:
                await producer.flush()
                await self._sync("scheduled", case_id)
            else:
                self._waiting.pop(("scheduled", case_id), None)
        if case_id in self._scheduled:
            return True
        self._unscheduled.add(case_id)
        self.stats.followups_unscheduled += 1
        return False

    def _assigned_since(self, cleared: UnitStatusReport) -> bool:
        # An assignment that arrived in the clearing's batch already put the team's next
        # reports on the agenda.
        return any(
            isinstance(e, UnitStatusReport) and e.team_id == cleared.team_id
            for _, _, _, _, e in self._team_agenda
        )

    async def _sync(
        self,
        kind: str,
        ident: str,
        timeout: float = SYNC_TIMEOUT_S,
        *,
        may_not_come: bool = False,
    ) -> None:
        """Wait for an answer registered with :meth:`_expect` (or from now on).
        ``may_not_come``: silence is an answer too (no assignment after a clearing)."""
        waiter = self._waiting.setdefault((kind, ident), asyncio.Event())
        self.stats.syncs += 1
        began = time.monotonic()
        try:
            await asyncio.wait_for(waiter.wait(), timeout)
        except TimeoutError:
            if not may_not_come:
                self.stats.sync_timeouts += 1
                log.warning("replay: no %s answer for %s within %.1fs", kind, ident, timeout)
        finally:
            self._waiting.pop((kind, ident), None)
            self.stats.sync_waits.setdefault(kind, []).append(time.monotonic() - began)

    async def _pace(self, first: datetime, now: datetime, began: float) -> None:
        # Pacing only delays sending; what is sent, and its event times, stay the same.
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
    """Until every stage is ready. Raises :class:`StageStartError` for one that exited
    first (a replay restarts none), TimeoutError when one is still not ready."""
    deadline = time.monotonic() + timeout
    pending = {p.stage: p for p in supervisor.processes}
    while pending and time.monotonic() < deadline:
        for name, proc in list(pending.items()):
            if proc.ready():
                del pending[name]
            elif not proc.alive():
                code = proc.proc.returncode if proc.proc is not None else None
                raise StageStartError(name, code, stage_error(proc.log_text()), proc.log_path)
        await asyncio.sleep(0.2)
    if pending:
        logs = ", ".join(str(p.log_path) for p in pending.values())
        raise TimeoutError(
            f"stages not ready after {timeout:.0f}s ({READY_MARKER!r} not logged): "
            f"{', '.join(pending)}; see {logs}"
        )


@dataclass
class MonthWritten:
    month: str
    calls: int
    html: Path
    json: Path
    partial: str | None


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
    seed: int = DEFAULT_SEED,
    max_reject_rate: float | None = None,
) -> int:
    from heart.cli.import_calls import load_or_report, read_export

    mapping = load_or_report(mapping_name, sys.stderr, "replay")
    if mapping is None:
        return 2
    policy_file = policy_path or mapping.policy_path
    roster_file = roster_path or mapping.roster_path
    policy = load_policy(policy_file)
    print(f"importing {file} with mapping {mapping.city} ...", file=sys.stderr, flush=True)
    imported = read_export(file, mapping, sys.stderr, "replay", max_reject_rate=max_reject_rate)
    if isinstance(imported, int):
        return imported
    print(imported.summary(), file=sys.stderr, flush=True)
    calls = imported.events
    if not calls:
        print("heart replay: no calls to replay", file=sys.stderr)
        return 1

    logs = log_dir or Path(tempfile.mkdtemp(prefix="heart-replay-"))
    logs.mkdir(parents=True, exist_ok=True)
    # The workers' local state lives as long as the replay.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    state = Path(tempfile.mkdtemp(prefix="replay-", dir=settings.data_dir))
    broker: EmbeddedBroker | None = None
    supervisor: Supervisor | None = None
    try:
        if "HEART_KAFKA_BOOTSTRAP" not in os.environ:
            broker = EmbeddedBroker(port=find_free_port()).start()
            # The broker just started is the embedded one, whatever HEART_BROKER says.
            settings = settings.model_copy(
                update={"kafka_bootstrap": broker.bootstrap, "broker": "embedded"}
            )
        # A replay writes to its own topics, never into live ones.
        prefix = f"{settings.topic_prefix}replay-{mapping.city}-{uuid.uuid4().hex[:6]}."
        settings = settings.model_copy(update={"topic_prefix": prefix})
        await create_topics(settings)
        env = {
            **os.environ,
            "HEART_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HEART_BROKER": settings.broker,
            "HEART_TOPIC_PREFIX": prefix,
            "HEART_CLOCK": "event",
            "HEART_POLICY": str(policy_file),
            "HEART_DATA_DIR": str(state),
        }
        if roster_file is not None:
            env["HEART_ROSTER"] = str(roster_file)
        stages = [s for s in REPLAY_STAGES if s in STAGES]
        supervisor = Supervisor(stages, env, logs, find_free_port(count=len(stages)))
        supervisor.start()
        try:
            await wait_stages_ready(supervisor)
        except StageStartError as exc:
            print(f"heart replay: {exc.describe()}", file=sys.stderr)
            return 1
        except TimeoutError as exc:
            print(f"heart replay: {exc}", file=sys.stderr)
            return 1
        print(
            f"replaying {len(calls):,} calls ({calls[0].occurred_at:%Y-%m-%d} to "
            f"{calls[-1].occurred_at:%Y-%m-%d}) at "
            f"{'max speed' if speed is None else f'{speed:g}x'}, seed {seed}; "
            f"stage logs in {logs}",
            file=sys.stderr,
            flush=True,
        )
        bar = ProgressBar(f"replay {file.name}", sys.stderr)
        began = time.monotonic()
        replayer = Replayer(settings, policy, speed, seed=seed, progress=bar)
        stats = await replayer.run(calls)
        months = Counter(c.occurred_at.astimezone(policy.zone).strftime("%Y-%m") for c in calls)
        print("waiting for the stages to finish the last figures ...", file=sys.stderr)
        snapshots, complete = await final_reports(settings, months, stages)
        written = _write_reports(snapshots, out_dir)
        timings = write_timings(replayer.timings.values(), out_dir / TIMINGS_FILE)
        wall = time.monotonic() - began
        summary = {
            "file": str(file),
            "mapping": mapping.city,
            "policy": str(policy_file),
            "policy_version": policy.version_id,
            "roster": str(roster_file) if roster_file is not None else None,
            "seed": seed,
            "speed": "max" if speed is None else speed,
            "first_call": calls[0].occurred_at.isoformat(),
            "last_call": calls[-1].occurred_at.isoformat(),
            **stats.figures(),
            # The name in the report directory: two replays' summaries compare equal.
            "dispatch_timings": {
                "file": timings.path.name,
                "arrivals": timings.arrivals,
                "clearings": timings.clearings,
            },
            "months": {
                m.month: {
                    "calls": m.calls,
                    "partial": m.partial,
                    "html": str(m.html),
                    "json": str(m.json),
                }
                for m in written
            },
            "stage_logs": str(logs),
            "run": {**stats.run(), "replay_and_reports_wall_s": round(wall, 2)},
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        summary_path = out_dir / "replay-summary.json"
        summary_path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        print(
            human_summary(
                file=file,
                calls=len(calls),
                routes=stats.routes,
                policy=policy,
                policy_file=policy_file,
                roster_file=roster_file,
                seed=seed,
                written=written,
                timings=timings,
                out_dir=out_dir,
                summary_path=summary_path,
                logs=logs,
                wall_s=wall,
            )
        )
        missing = sorted(set(months) - {m.month for m in written})
        for month, snapshot in sorted(snapshots.items()):
            if snapshot.calls < months[month]:
                print(
                    f"heart replay: the {month} report counts {snapshot.calls:,} of "
                    f"{months[month]:,} calls; the stages did not finish in "
                    f"{REPORT_TIMEOUT_S:.0f}s (stage logs in {logs})",
                    file=sys.stderr,
                )
        if missing:
            print(f"heart replay: no report for {', '.join(missing)}", file=sys.stderr)
        return 0 if complete and not missing else 1
    finally:
        if supervisor is not None:
            supervisor.stop()
        if broker is not None:
            broker.stop()
        shutil.rmtree(state, ignore_errors=True)


def human_summary(
    *,
    file: Path,
    calls: int,
    routes: Counter[str],
    policy: Policy,
    policy_file: Path,
    roster_file: Path | None,
    seed: int,
    written: Sequence[MonthWritten],
    out_dir: Path,
    summary_path: Path,
    timings: TimingsWritten | None = None,
    logs: Path,
    wall_s: float,
) -> str:
    """What a person needs after a replay, in a dozen lines: what was replayed under
    which policy, where each month's report is, where its dispatch timings are, and how
    long it took."""
    from heart.agents.reporting.aggregate import organisation_of
    from heart.agents.reporting.wording import heading

    decided = " · ".join(f"{route} {n:,}" for route, n in routes.most_common())
    lines = [
        f"replayed {calls:,} calls from {file.name} ({decided}), seed {seed}",
        f"  organisation  {heading(organisation_of(policy))}",
        f"  policy        {policy_file} ({policy.version_id})",
        f"  roster        {roster_file if roster_file is not None else '(none)'}",
        f"reports in {out_dir}/ ({len(written)} month{'s' if len(written) != 1 else ''}):",
    ]
    for m in written:
        note = f"  ({m.partial})" if m.partial else ""
        lines.append(f"  {m.month}  {m.calls:>7,} calls  {m.html.name} (+ {m.json.name}){note}")
    if timings is not None:
        lines.append(
            f"dispatch timings in {timings.path} ({timings.arrivals:,} arrivals, "
            f"{timings.clearings:,} clearings), for heart staffing or whatif --timings"
        )
    lines += [
        f"took {_duration(wall_s)}; details in {summary_path}, stage logs in {logs}",
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


def _write_reports(snapshots: dict[str, MonthReport], out_dir: Path) -> list[MonthWritten]:
    from heart.agents.reporting.wording import partial_label
    from heart.cli.report import write_report

    written = []
    for month in sorted(snapshots):
        snapshot = snapshots[month]
        html, json_path = write_report(snapshot, out_dir)
        written.append(
            MonthWritten(month, snapshot.calls, html, json_path, partial_label(snapshot))
        )
    return written


async def final_reports(
    settings: HeartSettings,
    calls_by_month: Counter[str],
    stages: Sequence[str],
    timeout: float = REPORT_TIMEOUT_S,
) -> tuple[dict[str, MonthReport], bool]:
    """Each month's final snapshot, once every stage has consumed everything and the
    figures stayed the same for :data:`SETTLE_S`; and whether that happened in time
    (if not: the newest snapshots there are)."""
    from heart.cli.report import fetch_snapshot

    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    snapshots: dict[str, MonthReport] = {}
    async with _Lag(settings, stages) as lag:
        while time.monotonic() < deadline:
            await lag.until_caught_up(deadline)
            snapshots = {}
            for month in sorted(calls_by_month):
                snapshot = await fetch_snapshot(settings, month)
                if snapshot is not None:
                    snapshots[month] = snapshot
            figures = {m: _figures(s) for m, s in snapshots.items()}
            counted = all(
                m in snapshots and snapshots[m].calls >= n for m, n in calls_by_month.items()
            )
            if counted and figures == last:
                return snapshots, True
            last = figures
            await asyncio.sleep(SETTLE_S)
    return snapshots, False


def _figures(snapshot: MonthReport) -> dict[str, Any]:
    # The version grows with every republication, however the figures came about.
    return snapshot.model_dump(mode="json", exclude={"version"})


class _Lag:
    """The replay's consumer groups against the ends of the topics they read."""

    def __init__(self, settings: HeartSettings, stages: Sequence[str]) -> None:
        self.settings = settings
        by_name = {spec.name: spec for spec in all_topics()}
        self.groups = {
            app_id(stage, settings): [
                TopicPartition(by_name[name].full_name(settings.topic_prefix), p)
                for name in sorted(stage_inputs(stage))
                for p in range(by_name[name].partitions)
            ]
            for stage in stages
        }
        kwargs = settings.aiokafka_kwargs()
        self.consumer = AIOKafkaConsumer(**kwargs)  # type: ignore[arg-type]
        self.admin = AIOKafkaAdminClient(**kwargs)  # type: ignore[arg-type]

    async def __aenter__(self) -> _Lag:
        await self.consumer.start()
        await self.admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.admin.close()
        await self.consumer.stop()

    async def until_caught_up(self, deadline: float) -> None:
        """Until every group has committed what its topics held when this was called:
        timers keep adding records (ticks), so "the end now" would never be reached."""
        tps = sorted({tp for tps in self.groups.values() for tp in tps})
        reported = await self.consumer.end_offsets(tps)
        ends = await embedded.end_offsets(self.settings, tps, reported)
        while time.monotonic() < deadline:
            behind = 0
            for group, group_tps in self.groups.items():
                answer = await self.admin.list_consumer_group_offsets(group, partitions=group_tps)
                for tp in group_tps:
                    meta = answer.get(tp)
                    done = meta.offset if meta is not None and meta.offset >= 0 else 0
                    behind += max(0, ends[tp] - done)
            if not behind:
                return
            await asyncio.sleep(0.25)
