"""What ``bench.run`` reports beside the figures: the issue's targets judged on a run's
figures, and the printed table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, judged on this run's figures."""
    out: dict[str, Any] = {}
    stages = results.get("stages", {})
    ratios = {k: v.get("ratio_to_passthrough") for k, v in stages.items()}
    if ratios:
        out["each_stage_at_least_80pct_of_passthrough"] = {
            "met": all(r is not None and r >= 0.8 for r in ratios.values()),
            "ratios": ratios,
        }
        triage = ratios.get("triage")
        out["stretch_triage_2x_passthrough"] = {
            "met": triage is not None and triage >= 2.0,
            "ratio": triage,
        }
    pipeline = results.get("latency", {}).get("pipeline", {})
    if "100" in pipeline:
        p99 = pipeline["100"].get("p99_ms")
        out["p99_at_100_per_s_at_most_150ms"] = {
            "met": p99 is not None and p99 <= 150 and pipeline["100"]["unanswered"] == 0,
            "p99_ms": p99,
        }
    replay = results.get("replay")
    if replay:
        wall = replay.get("wall_s")
        out["milwaukee_replay_at_most_60s"] = {
            "met": wall is not None
            and wall <= 60
            and replay.get("file", "").startswith("milwaukee-2018"),
            "wall_s": wall,
        }
    memory = results.get("memory")
    if memory:
        growth = {k: v.get("growth_after_warmup_pct") for k, v in memory["stages"].items()}
        out["memory_growth_under_10pct"] = {
            "met": memory["seconds"] >= 600
            and all(g is not None and g < 10 for g in growth.values()),
            "growth_after_warmup_pct": growth,
            "note": "judged only on a run of at least 600 s",
        }
    return out


def _row(cells: Sequence[tuple[Any, int]]) -> str:
    """Cells of (text, width): the first left-aligned, the others right-aligned."""
    first, *rest = cells
    return " ".join([f"{first[0]!s:<{first[1]}}", *(f"{c!s:>{w}}" for c, w in rest)])


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    meta = results["meta"]
    cpus = meta["machine"]["cpus"]
    add(f"HEART Stream benchmark ({meta['mode']}), {meta['started_at']}, {cpus} CPUs")
    floor = results.get("floor")
    before = results.get("before", {}).get("throughput", {})
    if floor:
        add("")
        head = [("throughput, one worker", 44), ("events/s", 10), ("CPU µs/ev", 10)]
        if before:
            head += [("before ev/s", 12), ("CPU µs/ev", 10)]
        add(_row(head))
        for label, key, what in (
            ("raw aiokafka consume -> JSON -> produce", "raw_aiokafka", "raw"),
            ("Faust passthrough agent (project settings)", "faust_passthrough", "passthrough"),
            ("stage runtime, no logic (batch reader+outbox)", "stage_runtime", "runtime"),
        ):
            if key not in floor:
                continue
            f = floor[key]
            cells = [
                (label, 44),
                (_fmt(f["events_per_s"]), 10),
                (_fmt(f.get("cpu_us_per_event")), 10),
            ]
            if before:
                b = before.get(what, {})
                cells += [(_fmt(b.get("events_per_s")), 12), (_fmt(b.get("cpu_us_per_event")), 10)]
            add(_row(cells))
    stages = results.get("stages")
    if stages:
        add("")
        head = [("stage alone", 12), ("events", 7), ("events/s", 9), ("x pass", 7), ("x rt", 6)]
        head += [("CPU µs/ev", 10), ("RSS MiB", 8)]
        if before:
            head += [("before ev/s", 12), ("x pass", 7), ("CPU µs/ev", 10)]
        add(_row(head))
        for name, f in stages.items():
            rss = f.get("rss_mib", {})
            cells = [
                (name, 12),
                (f["events"], 7),
                (_fmt(f["events_per_s"]), 9),
                (_fmt(f["ratio_to_passthrough"], 2), 7),
                (_fmt(f.get("ratio_to_runtime"), 2), 6),
                (_fmt(f.get("cpu_us_per_event")), 10),
                (_fmt(rss.get("end")), 8),
            ]
            if before:
                b = before.get(name, {})
                cells += [
                    (_fmt(b.get("events_per_s")), 12),
                    (_fmt(b.get("ratio_to_passthrough"), 2), 7),
                    (_fmt(b.get("cpu_us_per_event")), 10),
                ]
            add(_row(cells))
    latency = results.get("latency")
    if latency:
        add("")
        add(_row([("latency, ms", 28), ("calls/s", 8), ("p50", 7), ("p90", 7), ("p99", 7)]))
        for what, key in (
            ("CAD -> first dispatch event", "pipeline"),
            ("raw aiokafka, 2 hops", "raw_2hop"),
            ("raw aiokafka, 3 hops", "raw_3hop"),
        ):
            for rate, f in latency.get(key, {}).items():
                missing = (
                    f" ({f['unanswered']} of {f['timed']} unanswered)" if f["unanswered"] else ""
                )
                cells = [(what, 28), (rate, 8)]
                cells += [(_fmt(f[k]), 7) for k in ("p50_ms", "p90_ms", "p99_ms")]
                add(_row(cells) + missing)
    replay = results.get("replay")
    if replay:
        add("")
        add(
            f"replay {replay['file']}: {replay['calls']} calls through every stage in "
            f"{_fmt(replay['wall_s'], 1)} s = {_fmt(replay['calls_per_s'])} calls/s "
            f"(sending {_fmt(replay['send_s'], 1)} s, {replay['syncs']} lock-step waits, "
            f"{replay['sync_timeouts']} timed out)"
        )
    memory = results.get("memory")
    if memory:
        add("")
        add(f"memory at {memory['rate']} calls/s for {memory['seconds']:.0f} s (RSS MiB)")
        head = [("worker", 12), ("start", 8), ("warm", 8), ("end", 8)]
        add(_row([*head, ("growth %", 9), ("after warm %", 13), ("backlog", 9)]))
        for name, f in memory["stages"].items():
            cells = [(name, 12)]
            cells += [(_fmt(f[k]), 8) for k in ("start_mib", "warm_mib", "end_mib")]
            cells += [(_fmt(f["growth_from_start_pct"], 1), 9)]
            cells += [(_fmt(f["growth_after_warmup_pct"], 1), 13)]
            cells += [(_fmt(f["backlog_at_end"]), 9)]
            add(_row(cells))
    tg = results.get("targets")
    if tg:
        add("")
        for name, t in tg.items():
            add(f"target {name}: {'met' if t['met'] else 'NOT met'}")
    add(f"\ntotal {meta.get('total_s')} s; work dir {meta['work_dir']}")
    return "\n".join(lines)


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)
