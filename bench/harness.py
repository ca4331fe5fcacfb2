"""Benchmark plumbing: worker processes, fast produce, read-back, committed offsets, RSS.

Throughput is measured from the record timestamps a stage writes (the producer's create
time, kept by the broker), first to last output derived from the input, after the stage
has drained its input. The benchmark process does not read while a stage runs, so that it
takes no CPU from the stage: it only polls the consumer group's committed offsets.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from heart.streams import embedded

# Bound on import: the first call of ``heart.streams.embedded.end_offsets`` imports the
# package's submodule of the same name, which then takes that name in the package.
from heart.streams.embedded import end_offsets as corrected_end_offsets
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings

ROOT = Path(__file__).resolve().parents[1]
READY_MARKERS = ("[^Worker]: Ready", "Worker ready")


def rss_mib(pid: int) -> float | None:
    """Resident set size of a process from /proc, in MiB (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds a process has used, from /proc (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of stat(5), counted after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    """A worker (or raw relay) subprocess with its own log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path
    ready_markers: Sequence[str] = READY_MARKERS
    proc: subprocess.Popen[bytes] | None = None
    rss: dict[str, float | None] = field(default_factory=dict)

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start:\n{self.log()[-3000:]}")
            text = self.log()
            if any(marker in text for marker in self.ready_markers):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready in {timeout:.0f}s:\n{self.log()[-3000:]}")

    def cpu(self) -> float | None:
        return cpu_s(self.pid) if self.proc is not None else None

    def sample_rss(self, label: str) -> float | None:
        value = rss_mib(self.pid) if self.proc is not None else None
        self.rss[label] = value
        return value

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Fleet:
    """Starts processes against one broker; every process is stopped on exit."""

    def __init__(self, settings: HeartSettings, work_dir: Path) -> None:
        self.settings = settings
        self.work_dir = work_dir
        self.procs: list[Proc] = []

    def _env(self, prefix: str, extra: dict[str, str], code: Path) -> dict[str, str]:
        # ``code`` first on the path: a baseline source tree shadows the installed one.
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            "HEART_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "HEART_TOPIC_PREFIX": prefix,
            "HEART_METRICS_PORT": str(find_free_port()),
            **extra,
        }

    def _proc(
        self, name: str, argv: list[str], prefix: str, extra: dict[str, str], code: Path
    ) -> Proc:
        # Each process gets its own working directory: Faust writes its data dir there.
        cwd = self.work_dir / f"{prefix}{name}"
        cwd.mkdir(parents=True, exist_ok=True)
        proc = Proc(name, argv, self._env(prefix, extra, code), cwd / "worker.log", cwd)
        self.procs.append(proc)
        return proc

    def worker(self, stage: str, prefix: str, code: Path = ROOT, **extra: str) -> Proc:
        """``heart worker STAGE``, exactly as deployed, from the source tree ``code``."""
        argv = [sys.executable, "-m", "heart.cli", "worker", stage]
        return self._proc(stage, argv, prefix, extra, code)

    def module(
        self, name: str, module: str, prefix: str, *args: str, code: Path = ROOT, **extra: str
    ) -> Proc:
        argv = [sys.executable, "-m", module, *args]
        return self._proc(name, argv, prefix, extra, code)

    async def start(self, *procs: Proc, timeout: float = 120.0) -> None:
        for proc in procs:
            proc.start()
        await asyncio.gather(*(p.wait_ready(timeout) for p in procs))
        for proc in procs:
            proc.sample_rss("ready")

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.stop()


# --- topics -------------------------------------------------------------------------------


async def create_plain_topics(
    settings: HeartSettings, names: Iterable[str], partitions: int
) -> None:
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        for name in names:
            if name not in existing:
                await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def produce(
    settings: HeartSettings, topic: str, records: Sequence[tuple[bytes | None, bytes]]
) -> float:
    """Send every record as fast as the client goes; returns the seconds it took."""
    producer = AIOKafkaProducer(
        linger_ms=5,
        max_batch_size=256 * 1024,
        **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
    )
    await producer.start()
    began = time.perf_counter()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - began


async def read_all(
    settings: HeartSettings, topic: str, partitions: int, timeout: float = 120.0
) -> list[ConsumerRecord]:
    """Every record of a topic, read to the high watermark of a fetch (not end_offsets)."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
    )
    await consumer.start()
    embedded.tune_fetch_wait(consumer, settings)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    records: list[ConsumerRecord] = []
    try:
        ends = await end_offsets(settings, tps, consumer)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                return records
            batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
            for recs in batch.values():
                records.extend(recs)
        raise TimeoutError(f"read {topic}: {len(records)} records in {timeout:.0f}s, not all")
    finally:
        await consumer.stop()


async def end_offsets(
    settings: HeartSettings,
    tps: Sequence[TopicPartition],
    consumer: AIOKafkaConsumer | None = None,
) -> dict[TopicPartition, int]:
    """The end offset of each partition: what the started ``consumer`` (else a group-less
    one for the question) reports, corrected on the embedded broker."""
    if not tps:
        return {}
    if consumer is not None:
        return await corrected_end_offsets(settings, tps, await consumer.end_offsets(tps))
    probe = AIOKafkaConsumer(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await probe.start()
    try:
        return await end_offsets(settings, tps, probe)
    finally:
        await probe.stop()


async def committed(
    settings: HeartSettings, group: str, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        answer = await admin.list_consumer_group_offsets(group, partitions=list(tps))
    finally:
        await admin.close()
    return {
        tp: (meta.offset if meta is not None and meta.offset >= 0 else 0)
        for tp, meta in answer.items()
    }


async def wait_drained(
    settings: HeartSettings,
    group: str,
    inputs: Sequence[tuple[str, int]],
    internal: Sequence[tuple[str, int]] = (),
    *,
    timeout: float,
    procs: Sequence[Proc] = (),
    poll_s: float = 0.5,
    on_poll: Callable[[], None] | None = None,
) -> bool:
    """Wait until the group has committed every input record, and every internal record
    that existed a moment ago (timers keep adding ticks there). False on timeout."""
    in_tps = [TopicPartition(t, p) for t, n in inputs for p in range(n)]
    int_tps = [TopicPartition(t, p) for t, n in internal for p in range(n)]
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await consumer.start()
    try:
        in_ends = await end_offsets(settings, in_tps, consumer)
        history: list[tuple[float, dict[TopicPartition, int]]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in procs:
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} died:\n{proc.log()[-3000:]}")
            if on_poll is not None:
                on_poll()
            now = time.monotonic()
            ends = await end_offsets(settings, int_tps, consumer)
            history.append((now, ends))
            done = await committed(settings, group, in_tps + int_tps)
            if all(done[tp] >= in_ends[tp] for tp in in_tps):
                old = [h for t, h in history if t <= now - 1.5]
                if not int_tps or (old and all(done[tp] >= old[-1][tp] for tp in int_tps)):
                    return True
            await asyncio.sleep(poll_s)
        return False
    finally:
        await consumer.stop()


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
