from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from heart.streams.settings import (
    HeartSettings,
    RunningUp,
    SettingsError,
    default_data_dir,
    remove_up_state,
    running_up,
    write_up_state,
)


def test_defaults_point_at_local_broker_with_short_fetch_wait() -> None:
    s = HeartSettings.from_env({})
    assert s.bootstrap_servers == ["127.0.0.1:9092"]
    assert s.fetch_wait_ms == 10
    assert s.clock == "wall"


def test_reads_heart_variables_only() -> None:
    s = HeartSettings.from_env(
        {"HEART_KAFKA_BOOTSTRAP": "k1:9093, k2:9093", "KAFKA_BOOTSTRAP": "ignored"}
    )
    assert s.bootstrap_servers == ["k1:9093", "k2:9093"]


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="HEART_FETCH_WAIT_MS"):
        HeartSettings.from_env({"HEART_FETCH_WAIT_MS": "soon"})
    with pytest.raises(SettingsError, match="HEART_CLOCK"):
        HeartSettings.from_env({"HEART_CLOCK": "sundial"})


def test_sasl_needs_credentials_and_passes_through() -> None:
    with pytest.raises(SettingsError, match="HEART_KAFKA_SASL_PASSWORD"):
        HeartSettings.from_env(
            {
                "HEART_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "HEART_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "HEART_KAFKA_SASL_USERNAME": "heart",
            }
        )
    s = HeartSettings.from_env(
        {
            "HEART_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "HEART_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "HEART_KAFKA_SASL_USERNAME": "heart",
            "HEART_KAFKA_SASL_PASSWORD": "s3cret",
        }
    )
    kwargs = s.aiokafka_kwargs()
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "heart"
    assert "s3cret" not in repr(s)


def test_faust_app_carries_sasl_credentials() -> None:
    from heart.streams.app import create_app

    s = HeartSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="heart",
        kafka_sasl_password="pw",
    )
    creds = create_app("triage", s).conf.broker_credentials
    assert creds.username == "heart"
    assert creds.mechanism.value == "SCRAM-SHA-256"


def test_metrics_bind_to_loopback_unless_told_otherwise() -> None:
    assert HeartSettings.from_env({}).metrics_host == "127.0.0.1"
    assert HeartSettings.from_env({"HEART_METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"


def test_data_dir_is_per_user_and_can_be_set(tmp_path: Path) -> None:
    assert default_data_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "heart"
    assert default_data_dir({}) == Path.home() / ".local" / "state" / "heart"
    assert HeartSettings.from_env({}).data_dir == default_data_dir()
    s = HeartSettings.from_env({"HEART_DATA_DIR": "~/heart-state"})
    assert s.data_dir == Path.home() / "heart-state"


@contextlib.contextmanager
def listening() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_a_running_heart_up_is_found_while_its_process_and_broker_live(tmp_path: Path) -> None:
    with listening() as port:
        up = RunningUp(pid=os.getpid(), bootstrap=f"127.0.0.1:{port}")
        path = write_up_state(tmp_path, up)
        assert path == tmp_path / "up.json"
        assert running_up(tmp_path) == up
        # Another process's note is not ours to remove.
        remove_up_state(tmp_path, os.getpid() + 1)
        assert running_up(tmp_path) == up
    # The broker is gone (a crashed heart up whose pid was reused): not running.
    assert running_up(tmp_path) is None
    remove_up_state(tmp_path, os.getpid())
    assert not path.exists()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    with listening() as port:
        write_up_state(tmp_path, RunningUp(pid=int(dead.stdout), bootstrap=f"127.0.0.1:{port}"))
        assert running_up(tmp_path) is None
    path.write_text("not json")
    assert running_up(tmp_path) is None


def test_settings_use_a_running_heart_up_only_without_an_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with listening() as port:
        write_up_state(tmp_path, RunningUp(pid=os.getpid(), bootstrap=f"127.0.0.1:{port}"))
        env = {"HEART_DATA_DIR": str(tmp_path)}
        found = HeartSettings.from_env(env, find_running_up=True)
        assert found.kafka_bootstrap == f"127.0.0.1:{port}"
        assert found.broker == "embedded"
        err = capsys.readouterr().err
        assert err == (
            f"heart: using the broker of the running `heart up` (pid {os.getpid()}) at "
            f"127.0.0.1:{port}; set HEART_KAFKA_BOOTSTRAP to use another\n"
        )
        told = HeartSettings.from_env(
            {**env, "HEART_KAFKA_BOOTSTRAP": "k1:9093"}, find_running_up=True
        )
        assert told.kafka_bootstrap == "k1:9093"
        # A mapping given by a caller (tests, tools) is taken as it is.
        assert HeartSettings.from_env(env).kafka_bootstrap == "127.0.0.1:9092"
        assert capsys.readouterr().err == ""


def test_containers_set_the_metrics_address_and_data_dir_explicitly() -> None:
    import yaml

    root = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    configmap = yaml.safe_load((root / "deploy" / "k8s" / "settings.yaml").read_text())
    for name, env in (("compose", compose["x-heart-env"]), ("k8s", configmap["data"])):
        chosen = ("HEART_METRICS_HOST", "HEART_DATA_DIR")
        settings = HeartSettings.from_env({k: str(env[k]) for k in chosen})
        assert settings.metrics_host == "0.0.0.0", name
        # The image's working directory: writable by its user, an emptyDir on Kubernetes.
        assert settings.data_dir == Path("/var/lib/heart"), name
