from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest

from heart.agents.registry import STAGES
from heart.cli.main import main
from heart.schemas import TriageDecision
from heart.streams import ports
from heart.streams.ports import find_free_port
from heart.streams.topics import CATALOG
from tests.factories import call_received
from tests.kafka import ROOT


def heart(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "heart.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


def test_decide_reports_invalid_lines_and_still_decides_valid_ones() -> None:
    lines = b"\n".join(
        [
            call_received(call_id="1", call_type=" TRESPASS ").model_dump_json().encode(),
            b"not json",
            b'{"event_type":"call.received","call_id":"3","call_type":"x",'
            b'"occurred_at":"2024-07-15T10:00:00"}',
            call_received(call_id="4", weapon_involved=True).model_dump_json().encode(),
        ]
    )
    result = heart("decide", "-", stdin=lines)
    assert result.returncode == 1
    decisions = [TriageDecision.model_validate_json(x) for x in result.stdout.splitlines()]
    assert [(d.call_id, d.route) for d in decisions] == [("1", "crt"), ("4", "police")]
    err = result.stderr.decode()
    assert "line 2: invalid_json" in err
    assert "line 3: naive_timestamp: occurred_at" in err
    assert "Jordan" not in result.stdout.decode(), "caller data never reaches a decision"


def test_decide_with_a_bad_policy_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "policy" / "durham.toml").read_text().replace('"fri"', '"fir"', 1))
    result = heart("decide", "--policy", str(bad), "-", stdin=b"")
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "bad.toml" in err and "days" in err and "fir" in err


def test_decide_clean_input_exits_zero(tmp_path: Path) -> None:
    src = tmp_path / "calls.jsonl"
    src.write_bytes(call_received().model_dump_json().encode() + b"\n")
    result = heart("decide", str(src))
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["route"] == "crt"


def test_unknown_stage_names_the_stages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "triag"]) == 2
    err = capsys.readouterr().err
    assert "unknown stage 'triag'; the stages are:" in err and "triage" in err


def test_a_taken_metrics_port_stops_the_worker_with_the_port_named() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Nothing listens at the bootstrap address: the worker must stop before it needs it.
        env = {
            **os.environ,
            "HEART_METRICS_PORT": str(port),
            "HEART_KAFKA_BOOTSTRAP": f"127.0.0.1:{find_free_port()}",
        }
        result = heart("worker", "triage", env=env)
    assert result.returncode == 2
    err = result.stderr.decode()
    # The host is the metrics bind address setting's default; the port is the taken one.
    assert "heart worker triage: cannot serve metrics on " in err and f":{port} " in err
    assert "HEART_METRICS_PORT" in err and "Address already in use" in err
    assert "Kafka" not in err, "a taken port is named before the broker is needed"


def test_up_names_the_taken_metrics_port_and_its_stage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = find_free_port(count=len(STAGES))
    stages = sorted(STAGES)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first + 2))
        taken.listen()
        assert main(["up", "--metrics-port", str(first), "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert f"--metrics-port {first}: the stages need ports {first}-{first + len(STAGES) - 1}" in err
    assert f"but {first + 2} ({stages[2]}) is in use; choose another first port" in err


def test_up_refuses_a_first_metrics_port_with_no_room_for_every_stage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A port that is no port at all (0) is refused while parsing (tests/cli/test_errors.py);
    # a real port too close to 65535 for every stage is refused by `heart up` itself.
    last = 65_535 - len(STAGES) + 1
    assert main(["up", "--metrics-port", str(last + 1), "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert f"--metrics-port {last + 1}: the first of {len(STAGES)} stage ports" in err
    assert f"between 1 and {last}" in err


def test_a_port_left_in_time_wait_by_a_scrape_is_free_for_a_metrics_server() -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import start_http_server

    port = find_free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=CollectorRegistry())
    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    server.shutdown()
    server.server_close()
    thread.join(5)
    # The server side closed first, so its end of the connection lingers in TIME_WAIT.
    assert ports.can_listen("127.0.0.1", port, reuse=True)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=CollectorRegistry())
    server.shutdown()
    server.server_close()


def test_typo_in_a_command_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["topcs", "create"])
    assert "invalid choice: 'topcs'" in capsys.readouterr().err


def test_schemas_export(tmp_path: Path) -> None:
    assert main(["schemas", "export", str(tmp_path)]) == 0
    assert (tmp_path / "CallReceived.schema.json").exists()


def test_schemas_export_covers_every_catalog_topic(tmp_path: Path) -> None:
    assert main(["schemas", "export", str(tmp_path)]) == 0
    index = json.loads((tmp_path / "index.json").read_text())
    assert set(index["topics"]) == set(CATALOG)
    monthly = json.loads((tmp_path / index["topics"]["reports.monthly"]).read_text())
    assert {"month", "pilots", "calls"} <= set(monthly["properties"])
    for name in index["topics"].values():
        assert json.loads((tmp_path / name).read_text())["$schema"].endswith("2020-12/schema")
