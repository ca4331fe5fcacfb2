"""Bug 5: events dated too far ahead of the stage's time are refused as future_timestamp."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson

from heart.schemas import UnitStatusReport
from heart.schemas.deadletter import DeadLetter
from heart.streams.clock import EventClock, ManualClock, WallClock
from heart.streams.deadletter import DeadLetterSink, FutureLimit, decode_batches
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, UNITS_STATUS
from tests.factories import T0, call_received
from tests.streams.test_guarded import FakeTopic

MINUTE = timedelta(minutes=1)
WALL = FutureLimit.from_settings(HeartSettings())
EVENT = FutureLimit.from_settings(HeartSettings(clock="event"))


def test_on_the_wall_clock_status_reports_get_five_minutes_and_other_events_a_day() -> None:
    clock = ManualClock(T0)
    status, calls = UNITS_STATUS.name, CAD_CALLS.name
    assert WALL.refusal(status, T0 + 5 * MINUTE, clock, wall=T0) is None
    assert WALL.refusal(status, T0 + 6 * MINUTE, clock, wall=T0) is not None
    assert WALL.refusal(calls, T0 + timedelta(hours=23), clock, wall=T0) is None
    assert WALL.refusal(calls, T0 + timedelta(days=1, minutes=1), clock, wall=T0) is not None
    # The past is never refused here (stale reports are the dispatch stage's business).
    assert WALL.refusal(status, T0 - timedelta(days=400), clock, wall=T0) is None


def test_the_refusal_names_timestamps_and_the_tolerance_only() -> None:
    far = datetime(2999, 1, 1, tzinfo=UTC)
    refused = WALL.refusal(UNITS_STATUS.name, far, ManualClock(T0), wall=T0)
    assert refused is not None
    assert type(refused).__name__ == "FutureTimestamp"
    assert "2999-01-01T00:00:00+00:00" in str(refused) and "tolerance 300 s" in str(refused)


def test_an_event_clock_that_has_seen_nothing_refuses_nothing() -> None:
    clock = EventClock()
    far = datetime(2999, 1, 1, tzinfo=UTC)
    assert EVENT.refusal(UNITS_STATUS.name, far, clock, wall=T0) is None


def test_on_the_event_clock_a_simulation_ahead_of_the_wall_is_judged_by_its_own_time() -> None:
    # heart up --speed 600: event time is days ahead of the wall, and a responder's report
    # is ahead of the dispatch stage's newest event by lag x speed (10 s x 600 = 100 min).
    newest = T0 + timedelta(days=3)
    clock = EventClock(newest)
    report_time = newest + timedelta(minutes=100)
    assert EVENT.refusal(UNITS_STATUS.name, report_time, clock, wall=T0) is None
    assert EVENT.refusal(UNITS_STATUS.name, newest + timedelta(days=2), clock, wall=T0)
    assert EVENT.refusal(UNITS_STATUS.name, datetime(2999, 1, 1, tzinfo=UTC), clock, wall=T0)


def test_on_the_event_clock_a_replay_of_old_data_with_a_gap_is_not_refused() -> None:
    # A 2018 export that skips three days: the next call is "ahead" of the newest event by
    # more than the tolerance, but not ahead of the wall, so it cannot be a broken clock.
    clock = EventClock(datetime(2018, 3, 1, tzinfo=UTC))
    after_gap = datetime(2018, 3, 4, 12, tzinfo=UTC)
    assert EVENT.refusal(CAD_CALLS.name, after_gap, clock, wall=T0) is None
    assert EVENT.refusal(CAD_CALLS.name, T0 + timedelta(days=2), clock, wall=T0) is not None


def test_the_tolerances_are_settings() -> None:
    settings = HeartSettings.from_env(
        {
            "HEART_FUTURE_TOLERANCE_S": "60",
            "HEART_FUTURE_TOLERANCE_STATUS_S": "5",
            "HEART_FUTURE_TOLERANCE_EVENT_CLOCK_S": "7200",
        }
    )
    wall = FutureLimit.from_settings(settings)
    assert wall.tolerance(UNITS_STATUS.name) == timedelta(seconds=5)
    assert wall.tolerance(CAD_CALLS.name) == timedelta(seconds=60)
    event = FutureLimit.from_settings(settings.model_copy(update={"clock": "event"}))
    assert event.tolerance(UNITS_STATUS.name) == event.tolerance(CAD_CALLS.name)
    assert event.tolerance(CAD_CALLS.name) == timedelta(hours=2)


class FakeBatch(list[Any]):
    def take(self, event: Any) -> bool:
        return True


class FakeStream:
    def __init__(self, values: list[bytes]) -> None:
        self._values = values

    async def batches(self) -> AsyncIterator[FakeBatch]:
        yield FakeBatch(self._events())

    def _events(self) -> Iterator[Any]:
        for offset, value in enumerate(self._values):
            message = SimpleNamespace(
                topic="units.status",
                partition=0,
                offset=offset,
                key=b"COR-2",
                value=value,
                headers=[],
                tp=("units.status", 0),
                timestamp=None,
            )
            yield SimpleNamespace(value=value, message=message)


async def test_decoded_dead_letters_a_far_future_report_and_yields_the_next_one() -> None:
    topic = FakeTopic()
    sink = DeadLetterSink(topic, "dispatch", WallClock(), future=WALL)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    reports = [
        UnitStatusReport(
            team_id="COR-2", status="available", occurred_at=datetime(2999, 1, 1, tzinfo=UTC)
        ),
        UnitStatusReport(team_id="COR-2", status="out_of_service", occurred_at=now),
    ]
    stream = FakeStream([orjson.dumps(r.model_dump(mode="json")) for r in reports])
    got = [model async for model, _ in decode_batches(stream.batches(), UNITS_STATUS, sink)]  # type: ignore[arg-type]
    assert [r.status for r in got] == ["out_of_service"]
    [sent] = topic.sent
    letter = DeadLetter.from_headers(sent["headers"])
    assert (letter.reason, letter.error_class) == ("future_timestamp", "FutureTimestamp")
    assert sent["value"] == stream._values[0], "the record is copied unchanged"
    assert not sink.breaker.is_open and sink.breaker.trips == 0, "a refused date never pauses"


async def test_a_sink_without_a_limit_accepts_any_date() -> None:
    topic = FakeTopic()
    sink = DeadLetterSink(topic, "triage", WallClock())  # type: ignore[arg-type]
    call = call_received(occurred_at=datetime(2999, 1, 1, tzinfo=UTC))
    stream = FakeStream([orjson.dumps(call.model_dump(mode="json"))])
    got = [model async for model, _ in decode_batches(stream.batches(), CAD_CALLS, sink)]  # type: ignore[arg-type]
    assert len(got) == 1 and topic.sent == []
