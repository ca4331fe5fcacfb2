"""Faust's aiokafka transport, adjusted for the embedded broker (Tansu).

Two Tansu defects are handled here, both harmless on Apache Kafka:

* Faust hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer, and Tansu never
  answers a waiting fetch early, so every agent hop costs about a second. The worker
  consumer uses ``HeartSettings.fetch_wait_ms`` instead.
* Tansu answers ListOffsets(LATEST) (``end_offsets()``) with the base offset of the last
  record batch + 1. Faust's table recovery stops at that offset and silently drops the
  changelog's tail. :func:`true_end_offsets` corrects the answer from the high watermark
  of a fetch response, which Tansu gets right, and the worker uses it for recovery.

It also carries :class:`LeanMonitor`, Faust's statistics sensor without its per-event
bookkeeping (the project's metrics are Prometheus counters, not Faust's).

Use :class:`HeartApp` instead of :class:`faust.App` to get all three.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from time import monotonic
from typing import Any, cast

import aiokafka
import faust
from aiokafka import TopicPartition
from faust.auth import SASLCredentials, SSLCredentials
from faust.sensors import Monitor
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, CollectionT, EventT, Message, StreamT
from faust.types.auth import CredentialsT
from faust.types.transports import TransportT

from streams.settings import HeartSettings

log = logging.getLogger(__name__)

__all__ = [
    "HeartApp",
    "HeartConsumer",
    "HeartConsumerThread",
    "HeartTransport",
    "LeanMonitor",
    "faust_credentials",
    "true_end_offsets",
]

# The probe fetches at or just below the log end. Tansu holds a fetch for the whole wait
# when there is nothing new, so keep it short or every probe round costs the full wait.
_PROBE_FETCH_WAIT_MS = 10
_PROBE_POLL_MS = 20


async def true_end_offsets(
    settings_or_kwargs: HeartSettings | Mapping[str, Any],
    tps: Iterable[TP],
    *,
    reported: Mapping[TP, int] | None = None,
    timeout_s: float = 5.0,
) -> dict[TP, int]:
    """Return the end offset (offset of the next record) of each partition.

    ``end_offsets()`` can be too low on the embedded broker, so this asks it first
    (unless ``reported`` already holds its answer), then fetches once from that offset
    with a temporary group-less consumer and takes the larger of the two answers and the
    fetch's high watermark. One consumer serves all partitions. A partition whose high
    watermark does not arrive within ``timeout_s`` keeps the reported offset, with a
    warning.

    ``settings_or_kwargs`` is either the settings or ready aiokafka connection kwargs
    (as from :meth:`HeartSettings.aiokafka_kwargs`).

    The topics must already exist: on the embedded broker the probe's metadata request
    auto-creates a missing topic with 4 partitions, which breaks a changelog Faust has
    yet to declare.
    """
    wanted = list(dict.fromkeys(tps))
    if not wanted:
        return {}
    if isinstance(settings_or_kwargs, HeartSettings):
        kwargs = dict(settings_or_kwargs.aiokafka_kwargs())
    else:
        kwargs = dict(settings_or_kwargs)
    # aiokafka wants its own TopicPartition; callers may pass Faust's TP (same fields).
    native = {tp: TopicPartition(tp.topic, tp.partition) for tp in wanted}
    consumer = aiokafka.AIOKafkaConsumer(
        **kwargs,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=_PROBE_FETCH_WAIT_MS,
        auto_offset_reset="latest",
    )
    await consumer.start()
    try:
        if reported is None:
            answer = await consumer.end_offsets(list(native.values()))
            listed = {tp: int(answer[native[tp]]) for tp in wanted}
        else:
            listed = {tp: int(reported[tp]) for tp in wanted}
        consumer.assign(list(native.values()))
        for tp in wanted:
            consumer.seek(native[tp], listed[tp])
        deadline = time.monotonic() + timeout_s
        highwaters: dict[TP, int] = {}
        while True:
            for tp in wanted:
                if tp not in highwaters:
                    value = consumer.highwater(native[tp])
                    if value is not None:
                        highwaters[tp] = int(value)
            if len(highwaters) == len(wanted) or time.monotonic() >= deadline:
                break
            # The records themselves are not needed: only the fetch response's high
            # watermark, which aiokafka records as the response arrives.
            await consumer.getmany(timeout_ms=_PROBE_POLL_MS)
    finally:
        await consumer.stop()
    missing = [tp for tp in wanted if tp not in highwaters]
    if missing:
        log.warning(
            "no fetch high watermark within %.1fs for %s; trusting end_offsets() there, "
            "which the embedded broker may under-report",
            timeout_s,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in missing),
        )
    corrected = {tp: max(listed[tp], highwaters.get(tp, listed[tp])) for tp in wanted}
    changed = {tp: (listed[tp], corrected[tp]) for tp in wanted if corrected[tp] != listed[tp]}
    if changed:
        log.info(
            "corrected under-reported end offsets: %s",
            ", ".join(f"{tp.topic}[{tp.partition}] {a}->{b}" for tp, (a, b) in changed.items()),
        )
    return corrected


def faust_credentials(settings: HeartSettings) -> CredentialsT | None:
    """Faust ``broker_credentials`` equivalent to :meth:`HeartSettings.aiokafka_kwargs`."""
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL_"):
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=settings.ssl_context() if protocol == "SASL_SSL" else None,
        )
    if protocol == "SSL":
        return SSLCredentials(settings.ssl_context())
    return None


class HeartConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with a configurable fetch wait and true end offsets."""

    @property
    def heart_settings(self) -> HeartSettings:
        settings = getattr(self.app, "heart_settings", None)
        if not isinstance(settings, HeartSettings):
            raise TypeError(
                "HeartTransport needs an app with a 'heart_settings' attribute; "
                "create the app as streams.transport.HeartApp"
            )
        return settings

    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka copies this into its Fetcher only in start(), which Faust calls after
        # this returns, so patching the unstarted consumer keeps every other option
        # Faust chose without copying its kwargs here.
        if consumer._fetcher is not None:
            raise RuntimeError("Faust started the worker consumer before it was tuned")
        consumer._fetch_max_wait_ms = self.heart_settings.fetch_wait_ms
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(partitions)
        settings = self.heart_settings
        # In a transaction Faust already uses the last stable offset, not end_offsets().
        if not settings.correct_end_offsets or self.consumer.in_transaction or not partitions:
            return reported
        return await true_end_offsets(settings, partitions, reported=reported)


class HeartConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> HeartConsumerThread:
        return HeartConsumerThread(self, loop=self.loop, beacon=self.beacon)


class HeartTransport(faust_aiokafka.Transport):
    Consumer = HeartConsumer


class LeanMonitor(Monitor):
    """Faust's Monitor sensor without the statistics it gathers on every event.

    Faust calls its Monitor on every message in and out, every stream event in and out,
    every table get and set and every send: several dictionary updates and clock reads
    per event, for statistics only Faust's web views and ``Monitor.asdict()`` show, and
    the project serves neither (its metrics are Prometheus counters, ``streams.metrics``).
    Measured in ``bench/``, that bookkeeping cost about a tenth of a passthrough agent's
    time per event.

    Kept: ``stream_inbound_time``, which Faust's consumer reads to log a stream that has
    stopped processing, and every per-commit, per-fetch and per-rebalance hook.
    """

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        return None

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: EventT
    ) -> dict[str, Any] | None:
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT,
        event: EventT,
        state: dict[str, Any] | None = None,
    ) -> None:
        return None

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        return None

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        return None

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        return None

    def on_table_del(self, table: CollectionT, key: Any) -> None:
        return None

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        return None

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        return None


class HeartApp(faust.App):
    """A :class:`faust.App` whose consumer uses :class:`HeartTransport`.

    ``heart_settings`` is required and read by the consumer thread (fetch wait, whether
    to correct end offsets, connection options for the correcting fetch). The Monitor
    sensor defaults to :class:`LeanMonitor`. All other arguments are Faust's own.
    """

    heart_settings: HeartSettings

    def __init__(self, id: str, *, heart_settings: HeartSettings, **options: Any) -> None:
        # Set first: Faust may build the transport while initialising.
        self.heart_settings = heart_settings
        options.setdefault("Monitor", LeanMonitor)
        super().__init__(id, **options)

    def _new_transport(self) -> TransportT:
        return cast(TransportT, HeartTransport(self.conf.broker_consumer, self))
