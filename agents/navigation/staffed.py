"""Care Navigation's staffed hours: when navigators can act, and how much time they have.

Opening hours are local wall-clock windows in the policy's time zone (``[start, end)``);
durations are real elapsed time. Each day's windows are turned into UTC instants through
the zone, so a DST change moves the windows with the clock: Monday 08:30 is 08:30 local on
both sides of a change, and a window that spans the change itself is an hour shorter or
longer, as it is for the people working it. A local time skipped by a spring-forward
change resolves with the offset in force before it (``fold=0``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from heart.policy import Policy
from heart.policy.model import Window, _week

#: Per weekday (Monday = 0), sorted ``(start, end)`` minute ranges, end exclusive.
Week = tuple[tuple[tuple[int, int], ...], ...]

_MINUTE = timedelta(minutes=1)


def cn_week(policy: Policy) -> Week:
    """Care Navigation's staffed minute ranges per weekday, overlapping windows merged.

    Raises ValueError when CN has no hours at all: every question asked here would then
    search forever for a staffed moment that never comes.
    """
    return _calendar(policy).week


class _Calendar:
    """CN's staffed intervals under one policy, each day's resolved through the zone once:
    a worker asks about the same few days for every contact, and resolving local times
    is most of what a schedule costs."""

    def __init__(self, week: Week, zone: ZoneInfo) -> None:
        self.week = week
        self.zone = zone
        self._days: dict[date, tuple[tuple[datetime, datetime], ...]] = {}

    def intervals(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Staffed ``[start, end)`` intervals in UTC, in order, from the one containing
        ``since``. Endless (:func:`cn_week` refuses an empty week). Intervals of
        consecutive days may touch (a 24:00 end and a 00:00 start) but never overlap."""
        day = since.astimezone(self.zone).date() - timedelta(days=1)
        while True:
            for start, end in self._day(day):
                if end > since:
                    yield start, end
            day += timedelta(days=1)

    def _day(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        hit = self._days.get(day)
        if hit is None:
            if len(self._days) >= 1024:  # a replay walks through years of days
                self._days.clear()
            hit = self._days[day] = _day_intervals(self.week, self.zone, day)
        return hit


def _calendar(policy: Policy) -> _Calendar:
    # The worker's one policy, kept with its calendar: identity proves it is the same.
    last = _last_calendar.get(id(policy))
    if last is not None and last[0] is policy:
        return last[1]
    calendar = _Calendar(_merged_week(policy.pilots.cn.hours), policy.zone)
    _last_calendar.clear()
    _last_calendar[id(policy)] = (policy, calendar)
    return calendar


_last_calendar: dict[int, tuple[Policy, _Calendar]] = {}


def _merged_week(windows: Sequence[Window]) -> Week:
    week = _week(windows)
    if not any(week):
        raise ValueError("Care Navigation has no staffed hours in the policy")
    merged: list[tuple[tuple[int, int], ...]] = []
    for ranges in week:
        # Two windows may overlap on one day; counted twice they would invent staff.
        out: list[tuple[int, int]] = []
        for start, end in ranges:
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        merged.append(tuple(out))
    return tuple(merged)


def _instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    # Aware + timedelta is wall-clock arithmetic in the zone, which is what a minute of
    # the day means here (and makes 24:00 the next day's midnight).
    return (datetime.combine(day, time(), tzinfo=zone) + minute * _MINUTE).astimezone(UTC)


def _day_intervals(week: Week, zone: ZoneInfo, day: date) -> tuple[tuple[datetime, datetime], ...]:
    out = []
    for start_minute, end_minute in week[day.weekday()]:
        start = _instant(day, start_minute, zone)
        end = _instant(day, end_minute, zone)
        # end <= start only for a window lost entirely in a spring-forward gap.
        if end > start:
            out.append((start, end))
    return tuple(out)


def _require_aware(*moments: datetime) -> None:
    for moment in moments:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"naive datetime {moment.isoformat()}: give a time zone")


def is_staffed(t: datetime, policy: Policy) -> bool:
    """Whether care navigators are on duty at ``t``."""
    return next_staffed_moment(t, policy) == t


def next_staffed_moment(t: datetime, policy: Policy) -> datetime:
    """``t`` itself when staffed, else the start of the next staffed window (in t's zone)."""
    _require_aware(t)
    start, _ = next(_calendar(policy).intervals(t))
    return t if start <= t else start.astimezone(t.tzinfo)


def staffed_minutes_between(a: datetime, b: datetime, policy: Policy) -> float:
    """Staffed minutes in ``[a, b)``; 0 when ``b`` is not after ``a``."""
    _require_aware(a, b)
    if b <= a:
        return 0.0
    total = timedelta()
    for start, end in _calendar(policy).intervals(a):
        if start >= b:
            break
        total += min(end, b) - max(start, a)
    return total / _MINUTE


def add_staffed_minutes(t: datetime, minutes: float, policy: Policy) -> datetime:
    """The moment ``minutes`` staffed minutes after ``t`` have passed, in t's zone.

    The result is always a staffed moment: time that runs out exactly as a window closes
    lands at the next window's start, because a task due at closing time is one nobody
    can act on. So 0 minutes gives :func:`next_staffed_moment`.
    """
    _require_aware(t)
    if minutes < 0:
        raise ValueError(f"minutes must not be negative, got {minutes}")
    since = t.astimezone(UTC)
    remaining = minutes * _MINUTE
    for start, end in _calendar(policy).intervals(since):
        begin = max(start, since)
        available = end - begin
        if remaining < available:
            return (begin + remaining).astimezone(t.tzinfo)
        remaining -= available
    raise AssertionError("unreachable: staffed intervals are endless")
