"""Which follow-up cases come due next, per partition, without reading every case per tick.

The case table is the truth; this is an in-memory index over it, rebuilt from the table
whenever it may have missed a write the stage did not make itself (the worker's partitions
changed, or a table recovery ran), and otherwise kept up to date by the stage's own writes
(:meth:`DueIndex.note`). Entries are never removed in place: one whose case has since moved
on (fired, completed, rescheduled) no longer matches the table and is dropped when it
reaches the top.

Per partition it is a heap of ``(pending_at, case_id)``, in the order
:func:`heart.agents.navigation.cases.sweep` fires cases (due time, then case id), so a tick that
takes the first ``limit`` due entries picks exactly the batch a full scan would.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Stored = Mapping[str, Any]


class DueIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[str, str]]] = {}
        self._assignment: tuple[frozenset[int], int] | None = None

    def invalidate(self, assignment: frozenset[int] | None = None, generation: int = 0) -> None:
        """Forget everything when the table may hold entries the index never saw: pass
        the partitions this worker owns now and how many rebalances it has been through;
        None means "unknown" (a rebalance or a recovery under way), which also forgets.

        The generation matters on its own: a partition can leave and come back between
        two lookups (owned {1, 3, 5}, then {0, 2, 4}, then {1, 3, 5} again) while another
        worker writes cases in it, and the same set of partitions would keep a heap that
        never saw them."""
        current = None if assignment is None else (assignment, generation)
        if current is None or current != self._assignment:
            self._heaps.clear()
        self._assignment = current

    def note(self, partition: int, key: str, pending_at: str | None) -> None:
        """The stage wrote ``key`` in ``partition`` with this ``pending_at``."""
        heap = self._heaps.get(partition)
        if heap is not None and pending_at is not None:
            heapq.heappush(heap, (pending_at, key))

    def due(
        self,
        partition: int,
        now_iso: str,
        limit: int,
        get: Callable[[str], Stored | None],
        scan: Callable[[], Iterable[tuple[str, Stored | None]]],
    ) -> list[str]:
        """Up to ``limit`` keys of ``partition`` pending at or before ``now_iso``, oldest
        first. They stay indexed: the caller's writes re-index what it changes, and what it
        leaves unchanged is still due next time."""
        heap = self._heaps.get(partition)
        if heap is None:
            heap = self._heaps[partition] = [
                (stored["pending_at"], key)
                for key, stored in scan()
                if stored is not None
                and stored.get("partition") == partition
                and stored.get("pending_at") is not None
            ]
            heapq.heapify(heap)
        out: list[str] = []
        taken: list[tuple[str, str]] = []
        while heap and len(out) < limit and heap[0][0] <= now_iso:
            entry = heapq.heappop(heap)
            pending_at, key = entry
            stored = get(key)
            if stored is None or stored.get("pending_at") != pending_at or key in out:
                continue  # moved on since it was indexed, or indexed twice
            out.append(key)
            taken.append(entry)
        for entry in taken:
            heapq.heappush(heap, entry)
        return out

    def drop(self, partition: int) -> None:
        """Rebuild ``partition``'s index from the table on its next lookup."""
        self._heaps.pop(partition, None)

    def size(self, partition: int) -> int | None:
        heap = self._heaps.get(partition)
        return None if heap is None else len(heap)
