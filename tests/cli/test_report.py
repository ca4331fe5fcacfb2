"""``heart report``'s terminal summary and files: the organisation the policy names, each
pilot's eligible calls as parts that add up, and a partial month said to be one."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from heart.cli.report import build_report_from_events, summary, write_report
from heart.policy import Policy, default_policy_path, load_policy
from heart.schemas import TriageDecision
from heart.schemas.reports import MonthReport
from tests.agents.reporting.synthetic import july, local

REPO = Path(__file__).resolve().parents[2]
PILOT_LINE = re.compile(r"^  (ccd|crt|cor|cn) +(\d+) eligible = (.+)$")


@pytest.fixture(scope="module")
def durham() -> Policy:
    return load_policy()


@pytest.fixture(scope="module")
def july_report(durham: Policy) -> MonthReport:
    return build_report_from_events(july(), "2024-07", durham)


def pilot_lines(text: str) -> dict[str, tuple[int, list[str]]]:
    found = {}
    for line in text.splitlines():
        match = PILOT_LINE.match(line)
        if match:
            found[match.group(1)] = (int(match.group(2)), match.group(3).split(" + "))
    return found


def test_the_summary_names_the_organisation_and_the_month(july_report: MonthReport) -> None:
    lines = summary(july_report).splitlines()
    assert lines[0] == (
        "Durham Community Safety Department · Durham, NC · HEART crisis response pilots"
    )
    assert lines[1].startswith("HEART monthly report 2024-07 (America/New_York), data from ")
    assert "partial month" not in summary(july_report).lower()


def test_every_pilots_eligible_calls_are_explained_part_by_part(
    july_report: MonthReport,
) -> None:
    text = summary(july_report)
    lines = pilot_lines(text)
    assert sorted(lines) == ["ccd", "cn", "cor", "crt"]
    for pilot, (eligible, terms) in lines.items():
        assert sum(int(term.split()[0]) for term in terms) == eligible, (pilot, terms)
    # CCD: every reached call is one resolved by phone; the rest are named.
    assert lines["ccd"] == (
        6,
        ["4 reached", "1 missed (outside hours 1)", "1 needed someone in person"],
    )
    assert "HEART handled 8 = 4 resolved by phone (50%) + 4 given a team" in text
    assert "calls decided 14 (ccd 4, crt 5, cor 1, police 4)" in text
    assert "follow-ups scheduled 3: completed 2, within 48 h 2, overdue 1, at risk 1" in text


def test_a_partial_month_says_so(durham: Policy) -> None:
    decisions = [
        e
        for e in july()
        if isinstance(e, TriageDecision) and e.call_received_at < local(2024, 7, 16)
    ]
    text = summary(build_report_from_events(decisions, "2024-07", durham))
    assert "  Partial month: 1\u201315 July: figures are for these days only" in text


def test_a_policy_naming_no_organisation_gets_a_neutral_heading(tmp_path: Path) -> None:
    text = default_policy_path().read_text(encoding="utf-8")
    path = tmp_path / "anon.toml"
    path.write_text(text[: text.index("[organisation]")] + text[text.index("[dispatch]") :])
    lines = summary(build_report_from_events(july(), "2024-07", load_policy(path))).splitlines()
    assert lines[0] == "Crisis response pilots"
    assert lines[1].startswith("Monthly pilot report 2024-07 ")


def test_a_demo_policys_files_and_summary_name_the_demo(tmp_path: Path) -> None:
    policy = load_policy(REPO / "cad/mappings/sanjose-demo-policy.toml")
    snapshot = build_report_from_events(july(), "2024-07", policy)
    html_path, json_path = write_report(snapshot, tmp_path)
    heading = "San José (what-if, Durham's HEART model) · San José, CA · HEART (demo)"
    assert summary(snapshot).startswith(heading)
    page = html_path.read_text(encoding="utf-8")
    assert heading.replace("'", "&#x27;") in page
    assert "Durham Community Safety Department" not in page
    data = orjson.loads(json_path.read_bytes())
    assert data["organisation"] == {
        "department": "San José (what-if, Durham's HEART model)",
        "city": "San José, CA",
        "program": "HEART (demo)",
    }
