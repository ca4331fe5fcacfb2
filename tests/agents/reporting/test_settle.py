"""Forgetting per-call report state: a month's figures are the same before and after its
calls' parts are settled into its base, after a redelivered settlement, and after a crash
between writing the base and deleting the parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from heart.agents.reporting import settle
from heart.agents.reporting.aggregate import (
    AggregateState,
    Totals,
    apply,
    new_state,
    organisation_of,
    report,
    report_from_totals,
)
from heart.policy import load_policy
from heart.schemas.reports import Part, Settled
from heart.streams.expiry import stamped
from tests.agents.reporting.synthetic import july

POLICY = load_policy()
MONTH = "2024-07"


def folded() -> AggregateState:
    state = new_state(POLICY)
    for event in july():
        apply(state, event)
    return state


def parts_table(state: AggregateState, partition: int = 0) -> dict[str, Any]:
    """The stage's ``report-parts`` table for the folded month, all in one partition."""
    return {
        settle.part_key(month, key): settle.part_value(partition, month, part)
        for month, parts in state.parts.items()
        for key, part in parts.items()
    }


def figures(totals: Totals) -> dict[str, Any]:
    return report_from_totals(totals, MONTH, POLICY.timezone, organisation_of(POLICY)).model_dump()


def everything(state: AggregateState) -> list[Settled]:
    return [Settled(key=k, seq=state.records[k].seq) for k in state.parts[MONTH]]


def test_totals_survive_a_json_round_trip_and_merge_adds_them() -> None:
    totals = folded().totals[MONTH]
    loaded = Totals.load(totals.dump())
    assert loaded == totals
    assert ("response", "crt", 600.0) in loaded.counts

    doubled = Totals()
    doubled.merge(totals)
    doubled.merge(loaded)
    assert doubled.version == 2 * totals.version
    assert doubled.counts[("route", "ccd")] == 2 * totals.counts[("route", "ccd")]
    assert (doubled.first_at, doubled.last_at) == (totals.first_at, totals.last_at)
    assert loaded.first_at is not None and loaded.first_at < loaded.last_at


def test_settling_every_part_keeps_the_figures_and_empties_the_month() -> None:
    state = folded()
    table = parts_table(state)
    want = report(state, MONTH).model_dump()
    calls = len(state.parts[MONTH])

    base = Totals()
    moved = settle.settle(table, base, 0, MONTH, everything(state))

    assert len(moved) == calls
    assert figures(base) == want
    assert base.version == state.totals[MONTH].version
    # Only the other months' parts and this month's base are left.
    left = [k for k in table if settle.split_key(k)[0] == MONTH]
    assert left == [settle.base_key(MONTH)]
    assert table[settle.base_key(MONTH)]["settled"] == moved

    # A redelivered settlement finds its parts gone and changes nothing.
    before = base.dump()
    assert settle.settle(table, base, 0, MONTH, everything(state)) == []
    assert base.dump() == before


def test_a_part_newer_than_its_settlement_stays_live() -> None:
    state = folded()
    table = parts_table(state)
    key = next(iter(state.parts[MONTH]))
    stale = Settled(key=key, seq=table[settle.part_key(MONTH, key)]["seq"] - 1)

    assert settle.settle(table, Totals(), 0, MONTH, [stale]) == []
    assert settle.part_key(MONTH, key) in table
    assert settle.base_key(MONTH) not in table


def test_rebuild_sums_base_and_live_parts_and_drops_parts_a_base_already_holds() -> None:
    state = folded()
    want = report(state, MONTH).model_dump()
    table = parts_table(state)
    half = everything(state)[::2]
    base = Totals()
    settle.settle(table, base, 0, MONTH, half)

    totals, bases, leftovers = settle.rebuild(list(table.items()), 0)
    assert figures(totals[MONTH]) == want
    assert bases[MONTH] == base
    assert leftovers == []
    # Another partition's view holds none of it.
    assert settle.rebuild(list(table.items()), 1) == ({}, {}, [])

    # A crash after the base was written but before its parts were deleted.
    crashed = parts_table(state)
    moved = [s.key for s in half]
    crashed[settle.base_key(MONTH)] = settle.base_value(0, MONTH, base, moved)
    totals, _, leftovers = settle.rebuild(list(crashed.items()), 0)
    assert figures(totals[MONTH]) == want
    assert sorted(leftovers) == sorted(settle.part_key(MONTH, k) for k in moved)


def test_only_records_idle_past_the_retention_expire_and_each_settles_per_month() -> None:
    state = folded()
    now = datetime(2024, 8, 20, tzinfo=UTC)
    records = {}
    for i, (key, record) in enumerate(state.records.items()):
        touched = now - timedelta(days=20 if i % 2 else 1)
        records[key] = stamped(record.dump(), partition=i % 3, touched=touched)
    before = now - timedelta(days=14)

    gone = settle.expired_records(records, 1, before, limit=1000)
    want = {k for i, k in enumerate(state.records) if i % 2 and i % 3 == 1}
    assert {k for k, _ in gone} == want and want
    assert all(r == state.records[k] for k, r in gone)
    assert len(settle.expired_records(records, 1, before, limit=1)) == 1

    # C11 was decided on 31 July and assigned on 1 August: it settles in both months.
    c11 = next(k for k in state.records if k.endswith("-C11"))
    by_month = settle.settlements([(c11, state.records[c11])])
    assert set(by_month) == {"2024-07", "2024-08"}
    assert by_month["2024-08"] == [Settled(key=c11, seq=state.records[c11].seq)]


def test_a_settled_part_is_the_part_the_table_held() -> None:
    state = folded()
    table = parts_table(state)
    key = next(iter(state.parts[MONTH]))
    part = Part.model_validate(table[settle.part_key(MONTH, key)]["part"])
    base = Totals()
    settle.settle(table, base, 0, MONTH, [Settled(key=key, seq=part.seq)])
    assert base == Totals.of([part])
