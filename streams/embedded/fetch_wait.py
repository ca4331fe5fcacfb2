"""A fetch wait that depends on whether a consumer is behind: short at the log end, long
inside the log.

The embedded broker (Tansu, memory storage) keeps every produced record batch as one
object. A fetch from inside a partition's log lists all of that partition's objects and
then gathers batches only until the request's ``fetch_max_wait_ms`` has passed. The
listing grows with the partition (measured on this machine, one partition, one record per
batch: 17 ms at 10,000 batches, 45 ms at 20,000), so with the 10 ms wait that keeps hops
fast at the log end, a fetch from inside a partition of about 15,000 batches returns one
record, and at 30,000 none: a consumer that falls behind there never catches up
(``docs/embedded-broker.md``, "Fetches from inside a long log stop early"). A 100 ms wait returned
everything asked for in the same
measurement.

At the log end there is nothing to gather and the broker holds the fetch for the whole
wait, so the wait stays short there (``HeartSettings.fetch_wait_ms``). Once a fetch
response's high watermark shows records beyond a partition's fetch position, the next
fetch asks with ``HeartSettings.fetch_backlog_wait_ms``, which costs nothing when records
are there: the broker answers as soon as it has gathered them. Apache Kafka answers any
fetch as soon as it has data, so there the longer wait never delays anything.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher

__all__ = ["BacklogAwareFetcher", "behind", "use_backlog_wait"]


def behind(fetcher: Fetcher, assignment: Any) -> bool:
    """Whether a partition about to be fetched has records beyond its fetch position.

    Partitions that will not be fetched this round (paused, without a position, or with
    fetched records still unconsumed) do not count: their wait would only hold back the
    others.
    """
    for tp in assignment.tps:
        state = assignment.state_value(tp)
        if state.paused or not state.has_valid_position or tp in fetcher._records:
            continue
        highwater = state.highwater
        if highwater is not None and state.position < highwater:
            return True
    return False


class BacklogAwareFetcher(Fetcher):
    """aiokafka's fetcher, choosing each fetch's wait from the partitions' backlog."""

    idle_wait_ms: int
    backlog_wait_ms: int

    def _get_actions_per_node(self, assignment: Any) -> Any:
        if behind(self, assignment):
            self._fetch_max_wait_ms = self.backlog_wait_ms
        else:
            self._fetch_max_wait_ms = self.idle_wait_ms
        return super()._get_actions_per_node(assignment)


def use_backlog_wait(
    consumer: AIOKafkaConsumer, backlog_wait_ms: int, idle_wait_ms: int | None = None
) -> None:
    """Give a started consumer's fetcher the two waits; the idle one defaults to the
    ``fetch_max_wait_ms`` it was created with.

    aiokafka builds its fetcher inside ``start()`` and offers no hook to choose its class,
    so the started fetcher's class is swapped; its fetch loop looks the method up on every
    round, so the next fetch uses it.
    """
    fetcher = consumer._fetcher
    if fetcher is None:
        raise RuntimeError("start the consumer before choosing its fetch waits")
    if not isinstance(fetcher, Fetcher):
        raise TypeError(f"unexpected aiokafka fetcher {type(fetcher).__name__}")
    idle = fetcher._fetch_max_wait_ms if idle_wait_ms is None else idle_wait_ms
    fetcher.__class__ = BacklogAwareFetcher
    assert isinstance(fetcher, BacklogAwareFetcher)
    fetcher.idle_wait_ms = idle
    fetcher.backlog_wait_ms = max(idle, backlog_wait_ms)
