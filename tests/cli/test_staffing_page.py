"""The staffing page in a real browser (headless Chromium, as the what-if page's test
drives it): what a planner sees. The Milwaukee export with the three demo policies: the
recommended counts beside their assumptions, the reach curves drawn where the figures
put them, the hour-of-week map of eligible calls against the hours each policy covers,
and nothing off the side of the window."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from heart.cli.staffing import run_staffing
from heart.schemas.glossary import GLOSSARY
from tests.cad import shared_file
from tests.cli.test_whatif_page import WIDTH

POLICIES = ["milwaukee-demo-policy", "milwaukee-demo-7x12", "milwaukee-demo-24x7"]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("staffing-page")
    err = io.StringIO()
    status = run_staffing(
        shared_file("milwaukee-2018-05-calls.csv"),
        "milwaukee-2018",
        POLICIES,
        out_dir=out,
        stdout=io.StringIO(),
        stderr=err,
        progress=False,
    )
    assert status == 0, err.getvalue()
    return out


@pytest.fixture(scope="module")
def report(report_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((report_dir / "staffing.json").read_text(encoding="utf-8"))
    return data["staffing"]


@pytest.fixture(scope="module")
def page(report_dir: Path, browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": WIDTH, "height": 900})
    requests: list[str] = []
    opened.on("request", lambda request: requests.append(request.url))
    opened.goto((report_dir / "staffing.html").as_uri())
    assert requests == [(report_dir / "staffing.html").as_uri()], "self-contained"
    opened.screenshot(path=str(report_dir / "staffing.png"), full_page=True)
    yield opened
    opened.close()


def test_heading_and_period(page: Page) -> None:
    assert page.inner_text("h1") == "Staffing: teams needed to reach 90% of team calls"
    meta = page.inner_text("header .meta")
    assert "33,968 calls from 2018-05-01 00:00 to 2018-05-21 14:14 (America/Chicago)" in meta
    assert "May 2018 (partial: 1\u201321 May, 21 of 31 days)" in meta
    assert page.locator("#partial-month").is_visible()


def test_the_page_names_the_export_and_who_runs_the_pilots(report_dir: Path, page: Page) -> None:
    data = json.loads((report_dir / "staffing.json").read_text(encoding="utf-8"))
    heading = "Milwaukee, WI \u00b7 HEART (demo) crisis response pilots"
    assert page.text_content("header .eyebrow") == heading == data["heading"]
    export = "Milwaukee Police Department calls for service, May 2018"
    assert page.inner_text("header .export-title") == export == data["export_title"]
    assert page.title() == f"Staffing: {export}, 3 policies"
    assert "Durham" not in page.inner_text("header")


def test_recommended_counts_with_their_assumptions_beside(
    page: Page, report: dict[str, Any]
) -> None:
    rows = page.locator("#recommended tbody tr")
    assert rows.count() == len(POLICIES)  # CRT under each; no policy sends CoR
    for index, policy in enumerate(report["policies"]):
        row = rows.nth(index)
        crt = policy["pilots"]["crt"]
        needed = crt["teams_needed"]
        assert row.get_attribute("data-policy") == policy["label"]
        cells = row.locator("td").all_inner_texts()
        assert cells[0] == "CRT"
        assert cells[2] == f"{crt['team_calls']:,}"
        assert cells[3] == str(needed)
        point = crt["curve"][needed - 1]
        assert cells[4] == f"{100 * point['reached_share']:.1f}%"
        assert cells[5] == f"{point['fallbacks']:,}"
    assert cells[1] == "Mon-Sun 00:00-24:00"
    aside = page.locator("#assumptions")
    text = aside.inner_text()
    for words in ("Time on call: 52.6 min", "waits up to 10 min", "seed 2022", "Target: 90%"):
        assert words in text
    table_box = page.locator("#recommended").bounding_box()
    aside_box = aside.bounding_box()
    assert table_box is not None and aside_box is not None
    assert aside_box["x"] >= table_box["x"] + table_box["width"], "beside, not below"
    # And the table is whole beside it: nothing hidden behind a scroll bar.
    assert page.locator("#recommendation .scroll").evaluate("e => e.scrollWidth <= e.clientWidth")
    assert "No team calls, so no team needed" in page.locator("#recommendation").inner_text()


def test_reach_curves_are_drawn_where_the_figures_put_them(
    page: Page, report: dict[str, Any]
) -> None:
    chart = page.locator("#curve-crt svg")
    labels = chart.locator("text").all_text_contents()
    assert {"teams on shift", "share of team calls reached", "target 90%", "0%", "100%"} <= set(
        labels
    )
    target = chart.locator("line.target")
    target_y = float(target.get_attribute("y1") or "0")
    zero_y = max(
        float(y)
        for y in chart.locator("line").evaluate_all("lines => lines.map(l => l.getAttribute('y1'))")
    )
    by_label = {p["label"]: p["pilots"]["crt"] for p in report["policies"]}
    curves = chart.locator("g.curve")
    assert curves.count() == len(POLICIES)
    for index in range(curves.count()):
        curve = curves.nth(index)
        crt = by_label[curve.get_attribute("data-policy") or ""]
        dots = curve.locator("circle")
        assert dots.count() == 12
        for n, point in enumerate(crt["curve"]):
            dot = dots.nth(n)
            assert int(dot.get_attribute("data-teams") or "0") == point["teams"]
            assert int(dot.get_attribute("data-reached") or "-1") == point["reached"]
            y = float(dot.get_attribute("cy") or "0")
            # Drawn at its share: the target line at 90%, the axis at 0%.
            share = (zero_y - y) / ((zero_y - target_y) / 0.9)
            assert share == pytest.approx(point["reached_share"], abs=0.005)
        needed = curve.locator("circle[data-needed]")
        assert needed.count() == 1
        assert int(needed.get_attribute("data-teams") or "0") == crt["teams_needed"]
    table = page.locator("table.curve-table[data-pilot=crt] tbody tr")
    assert table.count() == 12
    assert page.locator("#curves .curve-legend li").all_inner_texts() == POLICIES


def test_demand_map_shows_eligible_calls_and_covered_hours(
    page: Page, report: dict[str, Any]
) -> None:
    panels = page.locator("#demand-map div.demand")
    assert panels.count() == len(POLICIES)
    weeks = 21 / 7
    for index, policy in enumerate(report["policies"]):
        panel = panels.nth(index)
        crt = policy["pilots"]["crt"]
        assert int(panel.get_attribute("data-eligible") or "0") == crt["eligible"] == 3_609
        cells = panel.locator("rect.cell")
        assert cells.count() == 168
        values = [
            float(v or 0)
            for v in cells.evaluate_all("cells => cells.map(c => c.getAttribute('data-value'))")
        ]
        assert sum(values) * weeks == pytest.approx(crt["eligible"], abs=0.5)
        open_hours = sum(1 for m in crt["open_minutes_by_hour_of_week"] if m)
        assert panel.locator("rect.open").count() == open_hours
        assert panel.locator("li.coverage-sum").inner_text().startswith("3,609 eligible = ")
    # The demo policy covers 08:30-16:30 on weekdays: 9 hours touched a day, the first and
    # the last in part (dashed); 24x7 covers every hour.
    assert panels.nth(0).locator("rect.open").count() == 5 * 9
    assert panels.nth(0).locator("rect.open[stroke-dasharray]").count() == 5 * 2
    assert panels.nth(2).locator("rect.open").count() == 168


def test_glossary_is_the_shared_one(page: Page) -> None:
    terms = page.locator("#glossary dt").all_inner_texts()
    meanings = page.locator("#glossary dd").all_inner_texts()
    assert dict(zip(terms, meanings, strict=True)) == GLOSSARY


def test_nothing_overflows_the_window(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    page.set_viewport_size({"width": 760, "height": 900})
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 760
    finally:
        page.set_viewport_size({"width": WIDTH, "height": 900})
