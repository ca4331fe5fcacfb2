"""The memory section: resident memory of each worker at the start and end of a sustained
run at the sizes' ``sustain_rate`` calls/s (every stage, wall clock), and what each had
not yet committed when the load stopped."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import TopicPartition

from bench import harness, workload
from bench.common import Batch, Bench, Plan, Traffic, rounded
from bench.harness import Proc
from heart.agents.registry import STAGES
from heart.streams.admin import create_topics
from heart.streams.codec import encode
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CAD_CALLS,
    DISPATCH_CLEARED,
    DISPATCH_COMMANDS,
    DISPATCH_EVENTS,
    NAVIGATION_COMMANDS,
    REPORTS_COMMANDS,
    TRIAGE_CLOSURES,
    TRIAGE_DECISIONS,
)


def plan(bench: Bench) -> Plan:
    prefix = bench.prefix("memory")
    stages = [s for s in ("triage", "dispatch", "navigation", "reporting") if s in STAGES]
    return {"memory": [bench.fleet.worker(s, prefix, **bench.live_env()) for s in stages]}


async def prepare_topics(bench: Bench) -> None:
    await create_topics(bench.s(bench.prefix("memory")))


async def memory(bench: Bench, planned: Plan) -> dict[str, Any]:
    s = bench.s(bench.prefix("memory"))
    await prepare_topics(bench)
    procs = await bench.workers("memory", planned)
    for proc in procs:
        proc.sample_rss("start")
    rate, duration = bench.sizes.sustain_rate, bench.sizes.sustain_s
    warm_at = min(60.0, duration / 10)
    samples: list[dict[str, Any]] = []

    def sample(label: str | None, at: float) -> None:
        row = {"t_s": round(at, 1)}
        for proc in procs:
            value = proc.sample_rss(label) if label else harness.rss_mib(proc.pid)
            row[proc.name] = rounded(value)
        samples.append(row)

    bench.log(f"memory: {rate} calls/s for {duration:.0f}s, stages {[p.name for p in procs]}")
    figures = await _sustain(bench, s, rate, duration, warm_at, sample)
    lag = await _lag(s, procs)
    stages = {}
    for proc in procs:
        start, warm, end = (proc.rss.get(k) for k in ("start", "warm", "end"))
        stages[proc.name] = {
            "ready_mib": rounded(proc.rss.get("ready")),
            "start_mib": rounded(start),
            "warm_mib": rounded(warm),
            "end_mib": rounded(end),
            "growth_from_start_pct": _pct(start, end),
            "growth_after_warmup_pct": _pct(warm, end),
            "backlog_at_end": lag.get(proc.name),
        }
    bench.release("memory", planned)
    return {
        "rate": rate,
        "seconds": duration,
        "warmup_s": warm_at,
        **figures,
        "stages": stages,
        "samples": samples,
    }


async def _sustain(
    bench: Bench,
    s: HeartSettings,
    rate: int,
    duration: float,
    warm_at: float,
    sample: Callable[[str | None, float], None],
) -> dict[str, Any]:
    """Calls at ``rate`` with the Durham-like share of team calls; the CAD closes every
    call 5 s after it came in, responder apps clear each team as soon as it is
    assigned, and care navigators answer nothing (follow-ups stay open)."""
    prefix = s.topic_prefix
    traffic = Traffic(s, DISPATCH_EVENTS.full_name(prefix), linger_ms=5, fetch_max_wait_ms=20)
    producer = traffic.producer
    gen = workload.LiveCalls(team_share=0.1, seed=200, tag=f"{bench.run_id}-mem")
    events: Counter[str] = Counter()

    async def receive(batch: Batch) -> None:
        for recs in batch.values():
            for r in recs:
                data = orjson.loads(r.value)
                events[data["event_type"]] += 1
                await traffic.clear_if_assigned(data)

    await traffic.start(receive)
    closing: list[tuple[float, str]] = []
    began = time.monotonic()
    next_sample = began + 10.0
    warmed = False
    sent = 0
    while True:
        now = time.monotonic()
        elapsed = now - began
        if elapsed >= duration:
            break
        due = int(elapsed * rate) + 1
        while sent < due:
            call, _team = gen.next()
            await producer.send(
                CAD_CALLS.full_name(prefix), encode(call), key=call.call_id.encode()
            )
            closing.append((now + 5.0, call.call_id))
            sent += 1
        while closing and closing[0][0] <= now:
            _, call_id = closing.pop(0)
            await producer.send(
                CAD_CALLS.full_name(prefix),
                encode(workload.closed(call_id)),
                key=call_id.encode(),
            )
        if not warmed and elapsed >= warm_at:
            sample("warm", elapsed)
            warmed = True
        elif now >= next_sample:
            sample(None, elapsed)
            next_sample += 10.0
        await asyncio.sleep(0.01)
    sample("end", time.monotonic() - began)
    await traffic.stop()
    return {"calls_sent": sent, "dispatch_events": dict(events)}


async def _lag(s: HeartSettings, procs: list[Proc]) -> dict[str, int]:
    """Records each stage had not yet committed on its main topics when the load stopped."""
    prefix = s.topic_prefix
    topics = {
        "triage": [CAD_CALLS],
        "dispatch": [TRIAGE_DECISIONS, DISPATCH_COMMANDS],
        "navigation": [TRIAGE_CLOSURES, DISPATCH_CLEARED, NAVIGATION_COMMANDS],
        "reporting": [TRIAGE_DECISIONS, REPORTS_COMMANDS],
    }
    out: dict[str, int] = {}
    for proc in procs:
        tps = [
            TopicPartition(spec.full_name(prefix), p)
            for spec in topics.get(proc.name, [])
            for p in range(spec.partitions)
        ]
        if not tps:
            continue
        ends = await harness.end_offsets(s, tps)
        done = await harness.committed(s, f"{prefix}heart-{proc.name}", tps)
        out[proc.name] = sum(max(0, ends[tp] - done[tp]) for tp in tps)
    return out


def _pct(before: float | None, after: float | None) -> float | None:
    if not before or after is None:
        return None
    return round((after - before) / before * 100, 1)
