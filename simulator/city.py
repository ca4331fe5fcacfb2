"""The simulated city: a CAD feed, responder apps and care navigators on one sim clock.

Responders and navigators react to what the stages publish, as real apps would: they read
``dispatch.events`` and ``followup.tasks`` and answer on ``units.status`` and
``followup.outcomes``. Crisis Call Diversion clinicians (:mod:`heart.simulator.clinicians`)
work the calls triage decides, answer consults on ``ccd.assessments`` and ``ccd.consults``,
and the CAD closes the calls they end by phone on ``cad.calls``. Without clinicians, the CAD
closes every ``ccd`` call as resolved by phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError
from pydantic import BaseModel

from heart.schemas.calls import CallClosed
from heart.schemas.dispatch import UnitStatusReport
from heart.schemas.followup import FollowupOutcome
from heart.schemas.triage import TriageDecision
from heart.simulator.cad_feed import CadFeed
from heart.simulator.clinicians import Clinicians
from heart.streams.codec import encode
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CAD_CALLS,
    CCD_ASSESSMENTS,
    CCD_CONSULTS,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    TRIAGE_DECISIONS,
    UNITS_STATUS,
    TopicSpec,
)

#: The seed's pilots averaged 7.6 minutes from assignment to on scene.
MEAN_TRAVEL_MIN = 7.6
#: Peer programs report police backup in about 1% of calls (CAHOOTS 0.6-1%).
BACKUP_SHARE = 0.01
TRANSPORT_SHARE = 0.06
DECLINE_FOLLOWUP_SHARE = 0.2
OUTCOMES = (
    ("reached", 0.42),
    ("connected_to_care", 0.28),
    ("declined", 0.1),
    ("unable_to_reach", 0.2),
)


#: How often the city checks that a broker still answers, and how long it may not before
#: the city stops: long enough for a broker restart, short enough to be noticed.
BROKER_CHECK_S = 2.0
BROKER_LOSS_S = 10.0
#: Longest wait for a producer or consumer to close once the city stops.
CLOSE_TIMEOUT_S = 5.0


async def watch_broker(client: AIOKafkaClient, bootstrap: str) -> None:
    """Return never; raise KafkaConnectionError once no broker answered for BROKER_LOSS_S."""
    last_answer = time.monotonic()
    while True:
        await asyncio.sleep(BROKER_CHECK_S)
        try:
            answered = await asyncio.wait_for(_any_broker_ready(client), BROKER_CHECK_S)
        except TimeoutError:
            answered = False
        if answered:
            last_answer = time.monotonic()
        elif time.monotonic() - last_answer >= BROKER_LOSS_S:
            raise KafkaConnectionError(f"no broker at {bootstrap} answered for {BROKER_LOSS_S:g} s")


async def _any_broker_ready(client: AIOKafkaClient) -> bool:
    for broker in client.cluster.brokers():
        if await client.ready(broker.nodeId):
            return True
    return False


@dataclass
class Status:
    calls: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    dispatch: Counter[str] = field(default_factory=Counter)
    busy: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)
    followups_due: int = 0
    outcomes: int = 0
    engaged: int = 0
    consults: int = 0

    def line(self, sim_now: datetime, zone: ZoneInfo) -> str:
        """One line, for logs and pipes."""
        routes = " ".join(f"{r}={self.routes[r]}" for r in ("ccd", "crt", "cor", "police"))
        return (
            f"[{sim_now.astimezone(zone):%a %Y-%m-%d %H:%M}] calls={self.calls} "
            f"decisions: {routes} | teams busy={len(self.busy)} queue={len(self.queued)} "
            f"fallbacks={self.dispatch['dispatch.fallback']} "
            f"backup={self.dispatch['dispatch.backup_requested']} | "
            f"followups due={self.followups_due} outcomes={self.outcomes} | "
            f"clinicians engaged={self.engaged} consults={self.consults}"
        )

    def lines(self, sim_now: datetime, zone: ZoneInfo) -> list[str]:
        """The same figures as :meth:`line`, a few to a line, for a live display."""
        routes = "  ".join(f"{r} {self.routes[r]:,}" for r in ("ccd", "crt", "cor", "police"))
        return [
            f"simulated time  {sim_now.astimezone(zone):%a %Y-%m-%d %H:%M %Z}",
            f"calls           {self.calls:,}   decided: {routes}",
            f"teams           {len(self.busy)} busy, {len(self.queued)} calls waiting, "
            f"{self.dispatch['dispatch.fallback']:,} released to police, "
            f"{self.dispatch['dispatch.backup_requested']:,} backup",
            f"follow-ups      {self.followups_due:,} released, {self.outcomes:,} outcomes",
            f"clinicians      {self.engaged:,} calls engaged, {self.consults:,} consults asked",
        ]


class City:
    def __init__(
        self,
        settings: HeartSettings,
        start: datetime,
        speed: float,
        seed: int = 2022,
        clinicians: Clinicians | None = None,
    ) -> None:
        self.settings = settings
        self.clinicians = clinicians
        self.start = start
        self.speed = speed
        self.rng = random.Random(seed + 1)
        self.feed = CadFeed(start, seed=seed)
        self.status = Status()
        self._began = time.monotonic()
        self._agenda: list[tuple[datetime, int, TopicSpec, str, BaseModel]] = []
        self._seq = itertools.count()

    def sim_now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._began) * self.speed)

    def _later(self, at: datetime, spec: TopicSpec, key: str, event: BaseModel) -> None:
        heapq.heappush(self._agenda, (at, next(self._seq), spec, key, event))

    async def run(self, stop: asyncio.Event) -> None:
        kwargs = self.settings.aiokafka_kwargs()
        producer = AIOKafkaProducer(linger_ms=5, **kwargs)  # type: ignore[arg-type]
        watched = (TRIAGE_DECISIONS, DISPATCH_EVENTS, FOLLOWUP_TASKS)
        consumer = AIOKafkaConsumer(
            *(s.full_name(self.settings.topic_prefix) for s in watched),
            auto_offset_reset="latest",
            fetch_max_wait_ms=50,
            **kwargs,  # type: ignore[arg-type]
        )
        try:
            # Inside the try: a start that fails still closes both (no "Unclosed ..." noise).
            await producer.start()
            await consumer.start()
            self._began = time.monotonic()
            # aiokafka retries a lost broker for ever, quietly for our code: the watch turns
            # a broker that stays away into an error, which ends the city.
            work = asyncio.ensure_future(self._simulate(producer, consumer, stop))
            watch = asyncio.ensure_future(
                watch_broker(producer.client, self.settings.kafka_bootstrap)
            )
            done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            for task in (work, watch):
                task.cancel()
            for task in done:
                task.result()
        finally:
            for client in (consumer, producer):
                # Without a broker, aiokafka's stop can wait for ever or end in a stray
                # CancelledError; the process is ending, so neither may hide the real error.
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(client.stop(), CLOSE_TIMEOUT_S)

    async def _simulate(
        self, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            now = self.sim_now()
            for item in self.feed.events_until(now):
                await self._send(producer, CAD_CALLS, item.event.call_id, item.event)
                if item.event.event_type == "call.received":
                    self.status.calls += 1
            while self._agenda and self._agenda[0][0] <= now:
                _, _, spec, key, event = heapq.heappop(self._agenda)
                await self._send(producer, spec, key, event)
                self._count_sent(spec, event)
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    self._react(orjson.loads(record.value), now)

    async def _send(
        self, producer: AIOKafkaProducer, spec: TopicSpec, key: str, event: BaseModel
    ) -> None:
        await producer.send(
            spec.full_name(self.settings.topic_prefix), encode(event), key=key.encode()
        )

    def _count_sent(self, spec: TopicSpec, event: BaseModel) -> None:
        kind = getattr(event, "event_type", "")
        if spec is FOLLOWUP_OUTCOMES:
            self.status.outcomes += 1
        elif spec is CCD_ASSESSMENTS and kind == "ccd.engaged":
            self.status.engaged += 1
        elif spec is CCD_CONSULTS and kind == "consult.requested":
            self.status.consults += 1

    def _react(self, data: dict, now: datetime) -> None:
        kind = data.get("event_type", "")
        status = self.status
        if kind == "triage.decision":
            if data.get("revision") == 1:
                status.routes[data["route"]] += 1
            if self.clinicians is not None:
                decision = TriageDecision.model_validate(data)
                for item in self.clinicians.on_decision(decision, now):
                    self._later(item.at, item.topic, item.key, item.event)
            elif data["route"] == "ccd":
                self._close_by_phone(data["call_id"], now)
            return
        if kind.startswith("dispatch."):
            status.dispatch[kind] += 1
            team, call = data.get("team_id"), data["call_id"]
            if kind == "dispatch.assigned" and team:
                status.busy.add(team)
                status.queued.discard(call)
                self._respond(team, call, now)
                if self.clinicians is not None:
                    for item in self.clinicians.on_assigned(call, team, data["route"], now):
                        self._later(item.at, item.topic, item.key, item.event)
            elif kind == "dispatch.cleared" and team:
                status.busy.discard(team)
            elif kind == "dispatch.queued":
                status.queued.add(call)
            elif kind in ("dispatch.fallback", "dispatch.cancelled"):
                status.queued.discard(call)
            return
        if kind == "followup.due":
            status.followups_due += 1
            self._work_task(data["case_id"], now)

    def _minutes(self, a: float, b: float) -> timedelta:
        return timedelta(minutes=self.rng.uniform(a, b))

    def _close_by_phone(self, call_id: str, now: datetime) -> None:
        at = now + self._minutes(8, 35)
        closed = CallClosed(
            call_id=call_id,
            occurred_at=at,
            disposition="resolved_by_phone",
            followup_declined=self.rng.random() < DECLINE_FOLLOWUP_SHARE,
        )
        self._later(at, CAD_CALLS, call_id, closed)

    def _respond(self, team: str, call: str, now: datetime) -> None:
        rng = self.rng
        ack = now + self._minutes(0.3, 1.5)
        travel = timedelta(minutes=rng.lognormvariate(1.9, 0.45))  # mean about 7.6 min
        arrive = now + travel
        clear = arrive + self._minutes(15, 55)
        reports = [(ack, "en_route", False), (arrive, "on_scene", False)]
        if rng.random() < BACKUP_SHARE:
            reports.append((arrive + self._minutes(2, 10), "on_scene", True))
        if rng.random() < TRANSPORT_SHARE:
            reports.append((clear - self._minutes(5, 12), "transporting", False))
        reports.append((clear, "cleared", False))
        for at, status, backup in reports:
            report = UnitStatusReport(
                team_id=team,
                status=status,  # type: ignore[arg-type]
                call_id=call,
                occurred_at=at,
                backup_requested=backup,
                followup_declined=status == "cleared" and rng.random() < DECLINE_FOLLOWUP_SHARE,
            )
            self._later(at, UNITS_STATUS, team, report)

    def _work_task(self, case_id: str, now: datetime) -> None:
        at = now + self._minutes(20, 180)
        outcome = self.rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
        self._later(
            at,
            FOLLOWUP_OUTCOMES,
            case_id,
            FollowupOutcome(
                case_id=case_id,
                outcome=outcome,  # type: ignore[arg-type]
                care_kind="community mental health" if outcome == "connected_to_care" else None,
                navigator_id=f"CN-{self.rng.randint(1, 4)}",
                occurred_at=at,
            ),
        )
