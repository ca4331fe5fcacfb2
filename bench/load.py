"""Load benchmark: sustain N calls per second through every stage on the embedded broker.

Not a CI test. It starts its own embedded broker (unless ``--bootstrap`` is given), the
pilot stages' workers as separate processes (``heart worker triage|dispatch|navigation``, on
event time; ``--with-reporting`` adds the reporting stage), and plays a CAD (which closes its
calls), responder apps and care navigators:

- ``cad.calls``: ``call.received`` at ``--rate`` per second, event times following the
  wall clock from a Monday 10:00 in Durham (inside every pilot's hours); a mix of police,
  CCD (phone), CRT and CoR calls; the CAD closes every call: a CCD call two seconds later
  (so Care Navigation schedules a follow-up), any other 20 seconds later;
- ``units.status``: responders answer every ``dispatch.assigned`` with en route, on scene
  and cleared (so teams come free and dispatch keeps assigning);
- ``followup.outcomes``: care navigators answer every ``followup.due`` with ``reached``
  (``--navigators answer``, the default; ``none`` leaves every follow-up open for its 48
  hours). Navigation forgets a finished case ``--closed-retention-h`` hours after it
  closes (a week in production; 0.05 h here by default, so that ten minutes reach the
  steady state a week of real follow-ups would).

Every ``--sample`` seconds it records each stage's consumer lag (``heart_consumergroup_lag``
summed over partitions, from the worker's /metrics) and each worker's resident memory
(VmRSS from /proc/<pid>/status). End-to-end latency is measured from record timestamps:
the CAD ``call.received`` record to its ``triage.decision`` record and to its
``dispatch.assigned`` record. It prints a table and writes JSON.

    python bench/load.py                      # 600 s at 200 calls/s
    python bench/load.py --quick --json out.json   # about 15 s, for a smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from bench.harness import rss_mib  # noqa: E402
from heart.schemas import CallClosed, CallReceived, FollowupOutcome, UnitStatusReport  # noqa: E402
from heart.streams import embedded  # noqa: E402
from heart.streams.admin import create_topics  # noqa: E402
from heart.streams.codec import encode  # noqa: E402
from heart.streams.embedded.broker import EmbeddedBroker  # noqa: E402
from heart.streams.ports import find_free_port  # noqa: E402
from heart.streams.settings import HeartSettings  # noqa: E402
from heart.streams.topics import (  # noqa: E402
    CAD_CALLS,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    TRIAGE_DECISIONS,
    UNITS_STATUS,
)

STAGES = ("triage", "dispatch", "navigation")
#: Monday 15 July 2024, 10:00 in Durham: inside every pilot's hours and every team's shift.
EVENT_START = datetime(2024, 7, 15, 14, 0, tzinfo=UTC)
CRT_BEATS = ("111", "214", "411", "512")
#: When the CAD closes a call that was not resolved by phone, in seconds after it came in.
CLOSE_AFTER_S = 20.0
#: After the longest retention, one more minute for its first sweep to forget.
WARMUP_MARGIN_S = 60.0
#: The RSS growth compares the mean of this many seconds after warm-up with the last ones.
GROWTH_WINDOW_S = 60.0


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def metric_sum(port: int, name: str) -> float | None:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return None
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class StageWorker:
    stage: str
    settings: HeartSettings
    log_dir: Path
    metrics_port: int = field(default_factory=find_free_port)
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> StageWorker:
        env = {
            **os.environ,
            **self.env,
            "HEART_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "HEART_TOPIC_PREFIX": self.settings.topic_prefix,
            "HEART_METRICS_PORT": str(self.metrics_port),
            "HEART_CLOCK": "event",
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = self.log_dir / f"{self.stage}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "heart.cli", "worker", self.stage],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def ready(self) -> bool:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "Worker ready" in text or "[^Worker]: Ready" in text

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


class Load:
    def __init__(
        self,
        settings: HeartSettings,
        rate: float,
        duration: float,
        team_share: float,
        close: str = "all",
        navigators: str = "answer",
    ) -> None:
        self.settings = settings
        self.navigators_answer = navigators == "answer"
        self.outcomes_sent = 0
        self.close_all = close == "all"
        self.team_per_mille = round(team_share * 1000)
        self.rate = rate
        self.duration = duration
        self.sent_at: dict[str, int] = {}  # call_id -> cad record timestamp (ms)
        self.decided_ms: list[float] = []
        self.assigned_ms: list[float] = []
        self.decided: set[str] = set()
        self.assigned: set[str] = set()
        self.calls_sent = 0
        self.reports_sent = 0
        self.closes_sent = 0
        self.started = 0.0
        self.feed_seconds = 0.0
        #: After the load stops, how long to keep waiting for late decisions and
        #: assignments once none has arrived for that long (a busy machine delays them;
        #: a stalled stage stops them).
        self.drain_idle_s = 10.0
        #: The longest wait after the load stops, however slowly they still arrive.
        self.drain_max_s = 180.0
        self.stop = asyncio.Event()

    def event_now(self) -> datetime:
        return EVENT_START + timedelta(seconds=time.monotonic() - self.started)

    def call(self, i: int) -> CallReceived:
        at = self.event_now()
        kind = i % 1000
        team = self.team_per_mille
        common: dict[str, Any] = {
            "call_id": f"L-{i}",
            "event_id": f"load-{i}",
            "occurred_at": at,
            "location": {"address": f"{i % 900 + 100} Main St"},
            "caller": {"name": "Load Test", "phone": "919-555-0000"},
        }
        if kind < team * 2 // 3:  # CRT: in a pilot beat, in hours, someone must go
            return CallReceived(
                call_type="Welfare Check", beat=CRT_BEATS[i % 4], needs_in_person=True, **common
            )
        if kind < team:  # CoR: behavioural health with a weapon
            return CallReceived(
                call_type="Mental Health Crisis", beat="111", weapon_involved=True, **common
            )
        if kind < team + 270:  # CCD (27%): resolved by phone, closed later
            return CallReceived(
                call_type="Mental Health Crisis", beat="312", needs_in_person=False, **common
            )
        return CallReceived(call_type="Burglary", beat="213", **common)

    async def run(self) -> None:
        kwargs = self.settings.aiokafka_kwargs()
        producer = AIOKafkaProducer(linger_ms=5, **kwargs)  # type: ignore[arg-type]
        await producer.start()
        self.started = time.monotonic()
        watch = asyncio.create_task(self.watch(producer))
        try:
            await self.feed(producer)
        finally:
            self.stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(watch, 30)
            await producer.stop()

    async def feed(self, producer: AIOKafkaProducer) -> None:
        topic = CAD_CALLS.full_name(self.settings.topic_prefix)
        tick = 0.02
        closes: list[tuple[float, int, CallClosed]] = []  # a heap: due, sequence, event
        i = 0
        pending: list[tuple[str, asyncio.Future[Any]]] = []
        while time.monotonic() - self.started < self.duration:
            due = int((time.monotonic() - self.started) * self.rate)
            while i < due:
                call = self.call(i)
                fut = await producer.send(topic, encode(call), key=call.call_id.encode())
                pending.append((call.call_id, fut))
                # The CAD closes every call: phone-resolved ones after 2 s (so Care
                # Navigation schedules a follow-up), the others after CLOSE_AFTER_S.
                phone = call.call_type == "Mental Health Crisis" and not call.needs_in_person
                if not phone and not self.close_all:
                    i += 1
                    continue
                after = 2.0 if phone else CLOSE_AFTER_S
                closed = CallClosed(
                    call_id=call.call_id,
                    occurred_at=call.occurred_at + timedelta(seconds=after),
                    event_id=f"close-{i}",
                    disposition="resolved_by_phone" if phone else "cleared",
                )
                heapq.heappush(closes, (time.monotonic() + after, i, closed))
                i += 1
            now = time.monotonic()
            while closes and closes[0][0] <= now:
                _, _, closed = heapq.heappop(closes)
                await producer.send(topic, encode(closed), key=closed.call_id.encode())
                self.closes_sent += 1
            done = [(c, f) for c, f in pending if f.done()]
            pending = [(c, f) for c, f in pending if not f.done()]
            for call_id, fut in done:
                self.sent_at[call_id] = fut.result().timestamp
            await asyncio.sleep(tick)
        await producer.flush()
        self.feed_seconds = time.monotonic() - self.started
        for call_id, fut in pending:
            self.sent_at[call_id] = (await fut).timestamp
        self.calls_sent = i

    async def watch(self, producer: AIOKafkaProducer) -> None:
        """Read decisions and dispatch events; answer assignments as responder apps."""
        prefix = self.settings.topic_prefix
        consumer = AIOKafkaConsumer(
            TRIAGE_DECISIONS.full_name(prefix),
            DISPATCH_EVENTS.full_name(prefix),
            FOLLOWUP_TASKS.full_name(prefix),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            **self.settings.aiokafka_kwargs(),  # type: ignore[arg-type]
        )
        await consumer.start()
        embedded.tune_fetch_wait(consumer, self.settings)
        decisions = TRIAGE_DECISIONS.full_name(prefix)
        tasks = FOLLOWUP_TASKS.full_name(prefix)
        status_topic = UNITS_STATUS.full_name(prefix)
        outcome_topic = FOLLOWUP_OUTCOMES.full_name(prefix)
        early: list[tuple[str, str, int]] = []
        drain_started: float | None = None
        last_news = time.monotonic()
        try:
            while True:
                if self.stop.is_set():
                    now = time.monotonic()
                    drain_started = drain_started or now
                    caught_up = len(self.decided) >= self.calls_sent and not early
                    idle = now - last_news > self.drain_idle_s
                    if caught_up or idle or now - drain_started > self.drain_max_s:
                        return
                batch = await consumer.getmany(timeout_ms=100)
                if batch:
                    last_news = time.monotonic()
                for records in batch.values():
                    for record in records:
                        data = orjson.loads(record.value)
                        if record.topic == tasks:
                            if data["event_type"] == "followup.due" and self.navigators_answer:
                                await self.follow_up(producer, outcome_topic, data)
                            continue
                        call_id = data["call_id"]
                        if record.topic == decisions:
                            if data.get("revision") == 1 and call_id not in self.decided:
                                self.decided.add(call_id)
                                early.append(("d", call_id, record.timestamp))
                        elif (
                            data["event_type"] == "dispatch.assigned"
                            and call_id not in self.assigned
                        ):
                            self.assigned.add(call_id)
                            early.append(("a", call_id, record.timestamp))
                            await self.respond(producer, status_topic, data)
                still = []
                for kind, call_id, ts in early:
                    sent = self.sent_at.get(call_id)
                    if sent is None:
                        still.append((kind, call_id, ts))
                        continue
                    (self.decided_ms if kind == "d" else self.assigned_ms).append(ts - sent)
                early = still
        finally:
            await consumer.stop()

    async def respond(self, producer: AIOKafkaProducer, topic: str, assigned: dict) -> None:
        team, call_id = assigned["team_id"], assigned["call_id"]
        base = max(datetime.fromisoformat(assigned["occurred_at"]), self.event_now())
        for step, status in enumerate(("en_route", "on_scene", "cleared"), start=1):
            report = UnitStatusReport(
                team_id=team,
                status=status,  # type: ignore[arg-type]
                call_id=call_id,
                occurred_at=base + timedelta(milliseconds=200 * step),
                event_id=f"r-{call_id}-{status}",
            )
            await producer.send(topic, encode(report), key=team.encode())
            self.reports_sent += 1

    async def follow_up(self, producer: AIOKafkaProducer, topic: str, due: dict) -> None:
        case_id = due["case_id"]
        outcome = FollowupOutcome(
            case_id=case_id,
            outcome="reached",
            occurred_at=max(datetime.fromisoformat(due["occurred_at"]), self.event_now()),
            event_id=f"o-{case_id}",
        )
        await producer.send(topic, encode(outcome), key=case_id.encode())
        self.outcomes_sent += 1


async def sample(
    workers: list[StageWorker], every: float, stop: asyncio.Event, out: dict[str, list]
) -> None:
    began = time.monotonic()
    while not stop.is_set():
        t = round(time.monotonic() - began, 1)
        lag: dict[str, Any] = {"t": t}
        rss: dict[str, Any] = {"t": t}
        for w in workers:
            lag[w.stage] = metric_sum(w.metrics_port, "heart_consumergroup_lag")
            alive = w.proc is not None and w.proc.poll() is None
            value = rss_mib(w.proc.pid) if alive and w.proc is not None else None
            rss[w.stage] = round(value, 1) if value is not None else None
            if not alive and w.stage not in out["died"]:
                out["died"][w.stage] = t
        out["lag"].append(lag)
        out["rss_mib"].append(rss)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def warmup_seconds(duration_s: float, *retentions_h: float) -> float:
    """Until the longest retention has passed and its first sweep ran, a stage still gains
    state it is meant to hold; what it gains after that is what must stay flat."""
    return min(max(retentions_h, default=0.0) * 3600 + WARMUP_MARGIN_S, duration_s / 2)


def rss_growth(
    rows: list[dict[str, Any]], stage: str, warmup_s: float
) -> tuple[float | None, float | None]:
    """MiB and % from the mean of the first minute after warm-up to that of the last
    minute; ``(None, None)`` when the run is too short to have both apart."""

    def mean(start: float, end: float) -> float | None:
        values = [r[stage] for r in rows if start <= r["t"] < end and r.get(stage)]
        return statistics.fmean(values) if values else None

    end = rows[-1]["t"] if rows else 0.0
    if end - GROWTH_WINDOW_S < warmup_s + GROWTH_WINDOW_S:
        return None, None
    warm = mean(warmup_s, warmup_s + GROWTH_WINDOW_S)
    last = mean(end - GROWTH_WINDOW_S, end + 1)
    if warm is None or last is None:
        return None, None
    return round(last - warm, 1), round(100 * (last - warm) / warm, 1)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    log_dir = Path(tempfile.mkdtemp(prefix="heart-load-"))
    broker: EmbeddedBroker | None = None
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        broker = EmbeddedBroker(port=find_free_port(), log_file=log_dir / "broker.log").start()
        bootstrap = broker.bootstrap
    settings = HeartSettings(kafka_bootstrap=bootstrap, topic_prefix=f"load{int(time.time())}.")
    workers: list[StageWorker] = []
    samples: dict[str, Any] = {"lag": [], "rss_mib": [], "died": {}}
    stages = STAGES + (("reporting",) if args.with_reporting else ())
    try:
        await create_topics(settings)
        retention = {
            "HEART_NAVIGATION_CLOSED_RETENTION_H": str(args.closed_retention_h),
            "HEART_REPORTING_RECORD_RETENTION_H": str(args.reporting_retention_h),
        }
        workers = [StageWorker(s, settings, log_dir, env=retention).start() for s in stages]
        deadline = time.monotonic() + 120
        while not all(w.ready() for w in workers):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready in 120 s; logs in {log_dir}")
            for w in workers:
                if w.proc is not None and w.proc.poll() is not None:
                    raise RuntimeError(f"{w.stage} exited; see {w.log_path}")
            await asyncio.sleep(0.5)
        print(
            f"workers ready; {args.rate:g} calls/s for {args.duration:g} s (logs {log_dir})",
            flush=True,
        )
        load = Load(
            settings, args.rate, args.duration, args.team_share, args.close, args.navigators
        )
        load.drain_idle_s = 5.0 if args.quick else 10.0
        sampler_stop = asyncio.Event()
        sampler = asyncio.create_task(sample(workers, args.sample, sampler_stop, samples))
        began = time.monotonic()
        await load.run()
        elapsed = time.monotonic() - began
        sampler_stop.set()
        await sampler
        alive = {w.stage: w.proc is not None and w.proc.poll() is None for w in workers}
    finally:
        for w in workers:
            w.stop()
        if broker is not None:
            broker.stop()

    warmup_s = warmup_seconds(
        args.duration,
        args.closed_retention_h,
        args.reporting_retention_h if args.with_reporting else 0.0,
    )
    growth = {s: rss_growth(samples["rss_mib"], s, warmup_s) for s in stages}

    result = {
        "config": {
            "rate_per_s": args.rate,
            "duration_s": args.duration,
            "sample_s": args.sample,
            "cad_closes": args.close,
            "navigators": args.navigators,
            "navigation_closed_retention_h": args.closed_retention_h,
            "reporting_record_retention_h": (
                args.reporting_retention_h if args.with_reporting else None
            ),
            "mix": {
                "crt+cor (teams)": args.team_share,
                "ccd": 0.27,
                "police": round(0.73 - args.team_share, 3),
            },
            "machine_cores": os.cpu_count(),
        },
        "elapsed_s": round(elapsed, 1),
        "calls_sent": load.calls_sent,
        "feed_s": round(load.feed_seconds, 1),
        "achieved_rate_per_s": round(load.calls_sent / max(load.feed_seconds, 1e-9), 1),
        "decided_share": round(len(load.decided) / max(1, load.calls_sent), 4),
        "decided": len(load.decided),
        "assigned": len(load.assigned),
        "closes_sent": load.closes_sent,
        "reports_sent": load.reports_sent,
        "outcomes_sent": load.outcomes_sent,
        "stages": list(stages),
        "workers_alive_at_end": alive,
        "worker_died_at_s": samples["died"],
        "latency_ms": {
            "call_to_decision": percentiles(load.decided_ms),
            "call_to_assignment": percentiles(load.assigned_ms),
        },
        "max_lag_messages": {
            s: max((x[s] or 0) for x in samples["lag"]) if samples["lag"] else None for s in stages
        },
        "final_lag_messages": {
            s: samples["lag"][-1][s] if samples["lag"] else None for s in stages
        },
        "rss_mib_first_last": {
            s: (
                samples["rss_mib"][0][s] if samples["rss_mib"] else None,
                samples["rss_mib"][-1][s] if samples["rss_mib"] else None,
            )
            for s in stages
        },
        "warmup_s": round(warmup_s, 1),
        "rss_growth_after_warmup_mib": {s: growth[s][0] for s in stages},
        "rss_growth_after_warmup_pct": {s: growth[s][1] for s in stages},
        "lag": samples["lag"],
        "rss_mib": samples["rss_mib"],
        "logs": str(log_dir),
    }
    return result


def _cell(value: float | None) -> str:
    return f"{value:9.1f}" if value is not None else f"{'-':>9}"


def print_table(result: dict[str, Any]) -> None:
    print()
    print(
        f"calls sent {result['calls_sent']} in {result['feed_s']} s "
        f"({result['achieved_rate_per_s']}/s); decided {result['decided']}, "
        f"assigned {result['assigned']}, follow-ups answered {result['outcomes_sent']}"
    )
    print(f"{'latency (ms)':24} {'n':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for name, p in result["latency_ms"].items():
        cells = [p.get(k) for k in ("p50", "p90", "p99", "max")]
        text = " ".join(f"{c:8.0f}" if c is not None else f"{'-':>8}" for c in cells)
        print(f"{name:24} {p['n']:7d} {text}")
    print(
        f"growth: mean RSS of the last {GROWTH_WINDOW_S:.0f} s minus that of the "
        f"{GROWTH_WINDOW_S:.0f} s after warm-up ({result['warmup_s']:.0f} s)"
    )
    head = ("stage", "max lag", "end lag", "RSS first", "RSS last", "growth", "growth %")
    print(f"{head[0]:12} " + " ".join(f"{h:>9}" for h in head[1:]))
    for s in result["stages"]:
        first, last = result["rss_mib_first_last"][s]
        print(
            f"{s:12} {result['max_lag_messages'][s] or 0:9.0f} "
            f"{result['final_lag_messages'][s] or 0:9.0f} {first or 0:9.1f} {last or 0:9.1f} "
            f"{_cell(result['rss_growth_after_warmup_mib'][s])} "
            f"{_cell(result['rss_growth_after_warmup_pct'][s])}"
        )
    print("lag over time (messages, summed over partitions):")
    step = max(1, len(result["lag"]) // 20)
    for row in result["lag"][::step]:
        rss = next((r for r in result["rss_mib"] if r["t"] == row["t"]), {})
        print(
            f"  t={row['t']:6.1f}s "
            + " ".join(f"{s}={row[s] or 0:.0f}" for s in result["stages"])
            + " | RSS MiB "
            + " ".join(f"{s}={rss.get(s) or 0:.0f}" for s in result["stages"])
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=200.0, help="calls per second (default 200)")
    p.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    p.add_argument(
        "--team-share",
        type=float,
        default=0.01,
        help="share of calls that need a CRT or CoR team (default 0.01: 2 per second at 200/s)",
    )
    p.add_argument(
        "--close",
        choices=("all", "phone"),
        default="all",
        help="which calls the CAD closes: all (as a CAD does; default) or only phone-resolved "
        "ones (half the records on cad.calls; the mix of the first benchmark runs)",
    )
    p.add_argument(
        "--navigators",
        choices=("answer", "none"),
        default="answer",
        help="care navigators answer every follow-up as it comes due (default) or none",
    )
    p.add_argument(
        "--closed-retention-h",
        type=float,
        default=0.05,
        help="hours navigation keeps a finished case (HEART_NAVIGATION_CLOSED_RETENTION_H; "
        "production: 168; default here 0.05)",
    )
    p.add_argument(
        "--with-reporting",
        action="store_true",
        help="also run the reporting stage",
    )
    p.add_argument(
        "--reporting-retention-h",
        type=float,
        default=0.05,
        help="hours reporting keeps a call's record after its last fact "
        "(HEART_REPORTING_RECORD_RETENTION_H; production: 336; default here 0.05)",
    )
    p.add_argument("--quick", action="store_true", help="about 15 s of load, for a smoke test")
    p.add_argument("--json", type=Path, default=Path("bench-load.json"), help="JSON output file")
    p.add_argument("--bootstrap", default=None, help="use this Kafka instead of an embedded one")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 15.0)
        args.sample = min(args.sample, 2.0)
    return args


def cli(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = asyncio.run(main(args))
    args.json.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"\nJSON: {args.json}")
    if not all(result["workers_alive_at_end"].values()):
        print(f"a worker died: {result['worker_died_at_s']} (logs {result['logs']})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
