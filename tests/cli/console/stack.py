"""A HEART stack for the console's browser scenarios: real stage workers and a real
``heart console`` process on the embedded broker, and the helpers the scenarios share.

Everything runs on the event clock (``HEART_CLOCK=event``), so a scenario dates its events
where it needs them (a Thursday afternoon, the next staffed morning) and the stages and the
console read the same time from them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from aiokafka import ConsumerRecord
from playwright.sync_api import Browser, BrowserContext, Page, expect
from pydantic import BaseModel

from heart.schemas.dispatch import DispatchEvent
from heart.streams.codec import decode
from heart.streams.settings import HeartSettings
from heart.streams.topics import DISPATCH_CLEARED, TopicSpec
from tests.kafka import ROOT, key_per_partition, produce, read_topic

T = TypeVar("T")
DURHAM = ZoneInfo("America/New_York")
#: A Thursday in July, and the Friday after it: CRT, CCD and CN work 08:30-16:30 weekdays.
THURSDAY = datetime(2024, 7, 18, tzinfo=DURHAM)
FRIDAY = THURSDAY + timedelta(days=1)
#: A secret the console's restarts share, so that a signed-in browser stays signed in.
SESSION_SECRET = "scenario-secret-0123456789abcdefghijklmnop"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: Words the console must never log: the CAD record's caller and address.
PRIVATE = ("Jordan Example", "919-555-0100", "City Hall Plaza", "Traceback")


def local(day: datetime, hhmm: str) -> datetime:
    """``day`` at ``hhmm`` Durham time, as UTC."""
    hours, minutes = map(int, hhmm.split(":"))
    return day.replace(hour=hours, minute=minutes).astimezone(UTC)


def in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end on a thread of its own: Playwright's sync API keeps an
    event loop running in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def send(settings: HeartSettings, spec: TopicSpec, *events: tuple[str, BaseModel]) -> None:
    in_thread(produce(settings, spec, list(events)))


def read_until(
    settings: HeartSettings,
    spec: TopicSpec,
    found: Any,
    timeout: float = 30.0,
    settle: float = 0.0,
) -> list[tuple[ConsumerRecord, Any]]:
    """The topic's records decoded with its schema, read until ``found(decoded)`` holds."""

    def decoded(records: list[ConsumerRecord]) -> list[Any]:
        return [decode(spec.adapter, r.value) for r in records]

    records = in_thread(
        read_topic(
            settings,
            spec,
            until=lambda rs: bool(found(decoded(rs))),
            timeout=timeout,
            settle=settle,
        )
    )
    return list(zip(records, decoded(records), strict=True))


def pulse_until(
    settings: HeartSettings, at: datetime, spec: TopicSpec, found: Any, timeout: float = 30.0
) -> list[tuple[ConsumerRecord, Any]]:
    """Move the Care Navigation stage's event clock to ``at`` with police-route clearings
    (no follow-up) into every partition, once a second, until ``found`` holds on ``spec``."""
    keys = key_per_partition(f"pulse-{at:%H%M}", DISPATCH_CLEARED.partitions)
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        pulses = [
            (
                key,
                DispatchEvent(
                    event_type="dispatch.cleared",
                    occurred_at=at,
                    call_id=key,
                    route="police",
                    event_id=f"{key}-{n}",
                ),
            )
            for key in keys
        ]
        send(settings, DISPATCH_CLEARED, *pulses)
        n += 1
        try:
            return read_until(settings, spec, found, timeout=1.5)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


class ConsoleProcess:
    """``heart console`` as a real process: started, stopped with SIGTERM, started again."""

    def __init__(
        self,
        settings: HeartSettings,
        log_dir: Path,
        port: int,
        *args: str,
        **env: str,
    ) -> None:
        """``args`` are more of ``heart console``'s options; ``env`` more environment."""
        self.args = args
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"console-{port}.log"
        self.env = {
            **os.environ,
            "HEART_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HEART_TOPIC_PREFIX": settings.topic_prefix,
            "HEART_CONSOLE_SECRET": SESSION_SECRET,
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def start(self) -> ConsoleProcess:
        ready = f"HEART console on {self.url}"
        seen = self.log().count(ready)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "heart.cli",
                    "console",
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while self.log().count(ready) <= seen:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"heart console did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        return self

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"heart console ignored SIGTERM:\n{self.log()[-3000:]}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_clean_log(self) -> None:
        text = self.log()
        for word in PRIVATE:
            assert word not in text, text[-3000:]


def page_for(browser: Browser, viewport: dict[str, int] = DESKTOP, **kw: Any) -> Page:
    """A page in a context of its own (its own cookies), on Durham's time and in English,
    so that times read as the people there read them."""
    context: BrowserContext = browser.new_context(
        viewport=viewport, locale="en-US", timezone_id="America/New_York", **kw
    )
    return context.new_page()


def sign_in(page: Page, url: str, user: str, password: str) -> None:
    page.goto(f"{url}/signin")
    page.get_by_label("User id").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#feed")).to_have_text("live", timeout=30_000)


def team_user(team_id: str) -> tuple[str, str]:
    """The demo users file's user and password for a team (docs/console.md)."""
    return f"team-{team_id.lower()}", f"demo-{team_id.lower()}"
