"""A ``heart up`` whose broker could not have port 9092 says where it went, and the other
commands find it without being told."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from heart.agents.registry import STAGES
from heart.streams.ports import find_free_port
from heart.streams.settings import UP_STATE_FILE, running_up

pytestmark = pytest.mark.broker


@contextlib.contextmanager
def port_9092_taken() -> Iterator[None]:
    """Something listening on 9092 for the test (or already there: just as good)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 9092))
        sock.listen()
    except OSError:
        sock.close()
        yield
        return
    try:
        yield
    finally:
        sock.close()


def heart(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heart.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_up_off_port_9092_says_where_and_other_commands_find_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HEART_KAFKA_BOOTSTRAP"}
    env["HEART_DATA_DIR"] = str(tmp_path / "state")
    first_port = find_free_port(count=len(STAGES))
    with port_9092_taken():
        args = ["up", "--no-sim", "--duration", "120", "--status-every", "600"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "heart.cli", *args, "--metrics-port", str(first_port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            bootstrap = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and bootstrap is None:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if m := re.search(r"^\s*export HEART_KAFKA_BOOTSTRAP=(127\.0\.0\.1:\d+)$", line):
                    bootstrap = m.group(1)
            output = "".join(lines)
            assert bootstrap is not None, output
            assert "port 9092 is taken" in output, output
            assert bootstrap != "127.0.0.1:9092"
            # heart up leaves its address for the others, and they use it while it runs.
            state = tmp_path / "state" / UP_STATE_FILE
            assert orjson.loads(state.read_bytes()) == {
                "pid": proc.pid,
                "bootstrap": bootstrap,
                "broker": "embedded",
            }
            found = running_up(tmp_path / "state")
            assert found is not None and found.bootstrap == bootstrap
            while "topics:" not in "".join(lines):
                lines.append(proc.stdout.readline())
            listed = heart("topics", "list", env=env)
            assert listed.returncode == 0, listed.stderr
            notice = listed.stderr.strip().splitlines()
            assert notice == [
                f"heart: using the broker of the running `heart up` (pid {proc.pid}) at "
                f"{bootstrap}; set HEART_KAFKA_BOOTSTRAP to use another"
            ], listed.stderr
            assert "missing" not in listed.stdout, listed.stdout
            assert re.search(r"^cad\.calls\s.*6 partitions", listed.stdout, re.M), listed.stdout
            # The simulated city alone finds it too (heart up --no-sim + heart simulate).
            simulated = heart(
                "simulate", "--duration", "3", "--status-every", "1", "--speed", "600", env=env
            )
            assert simulated.returncode == 0, simulated.stderr
            assert f"at {bootstrap}" in simulated.stderr
            assert f"against the broker at {bootstrap}" in simulated.stdout
            # Given an address, a command uses it and says nothing about heart up.
            told = heart("topics", "list", env={**env, "HEART_KAFKA_BOOTSTRAP": bootstrap})
            assert told.returncode == 0 and "heart up" not in told.stderr, told.stderr
            proc.send_signal(signal.SIGINT)
            rest, _ = proc.communicate(timeout=60)
            lines.append(rest)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, "".join(lines)[-3000:]
    assert not state.exists(), "heart up removes its note when it stops"
    assert running_up(tmp_path / "state") is None
