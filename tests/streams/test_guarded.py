"""The reader and ``guarded`` together: bad input is dead-lettered at full speed, a failure
of the stage on valid input holds the message and pauses its reader, nothing is lost.

A real Faust app and an in-memory channel carry the events (the reader's contract is with
Faust's stream, not the broker); ``tests/reliability/test_flood.py`` and
``tests/streams/test_breaker.py`` run the same paths on the embedded broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from faust.events import Event
from faust.types import ChannelT
from faust.types.tuples import Message

from heart.schemas.calls import CallReceived
from heart.schemas.deadletter import DeadLetter
from heart.streams import metrics
from heart.streams.app import create_app
from heart.streams.breaker import CircuitBreaker
from heart.streams.clock import ManualClock
from heart.streams.deadletter import ALARM_WINDOW_S, DeadLetterAlarm, DeadLetterSink, guarded
from heart.streams.deadletter import decoded as decoded_stream
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS
from tests.factories import T0, call_received


class FakeTopic:
    """Records sends; the sink's own logic is what is under test, not Kafka."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)

    def get_topic_name(self) -> str:
        return "heart.deadletter"

    def reasons(self) -> list[tuple[bytes, str]]:
        return [(s["key"], DeadLetter.from_headers(s["headers"]).reason) for s in self.sent]


def record(value: bytes) -> Any:
    message = SimpleNamespace(
        topic="cad.calls", partition=2, offset=41, key=b"C-1", value=value, headers=[]
    )
    return SimpleNamespace(message=message)


def sink_for(topic: FakeTopic, stage: str = "triage", **breaker: float) -> DeadLetterSink:
    return DeadLetterSink(
        topic,  # type: ignore[arg-type]
        stage,
        ManualClock(T0),
        CircuitBreaker(stage, **breaker),
    )


async def test_outside_a_reader_an_unexpected_error_dead_letters_the_record_without_its_text() -> (
    None
):
    topic = FakeTopic()
    sink = sink_for(topic)
    value = b'{"caller": {"name": "Jane Secret"}}'
    async with guarded(sink, record(value)):
        raise KeyError("Jane Secret")
    [sent] = topic.sent
    assert sent["value"] == value and sent["key"] == b"C-1"
    letter = DeadLetter.from_headers(sent["headers"])
    assert (letter.reason, letter.error_message) == ("processing_error", "KeyError")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "cad.calls",
        2,
        41,
    )


async def test_success_sends_nothing() -> None:
    topic = FakeTopic()
    sink = sink_for(topic)
    async with guarded(sink, record(b"{}")):
        pass
    assert topic.sent == []


# --- a stage reading a stream -------------------------------------------------------------


class Stage:
    """One agent: reads ``cad.calls`` events from a channel through the stages' reader
    and handles each inside ``guarded``, as the triage agent does."""

    def __init__(self, sink: DeadLetterSink, failing: Callable[[CallReceived], bool]) -> None:
        app = create_app(f"test-guarded-{id(self)}", HeartSettings())
        app.flow_control.resume()
        self.app = app
        # Events are put straight into the stream's own channel, with their coordinates.
        self.stream = app.channel().stream()
        self.channel: ChannelT = self.stream.channel  # type: ignore[assignment]
        self.sink = sink
        self.failing = failing
        self.handled: list[str] = []
        self._offset = 0
        self._task: asyncio.Task[None] | None = None

    async def send(self, key: str, value: bytes, partition: int = 0) -> None:
        message = Message(
            topic="cad.calls",
            partition=partition,
            offset=self._offset,
            timestamp=0.0,
            timestamp_type=0,
            headers=[],
            key=key.encode(),
            value=value,
            checksum=None,
            generation_id=self.app.consumer_generation_id,
        )
        self._offset += 1
        await self.channel.queue.put(Event(self.app, key.encode(), value, [], message))

    def start(self) -> Stage:
        async def run() -> None:
            reader = decoded_stream(self.stream, CAD_CALLS, self.sink, limit=50)
            async for call, event in reader:
                async with guarded(self.sink, event):
                    if self.failing(call):
                        raise RuntimeError(f"bug while deciding {call.call_id}")
                    self.handled.append(call.call_id)

        self._task = asyncio.create_task(run())
        return self

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
async def stages() -> AsyncIterator[list[Stage]]:
    made: list[Stage] = []
    yield made
    for stage in made:
        await stage.stop()


async def settle(until: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not until():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def call(call_id: str) -> bytes:
    return call_received(call_id=call_id, event_id=f"ev-{call_id}").model_dump_json().encode()


def gauge(stage: str) -> float:
    return metrics.CIRCUIT_OPEN.labels(stage)._value.get()  # type: ignore[attr-defined]


async def test_a_flood_of_bad_input_is_dead_lettered_at_full_speed_and_never_pauses(
    stages: list[Stage],
) -> None:
    topic = FakeTopic()
    stage = Stage(sink_for(topic, "flood-unit", cooldown_s=600), lambda c: False)
    stages.append(stage)
    bad = [b"<cad-v2>not json</cad-v2>", b'{"event_type": "call.received"}', b"[1, 2]"]
    for i in range(300):
        await stage.send(f"B-{i}", bad[i % 3])
    for i in range(100):
        await stage.send(f"G-{i}", call(f"G-{i}"))
    stage.start()
    await settle(lambda: len(stage.handled) == 100, timeout=10)
    assert stage.handled == [f"G-{i}" for i in range(100)], "in order, none lost"
    assert len(topic.sent) == 300
    assert {reason for _, reason in topic.reasons()} == {
        "invalid_json",
        "missing_field",
        "invalid_event",
    }
    assert not stage.sink.breaker.is_open and stage.sink.breaker.trips == 0


async def test_a_failure_on_valid_input_holds_the_message_and_a_reset_retries_it(
    stages: list[Stage],
) -> None:
    topic = FakeTopic()
    broken = {"on": True}
    stage = Stage(
        sink_for(topic, "hold-unit", cooldown_s=600),
        lambda c: broken["on"] and c.call_id == "C-2",
    )
    stages.append(stage)
    for i in range(1, 6):
        await stage.send(f"C-{i}", call(f"C-{i}") if i != 4 else b"not json")
    stage.start()
    breaker = stage.sink.breaker
    await settle(lambda: breaker.is_open)
    await asyncio.sleep(0.05)  # a wrong step forward would show now
    assert stage.handled == ["C-1"]
    assert topic.sent == [], "a valid call is never dead-lettered for the stage's own fault"
    # C-2 is held at the head of the reader's queue: nothing behind it goes ahead.
    assert gauge("hold-unit") == 1.0 and breaker.trips == 1

    breaker.reset()  # the cause is still there: it fails again, and stays held
    await settle(lambda: [hold.failures for hold in breaker.holds()] == [2])
    assert stage.handled == ["C-1"] and breaker.is_open and breaker.trips == 1

    broken["on"] = False  # the fix
    breaker.reset()
    await settle(lambda: stage.handled == ["C-1", "C-2", "C-3", "C-5"])
    assert not breaker.is_open and gauge("hold-unit") == 0.0
    assert topic.reasons() == [(b"C-4", "invalid_json")]


async def test_the_held_message_is_retried_after_the_cool_down_doubling_each_time(
    stages: list[Stage],
) -> None:
    topic = FakeTopic()
    failures: list[float] = []

    def failing(c: CallReceived) -> bool:
        failures.append(asyncio.get_running_loop().time())
        return len(failures) < 4

    stage = Stage(sink_for(topic, "cool-unit", cooldown_s=0.1, max_cooldown_s=0.25), failing)
    stages.append(stage)
    await stage.send("C-1", call("C-1"))
    stage.start()
    await settle(lambda: stage.handled == ["C-1"], timeout=5)
    gaps = [b - a for a, b in itertools.pairwise(failures)]
    # 0.1, then doubled to 0.2, then capped at 0.25 (a loaded machine only adds to each).
    assert len(gaps) == 3
    for gap, cooldown in zip(gaps, (0.1, 0.2, 0.25), strict=True):
        assert cooldown <= gap < cooldown + 1.0, gaps
    assert not stage.sink.breaker.is_open and topic.sent == []


async def test_skip_dead_letters_the_held_message_and_goes_on(stages: list[Stage]) -> None:
    topic = FakeTopic()
    stage = Stage(sink_for(topic, "skip-unit", cooldown_s=600), lambda c: c.call_id == "C-2")
    stages.append(stage)
    for i in range(1, 4):
        await stage.send(f"C-{i}", call(f"C-{i}"))
    stage.start()
    await settle(lambda: stage.sink.breaker.is_open)
    stage.sink.breaker.skip()
    await settle(lambda: stage.handled == ["C-1", "C-3"])
    [sent] = topic.sent
    letter = DeadLetter.from_headers(sent["headers"])
    assert (sent["key"], letter.reason, letter.error_message) == (
        b"C-2",
        "processing_error",
        "RuntimeError",
    )
    assert sent["value"] == call("C-2"), "kept whole, for a redrive after the fix"
    assert not stage.sink.breaker.is_open


async def test_a_held_message_that_does_not_come_back_first_is_let_go(
    stages: list[Stage],
) -> None:
    """After a rebalance the reader's queue starts elsewhere: the held message is another
    worker's now (or is read again later from the commit), and this reader goes on."""
    topic = FakeTopic()
    stage = Stage(sink_for(topic, "gone-unit", cooldown_s=600), lambda c: c.call_id == "C-1")
    stages.append(stage)
    await stage.send("C-1", call("C-1"))
    stage.start()
    await settle(lambda: stage.sink.breaker.is_open)
    stage.app.consumer_generation_id += 1  # a rebalance: what was read before is dropped
    await stage.send("C-2", call("C-2"), partition=1)
    await settle(lambda: stage.handled == ["C-2"])
    assert not stage.sink.breaker.is_open and topic.sent == []


# --- the dead-letter alarm ----------------------------------------------------------------


def test_the_alarm_is_loud_once_a_minute_while_the_rate_is_high(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = {"now": 1000.0}
    alarm = DeadLetterAlarm("triage", per_min=1.0, monotonic=lambda: clock["now"])
    assert alarm.limit == 5
    with caplog.at_level(logging.CRITICAL):
        assert [alarm.note("invalid_json") for _ in range(5)] == [False] * 5
        assert alarm.note("invalid_event") is True
        for _ in range(294):
            alarm.note("invalid_json")
        clock["now"] += 59
        alarm.note("invalid_json")
        clock["now"] += 1
        alarm.note("invalid_json")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(lines) == 2, "one line a minute, not one per message"
    assert lines[0].startswith("DEAD LETTERS HIGH: stage triage dead-lettered 6 messages")
    assert "invalid_json=5, invalid_event=1" in lines[0]
    # Quiet again once the window has passed.
    clock["now"] += ALARM_WINDOW_S + 1
    assert alarm.note("invalid_json") is False


async def test_while_the_alarm_is_high_per_message_lines_are_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = FakeTopic()
    sink = sink_for(topic, "quiet-unit")
    with caplog.at_level(logging.WARNING, logger="heart.streams.deadletter"):
        for _ in range(50):
            await sink.send(record(b"x"), ValueError("bad"), "invalid_json")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    criticals = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(topic.sent) == 50, "every message is still dead-lettered"
    assert len(warnings) == 5 and len(criticals) == 1
