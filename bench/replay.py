"""The replay section: the Milwaukee May 2018 export through every stage on the event
clock, sent as ``heart replay`` sends it (``heart.cli.replay.Replayer``), timed until
every stage has drained."""

from __future__ import annotations

import asyncio
import csv
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from bench import harness
from bench.common import FIRST_EVENTS, Bench, Plan, rounded
from bench.harness import ROOT, percentile
from heart.agents.registry import STAGES, stage_inputs
from heart.streams.admin import create_topics
from heart.streams.topics import (
    CAD_CALLS,
    CATALOG,
    DISPATCH_COMMANDS,
    DISPATCH_EVENTS,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    TRIAGE_DECISIONS,
)

MILWAUKEE = Path(
    os.environ.get("HEART_BENCH_MILWAUKEE", ROOT / "data" / "milwaukee-2018-05-calls.csv")
)


def plan(bench: Bench) -> Plan:
    """The stages ``heart replay`` runs, with its environment (event clock, the
    mapping's demo policy and roster), each as ``heart worker STAGE``."""
    from heart.cad.mapping import load_mapping
    from heart.cli.replay import REPLAY_STAGES

    mapping = load_mapping("milwaukee-2018")
    env = {"HEART_CLOCK": "event", "HEART_POLICY": str(mapping.policy_path)}
    if mapping.roster_path is not None:
        env["HEART_ROSTER"] = str(mapping.roster_path)
    prefix = bench.prefix("replay")
    return {
        "replay": [bench.fleet.worker(st, prefix, **env) for st in REPLAY_STAGES if st in STAGES]
    }


async def prepare_topics(bench: Bench) -> None:
    await create_topics(bench.s(bench.prefix("replay")))


def _source(bench: Bench) -> Path:
    if bench.sizes.replay_rows is None:
        return MILWAUKEE
    source = bench.work / "milwaukee-head.csv"
    with open(MILWAUKEE, newline="", encoding="utf-8-sig") as full:
        rows = list(csv.reader(full))[: bench.sizes.replay_rows + 1]
    with open(source, "w", newline="", encoding="utf-8") as head:
        csv.writer(head).writerows(rows)
    return source


async def replay(bench: Bench, planned: Plan) -> dict[str, Any]:
    """The export through every stage with ``heart.cli.replay.Replayer`` (what ``heart
    replay`` sends, lock-step where teams feed back), timed until every stage has
    drained: ``heart replay`` itself reports only the sending."""
    from heart.cad.importer import import_rows
    from heart.cad.mapping import load_mapping
    from heart.cli.replay import Replayer

    mapping = load_mapping("milwaukee-2018")
    source = _source(bench)
    imported = import_rows(source, mapping)
    calls = imported.events
    prefix = bench.prefix("replay")
    s = bench.s(prefix)
    await prepare_topics(bench)
    procs = await bench.workers("replay", planned)
    bench.log(f"replay of {source.name}: {len(calls)} calls through {[p.name for p in procs]}")
    began_wall = time.time()
    began = time.monotonic()
    replayer = Replayer(s, mapping.load_policy(), None)
    stats = await replayer.run(calls)
    sent_s = time.monotonic() - began
    # Each stage's topics, in and internal (read from its agents): all may still grow
    # while others work.
    groups = {proc.name: sorted(stage_inputs(proc.name)) for proc in procs}
    await asyncio.gather(
        *(
            harness.wait_drained(
                s,
                f"{prefix}heart-{proc.name}",
                [],
                [
                    (CATALOG[name].full_name(prefix), CATALOG[name].partitions)
                    for name in groups[proc.name]
                ],
                timeout=bench.sizes.drain_timeout_s,
                procs=procs,
            )
            for proc in procs
            if proc.name in groups
        )
    )
    last = 0
    read: dict[str, list[ConsumerRecord]] = {}
    for spec in (
        TRIAGE_DECISIONS,
        DISPATCH_EVENTS,
        FOLLOWUP_TIMERS,
        FOLLOWUP_TASKS,
        CAD_CALLS,
        DISPATCH_COMMANDS,
    ):
        records = await harness.read_all(s, spec.full_name(prefix), spec.partitions)
        read[spec.name] = records
        if spec not in (CAD_CALLS, DISPATCH_COMMANDS):
            last = max([last, *(r.timestamp for r in records)])
    through_s = last / 1000 - began_wall if last else None
    hops = team_call_hops(read)
    bench.release("replay", planned)
    summary = stats.as_dict()
    result = {
        "file": source.name,
        "calls": len(calls),
        "stages": [p.name for p in procs],
        "wall_s": rounded(through_s, 2),
        "calls_per_s": rounded(len(calls) / through_s if through_s else None),
        "send_s": rounded(sent_s, 2),
        "syncs": summary.get("syncs"),
        "sync_timeouts": summary.get("sync_timeouts"),
        "sync_wait_s": summary.get("sync_wait_s"),
        "sync_wait_ms": summary.get("sync_wait_ms"),
        "team_call_hops_ms": hops,
        "routes": summary.get("routes"),
        "dispatch": summary.get("dispatch"),
        "rss_mib": {p.name: {k: rounded(v) for k, v in p.rss.items()} for p in procs},
    }
    bench.log(f"replay: {len(calls)} calls through every stage in {result['wall_s']} s")
    return result


def team_call_hops(read: dict[str, list[ConsumerRecord]]) -> dict[str, dict[str, Any]]:
    """Where a team call's lock-step round trip goes, from the records' create times: CAD
    to decision (triage), decision to dispatch command (dispatch's intake), command to the
    first dispatch event (dispatch), as p50 / p90 / p99 / max / sum in ms over team calls."""

    def first(records: list[ConsumerRecord], call_of: Callable[[Any], str | None]) -> dict:
        out: dict[str, int] = {}
        for r in records:
            call = call_of(orjson.loads(r.value))
            if call is not None and call not in out:
                out[call] = r.timestamp
        return out

    team = {"crt", "cor"}
    decided = first(
        read[TRIAGE_DECISIONS.name], lambda v: v["call_id"] if v.get("route") in team else None
    )
    received = first(
        read[CAD_CALLS.name],
        lambda v: v["call_id"] if v.get("event_type") == "call.received" else None,
    )
    commanded = first(
        read[DISPATCH_COMMANDS.name],
        lambda v: (v.get("decision") or {}).get("call_id") if v.get("kind") == "decision" else None,
    )
    answered = first(
        read[DISPATCH_EVENTS.name],
        lambda v: v.get("call_id") if v.get("event_type") in FIRST_EVENTS else None,
    )
    legs = {
        "triage": (received, decided),
        "intake": (decided, commanded),
        "dispatch": (commanded, answered),
        "total": (received, answered),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, (start, end) in legs.items():
        ms = [end[c] - start[c] for c in decided if c in start and c in end]
        out[name] = {
            "n": len(ms),
            **{f"p{q}": rounded(percentile(ms, q)) for q in (50, 90, 99)},
            "max": max(ms, default=None),
            "sum": sum(ms),
        }
    return out
