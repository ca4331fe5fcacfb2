"""Faust's aiokafka transport with :mod:`heart.streams.kafka`'s consumer and producer."""

from __future__ import annotations

import logging

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

from heart.streams.kafka.consumer import HeartConsumer
from heart.streams.kafka.explicit_topics import ExplicitTopicsProducer

log = logging.getLogger(__name__)


class HeartProducer(faust_aiokafka.Producer):
    """Faust's producer, never asking the broker to auto-create a topic.

    A record to a missing topic waits for the catalog to create it (Faust's
    ``producer_request_timeout``, 20 minutes by default) instead of creating it with the
    broker's default partition count; that includes a record in flight when the broker
    is lost and comes back empty (``docs/reliability.md``, "Topics are never auto-created"). Faust
    still declares
    its internal topics (changelogs) with an explicit CreateTopics request.

    Faust's threaded producer (``producer_threaded=True``, not used here) builds a plain
    ``AIOKafkaProducer`` of its own and would not get this.
    """

    @property
    def _producer_type(self) -> type[aiokafka.AIOKafkaProducer]:
        return ExplicitTopicsProducer


class HeartTransport(faust_aiokafka.Transport):
    Consumer = HeartConsumer
    Producer = HeartProducer
