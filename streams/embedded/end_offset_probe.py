"""End offsets the embedded broker gets right: ListOffsets(LATEST) corrected from a fetch's high
watermark.

Tansu answers ``end_offsets()`` with the base offset of the last record batch + 1, too low
whenever that batch held more than one record; Faust's table recovery then stops early and
silently drops the changelog's tail. The high watermark in a fetch response is right.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiokafka
from aiokafka import TopicPartition
from faust.types import TP

from heart.streams.kafka.explicit_topics import use_explicit_topics
from heart.streams.settings import HeartSettings

log = logging.getLogger(__name__)

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

    The topics must already exist. The probe never asks the broker to auto-create one
    (the embedded broker would give it 4 partitions, breaking a changelog Faust has yet
    to declare): a missing partition has no high watermark and keeps the reported
    offset, and asking ``end_offsets()`` for it times out.
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
    use_explicit_topics(consumer._client)
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
