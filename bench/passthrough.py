"""The floor reference: a plain Faust passthrough agent with the project's own settings.

``python -m bench.passthrough`` runs one worker built by :func:`streams.app.create_app`
(the same :class:`~streams.transport.HeartApp`, consumer tuning and ``HEART_*`` settings
every stage uses) whose one agent copies ``bench.passthrough.in`` to
``bench.passthrough.out`` unchanged: no decoding, no validation, no table, no metrics.
What a stage costs beyond this is its own logic.
"""

from __future__ import annotations

import faust
from faust.types import StreamT

from streams.app import create_app
from streams.settings import HeartSettings

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


def main() -> None:
    app = build(HeartSettings.from_env())
    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
