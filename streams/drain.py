"""Read a Faust stream a batch at a time: every event waiting in its channel at once.

Faust's ``Stream.__aiter__`` hands over one event per trip through the event loop (an
``await asyncio.sleep(0)`` before each), and the stages wrapped it in two more async
generators (``Stream.events`` and the decoder). A profile of the passthrough agent put
the loop's task switches at over half its time per event. :func:`event_batches` takes
everything the conductor has put in the channel's queue, up to ``limit``, in one go and
yields once per batch, so the loop runs once per batch instead of once per event.

It keeps what Faust's iteration guarantees:

* an event is tracked as in progress when the stage takes it (:meth:`Batch.take`) and
  acked only after the stage is done with the whole batch and its outputs were handed to
  the producer (Faust flushes the producer before it commits offsets): at-least-once;
* once flow control is suspended (stopping, rebalancing) or the consumer generation has
  changed, the stage takes no more events of the batch, so the consumer's wait for the
  events in progress ends as it does with Faust's own iteration; the events not taken go
  back to the channel untracked and unacked;
* events already of an older generation (or read while flow control is suspended) are
  dropped without being handed on, as Faust does, but not acked, unlike Faust: the
  consumer re-reads what its stream never processed (``docs/reliability.md``, "Records lost around
  a rebalance");
* an event of a catalog partition that comes ahead of one its stream has not taken (a
  record dropped between the fetch and the stream) is dropped unacked too, and the
  consumer re-reads the partition from the missing one (``HeartConsumer.stream_gap``), so
  a stage gets each partition's records in offset order;
* the task's current event is set for each event taken, so a table written while
  handling it sends its changelog record to that event's partition.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Any, cast

from faust.streams import _current_event
from faust.types import TP, ChannelT, EventT, StreamT

from heart.streams.outbox import Outbox

__all__ = ["DEFAULT_BATCH", "Batch", "event_batches"]

#: Most events handed over per batch: the loop (the producer's sender, timers, the
#: fetcher) runs between batches, so this bounds how long a batch keeps it waiting.
DEFAULT_BATCH = 500


class Batch(list[EventT]):
    """The events of one batch, in channel order, with the stream they came from.

    The stage takes them one at a time with :meth:`take`, in order. Only events taken are
    acked when the batch is done; the rest go back to the channel.
    """

    __slots__ = (
        "_acking_topics",
        "_add_unacked",
        "_app",
        "_on_in",
        "_positions",
        "stream",
        "taken",
    )

    def __init__(self, stream: StreamT) -> None:
        super().__init__()
        s = cast(Any, stream)
        self.stream = stream
        #: How many events, from the first, the stage has taken.
        self.taken = 0
        self._app = stream.app
        self._acking_topics = stream.app.topics.acking_topics
        self._add_unacked = stream.app.consumer.unacked.add
        self._on_in = s._on_message_in
        self._positions = stream_positions(stream)

    def take(self, event: EventT) -> bool:
        """Hand ``event`` (the next one) to the stage, or refuse it: False while flow
        control is suspended or after a rebalance, when the stage must stop taking events
        (Faust's own iteration skips them then), so that the consumer's wait for the events
        in progress, before it stops or gives up partitions, ends with this one.

        A taken event is tracked as in progress and made the task's current event (Faust's
        tables read it to pick a changelog partition).
        """
        app = self._app
        message = event.message
        if not app.flow_control.is_active() or message.generation_id != app.consumer_generation_id:
            return False
        if message.topic in self._acking_topics and not message.tracked:
            message.tracked = True
            self._add_unacked(message)
            self._on_in(message.tp, message.offset, message)
        positions = self._positions
        if positions:
            tp = message.tp
            position = positions.get(tp)
            if position is not None and message.offset >= position:
                positions[tp] = message.offset + 1
        _current_event.set(weakref.ref(event))
        self.stream.current_event = event
        self.taken += 1
        return True


def stream_positions(stream: StreamT) -> dict[TP, int] | None:
    """The consumer's map of the offset each catalog partition's stream must take next
    (``HeartConsumer.stream_next``), or None under a consumer that keeps none."""
    return getattr(stream.app.consumer, "stream_next", None)


async def event_batches(
    stream: StreamT, limit: int = DEFAULT_BATCH, outbox: Outbox | None = None
) -> AsyncIterator[Batch]:
    """Yield the stream's events in batches of at most ``limit``; once the consumer of
    the generator is done with a batch, flush ``outbox``, ack the events it took and put
    the others back in the channel."""
    if limit < 1:
        raise ValueError(f"batch limit must be at least 1, got {limit}")
    s = cast(Any, stream)
    s._finalized = True
    started_here = await stream.maybe_start()
    channel = cast(ChannelT, stream.channel)
    queue = channel.queue
    errors = queue._errors
    empty = queue.empty
    get_nowait = queue.get_nowait
    slow_get = channel.__anext__
    app = stream.app
    flow_control = app.flow_control
    unacked = app.consumer.unacked
    on_message_out = s._on_message_out
    event_cls = EventT
    consumer: Any = app.consumer
    positions = stream_positions(stream)
    if outbox is not None:
        outbox.activate()
    try:
        while not stream.should_stop:
            # Once per batch, not per event: let the producer, timers and fetcher run.
            await asyncio.sleep(0)
            try:
                if errors:
                    raise errors.popleft()
                item: Any = await slow_get() if empty() else get_nowait()
            except StopAsyncIteration:
                # How Faust ends a stream (stopping, or an agent restarting); it may not
                # leave an async generator, so end here, as Stream.__aiter__ does.
                return
            batch = Batch(stream)
            generation = app.consumer_generation_id
            active = flow_control.is_active()
            # tp -> the offset the next event of tp in this batch must have.
            ahead: dict[TP, int] = {}
            while True:
                # An event of an older generation (or read while flow control is
                # suspended) is dropped, as Stream.__aiter__ does, but not acked as it does:
                # an ack marks the offset processed in the new generation's bookkeeping, and
                # when the copy fetched again is dropped too (the drain loop's read offset
                # already past it), the commit passes a record nobody processed. Unacked, it
                # is a hole at the head, which HeartConsumer holds the commit at and re-reads.
                if (
                    isinstance(item, event_cls)
                    and active
                    and item.message.generation_id == generation
                ):
                    if not positions:
                        batch.append(item)
                    else:
                        message = item.message
                        tp = message.tp
                        offset = message.offset
                        want = ahead.get(tp)
                        if want is None:
                            want = positions.get(tp)
                        if want is None:
                            batch.append(item)
                        elif offset <= want or await consumer.stream_gap(tp, want, offset):
                            # At or before the position: in order, or read again after
                            # a seek back (the stages recognise repeats).
                            ahead[tp] = max(want, offset + 1)
                            batch.append(item)
                if len(batch) >= limit or empty():
                    break
                item = get_nowait()
            if not batch:
                continue
            try:
                yield batch
                if outbox is not None:
                    await outbox.flush()
            except BaseException:
                # Not acked, so not committed: put back for the agent Faust restarts
                # (at-least-once; the stages recognise repeats). On shutdown the queue
                # goes away with the worker and the broker redelivers from the commit.
                if outbox is not None:
                    outbox.discard()
                _put_back(queue, batch, unacked)
                raise
            finally:
                s.current_event = None
            taken = batch.taken
            s.events_total += taken
            for event in batch[:taken]:
                if event.ack():
                    message = event.message
                    on_message_out(message.tp, message.offset, message)
            if taken < len(batch):
                _put_back(queue, batch[taken:], unacked)
    finally:
        s._channel_stop_iteration(channel)
        if started_here:
            await stream.stop()
            stream.service_reset()


def _put_back(queue: Any, events: list[EventT], unacked: Any) -> None:
    """Put ``events`` back at the front of the channel's queue, in their order, untracked
    as Faust's queued events are: the consumer waits for every tracked message to be
    acked before it stops or gives up partitions, and these may never be read again."""
    pending = queue._queue
    for event in reversed(events):
        message = event.message
        message.tracked = False
        unacked.discard(message)
        pending.appendleft(event)
