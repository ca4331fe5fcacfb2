"""Chaos, one scenario per stage, against the real embedded broker.

Each scenario runs two replicas of the stage (A and B), feeds hundreds of inputs paced in
wall time so that work is in flight, then:

1. SIGKILLs replica A while B is alive (two replicas, one killed) and starts A2 at once
   (a killed worker restarted);
2. once A2 is up and a second batch is in flight, SIGKILLs B, so that A2 alone finishes.

After the stream drains, every record that reached the output topics is judged, duplicates
included: at-least-once delivery may repeat an event, but only with the same ``event_id``.

The three scenarios run concurrently (most of their time is spent waiting for group
rebalances, not on the CPU), started by ``conftest.py`` when the session starts; each test
awaits its own stage's scenario and judges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from heart.agents.triage.decide import apply_update, decide
from heart.agents.triage.state import decision_id
from heart.policy import default_policy_path, load_policy
from heart.schemas import (
    CallUpdated,
    DeadLetter,
    DispatchEvent,
    FollowupOutcome,
    TriageClosure,
    UnitStatusReport,
)
from heart.streams.admin import create_topics
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CAD_CALLS,
    DEADLETTER,
    DISPATCH_CLEARED,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    NAVIGATION_COMMANDS,
    TRIAGE_CLOSURES,
    TRIAGE_DECISIONS,
    UNITS_AUDIT,
    UNITS_STATUS,
)
from tests.factories import T0, call_received
from tests.kafka import Worker, key_partition, key_per_partition
from tests.reliability.conftest import Background
from tests.reliability.support import Feed, TopicWatch, distinct, ids_by, of_type, stop_worker

# In the default suite since Faust committing over a skipped record after a rebalance
# (docs/reliability.md, "Records lost around a rebalance") was fixed in
# heart.streams.kafka.consumer.HeartConsumer.
pytestmark = pytest.mark.broker

POLICY = load_policy()
NY = ZoneInfo("America/New_York")
EVENT_CLOCK = {"HEART_CLOCK": "event"}


@dataclass
class Run:
    """What a scenario leaves for its test to judge."""

    watches: dict[str, TopicWatch] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)

    def events(self, name: str) -> list[Any]:
        return self.watches[name].events()


async def _scoped(settings: HeartSettings, prefix: str) -> HeartSettings:
    scoped = settings.model_copy(update={"topic_prefix": prefix})
    await create_topics(scoped)
    return scoped


async def _chaos(
    run: Run,
    stage: str,
    settings: HeartSettings,
    log_dir: Path,
    env: dict[str, str],
    *,
    phase1: Callable[[], Awaitable[None]],
    first_kill_when: Callable[[], bool],
    phase2: Callable[[], Awaitable[None]],
    second_kill_when: Callable[[], bool],
    drained: Callable[[], Awaitable[None]],
    alive: Callable[[], None] = lambda: None,
    status: Callable[[], str] = lambda: "",
) -> None:
    """The common kill schedule: A+B, kill A mid-phase 1 and restart it, kill B mid-phase 2.

    ``alive`` raises if one of the scenario's own helpers (a topic watch, the responder
    apps) has died, so that a dead helper is not mistaken for a stalled stage; ``status``
    describes the scenario's progress for the message of a phase that never came.
    """
    a = Worker(stage, settings, log_dir, **env).start()
    b = Worker(stage, settings, log_dir, **env).start()
    workers = [a, b]

    async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            await _until(condition, timeout, what, feeding, alive)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; {status()}; {_workers_report(workers)}") from None

    try:
        await asyncio.gather(a.wait_ready(90), b.wait_ready(90))
        feeding: asyncio.Task[None] | None = asyncio.create_task(phase1())
        await until(first_kill_when, 60, f"{stage}: first batch in flight")
        a.kill(signal.SIGKILL)
        run.kills.append(f"{stage}: SIGKILL replica A mid-batch 1, B alive; A2 started")
        a2 = Worker(stage, settings, log_dir, **env).start()
        workers.append(a2)
        await feeding
        await a2.wait_ready(90)
        feeding = asyncio.create_task(phase2())
        await until(second_kill_when, 90, f"{stage}: second batch in flight")
        b.kill(signal.SIGKILL)
        run.kills.append(f"{stage}: SIGKILL replica B mid-batch 2, A2 alone finishes")
        await feeding
        try:
            await drained()
        except (TimeoutError, AssertionError) as exc:
            raise type(exc)(f"{exc}; {status()}; {_workers_report(workers)}") from None
        assert a2.proc is not None and a2.proc.poll() is None, "A2 must still be running"
    finally:
        for w in workers:
            if w.proc is not None and w.proc.poll() is None:
                stop_worker(w)
        run.logs = [w.log() for w in workers]


async def _until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    feeding: asyncio.Task[None] | None,
    alive: Callable[[], None],
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if feeding is not None and feeding.done() and feeding.exception() is not None:
            raise feeding.exception()  # type: ignore[misc]
        alive()
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout:.0f}s")
        await asyncio.sleep(0.05)


def _workers_report(workers: list[Worker]) -> str:
    """Which replicas run, and the warnings and errors each logged (the last few)."""
    lines = []
    for name, w in zip(("A", "B", "A2"), workers, strict=False):
        running = w.proc is not None and w.proc.poll() is None
        notable = [
            line
            for line in w.log().splitlines()
            if any(level in line for level in ("WARNING", "ERROR", "CRITICAL", "Traceback"))
        ]
        lines.append(
            f"replica {name} {'running' if running else 'stopped'}, last warnings: {notable[-8:]}"
        )
    return "; ".join(lines)


# --- triage -------------------------------------------------------------------------------

TRIAGE_CALLS = 600
CALL_TYPES = ("Mental Health Crisis", "Welfare Check", "Burglary", "Suicide Threat", "Trespass")
BEATS = ("111", "214", "999", "512", None)


def _triage_inputs() -> tuple[list[Any], dict[str, tuple[str, int, str]]]:
    """Calls, weapon updates and CAD redeliveries, in send order; and the expected
    effective decision per call: (decision event_id, revision, route)."""
    calls = [
        call_received(
            call_id=f"T-{i}",
            event_id=f"tc-{i}",
            call_type=CALL_TYPES[i % len(CALL_TYPES)],
            beat=BEATS[i % len(BEATS)],
            needs_in_person=i % 3 != 0,
            occurred_at=T0 + timedelta(seconds=i),
            caller={"name": "Planted Name", "phone": "919-555-0199"},
        )
        for i in range(TRIAGE_CALLS)
    ]
    updates = {
        i: CallUpdated(
            call_id=f"T-{i}",
            event_id=f"tu-{i}",
            occurred_at=T0 + timedelta(seconds=i + 20),
            weapon_involved=True,
        )
        for i in range(TRIAGE_CALLS)
        if i % 4 == 1
    }
    order: list[Any] = []
    for i, call in enumerate(calls):
        order.append(call)
        if i >= 20 and (i - 20) in updates:
            order.append(updates[i - 20])
        if i >= 10 and (i - 10) % 6 == 0:
            order.append(calls[i - 10])  # the CAD redelivers a call it already sent
    for i in range(TRIAGE_CALLS - 20, TRIAGE_CALLS):
        if i in updates:
            order.append(updates[i])
            order.append(updates[i])  # and redelivers an update
    expected = {}
    for i, call in enumerate(calls):
        if i in updates:
            merged = apply_update(call, updates[i])
            expected[call.call_id] = (
                decision_id(updates[i].event_id, updates[i].call_id),
                2,
                decide(merged, POLICY).route,
            )
        else:
            expected[call.call_id] = (
                decision_id(call.event_id, call.call_id),
                1,
                decide(call, POLICY).route,
            )
    return order, expected


async def run_triage(settings: HeartSettings, log_dir: Path) -> Run:
    scoped = await _scoped(settings, f"chaos-tri-{log_dir.name}.")
    run = Run()
    order, expected = _triage_inputs()
    run.expected = expected
    decisions = await TopicWatch(scoped, TRIAGE_DECISIONS).start()
    run.watches["decisions"] = decisions
    feed = await Feed(scoped).start()
    half = len(order) // 2
    items = [(CAD_CALLS, e.call_id, e) for e in order]

    def decided() -> int:
        return len({r.key for r in decisions.records})

    async def drained() -> None:
        want = {(call, *value) for call, value in expected.items()}

        def seen() -> set[tuple[str, str, int, str]]:
            return {(d.call_id, d.event_id, d.revision, d.route) for d in decisions.events()}

        try:
            await decisions.wait(
                lambda _: want <= seen(), timeout=90, what="every expected effective decision"
            )
        except TimeoutError as exc:
            missing = sorted(want - seen())
            got = {
                c: [(d.revision, d.route) for d in decisions.events() if d.call_id == c]
                for c, *_ in missing[:10]
            }
            raise AssertionError(
                f"{exc}: missing {len(missing)}: {missing[:10]}; got {got}"
            ) from None
        await decisions.quiet(3.0)

    try:
        await _chaos(
            run,
            "triage",
            scoped,
            log_dir,
            # The calls are dated July 2024: on the wall clock every one would be stale.
            EVENT_CLOCK,
            phase1=lambda: feed.paced(items[:half], per_second=80),
            first_kill_when=lambda: decided() >= 100,
            phase2=lambda: feed.paced(items[half:], per_second=80),
            second_kill_when=lambda: decided() >= 400,
            drained=drained,
            alive=decisions.check_alive,
            status=lambda: f"{decided()} calls decided",
        )
    finally:
        await feed.stop()
        await decisions.stop()
    return run


# --- dispatch -----------------------------------------------------------------------------

DISPATCH_CALLS = 200
CRT_BEATS = ("111", "214", "411", "512", "113", "223")


def _dispatch_decisions() -> list[Any]:
    out = []
    for i in range(DISPATCH_CALLS):
        at = T0 + timedelta(seconds=i)
        cor = i % 3 == 2
        call = call_received(
            call_id=f"D-{i}",
            event_id=f"dc-{i}",
            call_type="Mental Health Crisis" if cor else "Welfare Check",
            weapon_involved=cor,
            beat=CRT_BEATS[i % len(CRT_BEATS)],
            occurred_at=at,
            priority=i % 3,
        )
        decision = decide(call, POLICY, event_id=decision_id(call.event_id, call.call_id), now=at)
        assert decision.route == ("cor" if cor else "crt")
        out.append(decision)
    return out


class Responders:
    """Responder apps: each assignment is answered en route, on scene, cleared.

    Report times move forward per team by 100 ms steps from the assignment's time, so event
    time advances slowly and no queued call waits the policy's 10 minutes: the expected
    outcome is that every call is assigned exactly once and cleared.
    """

    def __init__(self, feed: Feed, events: TopicWatch) -> None:
        self.feed = feed
        self.events = events
        self.answered: set[str] = set()
        self.last_at: dict[str, datetime] = {}
        self.last_reported: dict[str, str] = {}
        self.cleared: set[str] = set()
        self._seen = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Responders:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def check_alive(self) -> None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            exc = self._task.exception()
            raise RuntimeError(f"the responder apps stopped: {exc!r}") from exc

    async def _run(self) -> None:
        while True:
            events = self.events.events()
            fresh, self._seen = events[self._seen :], len(events)
            for event in fresh:
                if event.event_type != "dispatch.assigned" or event.call_id in self.answered:
                    continue
                self.answered.add(event.call_id)
                await self._answer(event)
            await self.feed.producer.flush()
            await asyncio.sleep(0.05)

    async def _answer(self, assigned: DispatchEvent) -> None:
        team, call = assigned.team_id, assigned.call_id
        assert team is not None
        at = max(assigned.occurred_at, self.last_at.get(team, assigned.occurred_at))
        for step, status in enumerate(("en_route", "on_scene", "cleared"), start=1):
            when = at + timedelta(milliseconds=100 * step)
            report = UnitStatusReport(
                team_id=team,
                status=status,  # type: ignore[arg-type]
                call_id=call,
                occurred_at=when,
                event_id=f"r-{call}-{status}",
            )
            await self.feed.send(UNITS_STATUS, team, report)
            self.last_at[team] = when
            self.last_reported[team] = status
        self.cleared.add(call)


async def run_dispatch(settings: HeartSettings, log_dir: Path) -> Run:
    scoped = await _scoped(settings, f"chaos-dsp-{log_dir.name}.")
    run = Run()
    decisions = _dispatch_decisions()
    run.expected = {"calls": {d.call_id for d in decisions}}
    events = await TopicWatch(scoped, DISPATCH_EVENTS).start()
    audit = await TopicWatch(scoped, UNITS_AUDIT).start()
    dead = await TopicWatch(scoped, DEADLETTER).start()
    run.watches.update(events=events, audit=audit, dead=dead)
    feed = await Feed(scoped).start()
    responders = Responders(feed, events).start()
    half = DISPATCH_CALLS // 2
    items = [(TRIAGE_DECISIONS, d.call_id, d) for d in decisions]

    def assigned() -> int:
        return len({e.call_id for e in of_type(events.events(), "dispatch.assigned")})

    def helpers_alive() -> None:
        for helper in (events, audit, dead, responders):
            helper.check_alive()

    async def drained() -> None:
        calls = run.expected["calls"]
        try:
            await events.wait(
                lambda w: (
                    {e.call_id for e in of_type(w.events(), "dispatch.cleared")} >= calls
                    or bool(of_type(w.events(), "dispatch.fallback"))
                ),
                timeout=90,
                what="every call cleared",
            )
        except TimeoutError as exc:
            seen = distinct(events.events())
            cleared = {e.call_id for e in of_type(seen, "dispatch.cleared")}
            stuck = sorted(calls - cleared, key=lambda c: int(c.split("-")[1]))
            trail = {c: [e.event_type for e in seen if e.call_id == c] for c in stuck[:6]}
            last: dict[str, str] = {}
            for a in distinct(audit.events()):
                last[a.team_id] = f"{a.to_status} ({a.call_id})"
            refused = Counter(
                (DeadLetter.from_headers(r.headers).reason, r.key) for r in dead.records
            )
            raise AssertionError(
                f"{exc}: {len(stuck)} calls not cleared, e.g. {trail}; teams per the audit "
                f"trail: {last}; responders last reported {responders.last_reported}; "
                f"dead letters: {dict(refused)}"
            ) from None
        await events.quiet(3.0)
        await audit.quiet(1.0)

    try:
        await _chaos(
            run,
            "dispatch",
            scoped,
            log_dir,
            EVENT_CLOCK,
            phase1=lambda: feed.paced(items[:half], per_second=25, chunk=5),
            first_kill_when=lambda: assigned() >= 30,
            phase2=lambda: feed.paced(items[half:], per_second=25, chunk=5),
            second_kill_when=lambda: assigned() >= half + 30,
            drained=drained,
            alive=helpers_alive,
            status=lambda: (
                f"{assigned()} calls assigned, "
                f"{len(of_type(distinct(events.events()), 'dispatch.queued'))} queued, "
                f"responders answered {len(responders.answered)} and cleared "
                f"{len(responders.cleared)}, teams last reported {responders.last_reported}, "
                f"{len(dead.records)} dead letters"
            ),
        )
        run.expected["last_reported"] = dict(responders.last_reported)
    finally:
        await responders.stop()
        await feed.stop()
        await events.stop()
        await audit.stop()
        await dead.stop()
    return run


# --- navigation ---------------------------------------------------------------------------


def _local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=NY)


FRIDAY_16 = _local(2024, 7, 19, 16)
SATURDAY_22 = _local(2024, 7, 20, 22)
MONDAY_0900 = _local(2024, 7, 22, 9)
MONDAY_0910 = _local(2024, 7, 22, 9, 10)
MONDAY_1200 = _local(2024, 7, 22, 12)
CRT_CONTACTS = 240
#: Longest wait for the next due follow-up before the stage counts as stalled.
STALL_S = 60.0
CCD_CONTACTS = 60


def _pulse_keys(tag: str) -> list[str]:
    """One key per partition of the navigation commands (keyed by call id)."""
    return key_per_partition(f"pulse-{tag}", NAVIGATION_COMMANDS.partitions)


class Pulses:
    """Police-route ``dispatch.cleared`` events into every partition, once a second: no
    follow-up, but event time reaches ``at`` wherever a case lives, whichever worker owns
    the partition now (an event clock is per process and not recovered on failover)."""

    def __init__(self, feed: Feed, at: datetime, tag: str) -> None:
        self.feed, self.at, self.keys = feed, at, _pulse_keys(tag)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Pulses:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        n = 0
        while True:
            for key in self.keys:
                pulse = DispatchEvent(
                    event_type="dispatch.cleared",
                    occurred_at=self.at,
                    call_id=key,
                    route="police",
                    team_id="CRT-1",
                    event_id=f"{key}-{n}",
                )
                await self.feed.send(DISPATCH_CLEARED, key, pulse)
            await self.feed.producer.flush()
            n += 1
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _navigation_contacts() -> tuple[list[Any], set[str], set[str]]:
    """Team contacts (Saturday night) and CCD phone contacts (Friday afternoon)."""
    items: list[Any] = []
    crt = set()
    for i in range(CRT_CONTACTS):
        call_id = f"N-{i}"
        crt.add(call_id)
        cleared = DispatchEvent(
            event_type="dispatch.cleared",
            occurred_at=SATURDAY_22 + timedelta(seconds=i),
            call_id=call_id,
            route="crt",
            team_id=f"CRT-{i % 4 + 1}",
            event_id=f"cleared-{call_id}",
        )
        # Keyed by call as dispatch sends it; every third by team, as a producer that
        # partitions its own way might: those take the hop through the commands topic.
        key = cleared.team_id if i % 3 == 0 else call_id
        items.append((DISPATCH_CLEARED, key, cleared))
        if i % 10 == 0:
            items.append((DISPATCH_CLEARED, key, cleared))  # redelivered
    ccd = set()
    for i in range(CCD_CONTACTS):
        call_id = f"P-{i}"
        ccd.add(call_id)
        # Triage relays the CAD's close of a phone-resolved call as a closure.
        closure = TriageClosure(
            call_id=call_id,
            occurred_at=FRIDAY_16 + timedelta(minutes=40, seconds=i),
            route="ccd",
            revision=1,
            decision_id=f"pd-{i}",
            source_event_id=f"pclosed-{i}",
            event_id=f"pclosure-{i}",
        )
        items.append((TRIAGE_CLOSURES, call_id, closure))
    return items, crt, ccd


async def run_navigation(settings: HeartSettings, log_dir: Path) -> Run:
    scoped = await _scoped(settings, f"chaos-nav-{log_dir.name}.")
    # Small sweep batches spread the firing of due timers over several ticks, so that a
    # worker is killed while timers are firing.
    policy_file = log_dir / "policy-small-sweeps.toml"
    text = default_policy_path().read_text()
    assert "sweep_batch_limit = 100" in text
    policy_file.write_text(text.replace("sweep_batch_limit = 100", "sweep_batch_limit = 4"))
    env = {**EVENT_CLOCK, "HEART_POLICY": str(policy_file)}

    run = Run()
    contacts, crt, ccd = _navigation_contacts()
    retried = {f"N-{i}" for i in range(0, 100)}
    reached = {f"N-{i}" for i in range(100, 160)}
    run.expected = {
        "cases": crt | ccd,
        "due": {f"{c}:1" for c in crt | ccd} | {f"{c}:2" for c in retried},
        # CCD contacts on Friday 16:40 are overdue Sunday 16:40; Saturday 22:00 team contacts
        # are due Monday 22:00, after the last moment the stage is shown (Monday 12:00).
        "overdue": ccd,
    }
    timers = await TopicWatch(scoped, FOLLOWUP_TIMERS).start()
    tasks = await TopicWatch(scoped, FOLLOWUP_TASKS).start()
    run.watches.update(timers=timers, tasks=tasks)
    feed = await Feed(scoped).start()
    pulses: list[Pulses] = []

    def watches_alive() -> None:
        timers.check_alive()
        tasks.check_alive()

    def due(attempt: int) -> int:
        return len(
            {
                e.timer_id
                for e in of_type(tasks.events(), "followup.due")
                if e.timer_id.endswith(f":{attempt}")
            }
        )

    async def phase2() -> None:
        # Monday 09:00: every first attempt comes due, fired in batches of 4 per partition.
        try:
            await timers.wait(
                lambda w: len({e.case_id for e in w.events()}) >= len(run.expected["cases"]),
                timeout=60,
                what="every follow-up scheduled",
            )
        except TimeoutError as exc:
            missing = sorted(run.expected["cases"] - {e.case_id for e in timers.events()})
            raise AssertionError(
                f"{exc}: {len(missing)} contacts never scheduled, e.g. {missing[:8]}"
            ) from None
        pulses.append(Pulses(feed, MONDAY_0900, "mon9").start())

    def missing(attempt: int, cases: set[str]) -> Callable[[TopicWatch], str]:
        """The timers of ``attempt`` not fired yet, by the partition that owns them."""

        def describe(watch: TopicWatch) -> str:
            fired = {e.timer_id for e in of_type(watch.events(), "followup.due")}
            left = sorted(c for c in cases if f"{c}:{attempt}" not in fired)
            by_partition: dict[int, list[str]] = defaultdict(list)
            for case in left:
                by_partition[key_partition(case, NAVIGATION_COMMANDS.partitions)].append(case)
            parts = {p: f"{len(cs)}, e.g. {cs[:3]}" for p, cs in sorted(by_partition.items())}
            return f"{len(left)} timers :{attempt} not fired, by partition {parts}"

        return describe

    async def drained() -> None:
        # Slow but moving is a loaded machine; a stall longer than a rebalance (kill
        # detection after the 6 s session timeout, then the table's recovery: 5-15 s
        # measured under two CPU burners per core) is a stage that stopped firing.
        await tasks.wait_progress(
            lambda _: due(1) >= len(crt | ccd),
            lambda _: due(1),
            stall=STALL_S,
            what="every first attempt due",
            missing=missing(1, crt | ccd),
        )
        await pulses[-1].stop()
        outcomes = [
            FollowupOutcome(
                case_id=c,
                outcome="unable_to_reach" if c in retried else "reached",
                occurred_at=MONDAY_0910,
                event_id=f"out-{c}",
            )
            for c in sorted(retried | reached)
        ]
        for outcome in outcomes:
            await feed.send(FOLLOWUP_OUTCOMES, outcome.case_id, outcome)
        await feed.producer.flush()
        # Retries are due two staffed hours after 09:10; show the stage Monday 12:00.
        await asyncio.sleep(2.0)
        pulses.append(Pulses(feed, MONDAY_1200, "mon12").start())
        await tasks.wait_progress(
            lambda _: due(2) >= len(retried),
            lambda _: due(2),
            stall=STALL_S,
            what="every retry due",
            missing=missing(2, retried),
        )
        await pulses[-1].stop()
        await tasks.quiet(3.0)
        await timers.quiet(0.5)

    try:
        await _chaos(
            run,
            "navigation",
            scoped,
            log_dir,
            env,
            phase1=lambda: feed.paced(contacts, per_second=60, chunk=10),
            first_kill_when=lambda: len(timers.records) >= 80,
            phase2=phase2,
            second_kill_when=lambda: due(1) >= 60,
            drained=drained,
            alive=watches_alive,
            status=lambda: f"{len(timers.records)} timer records, {due(1)} first attempts due",
        )
    finally:
        for p in pulses:
            await p.stop()
        await feed.stop()
        await timers.stop()
        await tasks.stop()
    return run


# --- the tests: each judges the scenario tests/reliability/conftest.py started ----------


async def test_triage_every_call_has_exactly_one_effective_decision(
    background: Background,
) -> None:
    run: Run = await background.result("chaos-triage")
    decisions = run.events("decisions")
    unique = distinct(decisions)
    # Duplicates on the topic are allowed, but only as exact repeats of one event_id.
    by_id: dict[str, Any] = {}
    for d in decisions:
        if d.event_id in by_id:
            assert d.model_dump(exclude={"occurred_at"}) == by_id[d.event_id].model_dump(
                exclude={"occurred_at"}
            ), "a repeated event_id must carry the same decision"
        by_id[d.event_id] = d
    per_call: dict[str, list[Any]] = defaultdict(list)
    for d in unique:
        per_call[d.call_id].append(d)
    assert set(per_call) == set(run.expected), "every call decided, no unknown call"
    for call_id, (event_id, revision, route) in run.expected.items():
        mine = per_call[call_id]
        top = max(d.revision for d in mine)
        effective = [d for d in mine if d.revision == top]
        assert len(effective) == 1, f"{call_id}: {len(effective)} effective decisions"
        assert (effective[0].event_id, top, effective[0].route) == (event_id, revision, route)
        # One decision per revision, and every later one names the one it replaces.
        assert sorted(d.revision for d in mine) == list(range(1, revision + 1)), call_id
        if revision == 2:
            first = next(d for d in mine if d.revision == 1)
            assert effective[0].supersedes == first.event_id
    assert len(decisions) >= len(unique)
    print(
        f"triage chaos: {len(unique)} distinct decisions, "
        f"{len(decisions) - len(unique)} redelivered duplicates; {run.kills}"
    )


async def test_dispatch_no_call_gets_two_teams_and_no_team_is_stuck(
    background: Background,
) -> None:
    run: Run = await background.result("chaos-dispatch")
    events = run.events("events")
    unique = distinct(events)
    calls: set[str] = run.expected["calls"]

    # No call has more than one team: one assignment event per call, one team.
    assigned = of_type(unique, "dispatch.assigned")
    teams_per_call: dict[str, set[str | None]] = defaultdict(set)
    for e in assigned:
        teams_per_call[e.call_id].add(e.team_id)
    assert all(len(t) == 1 for t in teams_per_call.values()), {
        c: t for c, t in teams_per_call.items() if len(t) > 1
    }
    assert all(len(ids) == 1 for ids in ids_by(assigned, "call_id").values())
    # Expected outcome: more calls than teams, responders clearing, no wait near 10 min:
    # every call is assigned once, cleared once, and none falls back to police.
    fallbacks = of_type(unique, "dispatch.fallback", "dispatch.cancelled")
    assert fallbacks == [], Counter((e.event_type, e.reason) for e in fallbacks)
    assert set(teams_per_call) == calls
    cleared = ids_by(of_type(unique, "dispatch.cleared"), "call_id")
    assert set(cleared) == calls and all(len(ids) == 1 for ids in cleared.values())

    # A team never holds two calls: per team (one partition, in order), assigned and
    # cleared alternate.
    holding: dict[str, str | None] = {}
    for e in unique:
        if e.team_id is None or e.event_type not in ("dispatch.assigned", "dispatch.cleared"):
            continue
        if e.event_type == "dispatch.assigned":
            assert holding.get(e.team_id) is None, f"{e.team_id} sent to {e.call_id} while busy"
            holding[e.team_id] = e.call_id
        else:
            assert holding.get(e.team_id) == e.call_id
            holding[e.team_id] = None

    # Every report the responders sent was accepted once; a redelivered one (a replay
    # after a crash) must be recognised as a repeat, not refused.
    accepted = {a.cause_event_id for a in distinct(run.events("audit"))}
    refused = [
        (DeadLetter.from_headers(r.headers).reason, orjson.loads(r.value)["event_id"] in accepted)
        for r in run.watches["dead"].records
    ]
    assert refused == [], (
        f"{len(refused)} reports refused: "
        f"{Counter(reason for reason, _ in refused)}, of which "
        f"{sum(replay for _, replay in refused)} were replays of reports already applied"
    )

    # No team is stuck in a state it did not report: replaying the audit trail gives each
    # team's final state, and it is where its own last report (cleared) left it.
    audit = distinct(run.events("audit"))
    final: dict[str, str] = {}
    for record in audit:
        previous = final.get(record.team_id, "available")
        assert record.from_status == previous, (
            f"{record.team_id}: audit jumps from {previous} via {record.from_status}"
        )
        final[record.team_id] = record.to_status
    last_reported: dict[str, str] = run.expected["last_reported"]
    for team, status in last_reported.items():
        assert status == "cleared"
        assert final[team] == "available", f"{team} stuck in {final[team]}"
    print(
        f"dispatch chaos: {len(assigned)} assignments over {len(final)} teams, "
        f"{len(events) - len(unique)} redelivered duplicates; {run.kills}"
    )


async def test_navigation_every_due_follow_up_fires_exactly_once(
    background: Background,
) -> None:
    run: Run = await background.result("chaos-navigation")
    scheduled = distinct(run.events("timers"))
    per_case = ids_by(scheduled, "case_id")
    assert set(per_case) == run.expected["cases"]
    assert all(len(ids) == 1 for ids in per_case.values()), "a case scheduled twice"

    tasks = run.events("tasks")
    unique = distinct(tasks)
    due = ids_by(of_type(unique, "followup.due"), "timer_id")
    assert set(due) == run.expected["due"], sorted(set(due) ^ run.expected["due"])[:20]
    twice = {t: n for t, ids in due.items() if (n := len(ids)) != 1}
    assert twice == {}, "a timer fired more than once with different event ids"
    overdue = ids_by(of_type(unique, "followup.overdue"), "case_id")
    assert all(len(ids) == 1 for ids in overdue.values())
    assert set(overdue) == run.expected["overdue"], (
        f"unexpected overdue: {sorted(set(overdue) - run.expected['overdue'])[:10]}, "
        f"missing: {sorted(run.expected['overdue'] - set(overdue))[:10]}"
    )
    print(
        f"navigation chaos: {len(due)} timers fired once each, {len(overdue)} overdue, "
        f"{len(tasks) - len(unique)} redelivered duplicates; {run.kills}"
    )
