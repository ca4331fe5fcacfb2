from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from heart.streams.clock import EventClock, ManualClock, WallClock, make_clock


def test_event_clock_follows_newest_event_and_never_goes_back() -> None:
    clock = EventClock()
    edt = timezone(timedelta(hours=-4))
    clock.observe(datetime(2018, 5, 1, 9, 0, tzinfo=edt))
    clock.observe(datetime(2018, 5, 1, 8, 0, tzinfo=edt))
    assert clock.now() == datetime(2018, 5, 1, 13, 0, tzinfo=UTC)
    clock.observe(datetime(2018, 5, 3, 13, 0, tzinfo=UTC))
    assert clock.now() == datetime(2018, 5, 3, 13, 0, tzinfo=UTC)


def test_manual_clock_moves_48_hours_instantly() -> None:
    clock = ManualClock(datetime(2024, 7, 19, 19, 0, tzinfo=UTC))
    clock.advance(timedelta(hours=48))
    assert clock.now() == datetime(2024, 7, 21, 19, 0, tzinfo=UTC)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        EventClock().observe(datetime(2024, 1, 1))


def test_make_clock_by_setting() -> None:
    assert isinstance(make_clock("wall"), WallClock)
    assert isinstance(make_clock("event"), EventClock)
    assert make_clock("wall").now().tzinfo is not None
