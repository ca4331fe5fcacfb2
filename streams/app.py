"""The Faust app factory: one app, one consumer group, per stage."""

from __future__ import annotations

from heart.streams.settings import HeartSettings
from heart.streams.transport import HeartApp, faust_credentials


def app_id(stage: str, settings: HeartSettings) -> str:
    return f"{settings.topic_prefix}heart-{stage}"


def create_app(stage: str, settings: HeartSettings) -> HeartApp:
    """A Faust app built for at-least-once delivery and the embedded broker's quirks.

    Exactly-once needs an idempotent producer the embedded broker lacks, and Faust's
    exactly-once has open duplicate bugs on Apache Kafka too: handlers de-duplicate on
    ``event_id`` instead.
    """
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
