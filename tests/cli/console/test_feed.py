"""Live updates' ids from Kafka positions: the encoding, what a reconnecting browser is sent
(over a real uvicorn server and a real SSE client), and two console feeds reading the same
topics on the embedded broker giving the same id."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import orjson
import pytest
import uvicorn

from heart.cli.console import app as app_module
from heart.cli.console.app import Console, create_app
from heart.cli.console.board import Board
from heart.cli.console.console_settings import ConsoleSettings
from heart.cli.console.feed import TOPICS, Feed, UpdateId, offsets_of
from heart.cli.console.users import load_users
from heart.policy import load_policy
from heart.schemas.base import Event
from heart.streams.admin import create_topics
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings
from heart.streams.topics import DISPATCH_EVENTS, TRIAGE_DECISIONS
from tests.cli.console.events import at, decision, dispatch
from tests.kafka import produce

# --- the id ---------------------------------------------------------------------------------


def _positions(**by_key: int) -> dict[str, int]:
    """``triage_decisions_3=7`` -> ``{"p.triage.decisions:3": 7}``."""
    out = {}
    for key, offset in by_key.items():
        name, _, partition = key.rpartition("_")
        out[f"p.{name.replace('_', '.')}:{partition}"] = offset
    return out


def test_an_id_encodes_every_partitions_next_offset_and_reads_back() -> None:
    offsets = offsets_of(
        _positions(triage_decisions_0=5, triage_decisions_2=40, dispatch_events_1=1_000_000),
        "p.",
    )
    assert offsets[0] == (5, 0, 40)
    assert offsets[TOPICS.index(DISPATCH_EVENTS)] == (0, 1_000_000)
    update = UpdateId(offsets, step=871_234_567)
    text = update.encode()
    assert text == "eepkw7:5-0-14..0-lfls......"
    assert UpdateId.parse(text) == update


def test_positions_give_the_same_id_whatever_order_they_were_read_in_or_the_prefix() -> None:
    one = offsets_of({"a.triage.decisions:1": 3, "a.dispatch.events:0": 2}, "a.")
    two = offsets_of({"b.dispatch.events:0": 2, "b.triage.decisions:1": 3}, "b.")
    assert one == two
    # A partition with nothing read is the same as one not listed.
    assert offsets_of({"a.triage.decisions:4": 0, "a.triage.decisions:1": 3}, "a.") == offsets_of(
        {"a.triage.decisions:1": 3}, "a."
    )
    # Topics of another prefix, or that the console does not read, are not positions.
    assert offsets_of({"x.triage.decisions:0": 9, "a.cad.calls:0": 9}, "a.") == offsets_of({}, "a.")


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "12.3",
        "garbage",
        "1:" + "." * 3,
        "1:" + "." * 20,
        "-1:" + "." * 8,
        "1:a--b" + "." * 8,
        "1:A" + "." * 8,
        "1:" + "x" * 5000,
    ],
)
def test_an_id_that_is_not_ours_reads_as_none(text: str | None) -> None:
    assert UpdateId.parse(text) is None


def test_covers_compares_every_partition() -> None:
    empty = tuple(() for _ in TOPICS)
    behind = UpdateId(((1, 2), *empty[1:]), 0)
    ahead = UpdateId(((1, 3), *empty[1:]), 0)
    other = UpdateId(((2, 2), *empty[1:]), 0)
    assert ahead.covers(behind) and not behind.covers(ahead)
    assert not ahead.covers(other) and not other.covers(ahead)
    assert behind.covers(UpdateId(empty, 5))


# --- the stream -----------------------------------------------------------------------------

PREFIX = "feedtest."


class Clock:
    def __init__(self) -> None:
        self.now = at(10)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Served:
    url: str
    console: Console
    clock: Clock
    loop: asyncio.AbstractEventLoop

    def on_loop(self, change: Callable[[], None]) -> None:
        """Change the board's positions or clock on the server's loop, then wake its
        streams, as the feed and the clock do."""

        def run() -> None:
            change()
            self.console.notify()

        self.loop.call_soon_threadsafe(run)

    def read(self, key: str, offset: int, event: Event | None = None) -> None:
        """The feed reads a partition up to ``offset``, folding ``event`` into the board
        (None: a record the board does not show)."""
        assert self.console.feed is not None
        positions = self.console.feed.positions

        def change() -> None:
            if event is not None:
                self.console.board.apply(event)
            positions[PREFIX + key] = offset

        self.on_loop(change)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # a thread of the test, not the main one
        yield


@pytest.fixture
def served() -> Iterator[Served]:
    clock = Clock()
    board = Board()
    board.add_roster_teams(["CRT-1"])
    board.apply(decision("c1"))
    console = Console(
        board=board,
        policy=load_policy(),
        settings=ConsoleSettings(),
        users=load_users(),
        send=_no_send,
        clock=clock,
    )
    feed = Feed(HeartSettings(topic_prefix=PREFIX), board.apply, console.notify)
    feed.state = "live"
    feed.positions.update({PREFIX + "triage.decisions:0": 1})
    console.feed = feed
    port = find_free_port()
    server = _Server(
        uvicorn.Config(create_app(console), host="127.0.0.1", port=port, log_level="warning")
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the console's server did not start"
        threading.Event().wait(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", console, clock, loop)
    finally:
        console.stopping = True
        loop.call_soon_threadsafe(console.notify)
        server.should_exit = True
        thread.join(10)
        loop.close()


async def _no_send(*_: object) -> None:
    raise AssertionError("no action is sent here")


@dataclass
class Sse:
    event: str
    id: str | None
    data: str


async def _signed_in(url: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=10)
    page = await client.get("/signin")
    csrf = re.search(r"name='csrf' value='([^']+)'", page.text)
    assert csrf is not None
    signed = await client.post(
        "/signin", data={"user": "sup-0001", "password": "demo-supervisor", "csrf": csrf.group(1)}
    )
    assert signed.status_code in (200, 303), signed.text
    return client


class Stream:
    """One SSE connection: its events, parsed, one at a time. A reader task keeps the
    connection's lines, so that waiting for an event in vain does not end the stream."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._events: asyncio.Queue[Sse] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(lines))

    async def next(self, timeout: float = 5.0) -> Sse | None:
        """The next event (not a comment or a ``retry``), or None if none comes in time."""
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except TimeoutError:
            assert not self._reader.done(), "the stream ended"
            return None

    async def _read(self, lines: AsyncIterator[str]) -> None:
        fields: dict[str, str] = {}
        async for line in lines:
            if line == "":
                if "data" in fields:
                    event = fields.get("event", "message")
                    self._events.put_nowait(Sse(event, fields.get("id"), fields["data"]))
                elif "id" in fields:
                    # Not dispatched by a browser, but it sets the id sent on reconnecting.
                    self._events.put_nowait(Sse("", fields["id"], ""))
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value

    def close(self) -> None:
        self._reader.cancel()


async def _stream(served: Served, last_event_id: str | None = None, since: str | None = None):
    client = await _signed_in(served.url)
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    params = {"page": "board"} | ({"since": since} if since else {})
    request = client.build_request("GET", "/api/stream", params=params, headers=headers)
    response = await client.send(request, stream=True)
    assert response.status_code == 200
    return client, response, Stream(response.aiter_lines())


def _run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_each_update_is_identified_by_the_positions_it_shows(served: Served) -> None:
    async def check() -> None:
        client, response, stream = await _stream(served)
        first = await stream.next()
        assert first is not None and first.event == "message"
        assert first.id == served.console.update_id.encode()
        shown = UpdateId.parse(first.id)
        assert shown is not None and shown.offsets[0] == (1,)
        served.read("dispatch.events:2", 4, dispatch("queued", "c1", 1))
        second = await stream.next()
        assert second is not None
        moved = UpdateId.parse(second.id)
        assert moved is not None
        assert moved.offsets[TOPICS.index(DISPATCH_EVENTS)] == (0, 0, 4)
        assert moved.step == shown.step
        assert orjson.loads(second.data)["queue"][0]["call_id"] == "c1"
        # A record the page does not show moves the id on, with no view sent.
        served.read("followup.outcomes:0", 1)
        third = await stream.next()
        assert third is not None and third.event == "" and third.data == ""
        assert third.id is not None and third.id.endswith(".1")
        stream.close()
        await response.aclose()
        await client.aclose()

    _run(check())


def test_clock_ticks_keep_the_id_within_a_step_and_change_only_its_step(served: Served) -> None:
    async def check() -> None:
        client, response, stream = await _stream(served)
        first = await stream.next()
        assert first is not None
        served.on_loop(
            lambda: setattr(served.clock, "now", served.clock.now + timedelta(seconds=0.5))
        )
        same_step = await stream.next()
        assert same_step is not None
        # The view moved on (its clock), the id did not: nothing new was read from Kafka.
        assert orjson.loads(same_step.data)["now"] != orjson.loads(first.data)["now"]
        assert same_step.id == first.id
        served.on_loop(
            lambda: setattr(served.clock, "now", served.clock.now + timedelta(seconds=5))
        )
        next_step = await stream.next()
        assert next_step is not None
        before, after = UpdateId.parse(first.id), UpdateId.parse(next_step.id)
        assert before is not None and after is not None
        assert (after.offsets, after.step) == (before.offsets, before.step + 2)
        stream.close()
        await response.aclose()
        await client.aclose()

    _run(check())


@pytest.mark.parametrize("how", ["header", "since"])
def test_a_browser_that_shows_the_current_view_is_sent_nothing_until_the_next_change(
    served: Served, how: str
) -> None:
    async def check() -> None:
        current = served.console.update_id.encode()
        client, response, stream = await _stream(
            served, **({"last_event_id": current} if how == "header" else {"since": current})
        )
        # Only the feed's state, to lift the page's "reconnecting": no view.
        state = await stream.next()
        assert state is not None and (state.event, state.id, state.data) == ("feed", None, "live")
        assert await stream.next(timeout=1.0) is None
        served.read("triage.decisions:0", 2, decision("c2"))
        update = await stream.next()
        assert update is not None and update.event == "message"
        changed = UpdateId.parse(update.id)
        assert changed is not None and changed.offsets[0] == (2,)
        stream.close()
        await response.aclose()
        await client.aclose()

    _run(check())


@pytest.mark.parametrize("shown", ["older", "earlier step", "not ours"])
def test_a_browser_behind_the_board_gets_the_current_view_at_once(
    served: Served, shown: str
) -> None:
    async def check() -> None:
        current = served.console.update_id
        sent = {
            "older": UpdateId(tuple(() for _ in TOPICS), current.step).encode(),
            "earlier step": UpdateId(current.offsets, current.step - 1).encode(),
            "not ours": "17.4",
        }[shown]
        client, response, stream = await _stream(served, last_event_id=sent)
        update = await stream.next(timeout=2.0)
        assert update is not None and update.event == "message"
        assert update.id == current.encode()
        assert [c["call_id"] for c in orjson.loads(update.data)["calls"]] == ["c1"]
        stream.close()
        await response.aclose()
        await client.aclose()

    _run(check())


def test_a_console_behind_the_browser_reads_as_far_before_it_answers(served: Served) -> None:
    """A browser that moves to a replica (or a restarted console) that has not yet read as
    far as the page shows is not sent an older board."""

    async def check() -> None:
        ahead = UpdateId(offsets_of({PREFIX + "triage.decisions:0": 3}, PREFIX), 0).encode()
        client, response, stream = await _stream(served, last_event_id=ahead)
        assert await stream.next(timeout=1.0) is None
        served.read("triage.decisions:0", 3, decision("c3"))
        update = await stream.next()
        assert update is not None and update.event == "message"
        caught_up = UpdateId.parse(update.id)
        assert caught_up is not None and caught_up.offsets[0] == (3,)
        stream.close()
        await response.aclose()
        await client.aclose()

    _run(check())


def test_a_console_that_never_reads_as_far_answers_after_a_bounded_wait(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "CATCH_UP_WAIT_S", 0.5)

    async def check() -> None:
        ahead = UpdateId(offsets_of({PREFIX + "triage.decisions:0": 99}, PREFIX), 0).encode()
        client, response, stream = await _stream(served, last_event_id=ahead)
        update = await stream.next(timeout=3.0)
        assert update is not None and update.id == served.console.update_id.encode()
        stream.close()
        await response.aclose()
        await client.aclose()

    _run(check())


# --- two replicas on the real broker --------------------------------------------------------


@pytest.mark.broker
def test_two_console_feeds_reading_the_same_topics_give_the_same_id(
    settings: HeartSettings, unique: str
) -> None:
    prefixed = settings.model_copy(update={"topic_prefix": f"feed{unique}."})

    async def check() -> None:
        await create_topics(prefixed)
        calls = [f"call-{i}" for i in range(12)]
        await produce(prefixed, TRIAGE_DECISIONS, [(c, decision(c)) for c in calls])
        await produce(prefixed, DISPATCH_EVENTS, [(c, dispatch("queued", c, 1)) for c in calls[:5]])
        boards = [Board(), Board()]
        feeds = [Feed(prefixed, board.apply, lambda: None) for board in boards]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(feed.run(stop)) for feed in feeds]
        try:
            async with asyncio.timeout(60):
                while not all(_read_all(feed, 12, 5) for feed in feeds):
                    await asyncio.sleep(0.1)
            # A replica started later, the first one restarted, reads as far too.
            late = Feed(prefixed, Board().apply, lambda: None)
            tasks.append(asyncio.create_task(late.run(stop)))
            async with asyncio.timeout(60):
                while not _read_all(late, 12, 5):
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        ids = {UpdateId(feed.offsets(), 7).encode() for feed in [*feeds, late]}
        assert len(ids) == 1, ids
        offsets = feeds[0].offsets()
        assert sum(offsets[TOPICS.index(TRIAGE_DECISIONS)]) == 12
        assert sum(offsets[TOPICS.index(DISPATCH_EVENTS)]) == 5
        assert [b.applied for b in boards] == [17, 17]

    asyncio.run(check())


def _read_all(feed: Feed, decisions: int, dispatched: int) -> bool:
    offsets = feed.offsets()
    return (
        sum(offsets[TOPICS.index(TRIAGE_DECISIONS)]) == decisions
        and sum(offsets[TOPICS.index(DISPATCH_EVENTS)]) == dispatched
    )
