"""``heart whatif`` with capacity modelled, on the Milwaukee export: reached becomes the
calls a team took, the rest are missed with "no team free", the figures agree with
``heart staffing``'s curve at the same team count, two runs give the same files, and the
page shows each team pilot's utilisation by hour of the week, read in Chromium."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from heart.cli.staffing import run_staffing
from heart.cli.whatif import run_whatif
from tests.cad import shared_file
from tests.cli.test_whatif_page import WIDTH

REPO = Path(__file__).resolve().parents[2]
POLICIES = ["milwaukee-demo-policy", "milwaukee-demo-7x12"]


def whatif(out_dir: Path, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_whatif(
        shared_file("milwaukee-2018-05-calls.csv"),
        "milwaukee-2018",
        POLICIES,
        out_dir=out_dir,
        stdout=out,
        stderr=err,
        progress=False,
        **options,
    )
    assert "Traceback" not in err.getvalue()
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whatif-capacity")
    status, table, err = whatif(out, capacity=True, teams={"crt": 5})
    assert status == 0, err
    (out / "table.txt").write_text(table, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def report(report_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((report_dir / "whatif.json").read_text(encoding="utf-8"))
    return data


def test_reached_is_what_the_teams_took(report: dict[str, Any]) -> None:
    for policy in report["whatif"]["policies"]:
        crt = policy["pilots"]["crt"]
        capacity = policy["capacity"]["crt"]
        assert capacity["teams"] == 5
        assert crt["reached"] == capacity["reached"]
        assert crt["missed_by_reason"]["no_team_free"] == capacity["fallbacks"]
        assert capacity["reached"] + capacity["fallbacks"] == capacity["team_calls"]
        assert capacity["team_calls"] == policy["routes"]["crt"]
        assert crt["eligible"] == crt["reached"] + crt["missed"] + crt["other"]
        assert sum(capacity["fallbacks_by_reason"].values()) == capacity["fallbacks"]
        assert len(capacity["utilisation_by_hour_of_week"]) == 168
    assert "Capacity is modelled" in report["whatif"]["assumptions"]["note"]
    assert report["whatif"]["assumptions"]["capacity"]["seed"] == 2022


def test_the_table_shows_capacity(report_dir: Path, report: dict[str, Any]) -> None:
    table = (report_dir / "table.txt").read_text(encoding="utf-8")
    no_team = [p["capacity"]["crt"]["fallbacks"] for p in report["whatif"]["policies"]]
    line = next(row for row in table.splitlines() if row.strip().startswith("no team free"))
    assert [int(n.replace(",", "")) for n in line.split()[3:]] == no_team
    assert "crt teams (capacity modelled)" in table
    assert "wait for a team, p90 (min, reached calls)" in table
    assert "note: Capacity modelled with 5 CRT and 1 CoR teams" in table


def test_the_whatif_agrees_with_the_staffing_curve(report: dict[str, Any], tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    status = run_staffing(
        shared_file("milwaukee-2018-05-calls.csv"),
        "milwaukee-2018",
        POLICIES,
        teams_max=5,
        out_dir=tmp_path,
        stdout=out,
        stderr=err,
        progress=False,
    )
    assert status == 0, err.getvalue()
    curve = json.loads((tmp_path / "staffing.json").read_text(encoding="utf-8"))
    for whatif_policy, staffing_policy in zip(
        report["whatif"]["policies"], curve["staffing"]["policies"], strict=True
    ):
        at_five = staffing_policy["pilots"]["crt"]["curve"][4]
        capacity = whatif_policy["capacity"]["crt"]
        assert (at_five["reached"], at_five["fallbacks"]) == (
            capacity["reached"],
            capacity["fallbacks"],
        )
        assert at_five["wait_p90_min"] == capacity["wait_minutes"]["p90"]


def test_two_runs_give_the_same_files(report_dir: Path, tmp_path: Path) -> None:
    status, _, _ = whatif(tmp_path, capacity=True, teams={"crt": 5})
    assert status == 0
    for name in ("whatif.json", "whatif.html"):
        assert (tmp_path / name).read_bytes() == (report_dir / name).read_bytes()


def test_a_roster_gives_the_teams_and_their_shifts(tmp_path: Path) -> None:
    roster = REPO / "cad" / "mappings" / "milwaukee-demo-roster.toml"
    status, table, err = whatif(tmp_path, roster=roster)
    assert status == 0, err
    data = json.loads((tmp_path / "whatif.json").read_text(encoding="utf-8"))["whatif"]
    assert data["assumptions"]["capacity"]["teams_from"].startswith("milwaukee-demo@2018-05+")
    demo, wide = data["policies"]
    assert demo["capacity"]["crt"]["teams"] == 3
    # The roster's teams work Mon-Fri 08:30-16:30: the 7x12 policy's evening and weekend
    # team calls find no team on shift; under the demo policy, whose hours are the
    # shifts, only a call still waiting when the shift ends does.
    wide_off = wide["capacity"]["crt"]["fallbacks_by_reason"]["no_team_on_shift"]
    demo_off = demo["capacity"]["crt"]["fallbacks_by_reason"]["no_team_on_shift"]
    assert wide_off > 1_000 and demo_off <= 2
    assert "Capacity modelled with the teams and shifts of roster milwaukee-demo@" in table


def test_teams_and_a_roster_together_are_refused(tmp_path: Path) -> None:
    roster = REPO / "cad" / "mappings" / "milwaukee-demo-roster.toml"
    status, out, err = whatif(tmp_path, roster=roster, teams={"crt": 2})
    assert status == 2 and out == ""
    assert err == "heart whatif: --teams and --roster both give the teams: use one\n"
    status, _, err = whatif(tmp_path, roster=tmp_path / "missing.toml")
    assert status == 2 and err.startswith("heart whatif: ") and "missing.toml" in err


# --- the page ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(report_dir: Path, browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": WIDTH, "height": 900})
    opened.goto((report_dir / "whatif.html").as_uri())
    yield opened
    opened.close()


def test_the_page_shows_each_pools_calls_and_utilisation(
    page: Page, report: dict[str, Any]
) -> None:
    card = page.locator("#capacity")
    assert card.is_visible()
    assert "Capacity: teams on shift and their calls" in card.locator("h2").inner_text()
    panels = card.locator("div.capacity")
    assert panels.count() == len(POLICIES)  # CRT under each; no policy sends CoR
    by_label = {p["label"]: p for p in report["whatif"]["policies"]}
    for index in range(panels.count()):
        panel = panels.nth(index)
        capacity = by_label[panel.get_attribute("data-policy") or ""]["capacity"]["crt"]
        total = panel.locator("li.capacity-sum")
        assert int(total.get_attribute("data-team-calls") or "-1") == capacity["team_calls"]
        assert int(total.get_attribute("data-reached") or "-1") == capacity["reached"]
        assert int(total.get_attribute("data-fallbacks") or "-1") == capacity["fallbacks"]
        assert total.inner_text().startswith(
            f"{panel.get_attribute('data-policy')}: {capacity['team_calls']:,} team calls = "
            f"{capacity['reached']:,} reached + {capacity['fallbacks']:,} no team free"
        )
        cells = panel.locator("rect.cell")
        assert cells.count() == 168
        shown = {}
        for cell in cells.all():
            value = cell.get_attribute("data-value")
            if value:
                shown[int(cell.get_attribute("data-hour") or "-1")] = float(value)
        wanted = {
            hour: share
            for hour, share in enumerate(capacity["utilisation_by_hour_of_week"])
            if share is not None
        }
        assert shown.keys() == wanted.keys()
        assert all(abs(shown[h] - wanted[h]) < 1e-3 for h in wanted)
        labels = panel.locator("svg text").all_text_contents()
        assert "hour of the day (local time), a row per day of the week" in labels
        assert {"Mon", "Sun", "00", "23"} <= set(labels)
    assert "Team demand" in page.locator("#demand h2").inner_text()
    assert "capacity not modelled" not in page.locator("#demand h2").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
