"""``heart staffing``'s work on a year of one city's calls: decide, then search team counts.

A year at Milwaukee's May 2018 volume is synthesised from the real May export: each day of
2018 gets the calls of a May day of the same weekday (the three of each in turn), at the
same local time of day, with new call ids. The calls are generated as they are decided and
never held, as ``heart staffing`` holds only the team calls.

Measured, for the three Milwaukee demo policies and 1 to 12 teams on shift:

- ``decide``: every call decided under every policy (one pass, generating the calls);
  ``generate`` alone is measured too, so the decisions' own share is plain;
- ``search``: the reach curve of every policy and team pilot, every count simulated
  (``shortcut=False``: 3 policies x 12 counts, the worst case), and again as the command
  runs it (counts past the first with no wait and no fallback are filled in);
- memory: the peak resident size of the search with 1 and with 12 team counts, each in a
  child process forked after deciding (flat: only the curve's points are kept per count).

Run ``python -m bench.staffing`` (about 30 s on the 2-core machine, of which the measured
decide and search of every count take 9.7 to 12.7 s: docs/performance.md) or ``--quick``
(two weeks, 3 counts: a smoke run whose figures mean nothing). Prints the figures and
writes them as JSON (``--json``, default ``bench/staffing-results.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from heart.agents.capacity.staffing import Staffing, search
from heart.agents.capacity.timing import default_time_on_call
from heart.agents.triage.whatif import Decided, decide_all
from heart.cad.importer import import_rows
from heart.cad.mapping import load_mapping
from heart.cli.whatif import resolve_policy_path
from heart.policy import Policy, load_policy
from heart.schemas.calls import CallReceived

ROOT = Path(__file__).resolve().parents[1]
EXPORT = "milwaukee-2018-05-calls.csv"
POLICIES = ("milwaukee-demo-policy", "milwaukee-demo-7x12", "milwaukee-demo-24x7")
SEED = 2022
DEFAULT_JSON = ROOT / "bench" / "staffing-results.json"
#: The target of the full run, on this repository's 2-core machine.
TARGET_S = 30.0


def data_dir() -> Path:
    configured = os.environ.get("HEART_SHARED_DATA")
    return Path(configured) if configured else ROOT / "data"


class Year:
    """A synthetic year of calls from one month's export (see the module docstring)."""

    def __init__(self, calls: Sequence[CallReceived], zone: ZoneInfo, first: date, days: int):
        self.zone = zone
        self.first = first
        self.days = days
        # Per weekday, the source days' calls as (time after local midnight, call).
        by_day: dict[date, list[tuple[timedelta, CallReceived]]] = {}
        for call in calls:
            local = call.occurred_at.astimezone(zone)
            midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
            by_day.setdefault(local.date(), []).append((local - midnight, call))
        self.sources: dict[int, list[list[tuple[timedelta, CallReceived]]]] = {}
        for day in sorted(by_day):
            self.sources.setdefault(day.weekday(), []).append(by_day[day])
        self.source_days = len(by_day)

    def _days(self) -> Iterator[tuple[date, list[tuple[timedelta, CallReceived]]]]:
        """Each day of the year with the source day whose calls it gets."""
        turn = dict.fromkeys(range(7), 0)
        for n in range(self.days):
            day = self.first + timedelta(days=n)
            choices = self.sources[day.weekday()]
            yield day, choices[turn[day.weekday()] % len(choices)]
            turn[day.weekday()] += 1

    def __iter__(self) -> Iterator[CallReceived]:
        for day, source in self._days():
            midnight = datetime.combine(day, datetime.min.time(), tzinfo=self.zone)
            prefix = f"{day:%m%d}-"
            for offset, call in source:
                yield call.model_copy(
                    update={
                        "occurred_at": midnight + offset,
                        "call_id": prefix + call.call_id,
                        "event_id": prefix + call.event_id,
                    }
                )

    def count(self) -> int:
        return sum(len(source) for _, source in self._days())


def timed(work: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def peak_rss_mb(work: Any) -> float:
    """The peak resident size of a child process that starts as this one is now (fork)
    and does ``work``: what the work adds shows against the same starting point."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.close(read)
        work()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        os.write(write, str(peak).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        peak_kb = int(answer.read() or 0)
    os.waitpid(child, 0)
    return peak_kb / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two weeks, 3 team counts")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write")
    args = parser.parse_args(argv)
    days, teams_max = (14, 3) if args.quick else (365, 12)

    mapping = load_mapping("milwaukee-2018")
    export = data_dir() / EXPORT
    if not export.is_file():
        print(f"bench.staffing: {export} not found (set HEART_SHARED_DATA)", file=sys.stderr)
        return 1
    month = import_rows(export, mapping).events
    zone = ZoneInfo(mapping.time.timezone)
    year = Year(month, zone, date(2018, 1, 1), days)
    calls = year.count()
    policies: list[tuple[str, Policy]] = [
        (name, load_policy(resolve_policy_path(name))) for name in POLICIES
    ]
    model = default_time_on_call()

    print(
        f"heart staffing on a synthetic year: {calls:,} calls over {days} days "
        f"({year.source_days} source days of {EXPORT}, {calls / days:,.0f} calls a day), "
        f"{len(policies)} policies x {teams_max} team counts"
    )
    generate_s, _ = timed(lambda: sum(1 for _ in year))
    decide_s, decided = timed(lambda: decide_all(year, policies, total=calls))
    decided_: Decided = decided
    team_calls = {
        d.label: {pilot: len(c) for pilot, c in d.team_calls.items()} for d in decided_.demands
    }

    def run(shortcut: bool, counts: int = teams_max) -> Staffing:
        return search(decided_, teams_max=counts, time_on_call=model, seed=SEED, shortcut=shortcut)

    search_s, full = timed(lambda: run(shortcut=False))
    command_s, short = timed(lambda: run(shortcut=True))
    one = peak_rss_mb(lambda: run(shortcut=False, counts=1))
    many = peak_rss_mb(lambda: run(shortcut=False))

    total = decide_s + search_s
    needed = {
        p.label: {name: s.teams_needed for name, s in p.pilots.items()} for p in full.policies
    }
    results: dict[str, Any] = {
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "calls": calls,
        "days": days,
        "policies": list(POLICIES),
        "teams_max": teams_max,
        "team_calls": team_calls,
        "teams_needed_at_90pct": needed,
        "seconds": {
            "generate_calls": round(generate_s, 2),
            "decide_incl_generate": round(decide_s, 2),
            "search_every_count": round(search_s, 2),
            "search_as_the_command_runs": round(command_s, 2),
            "decide_and_search_every_count": round(total, 2),
        },
        "runs": {"every_count": full.runs, "as_the_command_runs": short.runs},
        "calls_simulated_per_s": round(
            sum(sum(t.values()) for t in team_calls.values()) * teams_max / search_s
        ),
        "memory": {
            "peak_rss_mb_search_1_count": round(one, 1),
            f"peak_rss_mb_search_{teams_max}_counts": round(many, 1),
        },
        "target_s": TARGET_S,
        "met": total < TARGET_S,
    }
    print(f"  generate calls          {generate_s:6.2f} s")
    rate = calls * len(policies) / decide_s
    print(f"  decide (with generate)  {decide_s:6.2f} s  {rate:,.0f} decisions/s")
    for label, pilots in team_calls.items():
        print(f"    {label:24} team calls: " + ", ".join(f"{p} {n:,}" for p, n in pilots.items()))
    print(
        f"  search, every count     {search_s:6.2f} s  {full.runs} runs, "
        f"{results['calls_simulated_per_s']:,} team calls simulated/s"
    )
    print(f"  search, as the command  {command_s:6.2f} s  {short.runs} runs")
    print(
        f"  decide + search         {total:6.2f} s  (target < {TARGET_S:g} s: "
        f"{'met' if results['met'] else 'NOT met'})"
    )
    print(
        f"  memory: peak resident size of a process forked after deciding: {one:.0f} MB "
        f"searching 1 count, {many:.0f} MB searching {teams_max}"
    )
    print(f"  teams needed for 90%: {needed}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
