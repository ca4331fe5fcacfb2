"""The embedded broker's end-offset correction (``heart.streams.embedded``) and the worker's
fetch waits, against the real embedded broker.

Measured on the embedded broker with 30 keys written as one changelog batch:
``end_offsets()`` reports 1 instead of 30, and a restarted worker recovers 1 key
without the correction and all 30 with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from heart.streams.app import HeartApp, create_app
from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.embedded.end_offset_probe import true_end_offsets
from heart.streams.kafka.consumer import HeartConsumerThread
from heart.streams.kafka.transport import HeartTransport
from heart.streams.settings import HeartSettings
from tests.streams.table_worker import changelog_topic

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parents[3]
KEYS = 30
WORKER_FETCH_WAIT_MS = 25
WORKER_BACKLOG_WAIT_MS = 400
# What the running worker's consumer must use: the configured waits, in the fetcher that
# switches between them.
WORKER_FETCH_WAITS = {
    "fetcher": "BacklogAwareFetcher",
    "idle_ms": WORKER_FETCH_WAIT_MS,
    "backlog_ms": WORKER_BACKLOG_WAIT_MS,
}


async def create_topics(settings: HeartSettings, partitions: dict[str, int]) -> None:
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, num_partitions=n, replication_factor=1)
                for name, n in partitions.items()
            ]
        )
    finally:
        await admin.close()


async def produce_batch(
    settings: HeartSettings, topic: str, partition: int, records: list[tuple[bytes, bytes]]
) -> None:
    """Produce ``records`` as a single record batch, the case Tansu under-reports."""
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs())
    await producer.start()
    try:
        batch = producer.create_batch()
        for key, value in records:
            assert batch.append(key=key, value=value, timestamp=None) is not None
        await producer.send_batch(batch, topic, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def reported_end_offsets(
    settings: HeartSettings, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs())
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def test_end_offsets_under_reported_and_corrected(
    settings: HeartSettings, unique: str
) -> None:
    topic = f"eo-{unique}"
    await create_topics(settings, {topic: 3})
    many, one, empty = (TopicPartition(topic, p) for p in range(3))
    await produce_batch(settings, topic, 0, [(f"k{i}".encode(), b"v") for i in range(25)])
    await produce_batch(settings, topic, 1, [(b"only", b"v")])

    reported = await reported_end_offsets(settings, [many, one, empty])
    # The defect itself: base offset of the last batch + 1. A fix in Tansu turns this red,
    # and then the correction could go.
    assert reported[many] == 1
    assert reported[one] == 1
    assert reported[empty] == 0

    started = time.monotonic()
    corrected = await true_end_offsets(settings, [many, one, empty])
    elapsed = time.monotonic() - started
    assert corrected == {many: 25, one: 1, empty: 0}
    assert elapsed < 2.0, f"one probe for three partitions took {elapsed:.2f}s"

    # Ready connection kwargs work too, as lag metrics may hold them instead of settings.
    assert await true_end_offsets(settings.aiokafka_kwargs(), [many]) == {many: 25}
    assert await true_end_offsets(settings, []) == {}


async def test_worker_consumer_uses_configured_fetch_wait(
    broker: EmbeddedBroker, unique: str
) -> None:
    settings = HeartSettings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"fw-{unique}.",
        fetch_wait_ms=37,
        consumer_max_fetch_bytes=65_536,
        consumer_max_response_bytes=262_144,
    )
    app = create_app("triage", settings)
    assert isinstance(app, HeartApp)
    assert isinstance(app.transport, HeartTransport)
    thread = app.consumer._thread
    assert isinstance(thread, HeartConsumerThread)
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 37
        assert consumer._max_partition_fetch_bytes == 65_536
        assert consumer._fetch_max_bytes == 262_144
        # Everything else stays as Faust configures it.
        assert consumer._group_id == f"fw-{unique}.heart-triage"
        assert consumer._enable_auto_commit is False
    finally:
        await consumer.stop()


@dataclass
class WrittenTable:
    app_id: str
    changelog: TopicPartition
    expected: dict[str, str]
    idle_source: str
    env: dict[str, str]
    workdir: Path
    writer_status: dict[str, Any]


class Worker:
    """One ``table_worker`` subprocess."""

    def __init__(
        self, workdir: Path, name: str, app_id: str, source: str, env: dict[str, str]
    ) -> None:
        self.status_path = workdir / f"{name}.json"
        self.log_path = workdir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.streams.table_worker",
                    app_id,
                    source,
                    str(self.status_path),
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    async def recovered(self, timeout: float = 30.0) -> dict[str, Any]:
        """The status the worker writes once its table recovery is complete."""
        deadline = time.monotonic() + timeout
        while not self.status_path.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker did not recover within {timeout}s:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.1)
        return json.loads(self.status_path.read_text())

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                break
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def module_unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("table-worker")


@pytest.fixture(scope="module")
async def written_table(
    broker: EmbeddedBroker, module_unique: str, workdir: Path
) -> AsyncIterator[WrittenTable]:
    """A worker writes KEYS keys into its table, then dies by SIGKILL."""
    settings = HeartSettings(kafka_bootstrap=broker.bootstrap)
    app_id = f"tbl-{module_unique}"
    source, idle_source = f"tbl-src-{module_unique}", f"tbl-idle-{module_unique}"
    await create_topics(settings, {source: 1, idle_source: 1})
    expected = {f"key-{i:02d}": f"value-{i}" for i in range(KEYS)}
    await produce_batch(
        settings, source, 0, [(k.encode(), json.dumps(v).encode()) for k, v in expected.items()]
    )
    env = {
        **os.environ,
        "HEART_KAFKA_BOOTSTRAP": broker.bootstrap,
        "HEART_FETCH_WAIT_MS": str(WORKER_FETCH_WAIT_MS),
        "HEART_FETCH_BACKLOG_WAIT_MS": str(WORKER_BACKLOG_WAIT_MS),
    }
    # A long linger makes the changelog one multi-record batch, the case Tansu gets wrong.
    writer = Worker(workdir, "writer", app_id, source, {**env, "HEART_PRODUCER_LINGER_S": "0.2"})
    try:
        # Written after the first (empty) recovery, so Faust has declared the changelog.
        # Probing it earlier would wait for a changelog that does not exist yet.
        status = await writer.recovered()
        changelog = TopicPartition(changelog_topic(app_id), 0)
        deadline = time.monotonic() + 20
        while (await true_end_offsets(settings, [changelog]))[changelog] < KEYS:
            assert time.monotonic() < deadline, f"changelog incomplete:\n{writer.log_tail()}"
            await asyncio.sleep(0.2)
    finally:
        await writer.stop(signal.SIGKILL)
    yield WrittenTable(app_id, changelog, expected, idle_source, env, workdir, status)


async def recover(table: WrittenTable, name: str, correct: bool) -> dict[str, Any]:
    # The restarted worker reads an empty source topic, so the table can only be refilled
    # from the changelog, never by re-processing the input.
    env = {**table.env, "HEART_BROKER": "embedded" if correct else "kafka"}
    worker = Worker(table.workdir, name, table.app_id, table.idle_source, env)
    try:
        return await worker.recovered()
    finally:
        await worker.stop()


async def test_changelog_end_is_under_reported(
    written_table: WrittenTable, settings: HeartSettings
) -> None:
    # Precondition for the recovery tests: without it they would prove nothing.
    changelog = written_table.changelog
    reported = await reported_end_offsets(settings, [changelog])
    assert reported[changelog] < KEYS
    assert await true_end_offsets(settings, [changelog]) == {changelog: KEYS}
    assert written_table.writer_status["fetch_waits"] == WORKER_FETCH_WAITS


async def test_recovery_without_correction_drops_changelog_tail(
    written_table: WrittenTable,
) -> None:
    status = await recover(written_table, "uncorrected", correct=False)
    assert len(status["items"]) < KEYS


async def test_recovery_after_sigkill_restores_every_key(written_table: WrittenTable) -> None:
    status = await recover(written_table, "corrected", correct=True)
    assert status["items"] == written_table.expected
    assert status["fetch_waits"] == WORKER_FETCH_WAITS
