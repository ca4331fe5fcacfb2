"""``heart worker STAGE``: the one way every stage runs, from a laptop to Kubernetes."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from heart.agents.registry import build_stage
from heart.cli.broker_reach import check_broker
from heart.streams import metrics
from heart.streams.admin import create_topics
from heart.streams.settings import HeartSettings

log = logging.getLogger(__name__)

#: Loggers that print record keys and values at DEBUG; kept at INFO or above.
PAYLOAD_LOGGERS = ("aiokafka", "faust.topics", "faust.transport", "faust.tables")

#: Exit status of a worker whose table recovery stalled (EX_TEMPFAIL: try again).
RECOVERY_STALLED_EXIT = 75


def run_worker(name: str, settings: HeartSettings, loglevel: str = "info") -> None:
    import faust

    stage = build_stage(name, settings)
    # First, so that a taken port stops the worker before it touches the broker.
    port = metrics.serve(settings.metrics_port, settings.metrics_host)
    # An unreachable broker ends the worker here, with one line (heart.cli.main), not deep
    # inside Faust's startup.
    check_broker(settings)
    # The worker never has a topic auto-created (streams.explicit_topics): without the
    # catalog's topics it would wait for them.
    asyncio.run(create_topics(settings))
    log.info("stage %s: metrics on port %d", name, port)
    print(f"heart worker {name}: metrics on http://127.0.0.1:{port}/metrics", flush=True)
    stage.app.on_recovery_stalled = _exit_for_restart
    worker = faust.Worker(stage.app, loglevel=loglevel, quiet=True)
    # At DEBUG these print every record they send or receive, personal data included.
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger(name).level))
    worker.execute_from_commandline()


def _exit_for_restart(stalled_s: float) -> None:
    # Straight out, not through Faust's shutdown: stopping the app waits on the consumer
    # and recovery that are stuck. A recovering stage has nothing in flight to lose; its
    # state is rebuilt from the changelogs by the process that replaces this one.
    log.critical(
        "exiting with status %d after table recovery stalled for %.0fs",
        RECOVERY_STALLED_EXIT,
        stalled_s,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(RECOVERY_STALLED_EXIT)
