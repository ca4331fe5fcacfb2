"""Losing the broker, and losing a stage process under ``heart up``.

1. A separate embedded broker (the session broker is left alone) serves a triage worker;
   the broker is stopped (memory storage: every topic and committed offset is gone),
   started again on the same port, the catalog's topics are recreated, and the *same*
   worker process decides new calls without being restarted.
2. ``heart up`` supervises its stages: one stage process is SIGKILLed, ``heart up`` reports
   that it died and that it restarted it, and the stage serves /metrics again.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from heart.agents.registry import STAGES
from heart.cli.worker import RECOVERY_STALLED_EXIT
from heart.streams.admin import create_topics
from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, TRIAGE_CALLS, TRIAGE_DECISIONS
from tests.factories import call_received
from tests.kafka import ROOT, Worker, processes_with, produce, read_topic
from tests.reliability.support import TopicWatch, stop_worker

pytestmark = pytest.mark.broker

CHANGELOG = TRIAGE_CALLS.changelog.name
# Keys of 1 KiB, so that a fetch (1 MiB per partition) holds about a thousand records and
# recovery keeps fetching: frozen, the broker then stops it within a second or two.
STALL_RECORDS = 40_000
STALL_KEY_PAD = "x" * 1024
STALL_TIMEOUT_S = 5.0


async def _partitions(settings: HeartSettings, topic: str) -> int | None:
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return None
        [described] = await admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        await admin.close()


async def test_workers_reconnect_and_resume_after_the_broker_restarts(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = HeartSettings(kafka_bootstrap=own_broker.bootstrap, topic_prefix="loss.")
    await create_topics(settings)
    worker = Worker("triage", settings, tmp_path).start()
    try:
        await worker.wait_ready(90)
        before = [call_received(call_id=f"B-{i}", event_id=f"b-{i}") for i in range(20)]
        await produce(settings, CAD_CALLS, [(c.call_id, c) for c in before])
        await read_topic(settings, TRIAGE_DECISIONS, until=lambda r: len(r) >= 20, timeout=30)
        changelog = f"{settings.topic_prefix}{CHANGELOG}"
        assert await _partitions(settings, changelog) == CAD_CALLS.partitions
        # The outage comes while the worker is idle: a table's changelog record follows
        # its batch's outputs by a produce round trip, and one still in flight when the
        # broker comes back empty used to recreate the changelog by auto-creation before
        # the catalog did (docs/reliability.md, "Topics are never auto-created"; tested in
        # tests/streams/test_explicit_topics.py). This test is about reconnecting.
        written = await _changelog_keys(settings, changelog)
        assert {f'"{c.call_id}"' for c in before} <= written

        # The broker goes away for a few seconds, then comes back empty on the same port.
        pid = worker.proc.pid if worker.proc else None
        own_broker.stop()
        await asyncio.sleep(3.0)
        own_broker.start()
        await create_topics(settings)

        # The same process, never restarted, decides calls sent after the outage.
        after = [call_received(call_id=f"A-{i}", event_id=f"a-{i}") for i in range(20)]
        decisions = await TopicWatch(settings, TRIAGE_DECISIONS).start()
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                await produce(settings, CAD_CALLS, [(c.call_id, c) for c in after])
                try:
                    await decisions.wait(
                        lambda w: {c.call_id for c in after} <= {r.key.decode() for r in w.records},
                        timeout=10,
                        what="decisions after the outage",
                    )
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail(f"no decisions after the broker came back:\n{worker.log()[-3000:]}")
        finally:
            await decisions.stop()
        assert worker.proc is not None and worker.proc.poll() is None
        assert worker.proc.pid == pid, "the worker was not restarted"

        # The table's changelog is recreated with the catalog (docs/reliability.md, "Broker loss
        # and table recovery"),
        # not by the broker's auto-creation with its default partition count.
        assert await _partitions(settings, changelog) == CAD_CALLS.partitions
        # The table state of calls decided after the outage reaches the new changelog.
        written = await _changelog_keys(settings, changelog)
        persisted = sorted(c.call_id for c in after if f'"{c.call_id}"' in written)
        assert len(persisted) == len(after), persisted
    finally:
        stop_worker(worker)


async def test_a_worker_whose_table_recovery_stalls_exits_for_a_restart(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The broker freezes (SIGSTOP) while a triage worker recovers a large changelog: the
    worker must not wait for good, but log critically and exit with status 75 once
    recovery has made no progress for HEART_RECOVERY_STALL_TIMEOUT_S."""
    settings = HeartSettings(kafka_bootstrap=own_broker.bootstrap, topic_prefix="stall.")
    await create_topics(settings)
    changelog = TRIAGE_CALLS.changelog.full_name(settings.topic_prefix)
    # Tombstones for keys the table never held: recovery must read them all, and applying
    # them changes nothing, so the worker's state does not depend on their content.
    producer = AIOKafkaProducer(linger_ms=20, **settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await producer.start()
    try:
        for i in range(STALL_RECORDS):
            await producer.send(
                changelog, key=json.dumps(f"S-{i}-{STALL_KEY_PAD}").encode(), value=None
            )
        await producer.flush()
    finally:
        await producer.stop()

    worker = Worker(
        "triage", settings, tmp_path, HEART_RECOVERY_STALL_TIMEOUT_S=str(STALL_TIMEOUT_S)
    ).start()
    assert worker.proc is not None and own_broker.pid is not None
    frozen_at: float | None = None
    try:
        deadline = time.monotonic() + 90
        while "Restoring state from changelog topics" not in worker.log():
            assert worker.proc.poll() is None, worker.log()[-3000:]
            assert time.monotonic() < deadline, f"recovery never started:\n{worker.log()[-3000:]}"
            await asyncio.sleep(0.05)
        os.kill(own_broker.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        code = await asyncio.to_thread(worker.proc.wait, STALL_TIMEOUT_S + 60)
        waited = time.monotonic() - frozen_at
    finally:
        if frozen_at is not None:
            os.kill(own_broker.pid, signal.SIGCONT)
        stop_worker(worker)
    log = worker.log()
    assert "Ready" not in log.split("Restoring state from changelog topics", 1)[-1], (
        "recovery finished before the broker froze; write more records"
    )
    assert code == RECOVERY_STALLED_EXIT, log[-3000:]
    assert "table recovery made no progress" in log
    assert STALL_TIMEOUT_S <= waited < STALL_TIMEOUT_S + 30


async def _changelog_keys(settings: HeartSettings, topic: str) -> set[str]:
    consumer = AIOKafkaConsumer(
        topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
    )
    await consumer.start()
    keys: set[str] = set()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                keys.update(r.key.decode() for r in records if r.key)
    finally:
        await consumer.stop()
    return keys


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _metrics_ok(port: int) -> bool:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return False
    return b"heart_events_consumed_total" in body or b"heart_circuit_open" in body


async def test_heart_up_reports_and_restarts_a_killed_stage(tmp_path: Path) -> None:
    # In a thread: the session's event loop stays free for the scenarios running meanwhile.
    await asyncio.to_thread(_heart_up_kill_and_restart, tmp_path)


def _heart_up_kill_and_restart(tmp_path: Path) -> None:
    marker = f"HEART_RELIABILITY_MARKER={uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if k != "HEART_KAFKA_BOOTSTRAP"}
    env[marker.split("=")[0]] = marker.split("=")[1]
    first_port = find_free_port(count=len(STAGES))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "heart.cli",
            "up",
            "--no-sim",
            "--status-every",
            "60",
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
    assert proc.stdout is not None
    lines: list[str] = []
    ports: dict[str, int] = {}

    def read_until(pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            lines.append(line)
            if m := re.search(r"stage (\w+)\s+metrics http://127.0.0.1:(\d+)/metrics", line):
                ports[m.group(1)] = int(m.group(2))
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"{pattern!r} not seen:\n{''.join(lines[-40:])}")

    try:
        read_until(r"stage triage\s+metrics", 60)
        port = ports["triage"]
        deadline = time.monotonic() + 90
        while not _metrics_ok(port):
            assert time.monotonic() < deadline, "triage never served metrics"
            time.sleep(0.5)
        [victim] = [p for p in processes_with(marker) if "worker triage" in _cmdline(p)]
        os.kill(victim, signal.SIGKILL)

        died = read_until(r"stage triage died \(exit (-?\d+)\); restart #1 in (\d+)s", 30)
        assert died.group(1) == str(-signal.SIGKILL)
        restarted = read_until(r"stage triage restarted \(pid (\d+)\)", 30)
        new_pid = int(restarted.group(1))
        assert new_pid != victim
        # The new process binds the same metrics port once it is up.
        deadline = time.monotonic() + 90
        while not _metrics_ok(port):
            assert time.monotonic() < deadline, "the restarted triage never served metrics"
            time.sleep(0.5)
        assert any("worker triage" in _cmdline(p) for p in processes_with(marker))
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    output = "".join(lines)
    assert proc.returncode == 0, output[-3000:]
    assert "stopped: no stage or broker process left running" in output
    assert processes_with(marker) == [], "a stage or broker outlived heart up"
