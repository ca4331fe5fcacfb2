"""The console's web application: sign-in, role-scoped pages and JSON, live updates, actions.

Every page, stream and action checks the signed-in user's role on the server; a team user's
team comes from the users file, never from the request. Actions are events on the existing
topics, validated by their schemas, with the actor's opaque id in a Kafka header
(:data:`heart.cli.console.feed.ACTOR_HEADER`). The board is the only state, and it is
built from the topics: an action shows on the pages when its event comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import StreamingResponse

from heart.cli.console import pages
from heart.cli.console.board import Board, TeamRow
from heart.cli.console.console_settings import ConsoleSettings
from heart.cli.console.feed import Feed, Sender, SendError
from heart.cli.console.users import User, UsersFile, verify_password
from heart.cli.console.views import (
    TEAM_ACTIONS,
    allowed_actions,
    analyst_view,
    navigator_view,
    supervisor_view,
    team_view,
)
from heart.policy.model import Policy
from heart.schemas.dispatch import UnitStatusReport
from heart.schemas.followup import FollowupOutcome
from heart.streams.codec import describe_validation_error
from heart.streams.topics import FOLLOWUP_OUTCOMES, UNITS_STATUS

log = logging.getLogger("heart.console")

STATIC = Path(__file__).with_name("static")
#: The page each role lands on after signing in.
HOME = {
    "supervisor": "/board",
    "clinician": "/board",
    "team": "/team",
    "navigator": "/navigator",
    "analyst": "/analyst",
}
#: Failed sign-ins allowed per client address and per user id in the window.
SIGNIN_FAILURES = 5
SIGNIN_WINDOW_S = 300.0
SESSION_HOURS = 12


@dataclass
class Console:
    """What the application serves from: the board and how to reach Kafka."""

    board: Board
    policy: Policy
    settings: ConsoleSettings
    users: UsersFile
    send: Sender
    #: The time the board is read at: the wall clock, or the newest event's time.
    clock: Callable[[], datetime]
    feed: Feed | None = None
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    secure_cookies: bool = False
    ticks: int = 0
    #: Set when the server shuts down: open streams end.
    stopping: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        """Wake every open stream: the board or the clock moved."""
        old, self._changed = self._changed, asyncio.Event()
        old.set()

    async def wait_change(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    @property
    def feed_state(self) -> str:
        return self.feed.state if self.feed is not None else "live"

    @property
    def update_id(self) -> str:
        """The update's id: how far the board has read the topics, and the clock's tick."""
        read = self.feed.position_total if self.feed is not None else self.board.applied
        return f"{read}.{self.ticks}"


class _SigninLimiter:
    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def blocked(self, *keys: str) -> bool:
        now = time.monotonic()
        for key in keys:
            window = self._failures[key]
            while window and now - window[0] > SIGNIN_WINDOW_S:
                window.popleft()
            if len(window) >= SIGNIN_FAILURES:
                return True
        return False

    def failed(self, *keys: str) -> None:
        for key in keys:
            self._failures[key].append(time.monotonic())


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(console: Console) -> FastAPI:
    app = FastAPI(title="HEART console", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        SessionMiddleware,
        secret_key=console.secret_key,
        session_cookie="heart_console",
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
        https_only=console.secure_cookies,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.console = console
    users = console.users.by_id()
    limiter = _SigninLimiter()

    def current_user(request: Request) -> User | None:
        user_id = request.session.get("user")
        return users.get(user_id) if isinstance(user_id, str) else None

    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(24)
            request.session["csrf"] = token
        return token

    def require(request: Request, *roles: str) -> User:
        user = current_user(request)
        if user is None:
            raise Refused(401, "Sign in first.")
        if roles and user.role not in roles:
            raise Refused(403, f"A {user.role} user may not open this.")
        return user

    def check_csrf(request: Request, sent: str | None) -> None:
        expected = request.session.get("csrf")
        if not isinstance(expected, str) or not sent or not secrets.compare_digest(sent, expected):
            raise Refused(403, "The form is out of date: reload the page and try again.")

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        wants_page = request.method == "GET" and not request.url.path.startswith("/api/")
        if wants_page and exc.status == 401:
            return RedirectResponse("/signin", status_code=303)
        if wants_page:
            return HTMLResponse(pages.refused(exc.message), status_code=exc.status)
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    # --- sign-in -------------------------------------------------------------------------

    @app.get("/signin", response_class=HTMLResponse)
    async def signin_page(request: Request) -> HTMLResponse:
        return HTMLResponse(pages.signin(csrf_token(request)))

    @app.post("/signin")
    async def signin(request: Request) -> Response:
        form = _form(await request.body())
        check_csrf(request, form.get("csrf"))
        user_id, password = form.get("user", "").strip(), form.get("password", "")
        client = request.client.host if request.client else "unknown"
        keys = (f"addr:{client}", f"user:{user_id}")
        if limiter.blocked(*keys):
            return HTMLResponse(
                pages.signin(
                    csrf_token(request),
                    "Too many failed sign-ins: wait five minutes, then try again.",
                    user_id,
                ),
                status_code=429,
            )
        user = users.get(user_id)
        # Hash even for an unknown id, so that the answer's time does not tell ids apart.
        known = verify_password(password, user.password if user else _DUMMY_HASH)
        if user is None or not known:
            limiter.failed(*keys)
            return HTMLResponse(
                pages.signin(csrf_token(request), "Unknown user id or wrong password.", user_id),
                status_code=401,
            )
        request.session.clear()
        request.session["user"] = user.id
        csrf_token(request)
        log.info("console sign-in by %s (%s)", user.id, user.role)
        return RedirectResponse(HOME[user.role], status_code=303)

    @app.post("/signout")
    async def signout(request: Request) -> Response:
        check_csrf(request, _form(await request.body()).get("csrf"))
        request.session.clear()
        return RedirectResponse("/signin", status_code=303)

    @app.get("/")
    async def home(request: Request) -> Response:
        user = require(request)
        return RedirectResponse(HOME[user.role], status_code=303)

    # --- pages ---------------------------------------------------------------------------

    @app.get("/board", response_class=HTMLResponse)
    async def board_page(request: Request) -> HTMLResponse:
        user = require(request, "supervisor", "clinician")
        return HTMLResponse(pages.page("board", user, csrf_token(request)))

    @app.get("/team", response_class=HTMLResponse)
    async def team_page(request: Request) -> HTMLResponse:
        user = require(request, "team")
        return HTMLResponse(pages.page("team", user, csrf_token(request), TEAM_ACTIONS))

    @app.get("/navigator", response_class=HTMLResponse)
    async def navigator_page(request: Request) -> HTMLResponse:
        user = require(request, "navigator")
        return HTMLResponse(pages.page("navigator", user, csrf_token(request)))

    @app.get("/analyst", response_class=HTMLResponse)
    async def analyst_page(request: Request) -> HTMLResponse:
        user = require(request, "analyst", "supervisor")
        return HTMLResponse(pages.page("analyst", user, csrf_token(request)))

    # --- data ----------------------------------------------------------------------------

    def view_for(user: User, page: str | None = None) -> dict[str, Any]:
        now = console.clock()
        page = page or _page_of(user)
        if page == "team":
            assert user.team_id is not None
            data = team_view(console.board, user.team_id, now)
        elif page == "navigator":
            data = navigator_view(console.board, now)
        elif page == "analyst":
            data = analyst_view(console.board, now, console.policy, console.settings)
        else:
            data = supervisor_view(console.board, now, console.policy, console.settings)
        return {"page": page, "feed": console.feed_state, **data}

    @app.get("/api/view")
    async def api_view(request: Request, page: str | None = None) -> JSONResponse:
        user = require(request)
        return JSONResponse(view_for(user, _allowed_page(user, page)))

    @app.get("/api/team/{team_id}")
    async def api_team(request: Request, team_id: str) -> JSONResponse:
        user = require(request, "supervisor", "team")
        if user.role == "team" and user.team_id != team_id:
            raise Refused(403, "A team sees only its own team's assignment.")
        return JSONResponse(team_view(console.board, team_id, console.clock()))

    @app.get("/api/stream")
    async def api_stream(request: Request, page: str | None = None) -> StreamingResponse:
        user = require(request)
        page = _allowed_page(user, page)

        async def events() -> AsyncIterator[bytes]:
            # A browser that reconnects gets the current view at once: every update is
            # the whole view of its page, so nothing it missed is lost.
            last: bytes | None = None
            while not console.stopping and not await request.is_disconnected():
                body = orjson.dumps(view_for(user, page))
                if body != last:
                    last = body
                    yield b"id: " + console.update_id.encode() + b"\ndata: " + body + b"\n\n"
                await console.wait_change(15.0)
                if body == last:
                    yield b": keep-alive\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # --- actions -------------------------------------------------------------------------

    @app.post("/api/team/status")
    async def team_status(request: Request) -> JSONResponse:
        user = require(request, "team")
        check_csrf(request, request.headers.get("x-csrf-token"))
        assert user.team_id is not None
        action = (await _json(request)).get("action")
        choices = {name: status for name, status, _ in TEAM_ACTIONS}
        if action not in choices:
            raise Refused(422, f"action: use one of {', '.join(choices)}")
        team = console.board.teams.get(user.team_id)
        status = choices[action]
        call_id = team.call_id if team else None
        if action == "backup":
            status = team.status if team else "available"
        warning = None
        if team is None or action not in allowed_actions(team):
            # Sent all the same: the dispatch stage refuses it and its dead letter keeps
            # what the team pressed, for the audit trail.
            warning = _stale_warning(team)
        report = UnitStatusReport(
            team_id=user.team_id,
            status=status,
            call_id=call_id,
            backup_requested=action == "backup",
            followup_declined=action == "cleared_declined",
            occurred_at=datetime.now(UTC),
        )
        await _send(UNITS_STATUS, user.team_id, report, user)
        return JSONResponse(
            {"sent": report.event_type, "status": status, "event_id": report.event_id}
            | ({"warning": warning} if warning else {}),
            status_code=202,
        )

    @app.post("/api/followup/outcome")
    async def followup_outcome(request: Request) -> JSONResponse:
        user = require(request, "navigator")
        check_csrf(request, request.headers.get("x-csrf-token"))
        body = await _json(request)
        case_id = body.get("case_id")
        task = console.board.tasks.get(case_id) if isinstance(case_id, str) else None
        try:
            outcome = FollowupOutcome(
                case_id=case_id,  # type: ignore[arg-type]
                outcome=body.get("outcome"),  # type: ignore[arg-type]
                care_kind=body.get("care_kind") or None,
                navigator_id=user.id,
                occurred_at=datetime.now(UTC),
            )
        except ValidationError as exc:
            raise Refused(422, describe_validation_error(exc)) from None
        warning = None
        if task is None or not task.open:
            warning = (
                "This case is not open on the board: Care Navigation will refuse the "
                "outcome, and its dead letter keeps it."
            )
        await _send(FOLLOWUP_OUTCOMES, outcome.case_id, outcome, user)
        return JSONResponse(
            {"sent": outcome.event_type, "event_id": outcome.event_id}
            | ({"warning": warning} if warning else {}),
            status_code=202,
        )

    async def _send(spec: Any, key: str, event: Any, user: User) -> None:
        try:
            await console.send(spec, key, event, user.id)
        except SendError as exc:
            raise Refused(503, f"{exc}: the action was not recorded; try again.") from None
        log.info("console action %s by %s", event.event_type, user.id)

    return app


_DUMMY_HASH = "scrypt$16384$8$1$" + "0" * 32 + "$" + "0" * 64


def _page_of(user: User) -> str:
    return HOME[user.role].lstrip("/")


def _allowed_page(user: User, page: str | None) -> str:
    """The page whose data a user asks for; only pages of the user's own role."""
    own = _page_of(user)
    allowed = {own} | ({"analyst"} if user.role == "supervisor" else set())
    if page is None:
        return own
    if page not in allowed:
        raise Refused(403, f"A {user.role} user may not read the {page} page.")
    return page


def _form(body: bytes) -> dict[str, str]:
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise Refused(400, "the request body is not JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "the request body must be a JSON object")
    return data


def _stale_warning(team: TeamRow | None) -> str:
    status = (team.status if team else "available").replace("_", " ")
    where = (
        f"{status}, on call {team.call_id}" if team and team.call_id else f"{status}, on no call"
    )
    return (
        f"Dispatch will refuse this: the board has this team {where}. "
        "The report was sent, and the dead letter keeps it for the record."
    )
