"""A stage's runtime: its app, clock, topics and dead-letter sink, wired once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from faust.serializers import codecs
from faust.streams import current_event
from faust.types import EventT, StreamT, TableT, TopicT
from pydantic import BaseModel

from heart.streams import lag, metrics
from heart.streams.app import HeartApp, create_app
from heart.streams.breaker import CircuitBreaker, install_operator_signals
from heart.streams.clock import Clock, make_clock
from heart.streams.codec import encode
from heart.streams.deadletter import DeadLetterAlarm, DeadLetterSink, FutureLimit, decoded
from heart.streams.outbox import Outbox, current_outbox
from heart.streams.settings import HeartSettings
from heart.streams.topics import CATALOG, DEADLETTER, TableSpec, TopicSpec

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
    #: The producer's partitioner, looked up on first use (the producer starts with the app).
    _partitioner: Callable[[bytes, list[int], list[int]], int] | None = None
    #: Partition count -> its partition list, as the partitioner takes it: built once.
    _partition_lists: dict[int, list[int]] = field(default_factory=dict)

    def topic(self, spec: TopicSpec) -> TopicT:
        """The Faust topic for a catalog entry; raw bytes, decoded by ``heart.streams.codec``."""
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
        ``heart.streams.admin.create_topics`` creates (name, partitions)."""
        if spec.stage != self.name:
            raise ValueError(f"table {spec.name!r} belongs to stage {spec.stage}, not {self.name}")
        return self.app.Table(spec.name, default=None, partitions=spec.partitions, help=spec.help)

    @cached_property
    def deadletters(self) -> DeadLetterSink:
        s = self.settings
        breaker = CircuitBreaker(
            self.name, cooldown_s=s.breaker_cooldown_s, max_cooldown_s=s.breaker_max_cooldown_s
        )
        return DeadLetterSink(
            self.topic(DEADLETTER),
            self.name,
            self.clock,
            breaker,
            future=FutureLimit.from_settings(s),
            alarm=DeadLetterAlarm(self.name, s.deadletter_alarm_per_min),
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

        While the stage handles a batch read by :meth:`read`, the record waits in the
        batch's outbox instead and goes to the producer with the rest of the batch's
        records, before the batch is acked (:mod:`heart.streams.outbox`).
        """
        output = self._outputs.get(spec.name)
        if output is None:
            output = self._outputs[spec.name] = (
                spec.full_name(self.settings.topic_prefix),
                metrics.EVENTS_PRODUCED.labels(self.name, spec.name),
            )
        topic, produced = output
        outbox = current_outbox()
        if outbox is not None:
            outbox.add(topic, key.encode(), encode(event))
            produced.inc()
            return
        delivery = await self.app.producer.send(
            topic, key.encode(), encode(event), partition=None, timestamp=None, headers=None
        )
        delivery.add_done_callback(_log_failed_delivery)
        produced.inc()

    @staticmethod
    def require_copartitioned(inputs: Iterable[TopicSpec], commands: TopicSpec) -> None:
        """Raise unless every input has ``commands``' partition count. Faust assigns topics
        of one partition count together: only then does the partition an input arrives on
        hold the record of its key, and the commands topic reach the same worker."""
        for spec in inputs:
            if spec.partitions != commands.partitions:
                raise ValueError(
                    f"{spec.name} has {spec.partitions} partitions; inputs re-keyed onto "
                    f"{commands.name} need its {commands.partitions}"
                )

    def partition_of(self, spec: TopicSpec, key: str) -> int:
        """The partition of ``spec`` that :meth:`send` puts ``key`` on: the producer's own
        partitioner over the catalog's partition count, which ``heart.streams.admin.create_topics``
        gives every topic.

        A stage whose input topic is co-partitioned with its internal commands topic uses it
        to handle an event where it arrives when that partition owns the event's key,
        instead of re-keying it through the commands topic first.
        """
        if self._partitioner is None:
            producer: Any = self.app.producer
            self._partitioner = producer._ensure_producer()._partitioner
        partitions = self._partition_lists.get(spec.partitions)
        if partitions is None:
            partitions = self._partition_lists[spec.partitions] = list(range(spec.partitions))
        return self._partitioner(key.encode(), partitions, partitions)

    def read(
        self,
        stream: StreamT,
        spec: TopicSpec,
        wanted: Callable[[dict[str, Any]], bool] | None = None,
    ) -> AsyncIterator[tuple[Any, EventT]]:
        """``(model, event)`` for each valid event of ``stream`` (:func:`decoded`), read a
        batch at a time: what the stage sends and writes to its tables while it handles a
        batch goes out together, before the batch is acked (:mod:`heart.streams.outbox`)."""
        return decoded(
            stream,
            spec,
            self.deadletters,
            wanted,
            outbox=Outbox(self.app),
            limit=self.settings.batch_max_events,
        )

    @staticmethod
    def get(table: TableT[Any, Any], key: Any) -> Any:
        """``table.get(key)``, read from the table's store: Faust's own read calls its
        sensors and, for a key not there, raises and catches a ``KeyError`` (the stages
        look up a new call's key for almost every event)."""
        return table.data.get(key)

    def put(
        self, table: TableT[Any, Any], key: Any, value: Any, *, encoded: bytes | None = None
    ) -> None:
        """``table[key] = value``, its changelog record going out with the batch's outputs.

        ``encoded`` is ``value`` already in the table's value codec (JSON), for a caller
        that can build it more cheaply than encoding the whole value again.
        """
        outbox = current_outbox()
        event = current_event()
        if outbox is None or event is None:
            table[key] = value
            return
        # Faust's own check, once per source topic: co-partitioned with the changelog.
        table._verify_source_topic_partitions(event.message.topic)  # type: ignore[attr-defined]
        topic, key_bytes, value_bytes = _changelog(
            table, key, value if encoded is None else None, table.value_serializer
        )
        if encoded is not None:
            value_bytes = encoded
        # Queued first: a record the producer would refuse leaves the table as it was.
        outbox.add(topic, key_bytes, value_bytes, event.message.partition, state=True)
        table.data[key] = value

    def delete(self, table: TableT[Any, Any], key: Any) -> None:
        """``table.pop(key, None)``, its tombstone going out with the batch's outputs."""
        outbox = current_outbox()
        event = current_event()
        if outbox is None or event is None:
            table.pop(key, None)
            return
        table._verify_source_topic_partitions(event.message.topic)  # type: ignore[attr-defined]
        if table.data.pop(key, _MISSING) is _MISSING:
            return
        topic, key_bytes, value_bytes = _changelog(table, key, None, "raw")
        outbox.add(topic, key_bytes, value_bytes, event.message.partition, state=True)

    def topic_label(self, full_name: str) -> str | None:
        """Catalog name of a subscribed topic, for metric labels; None for internal ones."""
        prefix = self.settings.topic_prefix
        name = full_name[len(prefix) :] if full_name.startswith(prefix) else full_name
        return name if name in CATALOG else None


_MISSING = object()


class TableWriter(MutableMapping[Any, Any]):
    """A table as a mapping whose writes go through :meth:`Stage.put` and
    :meth:`Stage.delete`, for code written against any mutable mapping."""

    def __init__(self, stage: Stage, table: TableT[Any, Any]) -> None:
        self._stage = stage
        self._table = table

    def __getitem__(self, key: Any) -> Any:
        return self._table[key]

    def get(self, key: Any, default: Any = None) -> Any:
        value = Stage.get(self._table, key)
        return default if value is None else value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._stage.put(self._table, key, value)

    def __delitem__(self, key: Any) -> None:
        if key not in self._table:
            raise KeyError(key)
        self._stage.delete(self._table, key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def _changelog(
    table: TableT[Any, Any], key: Any, value: Any, value_serializer: Any
) -> tuple[str, bytes | None, bytes | None]:
    """The changelog record Faust's ``Table.on_key_set`` / ``on_key_del`` would send,
    encoded with the table's own codecs (the tables have no key or value type, so Faust's
    schema step adds nothing); it goes to the partition of the event being handled, as
    Faust's does."""
    key_bytes = codecs.dumps(table.key_serializer, key)
    value_bytes = None if value is None else codecs.dumps(value_serializer, value)
    return table.changelog_topic.get_topic_name(), key_bytes, value_bytes


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

    @stage.app.task
    async def _operator_signals() -> None:
        # Once the worker runs (its own handlers are in place by then): SIGUSR1 retries and
        # SIGUSR2 dead-letters what a paused stage holds (heart.streams.breaker).
        install_operator_signals(asyncio.get_running_loop())

    return stage
