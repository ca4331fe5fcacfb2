"""The records a stage produces while it handles one batch of input, sent together.

Producing a record through aiokafka's ``send`` costs a coroutine, a delivery future, a
partitioner call and a trip through the accumulator per record; the triage profile put
the stage's sends and its table's changelog records (through Faust's producer buffer, one
more task per record) at about a third of its time per event. The outbox collects a
batch's records and hands them to the producer per topic partition, into the partition's
open record batch while it has room and the rest as new ones
(``AIOKafkaProducer.send_batch``), before the input batch is acked. The batch's outputs go
first; its tables' changelog records (state) follow once the outputs are written, so a
crash can repeat an output but not lose one behind a state that says it was sent.

Same records, keys, partitions and order per partition as sending one by one: a record
without a partition goes where the producer's partitioner puts its key. Same delivery
guarantee: the reader flushes the outbox before it acks the events behind the records,
and Faust flushes the producer before it commits their offsets.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.types import AppT

log = logging.getLogger(__name__)

__all__ = ["Outbox", "current_outbox"]

#: The outbox of the batch the running task is handling; None outside a batch (timers,
#: start-up), where records go to the producer one by one.
_current: ContextVar[Outbox | None] = ContextVar("heart_outbox", default=None)


def current_outbox() -> Outbox | None:
    return _current.get()


Record = tuple[str, bytes | None, bytes | None, int | None]


class Outbox:
    """A batch's records: outputs (what the stage sends) and state (its tables' changelog
    records). State goes to the producer only once the outputs are written, so that a
    crash can repeat an output (same event id, dropped downstream) but never lose one
    behind a state that says the input was handled."""

    def __init__(self, app: AppT) -> None:
        self.app = app
        #: (topic, key, value, partition or None), in the order added.
        self._outputs: list[Record] = []
        self._state: list[Record] = []
        self._known_topics: set[str] = set()
        self._max_request_size: int = app.conf.producer_max_request_size

    def __len__(self) -> int:
        return len(self._outputs) + len(self._state)

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        *,
        state: bool = False,
    ) -> None:
        """Queue an output record, or with ``state`` a changelog record; refuse one the
        producer would refuse, here, where the stage's handler can dead-letter the event
        behind it, as ``send()`` refuses it."""
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
        if size > self._max_request_size:
            raise MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the "
                "maximum request size you have configured with the max_request_size "
                "configuration"
            )
        (self._state if state else self._outputs).append((topic, key, value, partition))

    def discard(self) -> None:
        """Drop what was added since the last flush (its batch will be handled again)."""
        self._outputs, self._state = [], []

    def activate(self) -> None:
        """Make this the running task's outbox (the reader calls it once per task)."""
        _current.set(self)

    async def flush(self) -> None:
        """Hand the outputs to the producer; once they are written (or failed: a failure
        is logged, as a lone send's is), hand over the state."""
        outputs, state = self._outputs, self._state
        self._outputs, self._state = [], []
        if outputs:
            deliveries = await self._hand(outputs)
            if state:
                # One produce round trip per batch, not per event.
                await asyncio.gather(*deliveries, return_exceptions=True)
        if state:
            await self._hand(state)

    async def _hand(self, records: list[Record]) -> list[asyncio.Future[Any]]:
        """Hand ``records`` to the producer, one record batch per topic partition; the
        futures that resolve once they are written."""
        producer: Any = self.app.producer
        aio = producer._ensure_producer()
        # Dicts keep insertion order, so each partition's records keep theirs.
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        #: topic -> (all partitions, available ones), as the producer's send() lists them,
        #: read once per flush rather than per record.
        listed: dict[str, tuple[list[int], list[int]]] = {}
        partitioner = aio._partitioner
        for topic, key, value, partition in records:
            if topic not in self._known_topics:
                # Once per topic: the partitioner needs the topic's partitions.
                await aio.partitions_for(topic)
                self._known_topics.add(topic)
            if partition is None:
                # The producer's own partitioner, as its send() would pick.
                lists = listed.get(topic)
                if lists is None:
                    metadata = aio._metadata
                    lists = listed[topic] = (
                        list(metadata.partitions_for_topic(topic)),
                        list(metadata.available_partitions_for_topic(topic)),
                    )
                partition = partitioner(key, *lists)
            items = by_partition.get((topic, partition))
            if items is None:
                items = by_partition[(topic, partition)] = []
            items.append((key, value))
        accumulator = aio._message_accumulator
        deliveries: list[asyncio.Future[Any]] = []
        for (topic, partition), items in by_partition.items():
            deliveries += await _hand_over(aio, accumulator, topic, partition, items)
        return deliveries


async def _hand_over(
    aio: Any,
    accumulator: Any,
    topic: str,
    partition: int,
    items: list[tuple[bytes | None, bytes | None]],
) -> list[asyncio.Future[Any]]:
    """Put ``items`` in the partition's open batch while it has room, as ``send()`` does,
    so that consecutive small flushes share a request; the rest in new batches. Returns a
    future per record batch used."""
    deliveries: list[asyncio.Future[Any]] = []
    start = 0
    pending = accumulator._batches.get(TopicPartition(topic, partition))
    if pending:
        open_batch = pending[-1]
        last = None
        for key, value in items:
            appended = open_batch.append(key, value, None)
            if appended is None:
                break
            last = appended
            start += 1
        if last is not None:
            # A record's future resolves with its whole record batch.
            last.add_done_callback(_log_failed_delivery)
            deliveries.append(last)
    builder = None
    for key, value in items[start:]:
        if builder is None:
            builder = aio.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=[]) is None:
            deliveries.append(await _submit(aio, builder, topic, partition))
            builder = aio.create_batch()
            # A record larger than a whole batch still goes alone, as send() does.
            builder.append(timestamp=None, key=key, value=value, headers=[])
    if builder is not None:
        deliveries.append(await _submit(aio, builder, topic, partition))
    return deliveries


async def _submit(aio: Any, builder: Any, topic: str, partition: int) -> asyncio.Future[Any]:
    # Left open: later sends to the partition may join it until the sender takes it.
    delivery = await aio.send_batch(builder, topic, partition=partition)
    delivery.add_done_callback(_log_failed_delivery)
    return delivery


def _log_failed_delivery(delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled() and (exc := delivery.exception()) is not None:
        log.warning("producer could not deliver a record batch: %r", exc)
