"""Terminal output off a terminal: occasional plain progress lines, and libraries' logs kept
quiet so that a failure is the command's one line, not hundreds of aiokafka's."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from heart.cli.progress import LIBRARY_LOGGERS, PAYLOAD_LOGGERS, ProgressBar, configure_logs
from heart.streams.embedded.broker import EmbeddedBroker
from tests.kafka import ROOT


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_progress_is_a_plain_line_at_most_every_interval() -> None:
    out, clock = io.StringIO(), FakeClock()
    bar = ProgressBar("import x.csv", out, live=False, every=10, clock=clock)
    bar.update(10, 100, 10, "rows")
    assert out.getvalue() == "", "nothing before the first interval: a quick job is quiet"

    clock.now += 10
    bar.update(40, 100, 40, "rows")
    clock.now += 4
    bar.update(60, 100, 60, "rows")  # too soon after the last line
    clock.now += 6
    bar.update(80, 100, 80, "rows")
    clock.now += 30
    bar.update(100, 100, 100, "rows")  # finished: done() says it, once
    bar.done(100, "rows")

    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("import x.csv [") and " 40% 40 rows  10.0s 4 rows/s" in lines[0]
    assert " 80% 80 rows  20.0s 4 rows/s" in lines[1]
    assert " 100% 100 rows  50.0s 2 rows/s" in lines[2]
    assert "\x1b[" not in out.getvalue(), "plain lines: no cursor movements in a log"


def test_a_progress_bar_on_a_terminal_draws_no_plain_lines() -> None:
    out, clock = io.StringIO(), FakeClock()
    bar = ProgressBar("x", out, live=True, every=1, clock=clock)
    for done in range(1, 5):
        clock.now += 2
        bar.update(done, 10, done, "rows")
    bar.done(10, "rows")
    text = out.getvalue()
    assert "\x1b[" in text, "the bar is redrawn in place"
    assert text.count(" rows/s") == 1, "the only plain line is the summary"


@pytest.fixture
def saved_levels() -> Iterator[None]:
    names = ("", *LIBRARY_LOGGERS, *PAYLOAD_LOGGERS)
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("saved_levels")
def test_library_logs_stay_quiet_below_critical_unless_asked() -> None:
    assert configure_logs() == logging.WARNING
    aiokafka = logging.getLogger("aiokafka.conn")
    assert not aiokafka.isEnabledFor(logging.ERROR), "a reconnection error is not shown"
    assert aiokafka.isEnabledFor(logging.CRITICAL)
    assert not logging.getLogger("faust.topics").isEnabledFor(logging.ERROR)
    assert logging.getLogger("heart.cli.up").isEnabledFor(logging.WARNING), "HEART's own stay"

    configure_logs("warning")
    assert aiokafka.isEnabledFor(logging.WARNING), "--log-level brings them back"
    configure_logs(verbose=True)
    assert aiokafka.isEnabledFor(logging.INFO), "-v brings them back"
    configure_logs("debug")
    assert logging.getLogger("mode").isEnabledFor(logging.DEBUG)
    assert not aiokafka.isEnabledFor(logging.DEBUG), "records with callers' details never"


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert process.poll() is None, f"heart simulate ended early:\n{path.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout}s:\n{path.read_text()}"
        time.sleep(0.2)


#: Fast enough that calls are sent within a second or two of the start.
SIMULATE = ["--speed", "600", "--status-every", "0.5"]


@pytest.mark.broker
def test_a_broker_lost_mid_run_ends_simulate_with_one_line(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "heart.cli", "simulate", *SIMULATE],
            stdout=stdout,
            stderr=stderr,
            cwd=ROOT,
            env={**os.environ, "HEART_KAFKA_BOOTSTRAP": own_broker.bootstrap},
        )
        try:
            # A status line counting calls sent: the city is connected and producing.
            _wait_for(out, "calls=", process, timeout=60)
            own_broker.stop()
            process.wait(timeout=90)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    lines = err.read_text().splitlines()
    assert process.returncode == 69, lines[-5:]
    assert len(lines) <= 3, f"{len(lines)} lines on stderr, the first: {lines[:5]}"
    assert lines[-1].startswith(
        f"heart simulate: cannot reach the Kafka broker at {own_broker.bootstrap} "
    ), lines
    assert "Traceback" not in err.read_text() and "aiokafka" not in err.read_text()
