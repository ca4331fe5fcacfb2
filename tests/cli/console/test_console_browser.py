"""The console in a real browser (Debian's chromium, driven by Playwright) against ``heart
console`` running as a real process on the embedded broker: a supervisor sees a decision
produced to ``triage.decisions`` appear live, and a team on a phone-sized screen presses
"En route", which lands on ``units.status``. Screenshots go to /tmp/console-shots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from playwright.sync_api import Browser, expect

from heart.schemas.calls import Location
from heart.schemas.dispatch import UnitStatusReport
from heart.schemas.followup import FollowupOutcome
from heart.streams.admin import create_topics
from heart.streams.codec import decode
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CCD_ASSESSMENTS,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TIMERS,
    TRIAGE_DECISIONS,
    UNITS_STATUS,
)
from tests.cli.console.events import T0, decision, dispatch, engaged, scheduled, start_at
from tests.cli.console.stack import ConsoleProcess, in_thread, sign_in
from tests.kafka import produce, read_topic

pytestmark = pytest.mark.broker

SHOTS = Path("/tmp/console-shots")
T = TypeVar("T")
ADDRESS = "100 Example St"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def prefixed(settings: HeartSettings, unique: str) -> HeartSettings:
    prefixed = settings.model_copy(update={"topic_prefix": f"console{unique}."})
    in_thread(create_topics(prefixed))
    return prefixed


@pytest.fixture
def console_url(prefixed: HeartSettings, tmp_path: Path) -> Iterator[str]:
    console = ConsoleProcess(prefixed, tmp_path, find_free_port()).start()
    try:
        yield console.url
    finally:
        assert console.stop() == 0, console.log()[-3000:]
        text = console.log()
        # No call details in the console's log, only opaque ids.
        for private in (ADDRESS, "WELFARE", "dog on premises", "Traceback"):
            assert private not in text, text[-3000:]


def test_board_updates_live_and_a_team_reports_en_route(
    browser: Browser, console_url: str, prefixed: HeartSettings, request: pytest.FixtureRequest
) -> None:
    SHOTS.mkdir(exist_ok=True)
    # The console reads the wall clock: the call came in 12 minutes ago.
    start_at(datetime.now(UTC) - timedelta(minutes=12))
    request.addfinalizer(lambda: start_at(T0))
    board = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(board, console_url, "sup-0001", "demo-supervisor")
    expect(board).to_have_url(re.compile(r"/board$"))
    expect(board.locator("#feed")).to_have_text("live", timeout=30_000)
    expect(board.locator("[data-call='live-1']")).to_have_count(0)

    in_thread(
        produce(
            prefixed,
            TRIAGE_DECISIONS,
            [
                ("live-1", decision("live-1", "crt", reasons=["category:welfare_check"])),
                (
                    "live-2",
                    decision(
                        "live-2",
                        "ccd",
                        revision=2,
                        rules_route="crt",
                        reasons=["clinician_disposition"],
                    ),
                ),
                ("live-3", decision("live-3", "crt", priority=2)),
            ],
        )
    )
    in_thread(
        produce(
            prefixed,
            DISPATCH_EVENTS,
            [
                (
                    "CRT-1",
                    dispatch(
                        "assigned",
                        "live-1",
                        1,
                        "CRT-1",
                        call_type="WELFARE CHECK",
                        location=Location(address=ADDRESS),
                        safety_notes="dog on premises",
                    ),
                ),
                ("live-3", dispatch("queued", "live-3", 3.5)),
            ],
        )
    )
    in_thread(produce(prefixed, CCD_ASSESSMENTS, [("live-2", engaged("live-2", 1))]))
    in_thread(produce(prefixed, FOLLOWUP_TIMERS, [("k-1", scheduled("k-1", at_risk=True))]))

    row = board.locator("[data-call='live-1']")
    expect(row).to_contain_text("CRT-1", timeout=5_000)
    expect(row).to_contain_text("category:welfare check")
    overruled = board.locator("[data-call='live-2']")
    expect(overruled).to_contain_text("clinician; rules chose CRT")
    expect(board.locator("[data-panel='Queue']")).to_contain_text("live-3")
    expect(board.locator("[data-panel='Clinicians on the line']")).to_contain_text("clin-0001")
    # CRT-1 dispatched 11 minutes ago (alert at 10); live-3 queued 8.5 minutes (alert at 8).
    alerts = board.locator("[data-panel='Alerts']")
    expect(alerts.locator("[data-kind='team_status']")).to_contain_text("CRT-1 dispatched for 11")
    expect(alerts.locator("[data-kind='queue_wait']")).to_contain_text("live-3 waiting 8 min")
    board.screenshot(path=str(SHOTS / "supervisor-board.png"), full_page=True)

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    sign_in(phone, console_url, "team-crt-1", "demo-crt-1")
    expect(phone).to_have_url(re.compile(r"/team$"))
    expect(phone.locator(".assignment")).to_contain_text("live-1", timeout=5_000)
    expect(phone.locator(".assignment")).to_contain_text(ADDRESS)
    expect(phone.locator("#team-status")).to_have_text("dispatched")
    expect(phone.locator("[data-action='out_of_service']")).to_be_disabled()
    phone.screenshot(path=str(SHOTS / "team-phone.png"), full_page=True)
    phone.get_by_role("button", name="En route").click()
    expect(phone.locator("#message")).to_contain_text("Sent.")

    records = in_thread(
        read_topic(prefixed, UNITS_STATUS, until=lambda records: len(records) >= 1, timeout=10)
    )
    (record,) = records
    report = decode(UnitStatusReport, record.value)
    assert (record.key, report.team_id, report.status, report.call_id) == (
        b"CRT-1",
        "CRT-1",
        "en_route",
        "live-1",
    )
    assert ("heart.actor", b"team-crt-1") in list(record.headers)
    phone.screenshot(path=str(SHOTS / "team-phone-sent.png"), full_page=True)

    # Another team's assignment stays out of reach, whatever the page asks for.
    refused = phone.request.get(f"{console_url}/api/team/CRT-2")
    assert refused.status == 403

    navigator = browser.new_page(viewport={"width": 1100, "height": 700})
    sign_in(navigator, console_url, "nav-0001", "demo-navigator")
    expect(navigator.locator("[data-case='k-1']")).to_contain_text("at risk", timeout=5_000)
    navigator.screenshot(path=str(SHOTS / "navigator.png"), full_page=True)
    navigator.locator("[data-record='k-1']").click()
    navigator.get_by_role("button", name="Record outcome", exact=True).last.click()
    expect(navigator.locator("#outcome-error")).to_have_text("Choose an outcome.")
    navigator.get_by_label("Outcome").select_option("connected_to_care")
    navigator.get_by_label("Care connected to (optional)").fill("outpatient")
    navigator.screenshot(path=str(SHOTS / "navigator-outcome.png"), full_page=True)
    navigator.locator("#outcome-form button[type='submit']").click()
    expect(navigator.locator("#message")).to_contain_text("Sent.")
    (sent,) = in_thread(
        read_topic(prefixed, FOLLOWUP_OUTCOMES, until=lambda records: len(records) >= 1)
    )
    outcome = decode(FollowupOutcome, sent.value)
    assert (sent.key, outcome.outcome, outcome.care_kind, outcome.navigator_id) == (
        b"k-1",
        "connected_to_care",
        "outpatient",
        "nav-0001",
    )
