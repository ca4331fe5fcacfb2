"""``heart whatif`` as a person runs it (through ``python -m heart.cli``): percentages that
match the table, CCD reach said plainly to be unmeasured on an export without
dispositions, and mappings that are not there or name missing files refused with what
to do."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from heart.agents.reporting.wording import heading
from heart.cad.mapping import load_mapping, shipped_mapping
from heart.cli.whatif import percent
from heart.schemas.reports import Organisation
from tests.cad import shared_file

REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "cad" / "mappings"


def heart(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heart.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def copy_mapping(folder: Path, name: str, *, in_person: bool = True, roster: bool = True) -> Path:
    """The shipped Milwaukee mapping in ``folder`` as ``name``, with its policy (and roster)
    beside it; without ``in_person`` its ``[in_person]`` table is removed, as for an export
    that carries no disposition."""
    text = (MAPPINGS / "milwaukee-2018.toml").read_text(encoding="utf-8")
    if not in_person:
        text = text[: text.index("[in_person]")] + text[text.index("# Category names") :]
    (folder / "milwaukee-demo-policy.toml").write_text(
        (MAPPINGS / "milwaukee-demo-policy.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    if roster:
        (folder / "milwaukee-demo-roster.toml").write_text(
            (MAPPINGS / "milwaukee-demo-roster.toml").read_text(encoding="utf-8"),
            encoding="utf-8",
        )
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


# --- percentages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "whole", "shown"),
    [
        (3_607, 3_609, "99.9%"),
        (9_999, 10_000, ">99.9%"),
        (1, 10_000, "<0.1%"),
        (1, 3, "33.3%"),
        (326, 3_609, "9.0%"),
        (5, 5, "100%"),
        (0, 5, "0%"),
        (0, 0, "-"),
    ],
)
def test_percent_matches_the_counts(part: int, whole: int, shown: str) -> None:
    assert percent(part, whole) == shown


def test_percent_is_whole_or_nothing_only_when_exact() -> None:
    for whole in range(1, 2_500):
        for part in (1, 2, whole - 2, whole - 1):
            if 0 < part < whole:
                assert percent(part, whole) not in {"100%", "100.0%", "0%", "0.0%"}, (part, whole)


# --- a CAD export without dispositions ------------------------------------------------------


def test_export_without_dispositions_rounds_right_and_says_ccd_is_not_measured(
    tmp_path: Path,
) -> None:
    mapping = copy_mapping(tmp_path, "blind.toml", in_person=False)
    done = heart(
        "whatif",
        shared_file("milwaukee-2018-05-calls.csv"),
        "--mapping",
        mapping,
        "--policy",
        "milwaukee-demo-24x7",
        "--out",
        tmp_path / "out",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    table = done.stdout
    # Every call taken as needing someone: CRT reaches 3,607 of its 3,609 eligible calls,
    # which is 99.9%, not 100%.
    assert re.search(r"reached \(team assigned\)\s+3,607\n", table)
    assert re.search(r"crt reached, share of eligible\s+99\.9%\n", table)
    assert re.search(r"ccd reached, share of eligible\s+not measured\n", table)
    assert "This export cannot tell which calls could be resolved by phone" in table
    assert "every call is taken as needing someone in person" in done.stderr

    page = (tmp_path / "out" / "whatif.html").read_text(encoding="utf-8")
    assert "3,607 of 3,609 reached \u00b7 99.9%" in page
    assert "5 eligible \u00b7 reach not measured" in page
    assert 'id="ccd-not-measured"' in page
    assert not re.search(r"CCD[^<]{0,40}\d+(\.\d)?%", page, re.IGNORECASE)
    report = json.loads((tmp_path / "out" / "whatif.json").read_text(encoding="utf-8"))
    ccd = report["whatif"]["policies"][0]["pilots"]["ccd"]
    assert (ccd["reached"], ccd["reach_rate"], ccd["reach_measured"]) == (None, None, False)
    assert report["whatif"]["needs_in_person_known"] is False


# --- mappings that are not there, or name files that are not ---------------------------------


def test_unknown_mapping_lists_the_shipped_ones(tmp_path: Path) -> None:
    export = tmp_path / "calls.csv"
    export.write_text("id,time,nature\n1,2018-05-01 00:00:00,X\n", encoding="utf-8")
    done = heart("whatif", export, "--mapping", "nosuchcity", cwd=tmp_path)
    assert done.returncode == 2
    assert_no_traceback(done)
    assert done.stderr.strip() == (
        "heart whatif: mapping file nosuchcity: no such file and no shipped mapping of that "
        "name (shipped mappings: milwaukee-2018, sanjose-2024)"
    )


def test_unknown_mapping_suggests_the_toml_file_in_this_directory(tmp_path: Path) -> None:
    copy_mapping(tmp_path, "nosuchcity.toml")
    done = heart("whatif", "calls.csv", "--mapping", "nosuchcity", cwd=tmp_path)
    assert done.returncode == 2
    assert_no_traceback(done)
    assert done.stderr.strip().endswith("; did you mean ./nosuchcity.toml?")


def test_mapping_whose_roster_is_missing_is_refused_naming_it(tmp_path: Path) -> None:
    mapping = copy_mapping(tmp_path, "city.toml", roster=False)
    done = heart(
        "whatif", shared_file("milwaukee-2018-05-calls.csv"), "--mapping", mapping, cwd=tmp_path
    )
    assert done.returncode == 2
    assert_no_traceback(done)
    assert done.stderr.strip() == (
        f"heart whatif: mapping file {mapping}: roster: roster file not found: "
        f"{tmp_path / 'milwaukee-demo-roster.toml'}"
    )
    assert not (tmp_path / "whatif-out").exists()


def test_export_with_no_usable_call_writes_no_report(tmp_path: Path) -> None:
    export = tmp_path / "calls.csv"
    export.write_text(
        "id,time,location,latitude,longitude,district,nature,status\n"
        "1,yesterday,X,43.0,-87.9,3,TRAFFIC STOP,Advised\n"
        "2,today,X,43.0,-87.9,3,TRAFFIC STOP,Advised\n",
        encoding="utf-8",
    )
    done = heart("whatif", export, "--mapping", "milwaukee-2018", "--out", "out", cwd=tmp_path)
    assert done.returncode == 65
    assert_no_traceback(done)
    assert "no row became a call (2 rows, all rejected: bad_time 2)" in done.stderr
    assert not (tmp_path / "out").exists()


# --- who and where: the heading names the export's city, never another's --------------------


def header_of(page: str) -> str:
    found = re.search(r"<header>.*?</header>", page, re.DOTALL)
    assert found, "the page has a header"
    return found.group(0)


def eyebrow_of(page: str) -> str:
    found = re.search(r'<p class="eyebrow">(.*?)</p>', page)
    assert found, "the page has a heading line"
    return html.unescape(found.group(1))


def whatif_outputs(
    tmp_path: Path, export: Path, mapping: str | Path, *policies: str
) -> tuple[list[str], dict[str, Any], str]:
    """``heart whatif``'s stdout lines, its JSON and its page."""
    options = [item for policy in policies for item in ("--policy", policy)]
    done = heart(
        "whatif", export, "--mapping", mapping, *options, "--out", tmp_path / "out", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert_no_traceback(done)
    report = json.loads((tmp_path / "out" / "whatif.json").read_text(encoding="utf-8"))
    page = (tmp_path / "out" / "whatif.html").read_text(encoding="utf-8")
    return done.stdout.splitlines(), report, page


def test_a_san_jose_whatif_is_headed_with_san_jose(tmp_path: Path) -> None:
    lines, report, page = whatif_outputs(
        tmp_path, shared_file("sanjose-2024-calls-sample.csv"), "sanjose-2024"
    )
    demo = load_mapping(shipped_mapping("sanjose-2024")).load_policy().organisation
    assert demo is not None
    assert report["organisation"] == demo.model_dump()
    assert report["organisation"]["city"] == "San José, CA"
    assert report["city"] == "sanjose"
    assert report["export_title"] == "City of San José police calls for service, 2024 sample"
    assert report["heading"] == heading(Organisation(**demo.model_dump()))
    assert "San José, CA" in report["heading"]
    # The same heading on the terminal and the page; the export named under it.
    assert lines[:2] == [
        report["heading"],
        "export: City of San José police calls for service, 2024 sample (mapping sanjose-2024)",
    ]
    assert eyebrow_of(page) == report["heading"]
    assert "City of San José police calls for service, 2024 sample" in header_of(page)
    title = "<title>What-if: City of San José police calls for service, 2024 sample, 1 policy<"
    assert title in page
    for text in (page, json.dumps(report, ensure_ascii=False)):
        assert "Durham Community Safety Department" not in text and "Durham, NC" not in text


def test_policies_that_differ_keep_only_the_names_they_share(tmp_path: Path) -> None:
    lines, report, page = whatif_outputs(
        tmp_path,
        shared_file("milwaukee-2018-05-calls.csv"),
        "milwaukee-2018",
        "milwaukee-demo-policy",
        "milwaukee-demo-7x12",
    )
    # Two wordings of the department: neither is picked; the city and program are shared.
    assert report["organisation"] == {
        "department": None,
        "city": "Milwaukee, WI",
        "program": "HEART (demo)",
    }
    assert report["heading"] == "Milwaukee, WI · HEART (demo) crisis response pilots"
    assert report["export_title"] == "Milwaukee Police Department calls for service, May 2018"
    assert lines[0] == report["heading"] == eyebrow_of(page)
    assert "Durham" not in header_of(page) and "Durham" not in "\n".join(lines[:2])
    assert "<title>What-if: Milwaukee Police Department calls for service, May 2018, 2 " in page


def test_another_citys_policy_does_not_head_the_export(tmp_path: Path) -> None:
    lines, report, page = whatif_outputs(
        tmp_path, shared_file("sanjose-2024-calls-sample.csv"), "sanjose-2024", "durham"
    )
    assert report["organisation"] is None
    assert report["heading"] == "Crisis response pilots" == lines[0] == eyebrow_of(page)
    assert report["export_title"] == "City of San José police calls for service, 2024 sample"
    assert "Durham" not in header_of(page)
    assert "Durham" not in json.dumps({k: report[k] for k in ("heading", "export_title")})


def test_a_heading_is_neutral_when_nothing_is_named(tmp_path: Path) -> None:
    mapping = copy_mapping(tmp_path, "plain.toml")
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(re.sub(r"(?m)^title = .*\n", "", text), encoding="utf-8")
    policy = tmp_path / "milwaukee-demo-policy.toml"
    text = policy.read_text(encoding="utf-8")
    policy.write_text(
        text[: text.index("[organisation]")] + text[text.index("[dispatch]") :], encoding="utf-8"
    )
    rows = shared_file("milwaukee-2018-05-calls.csv").read_text(encoding="utf-8").splitlines()
    export = tmp_path / "calls.csv"
    export.write_text("\n".join(rows[:2_001]) + "\n", encoding="utf-8")

    lines, report, page = whatif_outputs(tmp_path, export, mapping)
    assert (report["organisation"], report["export_title"]) == (None, None)
    assert report["heading"] == "Crisis response pilots" == lines[0] == eyebrow_of(page)
    # Without a title the export is known by its mapping's name.
    assert lines[1] == "export: milwaukee-2018 (mapping milwaukee-2018)"
    assert "<title>What-if: milwaukee-2018, 1 policy</title>" in page
    assert "Milwaukee Police" not in page and "Durham" not in header_of(page)
