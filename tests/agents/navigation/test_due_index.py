"""The in-memory index of due follow-ups: same batches as a full scan, rebuilt when unsure."""

from __future__ import annotations

from typing import Any

from heart.agents.navigation.due_index import DueIndex


def entry(partition: int, pending_at: str | None) -> dict[str, Any]:
    return {"partition": partition, "pending_at": pending_at}


def lookup(index: DueIndex, table: dict[str, Any], partition: int, now: str, limit: int = 10):
    return index.due(partition, now, limit, table.get, lambda: list(table.items()))


def test_due_keys_come_oldest_first_then_by_key_and_only_for_the_partition() -> None:
    table = {
        "b": entry(0, "2024-07-19T10:00:00+00:00"),
        "a": entry(0, "2024-07-19T10:00:00+00:00"),
        "c": entry(0, "2024-07-19T09:00:00+00:00"),
        "later": entry(0, "2024-07-21T09:00:00+00:00"),
        "other": entry(1, "2024-07-19T09:00:00+00:00"),
        "done": entry(0, None),
    }
    index = DueIndex()
    index.invalidate(frozenset({0, 1}))
    assert lookup(index, table, 0, "2024-07-20T00:00:00+00:00") == ["c", "a", "b"]
    assert lookup(index, table, 0, "2024-07-20T00:00:00+00:00", limit=2) == ["c", "a"]
    assert lookup(index, table, 1, "2024-07-20T00:00:00+00:00") == ["other"]


def test_writes_move_cases_on_and_stale_entries_are_dropped() -> None:
    table = {"a": entry(0, "2024-07-19T10:00:00+00:00"), "b": entry(0, "2024-07-19T11:00:00+00:00")}
    index = DueIndex()
    index.invalidate(frozenset({0}))
    now = "2024-07-19T12:00:00+00:00"
    assert lookup(index, table, 0, now) == ["a", "b"]
    # "a" fired and waits for its retry tomorrow; "b" completed; "n" is a new case.
    for key, pending in (("a", "2024-07-20T10:00:00+00:00"), ("b", None)):
        table[key] = entry(0, pending)
        index.note(0, key, pending)
    table["n"] = entry(0, "2024-07-19T11:30:00+00:00")
    index.note(0, "n", "2024-07-19T11:30:00+00:00")
    index.note(0, "n", "2024-07-19T11:30:00+00:00")  # written twice, listed once
    assert lookup(index, table, 0, now) == ["n"]
    assert lookup(index, table, 0, "2024-07-20T10:00:00+00:00") == ["n", "a"]


def test_a_changed_assignment_or_a_recovery_rebuilds_from_the_table() -> None:
    table = {"a": entry(0, "2024-07-19T10:00:00+00:00")}
    index = DueIndex()
    index.invalidate(frozenset({0}))
    now = "2024-07-20T00:00:00+00:00"
    assert lookup(index, table, 0, now) == ["a"]
    # Written by table recovery, not by the stage: the index has not seen it.
    table["recovered"] = entry(0, "2024-07-19T09:00:00+00:00")
    index.invalidate(frozenset({0}))  # same partitions: the index is kept
    assert lookup(index, table, 0, now) == ["a"]
    index.invalidate(None)  # a rebalance or recovery was seen
    index.invalidate(frozenset({0}))
    assert lookup(index, table, 0, now) == ["recovered", "a"]
    table["again"] = entry(0, "2024-07-19T08:00:00+00:00")
    index.invalidate(frozenset({0, 2}))  # another partition came in
    assert lookup(index, table, 0, now) == ["again", "recovered", "a"]


def test_a_partition_that_left_and_came_back_is_rebuilt_even_with_the_same_assignment() -> None:
    table = {"a": entry(1, "2024-07-19T10:00:00+00:00")}
    index = DueIndex()
    index.invalidate(frozenset({1, 3}), generation=4)
    now = "2024-07-20T00:00:00+00:00"
    assert lookup(index, table, 1, now) == ["a"]
    # Two rebalances passed without a lookup here: partition 1 went to another worker,
    # which wrote a case in it, and came back. The set of partitions is the same.
    table["written-elsewhere"] = entry(1, "2024-07-19T09:00:00+00:00")
    index.invalidate(frozenset({1, 3}), generation=6)
    assert lookup(index, table, 1, now) == ["written-elsewhere", "a"]
    # Same partitions, same generation: the index is kept (no rebuild per tick).
    table["unseen"] = entry(1, "2024-07-19T08:00:00+00:00")
    index.invalidate(frozenset({1, 3}), generation=6)
    assert lookup(index, table, 1, now) == ["written-elsewhere", "a"]
