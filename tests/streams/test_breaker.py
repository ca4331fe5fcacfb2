from __future__ import annotations

import asyncio
import logging
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from heart.streams.admin import create_topics
from heart.streams.breaker import CircuitBreaker
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, DEADLETTER, TRIAGE_DECISIONS
from tests.factories import call_received
from tests.kafka import Worker, produce, read_topic


def test_stays_closed_below_the_threshold() -> None:
    breaker = CircuitBreaker("t", window=10, threshold=0.5, min_events=10)
    for i in range(100):
        breaker.record("invalid_json" if i % 3 == 0 else None)
    assert not breaker.is_open


def test_trips_above_the_threshold_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    breaker = CircuitBreaker("triage", window=10, threshold=0.5, min_events=10)
    with caplog.at_level(logging.CRITICAL):
        for _ in range(5):
            breaker.record(None)
        for _ in range(5):
            breaker.record("invalid_json")
        assert not breaker.is_open, "exactly half is not more than half"
        breaker.record("invalid_json")
    assert breaker.is_open
    assert "CIRCUIT OPEN: stage triage paused" in caplog.text
    assert "invalid_json=6" in caplog.text


def test_waits_for_min_events_before_judging() -> None:
    breaker = CircuitBreaker("t", window=100, threshold=0.5, min_events=20)
    for _ in range(19):
        breaker.record("invalid_json")
    assert not breaker.is_open
    breaker.record("invalid_json")
    assert breaker.is_open


async def test_half_open_probe_closes_on_success_and_backs_off_on_failure() -> None:
    breaker = CircuitBreaker("t", window=4, threshold=0.5, min_events=4, cooldown_s=0.05)
    for _ in range(4):
        breaker.record("invalid_event")
    assert breaker.is_open
    started = time.monotonic()
    await breaker.wait()
    assert time.monotonic() - started >= 0.05
    breaker.record("invalid_event")  # the probe fails: open again, longer cool-down
    assert breaker.is_open
    started = time.monotonic()
    await breaker.wait()
    assert time.monotonic() - started >= 0.1
    breaker.record(None)  # the probe succeeds
    assert not breaker.is_open
    await asyncio.wait_for(breaker.wait(), 0.01)


@pytest.mark.broker
async def test_a_flood_of_bad_messages_pauses_the_stage_instead_of_draining_it(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"brk{unique}."})
    await create_topics(scoped)
    worker = Worker(
        "triage",
        scoped,
        tmp_path,
        HEART_BREAKER_MIN_EVENTS="10",
        HEART_BREAKER_WINDOW="10",
        HEART_BREAKER_COOLDOWN_S="1",
    ).start()
    try:
        await worker.wait_ready()
        bad = [(f"B-{i}", b"<cad-v2>not json</cad-v2>") for i in range(40)]
        good = [(f"G-{i}", call_received(call_id=f"G-{i}")) for i in range(5)]
        await produce(scoped, CAD_CALLS, bad)
        dead = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 11, settle=2.0)
        assert len(dead) < 15, "the stage paused instead of dead-lettering the whole stream"
        body = (
            urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5)
            .read()
            .decode()
        )
        assert 'heart_circuit_open{stage="triage"} 1.0' in body
        assert "CIRCUIT OPEN: stage triage paused" in worker.log()
        # Paused, not discarding: the good calls behind the flood wait in their topic
        # (uncommitted) instead of being consumed while the stage is broken.
        await produce(scoped, CAD_CALLS, good)
        assert not (await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: True, settle=0.5))
    finally:
        worker.kill(signal.SIGTERM)
