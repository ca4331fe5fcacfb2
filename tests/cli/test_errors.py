"""Failures a person can act on: one line naming the problem and the fix, a documented exit
status, never a traceback. Each runs the real ``heart`` command in a subprocess."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError

from heart.cli.broker_reach import (
    BROKER_UNAVAILABLE_EXIT,
    BrokerUnavailable,
    check_broker,
    is_broker_unavailable,
)
from heart.cli.main import BROKEN_PIPE_EXIT, build_parser
from heart.cli.options import share
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings
from tests.kafka import ROOT


def heart(
    *args: str, env: dict[str, str] | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heart.cli", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


# --- an unreachable broker ------------------------------------------------------------------


@pytest.fixture
def nowhere() -> str:
    """A bootstrap address where nothing listens."""
    return f"127.0.0.1:{find_free_port()}"


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "list"],
        ["topics", "create"],
        ["simulate", "--duration", "5"],
        ["report", "--month", "2024-07"],
        ["import", "data/sanjose-2024-calls-sample.csv", "--mapping", "sanjose-2024", "--to-topic"],
        ["console", "--port", "65001"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_an_unreachable_broker_is_one_line_with_the_address_and_the_fix(
    command: list[str], nowhere: str, tmp_path: Path
) -> None:
    if command[0] == "report":
        command = [*command, "--out", str(tmp_path)]
    env = {"HEART_KAFKA_BOOTSTRAP": nowhere}
    if command[0] == "console":
        # Without a shared session secret the console also warns, on a line of its own.
        env["HEART_CONSOLE_SECRET"] = "x" * 32
    done = heart(*command, env=env)
    assert done.returncode == BROKER_UNAVAILABLE_EXIT == 69, done.stderr
    assert done.stderr.splitlines() == [
        f"heart {command[0]}: cannot reach the Kafka broker at {nowhere} (connection refused); "
        "start one with `heart broker` (or run everything with `heart up`), or set "
        "HEART_KAFKA_BOOTSTRAP to a running broker's host:port"
    ]
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
    assert not list(tmp_path.iterdir()), "nothing is written without a broker"


def test_an_unreachable_broker_stops_a_worker_after_its_metrics_port(nowhere: str) -> None:
    done = heart(
        "worker",
        "triage",
        env={"HEART_KAFKA_BOOTSTRAP": nowhere, "HEART_METRICS_PORT": str(find_free_port())},
    )
    assert done.returncode == 69, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"heart worker: cannot reach the Kafka broker at {nowhere} (connection refused); "
        "start one with `heart broker` (or run everything with `heart up`), or set "
        "HEART_KAFKA_BOOTSTRAP to a running broker's host:port"
    )
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
    assert "ERROR" not in done.stderr, "aiokafka's own account of it is not repeated"


def test_up_pointed_at_an_unreachable_broker_offers_its_embedded_one(nowhere: str) -> None:
    done = heart("up", "--duration", "5", env={"HEART_KAFKA_BOOTSTRAP": nowhere})
    assert done.returncode == 69, done.stderr
    assert done.stderr.strip() == (
        f"heart up: cannot reach the Kafka broker at {nowhere} (connection refused); start "
        "that broker, or unset HEART_KAFKA_BOOTSTRAP for `heart up` to start an embedded one"
    )


def test_a_broker_that_never_answers_times_out_with_the_address() -> None:
    # Accepts connections (the kernel's backlog) but never answers a request.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(BrokerUnavailable) as caught:
            check_broker(HeartSettings(kafka_bootstrap=address), timeout=0.5)
    assert caught.value.bootstrap == address
    assert f"at {address} (no answer within 0.5 s)" in str(caught.value)


def test_broker_errors_are_recognised_through_causes_and_groups() -> None:
    def raised_from(cause: BaseException) -> RuntimeError:
        try:
            raise RuntimeError("stage failed") from cause
        except RuntimeError as exc:
            return exc

    assert is_broker_unavailable(KafkaConnectionError("Unable to bootstrap"))
    assert is_broker_unavailable(raised_from(NodeNotReadyError("node 1")))
    assert is_broker_unavailable(ExceptionGroup("tasks", [ValueError(), NodeNotReadyError()]))
    assert is_broker_unavailable(BrokerUnavailable("h:1", "connection refused"))
    assert not is_broker_unavailable(raised_from(ValueError("bad row")))
    assert not is_broker_unavailable(asyncio.CancelledError())


# --- option values checked while parsing ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option", "says"),
    [
        (["up", "--speed", "-5"], "--speed", "must be greater than 0, not '-5'"),
        (["up", "--speed", "0"], "--speed", "must be greater than 0, not '0'"),
        (["up", "--speed", "nan"], "--speed", "must be a finite number, not 'nan'"),
        (["up", "--duration", "0"], "--duration", "must be greater than 0"),
        (["up", "--status-every", "-1"], "--status-every", "must be greater than 0"),
        (["up", "--metrics-port", "0"], "--metrics-port", "must be a port number from 1 to"),
        (["up", "--seed", "abc"], "--seed", "invalid int value: 'abc'"),
        (["simulate", "--speed", "0"], "--speed", "must be greater than 0"),
        (["simulate", "--duration", "-3"], "--duration", "must be greater than 0"),
        (["simulate", "--status-every", "0"], "--status-every", "must be greater than 0"),
        (["simulate", "--seed", "1.5"], "--seed", "invalid int value: '1.5'"),
        (["broker", "--port", "70000"], "--port", "must be a port number from 1 to 65535"),
        (["broker", "--port", "http"], "--port", "must be a port number from 1 to 65535"),
        (
            ["replay", "x.csv", "--mapping", "m", "--speed", "0"],
            "--speed",
            "must be 'max' or a number",
        ),
        (["replay", "x.csv", "--mapping", "m", "--speed", "fast"], "--speed", "must be 'max' or a"),
        (
            ["import", "x.csv", "--mapping", "m", "--max-reject-rate", "1.5"],
            "--max-reject-rate",
            "must be a share between 0 and 1",
        ),
        (
            ["import", "x.csv", "--mapping", "m", "--max-reject-rate", "-0.1"],
            "--max-reject-rate",
            "must be a share between 0 and 1",
        ),
        (
            ["whatif", "x.csv", "--mapping", "m", "--travel-minutes", "-1"],
            "--travel-minutes",
            "must be 0 or more",
        ),
    ],
)
def test_a_bad_option_value_stops_the_command_while_parsing(
    args: list[str], option: str, says: str
) -> None:
    done = heart(*args)
    assert done.returncode == 2
    assert f"error: argument {option}: {says}" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == "", "nothing started"


def test_good_option_values_parse_to_what_the_commands_expect() -> None:
    parser = build_parser()
    replay = parser.parse_args(["replay", "x.csv", "--mapping", "m", "--speed", "max"])
    assert replay.speed is None
    assert parser.parse_args(["replay", "x.csv", "--mapping", "m", "--speed", "0.5"]).speed == 0.5
    up = parser.parse_args(["up", "--speed", "1e3", "--metrics-port", "65535", "--seed", "7"])
    assert (up.speed, up.metrics_port, up.seed) == (1000.0, 65535, 7)
    assert parser.parse_args(["broker", "--port", "1"]).port == 1
    imp = parser.parse_args(["import", "x.csv", "--mapping", "m", "--max-reject-rate", "1"])
    assert imp.max_reject_rate == 1.0
    assert parser.parse_args(["import", "x.csv", "--mapping", "m"]).max_reject_rate == 0.2
    whatif = parser.parse_args(["whatif", "x.csv", "--mapping", "m", "--travel-minutes", "0"])
    assert whatif.travel_minutes == 0.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"e\.g\. 0\.2 for 20%"):
        share("20%")


# --- small breakages ------------------------------------------------------------------------


def test_a_reader_that_goes_away_ends_the_import_quietly(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    rows = [
        f'{n},2018-05-01 10:00:00,"1 EXAMPLE ST,MKE",43.05,-87.95,3,TRAFFIC STOP,Advised'
        for n in range(5_000)
    ]
    header = "id,time,location,latitude,longitude,district,nature,status"
    export.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    # Like `| head -c 100`: read a little, then close the pipe while heart still writes.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "heart.cli",
            "import",
            str(export),
            "--mapping",
            "milwaukee-2018",
            "--jsonl",
            "-",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == BROKEN_PIPE_EXIT == 141
    assert "Broken pipe" not in err and "Errno" not in err and "Traceback" not in err


def test_decide_names_one_line_number_the_input_line() -> None:
    lines = b"\n".join([b"not json", b'{"event_type": "call.received", ', b'  {"x": tru}'])
    done = heart("decide", "-", stdin=lines + b"\n")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "line 1: invalid_json: invalid literal, expected 'null' at column 1",
        "line 2: invalid_json: unexpected end of data at column 33",
        "line 3: invalid_json: invalid literal, expected 'true' at column 9",
        "heart decide: 3 invalid line(s)",
    ]
