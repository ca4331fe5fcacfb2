"""Bug 5: an event dated far in the future is refused, not taken at its word.

A responder app with a broken clock sends one report dated 2999. Accepted, it would make
every later correct report of that team stale, locking the team in its state; a call
dated 2999 would be decided for hours of 2999 (and, on the event clock, move the stage's
time 975 years ahead). Both stages run as real workers on the wall clock here.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from heart.schemas import DeadLetter, UnitStatusReport
from heart.streams.admin import create_topics
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, DEADLETTER, TRIAGE_DECISIONS, UNITS_AUDIT, UNITS_STATUS
from tests.factories import call_received
from tests.kafka import Worker
from tests.reliability.support import Feed, TopicWatch, stop_worker

pytestmark = pytest.mark.broker


async def test_far_future_timestamps_are_refused(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"future{unique}."})
    await create_topics(scoped)
    dead = await TopicWatch(scoped, DEADLETTER).start()
    audit = await TopicWatch(scoped, UNITS_AUDIT).start()
    decisions = await TopicWatch(scoped, TRIAGE_DECISIONS).start()
    feed = await Feed(scoped).start()
    workers = [Worker(s, scoped, tmp_path).start() for s in ("triage", "dispatch")]
    try:
        await asyncio.gather(*(w.wait_ready(90) for w in workers))
        now, far = datetime.now(UTC), datetime(2999, 1, 1, tzinfo=UTC)
        await feed.send(
            UNITS_STATUS,
            "COR-2",
            UnitStatusReport(team_id="COR-2", status="available", occurred_at=far, event_id="f1"),
        )
        await feed.send(
            UNITS_STATUS,
            "COR-2",
            UnitStatusReport(
                team_id="COR-2", status="out_of_service", occurred_at=now, event_id="f2"
            ),
        )
        await feed.send(CAD_CALLS, "FUT-1", call_received(call_id="FUT-1", occurred_at=far))
        await feed.send(CAD_CALLS, "NOW-1", call_received(call_id="NOW-1", occurred_at=now))
        await feed.producer.flush()
        await decisions.wait(
            lambda w: any(r.key == b"NOW-1" for r in w.records), timeout=30, what="NOW-1"
        )
        # Without the fix the change never comes (the team is locked): the asserts say so.
        with contextlib.suppress(TimeoutError):
            await audit.wait(lambda w: len(w.records) >= 1, timeout=15, what="COR-2's change")
        await asyncio.sleep(3.0)  # a wrong decision for FUT-1 has time to show up
    finally:
        await feed.stop()
        for w in workers:
            stop_worker(w)
        for watch in (dead, audit, decisions):
            await watch.stop()
    reasons = {(r.key.decode(), DeadLetter.from_headers(r.headers).reason) for r in dead.records}
    changes = [(a.team_id, a.to_status) for a in audit.events()]
    assert ("COR-2", "stale_report") not in reasons, "the team was locked out"
    assert ("COR-2", "out_of_service") in changes
    assert "FUT-1" not in {r.key.decode() for r in decisions.records}, "FUT-1 was decided"
    assert {("COR-2", "future_timestamp"), ("FUT-1", "future_timestamp")} <= reasons
    for worker in workers:
        # The factory's planted caller; a bare "555" also matches a random metrics port.
        log = worker.log()
        assert "Jordan" not in log, worker.stage
        assert "555-0100" not in log and "5550100" not in log, worker.stage
