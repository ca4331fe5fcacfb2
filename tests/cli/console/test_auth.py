"""Who may sign in to the console and how: users written by `heart console add-user`,
single sign-on through a trusted reverse proxy, sessions shared by replicas with one secret,
and the protections (secure cookies, CSRF on every action, sign-in limits, loopback by
default)."""

from __future__ import annotations

import io
import ipaddress
import logging
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from heart.cli.console import users as users_module
from heart.cli.console.app import Console, create_app
from heart.cli.console.board import Board
from heart.cli.console.console_settings import ConsoleSettings
from heart.cli.console.server import SECRET_ENV, SecretError, session_secret
from heart.cli.console.users import (
    ProxySignOn,
    SignOnError,
    UsersFile,
    load_users,
    verify_password,
)
from heart.cli.main import build_parser, main
from heart.policy import load_policy
from heart.streams.topics import TopicSpec
from tests.cli.console.events import at, decision, dispatch, scheduled

PASSWORDS = {
    "sup-0001": "demo-supervisor",
    "clin-0001": "demo-clinician",
    "nav-0001": "demo-navigator",
    "ana-0001": "demo-analyst",
    "team-crt-1": "demo-crt-1",
}
PROXY = "10.0.0.5"
SECRET = "s" * 40


class Sent:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, BaseModel, str]] = []

    async def __call__(self, spec: TopicSpec, key: str, event: BaseModel, actor: str) -> None:
        self.events.append((spec.name, key, event, actor))


def make_console(sent: Sent, users: UsersFile | None = None, **options: Any) -> Console:
    board = Board(unable_to_reach_retries=3)
    board.add_roster_teams(["CRT-1", "CRT-2"])
    for event in [
        decision("c1"),
        dispatch("assigned", "c1", 1, "CRT-1", call_type="WELFARE CHECK"),
        scheduled("k1"),
    ]:
        board.apply(event)
    return Console(
        board=board,
        policy=load_policy(),
        settings=ConsoleSettings(),
        users=users or load_users(),
        send=sent,
        clock=lambda: at(5),
        **options,
    )


@pytest.fixture
def sent() -> Sent:
    return Sent()


def client_of(
    console: Console, address: str = "127.0.0.1", base_url: str = "http://127.0.0.1"
) -> TestClient:
    return TestClient(create_app(console), base_url=base_url, client=(address, 50000))


def sign_in(client: TestClient, user: str, password: str | None = None, **headers: str) -> Any:
    page = client.get("/signin", headers=headers)
    csrf = re.search(r"name='csrf' value='([^']+)'", page.text)
    assert csrf is not None
    return client.post(
        "/signin",
        data={"user": user, "password": password or PASSWORDS[user], "csrf": csrf.group(1)},
        headers=headers,
        follow_redirects=False,
    )


def csrf_of(client: TestClient, path: str, **headers: str) -> str:
    token = re.search(r"data-csrf='([^']+)'", client.get(path, headers=headers).text)
    assert token is not None
    return token.group(1)


# --- heart console add-user ----------------------------------------------------------------


def add_user(
    monkeypatch: pytest.MonkeyPatch, file: Path, *options: str, password: str = "long-password-1"
) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main(["console", "add-user", "--users", str(file), *options])


def test_add_user_makes_a_private_users_file_with_an_argon2id_hash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = tmp_path / "users.toml"
    options = ["--id", "team-crt-7", "--name", 'Crew "7"', "--role", "team", "--team", "CRT-1"]
    status = add_user(monkeypatch, file, *options)
    assert status == 0
    assert "added user team-crt-7 (team, team CRT-1; password)" in capsys.readouterr().out
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    (user,) = load_users(file).users
    assert (user.id, user.name, user.role, user.team_id) == (
        "team-crt-7",
        'Crew "7"',
        "team",
        "CRT-1",
    )
    assert user.password is not None and user.password.startswith("$argon2id$")
    assert verify_password("long-password-1", user.password)
    assert "long-password-1" not in file.read_text()


def test_add_user_replaces_the_user_with_its_id_and_keeps_the_others_and_the_header(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    file = tmp_path / "users.toml"
    file.write_text("# the city's console users\n")
    file.chmod(0o640)
    assert (
        add_user(monkeypatch, file, "--id", "sup-0042", "--name", "S", "--role", "supervisor") == 0
    )
    assert (
        add_user(monkeypatch, file, "--id", "nav-0042", "--name", "N", "--role", "navigator") == 0
    )
    again = ["--id", "sup-0042", "--name", "S2", "--role", "analyst"]
    assert add_user(monkeypatch, file, *again, password="a-new-password") == 0
    users = load_users(file).users
    assert [(u.id, u.name, u.role) for u in users] == [
        ("sup-0042", "S2", "analyst"),
        ("nav-0042", "N", "navigator"),
    ]
    assert verify_password("a-new-password", users[0].password)
    assert not verify_password("long-password-1", users[0].password)
    assert file.read_text().startswith("# the city's console users\n")
    assert stat.S_IMODE(file.stat().st_mode) == 0o640


def test_add_user_without_a_password_makes_a_single_sign_on_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = tmp_path / "users.toml"
    options = ["--id", "ana-0042", "--name", "A", "--role", "analyst", "--no-password"]
    status = add_user(monkeypatch, file, *options, password="")
    assert status == 0
    assert "single sign-on only, no password" in capsys.readouterr().out
    assert load_users(file).users[0].password is None
    assert "password" not in file.read_text().split("[[users]]", 1)[1]


@pytest.mark.parametrize(
    ("options", "password", "problem"),
    [
        (
            ["--id", "bob", "--role", "navigator"],
            "long-password-1",
            "--id: 'bob' is not an opaque id",
        ),
        (["--id", "n-1", "--role", "pilot"], "long-password-1", "--role: "),
        (["--id", "t-1", "--role", "team"], "long-password-1", "--team: a team user needs"),
        (
            ["--id", "n-1", "--role", "navigator", "--team", "CRT-1"],
            "long-password-1",
            "--team: only team users have a team_id (role is navigator)",
        ),
        (["--id", "n-1", "--role", "navigator"], "short", "at least 10 characters"),
    ],
)
def test_add_user_names_the_bad_option_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    options: list[str],
    password: str,
    problem: str,
) -> None:
    file = tmp_path / "users.toml"
    assert add_user(monkeypatch, file, "--name", "X", *options, password=password) == 2
    err = capsys.readouterr().err
    assert err.startswith("heart console add-user: ") and problem in err
    assert "Traceback" not in err
    assert not file.exists()


def test_add_user_leaves_a_broken_users_file_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = tmp_path / "users.toml"
    broken = '[[users]]\nid = "n-1"\nname = "N"\nrole = "navigator"\npassword = "hunter2"\n'
    file.write_text(broken)
    assert add_user(monkeypatch, file, "--id", "n-2", "--name", "M", "--role", "navigator") == 2
    assert "users[0].password: not an argon2id password hash" in capsys.readouterr().err
    assert file.read_text() == broken


def test_add_user_on_a_terminal_asks_twice_without_echo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["first-password-1", "other-password-2"])
    monkeypatch.setattr(users_module.getpass, "getpass", lambda prompt, stream: next(answers))
    monkeypatch.setattr("sys.stdin", Terminal())
    file = tmp_path / "users.toml"
    options = ["--users", str(file), "--id", "n-1", "--name", "N", "--role", "navigator"]
    assert main(["console", "add-user", *options]) == 2
    assert "the two passwords differ; nothing was written" in capsys.readouterr().err
    assert not file.exists()


def test_hash_password_is_gone_in_favour_of_add_user(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["console", "--hash-password"])
    assert caught.value.code == 2


# --- single sign-on through a trusted reverse proxy -----------------------------------------


def sso_console(sent: Sent, users: UsersFile | None = None) -> Console:
    proxy = ProxySignOn((ipaddress.ip_network(PROXY),), "X-Remote-User")
    return make_console(sent, users, proxy=proxy, secret_key=SECRET)


def test_the_trusted_proxys_header_signs_the_user_in_with_the_users_files_role_and_team(
    sent: Sent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "heart.console")
    with client_of(sso_console(sent), PROXY) as client:
        as_team = {"X-Remote-User": "team-crt-1"}
        view = client.get("/api/view", headers=as_team).json()
        assert (view["page"], view["team_id"]) == ("team", "CRT-1")
        assert (
            client.get("/signin", headers=as_team, follow_redirects=False).headers["location"]
            == "/team"
        )
        # The role and team come from the users file: still only its own team.
        assert client.get("/api/team/CRT-2", headers=as_team).status_code == 403
        assert client.get("/api/view?page=board", headers=as_team).status_code == 403
        token = csrf_of(client, "/team", **as_team)
        done = client.post(
            "/api/team/status",
            json={"action": "en_route"},
            headers={**as_team, "X-CSRF-Token": token},
        )
        assert done.status_code == 202
        assert [(topic, key, actor) for topic, key, _, actor in sent.events] == [
            ("units.status", "CRT-1", "team-crt-1")
        ]
        # Another person behind the same proxy in the same browser gets their own view and
        # a new form token: the old one no longer works.
        as_navigator = {"X-Remote-User": "nav-0001"}
        assert client.get("/api/view", headers=as_navigator).json()["page"] == "navigator"
        stale = client.post(
            "/api/followup/outcome",
            json={"case_id": "k1", "outcome": "reached"},
            headers={**as_navigator, "X-CSRF-Token": token},
        )
        assert stale.status_code == 403
    signins = [r.getMessage() for r in caplog.records if "sign-in" in r.getMessage()]
    assert signins == [
        "console sign-in by team-crt-1 (team) through the proxy",
        "console sign-in by nav-0001 (navigator) through the proxy",
    ]


@pytest.mark.parametrize("address", ["10.0.0.6", "127.0.0.1", "testclient"])
def test_the_header_from_any_other_address_is_ignored(sent: Sent, address: str) -> None:
    with client_of(sso_console(sent), address) as client:
        spoofed = {"X-Remote-User": "sup-0001", "X-Forwarded-For": PROXY}
        assert client.get("/api/view", headers=spoofed).status_code == 401
        assert (
            client.get("/board", headers=spoofed, follow_redirects=False).headers["location"]
            == "/signin"
        )
        # Password sign-in still works from there.
        assert sign_in(client, "sup-0001").headers["location"] == "/board"


def test_without_the_header_option_a_trusted_proxy_signs_nobody_in(sent: Sent) -> None:
    console = make_console(sent, proxy=ProxySignOn((ipaddress.ip_network("10.0.0.0/24"),)))
    with client_of(console, PROXY) as client:
        assert client.get("/api/view", headers={"X-Remote-User": "sup-0001"}).status_code == 401


def test_a_proxy_user_missing_from_the_users_file_is_refused_and_not_logged(
    sent: Sent, caplog: pytest.LogCaptureFixture
) -> None:
    with client_of(sso_console(sent), PROXY) as client:
        refused = client.get("/api/view", headers={"X-Remote-User": "someone@example.org"})
    assert refused.status_code == 403
    assert "users file does not" in refused.json()["error"]
    assert "someone@example.org" not in caplog.text
    assert "not in the users file" in caplog.text


def test_a_single_sign_on_only_user_cannot_sign_in_with_a_password(sent: Sent) -> None:
    users = UsersFile.model_validate(
        {"users": [{"id": "ana-0042", "name": "A", "role": "analyst"}]}
    )
    with client_of(sso_console(sent, users), PROXY) as client:
        assert sign_in(client, "ana-0042", "no user has this password").status_code == 401
        view = client.get("/api/view", headers={"X-Remote-User": "ana-0042"})
        assert view.json()["page"] == "analyst"


def test_ipv4_mapped_addresses_and_networks_are_matched() -> None:
    proxy = ProxySignOn((ipaddress.ip_network("10.0.0.0/24"),), "X-Remote-User")
    assert proxy.trusts("::ffff:10.0.0.77") and proxy.trusts("10.0.0.1")
    assert not proxy.trusts("10.0.1.1") and not proxy.trusts(None) and not proxy.trusts("x")
    assert proxy.signed_in_as("10.0.0.1", {"X-Remote-User": "  sup-0001 "}) == "sup-0001"
    assert proxy.signed_in_as("10.0.0.1", {"X-Remote-User": " "}) is None


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--trust-proxy-header", "X-Remote-User"], "--trust-proxy-header needs --trusted-proxy"),
        (
            ["--trusted-proxy", PROXY, "--trust-proxy-header", "X Remote"],
            "--trust-proxy-header: 'X Remote' is not a header name",
        ),
        (["--trusted-proxy", "proxy.city"], "argument --trusted-proxy: 'proxy.city' is not an IP"),
    ],
)
def test_unusable_proxy_options_are_named(
    capsys: pytest.CaptureFixture[str], options: list[str], problem: str
) -> None:
    try:
        status = main(["console", *options])
    except SystemExit as exc:  # argparse's own refusal of a bad value
        status = int(exc.code or 0)
    err = capsys.readouterr().err
    assert status == 2 and problem in err and "Traceback" not in err
    with pytest.raises(SignOnError):
        ProxySignOn(user_header="X-Remote-User")


# --- sessions across replicas ---------------------------------------------------------------


def test_a_session_made_on_one_replica_is_accepted_by_another_with_the_same_secret(
    sent: Sent,
) -> None:
    first = client_of(make_console(sent, secret_key=SECRET))
    second = client_of(make_console(sent, secret_key=SECRET))
    other = client_of(make_console(sent, secret_key="o" * 40))
    with first, second, other:
        assert sign_in(first, "team-crt-1").status_code == 303
        token = csrf_of(first, "/team")
        cookie = first.cookies["heart_console"]
        second.cookies.set("heart_console", cookie)
        other.cookies.set("heart_console", cookie)
        assert second.get("/api/view").json()["team_id"] == "CRT-1"
        # The form token travels in the session too: an action starts on either replica.
        acted = second.post(
            "/api/team/status", json={"action": "on_scene"}, headers={"X-CSRF-Token": token}
        )
        assert acted.status_code == 202 and sent.events[-1][3] == "team-crt-1"
        assert other.get("/api/view").status_code == 401
        assert (
            other.post(
                "/api/team/status", json={"action": "on_scene"}, headers={"X-CSRF-Token": token}
            ).status_code
            == 401
        )
    assert len(sent.events) == 1


def test_the_session_secret_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert session_secret(None, {SECRET_ENV: f"  {SECRET}\n"}) == SECRET
    file = tmp_path / "secret"
    file.write_text(SECRET + "\n")
    assert session_secret(file, {}) == SECRET
    with pytest.raises(SecretError, match="HEART_CONSOLE_SECRET or --secret-file, not both"):
        session_secret(file, {SECRET_ENV: SECRET})
    with pytest.raises(SecretError, match=r"HEART_CONSOLE_SECRET: .* has 5 characters; .* 32"):
        session_secret(None, {SECRET_ENV: "short"})
    with pytest.raises(SecretError, match=r"--secret-file .*missing: cannot read it"):
        session_secret(tmp_path / "missing", {})


def test_without_a_secret_each_process_makes_its_own_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "heart.console")
    first, second = session_secret(None, {}), session_secret(None, {})
    assert first != second and len(first) >= 32
    assert "no HEART_CONSOLE_SECRET or --secret-file" in caplog.text
    assert "a restart signs everyone out and another replica does not accept them" in caplog.text


def test_an_unusable_secret_stops_the_console_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SECRET_ENV, "too-short")
    assert main(["console", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "heart console: HEART_CONSOLE_SECRET: the session secret has 9 characters" in err
    assert "openssl rand -base64 32" in err and "Traceback" not in err


# --- protection -----------------------------------------------------------------------------


@pytest.mark.parametrize("secure", [True, False])
def test_session_cookies_are_http_only_strict_and_secure_when_asked(
    sent: Sent, secure: bool
) -> None:
    # Behind the TLS proxy the console is reached over HTTPS; a browser would not send a
    # Secure cookie back over plain HTTP.
    base_url = "https://console.city" if secure else "http://127.0.0.1"
    with client_of(make_console(sent, secure_cookies=secure), base_url=base_url) as client:
        cookie = sign_in(client, "sup-0001").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert ("; secure" in cookie) is secure


def test_a_secure_cookie_is_not_sent_back_over_plain_http(sent: Sent) -> None:
    with client_of(make_console(sent, secure_cookies=True)) as client:
        assert sign_in(client, "sup-0001").status_code == 403  # no session, no form token


#: A value for each path parameter of an action route, so that the route reaches its checks.
PATH_EXAMPLES = {"step": "engage"}
CSRF_REFUSAL = "The form is out of date"


def test_every_action_refuses_a_request_without_the_forms_token(sent: Sent) -> None:
    """Every route that changes something, present and future, for every role: no token or a
    wrong one is refused and sends nothing; and some role reaches the token check."""
    console = make_console(sent)
    app = create_app(console)
    unsafe = [
        (route.path, method)
        for route in app.routes
        for method in sorted(getattr(route, "methods", None) or ())
        if method not in ("GET", "HEAD", "OPTIONS")
    ]
    assert {"/signin", "/signout", "/api/team/status", "/api/followup/outcome"} <= {
        path for path, _ in unsafe
    }
    clients = {}
    for user in PASSWORDS:
        client = TestClient(app, base_url="http://127.0.0.1", client=(f"10.1.0.{len(clients)}", 1))
        assert sign_in(client, user).status_code == 303
        clients[user] = client
    for path, method in unsafe:
        url = re.sub(r"\{(\w+)\}", lambda m: PATH_EXAMPLES[m.group(1)], path)
        refusals = []
        for user, client in clients.items():
            for headers in ({}, {"X-CSRF-Token": "forged"}):
                response = client.request(
                    method, url, json={"case_id": "k1", "outcome": "reached"}, headers=headers
                )
                assert response.status_code >= 400, (method, path, user, response.text)
                refusals.append(response.text)
        assert any(CSRF_REFUSAL in text for text in refusals), (method, path, refusals)
    assert sent.events == []


def test_sign_in_limits_count_the_address_the_trusted_proxy_forwards(sent: Sent) -> None:
    console = make_console(sent, proxy=ProxySignOn((ipaddress.ip_network(PROXY),)))
    with client_of(console, PROXY) as client:
        attacker = {"X-Forwarded-For": "203.0.113.9"}
        for n in range(5):
            assert sign_in(client, f"nobody-{n}", "wrong-password", **attacker).status_code == 401
        assert sign_in(client, "sup-0001", **attacker).status_code == 429
        # Someone else behind the same proxy is not blocked by that address's failures; a
        # client-supplied entry before the proxy's own is not believed.
        colleague = {"X-Forwarded-For": "203.0.113.9, 198.51.100.4"}
        assert sign_in(client, "sup-0001", **colleague).status_code == 303


def test_forwarded_addresses_from_an_untrusted_peer_do_not_dodge_the_limit(sent: Sent) -> None:
    console = make_console(sent, proxy=ProxySignOn((ipaddress.ip_network(PROXY),)))
    with client_of(console, "192.0.2.1") as client:
        for n in range(5):
            forged = {"X-Forwarded-For": f"198.51.100.{n}"}
            assert sign_in(client, f"nobody-{n}", "wrong-password", **forged).status_code == 401
        assert (
            sign_in(client, "sup-0001", **{"X-Forwarded-For": "198.51.100.99"}).status_code == 429
        )


def test_one_user_id_is_limited_whatever_address_it_is_tried_from(sent: Sent) -> None:
    console = make_console(sent)
    app = create_app(console)
    for n in range(5):
        with TestClient(app, base_url="http://127.0.0.1", client=(f"192.0.2.{n}", 1)) as client:
            assert sign_in(client, "sup-0001", "wrong-password").status_code == 401
    with TestClient(app, base_url="http://127.0.0.1", client=("192.0.2.99", 1)) as client:
        assert sign_in(client, "sup-0001").status_code == 429
        assert sign_in(client, "nav-0001").status_code == 303


def test_the_console_listens_on_loopback_unless_told_otherwise() -> None:
    assert build_parser().parse_args(["console"]).host == "127.0.0.1"
    assert build_parser().parse_args(["console", "--host", "0.0.0.0"]).host == "0.0.0.0"


@pytest.fixture(autouse=True)
def _no_running_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """`heart console` run through main() must not pick up a `heart up` on this machine."""
    monkeypatch.setenv("HEART_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv(SECRET_ENV, raising=False)
    yield
