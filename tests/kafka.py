"""Real-broker helpers for integration tests: produce, read back, run stage workers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner
from pydantic import BaseModel

from heart.streams import embedded
from heart.streams.codec import encode
from heart.streams.settings import HeartSettings
from heart.streams.topics import TopicSpec

ROOT = Path(__file__).resolve().parents[1]


async def produce(
    settings: HeartSettings,
    spec: TopicSpec,
    records: Iterable[tuple[str | None, bytes | BaseModel]],
) -> None:
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await producer.start()
    try:
        for key, value in records:
            raw = encode(value) if isinstance(value, BaseModel) else value
            await producer.send(
                spec.full_name(settings.topic_prefix),
                value=raw,
                key=key.encode() if key is not None else None,
            )
        await producer.flush()
    finally:
        await producer.stop()


async def produce_placed(
    settings: HeartSettings, records: Iterable[tuple[TopicSpec, str, int, BaseModel]]
) -> None:
    """Each ``(topic, key, partition, event)`` onto the partition given, whatever its key:
    as a producer that partitions its own way would."""
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await producer.start()
    try:
        for spec, key, partition, event in records:
            await producer.send(
                spec.full_name(settings.topic_prefix),
                value=encode(event),
                key=key.encode(),
                partition=partition,
            )
        await producer.flush()
    finally:
        await producer.stop()


def key_partition(key: str, partitions: int) -> int:
    """The partition aiokafka's default partitioner (the stages' producers') gives a key."""
    every = list(range(partitions))
    return DefaultPartitioner()(key.encode(), every, every)


async def read_topic(
    settings: HeartSettings,
    spec: TopicSpec,
    *,
    until: Callable[[list[ConsumerRecord]], bool],
    timeout: float = 30.0,
    settle: float = 0.0,
) -> list[ConsumerRecord]:
    """Read a topic from the beginning until ``until(records)`` holds, then ``settle`` more
    seconds so that a wrong extra record (a duplicate) has the chance to show up."""
    consumer = AIOKafkaConsumer(
        spec.full_name(settings.topic_prefix),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
    )
    await consumer.start()
    embedded.tune_fetch_wait(consumer, settings)
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        settle_end: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for recs in batch.values():
                records.extend(recs)
            if settle_end is None and until(records):
                settle_end = time.monotonic() + settle
            if settle_end is not None and time.monotonic() >= settle_end:
                return records
        raise TimeoutError(
            f"{spec.name}: condition not met in {timeout:.0f}s; got {len(records)} records"
        )
    finally:
        await consumer.stop()


#: The line ``heart worker`` prints once it serves metrics.
_METRICS_LINE = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")


class Worker:
    """``heart worker STAGE`` as a real subprocess, so that SIGKILL is a real crash."""

    def __init__(self, stage: str, settings: HeartSettings, log_dir: Path, **env: str) -> None:
        self.stage = stage
        self.log_path = log_dir / f"{stage}-{time.monotonic_ns()}.log"
        self.env = {
            **os.environ,
            "HEART_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HEART_TOPIC_PREFIX": settings.topic_prefix,
            # The worker binds a free port itself and names it: a port picked here could be
            # taken by another test's process before the worker binds it.
            "HEART_METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_from = 0

    @property
    def metrics_port(self) -> int:
        """The port this run of the worker serves metrics on, from its own start-up line."""
        deadline = time.monotonic() + 30
        while True:
            text = self.log_path.read_bytes()[self._log_from :].decode(errors="replace")
            found = _METRICS_LINE.findall(text)
            if found:
                return int(found[-1])
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.stage} named no metrics port:\n{text[-3000:]}")
            time.sleep(0.1)

    def start(self) -> Worker:
        self._log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "heart.cli", "worker", self.stage],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Ready once the consumer group has assigned this worker its partitions."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.stage} exited:\n{self.log()[-3000:]}")
            if "Worker ready" in self.log() or "[^Worker]: Ready" in self.log():
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"worker {self.stage} not ready in {timeout}s:\n{self.log()[-3000:]}")

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.kill(signal.SIGTERM) if self.proc and self.proc.poll() is None else None


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def key_per_partition(prefix: str, partitions: int) -> list[str]:
    """One key per partition (``prefix-0``, ``prefix-1``... as the default partitioner
    spreads them), in partition order: to reach every partition of a topic keyed by id."""
    chosen: dict[int, str] = {}
    i = 0
    while len(chosen) < partitions:
        key = f"{prefix}-{i}"
        chosen.setdefault(key_partition(key, partitions), key)
        i += 1
    return [chosen[p] for p in range(partitions)]
