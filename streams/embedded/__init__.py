"""Everything HEART Stream does only because the embedded broker (Tansu) has defects.

The one switch is ``HEART_BROKER``: ``embedded`` (the default, for ``heart up``, tests and
CI) turns these workarounds on, ``kafka`` (Apache Kafka, set by docker-compose and
Kubernetes) turns every one of them off. Callers ask through :func:`tune_fetch_wait` and
:func:`end_offsets`; nothing else reads the setting. ``docs/embedded-broker.md`` lists the
defects; once Tansu fixes one, its module here goes:

* :mod:`.end_offset_probe`: ListOffsets(LATEST) under-reported (table recovery drops the tail);
* :mod:`.fetch_wait`: a fetch inside a long log gathers only until its wait is over;
* :mod:`.broker`: the launcher of the Tansu binary itself (stays while it is embedded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer
from faust.types import TP

from heart.streams.embedded.end_offset_probe import true_end_offsets
from heart.streams.embedded.fetch_wait import use_backlog_wait
from heart.streams.settings import HeartSettings

__all__ = ["active", "end_offsets", "tune_fetch_wait"]


def active(settings: HeartSettings) -> bool:
    """Whether the broker is the embedded one, whose defects are worked around."""
    return settings.broker == "embedded"


def tune_fetch_wait(
    consumer: AIOKafkaConsumer, settings: HeartSettings, *, idle_wait_ms: int | None = None
) -> None:
    """Give a started consumer the backlog fetch wait on the embedded broker; nothing on
    Kafka, which answers a fetch as soon as it has data."""
    if active(settings):
        use_backlog_wait(consumer, settings.fetch_backlog_wait_ms, idle_wait_ms)


async def end_offsets(
    settings: HeartSettings, tps: Iterable[TP], reported: Mapping[TP, int]
) -> dict[TP, int]:
    """The true end offset of each partition, from what ``end_offsets()`` ``reported``:
    corrected on the embedded broker, taken as it is on Kafka."""
    wanted = list(tps)
    if not active(settings) or not wanted:
        return {tp: int(reported[tp]) for tp in wanted}
    return await true_end_offsets(settings, wanted, reported=reported)
