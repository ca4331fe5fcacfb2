"""A redrive, run twice, has exactly-once effects.

The CAD sends updates for calls before the calls themselves (an out-of-order export):
triage dead-letters each update as ``unknown_call``. Once the calls have arrived,
``heart deadletter redrive --reason unknown_call`` (the real command, against the embedded
broker and a real triage worker) sends the updates back: each call is re-decided once.
Run again, the same updates are recognised by their event_id: the same decisions are sent
again (same event_id, so a consumer drops them) and nothing is re-decided or dead-lettered
anew. Malformed messages in the same dead-letter topic are not selected and stay put.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heart.schemas import CallUpdated, DeadLetter, TriageDecision
from heart.streams.admin import create_topics
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, DEADLETTER, TRIAGE_DECISIONS
from tests.factories import call_received
from tests.kafka import ROOT, Worker
from tests.reliability.support import Feed, TopicWatch, stop_worker

pytestmark = pytest.mark.broker

CALLS, GARBAGE = 20, 10


def heart(settings: HeartSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HEART_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HEART_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "heart.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_redrive_run_twice_has_exactly_once_effects(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"redrive{unique}."})
    await create_topics(scoped)
    worker = Worker("triage", scoped, tmp_path).start()
    watches = {
        spec.name: await TopicWatch(scoped, spec).start()
        for spec in (CAD_CALLS, TRIAGE_DECISIONS, DEADLETTER)
    }
    decisions, dead, cad = (
        watches[TRIAGE_DECISIONS.name],
        watches[DEADLETTER.name],
        watches[CAD_CALLS.name],
    )
    feed = await Feed(scoped).start()
    now = datetime.now(UTC)
    ids = [f"U-{i}" for i in range(CALLS)]
    updates = {
        c: CallUpdated(
            call_id=c,
            occurred_at=now + timedelta(seconds=1),
            weapon_involved=True,
            event_id=f"upd-{c}",
        )
        for c in ids
    }
    try:
        await worker.wait_ready(90)
        # The updates first (the calls are unknown yet), with some garbage.
        for c in ids:
            await feed.send(CAD_CALLS, c, updates[c])
        for i in range(GARBAGE):
            await feed.send(CAD_CALLS, f"JUNK-{i}", b"\x00not a call")
        await feed.producer.flush()
        await dead.wait(lambda w: len(w.records) >= CALLS + GARBAGE, timeout=30, what="letters")
        for c in ids:
            await feed.send(CAD_CALLS, c, call_received(call_id=c, occurred_at=now))
        await feed.producer.flush()
        await decisions.wait(lambda w: len(w.records) >= CALLS, timeout=30, what="decisions")
        await cad.wait(lambda w: len(w.records) >= 2 * CALLS + GARBAGE, timeout=30, what="cad")

        dry = heart(scoped, "deadletter", "redrive", "--reason", "unknown_call", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"dry run: would send {CALLS} dead letters" in dry.stdout
        assert f"{CALLS}  to {CAD_CALLS.full_name(scoped.topic_prefix)}" in dry.stdout
        await decisions.quiet(1.5)
        assert len(cad.records) == 2 * CALLS + GARBAGE, "a dry run sends nothing"
        assert len(decisions.records) == CALLS

        first = heart(scoped, "deadletter", "redrive", "--reason", "unknown_call", "--yes")
        assert first.returncode == 0, first.stderr
        assert f"sent {CALLS}" in first.stdout
        await decisions.wait(lambda w: len(w.records) >= 2 * CALLS, timeout=30, what="redecided")
        await decisions.quiet(1.5)
        second = heart(scoped, "deadletter", "redrive", "--reason", "unknown_call", "--yes")
        assert second.returncode == 0, second.stderr
        await decisions.wait(lambda w: len(w.records) >= 3 * CALLS, timeout=30, what="repeats")
        await decisions.quiet(2.0)
        await dead.quiet(1.0)
        summary = heart(scoped, "deadletter", "summary")
    finally:
        await feed.stop()
        stop_worker(worker)
        for watch in watches.values():
            await watch.stop()

    # What a consumer sees, de-duplicating on event_id: each call decided, then re-decided
    # once for the weapon, whatever the number of redrives.
    revisions: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for decision in decisions.events():
        assert isinstance(decision, TriageDecision)
        revisions[decision.call_id][decision.revision].add(decision.event_id)
    assert set(revisions) == set(ids)
    for c in ids:
        assert {rev: len(e) for rev, e in revisions[c].items()} == {1: 1, 2: 1}, c
    redecided = [d for d in decisions.events() if d.revision == 2]
    assert len(redecided) == 2 * CALLS, "the second redrive re-sends, with the same event_id"
    assert all("weapon_reported" in d.reasons for d in redecided)
    # Nothing dead-lettered anew; the garbage was not sent back.
    assert len(dead.records) == CALLS + GARBAGE
    redriven = [r for r in cad.records if any(k == "heart.redriven_from" for k, _ in r.headers)]
    assert len(redriven) == 2 * CALLS
    assert {r.key.decode() for r in redriven} == set(ids)
    originals = {r.key.decode(): r.value for r in dead.records if r.key.decode().startswith("U-")}
    assert all(r.value == originals[r.key.decode()] for r in redriven), "sent back unchanged"
    letters = [DeadLetter.from_headers(r.headers) for r in dead.records]
    assert sorted({(x.stage, x.reason) for x in letters}) == [
        ("triage", "invalid_json"),
        ("triage", "unknown_call"),
    ]
    assert summary.returncode == 0, summary.stderr
    assert f"{CALLS + GARBAGE} dead letters on" in summary.stdout
