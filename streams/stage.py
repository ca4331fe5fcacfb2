"""A stage's runtime: its app, clock, topics and dead-letter sink, wired once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from faust.types import TableT, TopicT
from pydantic import BaseModel

from streams import lag, metrics
from streams.app import create_app
from streams.breaker import CircuitBreaker
from streams.clock import Clock, make_clock
from streams.codec import encode
from streams.deadletter import DeadLetterSink, FutureLimit
from streams.settings import HeartSettings
from streams.topics import CATALOG, DEADLETTER, TableSpec, TopicSpec
from streams.transport import HeartApp

log = logging.getLogger(__name__)


@dataclass
class Stage:
    name: str
    settings: HeartSettings
    clock: Clock
    app: HeartApp
    _topics: dict[str, TopicT] = field(default_factory=dict)
    #: Catalog name -> (full topic name, produced counter), resolved once per topic.
    _outputs: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def topic(self, spec: TopicSpec) -> TopicT:
        """The Faust topic for a catalog entry; raw bytes, decoded by ``streams.codec``."""
        if spec.name not in self._topics:
            self._topics[spec.name] = self.app.topic(
                spec.full_name(self.settings.topic_prefix),
                key_serializer="raw",
                value_serializer="raw",
                partitions=spec.partitions,
                config=dict(spec.config),
            )
        return self._topics[spec.name]

    def table(self, spec: TableSpec) -> TableT[Any, Any]:
        """The Faust table for a declared table, so its changelog matches the one
        ``streams.admin.create_topics`` creates (name, partitions)."""
        if spec.stage != self.name:
            raise ValueError(f"table {spec.name!r} belongs to stage {spec.stage}, not {self.name}")
        return self.app.Table(spec.name, default=None, partitions=spec.partitions, help=spec.help)

    @cached_property
    def deadletters(self) -> DeadLetterSink:
        s = self.settings
        breaker = CircuitBreaker(
            self.name,
            window=s.breaker_window,
            threshold=s.breaker_threshold,
            min_events=s.breaker_min_events,
            cooldown_s=s.breaker_cooldown_s,
        )
        return DeadLetterSink(
            self.topic(DEADLETTER),
            self.name,
            self.clock,
            breaker,
            future=FutureLimit.from_settings(s),
        )

    async def send(self, spec: TopicSpec, key: str, event: BaseModel) -> None:
        """Produce ``event`` keyed by ``key`` through the app's producer.

        Straight to the producer rather than through ``Topic.send``: Faust's channel path
        builds a pending and a future message, re-serialises raw bytes and calls every
        sensor on each send, which ``bench/`` measured at about a fifth of a passthrough
        agent's time per event. The record, its partition (the key's) and its delivery
        are the same: like ``Topic.send`` this returns once the record is buffered, and
        Faust flushes the producer before it commits the offsets of the events that
        caused it, so at-least-once holds.
        """
        output = self._outputs.get(spec.name)
        if output is None:
            output = self._outputs[spec.name] = (
                spec.full_name(self.settings.topic_prefix),
                metrics.EVENTS_PRODUCED.labels(self.name, spec.name),
            )
        topic, produced = output
        delivery = await self.app.producer.send(
            topic, key.encode(), encode(event), partition=None, timestamp=None, headers=None
        )
        delivery.add_done_callback(_log_failed_delivery)
        produced.inc()

    def topic_label(self, full_name: str) -> str | None:
        """Catalog name of a subscribed topic, for metric labels; None for internal ones."""
        prefix = self.settings.topic_prefix
        name = full_name[len(prefix) :] if full_name.startswith(prefix) else full_name
        return name if name in CATALOG else None


def _log_failed_delivery(delivery: asyncio.Future[Any]) -> None:
    # What Faust's Topic.send does with a failed delivery: log it (nobody awaits it).
    if not delivery.cancelled() and (exc := delivery.exception()) is not None:
        log.warning("producer could not deliver a record: %r", exc)


LAG_SAMPLE_INTERVAL_S = 5.0


def create_stage(name: str, settings: HeartSettings, clock: Clock | None = None) -> Stage:
    stage = Stage(
        name=name,
        settings=settings,
        clock=clock or make_clock(settings.clock),
        app=create_app(name, settings),
    )

    @stage.app.timer(LAG_SAMPLE_INTERVAL_S, name=f"{name}-lag")
    async def _sample_lag() -> None:
        lag.sample(stage.app, name, stage.topic_label)

    return stage
