from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from heart.schemas.deadletter import DeadLetter
from heart.streams.clock import ManualClock
from heart.streams.deadletter import DeadLetterSink, guarded
from tests.factories import T0


class FakeTopic:
    """Records sends; the sink's own logic is what is under test, not Kafka."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)

    def get_topic_name(self) -> str:
        return "heart.deadletter"


def record(value: bytes) -> Any:
    message = SimpleNamespace(
        topic="cad.calls", partition=2, offset=41, key=b"C-1", value=value, headers=[]
    )
    return SimpleNamespace(message=message)


async def test_an_unexpected_error_dead_letters_the_record_without_its_text() -> None:
    topic = FakeTopic()
    sink = DeadLetterSink(topic, "triage", ManualClock(T0))  # type: ignore[arg-type]
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
    sink = DeadLetterSink(topic, "triage", ManualClock(T0))  # type: ignore[arg-type]
    async with guarded(sink, record(b"{}")):
        pass
    assert topic.sent == []
