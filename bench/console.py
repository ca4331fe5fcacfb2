"""Console benchmark: how soon a Kafka record shows on the supervisor board in a browser, and
how many live streams one ``heart console`` process serves.

Not a CI test. It starts its own embedded broker, one ``heart console`` process (wall
clock, demo users, the shipped settings), one Chromium page (Debian's ``/usr/bin/chromium``
driven by Playwright) signed in as the supervisor through the sign-in form, and plain SSE
clients (aiohttp, sharing the cookie of one sign-in through the same form). It writes
``triage.decision`` records itself (route ``ccd``) and closes each call with
``triage.closed`` ``--close-after`` seconds later, as the CAD closes a call taken by phone,
so that the board holds the calls of the last ``--close-after`` seconds.

Latency is timed from the decision record's Kafka timestamp (set by this producer from the
wall clock) to:

- **DOM**: the moment the browser's page has the call's row, as a ``MutationObserver`` on
  the page reports it (``performance.timeOrigin + performance.now()``, before paint);
- **stream**: the moment an SSE client has received the first update holding the call.

Sections:

1. ``durham``: Durham's peak hour, 80 calls an hour (about 1,000 calls a day, times the
   simulator's busiest-hour factor, 1.9): one call every 45 s, so every update stands alone.
   The bench sends one call every ``--durham-gap`` seconds (3 s: still one update at a
   time, so that 100 samples take 5 minutes, not 75; ``--durham-gap 45`` plays the real
   rate) onto a board that already holds ``--board-calls`` open calls.
2. ``rate``: ``--rate`` calls per second (100) for ``--rate-seconds``.
3. ``streams``: at the Durham pacing, ``N`` SSE streams at once for each ``N`` of
   ``--streams``, until the streams' p99 passes ``--p99-limit-ms`` (2,000) or more than 1%
   of calls never reach a stream; the figure is the largest ``N`` within it.
4. ``rebuild``: ``--history-calls`` closed calls (a decision and a closure each; 30,000 is
   a month of Durham's calls, the decisions topic's retention) are added to the topics, and
   a fresh console is started on them: seconds until it serves pages, until it is live
   (has read every topic to its end), and its memory then.

    python bench/console.py                         # about 12 minutes
    python bench/console.py --quick --json out.json # about a minute: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from bench.harness import cpu_s, percentile, rss_mib  # noqa: E402
from heart.schemas.triage import TriageClosure, TriageDecision  # noqa: E402
from heart.simulator.cad_feed import _HOURLY, _HOURLY_MEAN, CALLS_PER_DAY  # noqa: E402
from heart.streams.admin import create_topics  # noqa: E402
from heart.streams.codec import encode  # noqa: E402
from heart.streams.embedded.broker import EmbeddedBroker  # noqa: E402
from heart.streams.ports import find_free_port  # noqa: E402
from heart.streams.settings import HeartSettings  # noqa: E402
from heart.streams.topics import TRIAGE_CLOSURES, TRIAGE_DECISIONS  # noqa: E402

#: Durham's busiest hour: its calls a day at the simulator's hourly profile's peak.
DURHAM_PEAK_PER_HOUR = CALLS_PER_DAY / 24 * max(_HOURLY) / _HOURLY_MEAN
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SUPERVISOR = ("sup-0001", "demo-supervisor")
CALL_ID = re.compile(rb'"call_id":"(b[0-9a-z]+-\d+)"')
#: The page reports each call row the first time the DOM has it.
OBSERVER = """
() => {
  const seen = new Set();
  const app = document.getElementById("app");
  new MutationObserver(() => {
    const at = performance.timeOrigin + performance.now();
    const fresh = [];
    for (const row of app.querySelectorAll("tr[data-call]")) {
      const id = row.dataset.call;
      if (id.startsWith("b") && !seen.has(id)) { seen.add(id); fresh.push(id); }
    }
    if (fresh.length) window.benchSeen(fresh, at);
  }).observe(app, { childList: true, subtree: true });
}
"""


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": _round(percentile(values, 50)),
        "p90": _round(percentile(values, 90)),
        "p99": _round(percentile(values, 99)),
        "max": _round(max(values) if values else None),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class Watch:
    """Calls sent in one measurement, by id: the record's timestamp (ms), and when each
    reader first had it."""

    sent_ms: dict[str, int] = field(default_factory=dict)
    seen_ms: dict[str, dict[str, float]] = field(default_factory=dict)

    def seen(self, reader: str, call_id: str, at_ms: float) -> None:
        if call_id in self.sent_ms:
            self.seen_ms.setdefault(reader, {}).setdefault(call_id, at_ms)

    def latencies(self, readers: Iterable[str]) -> tuple[list[float], int]:
        """Milliseconds from record to reader, and how many (call, reader) pairs never
        arrived."""
        values: list[float] = []
        missing = 0
        for reader in readers:
            got = self.seen_ms.get(reader, {})
            for call_id, sent in self.sent_ms.items():
                if call_id in got:
                    values.append(got[call_id] - sent)
                else:
                    missing += 1
        return values, missing


class Calls:
    """Writes decisions and, ``close_after`` seconds later, their closures."""

    def __init__(self, settings: HeartSettings, close_after: float) -> None:
        self.settings = settings
        self.close_after = close_after
        self.producer = AIOKafkaProducer(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
        self._closing: list[tuple[float, str, TriageClosure]] = []
        self.sent = 0

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def decide(self, call_id: str, close: bool = True) -> int:
        """Send a decision (and close the call later); its record's timestamp, in ms."""
        now = datetime.now(UTC)
        decision = TriageDecision(
            call_id=call_id,
            route="ccd",
            reasons=["category:ccd"],
            policy_version="bench@console",
            source_event_id=f"src-{call_id}",
            call_received_at=now,
            call_type="WELFARE CHECK",
            occurred_at=now,
        )
        stamp = int(now.timestamp() * 1000)
        await self.producer.send(
            TRIAGE_DECISIONS.full_name(self.settings.topic_prefix),
            value=encode(decision),
            key=call_id.encode(),
            timestamp_ms=stamp,
        )
        closure = TriageClosure(
            call_id=call_id,
            route="ccd",
            revision=1,
            decision_id=decision.event_id,
            source_event_id=f"close-{call_id}",
            disposition="resolved_by_phone",
            occurred_at=now,
        )
        if close:
            due = time.monotonic() + self.close_after
            heapq.heappush(self._closing, (due, call_id, closure))
        self.sent += 1
        return stamp

    async def close_due(self, everything: bool = False) -> None:
        now = time.monotonic()
        while self._closing and (everything or self._closing[0][0] <= now):
            _, call_id, closure = heapq.heappop(self._closing)
            closure = closure.model_copy(update={"occurred_at": datetime.now(UTC)})
            await self.producer.send(
                TRIAGE_CLOSURES.full_name(self.settings.topic_prefix),
                value=encode(closure),
                key=call_id.encode(),
            )

    async def play(self, watch: Watch | None, tag: str, rate: float, seconds: float) -> float:
        """``rate`` calls a second for ``seconds``; the rate achieved."""
        began = time.monotonic()
        n = 0
        while (elapsed := time.monotonic() - began) < seconds:
            due = int(elapsed * rate) + 1 - n
            for _ in range(max(0, due)):
                call_id = f"{tag}-{n:06d}"
                stamp = await self.decide(call_id)
                if watch is not None:
                    watch.sent_ms[call_id] = stamp
                n += 1
            await self.close_due()
            wait = (n / rate) - (time.monotonic() - began)
            await asyncio.sleep(max(0.001, min(wait, 0.05)))
        return n / max(time.monotonic() - began, 1e-9)

    async def idle(self, seconds: float) -> None:
        """Let updates arrive, still closing calls as they fall due."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            await self.close_due()
            await asyncio.sleep(0.05)


class SseClient:
    """One browser stream without a browser: it reads ``/api/stream`` and notes the first
    update that holds each call."""

    def __init__(self, name: str, session: aiohttp.ClientSession, url: str) -> None:
        self.name = name
        self.session = session
        self.url = url
        self.watch: Watch | None = None
        self.updates = 0
        self.connected = asyncio.Event()
        self.failed: str | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async with self.session.get(f"{self.url}/api/stream?page=board") as response:
                if response.status != 200:
                    self.failed = f"HTTP {response.status}"
                    return
                buffer = bytearray()
                async for chunk in response.content.iter_any():
                    at_ms = time.time() * 1000
                    buffer += chunk
                    while (end := buffer.find(b"\n\n")) >= 0:
                        block = bytes(buffer[:end])
                        del buffer[: end + 2]
                        if b"data: " not in block:
                            continue
                        self.updates += 1
                        self.connected.set()
                        if self.watch is not None:
                            for call_id in CALL_ID.findall(block):
                                self.watch.seen(self.name, call_id.decode(), at_ms)
        except (aiohttp.ClientError, OSError) as exc:
            self.failed = type(exc).__name__
        finally:
            self.connected.set()

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def sign_in(session: aiohttp.ClientSession, url: str) -> None:
    """Through the sign-in form, as a person would: its CSRF token, then the post."""
    async with session.get(f"{url}/signin") as page:
        token = re.search(r"name='csrf' value='([^']+)'", await page.text())
    if token is None:
        raise RuntimeError("the sign-in page has no CSRF token")
    user, password = SUPERVISOR
    form = {"user": user, "password": password, "csrf": token.group(1)}
    async with session.post(f"{url}/signin", data=form, allow_redirects=False) as response:
        if response.status != 303:
            raise RuntimeError(f"sign-in refused: HTTP {response.status}")


class Console:
    """``heart console`` as a process of its own."""

    def __init__(self, settings: HeartSettings, log: Path) -> None:
        self.port = find_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "HEART_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HEART_TOPIC_PREFIX": settings.topic_prefix,
            "PYTHONUNBUFFERED": "1",
        }
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "heart.cli", "console", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self, timeout: float = 60.0) -> None:
        until = time.monotonic() + timeout
        while f"HEART console on {self.url}" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > until:
                raise RuntimeError(f"heart console did not start; see {self.log}")
            await asyncio.sleep(0.1)

    async def live(self, session: aiohttp.ClientSession, timeout: float = 60.0) -> None:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            async with session.get(f"{self.url}/api/view?page=board") as response:
                if response.status == 200 and (await response.json())["feed"] == "live":
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the console did not read the topics in {timeout:.0f} s")

    def cpu(self) -> float | None:
        return cpu_s(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Page:
    """One Chromium page on the supervisor board, reporting each call row's first DOM
    appearance."""

    def __init__(self) -> None:
        self.watch: Watch | None = None

    async def open(self, playwright: Any, url: str) -> None:
        self.browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        self.page = await self.browser.new_page(viewport={"width": 1280, "height": 900})
        await self.page.expose_function("benchSeen", self._seen)
        await self.page.goto(f"{url}/signin")
        await self.page.get_by_label("User id").fill(SUPERVISOR[0])
        await self.page.get_by_label("Password").fill(SUPERVISOR[1])
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.wait_for_url(re.compile(r"/board$"))
        await self.page.locator("#feed").filter(has_text="live").wait_for(timeout=60_000)
        await self.page.evaluate(OBSERVER)

    def _seen(self, call_ids: list[str], at_ms: float) -> None:
        if self.watch is not None:
            for call_id in call_ids:
                self.watch.seen("browser", call_id, at_ms)

    async def close(self) -> None:
        await self.browser.close()


async def measure(
    calls: Calls,
    readers: list[SseClient],
    page: Page | None,
    console: Console,
    tag: str,
    rate: float,
    seconds: float,
    tail: float,
) -> dict[str, Any]:
    watch = Watch()
    for reader in readers:
        reader.watch = watch
    if page is not None:
        page.watch = watch
    cpu_before, began = console.cpu(), time.monotonic()
    achieved = await calls.play(watch, tag, rate, seconds)
    await calls.idle(tail)
    cpu_after, wall = console.cpu(), time.monotonic() - began
    stream, stream_missing = watch.latencies(r.name for r in readers)
    out: dict[str, Any] = {
        "calls": len(watch.sent_ms),
        "achieved_rate_per_s": round(achieved, 2),
        "streams": len(readers) + (page is not None),
        "stream_ms": summary(stream),
        "stream_missing": stream_missing,
        "console_cpu_pct": (
            round(100 * (cpu_after - cpu_before) / wall, 1)
            if cpu_before is not None and cpu_after is not None
            else None
        ),
        "console_rss_mib": _round(rss_mib(console.proc.pid)),
    }
    if page is not None:
        dom, dom_missing = watch.latencies(["browser"])
        out["dom_ms"] = summary(dom)
        out["dom_missing"] = dom_missing
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    work = Path(tempfile.mkdtemp(prefix="heart-console-bench-"))
    broker = EmbeddedBroker(port=find_free_port(), log_file=work / "broker.log").start()
    settings = HeartSettings(
        kafka_bootstrap=broker.bootstrap, topic_prefix=f"cb{uuid.uuid4().hex[:6]}."
    )
    console: Console | None = None
    calls = Calls(settings, args.close_after)
    gap_rate = 1 / args.durham_gap
    result: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine_cores": os.cpu_count(),
        "quick": args.quick,
        "config": {
            "durham_peak_calls_per_hour": round(DURHAM_PEAK_PER_HOUR, 1),
            "durham_gap_s": args.durham_gap,
            "board_calls": args.board_calls,
            "close_after_s": args.close_after,
            "rate_per_s": args.rate,
            "p99_limit_ms": args.p99_limit_ms,
        },
    }
    try:
        await create_topics(settings)
        await calls.start()
        # The board a peak hour leaves: open calls the console reads before it is live.
        for i in range(args.board_calls):
            await calls.decide(f"open-{i:04d}", close=False)
        await calls.producer.flush()
        console = Console(settings, work / "console.log")
        await console.ready()
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with (
            aiohttp.ClientSession(
                # The session cookie comes from 127.0.0.1: aiohttp keeps an IP's cookies
                # only when told to.
                connector=connector,
                timeout=timeout,
                cookie_jar=aiohttp.CookieJar(unsafe=True),
            ) as session,
            async_playwright() as playwright,
        ):
            await sign_in(session, console.url)
            await console.live(session)
            page = Page()
            await page.open(playwright, console.url)
            base = SseClient("sse-0", session, console.url)
            await asyncio.wait_for(base.connected.wait(), 30)
            log(f"console live on {console.url}; logs in {work}")

            log(f"durham: one call every {args.durham_gap:g} s for {args.durham_s:g} s")
            result["durham"] = await measure(
                calls, [base], page, console, "bd", gap_rate, args.durham_s, args.tail_s
            )
            log(f"rate: {args.rate:g} calls/s for {args.rate_seconds:g} s")
            result["rate"] = await measure(
                calls, [base], page, console, "br", args.rate, args.rate_seconds, args.tail_s
            )
            # The calls of the rate section leave the board before the streams are counted.
            await calls.idle(args.close_after + 2)
            await base.close()
            result["streams"] = await ladder(args, calls, session, console, page)
            await page.close()
            log(f"rebuild: a fresh console on {args.history_calls:,} more closed calls")
            result["rebuild"] = await rebuild(args, calls, settings, work, session)
    finally:
        with contextlib.suppress(Exception):
            await calls.close_due(everything=True)
            await calls.stop()
        if console is not None:
            console.stop()
        broker.stop()
    result["logs"] = str(work)
    return result


async def ladder(
    args: argparse.Namespace,
    calls: Calls,
    session: aiohttp.ClientSession,
    console: Console,
    page: Page,
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    served = 0
    for n in args.streams:
        log(f"streams: {n} at one call every {args.durham_gap:g} s for {args.step_s:g} s")
        readers = [SseClient(f"s{n}-{i}", session, console.url) for i in range(n)]
        began = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(r.connected.wait() for r in readers)), args.connect_timeout
            )
        connect_s = time.monotonic() - began
        connected = sum(1 for r in readers if r.updates and r.failed is None)
        step = await measure(
            calls,
            readers,
            None,
            console,
            f"bs{n}",
            1 / args.durham_gap,
            args.step_s,
            args.tail_s,
        )
        await asyncio.gather(*(r.close() for r in readers))
        step.update(
            {
                "streams": n,
                "connected": connected,
                "connect_s": round(connect_s, 1),
                "failed": sorted({r.failed for r in readers if r.failed}),
            }
        )
        steps.append(step)
        total = step["stream_ms"]["n"] + step["stream_missing"]
        p99 = step["stream_ms"]["p99"]
        within = (
            connected == n
            and p99 is not None
            and p99 <= args.p99_limit_ms
            and step["stream_missing"] <= 0.01 * total
        )
        step["within_limit"] = within
        log(
            f"  {n} streams: p99 {p99} ms, missing {step['stream_missing']}, "
            f"console CPU {step['console_cpu_pct']}%"
        )
        if not within:
            break
        served = n
        await calls.idle(args.close_after + 2)
    return {"steps": steps, "max_streams_within_limit": served}


async def rebuild(
    args: argparse.Namespace,
    calls: Calls,
    settings: HeartSettings,
    work: Path,
    session: aiohttp.ClientSession,
) -> dict[str, Any]:
    """How long a restarted console (or a new replica) takes to rebuild its board from
    topics holding ``--history-calls`` more closed calls, and what memory it then holds."""
    for i in range(args.history_calls):
        await calls.decide(f"h-{i:06d}")
        if i % 1000 == 999:
            await calls.close_due(everything=True)
    await calls.close_due(everything=True)
    await calls.producer.flush()
    fresh = Console(settings, work / "console-rebuild.log")
    started = time.monotonic()
    try:
        await fresh.ready(timeout=600)
        serving_s = time.monotonic() - started
        await sign_in(session, fresh.url)
        await fresh.live(session, timeout=1200)
        live_s = time.monotonic() - started
        rss = rss_mib(fresh.proc.pid)
    finally:
        fresh.stop()
    out = {
        "history_calls": args.history_calls,
        "calls_in_topics": calls.sent,
        "serving_s": round(serving_s, 1),
        "live_s": round(live_s, 1),
        "console_rss_mib": _round(rss),
    }
    log(f"  serving after {serving_s:.1f} s, live after {live_s:.1f} s, {_round(rss)} MiB")
    return out


def log(message: str) -> None:
    print(f"[console bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def print_table(result: dict[str, Any]) -> None:
    config = result["config"]
    print()
    print(
        f"console benchmark, {result['date']}, {result['machine_cores']} cores"
        + (" (quick: figures mean little)" if result["quick"] else "")
    )
    print(f"{'board update (ms)':34} {'n':>6} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for key, label in (
        ("durham", f"Durham peak, a call every {config['durham_gap_s']:g} s"),
        ("rate", f"{config['rate_per_s']:g} calls/s"),
    ):
        section = result[key]
        for kind in ("dom", "stream"):
            p = section[f"{kind}_ms"]
            cells = " ".join(
                f"{p[k]:8.0f}" if p[k] is not None else f"{'-':>8}"
                for k in ("p50", "p90", "p99", "max")
            )
            print(f"{label + ' ' + kind:34} {p['n']:6d} {cells}")
        print(
            f"{'':34} console CPU {section['console_cpu_pct']}%, "
            f"{section['console_rss_mib']} MiB; missing dom {section['dom_missing']}, "
            f"stream {section['stream_missing']}"
        )
    print(f"\nstreams (p99 limit {config['p99_limit_ms']:g} ms):")
    for step in result["streams"]["steps"]:
        p = step["stream_ms"]
        print(
            f"  {step['streams']:5d} streams: connected {step['connected']}, "
            f"p50 {p['p50']} ms, p99 {p['p99']} ms, missing {step['stream_missing']}, "
            f"console CPU {step['console_cpu_pct']}%, {step['console_rss_mib']} MiB"
            + ("" if step["within_limit"] else "  <- past the limit")
        )
    print(f"one console process serves {result['streams']['max_streams_within_limit']} streams")
    rebuilt = result["rebuild"]
    print(
        f"\nrebuild: {rebuilt['calls_in_topics']:,} calls in the topics "
        f"({rebuilt['history_calls']:,} closed history): serving after {rebuilt['serving_s']} s, "
        f"live after {rebuilt['live_s']} s, {rebuilt['console_rss_mib']} MiB"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--durham-gap",
        type=float,
        default=3.0,
        help="seconds between calls in the Durham sections (default 3; 45 is the real peak)",
    )
    p.add_argument("--durham-s", type=float, default=300.0, help="Durham section (default 300 s)")
    p.add_argument("--rate", type=float, default=100.0, help="calls per second (default 100)")
    p.add_argument("--rate-seconds", type=float, default=60.0, help="rate section (default 60 s)")
    p.add_argument(
        "--board-calls",
        type=int,
        default=40,
        help="open calls on the board before the sections start (default 40)",
    )
    p.add_argument(
        "--close-after",
        type=float,
        default=20.0,
        help="seconds until a call is closed and leaves the board (default 20)",
    )
    p.add_argument(
        "--streams",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 25, 50, 100, 200, 400, 800],
        help="stream counts to try, in order (default 10,25,50,100,200,400,800)",
    )
    p.add_argument("--step-s", type=float, default=30.0, help="seconds per stream count")
    p.add_argument("--p99-limit-ms", type=float, default=2000.0, help="default 2000")
    p.add_argument("--connect-timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--tail-s", type=float, default=3.0, help=argparse.SUPPRESS)
    p.add_argument(
        "--history-calls",
        type=int,
        default=30_000,
        help="closed calls added before the rebuild section (default 30000: a month of Durham)",
    )
    p.add_argument("--quick", action="store_true", help="under 2 minutes, for a smoke test")
    p.add_argument("--json", type=Path, default=Path("bench-console.json"), help="JSON output")
    args = p.parse_args(argv)
    if args.quick:
        args.durham_gap = min(args.durham_gap, 1.0)
        args.durham_s = min(args.durham_s, 6.0)
        args.rate_seconds = min(args.rate_seconds, 3.0)
        args.close_after = min(args.close_after, 3.0)
        args.streams = [5]
        args.step_s = min(args.step_s, 4.0)
        args.connect_timeout = 20.0
        args.history_calls = min(args.history_calls, 1_000)
    for name in ("durham_gap", "durham_s", "rate", "rate_seconds", "step_s", "p99_limit_ms"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be above 0")
    if args.history_calls < 0:
        p.error("--history-calls must be 0 or more")
    if any(n < 1 for n in args.streams):
        p.error("--streams: each count must be at least 1")
    return args


def cli(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = asyncio.run(main(args))
    args.json.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
