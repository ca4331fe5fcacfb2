"""Care Navigation staffed-hours arithmetic: Durham's Mon-Fri 08:30-16:30, DST included."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from heart.agents.navigation.staffed import (
    add_staffed_minutes,
    cn_week,
    is_staffed,
    next_staffed_moment,
    staffed_minutes_between,
)
from heart.policy import Policy, default_policy_path, load_policy
from heart.policy.model import parse_policy

DURHAM = ZoneInfo("America/New_York")
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def at(day: str, hhmm: str) -> datetime:
    """A Durham local wall-clock time."""
    hour, minute = map(int, hhmm.split(":"))
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=DURHAM)


@pytest.fixture(scope="module")
def durham() -> Policy:
    return load_policy()


@pytest.fixture
def policy_with() -> Callable[..., Policy]:
    """Durham's policy with ``[pilots.cn]`` keys overridden."""

    def build(**cn: Any) -> Policy:
        data = tomllib.loads(default_policy_path().read_text(encoding="utf-8"))
        data["pilots"]["cn"].update(cn)
        return parse_policy(data, source="test")

    return build


# --- next staffed moment ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        pytest.param(at("2024-07-16", "10:00"), at("2024-07-16", "10:00"), id="inside"),
        pytest.param(at("2024-07-16", "08:30"), at("2024-07-16", "08:30"), id="start-inclusive"),
        pytest.param(at("2024-07-16", "16:30"), at("2024-07-17", "08:30"), id="end-exclusive"),
        pytest.param(at("2024-07-16", "06:00"), at("2024-07-16", "08:30"), id="early-morning"),
        pytest.param(at("2024-07-19", "16:30"), at("2024-07-22", "08:30"), id="friday-close"),
        pytest.param(at("2024-07-20", "22:00"), at("2024-07-22", "08:30"), id="saturday-night"),
        pytest.param(at("2024-07-21", "23:59"), at("2024-07-22", "08:30"), id="sunday-late"),
    ],
)
def test_next_staffed_moment(durham: Policy, t: datetime, expected: datetime) -> None:
    assert next_staffed_moment(t, durham) == expected
    assert is_staffed(t, durham) is (t == expected)


def test_next_staffed_moment_is_t_itself_and_keeps_its_zone(durham: Policy) -> None:
    t = at("2024-07-16", "10:00")
    assert next_staffed_moment(t, durham) is t
    closed = datetime(2024, 7, 20, 2, 0, tzinfo=UTC)
    released = next_staffed_moment(closed, durham)
    assert released.tzinfo is UTC
    assert released == datetime(2024, 7, 22, 12, 30, tzinfo=UTC)  # 08:30 EDT


# --- staffed minutes between --------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "minutes"),
    [
        pytest.param(at("2024-07-19", "15:00"), at("2024-07-21", "15:00"), 90, id="friday-15"),
        pytest.param(at("2024-07-18", "15:00"), at("2024-07-20", "15:00"), 570, id="thursday-15"),
        pytest.param(at("2024-07-15", "00:00"), at("2024-07-22", "00:00"), 2400, id="week"),
        pytest.param(at("2024-07-16", "10:00"), at("2024-07-16", "11:15"), 75, id="inside"),
        pytest.param(at("2024-07-20", "22:00"), at("2024-07-22", "22:00"), 480, id="weekend"),
        pytest.param(at("2024-07-20", "00:00"), at("2024-07-21", "23:59"), 0, id="none"),
        pytest.param(at("2024-07-16", "11:00"), at("2024-07-16", "10:00"), 0, id="backwards"),
    ],
)
def test_staffed_minutes_between(durham: Policy, a: datetime, b: datetime, minutes: float) -> None:
    assert staffed_minutes_between(a, b, durham) == minutes


# --- add staffed minutes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "minutes", "expected"),
    [
        pytest.param(at("2024-07-15", "10:00"), 120, at("2024-07-15", "12:00"), id="same-day"),
        pytest.param(at("2024-07-15", "15:00"), 120, at("2024-07-16", "09:00"), id="overnight"),
        pytest.param(at("2024-07-19", "16:00"), 60, at("2024-07-22", "09:00"), id="weekend"),
        pytest.param(at("2024-07-20", "12:00"), 0, at("2024-07-22", "08:30"), id="zero-closed"),
        pytest.param(at("2024-07-15", "10:00"), 0, at("2024-07-15", "10:00"), id="zero-open"),
        pytest.param(at("2024-07-15", "10:00"), 2400, at("2024-07-22", "10:00"), id="a-week"),
        pytest.param(
            at("2024-07-15", "10:00"),
            0.5,
            at("2024-07-15", "10:00") + timedelta(seconds=30),
            id="fraction",
        ),
    ],
)
def test_add_staffed_minutes(
    durham: Policy, t: datetime, minutes: float, expected: datetime
) -> None:
    assert add_staffed_minutes(t, minutes, durham) == expected


def test_time_running_out_at_closing_lands_on_the_next_opening(durham: Policy) -> None:
    # 14:30 + 120 staffed minutes is 16:30 exactly: nobody is there to act on it.
    assert add_staffed_minutes(at("2024-07-15", "14:30"), 120, durham) == at("2024-07-16", "08:30")
    assert add_staffed_minutes(at("2024-07-19", "14:30"), 120, durham) == at("2024-07-22", "08:30")


def test_add_and_between_agree(durham: Policy) -> None:
    start = at("2024-07-15", "00:00")
    for step in range(0, 7 * 24 * 60, 97):
        t = start + timedelta(minutes=step)
        for minutes in (1, 45, 120, 480, 1000):
            later = add_staffed_minutes(t, minutes, durham)
            assert is_staffed(later, durham)
            assert staffed_minutes_between(t, later, durham) == pytest.approx(minutes)


def test_result_keeps_the_zone_of_t(durham: Policy) -> None:
    t = datetime(2024, 7, 15, 19, 0, tzinfo=UTC)  # 15:00 EDT
    later = add_staffed_minutes(t, 120, durham)
    assert later.tzinfo is UTC
    assert later == at("2024-07-16", "09:00")


# --- DST ----------------------------------------------------------------------------------


def test_spring_forward_week(durham: Policy) -> None:
    # 2024-03-10: 02:00 EST becomes 03:00 EDT. Monday opens at 08:30 local, an hour
    # earlier in UTC than Friday did.
    friday_close = at("2024-03-08", "16:30")
    monday = next_staffed_moment(friday_close, durham)
    assert monday == at("2024-03-11", "08:30")
    assert monday.astimezone(UTC) == datetime(2024, 3, 11, 12, 30, tzinfo=UTC)
    assert at("2024-03-08", "08:30").astimezone(UTC).hour == 13
    assert staffed_minutes_between(
        at("2024-03-04", "00:00"), at("2024-03-18", "00:00"), durham
    ) == (4800)
    assert add_staffed_minutes(at("2024-03-08", "16:00"), 60, durham) == at("2024-03-11", "09:00")
    # A Friday 15:00 contact: its 48 h deadline is Sunday 16:00 EDT, still 90 staffed minutes.
    friday = at("2024-03-08", "15:00")
    # 48 real hours; aware arithmetic in one zone would add 48 wall-clock hours instead.
    deadline = (friday.astimezone(UTC) + timedelta(hours=48)).astimezone(DURHAM)
    assert deadline == at("2024-03-10", "16:00")
    assert staffed_minutes_between(friday, deadline, durham) == 90


def test_fall_back_week(durham: Policy) -> None:
    # 2024-11-03: 02:00 EDT becomes 01:00 EST.
    monday = next_staffed_moment(at("2024-11-01", "17:00"), durham)
    assert monday == at("2024-11-04", "08:30")
    assert monday.astimezone(UTC) == datetime(2024, 11, 4, 13, 30, tzinfo=UTC)
    assert staffed_minutes_between(
        at("2024-10-28", "00:00"), at("2024-11-11", "00:00"), durham
    ) == (4800)
    assert add_staffed_minutes(at("2024-11-01", "16:00"), 60, durham) == at("2024-11-04", "09:00")


def test_round_the_clock_hours_follow_the_clock_change(
    policy_with: Callable[..., Policy],
) -> None:
    always = policy_with(hours=[{"days": ALL_DAYS, "start": "00:00", "end": "24:00"}])
    spring = staffed_minutes_between(at("2024-03-10", "00:00"), at("2024-03-11", "00:00"), always)
    fall = staffed_minutes_between(at("2024-11-03", "00:00"), at("2024-11-04", "00:00"), always)
    assert (spring, fall) == (23 * 60, 25 * 60)
    # Adjacent days touch at midnight: 24:00 ends one window as 00:00 opens the next.
    sunday_close = at("2024-07-21", "23:00")
    assert next_staffed_moment(at("2024-07-22", "00:00"), always) == at("2024-07-22", "00:00")
    assert add_staffed_minutes(sunday_close, 120, always) == at("2024-07-22", "01:00")
    assert staffed_minutes_between(sunday_close, at("2024-07-22", "01:00"), always) == 120


# --- policy shapes ------------------------------------------------------------------------


def test_overlapping_windows_are_not_counted_twice(policy_with: Callable[..., Policy]) -> None:
    policy = policy_with(
        hours=[
            {"days": ["mon"], "start": "08:00", "end": "12:00"},
            {"days": ["mon"], "start": "10:00", "end": "14:00"},
            {"days": ["mon"], "start": "15:00", "end": "16:00"},
        ]
    )
    assert cn_week(policy)[0] == ((8 * 60, 14 * 60), (15 * 60, 16 * 60))
    assert staffed_minutes_between(
        at("2024-07-15", "00:00"), at("2024-07-16", "00:00"), policy
    ) == (420)
    assert add_staffed_minutes(at("2024-07-15", "13:30"), 45, policy) == at("2024-07-15", "15:15")


def test_no_hours_at_all_is_refused(policy_with: Callable[..., Policy]) -> None:
    policy = policy_with(enabled=False, hours=[])
    with pytest.raises(ValueError, match="no staffed hours"):
        next_staffed_moment(at("2024-07-15", "10:00"), policy)


def test_naive_and_negative_are_refused(durham: Policy) -> None:
    with pytest.raises(ValueError, match="naive"):
        next_staffed_moment(datetime(2024, 7, 15, 10, 0), durham)
    with pytest.raises(ValueError, match="naive"):
        staffed_minutes_between(at("2024-07-15", "10:00"), datetime(2024, 7, 16), durham)
    with pytest.raises(ValueError, match="negative"):
        add_staffed_minutes(at("2024-07-15", "10:00"), -1, durham)
