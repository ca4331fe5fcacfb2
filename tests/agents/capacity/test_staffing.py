"""The staffing search: what its curve and ``teams_needed`` mean, that the short cut it
takes changes no figure, that the same input gives the same output, that memory does not
grow with the team counts tried, and the consistency the issue asks for: with a very large
team count the capacity what-if reaches exactly what the uncapacitated what-if does."""

from __future__ import annotations

import tracemalloc

import pytest

from heart.agents.capacity.staffing import search
from heart.agents.capacity.timing import default_time_on_call
from heart.agents.triage.whatif import Capacity, Decided, Effort, compare, decide_all
from heart.cad.importer import import_rows
from heart.cad.mapping import load_mapping
from heart.cli.whatif import resolve_policy_path
from heart.policy import Policy, load_policy
from heart.schemas.calls import CallReceived
from tests.agents.capacity.support import around_the_clock, poisson_minutes, welfare_calls
from tests.cad import shared_file

POLICIES = ("milwaukee-demo-policy", "milwaukee-demo-7x12", "milwaukee-demo-24x7")


@pytest.fixture(scope="module")
def milwaukee() -> list[CallReceived]:
    mapping = load_mapping("milwaukee-2018")
    return import_rows(shared_file("milwaukee-2018-05-calls.csv"), mapping).events


@pytest.fixture(scope="module")
def policies() -> list[tuple[str, Policy]]:
    return [(name, load_policy(resolve_policy_path(name))) for name in POLICIES]


@pytest.fixture(scope="module")
def decided(milwaukee: list[CallReceived], policies: list[tuple[str, Policy]]) -> Decided:
    return decide_all(milwaukee, policies)


def test_teams_needed_is_the_first_count_at_or_above_the_target(decided: Decided) -> None:
    result = search(decided, target=0.9, teams_max=12, time_on_call=default_time_on_call(), seed=1)
    for figures in result.policies:
        for pilot in figures.pilots.values():
            if pilot.team_calls == 0:
                assert pilot.teams_needed == 0 and pilot.curve == []
                continue
            assert [p.teams for p in pilot.curve] == list(range(1, 13))
            for point in pilot.curve:
                assert point.reached + point.fallbacks == point.team_calls == pilot.team_calls
            above = [p.teams for p in pilot.curve if p.reached >= 0.9 * p.team_calls]
            assert pilot.teams_needed == (above[0] if above else None)
            # Parts add up to the eligible calls, as the glossary has them.
            assert pilot.eligible == (
                pilot.team_calls + sum(pilot.missed_by_coverage.values()) + pilot.other
            )
    crt = {f.label: f.pilots["crt"] for f in result.policies}
    # More teams never reach fewer of these calls, and the demo needs fewest.
    for pilot in crt.values():
        reached = [p.reached for p in pilot.curve]
        assert reached == sorted(reached)
    needed = {label: p.teams_needed for label, p in crt.items()}
    assert needed["milwaukee-demo-policy"] is not None
    assert all(n is not None and n >= needed["milwaukee-demo-policy"] for n in needed.values())


def test_an_unreachable_target_says_so(decided: Decided) -> None:
    result = search(decided, target=1.0, teams_max=3, time_on_call=default_time_on_call(), seed=1)
    crt = result.policies[2].pilots["crt"]
    assert crt.teams_needed is None
    assert crt.at_needed is not None and crt.at_needed.reached == crt.curve[-1].reached


def test_the_short_cut_changes_no_figure(decided: Decided) -> None:
    model = default_time_on_call()
    short = search(decided, teams_max=12, time_on_call=model, seed=3)
    full = search(decided, teams_max=12, time_on_call=model, seed=3, shortcut=False)
    assert short.runs < full.runs
    for mine, theirs in zip(short.policies, full.policies, strict=True):
        for name, pilot in mine.pilots.items():
            other = theirs.pilots[name]
            assert pilot.teams_needed == other.teams_needed
            for a, b in zip(pilot.curve, other.curve, strict=True):
                assert (a.reached, a.fallbacks, a.wait_p50, a.wait_p90, a.waited) == (
                    b.reached,
                    b.fallbacks,
                    b.wait_p50,
                    b.wait_p90,
                    b.waited,
                )


def test_the_same_input_and_seed_give_the_same_output(
    milwaukee: list[CallReceived], policies: list[tuple[str, Policy]]
) -> None:
    model = default_time_on_call()
    first = search(decide_all(milwaukee, policies), time_on_call=model, seed=5).to_dict()
    second = search(decide_all(milwaukee, policies), time_on_call=model, seed=5).to_dict()
    assert first == second
    other = search(decide_all(milwaukee, policies), time_on_call=model, seed=6).to_dict()
    assert other != first, "the seed draws the times on call"


def test_a_very_large_team_count_reaches_what_the_uncapacitated_whatif_does(
    milwaukee: list[CallReceived], policies: list[tuple[str, Policy]]
) -> None:
    plain = compare(milwaukee, policies)
    effort = Effort(teams={"crt": 2_000, "cor": 2_000})
    staffed = compare(milwaukee, policies, effort, capacity=Capacity(default_time_on_call()))
    for before, after in zip(plain.policies, staffed.policies, strict=True):
        for pilot in ("ccd", "crt", "cor"):
            assert after.pilots[pilot].to_dict() == before.pilots[pilot].to_dict()
        for pilot, modelled in after.capacity.items():
            assert modelled.fallbacks == 0
            assert modelled.reached == before.pilots[pilot].reached
            assert modelled.pool.waited == 0


def test_memory_does_not_grow_with_the_team_counts_tried() -> None:
    calls = welfare_calls(poisson_minutes("memory", 4_000, 4 / 50))
    decided = decide_all(calls, [("always", around_the_clock())])
    model = default_time_on_call()

    def peak(teams_max: int) -> int:
        tracemalloc.start()
        try:
            search(decided, teams_max=teams_max, time_on_call=model, seed=1, shortcut=False)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    few, many = peak(2), peak(12)
    assert many < few * 1.25, (few, many)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"target": 0.0}, "target"),
        ({"target": 1.5}, "target"),
        ({"teams_max": 0}, "most teams"),
        ({"max_wait_minutes": -1.0}, "maximum wait"),
    ],
)
def test_bad_settings_are_refused(decided: Decided, kwargs: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        search(decided, time_on_call=default_time_on_call(), seed=1, **kwargs)
