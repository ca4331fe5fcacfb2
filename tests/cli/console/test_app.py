"""The console's server with FastAPI's TestClient: sign-in, role scoping of pages, JSON and
actions, CSRF, and the events actions write (captured here; the browser test sends them to
the real broker)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from heart.cli.console.app import Console, create_app
from heart.cli.console.board import Board
from heart.cli.console.console_settings import ConsoleSettings
from heart.cli.console.users import load_users
from heart.policy import load_policy
from heart.schemas.dispatch import UnitStatusReport
from heart.schemas.followup import FollowupOutcome
from heart.streams.topics import TopicSpec
from tests.cli.console.events import at, decision, dispatch, outcome, scheduled

PASSWORDS = {
    "sup-0001": "demo-supervisor",
    "clin-0001": "demo-clinician",
    "team-crt-1": "demo-crt-1",
    "team-crt-2": "demo-crt-2",
    "nav-0001": "demo-navigator",
    "ana-0001": "demo-analyst",
}


class Sent:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, BaseModel, str]] = []

    async def __call__(self, spec: TopicSpec, key: str, event: BaseModel, actor: str) -> None:
        self.events.append((spec.name, key, event, actor))


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def console(sent: Sent) -> Console:
    board = Board(unable_to_reach_retries=3)
    board.add_roster_teams(["CRT-1", "CRT-2"])
    for event in [
        decision("c1"),
        decision("c2"),
        dispatch("assigned", "c1", 1, "CRT-1", call_type="WELFARE CHECK"),
        dispatch("assigned", "c2", 1, "CRT-2", call_type="TRESPASS"),
        scheduled("k1"),
    ]:
        board.apply(event)
    return Console(
        board=board,
        policy=load_policy(),
        settings=ConsoleSettings(),
        users=load_users(),
        send=sent,
        clock=lambda: at(5),
    )


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(create_app(console), base_url="http://127.0.0.1") as c:
        yield c


def sign_in(client: TestClient, user: str, password: str | None = None) -> Any:
    page = client.get("/signin")
    csrf = re.search(r"name='csrf' value='([^']+)'", page.text)
    assert csrf is not None
    return client.post(
        "/signin",
        data={"user": user, "password": password or PASSWORDS[user], "csrf": csrf.group(1)},
        follow_redirects=False,
    )


def csrf_of(client: TestClient, path: str) -> str:
    token = re.search(r"data-csrf='([^']+)'", client.get(path).text)
    assert token is not None
    return token.group(1)


def test_anonymous_requests_are_refused(client: TestClient) -> None:
    for path in ("/board", "/team", "/navigator", "/analyst", "/"):
        response = client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/signin")
    for path in ("/api/view", "/api/stream", "/api/team/CRT-1"):
        assert client.get(path).status_code == 401
    assert client.post("/api/team/status", json={"action": "en_route"}).status_code == 401


def test_sign_in_sets_a_strict_http_only_cookie_and_lands_on_the_roles_page(
    client: TestClient,
) -> None:
    response = sign_in(client, "team-crt-1")
    assert (response.status_code, response.headers["location"]) == (303, "/team")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert sign_in(client, "sup-0001").headers["location"] == "/board"
    assert sign_in(client, "nav-0001").headers["location"] == "/navigator"


def test_a_wrong_password_is_refused_and_repeated_failures_are_limited(
    client: TestClient,
) -> None:
    response = sign_in(client, "sup-0001", "wrong-password")
    assert response.status_code == 401
    assert "Unknown user id or wrong password." in response.text
    assert "wrong-password" not in response.text
    for _ in range(4):
        sign_in(client, "sup-0001", "wrong-password")
    blocked = sign_in(client, "sup-0001")  # even the right password, for a while
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.text


def test_sign_in_without_the_forms_token_is_refused(client: TestClient) -> None:
    response = client.post("/signin", data={"user": "sup-0001", "password": "demo-supervisor"})
    assert response.status_code == 403


def test_a_team_user_reads_only_its_own_teams_assignment(client: TestClient) -> None:
    sign_in(client, "team-crt-1")
    own = client.get("/api/view").json()
    assert (own["page"], own["team_id"], own["assignment"]["call_id"]) == ("team", "CRT-1", "c1")
    assert "TRESPASS" not in repr(own) and "c2" not in repr(own)
    assert client.get("/api/team/CRT-1").json()["assignment"]["call_id"] == "c1"
    other = client.get("/api/team/CRT-2")
    assert other.status_code == 403
    assert other.json() == {"error": "A team sees only its own team's assignment."}
    assert client.get("/api/view?page=board").status_code == 403
    assert client.get("/board").status_code == 403


def test_the_supervisor_reads_the_board_and_any_team(client: TestClient) -> None:
    sign_in(client, "sup-0001")
    board = client.get("/api/view").json()
    assert board["page"] == "board"
    assert [c["call_id"] for c in board["calls"]] == ["c1", "c2"]
    assert client.get("/api/team/CRT-2").json()["assignment"]["call_id"] == "c2"


def test_a_navigator_cannot_see_the_board_nor_post_a_unit_status(
    client: TestClient, sent: Sent
) -> None:
    sign_in(client, "nav-0001")
    assert client.get("/board").status_code == 403
    assert client.get("/api/view?page=board").status_code == 403
    assert client.get("/api/team/CRT-1").status_code == 403
    token = csrf_of(client, "/navigator")
    refused = client.post(
        "/api/team/status", json={"action": "en_route"}, headers={"X-CSRF-Token": token}
    )
    assert refused.status_code == 403
    assert sent.events == []
    tasks = client.get("/api/view").json()["tasks"]
    assert [t["case_id"] for t in tasks] == ["k1"]


def test_the_analyst_sees_counts_only(client: TestClient) -> None:
    sign_in(client, "ana-0001")
    view = client.get("/api/view").json()
    assert view["open_calls"] == 2
    assert "c1" not in repr(view)
    assert client.get("/board").status_code == 403


def test_a_team_action_is_a_unit_status_report_keyed_by_the_users_team(
    client: TestClient, sent: Sent
) -> None:
    sign_in(client, "team-crt-1")
    token = csrf_of(client, "/team")
    response = client.post(
        "/api/team/status", json={"action": "en_route"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 202
    assert "warning" not in response.json()
    ((topic, key, event, actor),) = sent.events
    assert (topic, key, actor) == ("units.status", "CRT-1", "team-crt-1")
    assert isinstance(event, UnitStatusReport)
    assert (event.team_id, event.status, event.call_id) == ("CRT-1", "en_route", "c1")
    # The reporting person is on the event itself, not only in the Kafka header.
    assert event.actor_id == "team-crt-1"


def test_cleared_with_followup_declined_and_backup(client: TestClient, sent: Sent) -> None:
    sign_in(client, "team-crt-1")
    token = csrf_of(client, "/team")
    for action in ("backup", "cleared_declined"):
        client.post("/api/team/status", json={"action": action}, headers={"X-CSRF-Token": token})
    backup, cleared = (e[2] for e in sent.events)
    assert (backup.status, backup.backup_requested) == ("dispatched", True)
    assert (cleared.status, cleared.followup_declined) == ("cleared", True)


def test_a_stale_action_is_sent_with_a_clear_warning(client: TestClient, sent: Sent) -> None:
    sign_in(client, "team-crt-1")
    token = csrf_of(client, "/team")
    response = client.post(
        "/api/team/status", json={"action": "out_of_service"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 202
    assert response.json()["warning"] == (
        'Dispatch will refuse "Out of service": the team is on a call; clear it first (the '
        "board has this team dispatched, on call c1). It was sent, and the dead letter keeps "
        "it for the record."
    )
    assert len(sent.events) == 1


def test_on_scene_for_a_call_taken_away_names_that_call_and_is_sent(
    client: TestClient, console: Console, sent: Sent
) -> None:
    # The team's page still shows c1 when dispatch stands the team down.
    console.board.apply(dispatch("cancelled", "c1", 2, "CRT-1"))
    sign_in(client, "team-crt-1")
    token = csrf_of(client, "/team")
    response = client.post(
        "/api/team/status",
        json={"action": "on_scene", "call_id": "c1"},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 202
    assert response.json()["warning"] == (
        'Dispatch will refuse "On scene" for call c1: the team no longer holds that call (it '
        "was cancelled, reassigned or cleared); the board has it on no call. It was sent, and "
        "the dead letter keeps it for the record."
    )
    ((topic, key, event, actor),) = sent.events
    assert (topic, key, actor) == ("units.status", "CRT-1", "team-crt-1")
    # The report names the call the team pressed for, so dispatch refuses it (call_mismatch
    # or not on a call) instead of applying it to another call.
    assert (event.status, event.call_id, event.actor_id) == ("on_scene", "c1", "team-crt-1")


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (
            "backup",
            'Dispatch will refuse "Request backup": backup is asked for a call, and the board '
            "has this team available, on no call.",
        ),
        (
            "cleared",
            'Dispatch will refuse "Cleared": the team is not on a call (the board has this '
            "team available, on no call).",
        ),
        ("available", 'The board already has this team available, on no call: "Back in service"'),
    ],
)
def test_each_stale_team_action_says_why(
    client: TestClient, console: Console, sent: Sent, action: str, message: str
) -> None:
    console.board.apply(dispatch("cancelled", "c1", 2, "CRT-1"))
    sign_in(client, "team-crt-1")
    token = csrf_of(client, "/team")
    response = client.post(
        "/api/team/status", json={"action": action}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 202
    assert response.json()["warning"].startswith(message)
    assert len(sent.events) == 1


def test_actions_need_the_csrf_token_and_a_known_action(client: TestClient, sent: Sent) -> None:
    sign_in(client, "team-crt-1")
    assert client.post("/api/team/status", json={"action": "en_route"}).status_code == 403
    token = csrf_of(client, "/team")
    bad = client.post(
        "/api/team/status", json={"action": "dispatched"}, headers={"X-CSRF-Token": token}
    )
    assert bad.status_code == 422
    assert bad.json()["error"].startswith("action: use one of en_route, on_scene")
    assert sent.events == []


def test_a_navigator_records_an_outcome(client: TestClient, sent: Sent) -> None:
    sign_in(client, "nav-0001")
    token = csrf_of(client, "/navigator")
    ok = client.post(
        "/api/followup/outcome",
        json={"case_id": "k1", "outcome": "connected_to_care", "care_kind": "outpatient"},
        headers={"X-CSRF-Token": token},
    )
    assert ok.status_code == 202 and "warning" not in ok.json()
    ((topic, key, event, actor),) = sent.events
    assert (topic, key, actor) == ("followup.outcomes", "k1", "nav-0001")
    assert isinstance(event, FollowupOutcome)
    assert (event.outcome, event.navigator_id) == ("connected_to_care", "nav-0001")

    bad = client.post(
        "/api/followup/outcome",
        json={"case_id": "k1", "outcome": "maybe"},
        headers={"X-CSRF-Token": token},
    )
    assert bad.status_code == 422
    assert bad.json()["error"].startswith("outcome: Input should be")
    unknown = client.post(
        "/api/followup/outcome",
        json={"case_id": "k-unknown", "outcome": "reached"},
        headers={"X-CSRF-Token": token},
    )
    assert unknown.json()["warning"].startswith(
        "Case k-unknown is not open on the board: no follow-up is open under that id, so Care "
        "Navigation will refuse the outcome (unknown_case)."
    )


def test_an_outcome_for_a_closed_case_says_it_is_closed_and_is_sent(
    client: TestClient, console: Console, sent: Sent
) -> None:
    console.board.apply(outcome("k1", "reached", 90))
    sign_in(client, "nav-0001")
    token = csrf_of(client, "/navigator")
    response = client.post(
        "/api/followup/outcome",
        json={"case_id": "k1", "outcome": "declined"},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 202
    assert response.json()["warning"] == (
        "Case k1 is already closed (last outcome: reached): Care Navigation will refuse a "
        "further outcome (case_closed). It was sent, and the dead letter keeps it for the record."
    )
    assert [e[1] for e in sent.events] == ["k1"]


def test_the_analyst_page_links_to_the_configured_reports_and_metrics(
    console: Console,
) -> None:
    console.settings = ConsoleSettings(
        links={"grafana_url": "https://grafana.example.org/d/heart"}  # type: ignore[arg-type]
    )
    with TestClient(create_app(console), base_url="http://127.0.0.1") as client:
        sign_in(client, "ana-0001")
        view = client.get("/api/view").json()
    assert view["links"] == {
        "reports_url": None,
        "grafana_url": "https://grafana.example.org/d/heart",
        "prometheus_url": None,
    }
