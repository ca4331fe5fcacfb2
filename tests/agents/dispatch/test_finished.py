"""The finished-call ledger: filing, re-filing, and forgetting by the minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from heart.agents.dispatch.area import FinishedCall
from heart.agents.dispatch.finished import FinishedLedger

T0 = datetime(2024, 7, 15, 14, 0, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


def finished(call_id: str, at: datetime, revision: int = 1) -> FinishedCall:
    return FinishedCall(
        call_id=call_id,
        kind="crt",
        status="cleared",
        opened_by=f"d-{call_id}",
        decision_id=f"d-{call_id}-{revision}",
        revision=revision,
        team_id="A",
        finished_at=at,
    )


def test_filed_calls_are_found_per_area() -> None:
    table: dict[str, Any] = {}
    ledger = FinishedLedger(table, memory=HOUR)
    ledger.put("north", finished("C-1", T0))
    assert ledger.get("north", "C-1") == finished("C-1", T0)
    assert ledger.get("south", "C-1") is None
    assert ledger.get("north", None) is None
    # Values are plain JSON, as the table's changelog needs.
    assert table["north|call|C-1"]["finished_at"] == "2024-07-15T14:00:30Z"


def test_refiling_updates_the_record_and_keeps_one_bucket_entry() -> None:
    table: dict[str, Any] = {}
    ledger = FinishedLedger(table, memory=HOUR)
    ledger.put("north", finished("C-1", T0))
    ledger.put("north", finished("C-1", T0, revision=2))
    record = ledger.get("north", "C-1")
    assert record is not None and record.revision == 2
    [bucket] = [key for key in table if "|finished-at|" in key]
    assert table[bucket] == ["C-1"]


def test_prune_forgets_whole_minutes_past_the_memory_and_nothing_newer() -> None:
    table: dict[str, Any] = {}
    ledger = FinishedLedger(table, memory=HOUR)
    for n in range(10):  # one call finished every 30 s, out of order within the minute
        ledger.put("north", finished(f"C-{n}", T0 + timedelta(seconds=30 * (9 - n))))
    ledger.put("south", finished("S-1", T0))
    assert ledger.prune("north", T0 + HOUR) == 0
    # C-9 finished at 14:00:30: its minute lies wholly past the horizon at 15:01:00;
    # C-8's (14:01:00) does not yet.
    assert ledger.prune("north", T0 + HOUR + timedelta(seconds=30)) == 1
    assert ledger.get("north", "C-9") is None and ledger.get("north", "C-8") is not None
    assert ledger.prune("north", T0 + 2 * HOUR) == 9
    assert [key for key in table if key.startswith("north")] == ["north|finished-buckets"]
    assert table["north|finished-buckets"] == []
    assert ledger.get("south", "S-1") is not None  # another area's calls are its own


def test_buckets_are_kept_in_time_order_whatever_the_filing_order() -> None:
    table: dict[str, Any] = {}
    ledger = FinishedLedger(table, memory=HOUR)
    for minutes in (50, 10, 30, 10, 70):
        ledger.put("north", finished(f"C-{minutes}-{len(table)}", T0 + timedelta(minutes=minutes)))
    buckets = table["north|finished-buckets"]
    assert buckets == sorted(buckets) and len(buckets) == 4
    assert ledger.prune("north", T0 + HOUR + timedelta(minutes=31)) == 3
