"""Forgetting table entries some time after their last event, by the partition's owner.

A table value that can expire is a dict stamped (:func:`stamped`) with the changelog
partition it was written to and when it was last touched, on the stage's clock. A sweep
(:func:`sweep`) forgets, in a bounded batch, the entries of the partitions this worker
actively owns whose last touch is older than the retention, so that an entry is forgotten
once, by one worker, and a worker restarting after a crash drains its backlog in batches
rather than in one storm of tombstones.

A sweep runs on a timer, outside any stream, so it names the changelog partition of each
tombstone itself (Faust's ``del table[key]`` takes it from the event being processed).
The tombstone is an ordinary changelog record: table recovery applies it as a delete, and
a standby replica drops the key with it. Lost in a crash, the key comes back on recovery
and the next sweep forgets it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from faust.types import AppT, CollectionT

from heart.streams.clock import Clock

log = logging.getLogger(__name__)


def iso(moment: datetime) -> str:
    """UTC ISO-8601: values in one zone sort as the times do, so a sweep compares strings."""
    return moment.astimezone(UTC).isoformat()


def stamped(value: dict[str, Any], *, partition: int, touched: datetime) -> dict[str, Any]:
    """``value`` with what a sweep needs: its changelog partition and its last touch."""
    return {**value, "partition": partition, "touched": iso(touched)}


def _never(stored: Mapping[str, Any]) -> bool:
    return False


def expired(
    items: Iterable[tuple[Any, Mapping[str, Any] | None]],
    *,
    partitions: Container[int],
    before: datetime,
    limit: int,
    keep: Callable[[Mapping[str, Any]], bool] = _never,
) -> list[tuple[Any, int]]:
    """``(key, partition)`` of at most ``limit`` entries of ``partitions`` last touched
    before ``before``, except those ``keep`` holds on to.

    An entry without a stamp (written before the table could expire) is left alone: its
    partition is unknown, and a tombstone in the wrong partition would not delete it.
    """
    horizon = iso(before)
    out: list[tuple[Any, int]] = []
    for key, stored in items:
        if len(out) >= limit:
            break
        if not stored:
            continue
        partition, touched = stored.get("partition"), stored.get("touched")
        if partition is None or touched is None or partition not in partitions:
            continue
        if touched < horizon and not keep(stored):
            out.append((key, partition))
    return out


def owned_partitions(app: AppT, table: CollectionT) -> set[int]:
    """The table's changelog partitions this worker is active for; none while a rebalance
    or a recovery is under way (the table may then hold only part of a partition, and a
    newer touch of an entry may not have been applied yet)."""
    if getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False):
        return set()
    changelog = table.changelog_topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == changelog}


def forget(table: CollectionT, key: Any, partition: int) -> None:
    """Delete ``key`` outside a stream: from memory, and by a tombstone in ``partition``."""
    table.data.pop(key, None)
    table.send_changelog(partition, key, None, value_serializer="raw")


def sweep(
    app: AppT,
    table: CollectionT,
    clock: Clock,
    retention: timedelta,
    limit: int,
    keep: Callable[[Mapping[str, Any]], bool] = _never,
) -> int:
    """Forget up to ``limit`` entries idle for longer than ``retention``; return how many.

    Synchronous on purpose: nothing else runs between choosing an entry and deleting it,
    so an event that touches it meanwhile cannot be lost to the sweep.
    """
    if not clock.known:
        # On event time, before this process has seen an event, time stands still: judging
        # by the wall clock would forget every entry of a replay at once.
        return 0
    partitions = owned_partitions(app, table)
    if not partitions:
        return 0
    before = clock.now() - retention
    # Chosen in full before the first delete: the dict is not changed while it is read.
    gone = expired(table.data.items(), partitions=partitions, before=before, limit=limit, keep=keep)
    for key, partition in gone:
        forget(table, key, partition)
    if gone:
        log.info("%s: forgot %d entries idle since before %s", table.name, len(gone), iso(before))
    return len(gone)
