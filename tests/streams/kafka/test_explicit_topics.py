"""The worker never asks the broker to auto-create a topic (docs/reliability.md,
"Topics are never auto-created").

Against the real embedded broker, which auto-creates a topic named in a metadata request
that allows it, with 4 partitions whatever the catalog says. A plain aiokafka producer is
the control: it does create the topic, so these tests would notice a broker that stopped
auto-creating (and then prove nothing).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import aiokafka
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import UnknownTopicOrPartitionError
from faust.exceptions import ProducerSendError
from faust.types import TP

from heart.streams.app import HeartApp, create_app
from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.embedded.end_offset_probe import true_end_offsets
from heart.streams.kafka.consumer import HeartConsumerThread
from heart.streams.kafka.explicit_topics import ExplicitTopicsClient, ExplicitTopicsProducer
from heart.streams.kafka.transport import HeartProducer
from heart.streams.settings import HeartSettings

pytestmark = pytest.mark.broker

#: Short enough for a send to a missing topic to give up quickly in a test; a worker's
#: producer waits Faust's 20 minutes.
REQUEST_TIMEOUT_S = 2.0
#: The embedded broker's partition count for an auto-created topic.
BROKER_DEFAULT_PARTITIONS = 4
#: The catalog's count for a stage's topics and changelogs.
CATALOG_PARTITIONS = 6


async def partitions_of(settings: HeartSettings, topic: str) -> int | None:
    """The topic's partition count, or None when the broker does not have it.

    Asks for the metadata of every topic: a request naming a missing topic (as
    ``AIOKafkaAdminClient.describe_topics`` sends) would create it.
    """
    client = AIOKafkaClient(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
    finally:
        await client.close()
    partitions = cluster.partitions_for_topic(topic)
    return None if partitions is None else len(partitions)


async def create_topic(settings: HeartSettings, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()


def test_the_copied_metadata_update_is_of_the_installed_aiokafka() -> None:
    """``ExplicitTopicsClient._metadata_update`` is a copy of aiokafka 0.14's (pinned in
    pyproject.toml): an upgrade must re-check it (and then this test)."""
    assert aiokafka.__version__.startswith("0.14.")
    upstream = inspect.getsource(AIOKafkaClient._metadata_update)
    assert "MetadataRequest(list(topics) if topics else None)" in upstream


@pytest.fixture
async def worker_app(settings: HeartSettings, unique: str) -> AsyncIterator[HeartApp]:
    """A stage's app built as ``heart worker`` builds it, its producer started."""
    app = create_app(f"explicit-{unique}", settings)
    app.producer.request_timeout = REQUEST_TIMEOUT_S
    await app.producer.start()
    try:
        yield app
    finally:
        await app.producer.stop()


async def test_a_plain_producer_auto_creates_a_missing_topic(
    settings: HeartSettings, unique: str
) -> None:
    topic = f"auto-{unique}"
    producer = AIOKafkaProducer(
        request_timeout_ms=int(REQUEST_TIMEOUT_S * 1000),
        **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"v", partition=0)
    finally:
        await producer.stop()
    assert await partitions_of(settings, topic) == BROKER_DEFAULT_PARTITIONS


async def test_the_worker_producer_does_not_create_a_missing_topic(
    worker_app: HeartApp, settings: HeartSettings, unique: str
) -> None:
    producer = worker_app.producer
    assert isinstance(producer, HeartProducer)
    aio = producer._ensure_producer()
    assert isinstance(aio, ExplicitTopicsProducer)
    assert isinstance(aio.client, ExplicitTopicsClient)

    topic = f"explicit-{unique}"
    with pytest.raises(ProducerSendError) as raised:
        await producer.send_and_wait(topic, None, b"v", None, None, None)
    assert isinstance(raised.value.__cause__, UnknownTopicOrPartitionError)
    # The producer asked for the topic's metadata every retry backoff for two seconds.
    assert await partitions_of(settings, topic) is None

    # Once the topic exists (as the catalog creates it), the same producer writes to it.
    await create_topic(settings, topic, CATALOG_PARTITIONS)
    sent = await producer.send_and_wait(topic, None, b"v", CATALOG_PARTITIONS - 1, None, None)
    assert sent.partition == CATALOG_PARTITIONS - 1
    assert await partitions_of(settings, topic) == CATALOG_PARTITIONS


async def test_the_worker_consumer_and_the_end_offset_probe_do_not_create_a_missing_topic(
    worker_app: HeartApp, settings: HeartSettings, unique: str
) -> None:
    topic = f"explicit-consumer-{unique}"
    thread = worker_app.consumer._thread
    assert isinstance(thread, HeartConsumerThread)
    consumer = thread._create_worker_consumer(worker_app.transport)
    client = consumer._client
    assert isinstance(client, ExplicitTopicsClient)
    # What the consumer does for a subscribed topic, without joining a group.
    await client.bootstrap()
    try:
        await client.add_topic(topic)
        assert client.cluster.partitions_for_topic(topic) is None
    finally:
        await client.close()
    assert await partitions_of(settings, topic) is None

    # Table recovery's probe: the partition keeps the reported end offset.
    tp = TP(topic, 0)
    assert await true_end_offsets(settings, [tp], reported={tp: 0}, timeout_s=0.5) == {tp: 0}
    assert await partitions_of(settings, topic) is None


@pytest.mark.parametrize("producer_of", ["plain", "worker"])
async def test_after_the_broker_comes_back_empty_only_the_catalog_recreates_a_topic(
    own_broker: EmbeddedBroker, unique: str, producer_of: str
) -> None:
    """Bug 19 itself. A producer has written to a changelog; the broker comes back empty
    and the producer refreshes its metadata (as a produce failing on the lost connection
    makes it do), which drops the topic. Its next record to the topic then asks for the
    topic's metadata: a plain producer's request recreates it with the broker's default
    count; the worker's waits for the catalog to create it, then goes where it was for."""
    settings = HeartSettings(kafka_bootstrap=own_broker.bootstrap)
    topic = f"changelog-{unique}"
    last = CATALOG_PARTITIONS - 1
    await create_topic(settings, topic, CATALOG_PARTITIONS)
    app = create_app(f"explicit-loss-{unique}", settings)
    # Long enough to ride out the wait for the catalog (a worker's waits 20 minutes).
    app.producer.request_timeout = 30.0
    plain = AIOKafkaProducer(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await (plain.start() if producer_of == "plain" else app.producer.start())
    try:
        aio = plain if producer_of == "plain" else app.producer._ensure_producer()
        await aio.send_and_wait(topic, b"before", key=b"k", partition=last)

        # Killed after 0.5 s: with clients connected the broker took 5 s to stop on SIGTERM.
        own_broker.stop(timeout=0.5)
        own_broker.start()
        # The first refresh can fail on the connection the restart broke.
        for _ in range(50):
            if await aio.client.force_metadata_update():
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the producer never refreshed its metadata after the restart")

        if producer_of == "plain":
            await plain.send_and_wait(topic, b"after", key=b"k", partition=0)
            assert await partitions_of(settings, topic) == BROKER_DEFAULT_PARTITIONS
            return
        sending = asyncio.ensure_future(
            app.producer.send_and_wait(topic, b"k", b"after", last, None, None)
        )
        await asyncio.sleep(0.5)
        assert not sending.done()
        assert await partitions_of(settings, topic) is None

        await create_topic(settings, topic, CATALOG_PARTITIONS)
        delivered = await asyncio.wait_for(sending, 10.0)
        assert (delivered.topic, delivered.partition) == (topic, last)
        assert await partitions_of(settings, topic) == CATALOG_PARTITIONS
    finally:
        await (plain.stop() if producer_of == "plain" else app.producer.stop())
