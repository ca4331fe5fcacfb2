"""Throughput runs, the engine the floor and stages sections share: one worker over a
pre-filled input topic, timed from its first to its last output record once it has
drained, ``rounds`` times, interleaved with a ``--baseline`` tree's runs of the same."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord

from bench import harness
from bench.common import Bench, Plan, rounded
from bench.harness import ROOT, Proc
from heart.streams.admin import create_topics
from heart.streams.settings import HeartSettings

#: The throughput references every stage is compared with; not stages themselves.
FLOORS = ("raw", "passthrough", "runtime")

Keep = Callable[[ConsumerRecord], bool]
Timed = tuple[str, int, Keep]


def every(_r: ConsumerRecord) -> bool:
    return True


@dataclass(frozen=True)
class Spec:
    """What a throughput run sends, where, and which output records time it."""

    n: int
    records: Callable[[], Sequence[tuple[bytes, bytes]]]
    source: tuple[str, int]
    internal: list[tuple[str, int]]
    start: list[Timed]
    end: list[Timed]
    input: str
    #: Plain topics to create, of 6 partitions; without them, the catalog's.
    plain: list[str] | None = None
    #: The consumer group; without it, the stage's (``{prefix}heart-{what}``).
    group: str | None = None


@dataclass(frozen=True)
class Subject:
    """Something measured for throughput: its input, from ``(bench, what, prefix, code)``,
    and its process, from ``(bench, what, code, prefix)``, ``code`` being a source tree."""

    spec: Callable[[Bench, str, str, Path], Spec]
    proc: Callable[[Bench, str, Path, str], Proc]


#: What is measured, in the order it runs.
Subjects = dict[str, Subject]


def run_prefix(bench: Bench, what: str, tag: str, rnd: int) -> str:
    return bench.prefix(f"{what}-{tag or 'now'}{rnd}")


def plan(bench: Bench, subjects: Subjects) -> Plan:
    """The first round's process of each subject, from this tree."""
    return {
        what: [subject.proc(bench, what, ROOT, run_prefix(bench, what, "", 0))]
        for what, subject in subjects.items()
    }


async def ensure_topics(s: HeartSettings, spec: Spec) -> None:
    if spec.plain is not None:
        await harness.create_plain_topics(s, spec.plain, 6)
    else:
        await create_topics(s)


async def prepare_topics(bench: Bench, subjects: Subjects) -> None:
    for what, subject in subjects.items():
        prefix = run_prefix(bench, what, "", 0)
        await ensure_topics(bench.s(prefix), subject.spec(bench, what, prefix, ROOT))


async def throughput(
    bench: Bench, subjects: Subjects, what: str, code: Path, tag: str, rnd: int, planned: Plan
) -> dict[str, Any]:
    """One sustained-throughput run of ``what`` from the source tree ``code``, on its own
    topics: pre-fill the input, start the worker, time it to drained."""
    prefix = run_prefix(bench, what, tag, rnd)
    s = bench.s(prefix)
    subject = subjects[what]
    spec = subject.spec(bench, what, prefix, code)
    await ensure_topics(s, spec)
    planned_proc = code == ROOT and rnd == 0 and what in planned
    proc = planned[what][0] if planned_proc else subject.proc(bench, what, code, prefix)
    prestarted = planned_proc and bench.prestarted(what)
    cpu0 = proc.cpu() if prestarted else None
    await harness.produce(s, spec.source[0], spec.records())
    if not prestarted:
        await bench.fleet.start(proc)
        cpu0 = proc.cpu()
    label = f"{what}{' (' + tag + ')' if tag else ''} round {rnd + 1}"
    result = await measure(
        bench,
        label,
        s,
        spec.group or f"{prefix}heart-{what}",
        [proc],
        spec.n,
        inputs=[spec.source],
        internal=spec.internal,
        start=spec.start,
        end=spec.end,
        extra={"input": spec.input},
    )
    cpu1 = proc.cpu()
    proc.sample_rss("end")
    proc.stop()
    if cpu0 is not None and cpu1 is not None:
        result["cpu_us_per_event"] = rounded((cpu1 - cpu0) / spec.n * 1e6)
    result["rss_mib"] = {k: rounded(v) for k, v in proc.rss.items()}
    return result


async def throughputs(
    bench: Bench,
    subjects: Subjects,
    planned: Plan,
    only: set[str],
    rounds: int,
    baseline: Path | None,
) -> dict[str, Any]:
    """Floor references and every stage alone, ``rounds`` times, interleaved with the
    baseline tree's runs of the same thing so that machine drift hits both alike."""
    whats = [w for w in subjects if w in FLOORS or "stages" in only]
    if "floor" not in only:
        whats = [w for w in whats if w != "raw"]
    trees: list[tuple[str, Path]] = [("", ROOT)]
    if baseline is not None:
        trees.append(("before", baseline))
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rnd in range(rounds):
        for what in whats:
            # Alternate which tree goes first, so neither always runs on a warmer
            # (or a busier) machine.
            ordered = trees if rnd % 2 == 0 else trees[::-1]
            for tag, code in ordered:
                if what in ("raw", "runtime") and tag:
                    continue  # the benchmark's own code, or the current runtime
                figures = await throughput(bench, subjects, what, code, tag, rnd, planned)
                runs.setdefault(tag, {}).setdefault(what, []).append(figures)
    out: dict[str, Any] = {}
    now = {what: best(r) for what, r in runs[""].items()}
    floor = now.get("passthrough", {}).get("events_per_s")
    out["floor"] = {"faust_passthrough": now["passthrough"]}
    if "raw" in now:
        out["floor"]["raw_aiokafka"] = now["raw"]
    runtime = now.get("runtime", {}).get("events_per_s")
    if "runtime" in now:
        now["runtime"]["ratio_to_passthrough"] = ratio(runtime, floor)
        out["floor"]["stage_runtime"] = now["runtime"]
    out["stages"] = {}
    for what, figures in now.items():
        if what in FLOORS:
            continue
        figures["ratio_to_passthrough"] = ratio(figures["events_per_s"], floor)
        figures["ratio_to_runtime"] = ratio(figures["events_per_s"], runtime)
        out["stages"][what] = figures
    if baseline is not None:
        before = {what: best(r) for what, r in runs["before"].items()}
        floor_before = before.get("passthrough", {}).get("events_per_s")
        for what, figures in before.items():
            if what not in FLOORS:
                figures["ratio_to_passthrough"] = ratio(figures["events_per_s"], floor_before)
                figures["ratio_to_current_passthrough"] = ratio(figures["events_per_s"], floor)
        out["before"] = {"code": str(baseline), "throughput": before}
        out["change"] = {
            what: {
                "events_per_s_x": ratio(now[what]["events_per_s"], b["events_per_s"]),
                "cpu_per_event_x": ratio(
                    now[what].get("cpu_us_per_event"), b.get("cpu_us_per_event")
                ),
            }
            for what, b in before.items()
            if what in now
        }
    return out


async def measure(
    bench: Bench,
    label: str,
    s: HeartSettings,
    group: str,
    procs: list[Proc],
    n: int,
    *,
    inputs: list[tuple[str, int]],
    start: list[Timed],
    end: list[Timed],
    internal: Sequence[tuple[str, int]] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    bench.log(f"{label}: {n} events")
    began = time.monotonic()
    drain_timeout_s = bench.sizes.drain_timeout_s
    drained = await harness.wait_drained(
        s, group, inputs, internal, timeout=drain_timeout_s, procs=procs
    )
    if not drained:
        bench.log(f"{label}: not drained in {drain_timeout_s:.0f}s")
    cache: dict[str, list[ConsumerRecord]] = {}

    async def records(topic: str, partitions: int) -> list[ConsumerRecord]:
        if topic not in cache:
            cache[topic] = await harness.read_all(s, topic, partitions)
        return cache[topic]

    firsts = [
        t for topic, parts, keep in start for t in timestamps(await records(topic, parts), keep)
    ]
    lasts = [t for topic, parts, keep in end for t in timestamps(await records(topic, parts), keep)]
    seconds, rate = span_rate(n, min(firsts, default=None), max(lasts, default=None))
    result = {
        "events": n,
        "drained": drained,
        "outputs": len(lasts),
        "seconds": rounded(seconds, 2),
        "events_per_s": rounded(rate),
        "wait_s": rounded(time.monotonic() - began, 1),
        **(extra or {}),
    }
    bench.log(f"{label}: {result['events_per_s']} events/s over {result['seconds']} s")
    return result


def span_rate(
    count: int, first_ms: int | None, last_ms: int | None
) -> tuple[float | None, float | None]:
    if first_ms is None or last_ms is None or last_ms <= first_ms or count < 2:
        return None, None
    seconds = (last_ms - first_ms) / 1000
    return seconds, (count - 1) / seconds


def timestamps(records: Sequence[ConsumerRecord], keep: Keep) -> list[int]:
    return [r.timestamp for r in records if keep(r)]


def best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The best of a run's rounds: on a shared machine noise only ever slows a run down.
    The round with the highest rate is reported, with the lowest CPU per event seen and
    every round's figures."""
    top = dict(max(rounds, key=lambda r: r.get("events_per_s") or 0))
    cpus = [r["cpu_us_per_event"] for r in rounds if r.get("cpu_us_per_event") is not None]
    top["cpu_us_per_event"] = min(cpus, default=None)
    top["rounds"] = [
        {k: r.get(k) for k in ("events_per_s", "cpu_us_per_event", "seconds")} for r in rounds
    ]
    return top


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None
