"""The latency section: CAD ``call.received`` -> first dispatch event of each team call
(assigned, or queued when no team is free), triage + dispatch on the wall clock, at each
rate of the sizes; the raw aiokafka chain (``bench.rawhop``, 2 and 3 hops) at the same
rates."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench import harness, workload
from bench.common import FIRST_EVENTS, Batch, Bench, Plan, Traffic, rounded
from bench.harness import percentile
from heart.streams.admin import create_topics
from heart.streams.codec import encode
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, DISPATCH_EVENTS

_FIRST = tuple(kind.encode() for kind in FIRST_EVENTS)


def plan(bench: Bench) -> Plan:
    """The raw chain: three relays, ``chain.0`` -> ``chain.1`` -> ``chain.2`` ->
    ``chain.3``. The pipeline's workers are started per rate (in quick mode the memory
    section's serve)."""
    prefix = bench.prefix("rawchain")
    return {
        "rawchain": [
            bench.rawhop(f"hop{i}", f"chain.{i}", f"chain.{i + 1}", prefix) for i in range(3)
        ]
    }


async def prepare_topics(bench: Bench) -> None:
    prefix = bench.prefix("rawchain")
    await harness.create_plain_topics(bench.s(prefix), [f"{prefix}chain.{i}" for i in range(4)], 6)


async def latency(bench: Bench, planned: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {"pipeline": {}, "raw_2hop": {}, "raw_3hop": {}}
    for rate in bench.sizes.rates:
        if bench.quick:
            # Quick mode: the memory section's workers (same settings) serve all rates.
            prefix = bench.prefix("memory")
            procs = await bench.workers("memory", planned)
        else:
            prefix = bench.prefix(f"latency-{rate}")
            env = bench.live_env()
            procs = [bench.fleet.worker(st, prefix, **env) for st in ("triage", "dispatch")]
            await create_topics(bench.s(prefix))
            await bench.fleet.start(*procs)
        figures = await _pipeline(bench, bench.s(prefix), rate, f"r{rate}")
        out["pipeline"][str(rate)] = figures
        bench.log(f"latency at {rate}/s: {figures}")
        if not bench.quick:
            for proc in procs:
                proc.stop()
    await prepare_topics(bench)
    s = bench.s(bench.prefix("rawchain"))
    await bench.workers("rawchain", planned)
    for rate in bench.sizes.rates:
        two, three = await _raw(bench, s, rate)
        out["raw_2hop"][str(rate)] = two
        out["raw_3hop"][str(rate)] = three
        bench.log(f"raw chain at {rate}/s: 2 hops {two}, 3 hops {three}")
    bench.release("rawchain", planned)
    return out


async def _pipeline(bench: Bench, s: HeartSettings, rate: int, tag: str) -> dict[str, Any]:
    """Send calls at ``rate``; time each team call to its first dispatch event; clear
    every assigned team at once so that teams stay free."""
    prefix = s.topic_prefix
    traffic = Traffic(s, DISPATCH_EVENTS.full_name(prefix), linger_ms=0, fetch_max_wait_ms=5)
    gen = workload.LiveCalls(team_share=0.4, seed=rate, tag=f"{bench.run_id}-{tag}")
    sent: dict[str, float] = {}
    answered: dict[str, tuple[float, str]] = {}

    async def receive(batch: Batch) -> None:
        got = time.time()
        for recs in batch.values():
            for r in recs:
                if not any(k in r.value for k in _FIRST):
                    continue
                data = orjson.loads(r.value)
                call = data["call_id"]
                if call in sent and call not in answered:
                    answered[call] = (got - sent[call], data["event_type"])
                await traffic.clear_if_assigned(data)

    async def send(_i: int) -> None:
        call, team = gen.next()
        raw = encode(call)
        if team:
            sent[call.call_id] = time.time()
        await traffic.producer.send(CAD_CALLS.full_name(prefix), raw, key=call.call_id.encode())

    await traffic.start(receive)
    total, send_s, waited = await _paced(bench, rate, send, lambda: len(answered) >= len(sent))
    await traffic.stop()
    return _figures(sent, answered, waited, total, send_s)


async def _raw(bench: Bench, s: HeartSettings, rate: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send 300-byte messages at ``rate`` into the chain; time each to hops 2 and 3."""
    prefix = s.topic_prefix
    traffic = Traffic(
        s,
        f"{prefix}chain.2",
        f"{prefix}chain.3",
        linger_ms=0,
        fetch_max_wait_ms=5,
        backlog_wait=False,
    )
    sent: dict[str, float] = {}
    got: dict[str, dict[str, tuple[float, str]]] = {"2": {}, "3": {}}

    async def receive(batch: Batch) -> None:
        now = time.time()
        for tp, recs in batch.items():
            hop = tp.topic.rsplit(".", 1)[1]
            for r in recs:
                key = r.key.decode()
                if key in sent and key not in got[hop]:
                    got[hop][key] = (now - sent[key], "relayed")

    body = workload.filler(1)[0][1]
    tag = uuid.uuid4().hex[:6]

    async def send(i: int) -> None:
        key = f"{tag}-{i}"
        sent[key] = time.time()
        await traffic.producer.send(f"{prefix}chain.0", body, key=key.encode())

    await traffic.start(receive)
    total, send_s, waited = await _paced(bench, rate, send, lambda: len(got["3"]) >= len(sent))
    await traffic.stop()
    return (
        _figures(sent, got["2"], waited, total, send_s),
        _figures(sent, got["3"], waited, total, send_s),
    )


async def _paced(
    bench: Bench, rate: int, send: Callable[[int], Awaitable[None]], done: Callable[[], bool]
) -> tuple[int, float, float]:
    """``send`` at ``rate`` a second for the sizes' ``latency_s``, then wait up to their
    ``latency_tail_s`` for ``done``: the messages sent, the seconds sending took, and the
    wall-clock time the wait ended."""
    total = int(rate * bench.sizes.latency_s)
    began = time.monotonic()
    for i in range(total):
        due = began + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)
    send_s = time.monotonic() - began
    deadline = time.monotonic() + bench.sizes.latency_tail_s
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return total, send_s, time.time()


def _figures(
    sent: dict[str, float],
    answered: dict[str, tuple[float, str]],
    waited: float,
    total: int,
    send_s: float,
) -> dict[str, Any]:
    """Percentiles in ms over every timed message; one never answered counts as the time
    it was waited for (a lower bound), and ``unanswered`` says how many."""
    values = [answered[k][0] if k in answered else waited - t for k, t in sent.items()]
    kinds = Counter(kind for _, kind in answered.values())
    ms = [v * 1000 for v in values]
    return {
        "messages": total,
        "timed": len(sent),
        "achieved_rate": rounded(total / send_s if send_s else None),
        "p50_ms": rounded(percentile(ms, 50)),
        "p90_ms": rounded(percentile(ms, 90)),
        "p99_ms": rounded(percentile(ms, 99)),
        "max_ms": rounded(max(ms, default=None)),
        "unanswered": len(sent) - len(answered),
        "first_event": dict(kinds),
    }
