"""Forgetting idle table entries: which ones, by whom, and the tombstone each one leaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from heart.streams import expiry
from heart.streams.clock import EventClock, ManualClock
from tests.factories import T0

HOUR = timedelta(hours=1)
CHANGELOG = "heart-triage-calls-changelog"


def entry(partition: int, touched: datetime, **extra: Any) -> dict[str, Any]:
    return expiry.stamped({"call": "…", **extra}, partition=partition, touched=touched)


def test_a_stamp_names_the_partition_and_the_last_touch_in_utc() -> None:
    local = datetime(2024, 7, 15, 10, tzinfo=UTC).astimezone()
    assert entry(3, local) == {
        "call": "…",
        "partition": 3,
        "touched": "2024-07-15T10:00:00+00:00",
    }


def test_only_idle_entries_of_owned_partitions_expire() -> None:
    items = [
        ("old-0", entry(0, T0 - 3 * HOUR)),
        ("old-1", entry(1, T0 - 3 * HOUR)),  # not ours
        ("recent-0", entry(0, T0 - HOUR)),
        ("edge-0", entry(0, T0 - 2 * HOUR)),  # exactly at the horizon: kept
        ("sub-second-0", entry(0, T0 - 2 * HOUR - timedelta(microseconds=1))),
    ]
    got = expiry.expired(items, partitions={0, 2}, before=T0 - 2 * HOUR, limit=10)
    assert got == [("old-0", 0), ("sub-second-0", 0)]


def test_entries_without_a_stamp_or_value_and_kept_ones_are_left_alone() -> None:
    items = [
        ("legacy", {"call": "written before expiry existed"}),
        ("tombstoned", None),
        ("pending", entry(0, T0 - 9 * HOUR, pending=True)),
        ("idle", entry(0, T0 - 9 * HOUR, pending=False)),
    ]
    got = expiry.expired(
        items, partitions={0}, before=T0, limit=10, keep=lambda stored: stored["pending"]
    )
    assert got == [("idle", 0)]


def test_one_sweep_forgets_at_most_a_batch() -> None:
    items = [(f"k{i}", entry(i % 2, T0 - 5 * HOUR)) for i in range(7)]
    assert expiry.expired(items, partitions={0, 1}, before=T0, limit=3) == [
        ("k0", 0),
        ("k1", 1),
        ("k2", 0),
    ]


class FakeTable:
    """The slice of a Faust table a sweep uses; what is under test is the sweep."""

    name = "calls"

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.changelog: list[tuple[int | None, Any, Any, str | None]] = []
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: CHANGELOG)

    def send_changelog(
        self, partition: int | None, key: Any, value: Any, value_serializer: str | None = None
    ) -> None:
        self.changelog.append((partition, key, value, value_serializer))


def fake_app(*active: TP, rebalancing: bool = False) -> Any:
    assignor = SimpleNamespace(assigned_actives=lambda: set(active))
    return SimpleNamespace(assignor=assignor, rebalancing=rebalancing, in_recovery=False)


def test_a_sweep_tombstones_each_idle_entry_in_its_own_partition() -> None:
    table = FakeTable(
        {
            "old-0": entry(0, T0 - 13 * HOUR),
            "old-4": entry(4, T0 - 13 * HOUR),
            "old-5": entry(5, T0 - 13 * HOUR),  # a standby copy: another worker owns it
            "recent-4": entry(4, T0 - HOUR),
        }
    )
    app = fake_app(TP(CHANGELOG, 0), TP(CHANGELOG, 4), TP("cad.calls", 5))
    assert expiry.sweep(app, table, ManualClock(T0), 12 * HOUR, limit=100) == 2
    assert set(table.data) == {"old-5", "recent-4"}
    assert sorted(table.changelog) == [(0, "old-0", None, "raw"), (4, "old-4", None, "raw")]


def test_no_sweep_before_an_event_clock_has_a_time_nor_during_a_rebalance() -> None:
    data = {"old-0": entry(0, datetime(2018, 3, 1, tzinfo=UTC))}
    table = FakeTable(dict(data))
    owner = fake_app(TP(CHANGELOG, 0))
    # A restarted replay worker: by the wall clock every 2018 call would be years idle.
    assert expiry.sweep(owner, table, EventClock(), HOUR, limit=100) == 0
    moving = fake_app(TP(CHANGELOG, 0), rebalancing=True)
    assert expiry.sweep(moving, table, ManualClock(T0), HOUR, limit=100) == 0
    assert table.data == data and table.changelog == []
    # Once the clock has seen an event, the replay's own time decides.
    clock = EventClock(datetime(2018, 3, 1, 0, 30, tzinfo=UTC))
    assert expiry.sweep(owner, table, clock, HOUR, limit=100) == 0
    clock.observe(datetime(2018, 3, 1, 1, 1, tzinfo=UTC))
    assert expiry.sweep(owner, table, clock, HOUR, limit=100) == 1
