"""The capacity simulation against queueing theory, on Poisson call histories the tests
generate.

- No waiting allowed: the share of team calls reached with c teams is 1 - B(c, A), Erlang
  B, with A = arrival rate x mean time on call, whatever the distribution of the time on
  call (Erlang B's insensitivity): checked with the default lognormal times, fixed times
  and exponential times, within 1 percentage point over A in 0.5...8 and c in 1...12.
- Waiting allowed, exponential times on call: the share of calls that waited at most t is
  1 - C(c, A) exp(-(c - A) t / mean), Erlang C, within 1 point.
- The same through ``heart staffing``'s search, from calls to the curve.
"""

from __future__ import annotations

import math

import pytest

from heart.agents.capacity.simulate import PoolTeam, simulate
from heart.agents.capacity.staffing import search
from heart.agents.capacity.timing import (
    MINUTE_US,
    Distribution,
    TimeOnCall,
    default_time_on_call,
)
from heart.agents.triage.whatif import decide_all
from tests.agents.capacity.support import (
    around_the_clock,
    poisson_minutes,
    team_calls,
    welfare_calls,
)

#: Mean time on call, minutes, in every test.
MEAN = 50.0
#: Calls per history: enough that no point of the grid strays by half the tolerance.
CALLS = 60_000
#: Calls per history with waiting: the share that waits converges more slowly.
WAITING_CALLS = 150_000
TOLERANCE = 0.01
NEVER = 10**13  # microseconds: a wait or staleness limit never reached (115 days)
ALWAYS = [(0, 2**62)]  # on shift from 1970 on


def erlang_b(c: int, load: float) -> float:
    """Blocking probability of c servers at offered load A (the stable recursion)."""
    b = 1.0
    for k in range(1, c + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c(c: int, load: float) -> float:
    """Probability that a call waits, c servers, offered load A < c."""
    b = erlang_b(c, load)
    return c * b / (c - load * (1 - b))


SHAPES = {
    "lognormal (the default)": default_time_on_call().with_mean(MEAN),
    "fixed": TimeOnCall(Distribution.fixed(0), Distribution.fixed(MEAN)),
    "exponential": TimeOnCall(Distribution.fixed(0), Distribution.exponential(MEAN)),
}


def test_erlang_formulas() -> None:
    # Textbook values: B(1, 1) = 1/2, B(2, 1) = 1/5, C(2, 1) = 1/3.
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)


def test_no_waiting_matches_erlang_b_over_the_grid() -> None:
    loads = [0.5 * n for n in range(1, 17)]  # 0.5 ... 8
    shapes = list(SHAPES.items())
    misses = []
    checked = 0
    for index, load in enumerate(loads):
        name, model = shapes[index % len(shapes)]
        calls = team_calls(poisson_minutes(f"erlang-b|{load}", CALLS, load / MEAN))
        durations = model.durations([c.call_id for c in calls], 2022, "crt")
        for teams in range(1, 13):
            pool = simulate(
                calls,
                [PoolTeam(f"T{n}", "crt") for n in range(teams)],
                [ALWAYS] * teams,
                kind="crt",
                max_wait=0,
                stale_after=10 * MINUTE_US,
                durations=durations,
                choose="any",
            )
            reached = pool.reached / pool.calls
            expected = 1 - erlang_b(teams, load)
            checked += 1
            if abs(reached - expected) > TOLERANCE:
                misses.append(f"A={load} c={teams} {name}: {reached:.4f} vs {expected:.4f}")
            assert pool.fallbacks.keys() <= {"no_team_free"}
    assert checked == 16 * 12
    assert not misses, misses


@pytest.mark.parametrize(("load", "team_counts"), [(1.0, (2, 3)), (4.0, (6, 7)), (6.0, (9, 10))])
def test_waiting_with_exponential_times_matches_erlang_c(
    load: float, team_counts: tuple[int, ...]
) -> None:
    # Occupancy 0.5 to 0.67: the share that waits is far from 0 and 1, and a history of
    # this length settles to it (near full occupancy it would need many times more calls).
    model = SHAPES["exponential"]
    calls = team_calls(poisson_minutes(f"erlang-c|{load}", WAITING_CALLS, load / MEAN))
    durations = model.durations([c.call_id for c in calls], 2022, "crt")
    marks = (0.0, 5.0, 15.0, 30.0)
    misses = []
    for teams in team_counts:
        pool = simulate(
            calls,
            [PoolTeam(f"T{n}", "crt") for n in range(teams)],
            [ALWAYS] * teams,
            kind="crt",
            max_wait=NEVER,
            stale_after=NEVER,
            durations=durations,
            choose="any",
            wait_marks=marks,
        )
        assert pool.reached == pool.calls, "with waiting allowed every call is reached"
        waits = erlang_c(teams, load)
        assert 0.05 < waits < 0.95
        for t in marks:
            share = pool.within[t] / pool.calls
            expected = 1 - waits * math.exp(-(teams - load) * t / MEAN)
            if abs(share - expected) > TOLERANCE:
                misses.append(f"c={teams} t={t}: {share:.4f} vs {expected:.4f}")
    assert not misses, misses


def test_the_staffing_search_reaches_erlang_b_from_calls() -> None:
    load = 4.0
    calls = welfare_calls(poisson_minutes("staffing-erlang", 30_000, load / MEAN))
    policy = around_the_clock()
    decided = decide_all(calls, [("always", policy)])
    result = search(
        decided,
        target=0.9,
        teams_max=12,
        time_on_call=SHAPES["lognormal (the default)"],
        seed=7,
        max_wait_minutes=0,
    )
    crt = result.policies[0].pilots["crt"]
    assert crt.team_calls == len(calls)
    shares = [point.reached_share for point in crt.curve]
    expected = [1 - erlang_b(c, load) for c in range(1, 13)]
    assert all(
        s is not None and abs(s - e) <= TOLERANCE for s, e in zip(shares, expected, strict=True)
    ), list(zip(shares, expected, strict=True))
    # The count needed is the first at or above the target, as theory has it.
    theory = next(c for c in range(1, 13) if 1 - erlang_b(c, load) >= 0.9)
    assert crt.teams_needed == theory
