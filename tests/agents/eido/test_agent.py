"""The EIDO intake stage as a real worker process against the embedded broker: the shipped
valid, partial and invalid samples, updates, redeliveries, and state across a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from pydantic import TypeAdapter

from heart.cad.eido import DEFAULT_NAMESPACE
from heart.cad.importer import stable_event_id
from heart.schemas import CallReceived, CallUpdated, DeadLetter
from heart.schemas.deadletter import H_STAGE, H_TOPIC
from heart.schemas.registry import CadEvent
from heart.streams.admin import create_topics
from heart.streams.codec import decode
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, CAD_EIDO, CATALOG, DEADLETTER
from tests.kafka import Worker, produce, read_topic

pytestmark = pytest.mark.broker

CAD_EVENT: TypeAdapter[Any] = TypeAdapter(CadEvent)
SAMPLES = Path(__file__).resolve().parents[3] / "cad" / "samples"
VALID_ID, PARTIAL_ID = "EX-24-0716-00123", "EX-24-0716-00124"


def sample(name: str) -> bytes:
    return (SAMPLES / f"eido-{name}.json").read_bytes()


def later(eido: bytes, stamp: str, **incident: Any) -> bytes:
    """The same EIDO as sent again at ``stamp`` with some incident fields changed."""
    doc = json.loads(eido)
    doc["lastUpdateTimeStamp"] = stamp
    doc["incidentComponent"]["lastUpdateTimeStamp"] = stamp
    doc["incidentComponent"].update(incident)
    return orjson.dumps(doc)


def events(records: list[ConsumerRecord]) -> list[CallReceived | CallUpdated]:
    return [decode(CAD_EVENT, r.value) for r in records]


@pytest.fixture
async def scoped(settings: HeartSettings, unique: str) -> HeartSettings:
    scoped = settings.model_copy(update={"topic_prefix": f"eido{unique}."})
    await create_topics(scoped)
    return scoped


@pytest.fixture
async def eido(scoped: HeartSettings, tmp_path: Path) -> AsyncIterator[Worker]:
    worker = Worker("eido", scoped, tmp_path).start()
    try:
        await worker.wait_ready()
        yield worker
    finally:
        worker.kill(signal.SIGTERM)


def test_cad_eido_is_in_the_catalog() -> None:
    assert CATALOG["cad.eido"] is CAD_EIDO
    assert CAD_EIDO.key.startswith("incident id")


async def test_samples_updates_and_dead_letters(scoped: HeartSettings, eido: Worker) -> None:
    invalid = sample("invalid")
    garbage = b"{not an eido"
    await produce(
        scoped,
        CAD_EIDO,
        [
            (VALID_ID, sample("valid")),
            (PARTIAL_ID, sample("partial")),
            ("bad-1", invalid),
            ("bad-2", garbage),
        ],
    )
    out = await read_topic(scoped, CAD_CALLS, until=lambda r: len(r) >= 2, settle=1.0)
    assert len(out) == 2
    received = {e.call_id: e for e in events(out)}
    assert {r.key.decode() for r in out} == {VALID_ID, PARTIAL_ID}

    valid = received[VALID_ID]
    assert isinstance(valid, CallReceived)
    assert valid.call_type == "Welfare Check" and valid.beat == "113"
    assert valid.occurred_at.isoformat() == "2024-07-16T10:12:41.250000-04:00"
    assert valid.priority == 3 and valid.language == "es"
    assert valid.location is not None and valid.location.lat == pytest.approx(35.994)
    assert valid.event_id == stable_event_id(DEFAULT_NAMESPACE, VALID_ID)

    partial = received[PARTIAL_ID]
    assert partial.call_type == "Mental Health Crisis" and partial.behavioral_health
    assert partial.beat is None and partial.location is None and partial.caller is None

    dead = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 2, settle=0.5)
    by_key = {r.key.decode(): r for r in dead}
    assert set(by_key) == {"bad-1", "bad-2"}
    for key, value, reason in (
        ("bad-1", invalid, "missing_incident_id"),
        ("bad-2", garbage, "invalid_json"),
    ):
        record = by_key[key]
        assert record.value == value, "the dead letter carries the EIDO unchanged"
        headers = dict(record.headers)
        assert headers[H_STAGE] == b"eido"
        assert headers[H_TOPIC] == CAD_EIDO.full_name(scoped.topic_prefix).encode()
        letter = DeadLetter.from_headers(record.headers)
        assert (letter.reason, letter.error_class) == (reason, "EidoError")

    # A later EIDO that changes the type: one call.updated with what changed.
    update = later(
        sample("valid"), "2024-07-16T10:20:00-04:00", incidentTypeCommonRegistryText="EDP"
    )
    stale = later(sample("valid"), "2024-07-16T10:15:00-04:00", beatOrDispatchGroupText="999")
    await produce(
        scoped,
        CAD_EIDO,
        # Sent twice (a redelivery) and followed by an older EIDO: neither adds an event.
        [(VALID_ID, update), (VALID_ID, update), (VALID_ID, stale)],
    )
    out = await read_topic(scoped, CAD_CALLS, until=lambda r: len(r) >= 3, settle=2.0)
    assert len(out) == 3
    [updated] = [e for e in events(out) if isinstance(e, CallUpdated)]
    assert updated.call_id == VALID_ID
    assert updated.call_type == "Mental Health Crisis" and updated.behavioral_health is True
    assert updated.beat is None, "unchanged fields are not restated"
    assert updated.occurred_at.isoformat() == "2024-07-16T10:20:00-04:00"


async def test_incident_state_survives_sigkill(scoped: HeartSettings, tmp_path: Path) -> None:
    worker = Worker("eido", scoped, tmp_path).start()
    try:
        await worker.wait_ready()
        await produce(scoped, CAD_EIDO, [(VALID_ID, sample("valid"))])
        await read_topic(scoped, CAD_CALLS, until=lambda r: len(r) >= 1)
        # Let the changelog write and the offset commit (every second) land, so that the
        # crash tests recovery, not the unavoidable at-least-once window.
        await asyncio.sleep(2.5)
    finally:
        worker.kill(signal.SIGKILL)

    restarted = Worker("eido", scoped, tmp_path).start()
    try:
        await restarted.wait_ready()
        update = later(sample("valid"), "2024-07-16T10:30:00-04:00", beatOrDispatchGroupText="214")
        await produce(scoped, CAD_EIDO, [(VALID_ID, update)])
        out = await read_topic(scoped, CAD_CALLS, until=lambda r: len(r) >= 2, settle=1.5)
    finally:
        restarted.kill(signal.SIGTERM)
    # The restored table knows the incident: the later EIDO is an update, not a new call
    # (an empty table would have made it a second call.received).
    seen = events(out)
    assert [e.event_type for e in seen] == ["call.received", "call.updated"]
    [updated] = [e for e in seen if isinstance(e, CallUpdated)]
    assert updated.beat == "214"
