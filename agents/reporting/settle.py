"""Forgetting what the report keeps per call once the call can no longer change.

A call's :class:`~heart.agents.reporting.aggregate.Record` is needed only while facts about it
can still arrive: a superseding decision, a team's arrival, a follow-up's outcome. One
idle for longer than the retention (``HEART_REPORTING_RECORD_RETENTION_H``, wall time
even when the stage runs on event time) is forgotten by its partition's owner, which
tells each month the record touched to *settle* the call's part: the month's owner adds
the part to the month's settled **base**, a :class:`~heart.agents.reporting.aggregate.Totals`
stored in the parts table under ``"{month}|"``, and deletes the part. The month's
figures do not change; only the per-call state goes, so the stage's memory follows the
calls of the last retention period, not every call ever seen.

Crash safety rests on the order of one changelog partition: the base is written before
the parts it absorbed are deleted, and it names them (``settled``). A crash between the
two leaves parts the base already holds; the rebuild after the crash skips and deletes
them. A redelivered settlement finds its parts gone and changes nothing.

A fact for a call whose record was forgotten starts a new record: it is counted as if it
were the call's first. With the default retention (two weeks) that takes an event weeks
after the call's last one, longer than any pilot keeps a call open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from datetime import datetime
from typing import Any

from heart.agents.reporting.aggregate import Record, Totals, parts_of
from heart.schemas.reports import Part, Settled
from heart.streams import expiry


def part_key(month: str, key: str) -> str:
    return f"{month}|{key}"


def base_key(month: str) -> str:
    # A call or case id is never empty, so this key is no call's.
    return f"{month}|"


def split_key(table_key: str) -> tuple[str, str]:
    month, _, key = table_key.partition("|")
    return month, key


def expired_records(
    records: Mapping[str, Any], partition: int, before: datetime, limit: int
) -> list[tuple[str, Record]]:
    """At most ``limit`` records of ``partition`` last touched before ``before``."""
    gone = expiry.expired(records.items(), partitions={partition}, before=before, limit=limit)
    return [(key, Record.model_validate(records[key])) for key, _ in gone]


def settlements(records: Iterable[tuple[str, Record]]) -> dict[str, list[Settled]]:
    """Per month, the forgotten records' parts to settle there."""
    out: dict[str, list[Settled]] = {}
    for key, record in records:
        for month in parts_of(record):
            out.setdefault(month, []).append(Settled(key=key, seq=record.seq))
    return out


def part_value(partition: int, month: str, part: Part) -> dict[str, Any]:
    """A part as the parts table stores it: its partition and month, for rebuilds."""
    return {
        "p": partition,
        "month": month,
        "seq": part.seq,
        "part": part.model_dump(mode="json", exclude_defaults=True),
    }


def base_value(partition: int, month: str, base: Totals, settled: list[str]) -> dict[str, Any]:
    return {"p": partition, "month": month, "base": base.dump(), "settled": settled}


def settle(
    parts: MutableMapping[str, Any],
    base: Totals,
    partition: int,
    month: str,
    settled: Iterable[Settled],
) -> list[str]:
    """Move the named parts of ``month`` into ``base`` (updated in place) and the table;
    return the keys moved. A part newer than the settlement (the record was re-created
    since) and a part already gone (a redelivery) stay as they are."""
    moved: list[str] = []
    for entry in settled:
        stored = parts.get(part_key(month, entry.key))
        if stored is None or stored["seq"] > entry.seq:
            continue
        base.add(Part.model_validate(stored["part"]))
        moved.append(entry.key)
    if moved:
        # The base first: see the module's note on crashes.
        parts[base_key(month)] = base_value(partition, month, base, moved)
        for key in moved:
            del parts[part_key(month, key)]
    return moved


def rebuild(
    items: Iterable[tuple[str, Mapping[str, Any] | None]], partition: int
) -> tuple[dict[str, Totals], dict[str, Totals], list[str]]:
    """From a parts table, for one partition: each month's totals (base plus live parts),
    each month's base, and the keys of parts a base already holds (left by a crash between
    writing the base and deleting them), which the caller deletes."""
    bases: dict[str, Totals] = {}
    absorbed: dict[str, set[str]] = {}
    live: list[tuple[str, str, Part]] = []
    for table_key, stored in items:
        if stored is None or stored.get("p") != partition:
            continue
        if "base" in stored:
            bases[stored["month"]] = Totals.load(stored["base"])
            absorbed[stored["month"]] = set(stored["settled"])
        else:
            live.append((table_key, stored["month"], Part.model_validate(stored["part"])))
    totals: dict[str, Totals] = {}
    for month, base in bases.items():
        totals[month] = Totals()
        totals[month].merge(base)
    leftovers: list[str] = []
    for table_key, month, part in live:
        if split_key(table_key)[1] in absorbed.get(month, ()):
            leftovers.append(table_key)
            continue
        totals.setdefault(month, Totals()).add(part)
    return totals, bases, leftovers
