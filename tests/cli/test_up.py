"""``heart up`` end to end: its own embedded broker, every stage, the simulator, Ctrl-C."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from heart.agents.registry import STAGES
from heart.streams.ports import find_free_port
from tests.kafka import ROOT, processes_with


def test_heart_up_runs_every_stage_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    marker = f"HEART_TEST_MARKER={uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if k != "HEART_KAFKA_BOOTSTRAP"}
    env[marker.split("=")[0]] = marker.split("=")[1]
    first_port = find_free_port(count=len(STAGES))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "heart.cli",
            "up",
            "--speed",
            "1200",
            "--status-every",
            "1",
            "--log-dir",
            str(tmp_path),
            "--metrics-port",
            str(first_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    metrics_urls: list[str] = []
    console_url: str | None = None
    decided = due = outcomes = 0
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.search(r"metrics (http://\S+/metrics)", line):
                metrics_urls.append(m.group(1))
            if m := re.search(r"^console\s+(http://\S+) · sign in as (\S+) / (\S+)", line):
                console_url, user, password = m.groups()
            if m := re.search(r"decisions: ccd=(\d+) crt=(\d+) cor=(\d+) police=(\d+)", line):
                decided = sum(int(x) for x in m.groups())
            if m := re.search(r"followups due=(\d+) outcomes=(\d+)", line):
                due, outcomes = int(m.group(1)), int(m.group(2))
            # Through every stage: triage decided, teams dispatched and cleared, follow-ups
            # released to navigators, and their outcomes reported.
            if decided >= 20 and due >= 1 and outcomes >= 1:
                break
        assert decided >= 20 and due >= 1 and outcomes >= 1, "".join(lines[-30:])
        assert len(metrics_urls) == len(STAGES), "".join(lines[-30:])
        for url in metrics_urls:
            try:
                body = urllib.request.urlopen(url, timeout=5).read().decode()
            except OSError as exc:
                raise AssertionError(f"{url}: {exc}\n{''.join(lines[-30:])}") from exc
            assert "heart_events_consumed_total" in body
        # The console runs, and the demo sign-in it printed lets a supervisor in.
        assert console_url is not None, "".join(lines[-30:])
        board = _sign_in(console_url, user, password)
        assert "data-page='board'" in board, board[:500]
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines)
    assert proc.returncode == 0, output[-3000:]
    assert "stopped: no stage or broker process left running" in output
    assert " died (exit " not in output, output[-3000:]
    assert processes_with(marker) == [], "a stage or broker outlived heart up"


def _sign_in(url: str, user: str, password: str) -> str:
    """Sign in through the console's form, as a browser would; the page it lands on."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    form = opener.open(f"{url}/signin", timeout=5).read().decode()
    m = re.search(r"name='csrf' value='([^']+)'", form)
    assert m is not None, form[:500]
    data = urllib.parse.urlencode({"csrf": m.group(1), "user": user, "password": password})
    return opener.open(f"{url}/signin", data=data.encode(), timeout=5).read().decode()
