"""The triage stage as a real worker process against the embedded broker."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from schemas import CallUpdated, DeadLetter, TriageDecision
from schemas.deadletter import H_OFFSET, H_PARTITION, H_STAGE, H_TOPIC
from streams.admin import create_topics
from streams.codec import decode
from streams.settings import HeartSettings
from streams.topics import CAD_CALLS, DEADLETTER, TRIAGE_DECISIONS
from tests.factories import T0, call_received
from tests.kafka import Worker, produce, read_topic

pytestmark = pytest.mark.broker


@pytest.fixture
async def scoped(settings: HeartSettings, unique: str) -> HeartSettings:
    scoped = settings.model_copy(update={"topic_prefix": f"tri{unique}."})
    await create_topics(scoped)
    return scoped


@pytest.fixture
async def triage(scoped: HeartSettings, tmp_path: Path) -> AsyncIterator[Worker]:
    worker = Worker("triage", scoped, tmp_path).start()
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
    out = await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 1, settle=1.5)
    [original] = decisions(out)
    assert original.route == "crt" and original.revision == 1

    update = CallUpdated(call_id="D-1", occurred_at=T0, weapon_involved=True)
    await produce(scoped, CAD_CALLS, [("D-1", update), ("D-1", update)])
    out = await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 2, settle=1.5)
    assert len(out) == 2, "a redelivered update gives no third decision"
    newer = decisions(out)[1]
    assert newer.route == "cor"
    assert newer.revision == 2
    assert newer.supersedes == original.event_id
    assert "weapon_reported" in newer.reasons


async def test_unknown_call_update_is_dead_lettered(scoped: HeartSettings, triage: Worker) -> None:
    update = CallUpdated(call_id="U-404", occurred_at=T0, weapon_involved=True)
    await produce(scoped, CAD_CALLS, [("U-404", update)])
    [record] = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 1, settle=0.5)
    assert DeadLetter.from_headers(record.headers).reason == "unknown_call"


async def test_state_survives_sigkill(scoped: HeartSettings, tmp_path: Path) -> None:
    """After a crash, the changelog restores every call: a replayed call is not re-decided.

    The changelog is written in multi-record batches, the case where the embedded broker
    under-reports end offsets and an uncorrected recovery drops the tail.
    """
    calls = [call_received(call_id=f"K-{i}", event_id=f"k-{i}") for i in range(40)]
    worker = Worker("triage", scoped, tmp_path).start()
    await worker.wait_ready()
    await produce(scoped, CAD_CALLS, [(c.call_id, c) for c in calls])
    await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 40, settle=2.0)
    worker.kill(signal.SIGKILL)

    restarted = Worker("triage", scoped, tmp_path).start()
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
    ids = [d.call_id for d in decisions(out)]
    assert sorted(ids) == sorted([c.call_id for c in calls] + ["K-new"])
