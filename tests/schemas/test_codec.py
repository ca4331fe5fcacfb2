from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from heart.schemas import CallReceived
from heart.schemas.registry import ANY_EVENT, EVENT_TYPES, MODELS, export_json_schemas
from heart.streams.codec import DecodeError, decode, encode
from tests.factories import call_received
from tests.factories import every_event as _core_events
from tests.schemas.ccd_events import ccd_events


def every_event() -> list[object]:
    # tests.factories predates the CCD events; its every_event() can absorb ccd_events().
    return [*_core_events(), *ccd_events()]


@pytest.mark.parametrize("event", every_event(), ids=lambda e: e.event_type)
def test_every_event_round_trips(event) -> None:
    raw = encode(event)
    assert decode(type(event), raw) == event
    assert decode(ANY_EVENT, raw) == event


def test_every_model_has_a_factory_instance() -> None:
    assert {type(e) for e in every_event()} == set(MODELS)


def test_common_fields_present_on_the_wire() -> None:
    for event in every_event():
        data = orjson.loads(encode(event))
        assert {"event_id", "event_type", "occurred_at", "schema_version"} <= data.keys()
        assert data["occurred_at"].endswith("+00:00")


def test_cad_example_validates_with_defaults() -> None:
    raw = b"""{"event_type": "call.received", "event_id": "cad-1",
               "occurred_at": "2024-07-15T10:00:00-04:00",
               "call_id": "24-000123", "call_type": "TRESPASS", "beat": "111"}"""
    call = decode(CallReceived, raw)
    assert call.weapon_involved is False
    assert call.violence_reported is False
    assert call.needs_in_person is True
    assert call.behavioral_health is False
    assert call.language == "en"
    assert call.priority is None and call.location is None and call.caller is None
    assert call.occurred_at.utcoffset() == timedelta(hours=-4)


def test_offsets_are_kept_not_guessed() -> None:
    call = call_received(occurred_at="2024-01-15T08:30:00+05:30")
    assert call.occurred_at.utcoffset() == timedelta(hours=5, minutes=30)
    assert call.occurred_at == datetime(2024, 1, 15, 3, 0, tzinfo=UTC)


def test_unknown_extra_fields_are_not_fatal() -> None:
    raw = orjson.dumps({**orjson.loads(encode(call_received())), "cad_vendor_field": [1, 2]})
    assert decode(CallReceived, raw).call_id == "C-1001"


@pytest.mark.parametrize(
    ("raw", "reason", "mentions"),
    [
        (b"{not json", "invalid_json", "unexpected"),
        (b"[1, 2]", "invalid_event", "JSON object"),
        (
            b'{"event_type":"call.received","call_id":"1","call_type":"X",'
            b'"occurred_at":"2024-07-15T10:00:00"}',
            "naive_timestamp",
            "occurred_at",
        ),
        (
            b'{"event_type":"call.received","call_type":"X","occurred_at":"2024-07-15T10:00:00Z"}',
            "missing_field",
            "call_id",
        ),
        (
            b'{"event_type":"call.received","call_id":"1","call_type":"X",'
            b'"occurred_at":"2024-07-15T10:00:00Z","weapon_involved":"maybe"}',
            "invalid_event",
            "weapon_involved",
        ),
        (
            b'{"event_type":"call.exploded","call_id":"1","occurred_at":"2024-07-15T10:00:00Z"}',
            "unknown_event_type",
            "event_type",
        ),
        (b"", "invalid_json", ""),
    ],
)
def test_bad_messages_name_the_problem(raw: bytes, reason: str, mentions: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(ANY_EVENT, raw)
    assert info.value.reason == reason
    assert mentions in str(info.value)


def test_errors_never_echo_input_values() -> None:
    raw = (
        b'{"event_type":"call.received","call_id":"1","call_type":"X",'
        b'"occurred_at":"2024-07-15T10:00:00Z","caller":{"name":"Jane Secret","phone":123}}'
    )
    with pytest.raises(DecodeError) as info:
        decode(ANY_EVENT, raw)
    assert "caller.phone" in str(info.value)
    assert "Jane" not in str(info.value) and "123" not in str(info.value)


def test_oversized_message_refused_before_parsing() -> None:
    with pytest.raises(DecodeError) as info:
        decode(ANY_EVENT, b" " * 2_000_000)
    assert info.value.reason == "too_large"


def test_json_schema_export_covers_every_event_type(tmp_path) -> None:
    paths = export_json_schemas(tmp_path)
    index = orjson.loads((tmp_path / "index.json").read_bytes())
    assert set(index["events"]) == set(EVENT_TYPES)
    schema = orjson.loads((tmp_path / "CallReceived.schema.json").read_bytes())
    assert set(schema["required"]) == {"occurred_at", "call_id", "call_type"}
    assert schema["properties"]["occurred_at"]["format"] == "date-time"
    assert len(paths) == len(MODELS) + 1
