"""The circuit breaker: a stage pauses only when its own code fails on a valid message,
holds that message, and resumes on a retry after a cool-down, a reset (SIGUSR1) or a
restart; SIGUSR2 dead-letters the held message instead.

The rule in isolation first, then a real ``heart worker triage`` whose code fails on
valid calls (a bad deploy, injected into the worker process) against the embedded broker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heart.schemas import TriageDecision
from heart.streams.admin import create_topics
from heart.streams.breaker import CircuitBreaker, install_operator_signals
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, DEADLETTER, TRIAGE_DECISIONS
from tests.factories import call_received
from tests.kafka import ROOT, Worker
from tests.reliability.support import Feed, TopicWatch, stop_worker

READER, OTHER = object(), object()


def test_a_failure_opens_the_breaker_and_says_what_to_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker = CircuitBreaker("t-open", cooldown_s=30)
    assert not breaker.is_open
    with caplog.at_level(logging.CRITICAL):
        hold = breaker.hold(READER, "cad.calls", 3, 41, "KeyError")
    assert breaker.is_open and breaker.trips == 1 and breaker.held(READER) is hold
    assert breaker.held(OTHER) is None, "only the reader that failed pauses"
    text = caplog.text
    assert "CIRCUIT OPEN: stage t-open paused: its code raised KeyError" in text
    assert "cad.calls[3]@41" in text and "SIGUSR1" in text and "SIGUSR2" in text


def test_a_failed_retry_backs_off_up_to_the_maximum_and_is_not_a_new_trip() -> None:
    breaker = CircuitBreaker("t-backoff", cooldown_s=30, max_cooldown_s=100)
    hold = breaker.hold(READER, "cad.calls", 0, 7, "KeyError")
    cooldowns = [hold.cooldown_s]
    for _ in range(3):
        assert breaker.hold(READER, "cad.calls", 0, 7, "KeyError") is hold
        cooldowns.append(hold.cooldown_s)
    assert cooldowns == [30, 60, 100, 100]
    assert (hold.failures, breaker.trips) == (4, 1)
    # Another message failing later is a new trip, from the first cool-down again.
    breaker.release(READER, "succeeded")
    assert breaker.hold(READER, "cad.calls", 0, 8, "KeyError").cooldown_s == 30
    assert breaker.trips == 2


def test_the_breaker_closes_when_no_reader_holds_anything() -> None:
    breaker = CircuitBreaker("t-close")
    breaker.hold(READER, "a", 0, 1, "E")
    breaker.hold(OTHER, "b", 0, 1, "E")
    breaker.release(READER, "succeeded")
    assert breaker.is_open
    breaker.forget(OTHER)
    assert not breaker.is_open


async def test_the_wait_ends_at_the_cool_down() -> None:
    breaker = CircuitBreaker("t-wait", cooldown_s=0.1)
    breaker.hold(READER, "a", 0, 1, "E")
    started = time.monotonic()
    assert await breaker.wait(READER) == "retry"
    assert time.monotonic() - started >= 0.1


@pytest.mark.parametrize(("action", "verdict"), [("reset", "retry"), ("skip", "skip")])
async def test_a_reset_or_a_skip_ends_the_wait_at_once(action: str, verdict: str) -> None:
    breaker = CircuitBreaker("t-now", cooldown_s=600)
    breaker.hold(READER, "a", 0, 1, "E")
    waiting = asyncio.create_task(breaker.wait(READER))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert getattr(breaker, action)() == 1
    assert await asyncio.wait_for(waiting, 1) == verdict
    # A verdict the reader could not act on (a rebalance) is not waited for again.
    assert await asyncio.wait_for(breaker.wait(READER), 0.1) == verdict
    breaker.taken(READER)
    assert breaker.held(READER).pending is None  # type: ignore[union-attr]


async def test_a_rebalance_interrupts_the_wait() -> None:
    breaker = CircuitBreaker("t-interrupt", cooldown_s=600)
    breaker.hold(READER, "a", 0, 1, "E")
    moved = {"now": False}
    waiting = asyncio.create_task(breaker.wait(READER, lambda: moved["now"]))
    await asyncio.sleep(0.05)
    moved["now"] = True
    assert await asyncio.wait_for(waiting, 2) is None


@pytest.mark.parametrize(
    ("signum", "verdict"), [(signal.SIGUSR1, "retry"), (signal.SIGUSR2, "skip")]
)
async def test_the_operator_signals_reach_every_breaker_of_the_process(
    signum: int, verdict: str
) -> None:
    loop = asyncio.get_running_loop()
    install_operator_signals(loop)
    try:
        breaker = CircuitBreaker("t-signal", cooldown_s=600)
        breaker.hold(READER, "a", 0, 1, "E")
        waiting = asyncio.create_task(breaker.wait(READER))
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signum)
        assert await asyncio.wait_for(waiting, 2) == verdict
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
        loop.remove_signal_handler(signal.SIGUSR2)


# --- a real worker whose code fails on valid calls ----------------------------------------

#: ``heart worker triage`` with its decision step broken while the file named by
#: HEART_TEST_FAULT_FILE exists: a bad deploy that the test can "fix" by removing the file.
FAULTY_TRIAGE = """
import os, sys
from pathlib import Path
import heart.agents.triage.agent as agent
real, marker = agent.step, Path(os.environ["HEART_TEST_FAULT_FILE"])
def step(*args, **kwargs):
    if marker.exists():
        raise RuntimeError("injected fault: a bad deploy")
    return real(*args, **kwargs)
agent.step = step
from heart.cli.main import main
sys.exit(main(["worker", "triage"]))
"""


class FaultyTriage(Worker):
    def start(self) -> FaultyTriage:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", FAULTY_TRIAGE],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self


def scrape(worker: Worker) -> str:
    url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    return urllib.request.urlopen(url, timeout=5).read().decode()


async def until_logged(worker: Worker, pattern: str, count: int = 1, timeout: float = 30) -> float:
    """Wait until ``pattern`` is in the worker's log ``count`` times; the seconds it took."""
    started = time.monotonic()
    while len(re.findall(pattern, worker.log())) < count:
        assert time.monotonic() - started < timeout, (
            f"{pattern!r} not logged:\n{worker.log()[-3000:]}"
        )
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def fresh_and_soon_stale(now: datetime) -> tuple[list, list]:
    """Calls received now, and calls received 9 min 35 s ago: fresh when sent, stale (over
    the policy's 10 minutes) 25 seconds later."""
    fresh = [call_received(call_id=f"FRESH-{i}", occurred_at=now) for i in range(3)]
    soon = now - timedelta(minutes=9, seconds=35)
    stale = [call_received(call_id=f"STALE-{i}", occurred_at=soon) for i in range(3)]
    return fresh, stale


@pytest.mark.broker
async def test_a_failure_on_valid_input_pauses_the_stage_and_a_reset_resumes_it(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    """Nothing is lost and nothing is dead-lettered while the stage is paused; after the fix
    a reset takes effect within seconds and every held call is decided, the ones that
    waited past the policy's limit as ``stale`` (wall clock)."""
    scoped = settings.model_copy(update={"topic_prefix": f"brk{unique}."})
    await create_topics(scoped)
    fault = tmp_path / "bad-deploy"
    fault.touch()
    worker = FaultyTriage(
        "triage",
        scoped,
        tmp_path,
        HEART_TEST_FAULT_FILE=str(fault),
        HEART_BREAKER_COOLDOWN_S="600",  # only the operator's reset may retry here
    ).start()
    decisions = await TopicWatch(scoped, TRIAGE_DECISIONS).start()
    dead = await TopicWatch(scoped, DEADLETTER).start()
    feed = await Feed(scoped).start()
    try:
        await worker.wait_ready(90)
        fresh, stale = fresh_and_soon_stale(datetime.now(UTC))
        sent = [*stale, *fresh]
        for call in sent:
            await feed.send(CAD_CALLS, call.call_id, call)
        await feed.producer.flush()
        await until_logged(
            worker, "CIRCUIT OPEN: stage triage paused: its code raised RuntimeError"
        )
        assert 'heart_circuit_open{stage="triage"} 1.0' in scrape(worker)
        # Paused: the stale ones age past the limit while nothing is decided or dropped.
        stale_at = stale[0].occurred_at + timedelta(minutes=10, seconds=1)
        await asyncio.sleep(max(0.0, (stale_at - datetime.now(UTC)).total_seconds()))
        assert decisions.records == [] and dead.records == []

        # A reset before the fix: the held call fails again, at once, and stays held.
        worker.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        took = await until_logged(worker, "still paused: the held message", timeout=10)
        assert took < 5, f"the reset took {took:.1f}s"
        await asyncio.sleep(1.0)
        assert decisions.records == [] and dead.records == []

        fault.unlink()  # the fix
        signalled = time.monotonic()
        worker.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        await decisions.wait(lambda w: len(w.records) >= len(sent), timeout=30, what="decisions")
        resumed = time.monotonic() - signalled
        await until_logged(worker, "circuit closed: stage triage resumes", timeout=5)
        await decisions.quiet(1.0)
        served = scrape(worker)
    finally:
        await feed.stop()
        stop_worker(worker)
        await decisions.stop()
        await dead.stop()
    print(f"\nreset figures: retried {took:.2f}s after a reset; decided {resumed:.2f}s after")
    assert resumed < 10, f"after the fix a reset took {resumed:.1f}s to take effect"
    got = {d.call_id: d for d in decisions.events()}
    assert len(decisions.records) == len(sent) and set(got) == {c.call_id for c in sent}
    for call in stale:
        assert (got[call.call_id].route, got[call.call_id].reasons[-1]) == ("police", "stale")
    for call in fresh:
        assert "stale" not in got[call.call_id].reasons
    assert dead.records == [], "no valid call was dead-lettered"
    assert 'heart_circuit_open{stage="triage"} 0.0' in served
    assert 'heart_circuit_trips_total{stage="triage"} 1.0' in served
    assert f'heart_stale_calls_total{{stage="triage"}} {float(len(stale))}' in served


@pytest.mark.broker
async def test_a_paused_stage_stops_on_sigterm_and_a_fixed_worker_decides_what_it_held(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"brkr{unique}."})
    await create_topics(scoped)
    fault = tmp_path / "bad-deploy"
    fault.touch()
    faulty = FaultyTriage("triage", scoped, tmp_path, HEART_TEST_FAULT_FILE=str(fault)).start()
    decisions = await TopicWatch(scoped, TRIAGE_DECISIONS).start()
    feed = await Feed(scoped).start()
    fixed: Worker | None = None
    try:
        await faulty.wait_ready(90)
        calls = [call_received(call_id=f"R-{i}", occurred_at=datetime.now(UTC)) for i in range(5)]
        for call in calls:
            await feed.send(CAD_CALLS, call.call_id, call)
        await feed.producer.flush()
        await until_logged(faulty, "CIRCUIT OPEN")
        started = time.monotonic()
        assert faulty.kill(signal.SIGTERM) == 0, "a paused worker stops cleanly"
        assert time.monotonic() - started < 20
        fixed = Worker("triage", scoped, tmp_path).start()  # the fixed deploy
        await decisions.wait(lambda w: len(w.records) >= len(calls), timeout=60, what="decisions")
        await decisions.quiet(1.0)
    finally:
        await feed.stop()
        stop_worker(faulty)
        if fixed is not None:
            stop_worker(fixed)
        await decisions.stop()
    assert sorted(d.call_id for d in decisions.events()) == sorted(c.call_id for c in calls)
    assert all(isinstance(d, TriageDecision) for d in decisions.events())
