"""Kafka going away: the page says ``reconnecting…`` and is dimmed, never a stale board
shown as live, and it is live again once a broker answers (issue 27, "Bad input and
faults"). A broker of the test's own, stopped and started again on the same port."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from heart.streams.admin import create_topics
from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings
from tests.cli.console.stack import ConsoleProcess, in_thread, page_for, sign_in

pytestmark = pytest.mark.broker


def test_the_page_shows_reconnecting_while_kafka_is_away_then_live_again(
    browser: Browser, tmp_path: Path
) -> None:
    port = find_free_port()
    broker = EmbeddedBroker(port=port, log_file=tmp_path / "broker-1.log").start()
    settings = HeartSettings(kafka_bootstrap=broker.bootstrap)
    in_thread(create_topics(settings))
    console = ConsoleProcess(settings, tmp_path, find_free_port()).start()
    try:
        page = page_for(browser)
        sign_in(page, console.url, "sup-0001", "demo-supervisor")
        expect(page.locator("#app")).not_to_have_class(re.compile(r"\bstale\b"))

        broker.stop()
        expect(page.locator("#feed")).to_have_text("reconnecting…", timeout=15_000)
        expect(page.locator("#app")).to_have_class(re.compile(r"\bstale\b"))
        # The console itself still answers: only its Kafka side is away.
        assert page.request.get(f"{console.url}/api/view?page=board").json()["feed"] == (
            "reconnecting"
        )

        broker = EmbeddedBroker(port=port, log_file=tmp_path / "broker-2.log").start()
        in_thread(create_topics(settings))
        expect(page.locator("#feed")).to_have_text("live", timeout=60_000)
        expect(page.locator("#app")).not_to_have_class(re.compile(r"\bstale\b"))
        page.context.close()
    finally:
        assert console.stop() == 0, console.log()[-3000:]
        broker.stop()
    console.assert_clean_log()
    # Kafka's absence is said once by the console, not once a second by the library.
    log = console.log()
    assert log.count("console feed reconnecting: no answer from Kafka at") == 1, log[-3000:]
    for noise in ("Unable connect", "Unable to update metadata", "Unclosed"):
        assert noise not in log, log[-3000:]
