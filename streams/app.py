"""The Faust app of a stage: one app, one consumer group, per stage.

:class:`HeartApp` runs on :mod:`heart.streams.kafka`'s transport and adds two operations
tasks: the table-recovery deadline and the release of free heap memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from time import monotonic
from typing import Any, cast

import faust
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT
from faust.types.transports import ProducerT, TransportT
from mode import Service
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from heart.streams import metrics
from heart.streams.kafka.consumer import StreamFlowControl
from heart.streams.kafka.monitor import LeanMonitor
from heart.streams.kafka.transport import HeartTransport
from heart.streams.memory import malloc_trim, release_free_memory
from heart.streams.settings import HeartSettings

log = logging.getLogger(__name__)


def app_id(stage: str, settings: HeartSettings) -> str:
    return f"{settings.topic_prefix}heart-{stage}"


def app_data_dir(app_name: str, settings: HeartSettings) -> Path:
    """Faust's data directory for one app, under ``HEART_DATA_DIR`` (never the current
    directory, where Faust puts it by default)."""
    return settings.data_dir / "stages" / app_name


def create_app(stage: str, settings: HeartSettings) -> HeartApp:
    """A Faust app built for at-least-once delivery.

    Exactly-once needs an idempotent producer the embedded broker lacks, and Faust's
    exactly-once has open duplicate bugs on Apache Kafka too: handlers de-duplicate on
    ``event_id`` instead.
    """
    # This process serves the metric families of the stages it builds, and only those.
    metrics.note_stage(stage)
    return HeartApp(
        app_id(stage, settings),
        heart_settings=settings,
        broker=";".join(f"kafka://{server}" for server in settings.bootstrap_servers),
        broker_credentials=faust_credentials(settings),
        store="memory://",
        processing_guarantee="at_least_once",
        autodiscover=False,
        web_enabled=False,
        topic_partitions=6,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_request_timeout=max(40.0, settings.session_timeout_s * 2),
        producer_linger=settings.producer_linger_s,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        broker_commit_every=settings.commit_every,
        broker_commit_interval=settings.commit_interval_s,
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        broker_max_poll_records=settings.max_poll_records,
        consumer_max_fetch_size=settings.consumer_max_fetch_bytes,
    )


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


def recovery_progress(app: faust.App) -> tuple[Any, ...] | None:
    """What changes while table recovery moves on; None when the app is not recovering.

    The offsets applied per changelog partition, the high watermarks recovery waits for
    and when the current recovery started (a rebalance restarts it).
    """
    recovery = app.tables.recovery
    if not recovery.in_recovery:
        return None
    return (
        recovery._recovery_started_at,
        tuple(sorted((str(tp), offset) for tp, offset in recovery.active_offsets.items())),
        tuple(sorted((str(tp), hw) for tp, hw in recovery.active_highwaters.items())),
    )


class HeartApp(faust.App):
    """A :class:`faust.App` whose consumer and producer use :class:`HeartTransport`.

    ``heart_settings`` is required and read by the consumer thread (fetch wait, whether
    to correct end offsets, connection options for the correcting fetch). The Monitor
    sensor defaults to :class:`LeanMonitor`. All other arguments are Faust's own.

    ``on_recovery_stalled`` is called once when table recovery has made no progress for
    ``heart_settings.recovery_stall_timeout_s``; ``heart worker`` sets it to exit the
    process. Without it the stall is only logged.
    """

    heart_settings: HeartSettings
    on_recovery_stalled: Callable[[float], None] | None = None

    def __init__(self, id: str, *, heart_settings: HeartSettings, **options: Any) -> None:
        # Set first: Faust may build the transport while initialising.
        self.heart_settings = heart_settings
        options.setdefault("Monitor", LeanMonitor)
        # Faust formats the path with str.format: braces in a user's path are literal.
        datadir = str(app_data_dir(id, heart_settings)).replace("{", "{{").replace("}", "}}")
        options.setdefault("datadir", datadir)
        super().__init__(id, **options)

    def _create_directories(self) -> None:
        # Faust creates only the last level; HEART_DATA_DIR may not exist yet.
        Path(self.conf.datadir).parent.mkdir(parents=True, exist_ok=True)
        super()._create_directories()

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return StreamFlowControl(loop=self.loop)

    def _new_producer(self) -> ProducerT:
        producer = super()._new_producer()
        # An instance attribute: Faust reads it from the buffer, a class default.
        producer.buffer.max_messages = self.heart_settings.producer_buffer_max  # type: ignore[attr-defined]
        return producer

    @Service.task
    async def _recovery_deadline(self) -> None:
        # A Service task of the app itself: Faust starts app timers and tasks only after
        # the first recovery has completed, which is exactly what may never happen.
        limit = self.heart_settings.recovery_stall_timeout_s
        if not limit:
            return
        every = min(1.0, limit / 4)
        last: tuple[Any, ...] | None = None
        since = monotonic()
        while not self.should_stop:
            await self.sleep(every)
            progress = recovery_progress(self)
            now = monotonic()
            if progress is None or progress != last:
                last, since = progress, now
                continue
            stalled = now - since
            if stalled < limit:
                continue
            log.critical(
                "table recovery made no progress for %.0fs (remaining per changelog "
                "partition: %s); giving up so the stage is restarted",
                stalled,
                dict(self.tables.recovery.active_remaining()) or "unknown",
            )
            if self.on_recovery_stalled is not None:
                self.on_recovery_stalled(stalled)
            since = now  # only logged: say it again after another full period

    @Service.task
    async def _release_free_memory(self) -> None:
        every = self.heart_settings.memory_release_interval_s
        if not every or malloc_trim() is None:
            return
        loop = asyncio.get_running_loop()
        while not self.should_stop:
            await self.sleep(every)
            # Off the event loop: the heap walk takes milliseconds on a large heap, and
            # ctypes releases the GIL while it runs.
            await loop.run_in_executor(None, release_free_memory)

    def _new_transport(self) -> TransportT:
        return cast(TransportT, HeartTransport(self.conf.broker_consumer, self))
