"""aiokafka clients that never ask the broker to create a topic.

Every topic is created explicitly, with its partition count and configuration, by the
catalog (:mod:`heart.streams.topics`, :func:`heart.streams.admin.create_topics`). aiokafka 0.14.0
nevertheless sends every Metadata request for named topics with
``allow_auto_topic_creation=true`` (``AIOKafkaClient._metadata_update`` leaves the flag
unset and ``MetadataRequest.build`` turns that into true from v4 on), and a broker that
auto-creates topics (the embedded one does; Apache Kafka does unless
``auto.create.topics.enable=false``, as ``docker-compose.yml`` sets) then creates a
missing topic with its *default* partition count. A producer retrying a record in flight
when the broker came back empty did exactly that to a table's changelog: 4 partitions
instead of 6 (``docs/reliability.md``, "Topics are never auto-created").

:class:`ExplicitTopicsClient` asks for metadata without auto-creation, so a missing topic
stays missing: a send waits (and eventually times out) until the catalog creates it.
:class:`ExplicitTopicsProducer` is an ``AIOKafkaProducer`` using it, and
:func:`use_explicit_topics` switches the client of an aiokafka producer or consumer that
something else (Faust) constructs.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient, ConnectionGroup
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

log = logging.getLogger(__name__)

__all__ = ["ExplicitTopicsClient", "ExplicitTopicsProducer", "use_explicit_topics"]


class ExplicitTopicsClient(AIOKafkaClient):
    """An ``AIOKafkaClient`` whose metadata requests never ask for auto-creation."""

    async def _metadata_update(self, cluster_metadata: ClusterMetadata, topics: Any) -> bool:
        # Copied from aiokafka 0.14.0 (aiokafka/client.py, AIOKafkaClient._metadata_update)
        # with one change, allow_auto_topic_creation=False: the request is built inside
        # the method, with no hook to pass the flag. (asyncio.TimeoutError is spelt
        # TimeoutError, the same class since Python 3.11.) Re-check this copy when
        # upgrading aiokafka. With topics None the request asks for every topic, and the
        # flag means nothing.
        assert isinstance(cluster_metadata, ClusterMetadata)
        metadata_request = MetadataRequest(
            list(topics) if topics else None, allow_auto_topic_creation=False
        )
        nodeids = [b.nodeId for b in self.cluster.brokers()]
        bootstrap_id = ("bootstrap", ConnectionGroup.DEFAULT)
        if bootstrap_id in self._conns:
            nodeids.append("bootstrap")
        random.shuffle(nodeids)
        for node_id in nodeids:
            conn = await self._get_conn(node_id)

            if conn is None:
                continue
            log.debug("Sending metadata request %s to node %s", metadata_request, node_id)

            try:
                metadata = await conn.send(metadata_request)
            except (TimeoutError, KafkaError) as err:
                log.warning("Unable to request metadata from node with id %s: %r", node_id, err)
                continue

            # don't update the cluster if there are no valid nodes...the topic
            # we want may still be in the process of being created which means
            # we will get errors and no nodes until it exists
            if not metadata.brokers:
                return False

            cluster_metadata.update_metadata(metadata)

            # We only keep bootstrap connection to update metadata until
            # proper cluster layout is available.
            if bootstrap_id in self._conns and len(self.cluster.brokers()):
                conn = self._conns.pop(bootstrap_id)
                conn.close()

            break
        else:
            log.error("Unable to update metadata from %s", nodeids)
            cluster_metadata.failed_update(None)
            return False
        return True


def use_explicit_topics(client: AIOKafkaClient) -> None:
    """Make an aiokafka client that is not started yet never ask for auto-creation.

    aiokafka's producer and consumer construct their ``AIOKafkaClient`` inside their
    ``__init__`` with no way to pass another class, so the instance's class is switched
    instead. :class:`ExplicitTopicsClient` adds no state and overrides one method, so
    the switch is safe on a client that has not started talking to the broker.
    """
    if type(client) is not AIOKafkaClient and not isinstance(client, ExplicitTopicsClient):
        raise TypeError(f"expected aiokafka's own AIOKafkaClient, got {type(client)!r}")
    client.__class__ = ExplicitTopicsClient


class ExplicitTopicsProducer(AIOKafkaProducer):
    """An ``AIOKafkaProducer`` that never asks the broker to create a topic.

    Sending to a missing topic waits for it (up to ``request_timeout_ms``, then
    ``UnknownTopicOrPartitionError``), and a batch in flight to a topic that vanished
    (a broker restarted empty) waits until the catalog recreates it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        use_explicit_topics(self.client)
