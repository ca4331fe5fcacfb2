"""Shared fixtures: one embedded broker per test session, never a mock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings


@pytest.fixture(scope="session", autouse=True)
def _worker_state_in_the_session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Workers the tests start inherit this, so their state never lands in the user's
    HEART_DATA_DIR (nor, before it existed, in the current directory)."""
    previous = os.environ.get("HEART_DATA_DIR")
    os.environ["HEART_DATA_DIR"] = str(tmp_path_factory.mktemp("heart-data"))
    yield
    if previous is None:
        os.environ.pop("HEART_DATA_DIR", None)
    else:
        os.environ["HEART_DATA_DIR"] = previous


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_file = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(port=find_free_port(), log_file=log_file) as running:
        yield running


@pytest.fixture
def settings(broker: EmbeddedBroker) -> HeartSettings:
    """Settings pointing at the session broker, tuned as for ``heart up``."""
    return HeartSettings(kafka_bootstrap=broker.bootstrap)


@pytest.fixture
def unique() -> str:
    """A short suffix that keeps topic and group names of one test apart from others."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def worker_env(broker: EmbeddedBroker) -> dict[str, str]:
    """Environment for a ``heart worker`` subprocess against the session broker."""
    return {**os.environ, "HEART_KAFKA_BOOTSTRAP": broker.bootstrap}


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, to restart empty (the session broker is left alone)."""
    broker = EmbeddedBroker(port=find_free_port(), log_file=tmp_path / "own-broker.log").start()
    try:
        yield broker
    finally:
        broker.stop()
