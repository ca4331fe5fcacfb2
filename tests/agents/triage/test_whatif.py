"""What-if: a comparison whose answer is worked out by hand, the shipped policy variants,
and ``heart whatif`` on the real Milwaukee export."""

from __future__ import annotations

import io
import json
import re
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from heart.agents.triage.whatif import (
    Effort,
    PolicyFigures,
    WhatIf,
    compare,
    months_covered,
    peak_concurrent,
    weekly_minutes,
)
from heart.cli.whatif import parse_teams, render_table, resolve_policy_path, run_whatif
from heart.policy import Policy, load_policy
from heart.policy.model import Window, parse_policy
from heart.schemas.calls import CallReceived
from tests.cad import shared_file

REPO = Path(__file__).resolve().parents[3]
MONDAY = datetime(2024, 7, 15, tzinfo=UTC)
WEEKDAYS = '["mon", "tue", "wed", "thu", "fri"]'
EVERY_DAY = '["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'


def small_policy(
    name: str, *, days: str, start: str, end: str, area: str, timezone: str = "UTC"
) -> Policy:
    """Two categories; CCD and CoR citywide, CRT and CN in ``area``; one window for all."""
    hours = f'[{{ days = {days}, start = "{start}", end = "{end}" }}]'
    text = f"""
name = "{name}"
version = "1"
timezone = "{timezone}"
[categories]
"Welfare Check" = []
"Mental Health Crisis" = []
[risk]
excluded_by_weapon = ["crt"]
excluded_by_violence = ["crt"]
requires_weapon_or_violence = ["cor"]
[dispatch]
max_queue_wait_minutes = 10
[pilots.ccd]
enabled = true
service_area = "citywide"
hours = {hours}
call_types = ["Mental Health Crisis"]
includes_behavioral_health_flag = true
[pilots.crt]
enabled = true
service_area = {area}
hours = {hours}
call_types = ["Welfare Check", "Mental Health Crisis"]
[pilots.cor]
enabled = true
service_area = "citywide"
hours = {hours}
call_types = ["Mental Health Crisis"]
includes_behavioral_health_flag = true
[pilots.cn]
enabled = true
follows = ["ccd", "crt"]
followup_within_hours = 48
unable_to_reach_retries = 3
service_area = {area}
hours = {hours}
"""
    return parse_policy(tomllib.loads(text), source=name)


@pytest.fixture(scope="module")
def weekday() -> Policy:
    """Mon-Fri 08:00-16:00 UTC, CRT and CN in beat 1 only."""
    return small_policy(
        "weekday", days=WEEKDAYS, start="08:00", end="16:00", area='{ beats = ["1"] }'
    )


@pytest.fixture(scope="module")
def always() -> Policy:
    """Every pilot citywide, around the clock."""
    return small_policy("always", days=EVERY_DAY, start="00:00", end="24:00", area='"citywide"')


def call(call_id: str, day: int, hour: int, call_type: str, beat: str | None, **kw: Any):
    return CallReceived(
        call_id=call_id,
        occurred_at=MONDAY + timedelta(days=day, hours=hour),
        call_type=call_type,
        beat=beat,
        **kw,
    )


WELFARE, CRISIS = "Welfare Check", "Mental Health Crisis"

#: What each call is for, under "weekday" / under "always".
CALLS = [
    # in hours, in beat 1: CRT under both.
    call("c1", 0, 10, WELFARE, "1"),
    # beat 2: CRT misses it (outside_service_area) / CRT.
    call("c2", 0, 10, WELFARE, "2"),
    # 20:00: CRT misses it (outside_hours) / CRT.
    call("c3", 0, 20, WELFARE, "1"),
    # Saturday, beat 2: missed for both reasons, counted once as outside_hours / CRT.
    call("c4", 5, 10, WELFARE, "2"),
    # a weapon: CRT is excluded, which is not a miss; police under both.
    call("c5", 0, 11, WELFARE, "1", weapon_involved=True),
    # by phone: CCD under both; CRT eligible but not sent; CoR does not match (no risk).
    call("c6", 0, 12, CRISIS, "1", needs_in_person=False),
    # 21:00 with violence: CCD and CoR miss it (outside_hours), CRT excluded; police /
    # CoR goes, CCD stays on the line.
    call("c7", 0, 21, CRISIS, "3", violence_reported=True),
    # no pilot's type: police under both.
    call("c8", 0, 10, "Traffic Stop", "1"),
    # no beat: CRT misses it (unknown_beat) / CRT.
    call("c9", 1, 9, WELFARE, None),
]

#: 10 min travel + 50 on scene: one team-hour per team call.
EFFORT = Effort(travel_minutes=10, on_scene_minutes=50, teams={"crt": 2})


@pytest.fixture(scope="module")
def result(weekday: Policy, always: Policy) -> WhatIf:
    # Input out of time order on purpose: the period and the peak must not depend on it.
    return compare(list(reversed(CALLS)), [("weekday", weekday), ("always", always)], EFFORT)


def pilot(figures: PolicyFigures, name: str) -> dict[str, Any]:
    data = figures.pilots[name].to_dict()
    data.pop("reach_rate")
    return data


def test_hand_computed_weekday(result: WhatIf) -> None:
    weekday = result.policies[0]
    assert weekday.label == "weekday" and weekday.calls == 9
    assert dict(weekday.routes) == {"crt": 1, "ccd": 1, "police": 7}
    assert weekday.followups == 2  # c1 (crt) and c6 (ccd)
    assert pilot(weekday, "ccd") == {
        "pilot": "ccd",
        "matched": 2,
        "kept_off_weapon_or_violence": 0,
        "eligible": 2,
        "reached": 1,  # c6, resolved by phone
        "missed": 1,
        "missed_by_reason": {"outside_hours": 1},  # c7
        "other": 0,
        "other_name": "needed someone in person",
        "other_by_route": {},
        "reached_or_other": 1,
        "reach_measured": True,
    }
    assert pilot(weekday, "crt") == {
        "pilot": "crt",
        "matched": 8,
        "kept_off_weapon_or_violence": 2,  # c5 (weapon), c7 (violence)
        "eligible": 6,
        "reached": 1,  # c1
        "missed": 4,  # c2, c3, c4, c9
        "missed_by_reason": {"outside_hours": 2, "outside_service_area": 1, "unknown_beat": 1},
        "other": 1,  # c6: CRT could go, but CCD resolved it by phone
        "other_name": "routed elsewhere",
        "other_by_route": {"ccd": 1},
        "reached_or_other": 2,
        "reach_measured": True,
    }
    assert pilot(weekday, "cor") == {
        "pilot": "cor",
        "matched": 1,
        "kept_off_weapon_or_violence": 0,
        "eligible": 1,
        "reached": 0,
        "missed": 1,
        "missed_by_reason": {"outside_hours": 1},
        "other": 0,
        "other_name": "routed elsewhere",
        "other_by_route": {},
        "reached_or_other": 0,
        "reach_measured": True,
    }
    assert weekday.pilots["crt"].reach_rate == pytest.approx(1 / 6)


def test_hand_computed_always(result: WhatIf) -> None:
    always = result.policies[1]
    assert dict(always.routes) == {"crt": 5, "ccd": 1, "cor": 1, "police": 2}
    assert always.followups == 6  # five crt, one ccd; CN does not follow cor
    # CCD reaches only the call it resolves by phone (c6); c7 went to CoR, someone in person.
    assert [always.pilots[p].reached for p in ("ccd", "crt", "cor")] == [1, 5, 1]
    assert [always.pilots[p].eligible for p in ("ccd", "crt", "cor")] == [2, 6, 1]
    assert [always.pilots[p].missed_total for p in ("ccd", "crt", "cor")] == [0, 0, 0]
    assert dict(always.pilots["ccd"].other) == {"cor": 1}
    assert dict(always.pilots["crt"].other) == {"ccd": 1}
    assert always.pilots["crt"].kept_off == 2


def test_parts_add_up_for_every_pilot_and_policy(result: WhatIf) -> None:
    for figures in result.policies:
        for p in figures.pilots.values():
            assert p.matched == p.eligible + p.kept_off
            assert p.eligible == p.reached + p.missed_total + p.other_total
            data = p.to_dict()
            assert data["eligible"] == data["reached"] + data["missed"] + data["other"]
            assert data["missed"] == sum(data["missed_by_reason"].values())
            assert data["other"] == sum(data["other_by_route"].values())


def test_ccd_reach_is_not_measured_when_needs_in_person_is_a_default(
    weekday: Policy, always: Policy
) -> None:
    # An export without dispositions: every call "needs someone", c6 included.
    calls = [c.model_copy(update={"needs_in_person": True}) for c in CALLS]
    blind = compare(calls, [("always", always)], EFFORT, in_person_known=False)
    ccd = blind.policies[0].pilots["ccd"]
    assert (ccd.eligible, ccd.missed_total, ccd.reached_or_other) == (2, 0, 2)
    assert ccd.reach_rate is None
    data = ccd.to_dict()
    assert data["reached"] is None and data["other"] is None and data["reach_rate"] is None
    assert data["reach_measured"] is False and data["reached_or_other"] == 2
    # CRT is still counted: it is CCD's split that the export cannot tell.
    assert blind.policies[0].pilots["crt"].reach_rate is not None
    assert blind.to_dict()["needs_in_person_known"] is False
    table = render_table(blind)
    assert re.search(r"ccd reached, share of eligible\s+not measured", table)
    assert not re.search(r"ccd reached, share of eligible\s+[\d.]+%", table)
    assert "not missed: reached or needed someone in person (not told apart)" in table


def test_months_are_counted_in_each_policys_zone(weekday: Policy) -> None:
    chicago = small_policy(
        "chicago",
        days=WEEKDAYS,
        start="08:00",
        end="16:00",
        area='{ beats = ["1"] }',
        timezone="America/Chicago",
    )
    # 03:00 UTC on 1 July is still 30 June in Chicago.
    calls = [
        call("a", 0, 0, WELFARE, "1").model_copy(
            update={"occurred_at": datetime(2024, 7, 1, 3, tzinfo=UTC)}
        ),
        call("b", 0, 0, WELFARE, "1").model_copy(
            update={"occurred_at": datetime(2024, 7, 31, 12, tzinfo=UTC)}
        ),
    ]
    both = compare(calls, [("utc", weekday), ("chicago", chicago)])
    utc, local = both.policies
    assert [m.to_dict() for m in utc.months] == [
        {
            "month": "2024-07",
            "first_day": "2024-07-01",
            "last_day": "2024-07-31",
            "days_covered": 31,
            "days_in_month": 31,
            "partial": False,
        }
    ]
    assert [(m.month, m.days_covered, m.partial) for m in local.months] == [
        ("2024-06", 1, True),
        ("2024-07", 31, False),
    ]
    assert local.months[0].label() == "June 2024 (partial: 30\u201330 Jun, 1 of 30 days)"
    assert local.months[1].label() == "July 2024"


def test_months_covered_spans_a_year_end() -> None:
    zone = ZoneInfo("UTC")
    months = months_covered(
        datetime(2023, 12, 5, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC), zone
    )
    assert [(m.month, m.days_covered, m.days_in_month, m.partial) for m in months] == [
        ("2023-12", 27, 31, True),
        ("2024-01", 31, 31, False),
        ("2024-02", 29, 29, False),  # a leap year's February, whole
    ]


def test_hand_computed_team_hours(result: WhatIf) -> None:
    weekday, always = result.policies
    # The calls span Monday 15 July to Saturday 20 July: six calendar days.
    assert result.first_call == MONDAY + timedelta(hours=10)
    assert result.last_call == MONDAY + timedelta(days=5, hours=10)
    crt = weekday.hours["crt"]
    assert (crt.team_calls, crt.response_hours) == (1, 1.0)
    assert crt.staffed_hours_per_team == 5 * 8  # Saturday is closed
    assert (crt.teams, crt.staffed_team_hours) == (2, 80)
    # One team-hour of work over 40 open hours, whatever the 2 teams on shift.
    assert crt.demand_team_equivalents == pytest.approx(1 / 40)
    assert weekday.hours["cor"].staffed_team_hours == 40
    assert (weekday.response_team_hours, weekday.staffed_team_hours) == (1.0, 120)

    assert always.hours["crt"].response_hours == 5.0
    assert always.hours["cor"].response_hours == 1.0
    assert always.hours["crt"].staffed_hours_per_team == 6 * 24
    assert (always.response_team_hours, always.staffed_team_hours) == (6.0, 2 * 144 + 144)
    # c1 and c2 both come in at Monday 10:00; nothing else overlaps.
    assert always.hours["crt"].peak_concurrent == 2
    assert weekday.hours["crt"].peak_concurrent == 1
    assert always.hours["ccd"].team_calls == 0  # CCD sends no team


def test_json_is_the_same_figures(result: WhatIf) -> None:
    data = json.loads(json.dumps(result.to_dict()))
    weekday = data["policies"][0]
    assert weekday["routes"] == {"ccd": 1, "crt": 1, "cor": 0, "police": 7}
    assert weekday["pilots"]["crt"]["missed_by_reason"] == {
        "outside_hours": 2,
        "outside_service_area": 1,
        "unknown_beat": 1,
    }
    assert weekday["team_hours"] == {
        "response": 1.0,
        "staffed_in_person": 120.0,
        "by_pilot": weekday["team_hours"]["by_pilot"],
    }
    assert data["assumptions"]["teams"] == {"ccd": 1, "crt": 2, "cor": 1, "cn": 1}
    crt_hours = weekday["team_hours"]["by_pilot"]["crt"]
    # Demand, not teams busy: capacity is not modelled, so the key says what it is.
    assert crt_hours["demand_team_equivalents"] == 0.025
    assert "avg_teams_busy" not in crt_hours
    # The glossary's terms, not the what-if's own: no "in scope" anywhere.
    assert "in_scope" not in json.dumps(data)


def test_peak_and_weekly_minutes() -> None:
    hour = timedelta(hours=1)
    # Back to back is not overlapping: [10, 11) then [11, 12).
    assert peak_concurrent([MONDAY, MONDAY + hour], hour) == 1
    assert peak_concurrent([MONDAY, MONDAY + hour / 2, MONDAY + hour / 4], hour) == 3
    assert peak_concurrent([], hour) == 0
    windows = [
        Window(days=["mon", "tue"], start="08:00", end="12:00"),
        Window(days=["mon"], start="11:00", end="13:00"),  # overlaps Monday's: counted once
    ]
    assert weekly_minutes(windows) == (300, 240, 0, 0, 0, 0, 0)


def test_effort_and_teams_are_validated() -> None:
    with pytest.raises(ValueError):
        Effort(travel_minutes=-1)
    with pytest.raises(ValueError):
        Effort(teams={"swat": 1})
    assert parse_teams(["crt=3", "cor=0"]) == {"crt": 3, "cor": 0}
    for bad in ("crt", "crt=x", "swat=1"):
        with pytest.raises(ValueError, match="--teams"):
            parse_teams([bad])


# --- the shipped variants -----------------------------------------------------------------


def rules(policy: Policy) -> dict[str, Any]:
    data = policy.model_dump(mode="json")
    for key in ("name", "title", "version", "source"):
        data.pop(key)
    return data


def test_durham_2022_pilot_is_durham_toml() -> None:
    assert rules(load_policy(REPO / "policy/durham-2022-pilot.toml")) == rules(load_policy())


@pytest.mark.parametrize(
    ("name", "open_hours"),
    [
        ("durham-citywide-7x12", {"ccd": 84, "crt": 84, "cor": 105, "cn": 84}),
        ("durham-24x7", {"ccd": 168, "crt": 168, "cor": 168, "cn": 168}),
        ("milwaukee-demo-7x12", {"ccd": 84, "crt": 84, "cor": 105, "cn": 84}),
        ("milwaukee-demo-24x7", {"ccd": 168, "crt": 168, "cor": 168, "cn": 168}),
    ],
)
def test_variants(name: str, open_hours: dict[str, int]) -> None:
    policy = load_policy(resolve_policy_path(name))
    weekly = {
        pilot: sum(weekly_minutes(getattr(policy.pilots, pilot).hours)) // 60
        for pilot in open_hours
    }
    assert weekly == open_hours
    base = (
        load_policy()
        if name.startswith("durham")
        else load_policy(REPO / "cad/mappings/milwaukee-demo-policy.toml")
    )
    # Only where and when changed: the categories and the risk rules are the base policy's.
    assert policy.categories == base.categories
    assert policy.risk == base.risk
    for pilot in ("ccd", "cor"):
        assert getattr(policy.pilots, pilot).service_area is None
    if name.startswith("durham"):
        assert policy.pilots.crt.service_area is None
    else:
        # Milwaukee: every district, so non-geographic units stay unknown_beat.
        assert policy.pilots.crt.service_area.beats == [str(d) for d in range(1, 8)]


# --- heart whatif on the real Milwaukee export --------------------------------------------


def test_whatif_cli_on_milwaukee(tmp_path: Path) -> None:
    export = shared_file("milwaukee-2018-05-calls.csv")
    out, err = io.StringIO(), io.StringIO()
    status = run_whatif(
        export,
        "milwaukee-2018",
        [
            str(REPO / "cad/mappings/milwaukee-demo-policy.toml"),
            "milwaukee-demo-7x12",
            "milwaukee-demo-24x7",
        ],
        out_dir=tmp_path / "report",
        stdout=out,
        stderr=err,
        progress=False,
    )
    assert status == 0, err.getvalue()
    table = out.getvalue()
    assert "milwaukee-demo-policy" in table and "milwaukee-demo-24x7" in table
    # 23 calls the export shows closed without dispatch are not CRT's to send a team to.
    assert re.search(r"route crt \(community response team\)\s+326\s+2,058\s+3,597", table)
    assert "33,968 calls" in table
    assert "months: May 2018 (partial: 1\u201321 May, 21 of 31 days)" in table
    assert "May 2018 is a partial month: the calls cover 1\u201321 May" in table
    assert re.search(r"crt demand, team-equivalents \(not teams busy\)\s+2\.38\s+7\.16", table)
    assert "avg teams busy" not in table and "in scope" not in table
    # Measured from the dispositions, and said to be a lower bound.
    assert "column 'status' shows were closed without sending anyone" in table
    assert "lower bound" in table

    report = json.loads((tmp_path / "report/whatif.json").read_text())
    demo, twelve, always = report["whatif"]["policies"]
    assert report["needs_in_person_from"] == "status"
    assert report["import"]["closed_without_dispatch"] == 23
    assert [p["routes"]["crt"] for p in (demo, twelve, always)] == [326, 2_058, 3_597]
    # 3,609 calls of the ten categories, none with a weapon or violence: all eligible.
    for figures in (demo, twelve, always):
        crt = figures["pilots"]["crt"]
        assert crt["eligible"] == 3_609 and crt["kept_off_weapon_or_violence"] == 0
        assert crt["eligible"] == crt["reached"] + crt["missed"] + crt["other"]
    assert demo["pilots"]["crt"]["missed_by_reason"] == {
        "outside_hours": 2_685,
        "outside_service_area": 598,
    }
    # 24/7 in every district misses only calls booked to a non-geographic unit; the 10
    # closed without dispatch are routed elsewhere (no CCD call type, so police).
    assert always["pilots"]["crt"]["missed_by_reason"] == {"unknown_beat": 2}
    assert always["pilots"]["crt"]["other_by_route"] == {"police": 10}
    assert [m["partial"] for m in demo["months"]] == [True]
    # 1 May to 21 May 2018: 21 days, 15 of them weekdays.
    assert demo["team_hours"]["by_pilot"]["crt"]["staffed_hours_per_team"] == 15 * 8
    assert twelve["team_hours"]["by_pilot"]["crt"]["staffed_hours_per_team"] == 21 * 12
    assert always["team_hours"]["by_pilot"]["crt"]["staffed_hours_per_team"] == 21 * 24
    assert report["import"]["rows"] == 33_968 and report["import"]["rejected"] == 0

    page = (tmp_path / "report/whatif.html").read_text()
    # A chart per pilot with eligible calls (CCD, CRT), and the routes chart.
    assert page.count("<svg") == 3
    # Self-contained: nothing is fetched when the page is opened.
    assert not re.search(r"<(link|script|img)\b|\bsrc=|url\((?!#)|@import", page)
    assert not re.search(r"href=", page)


def test_whatif_refuses_a_policy_without_the_mappings_categories(tmp_path: Path) -> None:
    export = shared_file("sanjose-2024-calls-sample.csv")
    text = (REPO / "cad/mappings/sanjose-demo-policy.toml").read_text()
    narrow = text.replace('"Lost Person" = []\n', "")
    narrow = narrow.replace('"Lost Person",', "").replace(', "Lost Person"]', "]")
    policy = tmp_path / "narrow.toml"
    policy.write_text(narrow)
    err = io.StringIO()
    status = run_whatif(
        export, "sanjose-2024", [str(policy)], out_dir=tmp_path, stdout=io.StringIO(), stderr=err
    )
    assert status == 2
    assert f"policy file {policy}: categories: does not know 'Lost Person'" in err.getvalue()


def test_whatif_reports_a_bad_mapping_with_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    source = (REPO / "cad/mappings/sanjose-2024.toml").read_text()
    bad.write_text(source.replace('timezone = "America/Los_Angeles"', 'timezone = "Mars/Base"'))
    (tmp_path / "sanjose-demo-policy.toml").write_text(
        (REPO / "cad/mappings/sanjose-demo-policy.toml").read_text()
    )
    err = io.StringIO()
    status = run_whatif(
        tmp_path / "none.csv", bad, [], out_dir=tmp_path, stdout=io.StringIO(), stderr=err
    )
    assert status == 2
    assert f"mapping file {bad}: time.timezone: unknown time zone 'Mars/Base'" in err.getvalue()


# --- one decision per kind of call --------------------------------------------------------


SHIPPED = [
    (
        "milwaukee-2018-05-calls.csv",
        "milwaukee-2018",
        ["milwaukee-demo-policy", "milwaukee-demo-7x12", "milwaukee-demo-24x7", "durham-24x7"],
    ),
    ("sanjose-2024-calls-sample.csv", "sanjose-2024", ["sanjose-demo-policy", "durham"]),
]


@pytest.mark.parametrize(("export", "mapping_name", "names"), SHIPPED)
def test_calls_alike_share_a_decision_and_it_is_decides(
    export: str, mapping_name: str, names: list[str]
) -> None:
    from heart.agents.triage.decide import decide, missed
    from heart.agents.triage.whatif import decide_all
    from heart.cad.importer import import_rows
    from heart.cad.mapping import load_mapping

    calls = import_rows(shared_file(export), load_mapping(mapping_name)).events
    policies = [(n, load_policy(resolve_policy_path(n))) for n in names]
    decided = decide_all(calls, policies)
    for demand, (_, policy) in zip(decided.demands, policies, strict=True):
        # Each call decided on its own, as the triage stage decides it.
        routes: Counter[str] = Counter()
        misses: Counter[tuple[str, str]] = Counter()
        team_ids: dict[str, list[str]] = {"crt": [], "cor": []}
        for one in calls:
            decision = decide(one, policy)
            routes[decision.route] += 1
            misses.update(missed(decision))
            if decision.route in team_ids:
                team_ids[decision.route].append(one.call_id)
        figures = demand.figures
        assert dict(figures.routes) == {r: n for r, n in routes.items() if n}
        assert {
            (p, r): n for p, f in figures.pilots.items() for r, n in f.missed.items() if n
        } == dict(misses)
        for pilot, ids in team_ids.items():
            assert sorted(c.call_id for c in demand.team_calls[pilot]) == sorted(ids)
        for pilot, f in figures.pilots.items():
            assert sum(demand.eligible_by_hour[pilot]) == f.eligible


# --- capacity ------------------------------------------------------------------------------


def test_capacity_on_a_hand_made_history(always: Policy) -> None:
    from heart.agents.capacity.timing import Distribution, TimeOnCall
    from heart.agents.triage.whatif import Capacity

    # Three CRT calls a minute apart; one team, 30 minutes a call, up to 10 minutes' wait.
    history = [call(f"k{n}", 0, 10, WELFARE, "1") for n in range(3)]
    history = [
        c.model_copy(update={"occurred_at": c.occurred_at + timedelta(minutes=n)})
        for n, c in enumerate(history)
    ]
    thirty = TimeOnCall(Distribution.fixed(10), Distribution.fixed(20))
    result = compare(
        history, [("always", always)], Effort(teams={"crt": 1}), capacity=Capacity(thirty)
    )
    crt = result.policies[0].pilots["crt"]
    modelled = result.policies[0].capacity["crt"]
    assert (crt.eligible, crt.reached, crt.missed_total, crt.other_total) == (3, 1, 2, 0)
    assert crt.missed == {"no_team_free": 2}
    assert modelled.pool.fallbacks == {"no_team_free": 2}
    assert modelled.team_calls == 3 and modelled.teams == 1
    data = result.to_dict()
    capacity = data["policies"][0]["capacity"]["crt"]
    assert capacity["fallbacks_by_reason"] == {
        "no_team_free": 2,
        "no_team_on_shift": 0,
        "no_team_of_kind": 0,
    }
    assert capacity["wait_minutes"]["p90"] == 0.0
    # The team worked 30 minutes, of a day of 24 x 1 team-hours on shift.
    assert capacity["team_hours"] == {"on_calls": 0.5, "on_shift": 24.0, "past_shift_end": 0.0}
    assert "no_team_free" in data["assumptions"]["note"]
    # With two minutes of slack the second call waits for the team instead.
    longer = TimeOnCall(Distribution.fixed(0), Distribution.fixed(1.5))
    result = compare(history, [("always", always)], capacity=Capacity(longer))
    modelled = result.policies[0].capacity["crt"]
    assert modelled.reached == 3 and modelled.pool.waited == 2


def test_capacity_with_a_roster(always: Policy, tmp_path: Path) -> None:
    from heart.agents.capacity.timing import Distribution, TimeOnCall
    from heart.agents.dispatch.roster import load_roster
    from heart.agents.triage.whatif import Capacity

    roster_file = tmp_path / "roster.toml"
    roster_file.write_text(
        """
name = "one"
version = "1"
[areas.city.districts]
D1 = ["1", "2", "3"]
[[teams]]
id = "CRT-1"
kind = "crt"
area = "city"
roles = ["clinician", "peer_support", "emt"]
languages = ["en"]
home_beat = "1"
shift = [{ days = ["mon"], start = "09:00", end = "12:00" }]
""",
        encoding="utf-8",
    )
    thirty = TimeOnCall(Distribution.fixed(10), Distribution.fixed(20))
    # c1, c2, c4 (Saturday), c9 (Tuesday, no beat): one team on Monday mornings only, no
    # CoR pair at all.
    result = compare(
        CALLS,
        [("always", always)],
        capacity=Capacity(thirty, roster=load_roster(roster_file)),
    )
    modelled = result.policies[0].capacity
    assert modelled["crt"].teams == 1 and modelled["cor"].teams == 0
    crt = modelled["crt"].pool
    assert crt.reached == 1  # c1 at 10:00; c2 at 10:00 found the team busy
    assert crt.fallbacks == {"no_team_free": 1, "no_team_on_shift": 3}
    assert modelled["cor"].pool.fallbacks == {"no_team_of_kind": 1}  # c7
    figures = result.policies[0].pilots["crt"]
    assert figures.reached == 1 and figures.missed["no_team_free"] == 4
    assert figures.eligible == figures.reached + figures.missed_total + figures.other_total
