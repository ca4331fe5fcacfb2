"""The backlog-aware fetch wait (``heart.streams.embedded.fetch_wait``), unit and against
the real broker.

The embedded broker lists a partition's whole log on each fetch from inside it and stops
gathering records when the fetch wait is over. A very short wait on a partition of a few
thousand one-record batches shows the effect in seconds, where the stages' 10 ms wait
needs about 15,000 batches (``docs/embedded-broker.md``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from heart.streams.embedded.fetch_wait import BacklogAwareFetcher, behind, use_backlog_wait
from heart.streams.settings import HeartSettings

BATCHES = 4_000
# Far below the listing time of BATCHES objects, so that a plain fetch from inside the log
# gathers almost nothing.
TINY_WAIT_MS = 1


@dataclass
class FakeState:
    position: int
    highwater: int | None
    paused: bool = False
    has_valid_position: bool = True


@dataclass
class FakeAssignment:
    states: dict[str, FakeState]

    @property
    def tps(self) -> list[str]:
        return list(self.states)

    def state_value(self, tp: str) -> FakeState:
        return self.states[tp]


@dataclass
class FakeFetcher:
    _records: dict[str, Any] = field(default_factory=dict)


def test_at_the_log_end_nothing_is_behind() -> None:
    assignment = FakeAssignment({"a": FakeState(10, 10), "b": FakeState(0, 0)})
    assert not behind(FakeFetcher(), assignment)  # type: ignore[arg-type]


def test_records_beyond_the_position_are_a_backlog() -> None:
    assignment = FakeAssignment({"a": FakeState(10, 10), "b": FakeState(3, 9)})
    assert behind(FakeFetcher(), assignment)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "state",
    [
        FakeState(3, 9, paused=True),
        FakeState(3, 9, has_valid_position=False),
        FakeState(3, None),
    ],
    ids=["paused", "no-position", "no-highwater-yet"],
)
def test_partitions_not_fetched_this_round_do_not_count(state: FakeState) -> None:
    assignment = FakeAssignment({"a": FakeState(10, 10), "b": state})
    assert not behind(FakeFetcher(), assignment)  # type: ignore[arg-type]


def test_a_partition_with_unconsumed_records_does_not_count() -> None:
    assignment = FakeAssignment({"a": FakeState(10, 10), "b": FakeState(3, 9)})
    assert not behind(FakeFetcher({"b": object()}), assignment)  # type: ignore[arg-type]


async def test_an_unstarted_consumer_is_refused(settings: HeartSettings) -> None:
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="start the consumer"):
        use_backlog_wait(consumer, 500)


@pytest.fixture(scope="module")
async def long_log(broker: Any) -> TopicPartition:
    """A one-partition topic of BATCHES record batches of one record each."""
    settings = HeartSettings(kafka_bootstrap=broker.bootstrap)
    topic = f"fetchwait-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(linger_ms=0, **settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await producer.start()
    try:
        for i in range(BATCHES):
            # Awaited one by one: each record is its own batch, as a lightly loaded stage
            # writes them.
            await (await producer.send(topic, b"x" * 300, key=str(i).encode()))
    finally:
        await producer.stop()
    return TopicPartition(topic, 0)


async def read_for(consumer: AIOKafkaConsumer, tp: TopicPartition, seconds: float) -> int:
    got = 0
    deadline = time.monotonic() + seconds
    while got < BATCHES and time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=200)
        got += len(batch.get(tp, []))
    return got


async def new_reader(settings: HeartSettings, tp: TopicPartition) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=TINY_WAIT_MS,
        **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
    )
    await consumer.start()
    consumer.assign([tp])
    consumer.seek(tp, 0)
    return consumer


@pytest.mark.broker
async def test_a_short_wait_cannot_read_a_long_log(
    long_log: TopicPartition, settings: HeartSettings
) -> None:
    # The defect the backlog wait exists for; without it the next test proves nothing.
    consumer = await new_reader(settings, long_log)
    try:
        assert await read_for(consumer, long_log, 3.0) < BATCHES
    finally:
        await consumer.stop()


@pytest.mark.broker
async def test_the_backlog_wait_reads_a_long_log_then_waits_short_again(
    long_log: TopicPartition, settings: HeartSettings
) -> None:
    consumer = await new_reader(settings, long_log)
    try:
        use_backlog_wait(consumer, 500)
        fetcher = consumer._fetcher
        assert isinstance(fetcher, BacklogAwareFetcher)
        assert (fetcher.idle_wait_ms, fetcher.backlog_wait_ms) == (TINY_WAIT_MS, 500)
        assert await read_for(consumer, long_log, 30.0) == BATCHES
        # At the log end the broker holds every fetch for the whole wait: short again.
        deadline = time.monotonic() + 5
        while fetcher._fetch_max_wait_ms != TINY_WAIT_MS:
            assert time.monotonic() < deadline, "the wait stayed long at the log end"
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
