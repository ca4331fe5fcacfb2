"""The floor reference: a plain Faust passthrough agent with the project's own settings.

``python -m bench.passthrough`` runs one worker built by :func:`streams.app.create_app`
(the same :class:`~streams.transport.HeartApp`, consumer tuning and ``HEART_*`` settings
every stage uses) whose one agent copies ``bench.passthrough.in`` to
``bench.passthrough.out`` unchanged: no decoding, no validation, no table, no metrics.

``python -m bench.passthrough --runtime`` copies the same way through the stages' own
runtime instead of Faust's per-event iteration: the batch reader
(:mod:`streams.drain`) and the outbox (:mod:`streams.outbox`). What a stage costs beyond
this is its own logic (decoding, validation, policy, state, metrics).
"""

from __future__ import annotations

import sys

import faust
from faust.types import StreamT

from heart.streams.app import create_app
from heart.streams.drain import event_batches
from heart.streams.outbox import Outbox
from heart.streams.settings import HeartSettings

IN = "bench.passthrough.in"
OUT = "bench.passthrough.out"
PARTITIONS = 6


def build(settings: HeartSettings) -> faust.App:
    app = create_app("bench-passthrough", settings)
    prefix = settings.topic_prefix
    source = app.topic(
        f"{prefix}{IN}", key_serializer="raw", value_serializer="raw", partitions=PARTITIONS
    )
    sink = app.topic(
        f"{prefix}{OUT}", key_serializer="raw", value_serializer="raw", partitions=PARTITIONS
    )

    @app.agent(source, name="passthrough")
    async def passthrough(stream: StreamT) -> None:
        async for key, value in stream.items():
            await sink.send(key=key, value=value)

    return app


def build_runtime(settings: HeartSettings) -> faust.App:
    app = create_app("bench-runtime", settings)
    prefix = settings.topic_prefix
    source = app.topic(
        f"{prefix}{IN}", key_serializer="raw", value_serializer="raw", partitions=PARTITIONS
    )
    sink = f"{prefix}{OUT}"

    @app.agent(source, name="runtime")
    async def runtime(stream: StreamT) -> None:
        outbox = Outbox(app)
        async for batch in event_batches(stream, settings.batch_max_events, outbox):
            for event in batch:
                if not batch.take(event):
                    break
                outbox.add(sink, event.message.key, event.message.value)

    return app


def main() -> None:
    settings = HeartSettings.from_env()
    app = build_runtime(settings) if "--runtime" in sys.argv[1:] else build(settings)
    sys.argv[1:] = [a for a in sys.argv[1:] if a != "--runtime"]
    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
