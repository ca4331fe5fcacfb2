"""A stage restarted on event time must not judge its state by the wall clock.

``HEART_CLOCK=event`` (replays, ``heart up``'s simulation) makes a stage's "now" the newest
event time it has seen. That clock lives in the process: a restarted (or newly assigned)
worker has seen no event yet, and ``EventClock.now()`` then answers the wall clock. Its
periodic ticks (dispatch's queue release, navigation's timer sweep) run at once, before
any event arrives, and so judge every queued call and every open follow-up as of today's
date, years after the events being replayed.

Both tests set up state on event time, SIGKILL the worker once its outputs are committed,
start a new one and send nothing: event time has not moved, so nothing may be released.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from heart.agents.triage.decide import decide
from heart.agents.triage.state import decision_id
from heart.policy import load_policy
from heart.schemas import DispatchEvent
from heart.streams.admin import create_topics
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    DISPATCH_CLEARED,
    DISPATCH_EVENTS,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    TRIAGE_DECISIONS,
)
from tests.factories import T0, call_received
from tests.kafka import Worker
from tests.reliability.conftest import Background
from tests.reliability.support import Feed, TopicWatch, of_type, stop_worker

pytestmark = pytest.mark.broker
POLICY = load_policy()
EVENT_CLOCK = {"HEART_CLOCK": "event"}
NY = ZoneInfo("America/New_York")


async def _scoped(settings: HeartSettings, prefix: str) -> HeartSettings:
    scoped = settings.model_copy(update={"topic_prefix": prefix})
    await create_topics(scoped)
    return scoped


async def dispatch_after_restart(settings: HeartSettings, tmp_path: Path) -> list[DispatchEvent]:
    """Calls released after a restart while event time stood still (should be none)."""
    scoped = await _scoped(settings, f"clkd{tmp_path.name}.")
    events = await TopicWatch(scoped, DISPATCH_EVENTS).start()
    feed = await Feed(scoped).start()
    first = Worker("dispatch", scoped, tmp_path, **EVENT_CLOCK).start()
    second: Worker | None = None
    try:
        await first.wait_ready(90)
        # Six CRT calls for four CRT teams, Monday 10:00: four assigned, two wait.
        for i, beat in enumerate(("111", "214", "411", "512", "113", "223")):
            call = call_received(call_id=f"Q-{i}", event_id=f"q-{i}", beat=beat, occurred_at=T0)
            d = decide(call, POLICY, event_id=decision_id(call.event_id, call.call_id), now=T0)
            await feed.send(TRIAGE_DECISIONS, d.call_id, d)
        await feed.producer.flush()
        await events.wait(
            lambda w: len(of_type(w.events(), "dispatch.queued")) >= 2,
            timeout=60,
            what="two calls queued",
        )
        await asyncio.sleep(3.0)  # offsets and the table's changelog are committed
        first.kill(signal.SIGKILL)

        second = Worker("dispatch", scoped, tmp_path, **EVENT_CLOCK).start()
        await second.wait_ready(90)
        await asyncio.sleep(6.0)  # several ticks; no event arrives, event time stands still
        return of_type(events.events(), "dispatch.fallback", "dispatch.cancelled")
    finally:
        for w in (first, second):
            if w is not None and w.proc is not None and w.proc.poll() is None:
                stop_worker(w)
        await feed.stop()
        await events.stop()


async def navigation_after_restart(settings: HeartSettings, tmp_path: Path) -> list[Any]:
    """Follow-up tasks fired after a restart while event time stood still (should be none)."""
    scoped = await _scoped(settings, f"clkn{tmp_path.name}.")
    timers = await TopicWatch(scoped, FOLLOWUP_TIMERS).start()
    tasks = await TopicWatch(scoped, FOLLOWUP_TASKS).start()
    feed = await Feed(scoped).start()
    saturday_night = datetime(2024, 7, 20, 22, tzinfo=NY)  # released Monday 08:30
    first = Worker("navigation", scoped, tmp_path, **EVENT_CLOCK).start()
    second: Worker | None = None
    try:
        await first.wait_ready(90)
        for i in range(12):
            cleared = DispatchEvent(
                event_type="dispatch.cleared",
                occurred_at=saturday_night + timedelta(minutes=i),
                call_id=f"S-{i}",
                route="crt",
                team_id="CRT-1",
                event_id=f"s-cleared-{i}",
            )
            await feed.send(DISPATCH_CLEARED, cleared.call_id, cleared)
        await feed.producer.flush()
        await timers.wait(lambda w: len(w.records) >= 12, timeout=60, what="12 follow-ups")
        await asyncio.sleep(3.0)
        first.kill(signal.SIGKILL)

        second = Worker("navigation", scoped, tmp_path, **EVENT_CLOCK).start()
        await second.wait_ready(90)
        await asyncio.sleep(6.0)
        return tasks.events()
    finally:
        for w in (first, second):
            if w is not None and w.proc is not None and w.proc.poll() is None:
                stop_worker(w)
        await feed.stop()
        await timers.stop()
        await tasks.stop()


async def test_restarted_dispatch_does_not_release_queued_calls_by_wall_time(
    background: Background,
) -> None:
    released = await background.result("clock-dispatch")
    assert released == [], "a restarted dispatch released queued calls by the wall clock: " + (
        ", ".join(f"{e.call_id} ({e.reason}, waited {e.queue_wait_s:.0f}s)" for e in released)
    )


async def test_restarted_navigation_does_not_fire_timers_by_wall_time(
    background: Background,
) -> None:
    fired = await background.result("clock-navigation")
    assert fired == [], (
        f"a restarted navigation fired {len(of_type(fired, 'followup.due'))} due and "
        f"{len(of_type(fired, 'followup.overdue'))} overdue on Saturday night's event time "
        "(it judged them by the wall clock)"
    )
