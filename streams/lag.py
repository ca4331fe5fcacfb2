"""Consumer lag per partition, in messages and seconds, as Prometheus gauges.

The high watermark comes from fetch responses (``consumer.highwater``), which the embedded
broker reports correctly, unlike ``end_offsets()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from faust.types import TP, AppT

from streams import metrics

#: tp -> wall time (s) of the newest message a stage has processed there, from its
#: record timestamp; the age of the oldest unprocessed one is at least now minus this.
_last_timestamp: dict[TP, float] = {}


def note_processed(tp: TP, timestamp: float | None) -> None:
    if timestamp:
        _last_timestamp[tp] = timestamp


def sample(app: AppT, stage: str, topic_names: Callable[[str], str | None] = lambda n: n) -> None:
    """Set the lag gauges for every partition this worker is assigned."""
    consumer = app.consumer
    now = time.time()
    for tp in consumer.assignment():
        label = topic_names(tp.topic)
        if label is None:
            continue
        highwater = consumer.highwater(tp)
        read = consumer._read_offset.get(tp)  # type: ignore[attr-defined]
        if highwater is None:
            continue
        position = (read + 1) if read is not None else 0
        lag = max(0, int(highwater) - position)
        metrics.CONSUMER_LAG.labels(stage, label, str(tp.partition)).set(lag)
        seen = _last_timestamp.get(tp)
        seconds = max(0.0, now - seen) if lag and seen else 0.0
        metrics.CONSUMER_LAG_SECONDS.labels(stage, label, str(tp.partition)).set(seconds)
