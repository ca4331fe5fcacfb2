"""``heart console``: load its files, then serve the app with uvicorn beside the Kafka feed
and the clock that re-evaluates the alerts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import uvicorn

from heart.agents.dispatch.roster import RosterError, load_roster
from heart.cli.console.app import Console, create_app
from heart.cli.console.board import Board
from heart.cli.console.console_settings import ConsoleSettingsError, load_console_settings
from heart.cli.console.feed import Feed, KafkaSender
from heart.cli.console.users import DEFAULT_USERS_PATH, UsersFileError, load_users
from heart.policy import PolicyError, load_policy
from heart.streams.settings import HeartSettings

log = logging.getLogger("heart.console")

#: What ended is kept this long, so that a late event for it is still recognised.
KEEP_ENDED = timedelta(hours=1)
#: The demo sign-in printed when the console runs with the shipped demo users.
DEMO_SIGNIN = "sign in as sup-0001 / demo-supervisor (more demo users in docs/console.md)"


def build_console(
    settings: HeartSettings,
    *,
    users_path: Path | None,
    settings_path: Path | None,
    secure_cookies: bool = False,
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
    )
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
) -> int:
    try:
        console = build_console(
            settings,
            users_path=users_path,
            settings_path=settings_path,
            secure_cookies=secure_cookies,
        )
    except (PolicyError, RosterError, ConsoleSettingsError, UsersFileError) as exc:
        print(f"heart console: {exc}", file=sys.stderr)
        return 2
    if users_path is None or users_path.resolve() == DEFAULT_USERS_PATH.resolve():
        print(f"heart console: demo users: {DEMO_SIGNIN}", flush=True)
    problem = _cannot_listen(host, port)
    if problem is not None:
        print(f"heart console: cannot listen on {host}:{port}: {problem}", file=sys.stderr)
        return 2
    asyncio.run(serve(console, host, port, ready=sys.stdout))
    return 0


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
