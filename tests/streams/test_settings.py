from __future__ import annotations

import pytest

from heart.streams.settings import HeartSettings, SettingsError


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
