"""``heart staffing FILE --mapping M --policy P [--policy Q ...] --target 0.9``: how many
teams each policy needs, on a city's own calls.

The export is imported as ``heart import`` would, every call is decided under each policy
(:func:`heart.agents.triage.whatif.decide_all`), and for each policy and team pilot (CRT,
CoR) the calls routed to its teams are run against 1 to ``--teams-max`` teams on shift
(:mod:`heart.agents.capacity.staffing`). Out: a table on stdout, and ``staffing.html``
(:mod:`heart.cli.staffing_page`) and ``staffing.json`` in ``--out`` (the JSON where
``--json`` says, when given), each headed as the what-if is
(:func:`heart.cli.whatif.export_names`).

Exit status: 0 the search ran; 1 the export could not be read or a report not written;
2 a bad option value, or an unusable mapping, policy or timings file (named); 65 no row of
the export became a call, or too many were rejected (as ``heart import``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from heart.agents.capacity.staffing import (
    DEFAULT_TARGET,
    DEFAULT_TEAMS_MAX,
    CurvePoint,
    PilotStaffing,
    Staffing,
    search,
)
from heart.agents.capacity.timing import default_time_on_call
from heart.agents.triage.whatif import (
    DEFAULT_SEED,
    TEAM_ROUTES,
    MonthCoverage,
    decide_all,
    months_covered,
)
from heart.cad.importer import ImportResult
from heart.cad.mapping import CadMapping
from heart.cli.progress import ProgressBar
from heart.cli.whatif import (
    REASON_LABELS,
    export_names,
    import_figures,
    load_calls,
    months_text_of,
    names_text,
    percent,
    read_timings,
)
from heart.policy import Policy
from heart.policy.model import DAYS, Window

DEFAULT_OUT = Path("staffing-out")
#: The most team counts a search may try: far above any city's need, low enough that a
#: typo (``--teams-max 1000``) does not run for minutes.
TEAMS_MAX_LIMIT = 200
SHORT = {"crt": "CRT", "cor": "CoR"}


def team_count(text: str) -> int:
    """``--teams-max``: a whole number of teams from 1 to :data:`TEAMS_MAX_LIMIT`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of teams from 1 to {TEAMS_MAX_LIMIT}, not {text!r}"
        ) from None
    if not 1 <= value <= TEAMS_MAX_LIMIT:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of teams from 1 to {TEAMS_MAX_LIMIT}, not {text!r}"
        )
    return value


def run_staffing(
    file: str | os.PathLike[str],
    mapping: str | os.PathLike[str],
    policies: Sequence[str | os.PathLike[str]],
    *,
    target: float = DEFAULT_TARGET,
    teams_max: int = DEFAULT_TEAMS_MAX,
    max_wait_minutes: float | None = None,
    time_on_call_minutes: float | None = None,
    timings: str | os.PathLike[str] | None = None,
    seed: int = DEFAULT_SEED,
    json_out: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = DEFAULT_OUT,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    progress: bool | None = None,
    max_reject_rate: float | None = None,
) -> int:
    """``heart staffing``; returns the exit status (see the module docstring).

    Times on call: the defaults (:func:`~heart.agents.capacity.timing.default_time_on_call`)
    or the empirical ones of ``timings`` (JSON lines of dispatch events), with their mean
    set to ``time_on_call_minutes`` when given.
    """
    from heart.cli.staffing_page import render_html

    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    problem = _check_options(target, teams_max, max_wait_minutes)
    if problem:
        print(f"heart staffing: {problem}", file=err)
        return 2
    try:
        model = read_timings(timings) if timings is not None else default_time_on_call()
        if time_on_call_minutes is not None:
            model = model.with_mean(time_on_call_minutes)
    except ValueError as exc:
        print(f"heart staffing: {_option_problem(exc, timings)}", file=err)
        return 2
    except OSError as exc:
        print(f"heart staffing: cannot read timings file {timings}: {exc.strerror}", file=err)
        return 2
    inputs = load_calls(
        file, mapping, policies, err, "staffing", progress=progress, max_reject_rate=max_reject_rate
    )
    if isinstance(inputs, int):
        return inputs
    loaded_mapping, loaded, imported = inputs

    bar = ProgressBar(f"decide x{len(loaded)} policies", err, live=progress)
    decided = decide_all(
        imported.events,
        loaded,
        in_person_known=loaded_mapping.knows_in_person,
        progress=lambda done, total: bar.update(done, total, done, "decisions"),
        total=len(imported.events),
    )
    bar.done(decided.calls * len(loaded), "decisions")
    runs = ProgressBar("simulate team counts", err, live=progress)
    result = search(
        decided,
        target=target,
        teams_max=teams_max,
        time_on_call=model,
        seed=seed,
        max_wait_minutes=max_wait_minutes,
        progress=lambda done, total: runs.update(done, total, done, "team counts"),
    )
    runs.done(result.runs, "runs")

    zone = loaded_mapping.time.timezone
    report = report_dict(result, imported, loaded_mapping, loaded)
    print(names_text(report), file=out)
    print(render_table(result, loaded, zone_name=zone), file=out)
    for line in notes(result, loaded, max_wait_minutes):
        print(f"note: {line}", file=out)
    target_dir = Path(out_dir)
    json_path = Path(json_out) if json_out is not None else target_dir / "staffing.json"
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(
            orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        html_path = target_dir / "staffing.html"
        html_path.write_text(render_html(result, report, loaded), encoding="utf-8")
    except OSError as exc:
        where = exc.filename or target_dir
        print(f"heart staffing: cannot write {where}: {exc.strerror or exc}", file=err)
        return 1
    print(f"report: {html_path}  data: {json_path}", file=out)
    return 0


def _check_options(target: float, teams_max: int, max_wait: float | None) -> str | None:
    if not 0 < target <= 1:
        return f"--target must be a share above 0 and at most 1 (e.g. 0.9 for 90%), not {target}"
    if not 1 <= teams_max <= TEAMS_MAX_LIMIT:
        return f"--teams-max must be a whole number from 1 to {TEAMS_MAX_LIMIT}, not {teams_max}"
    if max_wait is not None and not max_wait >= 0:
        return f"--max-wait-minutes must be 0 or more, not {max_wait}"
    return None


def _option_problem(exc: ValueError, timings: object) -> str:
    text = str(exc)
    if text.startswith("time on call"):
        return f"--time-on-call-minutes: {text}"
    return text if timings is None or "timings" in text else f"--timings {timings}: {text}"


def report_dict(
    result: Staffing,
    imported: ImportResult,
    mapping: CadMapping,
    policies: Sequence[tuple[str, Policy]],
) -> dict[str, Any]:
    data = result.to_dict()
    for entry, (_, policy) in zip(data["policies"], policies, strict=True):
        entry["hours"] = {pilot: hours_text(pilot_windows(policy, pilot)) for pilot in TEAM_ROUTES}
    return {
        **export_names(mapping, policies),
        "export": imported.path,
        "mapping": mapping.name,
        "timezone": mapping.time.timezone,
        "import": import_figures(imported),
        "staffing": data,
    }


# --- words ------------------------------------------------------------------------------


def pilot_windows(policy: Policy, pilot: str) -> list[Window]:
    """The pilot's opening hours, none when it is disabled."""
    spec = getattr(policy.pilots, pilot)
    return list(spec.hours) if spec.enabled else []


def hours_text(windows: Sequence[Window]) -> str:
    """``Mon-Fri 08:30-16:30``; windows joined by ``; ``; ``closed`` for none."""
    if not windows:
        return "closed"
    parts = []
    for window in windows:
        days = sorted(DAYS.index(d) for d in window.days)
        runs: list[list[int]] = []
        for day in days:
            if runs and day == runs[-1][-1] + 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        names = ",".join(_day(r[0]) if len(r) == 1 else f"{_day(r[0])}-{_day(r[-1])}" for r in runs)
        parts.append(f"{names} {window.start}-{window.end}")
    return "; ".join(parts)


def _day(index: int) -> str:
    return DAYS[index].capitalize()


def needed_text(pilot: PilotStaffing, teams_max: int) -> str:
    """``5``, ``more than 12``, or ``none (no team calls)``."""
    if pilot.team_calls == 0:
        return "none (no team calls)"
    if pilot.teams_needed is None:
        return f"more than {teams_max}"
    return f"{pilot.teams_needed:,}"


def point_at_needed(pilot: PilotStaffing) -> CurvePoint | None:
    """The curve's point at the teams needed, else at the most teams tried."""
    if not pilot.curve:
        return None
    if pilot.teams_needed is None:
        return pilot.curve[-1]
    return pilot.curve[pilot.teams_needed - 1]


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} min"


def coverage_text(pilot: PilotStaffing) -> str:
    """``3,609 eligible = 326 team calls + 3,283 missed by hours or area (outside hours
    2,685, outside service area 598) + 0 routed elsewhere``."""
    missed = sum(pilot.missed_by_coverage.values())
    reasons = ", ".join(
        f"{REASON_LABELS[r]} {n:,}" for r, n in pilot.missed_by_coverage.items() if n
    )
    return (
        f"{pilot.eligible:,} eligible = {pilot.team_calls:,} team calls + {missed:,} missed "
        f"by hours or area{f' ({reasons})' if reasons else ''} + {pilot.other:,} routed "
        "elsewhere"
    )


def assumptions(result: Staffing, max_wait_minutes: float | None) -> list[str]:
    """What the counts rest on, one line each (the table's notes and the page)."""
    waits = sorted({p.max_wait_minutes for p in result.policies})
    wait = " or ".join(f"{w:g}" for w in waits) or "-"
    source = (
        "the policy's max_queue_wait_minutes" if max_wait_minutes is None else "--max-wait-minutes"
    )
    return [
        f"Time on call: {result.time_on_call.describe()} ({result.time_on_call.source}).",
        f"A team call that finds no free team waits up to {wait} min ({source}, never past "
        "the policy's stale_call_minutes), by priority then age, then falls back to police: "
        "missed, no team free. This is the dispatch stage's rule.",
        "Teams on shift: the same number of identical teams whenever the pilot is open (the "
        "policy's hours); a team busy at the end of its shift finishes its call.",
        f"Target: {100 * result.target:g}% of the team calls (the eligible calls the policy "
        "sends a team to) reached with a team; calls outside the pilot's hours or area are "
        "missed whatever the teams.",
        f"Every team count runs the same calls with the same times on call (seed "
        f"{result.seed}); the same export, policies and seed give the same counts.",
    ]


# --- the table ----------------------------------------------------------------------------


def render_table(
    result: Staffing, policies: Sequence[tuple[str, Policy]], *, zone_name: str = ""
) -> str:
    """The recommendation first, then each reach curve."""
    lines = [headline(result, zone_name)]
    if result.policies:
        lines.append(f"months: {months_text_of(_months(result, policies))}")
    lines.append(
        f"target: {100 * result.target:g}% of team calls reached (team calls: the eligible "
        "calls the policy sends a team to)"
    )
    lines.append("")
    header = ["policy", "pilot", "hours open", "team calls", "teams needed", "reached"]
    header += ["fallbacks", "wait p90"]
    rows = []
    idle = []
    for figures, (_, policy) in zip(result.policies, policies, strict=True):
        for name, pilot in figures.pilots.items():
            if pilot.team_calls == 0:
                idle.append(f"{figures.label} {name}")
                continue
            point = point_at_needed(pilot)
            assert point is not None
            rows.append(
                [
                    figures.label,
                    name,
                    hours_text(pilot_windows(policy, name)),
                    f"{pilot.team_calls:,}",
                    needed_text(pilot, result.teams_max),
                    percent(point.reached, point.team_calls),
                    f"{point.fallbacks:,}",
                    _minutes(point.wait_p90),
                ]
            )
    lines += _grid(header, rows, align="lllrrrrr")
    if idle:
        lines.append(f"no team calls, no team needed: {', '.join(idle)}")
    for figures in result.policies:
        for name, pilot in figures.pilots.items():
            if pilot.team_calls == 0:
                continue
            lines.append("")
            lines.append(f"{figures.label} {name}: {coverage_text(pilot)}")
            curve = [
                [
                    f"{p.teams:,}",
                    f"{p.reached:,}",
                    percent(p.reached, p.team_calls),
                    f"{p.fallbacks:,}",
                    _minutes(p.wait_p50),
                    _minutes(p.wait_p90),
                    "<- needed" if p.teams == pilot.teams_needed else "",
                ]
                for p in pilot.curve
            ]
            lines += _grid(
                ["teams", "reached", "share", "fallbacks", "wait p50", "wait p90", ""],
                curve,
                align="rrrrrrl",
                indent="  ",
            )
    return "\n".join(line.rstrip() for line in lines)


def _grid(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, align: str, indent: str = ""
) -> list[str]:
    """Columns sized to fit; ``align`` has an ``l`` (flush left) or ``r`` per column."""
    widths = [max(len(c) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return indent + "  ".join(
            c.ljust(w) if side == "l" else c.rjust(w)
            for c, w, side in zip(cells, widths, align, strict=True)
        )

    return [line(header), *(line(r) for r in rows)]


def _months(result: Staffing, policies: Sequence[tuple[str, Policy]]) -> list[MonthCoverage]:
    if result.first_call is None or result.last_call is None:
        return []
    return months_covered(result.first_call, result.last_call, policies[0][1].zone)


def headline(result: Staffing, zone_name: str) -> str:
    if result.first_call is None or result.last_call is None:
        return "staffing: no calls"
    noun = "policy" if len(result.policies) == 1 else "policies"
    return (
        f"staffing: {result.calls:,} calls from {result.first_call:%Y-%m-%d %H:%M} to "
        f"{result.last_call:%Y-%m-%d %H:%M}{f' ({zone_name})' if zone_name else ''}, "
        f"{len(result.policies)} {noun}, 1 to {result.teams_max} teams on shift"
    )


def notes(
    result: Staffing, policies: Sequence[tuple[str, Policy]], max_wait_minutes: float | None
) -> list[str]:
    lines = assumptions(result, max_wait_minutes)
    for month in _months(result, policies):
        if month.partial:
            lines.append(f"{month.name} is a partial month: the calls cover {month.span()} only.")
    if max_wait_minutes is not None:
        for _, policy in policies:
            stale = policy.dispatch.stale_call_minutes
            if max_wait_minutes > stale:
                lines.append(
                    f"--max-wait-minutes {max_wait_minutes:g} is longer than policy "
                    f"{policy.name}'s stale_call_minutes ({stale}): dispatch sends no team "
                    f"to a call older than that, so calls wait at most {stale} min there."
                )
    return lines
