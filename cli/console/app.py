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
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import StreamingResponse

from heart.cli.console import clinician, pages, stale
from heart.cli.console.board import Board, TeamRow
from heart.cli.console.console_settings import ConsoleSettings
from heart.cli.console.feed import (
    CATCH_UP_WAIT_S,
    STREAM_RETRY_MS,
    Feed,
    Sender,
    SendError,
    UpdateId,
    offsets_of,
)
from heart.cli.console.users import ProxySignOn, User, UsersFile, verify_password
from heart.cli.console.views import (
    TEAM_ACTIONS,
    analyst_view,
    clinician_view,
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
    "clinician": "/clinician",
    "team": "/team",
    "navigator": "/navigator",
    "analyst": "/analyst",
}
#: Failed sign-ins allowed per client address and per user id in the window.
SIGNIN_FAILURES = 5
SIGNIN_WINDOW_S = 300.0
#: Above this many keys with failures, each failure first drops the expired ones.
SIGNIN_KEYS_SWEPT_ABOVE = 10_000
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
    #: Signs the session cookie: replicas that share it accept each other's sessions.
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    secure_cookies: bool = False
    #: Trusted reverse proxies: the client address they forward, and single sign-on.
    proxy: ProxySignOn = field(default_factory=ProxySignOn)
    #: Team id -> its kind (crt or cor) from the roster: who a team's consult is from.
    team_kinds: dict[str, str] = field(default_factory=dict)
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
    def update_id(self) -> UpdateId:
        """The id of what the board shows now: the Kafka positions it reflects and the
        clock's step, the same on every replica that has read as far."""
        offsets = self.feed.offsets() if self.feed is not None else offsets_of({}, "")
        step = int(self.clock().timestamp() // self.settings.clock_interval_s)
        return UpdateId(offsets, step)


class _SigninLimiter:
    """Failed sign-ins per key (client address, user id) in the last window. Keys whose
    window emptied are dropped, so that guessing many ids does not grow it for good."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _window(self, key: str, now: float) -> int:
        window = self._failures.get(key)
        if window is None:
            return 0
        while window and now - window[0] > SIGNIN_WINDOW_S:
            window.popleft()
        if not window:
            del self._failures[key]
        return len(window)

    def blocked(self, *keys: str) -> bool:
        now = time.monotonic()
        return any(self._window(key, now) >= SIGNIN_FAILURES for key in keys)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        if len(self._failures) > SIGNIN_KEYS_SWEPT_ABOVE:
            for key in list(self._failures):
                self._window(key, now)
        for key in keys:
            self._failures[key].append(now)


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
    #: What the board's and the team page's "Ask a clinician" offers.
    consult_config = {"urgencies": list(clinician.URGENCIES)}
    limiter = _SigninLimiter()

    def current_user(request: Request) -> User | None:
        peer = request.client.host if request.client else None
        vouched = console.proxy.signed_in_as(peer, request.headers)
        if vouched is not None:
            return proxy_user(request, vouched)
        user_id = request.session.get("user")
        return users.get(user_id) if isinstance(user_id, str) else None

    def proxy_user(request: Request, user_id: str) -> User:
        """The user a trusted proxy vouches for: still one of the users file, which holds
        the role and the team. The session keeps only the CSRF token and whom it was made
        for, so that the sign-in is logged once and a new user gets a new token."""
        user = users.get(user_id)
        if user is None:
            log.warning("console single sign-on refused: the proxy's user is not in the users file")
            raise Refused(
                403,
                "Single sign-on knows you, but this console's users file does not: ask for "
                "your id to be added with `heart console add-user`.",
            )
        if request.session.get("proxy_user") != user.id:
            request.session.clear()
            request.session["proxy_user"] = user.id
            log.info("console sign-in by %s (%s) through the proxy", user.id, user.role)
        return user

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
    async def signin_page(request: Request) -> Response:
        peer = request.client.host if request.client else None
        if console.proxy.signed_in_as(peer, request.headers) is not None:
            # Signed in through single sign-on: there is no password to give here.
            return RedirectResponse(HOME[require(request).role], status_code=303)
        return HTMLResponse(pages.signin(csrf_token(request)))

    @app.post("/signin")
    async def signin(request: Request) -> Response:
        form = _form(await request.body())
        check_csrf(request, form.get("csrf"))
        user_id, password = form.get("user", "").strip(), form.get("password", "")
        client = console.proxy.client_address(
            request.client.host if request.client else None, request.headers.get("x-forwarded-for")
        )
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
        # verify_password hashes even for an unknown id, so that the answer's time does not
        # tell ids apart; in a thread, since argon2 takes a tenth of a second of CPU that
        # would otherwise stall every live stream.
        known = await run_in_threadpool(verify_password, password, user.password if user else None)
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
        return HTMLResponse(pages.page("board", user, csrf_token(request), config=consult_config))

    @app.get("/team", response_class=HTMLResponse)
    async def team_page(request: Request) -> HTMLResponse:
        user = require(request, "team")
        return HTMLResponse(
            pages.page("team", user, csrf_token(request), TEAM_ACTIONS, consult_config)
        )

    @app.get("/clinician", response_class=HTMLResponse)
    async def clinician_page(request: Request) -> HTMLResponse:
        user = require(request, "clinician")
        config = clinician.form_config(console.policy)
        return HTMLResponse(pages.page("clinician", user, csrf_token(request), config=config))

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
        elif page == "clinician":
            data = clinician_view(console.board, now, console.policy, console.settings, user.id)
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
    async def api_stream(
        request: Request, page: str | None = None, since: str | None = None
    ) -> StreamingResponse:
        user = require(request)
        page = _allowed_page(user, page)
        # The last update the browser has: its EventSource sends the id back when it
        # reconnects, and the page passes it as ``since`` when it opens a new stream.
        shown = UpdateId.parse(request.headers.get("last-event-id") or since)

        async def events() -> AsyncIterator[bytes]:
            # Every update is the whole view of its page, so the current view is exactly
            # what a reconnecting browser missed.
            yield b"retry: " + str(STREAM_RETRY_MS).encode() + b"\n\n"
            if shown is not None:
                # A console behind what the browser shows (another replica, or itself
                # restarted) first reads as far, so that the page never steps back.
                until = time.monotonic() + CATCH_UP_WAIT_S
                while not console.stopping and not console.update_id.covers(shown):
                    if time.monotonic() >= until or await request.is_disconnected():
                        break
                    await console.wait_change(until - time.monotonic())
            if shown is not None and console.update_id == shown:
                # It shows the current view already: nothing is resent until the next
                # change, only the feed's state, which the lost connection dimmed.
                yield b"event: feed\ndata: " + console.feed_state.encode() + b"\n\n"
                await console.wait_change(15.0)
            last: bytes | None = None
            last_id = shown
            while not console.stopping and not await request.is_disconnected():
                update = console.update_id
                body = orjson.dumps(view_for(user, page))
                id_line = b"id: " + update.encode().encode("ascii") + b"\n"
                if body != last:
                    yield id_line + b"data: " + body + b"\n\n"
                elif update != last_id:
                    # Records this page does not show: the browser's id moves on (an event
                    # with no data sets it without an update).
                    yield id_line + b"\n"
                else:
                    yield b": keep-alive\n\n"
                last, last_id = body, update
                await console.wait_change(15.0)

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
        body = await _json(request)
        action = body.get("action")
        choices = {name: (status, label) for name, status, label in TEAM_ACTIONS}
        if action not in choices:
            raise Refused(422, f"action: use one of {', '.join(choices)}")
        team = console.board.teams.get(user.team_id) or TeamRow(user.team_id)
        status, label = choices[action]
        if action == "backup":
            status = team.status
        # The call the team's page showed when the button was pressed, if it showed one:
        # a report for a call taken away meanwhile names that call, so that dispatch
        # refuses it rather than applying it to whatever the team holds now.
        shown = body.get("call_id")
        if shown is not None and not isinstance(shown, str):
            raise Refused(422, "call_id: the call the page shows, or nothing")
        # Sent all the same when stale: the dispatch stage refuses it and its dead letter
        # keeps what the team pressed, for the audit trail.
        warning = stale.team_action(team, action, status, label, shown)
        try:
            report = UnitStatusReport(
                team_id=user.team_id,
                status=status,
                call_id=shown if shown is not None else team.call_id,
                backup_requested=action == "backup",
                followup_declined=action == "cleared_declined",
                actor_id=user.id,
                occurred_at=console.clock(),
            )
        except ValidationError as exc:
            raise Refused(422, describe_validation_error(exc)) from None
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
                occurred_at=console.clock(),
            )
        except ValidationError as exc:
            raise Refused(422, describe_validation_error(exc)) from None
        warning = stale.outcome(task, outcome.case_id)
        await _send(FOLLOWUP_OUTCOMES, outcome.case_id, outcome, user)
        return JSONResponse(
            {"sent": outcome.event_type, "event_id": outcome.event_id}
            | ({"warning": warning} if warning else {}),
            status_code=202,
        )

    # --- clinicians' work and consults (events on ccd.assessments and ccd.consults) ----

    async def act(request: Request, roles: tuple[str, ...], build: Any) -> JSONResponse:
        """Check the user and the form's token, build the event from the posted form, send
        it. A form problem names its field (422) and sends nothing."""
        user = require(request, *roles)
        check_csrf(request, request.headers.get("x-csrf-token"))
        body = await _json(request)
        try:
            action: clinician.Action = build(body, user, console.clock())
        except clinician.FormProblem as exc:
            return JSONResponse({"error": exc.message, "field": exc.field}, status_code=422)
        await _send(action.topic, action.key, action.event, user)
        return JSONResponse(
            {"sent": action.event.event_type, "key": action.key, "event_id": action.event.event_id}
            | ({"warning": action.warning} if action.warning else {}),
            status_code=202,
        )

    assessments = {
        "engage": clinician.engage,
        "screened": clinician.screened,
        "safety_plan": clinician.safety_plan,
        "disposition": clinician.disposition,
    }

    @app.post("/api/ccd/{step}")
    async def ccd_assessment(request: Request, step: str) -> JSONResponse:
        board, resources = console.board, console.policy.ccd_work.referral_resources
        if step == "referral":
            return await act(
                request,
                ("clinician",),
                lambda body, user, now: clinician.referral(body, user.id, board, now, resources),
            )
        if step not in assessments:
            raise Refused(404, f"no such clinician action: {step}")
        build = assessments[step]
        return await act(
            request, ("clinician",), lambda body, user, now: build(body, user.id, board, now)
        )

    @app.post("/api/consult/answer")
    async def consult_answer(request: Request) -> JSONResponse:
        return await act(
            request,
            ("clinician",),
            lambda body, user, now: clinician.answer(body, user.id, console.board, now),
        )

    @app.post("/api/consult/close")
    async def consult_close(request: Request) -> JSONResponse:
        return await act(
            request,
            ("clinician",),
            lambda body, user, now: clinician.close(body, user.id, console.board, now),
        )

    @app.post("/api/consult/request")
    async def consult_request(request: Request) -> JSONResponse:
        def build(body: dict[str, Any], user: User, now: datetime) -> clinician.Action:
            if user.role == "supervisor":
                return clinician.request(body, "dispatcher", console.board, now)
            assert user.team_id is not None
            kind = console.team_kinds.get(user.team_id)
            if kind not in ("crt", "cor"):
                raise Refused(
                    409,
                    f"This console does not know team {user.team_id}'s kind (crt or cor): "
                    "start it with the roster that lists the team.",
                )
            team = console.board.teams.get(user.team_id)
            return clinician.request(
                body,
                kind,  # type: ignore[arg-type]
                console.board,
                now,
                call_id=team.call_id if team else None,
                team_id=user.team_id,
            )

        return await act(request, ("supervisor", "team"), build)

    async def _send(spec: Any, key: str, event: Any, user: User) -> None:
        try:
            await console.send(spec, key, event, user.id)
        except SendError as exc:
            raise Refused(503, f"{exc}: the action was not recorded; try again.") from None
        log.info("console action %s by %s", event.event_type, user.id)

    return app


#: Pages a role may read besides its own.
OTHER_PAGES: dict[str, set[str]] = {"supervisor": {"analyst"}, "clinician": {"board"}}


def _page_of(user: User) -> str:
    return HOME[user.role].lstrip("/")


def _allowed_page(user: User, page: str | None) -> str:
    """The page whose data a user asks for; only pages of the user's own role."""
    own = _page_of(user)
    allowed = {own} | OTHER_PAGES.get(user.role, set())
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
