"""The report page and its JSON: well-formed, self-contained, complete, and free of
personal data even when every input event carries some."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest

from heart.agents.reporting.aggregate import PILOT_NAMES, apply, new_state, report
from heart.agents.reporting.render import render_html, render_json
from heart.policy import Policy, default_policy_path, load_policy
from heart.schemas import TriageDecision
from heart.schemas.glossary import GLOSSARY
from heart.schemas.reports import MonthReport
from heart.streams.codec import encode
from tests.agents.reporting.example import HTML, example_page
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
        "50%",  # resolved by phone, 4 of 8
        "4 of 8 HEART handled",
        "4 resolved by phone + 4 given a team",
        "67% reached",
        "4 of 6 eligible",
        "6 eligible = 4 reached + 1 missed (outside hours 1) + 1 needed someone in person",
        "43% reached",
        "3 of 7 eligible",
        "7 eligible = 3 reached + 4 missed (outside hours 2, no team free 2)",
        "1 of 1 eligible",
        "3 of 9 eligible",
        "9 eligible = 3 reached + 1 missed (pilot not running 1) + 5 no follow-up scheduled",
        "median 7.5 min",
        "p90 10.0 min",
        "median 15.0 min",
        "67% of scheduled",  # completed and within 48 h: 2 of 3
        "33% of scheduled",  # connected to care
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

    # The table has every pilot's parts, in pilot order, and they add up to eligible.
    def row(label: str) -> list[int]:
        found = re.search(rf">{re.escape(label)}</th>((?:<td[^>]*>[^<]*</td>){{4}})", page)
        assert found is not None, label
        return [int(n) for n in re.findall(r">(\d+)<", found.group(1))]

    eligible, reached, missed = row("Eligible calls"), row("= Reached"), row("+ Missed")
    in_person, no_followup = row("+ Needed someone in person"), row("+ No follow-up scheduled")
    assert eligible == [6, 7, 1, 9]
    assert reached == [4, 3, 1, 3]
    assert [sum(parts) for parts in zip(reached, missed, in_person, no_followup, strict=True)] == (
        eligible
    )


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
    assert "No follow-up was scheduled this month." in page
    assert "n/a" in page


def test_json_is_the_same_figures(july_report: MonthReport) -> None:
    raw = render_json(july_report)
    assert MonthReport.model_validate_json(raw) == july_report
    data = orjson.loads(raw)
    assert list(data) == sorted(data), "keys sorted, for stable diffs"
    assert [p["pilot"] for p in data["pilots"]] == ["ccd", "crt", "cor", "cn"]


# --- who the report names, and the terms it uses -----------------------------------------

REPO = Path(__file__).resolve().parents[3]


def heading_of(page: str) -> str:
    found = re.search(r'<p class="eyebrow">([^<]*)</p>', page)
    assert found is not None
    return html.unescape(found.group(1))


def month_under(policy: Policy) -> MonthReport:
    state = new_state(policy)
    for event in july():
        apply(state, event)
    return report(state, "2024-07")


@pytest.mark.parametrize(
    ("policy_file", "heading", "title"),
    [
        (
            "policy/durham.toml",
            "Durham Community Safety Department · Durham, NC · HEART crisis response pilots",
            "HEART monthly report: July 2024",
        ),
        (
            "cad/mappings/sanjose-demo-policy.toml",
            "San José (what-if, Durham's HEART model) · San José, CA · "
            "HEART (demo) crisis response pilots",
            "HEART (demo) monthly report: July 2024",
        ),
        (
            "cad/mappings/milwaukee-demo-policy.toml",
            "Milwaukee (what-if, Durham's HEART model) · Milwaukee, WI · "
            "HEART (demo) crisis response pilots",
            "HEART (demo) monthly report: July 2024",
        ),
    ],
)
def test_the_heading_names_the_policys_organisation(
    policy_file: str, heading: str, title: str
) -> None:
    snapshot = month_under(load_policy(REPO / policy_file))
    page = render_html(snapshot)
    assert heading_of(page) == heading
    assert f"<title>{html.escape(title)}</title>" in page
    if "durham" not in policy_file:
        assert "Durham Community Safety Department" not in page
    data = orjson.loads(render_json(snapshot))
    assert data["organisation"]["city"] == heading.split(" · ")[1]


def test_a_policy_naming_no_organisation_gets_a_neutral_heading(tmp_path: Path) -> None:
    text = default_policy_path().read_text(encoding="utf-8")
    start = text.index("[organisation]")
    without = text[:start] + text[text.index("[dispatch]") :]
    path = tmp_path / "anon.toml"
    path.write_text(without, encoding="utf-8")
    snapshot = month_under(load_policy(path))
    assert snapshot.organisation is None
    page = render_html(snapshot)
    assert heading_of(page) == "Crisis response pilots"
    assert "<title>Monthly pilot report: July 2024</title>" in page
    assert "Durham" not in page
    assert orjson.loads(render_json(snapshot))["organisation"] is None


def test_the_terms_section_is_the_glossary(page: str) -> None:
    text = " ".join(parsed(page).text)
    section = text[text.index("Terms") :]
    for term, meaning in GLOSSARY.items():
        assert term[0].upper() + term[1:] in section, term
        assert meaning in section, term


def test_a_partial_month_is_labelled_in_the_heading_and_the_table() -> None:
    # Only the decisions of calls received by 15 July: the data covers 1-15 July.
    state = new_state(load_policy())
    for event in july():
        if isinstance(event, TriageDecision) and event.call_received_at < local(2024, 7, 16, 0):
            apply(state, event)
    snapshot = report(state, "2024-07")
    assert snapshot.partial
    page = render_html(snapshot)
    text = " ".join(" ".join(parsed(page).text).split())
    assert "Monthly pilot report: July 2024 partial month: 1\u201315 July" in text
    assert "Partial month: 1\u201315 July. " + GLOSSARY["partial month"] in text
    assert "July 2024 (partial month: 1\u201315 July). Calls decided" in text
    assert "(partial month: 1\u201315 July)</title>" in page
    # A whole month says nothing of the kind.
    assert "partial month:" not in render_html(month_under(load_policy()))


def test_the_docs_example_is_what_the_renderer_makes_now() -> None:
    assert HTML.read_text(encoding="utf-8") == example_page(), (
        "re-run python -m tests.agents.reporting.example"
    )
