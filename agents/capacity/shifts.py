"""Weekly windows as moments on the simulation's clock, and the hour of the week.

The simulation runs in integer microseconds since the Unix epoch (UTC), the unit a
datetime converts to exactly. Shifts and pilot hours are weekly windows in local time
(the policy's zone), so they are laid out day by day over the calls' period, with the
zone's offset of each day: a window keeps its local hours across a change of daylight
saving time, as the dispatch stage judges them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: Per weekday (Monday first), windows as [start, end) local minutes (a roster team's
#: ``week``, a policy pilot rule's ``week``).
Week = Sequence[Sequence[tuple[int, int]]]
Interval = tuple[int, int]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
HOUR_US = 3_600_000_000
#: Every zone's offset is a multiple of 15 minutes, so a 15-minute slot of UTC lies in
#: one local hour.
SLOT_US = 15 * 60_000_000
HOURS_OF_WEEK = 7 * 24


def to_us(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch, exactly."""
    return (moment - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def local_us(day: date, minute: int, zone: ZoneInfo) -> int:
    """``minute`` minutes after local midnight of ``day`` (1440 is the next midnight)."""
    return to_us(datetime.combine(day, time(), tzinfo=zone) + timedelta(minutes=minute))


def intervals(week: Week, zone: ZoneInfo, first_day: date, last_day: date) -> list[Interval]:
    """The windows of every day from ``first_day`` to ``last_day`` (local, both included),
    as merged, sorted [start, end) microsecond intervals: a window that ends at 24:00 and
    one that starts at 00:00 the next day make one interval.

    On the night clocks go back, a window starting or ending inside the repeated hour is
    taken at its first occurrence.
    """
    spans: list[Interval] = []
    day = first_day
    while day <= last_day:
        for start, end in week[day.weekday()]:
            spans.append((local_us(day, start, zone), local_us(day, end, zone)))
        day += timedelta(days=1)
    spans.sort()
    merged: list[Interval] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def local_days(first_us: int, last_us: int, zone: ZoneInfo) -> tuple[date, date]:
    """The local calendar days of two moments."""
    return from_us(first_us).astimezone(zone).date(), from_us(last_us).astimezone(zone).date()


class HourGrid:
    """Adds lengths of time into the 168 hours of the local week, within a period.

    ``add(bins, start, end)`` adds the minutes of [start, end) that fall inside the period
    to ``bins[hour_of_week]`` (Monday 00:00-01:00 is 0, Sunday 23:00-24:00 is 167).
    """

    def __init__(self, zone: ZoneInfo, start: int, end: int) -> None:
        self.zone = zone
        self.start = start
        self.end = end
        self._base = start // SLOT_US
        slots = max(0, -(-end // SLOT_US) - self._base)
        table = []
        for n in range(slots):
            local = from_us((self._base + n) * SLOT_US).astimezone(zone)
            table.append(local.weekday() * 24 + local.hour)
        self._table = table

    @classmethod
    def for_days(cls, zone: ZoneInfo, first_day: date, last_day: date) -> HourGrid:
        """The grid of whole local days ``first_day`` to ``last_day``."""
        return cls(zone, local_us(first_day, 0, zone), local_us(last_day, 24 * 60, zone))

    def hour_of_week(self, us: int) -> int:
        local = from_us(us).astimezone(self.zone)
        return local.weekday() * 24 + local.hour

    def add(self, bins: list[float], start: int, end: int) -> None:
        start = max(start, self.start)
        end = min(end, self.end)
        if end <= start:
            return
        table, base = self._table, self._base
        slot = start // SLOT_US
        while start < end:
            edge = min(end, (slot + 1) * SLOT_US)
            bins[table[slot - base]] += (edge - start) / 60_000_000
            start = edge
            slot += 1

    def weeks(self) -> float:
        """How many weeks the period spans."""
        return (self.end - self.start) / (7 * 24 * HOUR_US)


def new_bins() -> list[float]:
    return [0.0] * HOURS_OF_WEEK
