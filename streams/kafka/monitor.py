"""Faust's Monitor sensor without its per-event statistics."""

from __future__ import annotations

import logging
from time import monotonic
from typing import Any

from faust.sensors import Monitor
from faust.types import TP, CollectionT, EventT, Message, StreamT

log = logging.getLogger(__name__)


class LeanMonitor(Monitor):
    """Faust's Monitor sensor without the statistics it gathers on every event.

    Faust calls its Monitor on every message in and out, every stream event in and out,
    every table get and set and every send: several dictionary updates and clock reads
    per event, for statistics only Faust's web views and ``Monitor.asdict()`` show, and
    the project serves neither (its metrics are Prometheus counters, ``heart.streams.metrics``).
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
