"""With one team, the capacity simulation falls back exactly where ``heart replay``'s
dispatch stage does, on the same export, seed and time-on-call model.

Two weekdays of Milwaukee's May export go through ``heart replay`` (every stage, on the
real broker) with a roster of one CRT team and one CoR pair on the demo policy's hours.
The simulation runs the same calls against the same roster, its time on call taken from
the replay's own simulated teams: the time from assignment to ``cleared`` that
:meth:`heart.cli.replay.Replayer._respond` reports for that call, team and moment. Then
every call must meet the same fate: the same team assigned, or a fallback.

The one difference (explained in :mod:`heart.agents.capacity.simulate` and in the README's
staffing section): on event time the stage releases a waiting call only at its next command
(a team call or a team's report), and names the reason as things stand then. A call whose
wait runs out shortly before the day's last shift ends is released by the simulation as
``no_team_free``, by the stage as ``no_team_on_shift`` when its next command comes after
the shift ended; a call still waiting when the shift ends goes the other way. Both count
as the same miss, "no team free", so the fallbacks are the same calls.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from heart.agents.capacity.shifts import from_us, intervals, to_us
from heart.agents.capacity.simulate import Outcome, TeamCall, simulate
from heart.agents.dispatch.roster import load_roster
from heart.agents.triage.whatif import Capacity, Effort, compare, decide_all, period_days
from heart.cad.importer import import_rows
from heart.cad.mapping import load_mapping
from heart.cli.replay import Replayer, run_replay
from heart.policy import load_policy
from heart.schemas.dispatch import UnitStatusReport
from heart.streams.settings import HeartSettings
from tests.cad import shared_file

pytestmark = pytest.mark.broker

SEED = 2022
#: Released for want of a team either way; which name the stage gives depends on when
#: its next command comes (see the module docstring).
WAITED_OR_OFF_SHIFT = {"no_team_free", "no_team_on_shift"}
DAYS = ("2018-05-01", "2018-05-02")
ROSTER = """
name = "one-team"
version = "1"
[areas.milwaukee.districts]
"1" = ["1"]
"2" = ["2"]
"3" = ["3"]
"4" = ["4"]
"5" = ["5"]
"6" = ["6"]
"7" = ["7"]
[[teams]]
id = "CRT-1"
kind = "crt"
area = "milwaukee"
roles = ["clinician", "peer_support", "emt"]
languages = ["en"]
home_beat = "2"
shift = [{ days = ["mon", "tue", "wed", "thu", "fri"], start = "08:30", end = "16:30" }]
[[teams]]
id = "COR-1"
kind = "cor"
area = "milwaukee"
roles = ["clinician", "police_officer"]
languages = ["en"]
home_district = "2"
shift = [{ days = ["mon", "tue", "wed", "thu", "fri"], start = "08:30", end = "16:30" }]
"""


@pytest.fixture
def two_days(tmp_path: Path) -> Path:
    source = shared_file("milwaukee-2018-05-calls.csv")
    with source.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader)
        at = header.index("time")
        rows = [row for row in reader if row[at][:10] in DAYS]
    out = tmp_path / "two-days.csv"
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return out


class ReplayTeams:
    """The replay's simulated team as a time-on-call model: how long after its assignment
    the team reports ``cleared``, drawn exactly as the replay draws it."""

    def __init__(self, settings: HeartSettings, policy: Any) -> None:
        self.settings = settings
        self.policy = policy

    def __call__(self, call: TeamCall, team_id: str, at: int) -> int:
        replayer = Replayer(self.settings, self.policy, None, seed=SEED)
        route = "cor" if team_id.startswith("COR") else "crt"
        replayer._respond(team_id, call.call_id, route, from_us(at))
        cleared = [
            event
            for *_, event in replayer._team_agenda
            if isinstance(event, UnitStatusReport) and event.status == "cleared"
        ]
        assert len(cleared) == 1
        return to_us(cleared[0].occurred_at) - at


async def test_one_team_falls_back_where_the_dispatch_stage_does(
    settings: HeartSettings,
    unique: str,
    two_days: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEART_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    scoped = settings.model_copy(update={"topic_prefix": f"cap{unique}."})
    roster_file = tmp_path / "one-team.toml"
    roster_file.write_text(ROSTER, encoding="utf-8")
    mapping = load_mapping("milwaukee-2018")
    policy = load_policy(mapping.policy_path)

    # What the stage did, as the replayer heard it.
    stage: dict[str, tuple[str, str | None, datetime]] = {}
    react = Replayer._react

    def listening(self: Replayer, data: dict[str, Any]) -> None:
        kind = data.get("event_type")
        if kind == "dispatch.assigned":
            at = datetime.fromisoformat(data["occurred_at"])
            stage[data["call_id"]] = ("assigned", data["team_id"], at)
        elif kind == "dispatch.fallback":
            at = datetime.fromisoformat(data["occurred_at"])
            stage[data["call_id"]] = (data["reason"], None, at)
        react(self, data)

    monkeypatch.setattr(Replayer, "_react", listening)
    status = await run_replay(
        scoped,
        two_days,
        "milwaukee-2018",
        policy_path=None,
        roster_path=roster_file,
        speed=None,
        out_dir=tmp_path / "out",
        log_dir=tmp_path / "logs",
        seed=SEED,
    )
    assert status == 0

    # The simulation, on the same calls, roster and time on call.
    calls = import_rows(two_days, mapping).events
    result = compare(
        calls,
        [("demo", policy)],
        Effort(),
        capacity=Capacity(ReplayTeams(scoped, policy), seed=SEED, roster=load_roster(roster_file)),
    )
    crt = result.policies[0].capacity["crt"]
    team_calls = crt.team_calls + result.policies[0].capacity["cor"].team_calls
    assert team_calls == len(stage) > 20, "every team call answered, enough to tell"
    assert crt.fallbacks > 5 and crt.reached > 5, "one team both reaches and misses calls"

    # Call by call, from the simulation's log of the same pools.
    simulated = _outcomes(calls, policy, roster_file, scoped)
    assert simulated.keys() == stage.keys()
    differences = []
    for call_id, (outcome, team, _) in stage.items():
        mine, my_team = simulated[call_id]
        if outcome == "assigned" or mine == "assigned":
            if (mine, my_team) != (outcome, team):
                differences.append((call_id, outcome, team, mine, my_team))
        elif mine != outcome and {mine, outcome} != WAITED_OR_OFF_SHIFT:
            differences.append((call_id, outcome, team, mine, my_team))
    assert not differences
    fallbacks = sum(1 for outcome, _, _ in stage.values() if outcome != "assigned")
    assert crt.fallbacks + result.policies[0].capacity["cor"].fallbacks == fallbacks


def _outcomes(
    calls: list[Any], policy: Any, roster_file: Path, settings: HeartSettings
) -> dict[str, tuple[str, str | None]]:
    """Each team call's fate in the simulation: ("assigned", team) or (reason, None)."""
    roster = load_roster(roster_file)
    decided = decide_all(calls, [("demo", policy)])
    demand = decided.demands[0]
    days = period_days(policy, decided.first_call, decided.last_call)
    first, last = days[0], days[-1]
    out: dict[str, tuple[str, str | None]] = {}
    for kind, team_calls in demand.team_calls.items():
        teams = [t for t in roster.teams_in("milwaukee") if t.kind == kind]
        log: list[Outcome] = []
        simulate(
            [
                c if c.district else replace(c, district=roster.district_of("milwaukee", c.beat))
                for c in team_calls
            ],
            teams,
            [intervals(t.week, policy.zone, first, last) for t in teams],
            kind=kind,
            max_wait=policy.dispatch.max_queue_wait_minutes * 60_000_000,
            stale_after=policy.dispatch.stale_call_minutes * 60_000_000,
            durations=ReplayTeams(settings, policy),
            home_district=roster.home_district,
            log=log,
        )
        out.update({call_id: (what, team) for call_id, what, _, team in log})
    return out
