"""The report page and its JSON: well-formed, self-contained, complete, and free of
personal data even when every input event carries some."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import orjson
import pytest

from heart.agents.reporting.aggregate import PILOT_NAMES, apply, new_state, report
from heart.agents.reporting.render import render_html, render_json
from heart.policy import load_policy
from heart.schemas.reports import MonthReport
from heart.streams.codec import encode
from tests.agents.reporting.synthetic import NOTES, PERSONAL, decision, july, local

VOID = {"meta", "link", "br", "hr", "img", "input", "rect", "line", "path", "circle"}


class Structure(HTMLParser):
    """Checks that every element closes in order, and collects what the tests look at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def july_report() -> MonthReport:
    state = new_state(load_policy())
    for event in july():
        apply(state, event)
    return report(state, "2024-07")


@pytest.fixture(scope="module")
def page(july_report: MonthReport) -> str:
    return render_html(july_report)


def parsed(page: str) -> Structure:
    structure = Structure()
    structure.feed(page)
    structure.close()
    return structure


def test_the_page_is_well_formed(page: str) -> None:
    assert page.startswith("<!doctype html>")
    s = parsed(page)
    assert s.errors == []
    assert s.stack == [], f"unclosed: {s.stack}"
    names = [t for t, _ in s.tags]
    for tag in ("html", "head", "title", "body", "header", "main", "footer", "h1", "table"):
        assert tag in names, tag
    assert names.count("h1") == 1
    assert dict(s.tags)["html"].get("lang") == "en"


def test_every_chart_is_labelled_for_screen_readers(page: str) -> None:
    s = parsed(page)
    svgs = [a for t, a in s.tags if t == "svg"]
    assert len(svgs) >= 7  # eligibility, response, follow-ups, one call-type panel per pilot
    for attrs in svgs:
        assert attrs.get("role") == "img"
        labelled = (attrs.get("aria-labelledby") or "").split()
        assert labelled and all(ident in s.ids for ident in labelled)
    assert page.count("<title id=") == len(svgs)  # one per chart (segments have tooltips)
    assert page.count("<desc") == len(svgs)
    assert all(a.get("scope") in ("col", "row") for t, a in s.tags if t == "th")


def test_the_page_is_self_contained(page: str) -> None:
    assert "<script" not in page
    assert "<link" not in page
    assert "<img" not in page
    assert "url(" not in page
    assert not re.search(r"\s(src|href)=", page)
    # The SVG namespace is the only URL, and it is a name, not a fetch.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}


def test_every_pilot_and_figure_is_on_the_page(page: str, july_report: MonthReport) -> None:
    text = " ".join(parsed(page).text)
    for name in PILOT_NAMES.values():
        assert name in text
    for snippet in (
        "Monthly pilot report: July 2024",
        "America/New_York",
        "31 Jul 2024, 23:55 EDT",
        "57%",  # resolved by phone, 4 of 7
        "4 of 7 HEART calls",
        "83% reached",
        "5 of 6 eligible",
        "43% reached",
        "3 of 7 eligible",
        "missed 4: outside hours 2, no team free 2",
        "1 of 1 eligible",
        "8 of 9 eligible",
        "median 7.5 min",
        "p90 10.0 min",
        "median 15.0 min",
        "33% of scheduled",
        "Outside hours",
        "No team free",
        "Pilot not running",
        "Mental Health Crisis",
        "Trespass",
        "Welfare Check",
        "Suicide Threat",
        "CCD 4, CRT 5, CoR 1, police 4",
    ):
        assert snippet in text, snippet
    # The table has every pilot's handled count, in pilot order.
    row = re.search(r"Calls handled</th>((?:<td[^>]*>[^<]*</td>){4})", page)
    assert row is not None
    assert re.findall(r">(\d+)<", row.group(1)) == ["4", "2", "1", "3"]


def test_no_personal_data_in_page_or_json(page: str, july_report: MonthReport) -> None:
    events = july()
    planted = b"".join(encode(e) for e in events)
    # The plant is real: the inputs carry every one of these...
    for secret in PERSONAL:
        assert secret.encode() in planted, secret
    # ...and neither output carries any.
    as_json = render_json(july_report).decode()
    for secret in (*PERSONAL, NOTES, "call_id", "case_id", "safety_notes"):
        assert secret not in page, secret
        assert secret not in as_json, secret
    for field in ("location", "address", "lat", "lon", "caller", "navigator_id", "care_kind"):
        assert f'"{field}"' not in as_json, field


def test_text_from_the_data_is_escaped() -> None:
    hostile = decision(
        "X1", "ccd", local(2024, 7, 9, 10), None, call_type="<b onmouseover=alert(1)>HI</b>",
        eligibility={"ccd": []}, pilots=["ccd"],
    )  # fmt: skip
    state = new_state(load_policy())
    apply(state, hostile)
    page = render_html(report(state, "2024-07"))
    assert "<b onmouseover" not in page
    assert "&lt;b onmouseover=alert(1)&gt;HI&lt;/b&gt;" in page
    assert parsed(page).errors == []


def test_an_empty_month_renders() -> None:
    page = render_html(report(new_state(load_policy()), "2023-02"))
    s = parsed(page)
    assert s.errors == [] and s.stack == []
    assert "February 2023" in page
    assert "No team reported on scene this month." in page
    assert "No follow-up was scheduled or closed this month." in page
    assert "n/a" in page


def test_json_is_the_same_figures(july_report: MonthReport) -> None:
    raw = render_json(july_report)
    assert MonthReport.model_validate_json(raw) == july_report
    data = orjson.loads(raw)
    assert list(data) == sorted(data), "keys sorted, for stable diffs"
    assert [p["pilot"] for p in data["pilots"]] == ["ccd", "crt", "cor", "cn"]
