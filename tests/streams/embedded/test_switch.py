"""``HEART_BROKER`` is the one switch for the embedded broker's workarounds."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition

from heart.streams import embedded
from heart.streams.settings import HeartSettings, SettingsError

TP = TopicPartition("cad.calls", 0)


def test_the_switch_defaults_to_the_embedded_broker_and_names_a_bad_value() -> None:
    assert HeartSettings.from_env({}).broker == "embedded"
    assert HeartSettings.from_env({"HEART_BROKER": "kafka"}).broker == "kafka"
    with pytest.raises(SettingsError, match="HEART_BROKER"):
        HeartSettings.from_env({"HEART_BROKER": "tansu"})


async def test_on_kafka_reported_end_offsets_are_taken_as_they_are() -> None:
    # No broker listens on this port: any probe would fail, so none may be made.
    kafka = HeartSettings(broker="kafka", kafka_bootstrap="127.0.0.1:1")
    assert await embedded.end_offsets(kafka, [TP], {TP: 7}) == {TP: 7}
    assert not embedded.active(kafka)


def test_the_backlog_wait_is_installed_only_on_the_embedded_broker(monkeypatch: Any) -> None:
    installed: list[tuple[Any, int, int | None]] = []
    monkeypatch.setattr(
        embedded,
        "use_backlog_wait",
        lambda c, backlog, idle=None: installed.append((c, backlog, idle)),
    )
    consumer: Any = object()
    embedded.tune_fetch_wait(consumer, HeartSettings(broker="kafka"))
    assert installed == []
    embedded.tune_fetch_wait(consumer, HeartSettings(fetch_backlog_wait_ms=400), idle_wait_ms=10)
    assert installed == [(consumer, 400, 10)]


def test_no_submodule_shadows_a_function_of_the_switch() -> None:
    # Importing a submodule sets it as an attribute of the package: one named like a
    # function of the switch would replace that function after the first import.
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(embedded.__path__)}
    assert not submodules & set(embedded.__all__)
    assert callable(embedded.end_offsets) and callable(embedded.tune_fetch_wait)
