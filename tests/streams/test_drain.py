"""The batch reader: what it hands over, when it acks, and what a failure leaves behind.

These run a real Faust app and stream over an in-memory channel: the reader's contract
is with Faust's stream and channel, not with the broker (the stages' own tests cover the
whole path over the embedded broker).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from faust.streams import current_event
from faust.types import TP, ChannelT, StreamT

from heart.streams.app import create_app
from heart.streams.drain import Batch, event_batches
from heart.streams.settings import HeartSettings


@pytest.fixture
def channel() -> Iterator[ChannelT]:
    app = create_app("test-drain", HeartSettings())
    app.flow_control.resume()
    yield app.channel()


async def _fill(channel: ChannelT, values: range) -> None:
    for value in values:
        await channel.send(value=value)


async def _first(it: AsyncIterator[Any]) -> Any:
    return await asyncio.wait_for(it.__anext__(), 5)


async def _taken(it: AsyncIterator[Batch]) -> Batch:
    """The next batch, every event of it taken, as a stage that handles them all does."""
    batch = await _first(it)
    for event in batch:
        assert batch.take(event)
    return batch


class RecordingOutbox:
    """Stands in for :class:`heart.streams.outbox.Outbox`: notes what the reader asks of it."""

    def __init__(self, stream: StreamT) -> None:
        self.stream = stream
        self.calls: list[str] = []
        self.acked_at_flush: list[bool] = []
        self.batch: list[Any] = []

    def activate(self) -> None:
        self.calls.append("activate")

    async def flush(self) -> None:
        self.calls.append("flush")
        self.acked_at_flush = [event.message.acked for event in self.batch]

    def discard(self) -> None:
        self.calls.append("discard")


async def test_a_batch_is_what_waits_up_to_the_limit_in_order(channel: ChannelT) -> None:
    stream = channel.stream()  # subscribes: it gets what is sent from now on
    await _fill(channel, range(7))
    batches = event_batches(stream, limit=3)
    got = [[e.value for e in await _taken(batches)] for _ in range(3)]
    assert got == [[0, 1, 2], [3, 4, 5], [6]]
    await batches.aclose()


async def test_a_batch_is_acked_after_the_flush_once_the_stage_asks_for_more(
    channel: ChannelT,
) -> None:
    stream = channel.stream()
    outbox = RecordingOutbox(stream)
    await _fill(channel, range(4))
    batches = event_batches(stream, limit=10, outbox=outbox)  # type: ignore[arg-type]
    batch = await _taken(batches)
    outbox.batch = list(batch)
    assert [e.value for e in batch] == [0, 1, 2, 3]
    assert not any(e.message.acked for e in batch), "acked while the stage still holds it"
    await _fill(channel, range(4, 5))
    following = await _taken(batches)
    assert [e.value for e in following] == [4]
    assert outbox.calls == ["activate", "flush"]
    assert outbox.acked_at_flush == [False] * 4, "the flush comes before the acks"
    assert all(e.message.acked for e in batch)
    assert not following[0].message.acked
    await batches.aclose()


async def test_a_failed_batch_is_not_acked_and_is_read_again_first(channel: ChannelT) -> None:
    stream = channel.stream()
    outbox = RecordingOutbox(stream)
    await _fill(channel, range(5))
    batches = event_batches(stream, limit=3, outbox=outbox)  # type: ignore[arg-type]
    batch = await _taken(batches)
    assert [e.value for e in batch] == [0, 1, 2]
    with pytest.raises(RuntimeError):
        await batches.athrow(RuntimeError("the stage failed"))
    assert outbox.calls == ["activate", "discard"], "the failed batch's records are dropped"
    assert not any(e.message.acked for e in batch)
    # Untracked, as queued events are: Faust waits for tracked ones before it stops.
    assert not any(e.message.tracked for e in batch)
    assert not set(stream.app.consumer.unacked) & {e.message for e in batch}
    again = event_batches(stream, limit=10)
    assert [e.value for e in await _taken(again)] == [0, 1, 2, 3, 4]
    await again.aclose()


async def test_events_of_an_older_generation_are_neither_handed_on_nor_acked(
    channel: ChannelT,
) -> None:
    stream = channel.stream()
    await _fill(channel, range(3))
    acked: list[Any] = []
    patched = 0
    for event in stream.channel.queue._queue:  # type: ignore[attr-defined]
        event.ack = lambda e=event: acked.append(e.value)  # type: ignore[method-assign]
        patched += 1
    stream.app.consumer_generation_id += 1  # a rebalance since they were read
    await _fill(channel, range(3, 5))
    batches = event_batches(stream, limit=10)
    batch = await _taken(batches)
    assert [e.value for e in batch] == [3, 4]
    # Acked, they would count as processed and the commit could pass them.
    assert patched == 3
    assert acked == []
    await batches.aclose()


async def test_each_event_can_be_made_the_current_one(channel: ChannelT) -> None:
    stream = channel.stream()
    await _fill(channel, range(2))
    batches = event_batches(stream)
    batch = await _first(batches)
    for event in batch:
        assert batch.take(event)
        assert current_event() is event
        assert stream.current_event is event
    await batches.aclose()


async def test_a_limit_below_one_is_refused(channel: ChannelT) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await _first(event_batches(channel.stream(), limit=0))


async def test_the_batches_end_when_faust_ends_the_stream(channel: ChannelT) -> None:
    stream = channel.stream()
    batches = event_batches(stream)
    waiting = asyncio.ensure_future(batches.__anext__())
    await asyncio.sleep(0.05)
    # What faust.agents.actor.Actor.cancel does to stop or restart an agent.
    stream.channel._throw(StopAsyncIteration())  # type: ignore[attr-defined]
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)


async def test_once_flow_control_is_suspended_the_rest_of_a_batch_goes_back(
    channel: ChannelT,
) -> None:
    stream = channel.stream()
    await _fill(channel, range(4))
    batches = event_batches(stream, limit=10)
    batch = await _first(batches)
    assert batch.take(batch[0])
    stream.app.flow_control.suspend()  # Faust stopping or rebalancing
    assert not batch.take(batch[1])
    # The consumer's wait for events in progress (before it stops or gives up partitions)
    # covers the one taken; tests/streams/test_breaker.py stops a worker mid-batch.
    assert batch.taken == 1
    stream.app.flow_control.resume()
    await _fill(channel, range(4, 5))
    following = await _taken(batches)
    assert batch[0].message.acked and not any(e.message.acked for e in batch[1:])
    assert [e.value for e in following] == [1, 2, 3, 4], "not taken: read again, in order"
    await batches.aclose()


class GapRecorder:
    """Stands in for ``HeartConsumer.stream_gap``: notes each gap, answers ``go_on``."""

    def __init__(self, go_on: bool = False) -> None:
        self.go_on = go_on
        self.gaps: list[tuple[Any, int, int]] = []

    async def __call__(self, tp: Any, missing: int, got: int) -> bool:
        self.gaps.append((tp, missing, got))
        return self.go_on


async def _fill_at(channel: ChannelT, stream: StreamT, placed: list[tuple[TP, int]]) -> None:
    """Queue one event per ``(partition, offset)``, as the conductor does for records."""
    queue = stream.channel.queue._queue  # type: ignore[attr-defined]
    before = len(queue)
    await _fill(channel, range(len(placed)))
    for event, (tp, offset) in zip(list(queue)[before:], placed, strict=True):
        event.message.tp = tp
        event.message.offset = offset


def _placed(batch: Batch) -> list[tuple[TP, int]]:
    return [(e.message.tp, e.message.offset) for e in batch]


A, B = TP("cad.calls", 0), TP("cad.calls", 1)


async def test_an_event_ahead_of_one_never_taken_is_held_back_unacked(
    channel: ChannelT, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bug 20: A's offset 11 was dropped between the fetch and the stream. Handed on, 12
    # and 13 would reach the stage before it, and dispatch refuses a team's report that
    # comes before its assignment.
    stream = channel.stream()
    consumer: Any = stream.app.consumer
    consumer.stream_next.update({A: 10, B: 5})
    gap = GapRecorder()
    monkeypatch.setattr(consumer, "stream_gap", gap)
    await _fill_at(channel, stream, [(A, 10), (A, 12), (B, 5), (A, 13), (B, 6)])
    held = [e for e in stream.channel.queue._queue if e.message.offset in (12, 13)]  # type: ignore[attr-defined]
    batches = event_batches(stream, limit=10)
    batch = await _taken(batches)
    assert _placed(batch) == [(A, 10), (B, 5), (B, 6)], "the other partition goes on"
    assert gap.gaps == [(A, 11, 12), (A, 11, 13)]
    assert consumer.stream_next == {A: 11, B: 7}
    # The re-read brings 11 first, then 12 and 13 again: taken in order.
    await _fill_at(channel, stream, [(A, 11), (A, 12), (A, 13)])
    again = await _taken(batches)
    assert _placed(again) == [(A, 11), (A, 12), (A, 13)]
    assert consumer.stream_next == {A: 14, B: 7}
    assert all(e.message.acked for e in batch)
    assert not any(e.message.acked for e in held)
    await batches.aclose()


async def test_an_event_read_again_after_a_seek_back_is_handed_on(
    channel: ChannelT, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = channel.stream()
    consumer: Any = stream.app.consumer
    consumer.stream_next[A] = 10
    gap = GapRecorder()
    monkeypatch.setattr(consumer, "stream_gap", gap)
    await _fill_at(channel, stream, [(A, 8), (A, 9), (A, 10)])
    batches = event_batches(stream, limit=10)
    assert _placed(await _taken(batches)) == [(A, 8), (A, 9), (A, 10)]
    assert gap.gaps == []
    assert consumer.stream_next[A] == 11
    await batches.aclose()


async def test_a_gap_the_consumer_gives_up_on_is_handed_on_and_passed(
    channel: ChannelT, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Records gone from the broker (retention) never come back; the consumer says go on.
    stream = channel.stream()
    consumer: Any = stream.app.consumer
    consumer.stream_next[A] = 10
    gap = GapRecorder(go_on=True)
    monkeypatch.setattr(consumer, "stream_gap", gap)
    await _fill_at(channel, stream, [(A, 20), (A, 21)])
    batches = event_batches(stream, limit=10)
    assert _placed(await _taken(batches)) == [(A, 20), (A, 21)]
    assert gap.gaps == [(A, 10, 20)]
    assert consumer.stream_next[A] == 22
    await batches.aclose()


async def test_events_not_taken_leave_the_position_where_the_stage_stopped(
    channel: ChannelT, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = channel.stream()
    consumer: Any = stream.app.consumer
    consumer.stream_next[A] = 0
    gap = GapRecorder()
    monkeypatch.setattr(consumer, "stream_gap", gap)
    await _fill_at(channel, stream, [(A, 0), (A, 1), (A, 2)])
    batches = event_batches(stream, limit=10)
    batch = await _first(batches)
    assert batch.take(batch[0])
    stream.app.flow_control.suspend()
    assert not batch.take(batch[1])
    stream.app.flow_control.resume()
    assert consumer.stream_next[A] == 1
    await _fill_at(channel, stream, [(A, 3)])
    assert _placed(await _taken(batches)) == [(A, 1), (A, 2), (A, 3)]
    assert gap.gaps == []
    await batches.aclose()
