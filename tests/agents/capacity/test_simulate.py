"""The capacity simulation on histories small enough to work out by hand: the dispatch
stage's queue order, the maximum wait (a team freed at that very moment still takes the
call), the stale-call limit, shift ends, missing teams, time past a shift's end; then the
same random history through every path of the loop, which must agree."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from heart.agents.capacity.shifts import HourGrid, intervals, local_us, to_us
from heart.agents.capacity.simulate import (
    Outcome,
    PoolFigures,
    PoolTeam,
    TeamCall,
    simulate,
)

M = 60_000_000  # microseconds per minute
START = to_us(datetime(2024, 7, 15, tzinfo=UTC))  # a Monday
ALWAYS = [(START - 10_000 * M, START + 100_000 * M)]


def at(minutes: float) -> int:
    return START + round(minutes * M)


def run(
    calls: Sequence[tuple[str, float, int | None, float]],
    *,
    teams: int = 1,
    shifts: Sequence[Sequence[tuple[int, int]]] | None = None,
    max_wait: float = 10,
    stale: float = 10,
    grid: HourGrid | None = None,
) -> tuple[PoolFigures, dict[str, tuple[str, float, str | None]]]:
    """``calls``: (call id, minute, priority, minutes on call). Returns the figures and,
    per call, (outcome, minute, team)."""
    history = [TeamCall(at(minute), call_id, priority) for call_id, minute, priority, _ in calls]
    log: list[Outcome] = []
    figures = simulate(
        history,
        [PoolTeam(f"T{n + 1}", "crt") for n in range(teams)],
        shifts if shifts is not None else [ALWAYS] * teams,
        kind="crt",
        max_wait=round(max_wait * M),
        stale_after=round(stale * M),
        durations=[round(length * M) for *_, length in calls],
        grid=grid,
        log=log,
    )
    outcomes = {call: (what, (when - START) / M, team) for call, what, when, team in log}
    assert len(outcomes) == len(calls), "every call has exactly one outcome"
    assert figures.reached + figures.fallbacks_total == len(calls)
    return figures, outcomes


def test_waiting_calls_go_by_priority_then_age() -> None:
    _, outcomes = run(
        [
            ("busy", 0, None, 30),
            ("p3", 1, 3, 5),
            ("p1", 2, 1, 5),
            ("none", 3, None, 5),
            ("p1-later", 4, 1, 5),
        ],
        max_wait=60,
        stale=60,
    )
    assert outcomes == {
        "busy": ("assigned", 0, "T1"),
        "p1": ("assigned", 30, "T1"),
        "p1-later": ("assigned", 35, "T1"),
        "p3": ("assigned", 40, "T1"),
        "none": ("assigned", 45, "T1"),
    }


def test_a_team_freed_as_the_maximum_wait_runs_out_still_takes_the_call() -> None:
    figures, outcomes = run([("a", 0, None, 10), ("b", 0, None, 5)])
    assert outcomes["b"] == ("assigned", 10, "T1")
    assert figures.wait_p90 == pytest.approx(9.0)  # waits 0 and 10: p90 interpolates
    # A microsecond later it is gone to police: it waited the longest allowed.
    _, outcomes = run([("a", 0, None, 10 + 1 / M), ("b", 0, None, 5)])
    assert outcomes["b"] == ("no_team_free", 10 + 1 / M, None)


def test_the_stale_limit_cuts_a_longer_wait_short() -> None:
    _, outcomes = run([("a", 0, None, 15), ("b", 1, None, 5)], max_wait=30, stale=10)
    assert outcomes["b"] == ("no_team_free", 11 + 1 / M, None)


def test_no_waiting_allowed_releases_at_once() -> None:
    figures, outcomes = run([("a", 0, None, 15), ("b", 1, None, 5)], max_wait=0)
    assert outcomes["b"] == ("no_team_free", 1, None)
    assert figures.fallbacks == {"no_team_free": 1}


def test_when_the_last_team_goes_off_shift_waiting_calls_go_to_police() -> None:
    shift = [(at(0), at(60))]
    figures, outcomes = run(
        [("a", 50, None, 30), ("b", 55, None, 5), ("late", 61, None, 5)],
        shifts=[shift],
        max_wait=10,
    )
    assert outcomes["a"] == ("assigned", 50, "T1")
    assert outcomes["b"] == ("no_team_on_shift", 60, None)
    assert outcomes["late"] == ("no_team_on_shift", 61, None)
    assert figures.fallbacks == {"no_team_on_shift": 2}


def test_a_pool_without_teams_releases_every_call() -> None:
    figures, outcomes = run([("a", 0, None, 5), ("b", 3, 1, 5)], teams=0, shifts=[])
    assert {o[0] for o in outcomes.values()} == {"no_team_of_kind"}
    assert figures.reached == 0


def test_the_free_team_idle_longest_goes() -> None:
    _, outcomes = run(
        [("a", 0, None, 20), ("b", 1, None, 5), ("c", 7, None, 20), ("d", 30, None, 5)],
        teams=2,
    )
    # T1 took a; T2 took b, then c (T1 still busy); at 30 T1, free since 20, has been idle
    # longer than T2, free since 27.
    assert [outcomes[c][2] for c in "abcd"] == ["T1", "T2", "T2", "T1"]


def test_time_past_a_shift_end_is_busy_but_not_on_shift() -> None:
    zone = ZoneInfo("UTC")
    day = date(2024, 7, 15)
    grid = HourGrid.for_days(zone, day, day)
    shift = [(local_us(day, 0, zone), local_us(day, 60, zone))]
    shift += [(local_us(day, 70, zone), local_us(day, 130, zone))]
    figures, outcomes = run([("a", 55, None, 20), ("b", 72, None, 5)], shifts=[shift], grid=grid)
    # a runs from 55 to 75: 5 minutes on shift, 10 past its end, 5 on the next shift.
    assert outcomes["b"] == ("assigned", 75, "T1")
    assert figures.busy is not None and figures.overrun is not None
    assert figures.on_shift is not None
    assert figures.busy[0] == pytest.approx(5)  # Monday 00-01: a from 55 to 60
    assert figures.busy[1] == pytest.approx(15 + 5)  # 01-02: a from 60 to 75, b 75 to 80
    assert figures.overrun[1] == pytest.approx(10)  # 60 to 70, off shift
    assert figures.on_shift[:3] == pytest.approx([60, 50, 10])
    utilisation = figures.utilisation()
    assert utilisation is not None
    assert utilisation[0] == pytest.approx(5 / 60)
    assert utilisation[1] == pytest.approx(10 / 50)  # 20 busy - 10 off shift, of 50 on
    assert utilisation[3] is None  # nobody on shift


def test_shifts_keep_their_local_hours_across_a_clock_change() -> None:
    zone = ZoneInfo("America/Chicago")
    week = [[(8 * 60, 16 * 60)]] * 7
    # 10 March 2024: clocks go forward in Chicago.
    spans = intervals(week, zone, date(2024, 3, 9), date(2024, 3, 11))
    hours = [datetime.fromtimestamp(s / 1e6, zone).hour for s, _ in spans]
    assert hours == [8, 8, 8]
    lengths = [(e - s) / (60 * M) for s, e in spans]
    assert lengths == [8, 8, 8]
    # Windows ending at midnight and starting at midnight merge into one.
    assert len(intervals([[(0, 1440)]] * 7, zone, date(2024, 3, 9), date(2024, 3, 11))) == 1


def random_history(
    seed: int, calls: int, rate: float
) -> list[tuple[str, float, int | None, float]]:
    rng = random.Random(seed)
    minute = 0.0
    out = []
    for n in range(calls):
        minute += rng.expovariate(rate)
        priority = rng.choice([None, 1, 2, 3])
        out.append((f"c{n:05d}", minute, priority, rng.uniform(10, 70)))
    return out


@pytest.mark.parametrize(("teams", "max_wait"), [(1, 10), (3, 10), (3, 0), (6, 25)])
def test_every_path_of_the_loop_gives_the_same_figures(teams: int, max_wait: float) -> None:
    history = random_history(teams * 100 + int(max_wait), 3_000, rate=0.08)
    calls = [TeamCall(at(m), c, p) for c, m, p, _ in history]
    lengths = [round(length * M) for *_, length in history]
    shift = [(at(d * 1440 + 480), at(d * 1440 + 1200)) for d in range(40)]  # 08:00-20:00

    def figures(choose: str, log: list[Outcome] | None) -> PoolFigures:
        return simulate(
            calls,
            [PoolTeam(f"T{n}", "crt") for n in range(teams)],
            [shift] * teams,
            kind="crt",
            max_wait=max_wait * M,
            stale_after=max(max_wait, 10) * M,
            durations=lengths,
            choose=choose,  # type: ignore[arg-type]
            log=log,
        )

    # The short paths (identical teams, no log) against the full moment (a log), and any
    # free team against the dispatch stage's choice among identical teams.
    short = figures("any", None)
    full = figures("any", [])
    chosen = figures("preference", [])
    for other in (full, chosen):
        assert (other.reached, other.fallbacks, other.wait_p50, other.wait_p90) == (
            short.reached,
            short.fallbacks,
            short.wait_p50,
            short.wait_p90,
        )
    assert (short.fallbacks_total > 0 and short.waited > 0) or max_wait == 0


def test_the_same_history_gives_the_same_figures() -> None:
    history = random_history(7, 2_000, rate=0.1)
    first, first_outcomes = run(history, teams=3)
    second, second_outcomes = run(history, teams=3)
    assert first == second
    assert first_outcomes == second_outcomes
