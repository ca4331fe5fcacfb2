"""``heart up`` on a pipe and on a terminal: status, quiet libraries, no stray files, and a
stage that cannot start stops it with the stage's own words."""

from __future__ import annotations

import io
import itertools
import logging
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from heart.agents.registry import STAGES
from heart.cli.progress import LIBRARY_LOGGERS, PAYLOAD_LOGGERS, LiveStatus, configure_logs
from heart.streams.ports import find_free_port
from tests.kafka import processes_with

STATUS_LINE = re.compile(r"^\[\w{3} \d{4}-\d\d-\d\d \d\d:\d\d\] calls=\d+ decisions: ")


def up(tmp: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    base = {k: v for k, v in os.environ.items() if k != "HEART_KAFKA_BOOTSTRAP"}
    base["HEART_DATA_DIR"] = str(tmp / "state")
    first_port = find_free_port(count=len(STAGES))
    return subprocess.run(
        [sys.executable, "-m", "heart.cli", "up", "--metrics-port", str(first_port), *args],
        cwd=tmp,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.broker
def test_up_on_a_pipe_prints_plain_status_lines_and_no_library_logs(tmp_path: Path) -> None:
    result = up(tmp_path, "--duration", "14", "--status-every", "2", "--speed", "600")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    status = [line for line in result.stdout.splitlines() if STATUS_LINE.match(line)]
    # Every 2 s for 14 s, and the last status once more when stopping.
    assert 4 <= len(status) <= 9, result.stdout
    assert "\x1b[" not in result.stdout, "no terminal control codes on a pipe"
    assert "aiokafka" not in output, output
    assert " INFO " not in output, output
    assert "stopped: no stage or broker process left running" in result.stdout
    # Worker state went to the data directory's run folder, and that is gone again; so is
    # the note that tells other commands where this heart up's broker was.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert list((tmp_path / "state").iterdir()) == []


@pytest.mark.broker
def test_up_verbose_brings_the_library_logs_back(tmp_path: Path) -> None:
    result = up(tmp_path, "--duration", "4", "--status-every", "60", "-v")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r" INFO aiokafka", result.stderr), result.stderr[-3000:]


@pytest.mark.broker
def test_up_stops_with_the_stage_error_when_a_stage_cannot_start(tmp_path: Path) -> None:
    roster = tmp_path / "roster.toml"
    roster.write_text('name = "broken"\nversion = 1\n[[teams]]\nid = 5\n')
    marker = uuid.uuid4().hex
    result = up(
        tmp_path,
        "--duration",
        "60",
        env={"HEART_ROSTER": str(roster), "HEART_TEST_MARKER": marker},
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr
    assert "heart up: stage dispatch could not start: roster file" in result.stderr
    assert "teams[0].id: must be a string" in result.stderr
    assert "(full log: " in result.stderr
    assert "stopped: no stage or broker process left running" in result.stdout
    assert processes_with(f"HEART_TEST_MARKER={marker}") == []


def test_live_status_off_a_terminal_prints_a_plain_line_now_and_then() -> None:
    out = io.StringIO()
    seconds = itertools.count()  # a clock that moves a second each time it is read
    with LiveStatus(out, every=5, live=False, clock=lambda: float(next(seconds))) as status:
        for i in range(12):
            status.show(["a terminal", f"view {i}"], f"plain {i}")
        status.note("stage x restarted")
    assert out.getvalue().splitlines() == ["plain 4", "plain 9", "stage x restarted"]


def test_live_status_on_a_terminal_redraws_in_place_and_leaves_the_last_line() -> None:
    out = io.StringIO()
    with LiveStatus(out, every=5, live=True) as status:
        status.show(["calls 1", "teams 0 busy"], "plain 1")
        status.note("stage x restarted")
        status.show(["calls 2", "teams 1 busy"], "plain 2")
    text = out.getvalue()
    assert "\x1b[" in text  # drawn in place with cursor movements
    assert "stage x restarted" in text
    assert text.rstrip().endswith("plain 2")  # what stays once the display is gone


def test_logs_are_quiet_by_default_and_payload_loggers_never_go_below_info() -> None:
    saved = {name: logging.getLogger(name).level for name in ("", *LIBRARY_LOGGERS)}
    try:
        assert configure_logs() == logging.WARNING
        assert all(logging.getLogger(n).level == logging.CRITICAL for n in LIBRARY_LOGGERS)
        assert configure_logs(verbose=True) == logging.INFO
        assert configure_logs("debug") == logging.DEBUG
        assert logging.getLogger("mode").level == logging.DEBUG
        assert all(logging.getLogger(n).level == logging.INFO for n in PAYLOAD_LOGGERS)
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def test_a_stages_own_error_line_is_found_in_its_log() -> None:
    from heart.cli.supervisor import logged_error, stage_error

    worker_said = (
        "2026-01-01 10:00:00,000 INFO heart.streams.admin created topic cad.calls\n"
        "heart worker: roster file r.toml has 2 problems:\n"
        "  name: required key is missing\n"
        "  teams[0].id: must be a string\n"
    )
    assert stage_error(worker_said) == (
        "roster file r.toml has 2 problems:\n"
        "  name: required key is missing\n"
        "  teams[0].id: must be a string"
    )
    crashed = (
        "heart worker triage: metrics on http://127.0.0.1:9105/metrics\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "    raise KeyError('triage')\n"
        "KeyError: 'triage'\n"
        "[2026-01-01 10:00:01,000] [1] [INFO] [^Worker]: Stopping...\n"
    )
    assert stage_error(crashed) == "KeyError: 'triage'"
    # A stage killed by a signal logged no error: only its last words are left.
    killed = "heart worker triage: metrics on http://127.0.0.1:9105/metrics\n[^Worker]: Ready\n"
    assert logged_error(killed) is None
    assert stage_error(killed) == "[^Worker]: Ready"
    assert stage_error("\n  just this  \n\n") == "just this"
    assert stage_error("") == "no output (see its log)"
