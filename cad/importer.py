"""Turn a city's CAD calls-for-service export into ``call.received`` events.

The import never aborts on a bad row and never drops one silently: every row is either an
event or a reject counted by reason with a few examples (line number and a short reason,
never an address, name or other personal data). Rows whose type the mapping does not cover
are not rejects: they are valid calls that go to police, tallied as ``unmapped`` by local
type so an analyst sees what the mapping leaves out. Repairs that keep a row (a DST-
ambiguous time, an unusable priority or coordinate) are counted as ``adjustments``.

Events are ordered by ``occurred_at`` (exports are often not), ties in file order, and carry
an ``event_id`` derived from the city and call id, so importing the same export twice, or
an overlapping later one, produces the same ids and consumers de-duplicate.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from heart.cad.mapping import CadMapping, Classification, MappingError
from heart.schemas.calls import CallReceived, Location

#: Examples kept per reject or adjustment reason.
MAX_EXAMPLES = 5
#: Rows between two progress callbacks.
PROGRESS_EVERY = 2_000

# Changing it changes every imported event id, and with it de-duplication across imports.
_ID_PERSON = b"heart-cad-event"
_MAX_ADDRESS = 500
_REPLACEMENT = "\ufffd"

#: ``progress(rows_read, bytes_read, total_bytes)``.
Progress = Callable[[int, int, int], None]


def stable_event_id(city: str, call_id: str, kind: str = "call.received", *extra: str) -> str:
    """A deterministic event id (32 hex digits, like generated ones) for one call's event.

    Same city, call id and kind give the same id on every import, so re-imports and
    re-deliveries are de-duplicated downstream. ``extra`` distinguishes several events of
    one kind for a call (e.g. an update's timestamp).
    """
    name = "\x1f".join((city, call_id, kind, *extra)).encode()
    return hashlib.blake2b(name, digest_size=16, person=_ID_PERSON).hexdigest()


@dataclass(frozen=True, slots=True)
class RejectExample:
    """Where a row was rejected or repaired, and why, without any of its personal data."""

    line: int
    detail: str


@dataclass
class ImportResult:
    """Events and the account of every row that did not become a plain event."""

    path: str
    mapping: str
    #: Data records read (the header and blank lines excluded).
    rows: int = 0
    #: ``call.received`` events in ``occurred_at`` order, ties in file order.
    events: list[CallReceived] = field(default_factory=list)
    #: Reason -> rows rejected for it.
    rejects: Counter[str] = field(default_factory=Counter)
    #: Reason -> rows kept after a repair (``ambiguous_time``, ``priority_dropped``...).
    adjustments: Counter[str] = field(default_factory=Counter)
    #: Reason (reject or adjustment) -> up to :data:`MAX_EXAMPLES` examples.
    examples: dict[str, list[RejectExample]] = field(default_factory=dict)
    #: Local call type -> accepted calls of that type the mapping does not cover.
    unmapped: Counter[str] = field(default_factory=Counter)
    #: Policy category -> accepted calls mapped to it.
    categories: Counter[str] = field(default_factory=Counter)
    #: Flag (weapon, violence, behavioral_health) -> accepted calls the type flagged.
    flags: Counter[str] = field(default_factory=Counter)
    #: Beat value (``""`` when empty) -> accepted calls, to spot non-geographic units.
    beats: Counter[str] = field(default_factory=Counter)
    #: The column ``needs_in_person`` was read from (the mapping's ``[in_person]``), or
    #: None when every call got the mapping's default.
    in_person_column: str | None = None
    #: Accepted calls whose disposition says they were closed without sending anyone.
    no_dispatch: int = 0
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return len(self.events)

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    @property
    def unmapped_type(self) -> int:
        """Accepted calls whose local type maps to no category (they go to police)."""
        return sum(self.unmapped.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def top_unmapped(self, n: int = 10) -> list[tuple[str, int]]:
        return self.unmapped.most_common(n)

    def to_dict(self, top: int = 20) -> dict[str, Any]:
        """A JSON-ready summary (no events) for reports and ``--json`` output."""
        return {
            "path": self.path,
            "mapping": self.mapping,
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejects": dict(sorted(self.rejects.items())),
            "adjustments": dict(sorted(self.adjustments.items())),
            "examples": {
                reason: [{"line": e.line, "detail": e.detail} for e in examples]
                for reason, examples in sorted(self.examples.items())
            },
            "categories": dict(self.categories.most_common()),
            "flags": dict(sorted(self.flags.items())),
            "unmapped_type": self.unmapped_type,
            "needs_in_person_from": self.in_person_column,
            "closed_without_dispatch": self.no_dispatch if self.in_person_column else None,
            "top_unmapped": [{"call_type": t, "calls": n} for t, n in self.top_unmapped(top)],
            "seconds": round(self.seconds, 3),
        }

    def summary(self, top: int = 10) -> str:
        """A few lines for the terminal."""
        lines = [
            f"{self.path}: {self.rows} rows, {self.accepted} calls, {self.rejected} rejected "
            f"({self.rows_per_second:,.0f} rows/s)"
        ]
        for title, tally in (("rejected", self.rejects), ("adjusted", self.adjustments)):
            for reason, count in sorted(tally.items()):
                shown = "; ".join(f"line {e.line}: {e.detail}" for e in self.examples[reason])
                lines.append(f"  {title} {reason}: {count} (e.g. {shown})")
        mapped = ", ".join(f"{name} {count}" for name, count in self.categories.most_common())
        lines.append(f"  mapped: {mapped or 'none'}")
        if self.in_person_column is None:
            lines.append(
                "  needs_in_person: the export does not say which calls were closed without "
                "sending anyone; every call is taken as needing someone in person"
            )
        else:
            lines.append(
                f"  closed without dispatch (column {self.in_person_column!r}): "
                f"{self.no_dispatch} calls, taken as not needing anyone in person"
            )
        lines.append(f"  unmapped_type: {self.unmapped_type} calls go to police; largest types:")
        lines.extend(f"    {count:6d}  {name}" for name, count in self.top_unmapped(top))
        return "\n".join(lines)

    def _note(self, tally: Counter[str], reason: str, line: int, detail: str) -> None:
        tally[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(RejectExample(line, detail))


def localise(naive: datetime, zone: ZoneInfo) -> tuple[datetime, str | None]:
    """Place a local wall-clock time in ``zone``, deterministically across DST changes.

    Returns the aware time and ``"ambiguous_time"`` or ``"nonexistent_time"`` when a
    choice was made. An ambiguous time (the repeated hour in autumn) is taken at its first
    occurrence, still on daylight time (``fold=0``). A time in the spring gap is read with
    the offset in force before the gap, i.e. moved forward by the gap (02:30 becomes 03:30
    daylight time), as a clock that was not changed yet would have meant it.
    """
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first, None
    actual = first.astimezone(UTC).astimezone(zone)
    if actual.replace(tzinfo=None) == naive:
        return first, "ambiguous_time"
    return actual, "nonexistent_time"


def _cell(row: list[str], index: int | None) -> str | None:
    """A stripped optional cell; empty and unmapped both read as None."""
    if index is None:
        return None
    return row[index].strip() or None


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


class _Columns:
    """Header positions of the mapped columns."""

    def __init__(self, header: list[str], mapping: CadMapping, file: Path) -> None:
        spec = mapping.columns
        names = [name.strip() for name in header]
        position = {name: index for index, name in reversed(list(enumerate(names)))}
        wanted: dict[str, str | list[str] | None] = {
            "call_id": spec.call_id,
            "time": spec.time,
            "call_type": spec.call_type,
            "beat": spec.beat,
            "district": spec.district,
            "priority": spec.priority,
            "address": spec.address,
            "lat": spec.lat,
            "lon": spec.lon,
        }
        in_person = mapping.in_person
        missing = []
        for key, value in wanted.items():
            for column in [value] if isinstance(value, str) else value or []:
                if column not in position:
                    missing.append((f"columns.{key}", column))
        if in_person is not None and in_person.column not in position:
            missing.append(("in_person.column", in_person.column))
        if missing:
            shown = ", ".join(names) if len(names) <= 30 else ", ".join(names[:30]) + ", …"
            raise MappingError(
                mapping.source_file,
                [
                    (field, f"column {column!r} is not in the header of {file.name} ({shown})")
                    for field, column in missing
                ],
            )

        def at(name: str | None) -> int | None:
            return position[name] if name is not None else None

        self.width = len(header)
        self.call_id = position[spec.call_id]
        self.time = [position[name] for name in spec.time]
        self.call_type = position[spec.call_type]
        self.beat = at(spec.beat)
        self.district = at(spec.district)
        self.priority = at(spec.priority)
        self.address = at(spec.address)
        self.lat = at(spec.lat)
        self.lon = at(spec.lon)
        self.in_person = at(in_person.column if in_person is not None else None)


def import_rows(
    path: str | os.PathLike[str],
    mapping: CadMapping,
    *,
    progress: Progress | None = None,
) -> ImportResult:
    """Read a CAD export with ``mapping`` into ``CallReceived`` events, sorted by time.

    Streams the file with the ``csv`` module; bad rows are counted in the result, never
    raised. Raises :class:`heart.cad.mapping.MappingError` when the header lacks a mapped column
    (every row would fail), and ``OSError`` when the file cannot be opened.
    """
    started = time.perf_counter()
    file = Path(path)
    result = ImportResult(path=str(file), mapping=mapping.name)
    if mapping.in_person is not None:
        result.in_person_column = mapping.in_person.column
    # (occurred_at as UTC seconds, file order, event): sorting on the first two is stable
    # and avoids comparing datetimes in different zones.
    keyed: list[tuple[float, int, CallReceived]] = []
    # Tens of thousands of small acyclic objects trigger collection after collection that
    # find nothing; pausing the cycle collector halves the import time.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with file.open("rb") as raw:
            total = os.fstat(raw.fileno()).st_size
            # Undecodable bytes become U+FFFD and the row is counted, instead of the whole
            # import dying halfway through on one stray byte.
            text = io.TextIOWrapper(raw, encoding=mapping.encoding, errors="replace", newline="")
            reader = csv.reader(text, delimiter=mapping.delimiter)
            try:
                header = next(reader)
            except StopIteration:
                header = []
            except csv.Error as exc:
                raise MappingError(
                    mapping.source_file, [("", f"{file}: unreadable header: {exc}")]
                ) from None
            if not header:
                raise MappingError(mapping.source_file, [("", f"{file}: empty file, no header")])
            columns = _Columns(header, mapping, file)
            reader_state = _RowReader(mapping, columns, result)
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    result.rows += 1
                    result._note(result.rejects, "malformed_row", reader.line_num, str(exc)[:80])
                    continue
                if not row or (len(row) == 1 < columns.width and not row[0].strip()):
                    # A blank line is not a record; counted so nothing passes silently.
                    result.adjustments["blank_line_skipped"] += 1
                    continue
                result.rows += 1
                made = reader_state.event(row, reader.line_num)
                if made is not None:
                    keyed.append((made.occurred_at.timestamp(), len(keyed), made))
                if progress is not None and result.rows % PROGRESS_EVERY == 0:
                    progress(result.rows, raw.tell(), total)
            if progress is not None:
                progress(result.rows, total, total)
    finally:
        if collecting:
            gc.enable()
    keyed.sort(key=lambda item: (item[0], item[1]))
    result.events = [event for _, _, event in keyed]
    result.seconds = time.perf_counter() - started
    return result


class _RowReader:
    """Per-row conversion, holding the state an import needs across rows."""

    def __init__(self, mapping: CadMapping, columns: _Columns, result: ImportResult) -> None:
        self.mapping = mapping
        self.columns = columns
        self.result = result
        self.zone = mapping.zone
        self.city = mapping.city
        self.encoding = mapping.encoding
        self.needs_in_person = mapping.in_person_rule()
        self.language = mapping.defaults.language
        self.parse_time = mapping.time_parser()
        self.call_id_column = mapping.columns.call_id
        self.type_column = mapping.columns.call_type
        self.time_columns = " + ".join(mapping.columns.time)
        # Local type -> classification; the mapping caches too, but reaching its private
        # state through pydantic per row costs more than the lookup.
        self.kinds: dict[str, Classification] = {}
        #: call id -> line it was first accepted on.
        self.seen: dict[str, int] = {}

    def reject(self, reason: str, line: int, detail: str) -> None:
        self.result._note(self.result.rejects, reason, line, detail)

    def adjust(self, reason: str, line: int, detail: str) -> None:
        self.result._note(self.result.adjustments, reason, line, detail)

    def event(self, row: list[str], line: int) -> CallReceived | None:
        cols = self.columns
        if len(row) != cols.width:
            self.reject("wrong_field_count", line, f"expected {cols.width} fields, got {len(row)}")
            return None
        call_id = row[cols.call_id].strip()
        if not call_id:
            self.reject("missing_call_id", line, f"column {self.call_id_column!r} is empty")
            return None
        local_type = " ".join(row[cols.call_type].split())
        if not local_type:
            self.reject("missing_call_type", line, f"column {self.type_column!r} is empty")
            return None
        time_cell = " ".join(row[index].strip() for index in cols.time).strip()
        if not time_cell:
            self.reject("missing_time", line, f"column {self.time_columns} is empty")
            return None
        parsed = self.parse_time(time_cell)
        if parsed is None:
            self.reject("bad_time", line, f"time {_short(time_cell)} matches no format")
            return None
        if parsed.tzinfo is None:
            occurred_at, repaired = localise(parsed, self.zone)
            if repaired is not None:
                self.adjust(repaired, line, f"local time {parsed:%Y-%m-%d %H:%M:%S}")
        else:
            occurred_at = parsed
        first = self.seen.get(call_id)
        if first is not None:
            self.reject(
                "duplicate_call_id", line, f"call id {_short(call_id)} first seen on line {first}"
            )
            return None
        if _REPLACEMENT in "".join(row):
            self.adjust("undecodable_text", line, f"bytes not valid {self.encoding}")

        kind = self.kinds.get(local_type)
        if kind is None:
            kind = self.kinds[local_type] = self.mapping.classify(local_type)
        beat = _cell(row, cols.beat)
        district = _cell(row, cols.district)
        needs_in_person = self.needs_in_person(_cell(row, cols.in_person))
        try:
            event = CallReceived(
                event_id=stable_event_id(self.city, call_id),
                occurred_at=occurred_at,
                call_id=call_id,
                call_type=kind.category or local_type,
                beat=beat,
                district=district,
                weapon_involved=kind.weapon,
                violence_reported=kind.violence,
                needs_in_person=needs_in_person,
                behavioral_health=kind.behavioral_health,
                language=self.language,
                priority=self._priority(row, line),
                location=self._location(row, line),
            )
        except ValidationError as exc:
            # Field names and pydantic's constraint text only: the input may be personal.
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
            )
            self.reject("invalid_field", line, problems[:160])
            return None

        self.seen[call_id] = line
        result = self.result
        if kind.category is None:
            result.unmapped[local_type] += 1
        else:
            result.categories[kind.category] += 1
        for flag, on in (
            ("weapon", kind.weapon),
            ("violence", kind.violence),
            ("behavioral_health", kind.behavioral_health),
        ):
            if on:
                result.flags[flag] += 1
        result.beats[beat or ""] += 1
        if not needs_in_person:
            result.no_dispatch += 1
        return event

    def _priority(self, row: list[str], line: int) -> int | None:
        index = self.columns.priority
        if index is None:
            return None
        text = row[index].strip()
        if not text:
            return None
        try:
            value = int(text)
        except ValueError:
            value = -1
        if 0 <= value <= 99:
            return value
        self.adjust("priority_dropped", line, f"priority {_short(text, 12)} is not 0-99")
        return None

    def _location(self, row: list[str], line: int) -> Location | None:
        cols = self.columns
        address = _cell(row, cols.address)
        if address is not None and len(address) > _MAX_ADDRESS:
            address = address[:_MAX_ADDRESS]
            self.adjust("address_truncated", line, f"address longer than {_MAX_ADDRESS}")
        lat = lon = None
        if cols.lat is not None and cols.lon is not None:
            lat_text, lon_text = row[cols.lat].strip(), row[cols.lon].strip()
            if lat_text or lon_text:
                try:
                    lat, lon = float(lat_text), float(lon_text)
                except ValueError:
                    lat = lon = None
                if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
                    # No coordinates in the detail: they locate a person.
                    self.adjust("coordinates_dropped", line, "latitude/longitude not usable")
                    lat = lon = None
        if address is None and lat is None:
            return None
        return Location(address=address, lat=lat, lon=lon)
