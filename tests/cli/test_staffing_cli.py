"""``heart staffing`` through :func:`heart.cli.staffing.run_staffing`, as the command runs
it: the table a planner reads agrees with the JSON, the JSON carries each curve and
``teams_needed``, the same input and seed give the same files, and bad options, files and
mappings are refused with the option or file named and no traceback."""

from __future__ import annotations

import argparse
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from heart.cli.staffing import run_staffing, team_count
from tests.cad import shared_file

POLICIES = ["milwaukee-demo-policy", "milwaukee-demo-7x12", "milwaukee-demo-24x7"]


def staffing(tmp: Path, *policies: str, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    options.setdefault("out_dir", tmp / "out")
    status = run_staffing(
        shared_file("milwaukee-2018-05-calls.csv"),
        "milwaukee-2018",
        list(policies),
        stdout=out,
        stderr=err,
        progress=False,
        **options,
    )
    assert "Traceback" not in err.getvalue()
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def milwaukee(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("staffing")
    status, out, err = staffing(tmp, *POLICIES)
    assert status == 0, err
    return tmp / "out", out


def test_the_table_is_the_json(milwaukee: tuple[Path, str]) -> None:
    folder, table = milwaukee
    report = json.loads((folder / "staffing.json").read_text(encoding="utf-8"))
    data = report["staffing"]
    assert data["target"] == 0.9 and data["teams_max"] == 12
    by_label = {p["label"]: p for p in data["policies"]}
    assert list(by_label) == POLICIES
    for label, policy in by_label.items():
        crt = policy["pilots"]["crt"]
        assert [p["teams"] for p in crt["curve"]] == list(range(1, 13))
        for point in crt["curve"]:
            assert {"teams", "reached_share", "fallbacks", "wait_p90_min"} <= point.keys()
            assert point["reached"] + point["fallbacks"] == crt["team_calls"]
            assert point["reached_share"] == point["reached"] / crt["team_calls"]
        needed = crt["teams_needed"]
        # The recommendation line: policy, pilot, hours, team calls, teams needed, reached.
        row = re.search(
            rf"^{re.escape(label)}\s+crt\s+(.+?)\s+([\d,]+)\s+(\d+|more than 12)\s+([\d.]+%)",
            table,
            re.MULTILINE,
        )
        assert row, table
        assert int(row.group(2).replace(",", "")) == crt["team_calls"]
        assert row.group(3) == str(needed)
        point = crt["curve"][needed - 1]
        assert row.group(4) == f"{100 * point['reached_share']:.1f}%"
        assert point["reached_share"] >= 0.9 > crt["curve"][needed - 2]["reached_share"]
        # CoR: Milwaukee's demo policies send no call to a co-response pair.
        assert policy["pilots"]["cor"] == {**policy["pilots"]["cor"], "teams_needed": 0}
        assert policy["pilots"]["cor"]["curve"] == []
    assert "no team calls, no team needed" in table
    assert "<- needed" in table


def test_the_table_states_its_assumptions(milwaukee: tuple[Path, str]) -> None:
    _, table = milwaukee
    assert "May 2018 (partial: 1\u201321 May, 21 of 31 days)" in table
    assert "note: Time on call: 52.6 min per call" in table
    assert "waits up to 10 min" in table
    assert "seed 2022" in table
    # The parts add up to the eligible calls, in the glossary's terms.
    assert (
        "milwaukee-demo-policy crt: 3,609 eligible = 326 team calls + 3,283 missed by hours "
        "or area (outside hours 2,685, outside service area 598) + 0 routed elsewhere"
    ) in table


def test_same_input_and_seed_give_the_same_files(
    milwaukee: tuple[Path, str], tmp_path: Path
) -> None:
    folder, table = milwaukee
    status, again, _ = staffing(tmp_path, *POLICIES)
    assert status == 0
    assert again.replace(str(tmp_path / "out"), "OUT") == table.replace(str(folder), "OUT")
    for name in ("staffing.json", "staffing.html"):
        assert (tmp_path / "out" / name).read_bytes() == (folder / name).read_bytes()


def test_options_change_what_they_say(tmp_path: Path) -> None:
    json_out = tmp_path / "elsewhere" / "curve.json"
    status, table, _ = staffing(
        tmp_path,
        "milwaukee-demo-policy",
        target=0.5,
        teams_max=4,
        max_wait_minutes=0,
        time_on_call_minutes=30,
        seed=7,
        json_out=json_out,
    )
    assert status == 0
    data = json.loads(json_out.read_text(encoding="utf-8"))["staffing"]
    assert not (tmp_path / "out" / "staffing.json").exists()
    assert (tmp_path / "out" / "staffing.html").exists()
    crt = data["policies"][0]["pilots"]["crt"]
    assert len(crt["curve"]) == 4 and data["target"] == 0.5
    assert data["assumptions"]["max_wait_minutes"] == 0
    assert data["assumptions"]["time_on_call"]["mean_minutes"] == 30
    assert data["policies"][0]["max_wait_minutes"] == 0
    # Without waiting, nobody waits.
    assert all(p["wait_p90_min"] == 0 for p in crt["curve"])
    assert "waits up to 0 min (--max-wait-minutes" in table


def test_a_wait_longer_than_the_stale_limit_is_capped_and_said(tmp_path: Path) -> None:
    status, table, _ = staffing(tmp_path, "milwaukee-demo-policy", max_wait_minutes=30, teams_max=2)
    assert status == 0
    assert "--max-wait-minutes 30 is longer than policy milwaukee-demo's stale_call_minutes" in (
        table
    )
    data = json.loads((tmp_path / "out" / "staffing.json").read_text(encoding="utf-8"))
    assert data["staffing"]["policies"][0]["max_wait_minutes"] == 10


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target": 0.0}, "--target must be a share above 0"),
        ({"target": 1.5}, "--target must be a share above 0"),
        ({"teams_max": 0}, "--teams-max must be a whole number from 1 to 200"),
        ({"max_wait_minutes": -1.0}, "--max-wait-minutes must be 0 or more"),
        (
            {"time_on_call_minutes": 5.0},
            "--time-on-call-minutes: time on call must be more than the 7.6 min of travel",
        ),
    ],
)
def test_bad_options_are_named(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    status, out, err = staffing(tmp_path, "milwaukee-demo-policy", **options)
    assert status == 2
    assert err.startswith(f"heart staffing: {message}"), err
    assert out == ""


def test_bad_timings_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "none.jsonl"
    status, _, err = staffing(tmp_path, "milwaukee-demo-policy", timings=missing)
    assert status == 2 and f"cannot read timings file {missing}" in err
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"event_type": "dispatch.on_scene"}\nnot json\n', encoding="utf-8")
    status, _, err = staffing(tmp_path, "milwaukee-demo-policy", timings=broken)
    assert status == 2 and f"timings file {broken}, line 2: not JSON" in err
    few = tmp_path / "few.jsonl"
    few.write_text(
        '{"event_type": "dispatch.on_scene", "assignment_to_on_scene_s": 420}\n',
        encoding="utf-8",
    )
    status, _, err = staffing(tmp_path, "milwaukee-demo-policy", timings=few)
    assert status == 2 and "1 travel timings" in err and "at least 20" in err


def test_calibrated_timings_are_used(tmp_path: Path) -> None:
    lines = [
        json.dumps({"event_type": "dispatch.on_scene", "assignment_to_on_scene_s": 300 + n})
        for n in range(30)
    ] + [
        json.dumps({"event_type": "dispatch.cleared", "time_on_scene_s": 1200 + 10 * n})
        for n in range(30)
    ]
    timings = tmp_path / "timings.jsonl"
    timings.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, table, _ = staffing(tmp_path, "milwaukee-demo-policy", timings=timings, teams_max=3)
    assert status == 0
    assert f"calibrated from timings file {timings} (30 arrivals, 30 clearings)" in table


def test_a_bad_policy_or_mapping_is_refused(tmp_path: Path) -> None:
    status, _, err = staffing(tmp_path, "no-such-policy")
    assert status == 2 and err.startswith("heart staffing: ") and "no-such-policy" in err
    out, err_io = io.StringIO(), io.StringIO()
    status = run_staffing(
        shared_file("milwaukee-2018-05-calls.csv"),
        tmp_path / "missing-mapping.toml",
        [],
        out_dir=tmp_path / "out",
        stdout=out,
        stderr=err_io,
        progress=False,
    )
    assert status == 2 and err_io.getvalue().startswith("heart staffing: ")
    status, _, err = staffing(tmp_path, "milwaukee-demo-policy", out_dir=tmp_path / "missing.csv")
    assert status == 0  # an output folder is created


def test_an_unreadable_export_exits_1(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    status = run_staffing(
        tmp_path / "nope.csv",
        "milwaukee-2018",
        [],
        out_dir=tmp_path / "out",
        stdout=out,
        stderr=err,
        progress=False,
    )
    assert status == 1 and "heart staffing: cannot read" in err.getvalue()


@pytest.mark.parametrize("text", ["0", "-2", "201", "three", "2.5"])
def test_team_count_type_refuses_what_is_not_a_count(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="whole number of teams from 1 to 200"):
        team_count(text)
    assert team_count("12") == 12


# --- who and where ------------------------------------------------------------------------


def test_the_table_and_json_name_milwaukee(milwaukee: tuple[Path, str]) -> None:
    folder, table = milwaukee
    report = json.loads((folder / "staffing.json").read_text(encoding="utf-8"))
    # Three wordings of the department: only the names all three policies share head it.
    assert report["organisation"] == {
        "department": None,
        "city": "Milwaukee, WI",
        "program": "HEART (demo)",
    }
    assert report["city"] == "milwaukee"
    assert table.splitlines()[:2] == [
        "Milwaukee, WI \u00b7 HEART (demo) crisis response pilots",
        "export: Milwaukee Police Department calls for service, May 2018 (mapping milwaukee-2018)",
    ]
    assert report["heading"] == table.splitlines()[0]
    names = ("city", "export_title", "organisation", "heading")
    assert "Durham" not in json.dumps({name: report[name] for name in names})


def sanjose_staffing(tmp_path: Path, *policies: str) -> tuple[str, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    status = run_staffing(
        shared_file("sanjose-2024-calls-sample.csv"),
        "sanjose-2024",
        list(policies),
        teams_max=3,
        out_dir=tmp_path,
        stdout=out,
        stderr=err,
        progress=False,
    )
    assert status == 0, err.getvalue()
    return out.getvalue(), json.loads((tmp_path / "staffing.json").read_text(encoding="utf-8"))


def test_a_san_jose_search_names_san_jose(tmp_path: Path) -> None:
    table, report = sanjose_staffing(tmp_path)
    assert report["organisation"]["city"] == "San José, CA"
    assert report["export_title"] == "City of San José police calls for service, 2024 sample"
    assert "San José, CA" in report["heading"] == table.splitlines()[0]
    page = (tmp_path / "staffing.html").read_text(encoding="utf-8")
    assert f'<p class="eyebrow">{html.escape(report["heading"])}</p>' in page
    for text in (page, json.dumps(report, ensure_ascii=False)):
        assert "Durham Community Safety Department" not in text and "Durham, NC" not in text


def test_another_citys_policy_leaves_a_neutral_heading(tmp_path: Path) -> None:
    table, report = sanjose_staffing(tmp_path, "durham")
    assert report["organisation"] is None
    assert report["heading"] == "Crisis response pilots" == table.splitlines()[0]
    assert "San José" in report["export_title"] and "San José" in table.splitlines()[1]
    page = (tmp_path / "staffing.html").read_text(encoding="utf-8")
    assert '<p class="eyebrow">Crisis response pilots</p>' in page
