"""The one injectable time source every stage reads.

``wall`` serves live operation. ``event`` follows the newest event time a stage has seen,
so that a replay of last year's calls sees the hours, queues and 48-hour timers of the
days the calls came in. Tests use ``ManualClock``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def observe(self, event_time: datetime) -> None:
        """Tell the clock an event carrying ``event_time`` was processed."""
        ...

    @property
    def known(self) -> bool:
        """False only for an event clock that has seen no event: time-driven work
        (queue releases, timer sweeps) must wait rather than judge by the wall."""
        ...


class WallClock:
    known = True

    def now(self) -> datetime:
        return datetime.now(UTC)

    def observe(self, event_time: datetime) -> None:
        return None


class EventClock:
    """Moves forward with the newest event time seen; never backwards."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _aware(start) if start else None

    @property
    def known(self) -> bool:
        return self._now is not None

    def now(self) -> datetime:
        if self._now is None:
            # Before the first event there is no event time; wall time is the only honest
            # answer and is overtaken by the first observation anyway.
            return datetime.now(UTC)
        return self._now

    def observe(self, event_time: datetime) -> None:
        t = _aware(event_time)
        if self._now is None or t > self._now:
            self._now = t


class ManualClock:
    known = True

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)

    def now(self) -> datetime:
        return self._now

    def observe(self, event_time: datetime) -> None:
        return None

    def set(self, when: datetime) -> None:
        self._now = _aware(when)

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


def make_clock(kind: Literal["wall", "event"]) -> Clock:
    return EventClock() if kind == "event" else WallClock()


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"clock times must carry an offset, got naive {t.isoformat()}")
    return t.astimezone(UTC)
