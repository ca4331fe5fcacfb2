"""The triage stage as a real worker process against the embedded broker."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from heart.schemas import CallClosed, CallUpdated, DeadLetter, TriageClosure, TriageDecision
from heart.schemas.deadletter import H_OFFSET, H_PARTITION, H_STAGE, H_TOPIC
from heart.streams.admin import create_topics
from heart.streams.codec import decode
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, DEADLETTER, TRIAGE_CLOSURES, TRIAGE_DECISIONS
from tests.factories import T0, call_received
from tests.kafka import Worker, key_partition, produce, read_topic

pytestmark = pytest.mark.broker
#: The triage table's changelog, read like any topic (its name follows the app id).
CHANGELOG = replace(CAD_CALLS, name="heart-triage-calls-changelog")


@pytest.fixture
async def scoped(settings: HeartSettings, unique: str) -> HeartSettings:
    scoped = settings.model_copy(update={"topic_prefix": f"tri{unique}."})
    await create_topics(scoped)
    return scoped


#: The factories' calls are from July 2024: judged on the wall clock they are stale.
EVENT_CLOCK = {"HEART_CLOCK": "event"}


@pytest.fixture
async def triage(scoped: HeartSettings, tmp_path: Path) -> AsyncIterator[Worker]:
    worker = Worker("triage", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await worker.wait_ready()
        yield worker
    finally:
        worker.kill(signal.SIGTERM)


def decisions(records) -> list[TriageDecision]:
    return [decode(TriageDecision, r.value) for r in records]


async def test_bad_messages_go_to_deadletter_and_good_ones_are_decided(
    scoped: HeartSettings, triage: Worker
) -> None:
    good = call_received(call_id="G-1")
    naive = orjson.loads(call_received(call_id="B-2").model_dump_json())
    naive["occurred_at"] = "2024-07-15T10:00:00"
    missing = orjson.loads(call_received(call_id="B-3").model_dump_json())
    del missing["call_type"]
    wrong = orjson.loads(call_received(call_id="B-4").model_dump_json())
    wrong["needs_in_person"] = "perhaps"
    bad = [
        ("B-1", b"{this is not json", "invalid_json", "JSONDecodeError"),
        ("B-2", orjson.dumps(naive), "naive_timestamp", "ValidationError"),
        ("B-3", orjson.dumps(missing), "missing_field", "ValidationError"),
        ("B-4", orjson.dumps(wrong), "invalid_event", "ValidationError"),
    ]
    await produce(scoped, CAD_CALLS, [(k, v) for k, v, _, _ in bad] + [("G-1", good)])

    out = await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 1, settle=1.0)
    [decision] = decisions(out)
    assert decision.call_id == "G-1" and decision.route == "crt"
    assert decision.source_event_id == good.event_id

    dead = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 4, settle=1.0)
    assert len(dead) == 4
    by_key = {r.key.decode(): r for r in dead}
    for key, value, reason, error_class in bad:
        record = by_key[key]
        assert record.value == value, "the dead letter carries the original bytes unchanged"
        headers = dict(record.headers)
        assert headers[H_TOPIC] == CAD_CALLS.full_name(scoped.topic_prefix).encode()
        assert headers[H_STAGE] == b"triage"
        assert int(headers[H_PARTITION]) >= 0 and int(headers[H_OFFSET]) >= 0
        letter = DeadLetter.from_headers(record.headers)
        assert (letter.reason, letter.error_class) == (reason, error_class)
        assert letter.error_message


async def test_duplicates_suppressed_and_updates_supersede(
    scoped: HeartSettings, triage: Worker
) -> None:
    first = call_received(call_id="D-1", call_type="Mental Health Crisis")
    await produce(scoped, CAD_CALLS, [("D-1", first), ("D-1", first)])
    out = await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 2, settle=1.5)
    # The redelivery sends the same decision again (in case it was lost in a crash):
    # the same record, which a consumer drops by its event id.
    assert len(out) == 2 and out[0].value == out[1].value
    original = decisions(out)[0]
    assert original.route == "crt" and original.revision == 1

    update = CallUpdated(call_id="D-1", occurred_at=T0, weapon_involved=True)
    await produce(scoped, CAD_CALLS, [("D-1", update), ("D-1", update)])
    out = await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 4, settle=1.5)
    assert len(out) == 4 and out[2].value == out[3].value
    assert len({d.event_id for d in decisions(out)}) == 2, "no third decision"
    newer = decisions(out)[2]
    assert newer.route == "cor"
    assert newer.revision == 2
    assert newer.supersedes == original.event_id
    assert "weapon_reported" in newer.reasons


async def test_unknown_call_update_is_dead_lettered(scoped: HeartSettings, triage: Worker) -> None:
    update = CallUpdated(call_id="U-404", occurred_at=T0, weapon_involved=True)
    await produce(scoped, CAD_CALLS, [("U-404", update)])
    [record] = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 1, settle=0.5)
    assert DeadLetter.from_headers(record.headers).reason == "unknown_call"


async def test_a_phone_resolved_call_closed_by_the_cad_becomes_a_closure(
    scoped: HeartSettings, triage: Worker
) -> None:
    phone = call_received(call_id="P-1", call_type="Mental Health Crisis", needs_in_person=False)
    police = call_received(call_id="X-1", call_type="Burglary")
    closes = {
        key: CallClosed(
            call_id=key,
            occurred_at=T0 + timedelta(minutes=25),
            disposition="resolved_by_phone",
            followup_declined=key == "P-1",
            event_id=f"close-{key}",
        )
        for key in ("P-1", "X-1", "NEVER-SEEN")
    }
    await produce(scoped, CAD_CALLS, [("P-1", phone), ("X-1", police)])
    out = await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 2, settle=0.5)
    routes = {d.call_id: d for d in decisions(out)}
    assert (routes["P-1"].route, routes["X-1"].route) == ("ccd", "police")
    # Each close in its call's order, once redelivered: one closure, for the ccd call only.
    await produce(scoped, CAD_CALLS, [(k, v) for k, v in closes.items()] + [("P-1", closes["P-1"])])
    records = await read_topic(scoped, TRIAGE_CLOSURES, until=lambda r: len(r) >= 1, settle=1.5)
    [closure] = [decode(TriageClosure, r.value) for r in records]
    assert records[0].key == b"P-1"
    assert (closure.call_id, closure.route, closure.revision) == ("P-1", "ccd", 1)
    assert closure.decision_id == routes["P-1"].event_id
    assert closure.source_event_id == "close-P-1"
    assert closure.occurred_at == T0 + timedelta(minutes=25)
    assert (closure.disposition, closure.followup_declined) == ("resolved_by_phone", True)
    dead = await read_topic(scoped, DEADLETTER, until=lambda r: True, settle=0.5)
    assert dead == [], "a close, even of a call never seen, is not refused"


async def test_state_survives_sigkill(scoped: HeartSettings, tmp_path: Path) -> None:
    """After a crash, the changelog restores every call: a replayed call is not re-decided
    (its decision is sent again as it was, not made anew at a later time).

    The changelog is written in multi-record batches, the case where the embedded broker
    under-reports end offsets and an uncorrected recovery drops the tail.
    """
    calls = [call_received(call_id=f"K-{i}", event_id=f"k-{i}") for i in range(40)]
    worker = Worker("triage", scoped, tmp_path, **EVENT_CLOCK).start()
    await worker.wait_ready()
    await produce(scoped, CAD_CALLS, [(c.call_id, c) for c in calls])
    first = await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 40, settle=2.0)
    originals = {d.call_id: r.value for r, d in zip(first, decisions(first), strict=True)}
    worker.kill(signal.SIGKILL)

    restarted = Worker("triage", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await restarted.wait_ready()
        # The CAD redelivers every call, then sends one new call to prove the stage is live.
        await produce(
            scoped,
            CAD_CALLS,
            [(c.call_id, c) for c in calls] + [("K-new", call_received(call_id="K-new"))],
        )
        out = await read_topic(
            scoped,
            TRIAGE_DECISIONS,
            until=lambda r: any(d.call_id == "K-new" for d in decisions(r)),
            settle=2.0,
        )
    finally:
        restarted.kill(signal.SIGTERM)
    assert {d.call_id for d in decisions(out)} == {c.call_id for c in calls} | {"K-new"}
    remade = [
        d.call_id
        for r, d in zip(out, decisions(out), strict=True)
        if d.call_id != "K-new" and r.value != originals[d.call_id]
    ]
    assert remade == [], "decided anew (a later time) instead of restored and sent again"


async def test_on_event_time_an_idle_call_is_forgotten_and_stays_forgotten_after_a_crash(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    """Bug 8: a call whose last event is older than the retention is forgotten (a later
    update is an update for an unknown call), a recent one is kept, and the tombstone in
    the changelog holds across a SIGKILL and the table's recovery."""
    env = {"HEART_CLOCK": "event", "HEART_TRIAGE_CALL_RETENTION_H": "1"}
    minutes = lambda n: T0 + timedelta(minutes=n)  # noqa: E731
    worker = Worker("triage", scoped, tmp_path, **env).start()
    restarted: Worker | None = None
    try:
        await worker.wait_ready()
        # OLD-1 first, alone: its last touch is the clock when it is read (T0).
        await produce(scoped, CAD_CALLS, [("OLD-1", call_received(call_id="OLD-1"))])
        await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 1)
        recent = call_received(call_id="RECENT-1", occurred_at=minutes(50))
        later = call_received(call_id="NOW-1", occurred_at=minutes(90))
        await produce(scoped, CAD_CALLS, [("RECENT-1", recent), ("NOW-1", later)])
        await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 3)
        # Event time is now T0+90 min: OLD-1 has been idle for 90 min, RECENT-1 for 40.
        deadline = time.monotonic() + 30
        while "calls: forgot 1 entries" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            await asyncio.sleep(0.2)
        changelog = await read_topic(
            scoped,
            CHANGELOG,
            until=lambda r: any(x.key == b'"OLD-1"' and x.value is None for x in r),
        )
        assert {x.key for x in changelog if x.value is None} == {b'"OLD-1"'}
        await asyncio.sleep(2.0)  # the changelog and the input offsets are committed
        worker.kill(signal.SIGKILL)

        restarted = Worker("triage", scoped, tmp_path, **env).start()
        await restarted.wait_ready()
        updates = {
            c: CallUpdated(call_id=c, occurred_at=minutes(95), weapon_involved=True)
            for c in ("OLD-1", "RECENT-1")
        }
        # OLD-1's update alone first: it is the event that gives the restarted worker a
        # time, so no sweep can run before it is looked up; only the recovered tombstone
        # can make it unknown.
        await produce(scoped, CAD_CALLS, [("OLD-1", updates["OLD-1"])])
        dead = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 1)
        await produce(scoped, CAD_CALLS, [("RECENT-1", updates["RECENT-1"])])
        dead = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 1, settle=1.0)
        out = await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 4, settle=1.0)
    finally:
        for w in (worker, restarted):
            if w is not None and w.proc is not None and w.proc.poll() is None:
                w.kill(signal.SIGTERM)
    [letter] = [(r.key, DeadLetter.from_headers(r.headers).reason) for r in dead]
    assert letter == (b"OLD-1", "unknown_call")
    redecided = [d for d in decisions(out) if d.revision == 2]
    # The weapon re-decides the call the stage still knows (its route depends on hours).
    assert [(d.call_id, "weapon_reported" in d.reasons) for d in redecided] == [("RECENT-1", True)]
    assert sorted(d.call_id for d in decisions(out)) == ["NOW-1", "OLD-1", "RECENT-1", "RECENT-1"]


async def test_on_the_event_clock_a_call_read_after_newer_ones_of_its_partition_is_stale(
    scoped: HeartSettings, triage: Worker
) -> None:
    """Event time: a call is stale when the stage has read events of its own partition
    more than the policy's 10 minutes newer (the CAD delivered it late); a call whose
    partition has read nothing newer is not, however far other partitions have read."""
    [late, newer] = same_partition_keys("EV", 2)
    other = next(
        f"EV-OTHER-{i}"
        for i in range(1000)
        if key_partition(f"EV-OTHER-{i}", CAD_CALLS.partitions)
        != key_partition(late, CAD_CALLS.partitions)
    )
    ahead = T0 + timedelta(minutes=30)
    await produce(
        scoped,
        CAD_CALLS,
        [
            (newer, call_received(call_id=newer, occurred_at=ahead)),
            (late, call_received(call_id=late)),
            (other, call_received(call_id=other, occurred_at=T0 + timedelta(minutes=1))),
        ],
    )
    out = await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 3, settle=1.0)
    by_call = {d.call_id: d for d in decisions(out)}
    assert (by_call[late].route, by_call[late].reasons[-1]) == ("police", "stale")
    assert by_call[late].source_occurred_at == T0
    assert "stale" not in by_call[newer].reasons and by_call[newer].route == "crt"
    assert "stale" not in by_call[other].reasons and by_call[other].route == "crt"
    body = urllib.request.urlopen(
        f"http://127.0.0.1:{triage.metrics_port}/metrics", timeout=5
    ).read()
    assert b'heart_stale_calls_total{stage="triage"} 1.0' in body


def same_partition_keys(prefix: str, n: int) -> list[str]:
    """``n`` call ids that the producer puts on one partition of ``cad.calls``."""
    keys = [f"{prefix}-{i}" for i in range(500)]
    first = key_partition(keys[0], CAD_CALLS.partitions)
    return [k for k in keys if key_partition(k, CAD_CALLS.partitions) == first][:n]
