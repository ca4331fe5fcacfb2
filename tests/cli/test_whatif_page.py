"""The what-if page in a real browser (headless Chromium, Debian's ``chromium`` package,
driven by Playwright): what a reader sees, not the HTML source. The Milwaukee export with
two policies: the heading, the partial-month note, the glossary as defined in
``heart.schemas.glossary``, every panel's figures adding up as written and as drawn, and
labelled axes."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from heart.cli.whatif import run_whatif
from heart.schemas.glossary import GLOSSARY
from tests.cad import shared_file

POLICIES = ["milwaukee-demo-policy", "milwaukee-demo-7x12"]
WIDTH = 1280


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whatif")
    err = io.StringIO()
    status = run_whatif(
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
    data: dict[str, Any] = json.loads((report_dir / "whatif.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def page(browser: Browser, report_dir: Path) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": WIDTH, "height": 900})
    requests: list[str] = []
    opened.on("request", lambda request: requests.append(request.url))
    opened.goto((report_dir / "whatif.html").as_uri())
    # Self-contained: the page itself is the only thing loaded.
    assert requests == [(report_dir / "whatif.html").as_uri()]
    yield opened
    opened.close()


def numbers(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)]


def test_heading_and_period(page: Page) -> None:
    assert page.inner_text("h1") == "What-if: 2 policies on 33,968 real calls"
    meta = page.inner_text("header .meta")
    assert "2018-05-01 00:00 to 2018-05-21 14:14 (America/Chicago)" in meta
    assert "May 2018 (partial: 1\u201321 May, 21 of 31 days)" in meta


def test_the_page_names_the_export_and_who_runs_the_pilots(
    page: Page, report: dict[str, Any]
) -> None:
    # The demo policies word Milwaukee's department differently: the city and program
    # they share head the page, as in the monthly report, and the export names its city.
    heading = "Milwaukee, WI \u00b7 HEART (demo) crisis response pilots"
    assert page.text_content("header .eyebrow") == heading == report["heading"]
    export = "Milwaukee Police Department calls for service, May 2018"
    assert page.inner_text("header .export-title") == export == report["export_title"]
    assert page.title() == f"What-if: {export}, 2 policies"
    assert "Durham" not in page.inner_text("header")


def test_partial_month_is_noted(page: Page) -> None:
    note = page.locator("#partial-month")
    assert note.is_visible()
    assert note.locator("h2").inner_text() == "Partial month"
    assert note.locator("li.partial-month").all_inner_texts() == [
        "May 2018: the calls cover 1\u201321 May, 21 of 31 days only."
    ]
    assert GLOSSARY["partial month"] in note.inner_text()


def test_glossary_is_the_shared_one(page: Page) -> None:
    glossary = page.locator("#glossary")
    assert glossary.is_visible()
    terms = glossary.locator("dt").all_inner_texts()
    meanings = glossary.locator("dd").all_inner_texts()
    assert dict(zip(terms, meanings, strict=True)) == GLOSSARY
    assert terms == list(GLOSSARY)


def test_each_panel_adds_up_as_written_and_as_drawn(page: Page, report: dict[str, Any]) -> None:
    by_label = {p["label"]: p for p in report["whatif"]["policies"]}
    sums = page.locator("li.sum")
    # CCD and CRT have eligible calls under both policies; CoR has none in this export.
    assert sums.count() == 2 * len(POLICIES)
    for index in range(sums.count()):
        item = sums.nth(index)
        pilot, policy = item.get_attribute("data-pilot"), item.get_attribute("data-policy")
        assert pilot is not None and policy is not None
        text = item.inner_text()
        found = re.fullmatch(
            rf"{re.escape(policy)}: ([\d,]+) eligible = ([\d,]+) reached \+ ([\d,]+) missed"
            rf"(?: \(([^)]*)\))? \+ ([\d,]+) (needed someone in person|routed elsewhere)",
            text,
        )
        assert found, text
        eligible, reached, missed, other = (numbers(found.group(n))[0] for n in (1, 2, 3, 5))
        assert eligible == reached + missed + other, text
        assert sum(numbers(found.group(4) or "")) == missed, text
        figures = by_label[policy]["pilots"][pilot]
        assert (eligible, reached, missed, other) == (
            figures["eligible"],
            figures["reached"],
            figures["missed"],
            figures["other"],
        )

    # As drawn: each bar's parts are the eligible calls, on one axis per pilot panel.
    for pilot in ("ccd", "crt"):
        bars = page.locator(f"#pilot-{pilot} g.bar")
        assert bars.count() == len(POLICIES)
        per_call = set()
        for index in range(bars.count()):
            bar = bars.nth(index)
            eligible = int(bar.get_attribute("data-eligible") or "0")
            rects = bar.locator("rect")
            calls = [int(r.get_attribute("data-calls") or "0") for r in rects.all()]
            assert sum(calls) == eligible
            boxes = [r.bounding_box() for r in rects.all()]
            assert all(box is not None for box in boxes)
            width = sum(box["width"] for box in boxes if box is not None)
            per_call.add(round(width / eligible, 1))
        assert len(per_call) == 1, f"{pilot}: bars on different scales {per_call}"


def test_rates_match_the_counts(page: Page) -> None:
    crt = page.locator("#pilot-crt svg").text_content() or ""
    assert "326 of 3,609 reached \u00b7 9.0%" in crt
    assert "2,058 of 3,609 reached \u00b7 57.0%" in crt
    # CCD's reach is measured from the dispositions here: none of its eligible calls was
    # closed without dispatch.
    assert "0 of 5 reached \u00b7 0%" in (page.locator("#pilot-ccd svg").text_content() or "")
    assert page.locator("#ccd-not-measured").count() == 0


def test_axes_are_labelled(page: Page) -> None:
    for pilot in ("ccd", "crt"):
        chart = page.locator(f"#pilot-{pilot} svg")
        assert chart.get_attribute("aria-label") == f"{pilot.upper()} eligible calls per policy"
        # SVG text is not an HTML element: its text content is what is drawn.
        labels = chart.locator("text").all_text_contents()
        assert "eligible calls (same axis for every policy)" in labels
        assert "0" in labels and "policy" in labels
    routes = page.locator("#routes svg").locator("text").all_text_contents()
    assert "calls" in routes and "policy" in routes
    assert {"CCD", "CRT", "CoR"} <= set(routes)


def test_capacity_is_labelled_as_demand(page: Page) -> None:
    demand = page.locator("#demand")
    assert "Demand in team-equivalents" in demand.inner_text()
    rows = demand.locator("tbody th").all_inner_texts()
    assert "CRT demand in team-equivalents" in rows
    assert not any("busy" in row and "not" not in row for row in rows)
    assert "teams busy" not in page.locator("#figures").inner_text().replace("(not teams busy)", "")


def test_what_a_cad_export_can_tell_about_ccd(page: Page) -> None:
    notes = page.locator("#ccd-and-exports").inner_text()
    assert "cannot tell what a clinician on the line would have achieved" in notes
    assert "23 calls were closed without sending anyone" in notes
    assert "lower bound" in notes


def test_nothing_overflows_the_window(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    page.set_viewport_size({"width": 760, "height": 900})
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 760
    finally:
        page.set_viewport_size({"width": WIDTH, "height": 900})
