"""``heart console``: load its files, then serve the app with uvicorn beside the Kafka feed
and the clock that re-evaluates the alerts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import uvicorn

from heart.agents.dispatch.roster import RosterError, load_roster
from heart.cli.broker_reach import check_broker
from heart.cli.console.app import Console, create_app
from heart.cli.console.board import Board
from heart.cli.console.console_settings import ConsoleSettingsError, load_console_settings
from heart.cli.console.feed import Feed, KafkaSender
from heart.cli.console.users import (
    DEFAULT_USERS_PATH,
    Network,
    ProxySignOn,
    SignOnError,
    UsersFileError,
    load_users,
)
from heart.cli.progress import configure_logs
from heart.policy import PolicyError, load_policy
from heart.streams.settings import HeartSettings

log = logging.getLogger("heart.console")

#: What ended is kept this long, so that a late event for it is still recognised.
KEEP_ENDED = timedelta(hours=1)
#: The demo sign-in printed when the console runs with the shipped demo users.
DEMO_SIGNIN = "sign in as sup-0001 / demo-supervisor (more demo users in docs/console.md)"
#: The session-signing secret that replicas of one console share (or --secret-file).
SECRET_ENV = "HEART_CONSOLE_SECRET"
MIN_SECRET_CHARS = 32
MAKE_SECRET = "make one with `openssl rand -base64 32`"


class SecretError(ValueError):
    """The session secret given cannot be used; the message names where it came from."""


def session_secret(secret_file: Path | None, environ: Mapping[str, str] | None = None) -> str:
    """The key that signs session cookies: from ``--secret-file`` or ``HEART_CONSOLE_SECRET``,
    so that every replica (and this console after a restart) accepts the same sessions;
    without either, a random key for this process only, and a log line saying so."""
    env = os.environ if environ is None else environ
    given = env.get(SECRET_ENV)
    if secret_file is not None and given is not None:
        raise SecretError(f"give the session secret once: {SECRET_ENV} or --secret-file, not both")
    if secret_file is not None:
        where = f"--secret-file {secret_file}"
        try:
            given = secret_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise SecretError(f"{where}: cannot read it: {reason}") from None
    else:
        where = SECRET_ENV
    if given is None:
        log.warning(
            "no %s or --secret-file: sessions are signed with a random key made now, so a "
            "restart signs everyone out and another replica does not accept them",
            SECRET_ENV,
        )
        return secrets.token_urlsafe(32)
    secret = given.strip()
    if len(secret) < MIN_SECRET_CHARS:
        raise SecretError(
            f"{where}: the session secret has {len(secret)} characters; it needs at least "
            f"{MIN_SECRET_CHARS} ({MAKE_SECRET})"
        )
    return secret


def build_console(
    settings: HeartSettings,
    *,
    users_path: Path | None,
    settings_path: Path | None,
    secure_cookies: bool = False,
    secret_key: str | None = None,
    proxy: ProxySignOn | None = None,
) -> Console:
    """Everything the app serves from; raises the files' own errors, which name the file
    and the field."""
    policy = load_policy(settings.policy)
    roster = load_roster(settings.roster)
    console_settings = load_console_settings(settings_path)
    users = load_users(users_path)
    board = Board(
        unable_to_reach_retries=policy.pilots.cn.unable_to_reach_retries,
        recent_items=console_settings.board.recent_items,
    )
    board.add_roster_teams(team.id for team in roster.teams)

    def clock() -> datetime:
        wall = datetime.now(UTC)
        if settings.clock == "event" and board.newest_event_at is not None:
            return board.newest_event_at
        return wall

    console = Console(
        board=board,
        policy=policy,
        settings=console_settings,
        users=users,
        send=KafkaSender(settings),
        clock=clock,
        secure_cookies=secure_cookies,
        proxy=proxy or ProxySignOn(),
    )
    if secret_key is not None:
        console.secret_key = secret_key
    console.feed = Feed(settings, board.apply, console.notify)
    return console


class _Server(uvicorn.Server):
    """uvicorn's server, with the console's own signal handling: on SIGINT or SIGTERM the
    open live streams end first, so that shutdown does not wait out their connections,
    and the process exits 0 rather than re-raising the signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(console: Console, host: str, port: int, *, ready: TextIO | None = None) -> None:
    app = create_app(console)
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            # X-Forwarded-For is read by the app, from --trusted-proxy addresses only:
            # uvicorn would trust it from 127.0.0.1 and put the forwarded address where
            # the app checks the connection's own one.
            proxy_headers=False,
            timeout_graceful_shutdown=2,
        )
    )
    stop = asyncio.Event()

    def shut_down() -> None:
        console.stopping = True
        console.notify()
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shut_down)

    async def tick() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), console.settings.clock_interval_s)
            console.board.prune(console.clock(), KEEP_ENDED)
            console.ticks += 1
            console.notify()

    assert console.feed is not None
    tasks = [asyncio.create_task(console.feed.run(stop)), asyncio.create_task(tick())]
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started and ready is not None:
        print(f"HEART console on http://{host}:{port}", file=ready, flush=True)
    try:
        await serving
    finally:
        stop.set()
        console.stopping = True
        console.notify()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        send_close = getattr(console.send, "close", None)
        if send_close is not None:
            await send_close()


def run_console(
    settings: HeartSettings,
    *,
    host: str,
    port: int,
    users_path: Path | None,
    settings_path: Path | None,
    secure_cookies: bool,
    secret_file: Path | None = None,
    trusted_proxies: Sequence[Network] = (),
    proxy_user_header: str | None = None,
) -> int:
    try:
        proxy = ProxySignOn(tuple(trusted_proxies), proxy_user_header)
        console = build_console(
            settings,
            users_path=users_path,
            settings_path=settings_path,
            secure_cookies=secure_cookies,
            secret_key=session_secret(secret_file),
            proxy=proxy,
        )
    except (
        PolicyError,
        RosterError,
        ConsoleSettingsError,
        UsersFileError,
        SecretError,
        SignOnError,
    ) as exc:
        print(f"heart console: {exc}", file=sys.stderr)
        return 2
    if users_path is None or users_path.resolve() == DEFAULT_USERS_PATH.resolve():
        print(f"heart console: demo users: {DEMO_SIGNIN}", flush=True)
    problem = _cannot_listen(host, port)
    if problem is not None:
        print(f"heart console: cannot listen on {host}:{port}: {problem}", file=sys.stderr)
        return 2
    # After the files and options, so that a mistake in them is named first; an
    # unreachable broker is then one line and exit 69, as for every command.
    check_broker(settings)
    quiet_library_logs()
    asyncio.run(serve(console, host, port, ready=sys.stdout))
    return 0


def quiet_library_logs() -> None:
    """The console's own lines (sign-ins, actions, the feed's state) at info: the audit
    trail an operator reads. The libraries stay at critical (:func:`configure_logs`):
    aiokafka logs every failed connection attempt while Kafka is away, and the feed says
    that once itself."""
    configure_logs()
    logging.getLogger("heart.console").setLevel(logging.INFO)


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the address cannot be bound (taken, not ours), checked before uvicorn, which
    would exit the process instead of saying so."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"{exc.strerror or exc} (use --host with an address of this machine)"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return f"{exc.strerror or exc} (choose another --port)"
    return None
