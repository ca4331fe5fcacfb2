"""The Crisis Call Diversion section on the page, in the JSON and in the terminal summary:
the same figures in the same words, parts written as sums, no id of a call, clinician or
consult, and a plain "no clinician events" where a month has none."""

from __future__ import annotations

import html
import re

import orjson
import pytest

from heart.agents.reporting.render import render_html, render_json
from heart.cli.report import build_report_from_events, summary
from heart.policy import load_policy
from heart.schemas.reports import NO_CLINICIAN_EVENTS, MonthReport
from heart.streams.codec import encode
from tests.agents.reporting.clinicians import CLINICIAN, CONSULT_PREFIX, busy_month
from tests.agents.reporting.synthetic import ID_PREFIX, PERSONAL, july
from tests.agents.reporting.test_render import parsed

POLICY = load_policy()
SECRETS = (*PERSONAL, CLINICIAN, CONSULT_PREFIX, ID_PREFIX, "EHR:42")


@pytest.fixture(scope="module")
def busy() -> MonthReport:
    return build_report_from_events(busy_month(), "2024-07", POLICY)


@pytest.fixture(scope="module")
def quiet() -> MonthReport:
    return build_report_from_events(july(), "2024-07", POLICY)


def section(page: str) -> str:
    found = re.search(r'<section class="card" aria-labelledby="h-ccd-work">(.*?)</section>', page)
    assert found is not None
    return " ".join(" ".join(parsed(found.group(1)).text).split())


EXPECTED_LINES = [
    ("Calls engaged", "3 calls"),
    ("Screenings by risk level", "2 screenings = high 1 + low 1"),
    ("Safety plans", "2 plans = 1 with all six steps + 1 with fewer steps"),
    (
        "Referrals by resource",
        "2 referrals = 988 Suicide & Crisis Lifeline 1 (1 warm handoff) + "
        "Outpatient mental health care 1; 1 warm handoff in all",
    ),
    ("Dispositions", "3 calls with a disposition = resolved_by_phone 2 + dispatch_crt 1"),
    ("Overrides of the rules", "2 calls = ccd\u2192crt 1 + crt\u2192ccd 1"),
    (
        "Consults by requester",
        "2 consults requested = dispatcher 1 + crt 1; 1 answered, 1 within target "
        "(50%: dispatcher 1 of 1, crt 0 of 1)",
    ),
    ("Time on the line", "median 12.0 min, p90 12.0 min (1 call)"),
]


def test_the_page_shows_every_figure_with_its_parts(busy: MonthReport) -> None:
    page = render_html(busy)
    s = parsed(page)
    assert s.errors == [] and s.stack == []
    text = section(page)
    assert text.startswith("Crisis Call Diversion: the clinicians' work")
    for label, sentence in EXPECTED_LINES:
        assert f"{label} {sentence}" in text, label
    assert all(a.get("scope") in ("col", "row") for t, a in s.tags if t == "th")
    # The terms it counts in are in the page's glossary.
    for term in ("Engaged", "Override", "On the line", "Answered within target"):
        assert f'id="term-{term.lower().replace(" ", "-")}">{term}</dt>' in page


def test_the_terminal_summary_says_the_same(busy: MonthReport) -> None:
    lines = summary(busy).splitlines()
    start = lines.index("  Crisis Call Diversion, the clinicians' work:")
    assert lines[start + 1 :] == [
        f"    {label.lower()}: {sentence}" for label, sentence in EXPECTED_LINES
    ]


def test_the_json_names_each_figure(busy: MonthReport) -> None:
    data = orjson.loads(render_json(busy))["ccd_work"]
    assert data["clinician_events"] is True and data["note"] is None
    assert data["calls_engaged"] == 3
    assert data["screenings"] == {
        "total": 2,
        "by_risk_level": {"high": 1, "low": 1, "moderate": 0, "none": 0},
    }
    assert data["safety_plans"] == {"plans": 2, "all_six_steps": 1, "fewer_steps": 1}
    assert data["referrals"]["by_resource"][0] == {
        "resource": "988",
        "name": "988 Suicide & Crisis Lifeline",
        "referrals": 1,
        "warm_handoffs": 1,
    }
    assert data["dispositions"]["calls"] == 3
    assert data["overrides"]["by_direction"] == [
        {"calls": 1, "route": "crt", "rules_route": "ccd"},
        {"calls": 1, "route": "ccd", "rules_route": "crt"},
    ]
    assert data["consults"]["share_within_target"] == 0.5
    assert data["time_on_line"] == {"calls": 1, "median_s": 720.0, "p90_s": 720.0}
    assert MonthReport.model_validate_json(render_json(busy)) == busy


def test_no_call_clinician_or_consult_id_reaches_any_output(busy: MonthReport) -> None:
    planted = b"".join(encode(e) for e in busy_month())  # type: ignore[arg-type]
    for secret in (CLINICIAN, CONSULT_PREFIX, ID_PREFIX, "EHR:42"):
        assert secret.encode() in planted, secret
    outputs = (render_html(busy), render_json(busy).decode(), summary(busy))
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output, secret
        for field in ("call_id", "clinician_id", "consult_id", "record_ref"):
            assert field not in output, field


def test_a_month_without_clinician_events_says_so_everywhere(quiet: MonthReport) -> None:
    page = render_html(quiet)
    assert parsed(page).errors == []
    assert section(page).endswith(NO_CLINICIAN_EVENTS)
    assert f'<p class="empty" role="note">{html.escape(NO_CLINICIAN_EVENTS)}</p>' in page
    assert 'class="ccd"' not in page
    data = orjson.loads(render_json(quiet))["ccd_work"]
    assert data["clinician_events"] is False
    assert data["note"] == NO_CLINICIAN_EVENTS
    assert {k for k, v in data.items() if v is not None} == {"clinician_events", "note"}
    text = summary(quiet)
    assert text.endswith(
        "  Crisis Call Diversion, the clinicians' work:\n    " + NO_CLINICIAN_EVENTS
    )
    assert "calls engaged" not in text
