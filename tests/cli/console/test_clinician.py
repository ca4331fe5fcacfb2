"""The clinician's page and the consult buttons with FastAPI's TestClient: each form's
event, its topic and key, the signed-in clinician's id; form problems named by field with
nothing sent; who may use which action. Events are captured here; the browser test sends
them to the real broker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect

from heart.cli.console.app import Console, create_app
from heart.cli.console.board import Board
from heart.cli.console.console_settings import ConsoleSettings
from heart.cli.console.users import load_users
from heart.policy import load_policy
from heart.schemas.ccd import (
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    ConsultAnswered,
    ConsultClosed,
    ConsultRequested,
)
from heart.streams.admin import create_topics
from heart.streams.codec import decode
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings
from heart.streams.topics import CCD_ASSESSMENTS, CCD_CONSULTS, TRIAGE_DECISIONS
from tests.cli.console.events import (
    T0,
    answered,
    at,
    closure,
    consult,
    decision,
    dispatch,
    engaged,
    start_at,
)
from tests.cli.console.stack import ConsoleProcess, in_thread
from tests.cli.console.stack import sign_in as sign_in_page
from tests.cli.console.test_app import Sent, csrf_of, sign_in
from tests.kafka import produce, read_topic

CLINICIAN = "clin-0001"


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def console(sent: Sent) -> Console:
    board = Board()
    board.add_roster_teams(["CRT-1", "COR-1"])
    for event in [
        decision("c-crt", "crt", minute=0),
        dispatch("assigned", "c-crt", 1, "CRT-1"),
        decision("c-waiting", "ccd", minute=1),
        decision("c-mine", "ccd", minute=2),
        engaged("c-mine", 3),
        decision("c-other", "ccd", minute=0.5),
        engaged("c-other", 1, clinician="clin-0002"),
        # A CRT call a clinician joined on the line: it is the clinician's call too.
        decision("c-joined", "crt", minute=0.2),
        engaged("c-joined", 2),
        decision("c-closed", "ccd", minute=0),
        closure("c-closed", 2),
        consult("k-routine-old", 0, urgency="routine"),
        consult("k-urgent-new", 4, urgency="urgent"),
        consult("k-urgent-old", 3, urgency="urgent"),
        consult("k-answered", 1, urgency="soon"),
        answered("k-answered", 2),
    ]:
        board.apply(event)
    return Console(
        board=board,
        policy=load_policy(),
        settings=ConsoleSettings(),
        users=load_users(),
        send=sent,
        clock=lambda: at(5),
        team_kinds={"CRT-1": "crt", "COR-1": "cor"},
    )


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(create_app(console), base_url="http://127.0.0.1") as c:
        yield c


def clinician(client: TestClient) -> str:
    """Sign in as the demo clinician; the page's CSRF token."""
    assert sign_in(client, CLINICIAN).headers["location"] == "/clinician"
    return csrf_of(client, "/clinician")


def post(client: TestClient, path: str, token: str, body: dict[str, Any]) -> Any:
    return client.post(path, json=body, headers={"X-CSRF-Token": token})


def test_the_clinician_sees_their_calls_first_and_the_consult_queue_by_urgency_then_age(
    client: TestClient,
) -> None:
    clinician(client)
    view = client.get("/api/view").json()
    assert view["page"] == "clinician"
    # Theirs (oldest first), then calls waiting for a clinician, then other clinicians';
    # never a call on another route nobody engaged, nor a closed one.
    assert [(c["call_id"], c["mine"], c["clinician_id"]) for c in view["calls"]] == [
        ("c-joined", True, CLINICIAN),
        ("c-mine", True, CLINICIAN),
        ("c-waiting", False, None),
        ("c-other", False, "clin-0002"),
    ]
    mine = view["calls"][1]
    assert (mine["on_the_line"], mine["engaged_s"], mine["age_s"]) == (True, 120, 180)
    # Urgent before routine, oldest first; the answered consult stays until closed.
    queue = [
        (c["consult_id"], c["waiting_s"], c["target_s"], c["overdue"]) for c in view["consults"]
    ]
    assert queue == [
        ("k-urgent-old", 120, 120, True),  # the policy's urgent target: 2 minutes
        ("k-urgent-new", 60, 120, False),
        ("k-routine-old", 300, 1800, False),
        ("k-answered", None, 600, False),
    ]
    assert view["consults"][3]["waiting"] is False


def test_the_clinician_page_offers_the_policys_resources_and_the_seven_dispositions(
    client: TestClient,
) -> None:
    clinician(client)
    page = client.get("/clinician").text
    config = re.search(r"data-config='([^']+)'", page)
    assert config is not None
    text = config.group(1)
    for resource in ("988", "mobile_crisis", "outpatient", "substance_use", "shelter"):
        assert f"&quot;{resource}&quot;" in text
    for disposition in (
        "resolved_by_phone",
        "dispatch_crt",
        "dispatch_cor",
        "police_needed",
        "ems_needed",
        "transferred_988",
        "disconnected",
    ):
        assert disposition in text
    # The clinician still reads the supervisor board.
    assert client.get("/board").status_code == 200
    assert client.get("/api/view?page=board").json()["page"] == "board"
    assert client.get("/api/view?page=navigator").status_code == 403


def test_engage_sends_ccd_engaged_keyed_by_the_call_with_the_clinicians_id(
    client: TestClient, sent: Sent
) -> None:
    token = clinician(client)
    response = post(client, "/api/ccd/engage", token, {"call_id": "c-waiting"})
    assert response.status_code == 202
    assert response.json()["sent"] == "ccd.engaged" and "warning" not in response.json()
    ((topic, key, event, actor),) = sent.events
    assert (topic, key, actor) == ("ccd.assessments", "c-waiting", CLINICIAN)
    assert isinstance(event, CcdEngaged)
    assert (event.call_id, event.clinician_id) == ("c-waiting", CLINICIAN)


def test_a_screening_with_q2_yes_carries_q3_to_q5_and_q6_timing(
    client: TestClient, sent: Sent
) -> None:
    token = clinician(client)
    answers = {
        "q1": True,
        "q2": True,
        "q3": True,
        "q4": False,
        "q5": False,
        "q6": True,
        "q6_when": "longer_ago",
    }
    response = post(client, "/api/ccd/screened", token, {"call_id": "c-mine", "answers": answers})
    assert response.status_code == 202
    ((topic, key, event, actor),) = sent.events
    assert (topic, key, actor) == ("ccd.assessments", "c-mine", CLINICIAN)
    assert isinstance(event, CcdScreened)
    assert event.clinician_id == CLINICIAN
    assert event.answers.model_dump() == answers


def test_a_screening_with_q2_no_carries_only_the_questions_asked(
    client: TestClient, sent: Sent
) -> None:
    token = clinician(client)
    answers = {"q1": True, "q2": False, "q6": False}
    assert (
        post(
            client, "/api/ccd/screened", token, {"call_id": "c-mine", "answers": answers}
        ).status_code
        == 202
    )
    (event,) = (e[2] for e in sent.events)
    assert isinstance(event, CcdScreened)
    assert (event.answers.q3, event.answers.q4, event.answers.q5) == (None, None, None)


@pytest.mark.parametrize(
    ("answers", "field", "message"),
    [
        ({"q2": False, "q6": False}, "q1", "q1: answer yes or no"),
        ({"q1": True, "q2": True, "q6": False}, "q3", "Screener: q3, q4, q5 must be answered"),
        (
            {"q1": True, "q2": True, "q3": True, "q4": False, "q6": False},
            "q5",
            "Screener: q5 must be answered when q2 is yes",
        ),
        ({"q1": True, "q2": False, "q3": True, "q6": False}, "q3", "Screener: q3 are asked"),
        ({"q1": False, "q2": False, "q6": True}, "q6_when", "Screener: q6_when must be answered"),
        (
            {"q1": False, "q2": False, "q6": False, "q6_when": "past_3_months"},
            "q6_when",
            "Screener: q6_when is asked only when q6 is yes",
        ),
        ({"q1": "yes", "q2": False, "q6": False}, "q1", "q1: answer yes or no"),
        ({"q1": False, "q2": False, "q6": True, "q6_when": "soon"}, "q6_when", "q6_when: choose"),
        ({"q1": False, "q2": False, "q6": False, "notes": "x"}, "notes", "notes: not a field"),
    ],
)
def test_a_screening_the_screener_would_not_give_names_the_field_and_sends_nothing(
    client: TestClient, sent: Sent, answers: dict[str, Any], field: str, message: str
) -> None:
    token = clinician(client)
    response = post(client, "/api/ccd/screened", token, {"call_id": "c-mine", "answers": answers})
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert response.json()["error"].startswith(message)
    assert sent.events == []


def test_a_safety_plan_carries_the_ticked_steps_and_the_record_reference(
    client: TestClient, sent: Sent
) -> None:
    token = clinician(client)
    steps = {
        "warning_signs": True,
        "internal_coping": True,
        "distraction": False,
        "people_for_help": True,
        "professionals": True,
        "safe_environment": False,
    }
    body = {"call_id": "c-mine", "steps": steps, "record_ref": "EHR:plan/42"}
    assert post(client, "/api/ccd/safety_plan", token, body).status_code == 202
    ((topic, key, event, actor),) = sent.events
    assert (topic, key, actor) == ("ccd.assessments", "c-mine", CLINICIAN)
    assert isinstance(event, CcdSafetyPlan)
    assert (event.steps.model_dump(), event.record_ref, event.clinician_id) == (
        steps,
        "EHR:plan/42",
        CLINICIAN,
    )


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"steps": {}}, "steps", "steps: tick the steps completed"),
        (
            {"steps": {"warning_signs": True}, "record_ref": "talked about her sister"},
            "record_ref",
            "record_ref: the plan's id in the clinical record system",
        ),
        (
            {"steps": {"warning_signs": True}, "narrative": "caller was upset"},
            "narrative",
            "narrative: not a field of this form",
        ),
        ({"steps": {"warning_signs": True, "notes": True}}, "notes", "notes: not a field"),
        ({"call_id": "", "steps": {"warning_signs": True}}, "call_id", "call_id: choose a call"),
    ],
)
def test_safety_plan_problems_name_the_field_and_send_nothing(
    client: TestClient, sent: Sent, body: dict[str, Any], field: str, message: str
) -> None:
    token = clinician(client)
    response = post(client, "/api/ccd/safety_plan", token, {"call_id": "c-mine", **body})
    assert response.status_code == 422
    assert (response.json()["field"], response.json()["error"][: len(message)]) == (field, message)
    assert sent.events == []


def test_a_referral_takes_a_resource_of_the_policy(client: TestClient, sent: Sent) -> None:
    token = clinician(client)
    body = {"call_id": "c-mine", "resource": "mobile_crisis", "warm_handoff": True}
    assert post(client, "/api/ccd/referral", token, body).status_code == 202
    ((topic, key, event, _actor),) = sent.events
    assert (topic, key) == ("ccd.assessments", "c-mine")
    assert isinstance(event, CcdReferral)
    assert (event.resource, event.warm_handoff, event.clinician_id) == (
        "mobile_crisis",
        True,
        CLINICIAN,
    )
    unknown = post(client, "/api/ccd/referral", token, {**body, "resource": "church"})
    assert unknown.status_code == 422
    assert unknown.json() == {
        "error": "resource: choose one of the policy's resources (988, mobile_crisis, "
        "outpatient, substance_use, shelter)",
        "field": "resource",
    }
    assert len(sent.events) == 1


@pytest.mark.parametrize(
    "value",
    [
        "resolved_by_phone",
        "dispatch_crt",
        "dispatch_cor",
        "police_needed",
        "ems_needed",
        "transferred_988",
        "disconnected",
    ],
)
def test_each_disposition_is_sent_keyed_by_the_call(
    client: TestClient, sent: Sent, value: str
) -> None:
    token = clinician(client)
    response = post(
        client, "/api/ccd/disposition", token, {"call_id": "c-mine", "disposition": value}
    )
    assert response.status_code == 202 and "warning" not in response.json()
    ((topic, key, event, actor),) = sent.events
    assert (topic, key, actor) == ("ccd.assessments", "c-mine", CLINICIAN)
    assert isinstance(event, CcdDisposition)
    assert (event.disposition, event.clinician_id) == (value, CLINICIAN)


def test_an_unknown_disposition_names_the_field_and_sends_nothing(
    client: TestClient, sent: Sent
) -> None:
    token = clinician(client)
    response = post(
        client, "/api/ccd/disposition", token, {"call_id": "c-mine", "disposition": "arrest"}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "disposition"
    assert response.json()["error"].startswith("disposition: choose one of resolved_by_phone")
    assert sent.events == []
    assert post(client, "/api/ccd/notes", token, {"call_id": "c-mine"}).status_code == 404


def test_a_disposition_for_a_closed_call_is_sent_with_a_clear_message(
    client: TestClient, sent: Sent
) -> None:
    token = clinician(client)
    response = post(
        client,
        "/api/ccd/disposition",
        token,
        {"call_id": "c-closed", "disposition": "resolved_by_phone"},
    )
    assert response.status_code == 202
    assert response.json()["warning"].startswith(
        "Call c-closed is not open on the board (the 911 center closed it): triage changes "
        "no decision for a closed call."
    )
    unknown = post(
        client,
        "/api/ccd/disposition",
        token,
        {"call_id": "c-nowhere", "disposition": "dispatch_crt"},
    )
    assert "dead-letters the disposition as unknown_call" in unknown.json()["warning"]
    late = post(
        client,
        "/api/ccd/screened",
        token,
        {"call_id": "c-closed", "answers": {"q1": False, "q2": False, "q6": False}},
    )
    assert late.json()["warning"] == (
        "Call c-closed is not open on the board (the 911 center closed it): the CCD stage "
        "records the screening for the call, but it changes nothing for the call."
    )
    assert [e[1] for e in sent.events] == ["c-closed", "c-nowhere", "c-closed"]


def test_engaging_a_call_another_clinician_holds_says_so(client: TestClient, sent: Sent) -> None:
    token = clinician(client)
    response = post(client, "/api/ccd/engage", token, {"call_id": "c-other"})
    assert response.json()["warning"].startswith("clin-0002 is already on call c-other")
    assert len(sent.events) == 1


def test_answer_and_close_a_consult(client: TestClient, sent: Sent) -> None:
    token = clinician(client)
    assert post(client, "/api/consult/answer", token, {"consult_id": "k-urgent-old"}).json() == {
        "sent": "consult.answered",
        "key": "k-urgent-old",
        "event_id": sent.events[0][2].event_id,  # type: ignore[attr-defined]
    }
    assert (
        post(client, "/api/consult/close", token, {"consult_id": "k-answered"}).status_code == 202
    )
    answer, close = sent.events
    assert answer[:2] == ("ccd.consults", "k-urgent-old") and answer[3] == CLINICIAN
    assert isinstance(answer[2], ConsultAnswered) and answer[2].clinician_id == CLINICIAN
    assert close[:2] == ("ccd.consults", "k-answered") and close[3] == CLINICIAN
    assert isinstance(close[2], ConsultClosed) and close[2].clinician_id == CLINICIAN


@pytest.mark.parametrize(
    ("path", "consult_id", "message"),
    [
        ("/api/consult/answer", "k-answered", "Consult k-answered is already answered"),
        ("/api/consult/answer", "k-gone", "Consult k-gone is not on the board"),
        ("/api/consult/close", "k-gone", "Consult k-gone is not on the board"),
    ],
)
def test_a_stale_consult_action_is_sent_with_a_clear_message(
    client: TestClient, sent: Sent, path: str, consult_id: str, message: str
) -> None:
    token = clinician(client)
    response = post(client, path, token, {"consult_id": consult_id})
    assert response.status_code == 202
    assert response.json()["warning"].startswith(message)
    assert "dead letter keeps it" in response.json()["warning"]
    assert len(sent.events) == 1


def test_a_supervisor_asks_a_clinician_about_a_call(client: TestClient, sent: Sent) -> None:
    sign_in(client, "sup-0001")
    token = csrf_of(client, "/board")
    response = post(client, "/api/consult/request", token, {"call_id": "c-crt", "urgency": "soon"})
    assert response.status_code == 202
    ((topic, key, event, actor),) = sent.events
    assert isinstance(event, ConsultRequested)
    assert (topic, key, actor) == ("ccd.consults", event.consult_id, "sup-0001")
    assert (event.requested_by, event.call_id, event.team_id, event.urgency) == (
        "dispatcher",
        "c-crt",
        None,
        "soon",
    )
    missing = post(client, "/api/consult/request", token, {"call_id": "c-crt"})
    assert (missing.status_code, missing.json()["field"]) == (422, "urgency")
    assert len(sent.events) == 1


def test_a_team_asks_a_clinician_from_its_own_team_and_call(client: TestClient, sent: Sent) -> None:
    sign_in(client, "team-crt-1", "demo-crt-1")
    token = csrf_of(client, "/team")
    # The team and call come from the users file and the board, never from the form.
    crafted = post(
        client, "/api/consult/request", token, {"urgency": "urgent", "call_id": "c-other"}
    )
    assert (crafted.status_code, crafted.json()["field"]) == (422, "call_id")
    response = post(client, "/api/consult/request", token, {"urgency": "urgent"})
    assert response.status_code == 202
    ((topic, key, event, actor),) = sent.events
    assert isinstance(event, ConsultRequested)
    assert (topic, key, actor) == ("ccd.consults", event.consult_id, "team-crt-1")
    assert (event.requested_by, event.team_id, event.call_id, event.urgency) == (
        "crt",
        "CRT-1",
        "c-crt",
        "urgent",
    )


def test_a_team_whose_kind_the_console_does_not_know_is_told_so(
    console: Console, sent: Sent
) -> None:
    console.team_kinds = {}
    with TestClient(create_app(console), base_url="http://127.0.0.1") as client:
        sign_in(client, "team-crt-1", "demo-crt-1")
        token = csrf_of(client, "/team")
        response = post(client, "/api/consult/request", token, {"urgency": "urgent"})
    assert response.status_code == 409
    assert response.json()["error"].startswith("This console does not know team CRT-1's kind")
    assert sent.events == []


CLINICIAN_ACTIONS = [
    ("/api/ccd/engage", {"call_id": "c-waiting"}),
    (
        "/api/ccd/screened",
        {"call_id": "c-mine", "answers": {"q1": False, "q2": False, "q6": False}},
    ),
    ("/api/ccd/safety_plan", {"call_id": "c-mine", "steps": {"warning_signs": True}}),
    ("/api/ccd/referral", {"call_id": "c-mine", "resource": "988"}),
    ("/api/ccd/disposition", {"call_id": "c-mine", "disposition": "dispatch_crt"}),
    ("/api/consult/answer", {"consult_id": "k-urgent-old"}),
    ("/api/consult/close", {"consult_id": "k-urgent-old"}),
]


@pytest.mark.parametrize(
    ("user", "password", "page"),
    [
        ("nav-0001", "demo-navigator", "/navigator"),
        ("team-crt-1", "demo-crt-1", "/team"),
        ("sup-0001", "demo-supervisor", "/board"),
        ("ana-0001", "demo-analyst", "/analyst"),
    ],
)
def test_only_a_clinician_may_use_the_clinicians_actions(
    client: TestClient, sent: Sent, user: str, password: str, page: str
) -> None:
    sign_in(client, user, password)
    token = csrf_of(client, page)
    for path, body in CLINICIAN_ACTIONS:
        response = post(client, path, token, body)
        assert response.status_code == 403, path
    assert client.get("/clinician").status_code == 403
    assert client.get("/api/view?page=clinician").status_code == 403
    assert sent.events == []


def test_a_clinician_cannot_post_a_unit_status_nor_ask_a_consult(
    client: TestClient, sent: Sent
) -> None:
    token = clinician(client)
    assert post(client, "/api/team/status", token, {"action": "en_route"}).status_code == 403
    assert post(client, "/api/consult/request", token, {"urgency": "urgent"}).status_code == 403
    assert client.get("/team").status_code == 403
    assert sent.events == []


def test_clinician_actions_need_the_forms_token(client: TestClient, sent: Sent) -> None:
    clinician(client)
    for path, body in CLINICIAN_ACTIONS:
        assert client.post(path, json=body).status_code == 403, path
    assert sent.events == []


# --- in a real browser, against `heart console` on the embedded broker ----------------------

DOCS = Path(__file__).resolve().parents[3] / "docs"
LINKS_TOML = """\
[links]
reports_url = "https://reports.example.org/heart/monthly/"
grafana_url = "http://127.0.0.1:3000/d/heart"
prometheus_url = "http://127.0.0.1:9090"
"""


@pytest.fixture
def prefixed(settings: HeartSettings, unique: str) -> HeartSettings:
    prefixed = settings.model_copy(update={"topic_prefix": f"clinician{unique}."})
    in_thread(create_topics(prefixed))
    return prefixed


@pytest.fixture
def console_url(prefixed: HeartSettings, tmp_path: Path) -> Iterator[str]:
    """``heart console`` as a real process, with the analyst's links configured."""
    settings_file = tmp_path / "console.toml"
    settings_file.write_text(LINKS_TOML)
    port = find_free_port()
    console = ConsoleProcess(prefixed, tmp_path, port, "--settings", str(settings_file)).start()
    try:
        yield console.url
    finally:
        assert console.stop() == 0, console.log()[-3000:]
        text = console.log()
        assert "Traceback" not in text, text[-3000:]
        assert "EHR:plan" not in text, text[-3000:]


@pytest.mark.broker
def test_a_clinician_engages_screens_plans_and_dispatches_crt_in_a_browser(
    browser: Browser, console_url: str, prefixed: HeartSettings, request: pytest.FixtureRequest
) -> None:
    # The console reads the wall clock: the calls came in a few minutes ago.
    start_at(datetime.now(UTC) - timedelta(minutes=6))
    request.addfinalizer(lambda: start_at(T0))
    in_thread(
        produce(
            prefixed,
            TRIAGE_DECISIONS,
            [
                ("ccd-1", decision("ccd-1", "ccd", minute=1, reasons=["category:mental_health"])),
                ("ccd-2", decision("ccd-2", "ccd", minute=4, reasons=["category:welfare_check"])),
                ("crt-3", decision("crt-3", "crt", minute=0, reasons=["category:welfare_check"])),
            ],
        )
    )
    in_thread(produce(prefixed, CCD_ASSESSMENTS, [("crt-3", engaged("crt-3", 2, "clin-0002"))]))
    in_thread(
        produce(
            prefixed,
            CCD_CONSULTS,
            [
                ("k-1", consult("k-1", 0.5, urgency="routine")),
                ("k-2", consult("k-2", 5, urgency="urgent")),
            ],
        )
    )

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    sign_in_page(page, console_url, CLINICIAN, "demo-clinician")
    expect(page).to_have_url(re.compile(r"/clinician$"))
    expect(page.locator("#feed")).to_have_text("live", timeout=30_000)
    expect(page.locator("[data-call='crt-3']")).to_contain_text("clin-0002", timeout=5_000)
    # The urgent consult first, then the older routine one.
    expect(page.locator("[data-consult]")).to_have_count(2)
    expect(page.locator("[data-consult]").first).to_have_attribute("data-consult", "k-2")

    page.locator("[data-engage='ccd-1']").click()
    expect(page.locator("#message")).to_contain_text("Sent.")
    # The engagement comes back from Kafka: the call is the clinician's now.
    page.locator("[data-assess='ccd-1']").click(timeout=5_000)
    expect(page.locator("#assessed-call")).to_have_text("ccd-1")

    screener = page.locator("#screener-form")
    expect(page.locator("#after-q2")).to_be_hidden()
    page.locator("#q1-yes").check()
    page.locator("#q2-yes").check()
    expect(page.locator("#after-q2")).to_be_visible()
    page.locator("#q6-no").check()
    expect(page.locator("#q6-when-row")).to_be_hidden()
    # Q3 to Q5 left unanswered: the server names them, and nothing is sent.
    screener.get_by_role("button", name="Record screening").click()
    expect(screener.locator(".field-error")).to_contain_text("q3, q4, q5 must be answered")
    expect(page.locator("#q3-row")).to_have_attribute("aria-invalid", "true")
    for question in ("q3", "q4", "q5"):
        page.locator(f"#{question}-no").check()
    page.locator("#q3-yes").check()
    screener.get_by_role("button", name="Record screening").click()
    expect(page.locator("#message")).to_contain_text("Sent.")
    expect(screener.locator(".field-error")).to_have_text("")

    plan = page.locator("#safety-plan-form")
    for step in ("warning_signs", "internal_coping", "people_for_help", "professionals"):
        page.locator(f"#step-{step}").check()
    page.locator("#record-ref").fill("EHR:plan/77")
    page.screenshot(path=str(DOCS / "console-clinician.png"), full_page=True)
    plan.get_by_role("button", name="Record safety plan").click()
    expect(page.locator("#message")).to_contain_text("Sent.")

    page.locator("#disposition").select_option("dispatch_crt")
    page.get_by_role("button", name="Record disposition").click()
    expect(page.locator("#message")).to_contain_text("Sent.")
    expect(page.locator("[data-call='ccd-1']")).to_contain_text("dispatch crt", timeout=5_000)

    records = in_thread(
        read_topic(
            prefixed,
            CCD_ASSESSMENTS,
            until=lambda records: sum(r.key == b"ccd-1" for r in records) >= 4,
            settle=0.5,
        )
    )
    mine = [r for r in records if r.key == b"ccd-1"]
    events = [decode(CCD_ASSESSMENTS.adapter, r.value) for r in mine]
    assert [e.event_type for e in events] == [
        "ccd.engaged",
        "ccd.screened",
        "ccd.safety_plan",
        "ccd.disposition",
    ]
    assert {e.clinician_id for e in events} == {CLINICIAN}
    assert all(("heart.actor", CLINICIAN.encode()) in list(r.headers) for r in mine)
    screened, plan_event, disposed = events[1:]
    assert screened.answers.model_dump() == {
        "q1": True,
        "q2": True,
        "q3": True,
        "q4": False,
        "q5": False,
        "q6": False,
        "q6_when": None,
    }
    assert plan_event.steps.completed == 4 and plan_event.record_ref == "EHR:plan/77"
    assert disposed.disposition == "dispatch_crt"

    analyst = browser.new_page(viewport={"width": 1280, "height": 760})
    sign_in_page(analyst, console_url, "ana-0001", "demo-analyst")
    expect(analyst).to_have_url(re.compile(r"/analyst$"))
    links = analyst.locator("[data-panel='Reports and metrics']")
    expect(links.get_by_role("link", name="Monthly reports")).to_have_attribute(
        "href", "https://reports.example.org/heart/monthly/", timeout=10_000
    )
    expect(links.get_by_role("link", name="Grafana")).to_have_attribute(
        "href", "http://127.0.0.1:3000/d/heart"
    )
    by_route = analyst.locator("[data-panel='Open calls by route']")
    expect(by_route).to_contain_text("ccd")
    # The parts add up to the badge and to the total row: 2 ccd + 1 crt.
    rows = [r.split("\t") for r in by_route.locator("tbody tr").all_inner_texts()]
    assert rows == [["ccd", "2"], ["crt", "1"], ["total", "3"]]
    expect(by_route.locator(".count")).to_have_text("3")
    expect(analyst.locator("[data-panel='Work in hand'] .count")).to_have_count(0)
    analyst.screenshot(path=str(DOCS / "console-analyst.png"), full_page=True)
