"""A tiny Faust worker for the table kill-and-restart tests, run as a subprocess.

    python -m tests.streams.table_worker APP_ID SOURCE_TOPIC STATUS_JSON

Settings come from ``HEART_*`` variables, as for a real worker. The agent copies every
``key -> value`` record of SOURCE_TOPIC (1 partition, JSON string values) into the table
``kv`` (changelog ``APP_ID-kv-changelog``). Once this process's first table recovery is
complete it writes STATUS_JSON with the recovered table and the live consumer's fetch
wait, then keeps running until it is signalled.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import faust

from heart.streams.app import HeartApp, faust_credentials
from heart.streams.settings import HeartSettings

TABLE = "kv"


def make_app(app_id: str, settings: HeartSettings) -> HeartApp:
    """The app as ``heart.streams.app.create_app`` is meant to build it."""
    return HeartApp(
        app_id,
        heart_settings=settings,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
        broker_credentials=faust_credentials(settings),
        store="memory://",
        processing_guarantee="at_least_once",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        producer_linger=settings.producer_linger_s,
        broker_commit_every=settings.commit_every,
        broker_commit_interval=settings.commit_interval_s,
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        broker_max_poll_records=settings.max_poll_records,
        consumer_auto_offset_reset="earliest",
        topic_replication_factor=settings.topic_replication,
        web_enabled=False,
        autodiscover=False,
    )


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-{TABLE}-changelog"


def live_fetcher(app: faust.App) -> Any:
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    return getattr(consumer, "_fetcher", None)


def live_fetch_waits(app: faust.App) -> dict[str, Any]:
    """The worker consumer's fetch waits: at the log end, and while behind."""
    fetcher = live_fetcher(app)
    return {
        "fetcher": type(fetcher).__name__,
        "idle_ms": getattr(fetcher, "idle_wait_ms", None),
        "backlog_ms": getattr(fetcher, "backlog_wait_ms", None),
    }


def build(app_id: str, source: str, status_path: Path) -> HeartApp:
    app = make_app(app_id, HeartSettings.from_env())
    topic = app.topic(source, key_type=str, value_type=str, key_serializer="raw")
    table = app.Table(TABLE, key_type=str, value_type=str, partitions=1)

    @app.agent(topic)
    async def copy(stream: Any) -> None:
        async for key, value in stream.items():
            table[key] = value

    @app.task
    async def report() -> None:
        await app.tables.recovery.completed.wait()
        status = {
            "items": {str(k): v for k, v in table.items()},
            "fetch_waits": live_fetch_waits(app),
            "pid": os.getpid(),
        }
        # Written whole then renamed, so the test never reads half a file.
        partial = status_path.with_suffix(".part")
        partial.write_text(json.dumps(status))
        partial.replace(status_path)

    return app


def main(argv: list[str]) -> None:
    app_id, source, status_path = argv
    app = build(app_id, source, Path(status_path))
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
