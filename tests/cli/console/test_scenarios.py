"""The console's browser scenarios (issue 27, "Tested in a real browser"): Debian's chromium
driven by Playwright, against a real ``heart console`` process and real triage, dispatch
and navigation workers on the embedded broker, all on the event clock.

One stack serves the module. Each scenario brings its own calls and dates them later than
the scenario before it, so the scenarios pass in any subset run in order (pytest-xdist may
share the module between workers, each with its own stack). Screenshots of each role's page
go to docs/.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from heart.policy.model import default_policy_path
from heart.schemas.ccd import CcdDisposition
from heart.schemas.dispatch import DispatchEvent, UnitStatusReport
from heart.schemas.followup import FollowupDue, FollowupOutcome, FollowupScheduled
from heart.schemas.triage import TriageClosure, TriageDecision
from heart.streams.admin import create_topics
from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CAD_CALLS,
    CCD_ASSESSMENTS,
    DEADLETTER,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    TRIAGE_CLOSURES,
    TRIAGE_DECISIONS,
    UNITS_STATUS,
)
from tests.cli.console.stack import (
    FRIDAY,
    PHONE,
    THURSDAY,
    ConsoleProcess,
    in_thread,
    local,
    page_for,
    pulse_until,
    read_until,
    send,
    sign_in,
    team_user,
)
from tests.factories import call_received
from tests.kafka import ROOT, Worker, read_topic
from tests.streams.test_metrics_values import scrape, until_value, value

pytestmark = pytest.mark.broker

DOCS = ROOT / "docs"
EVENT_CLOCK = {"HEART_CLOCK": "event"}
STAGES = ("triage", "dispatch", "navigation")
#: Records when each call's row first appears on the page, by the browser's clock.
SEEN_SCRIPT = """
window.__seen = {};
new MutationObserver(() => {
  for (const row of document.querySelectorAll("[data-call]")) {
    if (!(row.dataset.call in window.__seen)) window.__seen[row.dataset.call] = Date.now();
  }
}).observe(document, { childList: true, subtree: true });
"""


@dataclass
class Stack:
    settings: HeartSettings
    workers: dict[str, Worker]
    console: ConsoleProcess

    @property
    def url(self) -> str:
        return self.console.url


@pytest.fixture(scope="module")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"scn{uuid.uuid4().hex[:8]}."
    settings = HeartSettings(kafka_bootstrap=broker.bootstrap, topic_prefix=prefix)
    in_thread(create_topics(settings))
    logs = tmp_path_factory.mktemp("scenarios")
    workers = {name: Worker(name, settings, logs, **EVENT_CLOCK).start() for name in STAGES}
    console = ConsoleProcess(settings, logs, find_free_port(), **EVENT_CLOCK)
    try:
        for worker in workers.values():
            in_thread(worker.wait_ready())
        console.start()
        yield Stack(settings, workers, console)
    finally:
        status = console.stop() if console.proc is not None else 0
        for worker in workers.values():
            worker.kill(15)
        assert status == 0, console.log()[-3000:]
        console.assert_clean_log()


def phone_call(call_id: str, at: str, day=THURSDAY, **kw):
    """A mental-health call the caller can be helped with by phone: triage routes it to
    the clinicians (CCD) during their hours."""
    return call_received(
        call_id=call_id,
        call_type="Mental Health Crisis",
        needs_in_person=False,
        occurred_at=local(day, at),
        **kw,
    )


def decided(stack: Stack, call_id: str, revision: int = 1) -> tuple[object, TriageDecision]:
    ((record, decision),) = [
        (r, d)
        for r, d in read_until(
            stack.settings,
            TRIAGE_DECISIONS,
            lambda ds: any(d.call_id == call_id and d.revision == revision for d in ds),
        )
        if d.call_id == call_id and d.revision == revision
    ]
    return record, decision


def open_calls(page: Page) -> str:
    return page.locator("[data-panel='Open calls']").inner_text()


def board_text(page: Page) -> str:
    """What the board shows of calls and teams (ages included: on the event clock they
    are read at the newest event's time, the same after a restart)."""
    return "\n".join(
        page.locator(f"[data-panel='{name}']").inner_text()
        for name in ("Open calls", "Queue", "Teams", "Alerts")
    )


# --- 1. A CAD call reaches the supervisor board ---------------------------------------------


def test_a_cad_call_appears_on_the_board_within_2s_of_triage_deciding(
    stack: Stack, browser: Browser
) -> None:
    board = page_for(browser)
    board.context.add_init_script(SEEN_SCRIPT)
    sign_in(board, stack.url, "sup-0001", "demo-supervisor")
    expect(board).to_have_url(re.compile(r"/board$"))
    assert "B-1" not in open_calls(board)

    send(stack.settings, CAD_CALLS, ("B-1", phone_call("B-1", "14:00")))
    record, decision = decided(stack, "B-1")
    read_at = time.time()
    # From when the decision is on the topic: the row is there within 2 s...
    board.wait_for_function("() => 'B-1' in window.__seen", timeout=2_000)
    waited = time.time() - read_at
    # ...and, by the browser's own clock, it appeared within 2 s of the record's timestamp.
    seen_ms = board.evaluate("() => window.__seen['B-1']")
    latency_s = (seen_ms - record.timestamp) / 1000  # type: ignore[attr-defined]
    print(f"decision read -> row: {waited:.3f} s; record timestamp -> row: {latency_s:.3f} s")
    assert latency_s < 2.0
    row = board.locator("[data-call='B-1']")
    expect(row).to_contain_text(decision.route.upper())
    assert decision.route == "ccd"
    board.context.close()


# --- 2. A clinician sends a team; the team works the call ------------------------------------


def test_a_clinician_sends_a_team_which_goes_on_scene_then_clears(
    stack: Stack, browser: Browser
) -> None:
    board = page_for(browser)
    sign_in(board, stack.url, "sup-0001", "demo-supervisor")
    send(stack.settings, CAD_CALLS, ("CL-1", phone_call("CL-1", "14:10")))
    decided(stack, "CL-1")
    expect(board.locator("[data-call='CL-1']")).to_contain_text("CCD")

    # A clinician signs in, takes the call, screens the caller, makes a safety plan with
    # them, and asks for a team: four events on ccd.assessments, from the page's forms.
    clinician = page_for(browser)
    sign_in(clinician, stack.url, "clin-0001", "demo-clinician")
    expect(clinician).to_have_url(re.compile(r"/clinician$"))
    clinician.locator("[data-engage='CL-1']").click()
    expect(clinician.locator("#message")).to_contain_text("Sent.")
    clinician.locator("[data-assess='CL-1']").click(timeout=10_000)
    expect(clinician.locator("#assessed-call")).to_have_text("CL-1")
    for answer in ("q1-yes", "q2-no", "q6-no"):
        clinician.locator(f"#{answer}").check()
    clinician.get_by_role("button", name="Record screening").click()
    expect(clinician.locator("#message")).to_contain_text("Sent.")
    for step in ("warning_signs", "internal_coping", "people_for_help", "professionals"):
        clinician.locator(f"#step-{step}").check()
    clinician.get_by_role("button", name="Record safety plan").click()
    expect(clinician.locator("#message")).to_contain_text("Sent.")
    clinician.locator("#disposition").select_option("dispatch_crt")
    clinician.get_by_role("button", name="Record disposition").click()
    expect(clinician.locator("#message")).to_contain_text("Sent.")
    work = [
        e
        for r, e in read_until(
            stack.settings,
            CCD_ASSESSMENTS,
            lambda es: any(
                getattr(e, "call_id", None) == "CL-1" and e.event_type == "ccd.disposition"
                for e in es
            ),
        )
        if r.key == b"CL-1"
    ]
    assert [e.event_type for e in work] == [
        "ccd.engaged",
        "ccd.screened",
        "ccd.safety_plan",
        "ccd.disposition",
    ]
    assert {e.clinician_id for e in work} == {"clin-0001"}
    assert (work[1].answers.q1, work[1].answers.q2, work[1].answers.q3) == (True, False, None)
    assert work[3].disposition == "dispatch_crt"
    _, redecided = decided(stack, "CL-1", revision=2)
    assert (redecided.route, redecided.rules_route) == ("crt", "ccd")
    assigned = [
        e
        for _, e in read_until(
            stack.settings,
            DISPATCH_EVENTS,
            lambda es: any(e.call_id == "CL-1" and e.event_type == "dispatch.assigned" for e in es),
        )
        if e.call_id == "CL-1" and e.event_type == "dispatch.assigned"
    ]
    team_id = assigned[0].team_id
    assert team_id is not None
    row = board.locator("[data-call='CL-1']")
    expect(row).to_contain_text("clinician; rules chose CCD")
    expect(row).to_contain_text(team_id)

    # The team's phone shows the assignment, as dispatch sent it.
    phone = page_for(browser, PHONE, is_mobile=True, has_touch=True)
    user, password = team_user(team_id)
    sign_in(phone, stack.url, user, password)
    expect(phone).to_have_url(re.compile(r"/team$"))
    card = phone.locator(".assignment")
    expect(card).to_contain_text("CL-1")
    expect(card).to_contain_text("CRT")
    expect(phone.locator("#team-status")).to_have_text("dispatched")
    phone.screenshot(path=str(DOCS / "console-team.png"), full_page=True)

    phone.get_by_role("button", name="On scene").click()
    expect(phone.locator("#message")).to_contain_text("Sent.")
    # The page changes when dispatch has taken the report and its event comes back.
    expect(phone.locator("#team-status")).to_have_text("on scene", timeout=10_000)
    expect(row).to_contain_text("on scene")
    expect(board.locator(f"[data-team='{team_id}']")).to_contain_text("on scene")
    board.screenshot(path=str(DOCS / "console-board.png"), full_page=True)

    phone.get_by_role("button", name="Cleared", exact=True).click()
    expect(phone.locator("#message")).to_contain_text("Sent.")
    expect(phone.locator("#team-status")).to_have_text("available", timeout=10_000)
    expect(phone.locator(".assignment")).to_contain_text("No call assigned.")
    expect(board.locator("[data-call='CL-1']")).to_have_count(0)
    expect(board.locator(f"[data-team='{team_id}']")).to_contain_text("available")

    # Both presses are on units.status, from the team's user, and dispatch accepted them.
    reports = read_until(stack.settings, UNITS_STATUS, lambda rs: len(rs) >= 2, settle=1.0)
    assert [(r.key, e.status, e.call_id) for r, e in reports] == [
        (team_id.encode(), "on_scene", "CL-1"),
        (team_id.encode(), "cleared", "CL-1"),
    ]
    assert all(("heart.actor", user.encode()) in list(r.headers) for r, _ in reports)
    # Dated on the console's clock, the event clock here, as the stages read time: a
    # wall-clock date would move every stage's clock to today.
    asked = local(THURSDAY, "14:10")
    assert all(asked <= e.occurred_at < asked + timedelta(minutes=1) for _, e in reports), [
        e.occurred_at for _, e in reports
    ]
    steps = [
        e.event_type
        for _, e in read_until(
            stack.settings,
            DISPATCH_EVENTS,
            lambda es: any(e.call_id == "CL-1" and e.event_type == "dispatch.cleared" for e in es),
        )
        if e.call_id == "CL-1"
    ]
    assert steps == ["dispatch.assigned", "dispatch.on_scene", "dispatch.cleared"]

    # A stale press (a page still showing the cleared call, say): the console says so and
    # sends it all the same, and the dispatch stage's dead letter keeps what was pressed.
    status, answer = phone.evaluate(STALE_PRESS, {"action": "on_scene", "call_id": "CL-1"})
    assert status == 202 and "dead letter keeps" in answer["warning"], answer
    (kept,) = [
        r
        for r in in_thread(
            read_topic(
                stack.settings,
                DEADLETTER,
                until=lambda rs: any(_event_id(r) == answer["event_id"] for r in rs),
            )
        )
        if _event_id(r) == answer["event_id"]
    ]
    headers = dict(kept.headers)
    assert headers["heart.dlq.stage"] == b"dispatch", headers
    pressed = orjson.loads(kept.value)
    assert (pressed["status"], pressed["call_id"], pressed["actor_id"]) == (
        "on_scene",
        "CL-1",
        user,
    )
    assert kept.key == team_id.encode()
    board.context.close()
    phone.context.close()
    clinician.context.close()


# --- 3. Care Navigation: released at the next staffed moment ---------------------------------


def test_the_navigator_gets_the_follow_up_at_the_next_staffed_moment_and_records_it(
    stack: Stack, browser: Browser
) -> None:
    navigator = page_for(browser)
    sign_in(navigator, stack.url, "nav-0001", "demo-navigator")
    expect(navigator).to_have_url(re.compile(r"/navigator$"))
    supervisor = page_for(browser)
    sign_in(supervisor, stack.url, "sup-0001", "demo-supervisor")

    # A clinician keeps a caller on the phone past Care Navigation's hours (16:30) and
    # resolves the call at 16:45 on Thursday: the follow-up waits for Friday 08:30.
    send(stack.settings, CAD_CALLS, ("NV-1", phone_call("NV-1", "16:20")))
    decided(stack, "NV-1")
    resolved = CcdDisposition(
        call_id="NV-1",
        clinician_id="clin-0001",
        disposition="resolved_by_phone",
        occurred_at=local(THURSDAY, "16:45"),
    )
    send(stack.settings, CCD_ASSESSMENTS, ("NV-1", resolved))
    read_until(
        stack.settings,
        TRIAGE_CLOSURES,
        lambda cs: any(isinstance(c, TriageClosure) and c.call_id == "NV-1" for c in cs),
    )
    ((_, scheduled),) = [
        (r, s)
        for r, s in read_until(
            stack.settings, FOLLOWUP_TIMERS, lambda ss: any(s.case_id == "NV-1" for s in ss)
        )
        if s.case_id == "NV-1"
    ]
    assert isinstance(scheduled, FollowupScheduled)
    staffed = local(FRIDAY, "08:30")
    assert (scheduled.release_at, scheduled.at_risk) == (staffed, False)
    case = navigator.locator("[data-case='NV-1']")
    expect(case).to_contain_text("not yet (Fri 08:30 AM)")

    def released(events: list[object]) -> bool:
        return any(isinstance(e, FollowupDue) and e.case_id == "NV-1" for e in events)

    # A minute before, nothing is released...
    pulse_until(stack.settings, local(FRIDAY, "08:29"), FOLLOWUP_TASKS, lambda _: True)
    time.sleep(2.0)
    assert not released([e for _, e in read_until(stack.settings, FOLLOWUP_TASKS, lambda _: True)])
    expect(case).to_contain_text("not yet")
    # ...and at 08:30 the task is released to the navigators.
    ((_, due),) = [
        (r, e)
        for r, e in pulse_until(stack.settings, staffed, FOLLOWUP_TASKS, released)
        if isinstance(e, FollowupDue) and e.case_id == "NV-1"
    ]
    assert (due.due_at, due.occurred_at, due.attempt) == (staffed, staffed, 1)
    expect(case).not_to_contain_text("not yet")
    expect(case.locator("td").nth(2)).to_have_text("Fri 08:30 AM")
    navigator.screenshot(path=str(DOCS / "console-navigator.png"), full_page=True)

    supervisor.goto(f"{stack.url}/analyst")
    work = supervisor.locator("[data-panel='Work in hand']")
    expect(supervisor.locator("#feed")).to_have_text("live", timeout=10_000)
    open_before = _count(work, "follow-ups open")
    assert open_before >= 1

    navigator.locator("[data-record='NV-1']").click()
    navigator.get_by_label("Outcome").select_option("connected_to_care")
    navigator.get_by_label("Care connected to (optional)").fill("outpatient")
    navigator.locator("#outcome-form button[type='submit']").click()
    expect(navigator.locator("#message")).to_contain_text("Sent.")
    expect(case).to_have_count(0, timeout=10_000)

    ((record, outcome),) = [
        (r, o)
        for r, o in read_until(
            stack.settings, FOLLOWUP_OUTCOMES, lambda os: any(o.case_id == "NV-1" for o in os)
        )
        if o.case_id == "NV-1"
    ]
    assert isinstance(outcome, FollowupOutcome)
    assert (outcome.outcome, outcome.care_kind, outcome.navigator_id) == (
        "connected_to_care",
        "outpatient",
        "nav-0001",
    )
    assert ("heart.actor", b"nav-0001") in list(record.headers)
    # The board counts one follow-up fewer open; the stage counts it completed in time.
    expect(work).to_contain_text(f"follow-ups open{open_before - 1}", timeout=10_000)
    navigation = stack.workers["navigation"]
    completed = "heart_followups_completed_total"
    labels = {"pilot": "ccd", "outcome": "connected_to_care", "within_deadline": "true"}
    samples = in_thread(until_value(navigation, completed, 1, **labels))
    assert value(samples, completed, **labels) == 1
    assert value(samples, "heart_followups_due_total", pilot="ccd") == 1
    assert value(samples, "heart_followups_scheduled_total", pilot="ccd") == 1
    assert value(samples, "heart_followups_at_risk_total", pilot="ccd") == 0
    assert scrape(navigation)
    navigator.context.close()
    supervisor.context.close()


#: A team page's own action call, made directly: what a page that went stale would post.
STALE_PRESS = """async (body) => {
  const response = await fetch("/api/team/status", {
    method: "POST",
    headers: { "Content-Type": "application/json",
               "X-CSRF-Token": document.getElementById("app").dataset.csrf },
    body: JSON.stringify(body),
  });
  return [response.status, await response.json()];
}"""


def _event_id(record: object) -> str | None:
    value = orjson.loads(record.value)  # type: ignore[attr-defined]
    return value.get("event_id") if isinstance(value, dict) else None


def _count(panel, label: str) -> int:
    """A count from an analyst panel's row whose first cell is ``label``."""
    row = panel.locator("tr").filter(has=panel.page.get_by_role("cell", name=label, exact=True))
    return int(row.locator("td").nth(1).inner_text())


# --- 4. A team-status alert as time passes, with no new event --------------------------------


def test_a_team_status_alert_appears_when_the_clock_passes_its_threshold(
    broker: EmbeddedBroker, browser: Browser, tmp_path: Path
) -> None:
    # On the wall clock, so that time passes with no event at all: a console of its own,
    # on topics of its own, whose policy alerts on a team dispatched for 6 seconds.
    settings = HeartSettings(
        kafka_bootstrap=broker.bootstrap, topic_prefix=f"scw{uuid.uuid4().hex[:8]}."
    )
    in_thread(create_topics(settings))
    text = default_policy_path().read_text()
    table = "[dispatch.status_alert_minutes]\n"
    assert table in text, "the policy's status alert table moved: update this test"
    head, _, rest = text.partition(table)
    rest, n = re.subn(r"^dispatched = \d+$", "dispatched = 0.1", rest, count=1, flags=re.M)
    assert n == 1, "no dispatched threshold in the policy's status alert table"
    policy = tmp_path / "policy.toml"
    policy.write_text(head + table + rest)
    console = ConsoleProcess(settings, tmp_path, find_free_port(), HEART_POLICY=str(policy))
    console.start()
    try:
        board = page_for(browser)
        sign_in(board, console.url, "sup-0001", "demo-supervisor")
        now = datetime.now(UTC)
        decision = TriageDecision(
            call_id="W-1",
            route="crt",
            reasons=["category:welfare_check"],
            policy_version="durham@test",
            source_event_id="src-W-1",
            call_received_at=now,
            call_type="WELFARE CHECK",
            occurred_at=now,
        )
        assigned = DispatchEvent(
            event_type="dispatch.assigned",
            call_id="W-1",
            route="crt",
            team_id="CRT-2",
            occurred_at=now,
        )
        send(settings, TRIAGE_DECISIONS, ("W-1", decision))
        send(settings, DISPATCH_EVENTS, ("CRT-2", assigned))
        team = board.locator("[data-team='CRT-2']")
        expect(team).to_contain_text("dispatched")
        alerts = board.locator("[data-panel='Alerts'] [data-kind='team_status']")
        assert time.time() - now.timestamp() < 5, "the board took too long to test the threshold"
        assert alerts.count() == 0
        read = _positions(board)
        expect(alerts).to_contain_text(
            "CRT-2 dispatched for 0 min (alert at 0.1 min)", timeout=15_000
        )
        assert time.time() - now.timestamp() >= 6
        # Nothing new was read from Kafka: the clock alone raised it.
        assert _positions(board) == read
    finally:
        assert console.stop() == 0
        console.assert_clean_log()


def _positions(page: Page) -> str:
    """The Kafka positions part of the page's last update id (``<step>:<positions>``)."""
    update = page.locator("#app").get_attribute("data-updated") or ""
    _step, sep, positions = update.partition(":")
    assert sep and positions, f"not an update id: {update!r}"
    return positions


# --- 5. The server refuses what a role may not do --------------------------------------------


def test_the_server_refuses_anonymous_cross_role_and_cross_team_requests(
    stack: Stack, browser: Browser
) -> None:
    anonymous = page_for(browser).context.request
    for path in ("/api/view", "/api/stream?page=board", "/api/team/CRT-1"):
        assert anonymous.get(f"{stack.url}{path}").status == 401, path
    page = anonymous.get(f"{stack.url}/board", max_redirects=0)
    assert (page.status, page.headers["location"]) == (303, "/signin")

    navigator = page_for(browser)
    sign_in(navigator, stack.url, "nav-0001", "demo-navigator")
    csrf = navigator.locator("#app").get_attribute("data-csrf")
    assert csrf
    posted = navigator.context.request.post(
        f"{stack.url}/api/team/status",
        headers={"X-CSRF-Token": csrf},
        data={"action": "on_scene"},
    )
    assert posted.status == 403
    assert navigator.context.request.get(f"{stack.url}/board").status == 403
    assert navigator.context.request.get(f"{stack.url}/api/stream?page=board").status == 403

    team = page_for(browser, PHONE)
    sign_in(team, stack.url, "team-crt-1", "demo-crt-1")
    assert team.context.request.get(f"{stack.url}/api/team/CRT-1").status == 200
    assert team.context.request.get(f"{stack.url}/api/team/CRT-2").status == 403
    assert team.context.request.get(f"{stack.url}/api/stream?page=board").status == 403
    # Nothing the navigator tried reached a topic.
    reports = read_until(stack.settings, UNITS_STATUS, lambda _: True, settle=1.0)
    assert not [r for r, _ in reports if ("heart.actor", b"nav-0001") in list(r.headers)]
    assert all(isinstance(e, UnitStatusReport) for _, e in reports)
    for page_ in (navigator, team):
        page_.context.close()


# --- 6. A restart, and a browser that lost the console ---------------------------------------


def test_the_board_survives_a_restart_and_an_open_page_catches_up_without_reloading(
    stack: Stack, browser: Browser
) -> None:
    board = page_for(browser)
    sign_in(board, stack.url, "sup-0001", "demo-supervisor")
    send(stack.settings, CAD_CALLS, ("RS-1", phone_call("RS-1", "09:00", day=FRIDAY)))
    decided(stack, "RS-1")
    expect(board.locator("[data-call='RS-1']")).to_have_count(1)
    board.evaluate("() => { window.__marker = 'not reloaded'; }")
    before = board_text(board)

    assert stack.console.stop() == 0
    expect(board.locator("#feed")).to_have_text("reconnecting…", timeout=10_000)
    stack.console.start()
    expect(board.locator("#feed")).to_have_text("live", timeout=30_000)
    assert board_text(board) == before
    fresh = page_for(browser)
    sign_in(fresh, stack.url, "sup-0001", "demo-supervisor")
    assert board_text(fresh) == before

    # The console goes away; a call is decided meanwhile; the open page catches up.
    assert stack.console.stop() == 0
    expect(board.locator("#feed")).to_have_text("reconnecting…", timeout=10_000)
    send(stack.settings, CAD_CALLS, ("RS-2", phone_call("RS-2", "09:05", day=FRIDAY)))
    decided(stack, "RS-2")
    stack.console.start()
    expect(board.locator("[data-call='RS-2']")).to_have_count(1, timeout=30_000)
    expect(board.locator("#feed")).to_have_text("live")
    assert board.evaluate("() => window.__marker") == "not reloaded"

    # A second replica with the same session secret serves the same board, and takes the
    # session the first one signed (cookies are per host, not per port).
    logs = stack.console.log_path.parent
    replica = ConsoleProcess(stack.settings, logs, find_free_port(), **EVENT_CLOCK).start()
    try:
        other = board.context.new_page()
        other.goto(f"{replica.url}/board")
        expect(other.locator("#feed")).to_have_text("live", timeout=30_000)
        expect(other.locator("[data-call='RS-2']")).to_have_count(1)
        assert board_text(other) == board_text(board)
    finally:
        assert replica.stop() == 0, replica.log()[-3000:]
        replica.assert_clean_log()
    board.context.close()
    fresh.context.close()
