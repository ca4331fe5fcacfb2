"""What-if: a comparison whose answer is worked out by hand, the shipped policy variants,
and ``heart whatif`` on the real Milwaukee export."""

from __future__ import annotations

import io
import json
import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from heart.agents.triage.whatif import (
    Effort,
    PolicyFigures,
    WhatIf,
    compare,
    peak_concurrent,
    weekly_minutes,
)
from heart.cli.whatif import parse_teams, resolve_policy_path, run_whatif
from heart.policy import Policy, load_policy
from heart.policy.model import Window, parse_policy
from heart.schemas.calls import CallReceived
from tests.cad import shared_file

REPO = Path(__file__).resolve().parents[3]
MONDAY = datetime(2024, 7, 15, tzinfo=UTC)
WEEKDAYS = '["mon", "tue", "wed", "thu", "fri"]'
EVERY_DAY = '["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'


def small_policy(name: str, *, days: str, start: str, end: str, area: str) -> Policy:
    """Two categories; CCD and CoR citywide, CRT and CN in ``area``; one window for all."""
    hours = f'[{{ days = {days}, start = "{start}", end = "{end}" }}]'
    text = f"""
name = "{name}"
version = "1"
timezone = "UTC"
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
        "in_scope": 2,
        "eligible": 1,
        "reached": 1,
        "missed": 1,
        "missed_by_reason": {"outside_hours": 1},
        "excluded_weapon_or_violence": 0,
    }
    assert pilot(weekday, "crt") == {
        "pilot": "crt",
        "matched": 8,
        "in_scope": 6,
        "eligible": 2,
        "reached": 1,
        "missed": 4,
        "missed_by_reason": {"outside_hours": 2, "outside_service_area": 1, "unknown_beat": 1},
        "excluded_weapon_or_violence": 2,
    }
    assert pilot(weekday, "cor") == {
        "pilot": "cor",
        "matched": 1,
        "in_scope": 1,
        "eligible": 0,
        "reached": 0,
        "missed": 1,
        "missed_by_reason": {"outside_hours": 1},
        "excluded_weapon_or_violence": 0,
    }
    assert weekday.pilots["crt"].reach_rate == pytest.approx(1 / 6)


def test_hand_computed_always(result: WhatIf) -> None:
    always = result.policies[1]
    assert dict(always.routes) == {"crt": 5, "ccd": 1, "cor": 1, "police": 2}
    assert always.followups == 6  # five crt, one ccd; CN does not follow cor
    assert [always.pilots[p].reached for p in ("ccd", "crt", "cor")] == [2, 5, 1]
    assert [always.pilots[p].in_scope for p in ("ccd", "crt", "cor")] == [2, 6, 1]
    assert [always.pilots[p].missed_total for p in ("ccd", "crt", "cor")] == [0, 0, 0]
    assert always.pilots["crt"].excluded == 2


def test_hand_computed_team_hours(result: WhatIf) -> None:
    weekday, always = result.policies
    # The calls span Monday 15 July to Saturday 20 July: six calendar days.
    assert result.first_call == MONDAY + timedelta(hours=10)
    assert result.last_call == MONDAY + timedelta(days=5, hours=10)
    crt = weekday.hours["crt"]
    assert (crt.team_calls, crt.response_hours) == (1, 1.0)
    assert crt.staffed_hours_per_team == 5 * 8  # Saturday is closed
    assert (crt.teams, crt.staffed_team_hours) == (2, 80)
    assert crt.avg_teams_busy == pytest.approx(1 / 40)
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
    assert re.search(r"route crt\s+326\s+2,062\s+3,607", table)
    assert "33,968 calls" in table

    report = json.loads((tmp_path / "report/whatif.json").read_text())
    demo, twelve, always = report["whatif"]["policies"]
    assert [p["routes"]["crt"] for p in (demo, twelve, always)] == [326, 2_062, 3_607]
    # 3,609 calls of the ten categories, none with a weapon or violence: all in scope.
    assert {p["pilots"]["crt"]["in_scope"] for p in (demo, twelve, always)} == {3_609}
    assert demo["pilots"]["crt"]["missed_by_reason"] == {
        "outside_hours": 2_685,
        "outside_service_area": 598,
    }
    # 24/7 in every district misses only calls booked to a non-geographic unit.
    assert always["pilots"]["crt"]["missed_by_reason"] == {"unknown_beat": 2}
    # 1 May to 21 May 2018: 21 days, 15 of them weekdays.
    assert demo["team_hours"]["by_pilot"]["crt"]["staffed_hours_per_team"] == 15 * 8
    assert twelve["team_hours"]["by_pilot"]["crt"]["staffed_hours_per_team"] == 21 * 12
    assert always["team_hours"]["by_pilot"]["crt"]["staffed_hours_per_team"] == 21 * 24
    assert report["import"]["rows"] == 33_968 and report["import"]["rejected"] == 0

    page = (tmp_path / "report/whatif.html").read_text()
    assert page.count("<svg") == 2
    # Self-contained: nothing is fetched when the page is opened.
    assert not re.search(r"<(link|script|img)\b|\bsrc=|url\(|@import", page)
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
