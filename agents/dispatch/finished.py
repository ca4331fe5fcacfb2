"""The ledger of finished calls: one table entry per call, forgotten after a while.

A released or cleared call leaves its area's state (see :mod:`heart.agents.dispatch.area`) and is
filed here, so that the area value stays as small as the work in hand while a repeated or
superseding decision, or a report replayed after a crash, is still recognised for
:data:`~heart.agents.dispatch.area.CALL_MEMORY`.

Forgetting must not mean scanning every call: each call is also listed in a bucket of the
minute it finished (``<area>|finished-at|<minute>``), and the area keeps the sorted list of
its non-empty buckets (``<area>|finished-buckets``). :meth:`FinishedLedger.prune` drops
whole buckets older than the memory, oldest first. Every key starts with the area, so all
of an area's entries are written from the area's partition and recovered with it.

Works over any mutable mapping of JSON values: in the agent, the areas' own Faust table,
whose bare area names (no '|') these keys cannot meet, so that an entry and the area value
written after it share one changelog partition and keep their order; a dict in tests.
"""

from __future__ import annotations

import bisect
from collections.abc import MutableMapping
from datetime import datetime, timedelta
from typing import Any

from heart.agents.dispatch.area import CALL_MEMORY, FinishedCall

_BUCKET_S = 60


class FinishedLedger:
    def __init__(self, table: MutableMapping[str, Any], *, memory: timedelta = CALL_MEMORY) -> None:
        self._table = table
        self._memory = memory

    def get(self, area: str, call_id: str | None) -> FinishedCall | None:
        if call_id is None:
            return None
        stored = self._table.get(_call_key(area, call_id))
        return FinishedCall.model_validate(stored) if stored is not None else None

    def put(self, area: str, record: FinishedCall) -> None:
        key = _call_key(area, record.call_id)
        known = self._table.get(key)
        self._table[key] = record.model_dump(mode="json")
        if known is not None:
            # Re-filed (a newer decision for a finished call): it keeps its bucket.
            return
        bucket = _bucket(record.finished_at)
        members = self._table.get(_bucket_key(area, bucket))
        self._table[_bucket_key(area, bucket)] = [*(members or []), record.call_id]
        if members is None:
            buckets = list(self._table.get(_index_key(area)) or [])
            bisect.insort(buckets, bucket)
            self._table[_index_key(area)] = buckets

    def prune(self, area: str, now: datetime) -> int:
        """Forget the area's calls that finished more than the memory before ``now``;
        returns how many were forgotten."""
        buckets = self._table.get(_index_key(area))
        if not buckets:
            return 0
        # A bucket is dropped only when its whole minute is past the horizon.
        horizon = _bucket(now - self._memory)
        expired = 0
        while expired < len(buckets) and buckets[expired] < horizon:
            expired += 1
        if expired == 0:
            return 0
        forgotten = 0
        for bucket in buckets[:expired]:
            for call_id in self._table.pop(_bucket_key(area, bucket), None) or []:
                if self._table.pop(_call_key(area, call_id), None) is not None:
                    forgotten += 1
        self._table[_index_key(area)] = list(buckets[expired:])
        return forgotten


def _bucket(at: datetime) -> int:
    return int(at.timestamp()) // _BUCKET_S


def _call_key(area: str, call_id: str) -> str:
    return f"{area}|call|{call_id}"


def _bucket_key(area: str, bucket: int) -> str:
    return f"{area}|finished-at|{bucket}"


def _index_key(area: str) -> str:
    return f"{area}|finished-buckets"
