"""``heart whatif FILE --mapping M --policy A --policy B``: policies compared on real calls.

The export is imported as ``heart import`` would, every call is decided under each policy
with the triage stage's pure decision (no broker), and the figures of
:mod:`heart.agents.triage.whatif` are written three ways: a table on stdout, and in ``--out``
(default ``./whatif-out``) ``whatif.html`` (:mod:`heart.cli.whatif_page`: self-contained,
nothing fetched) and ``whatif.json``. Every output uses the glossary's terms
(:data:`heart.schemas.glossary.GLOSSARY`) and shows ``eligible = reached + missed + other``,
and is headed with who runs the pilots and whose calls these are (:func:`export_names`).

With ``--capacity`` (or ``--roster``) the teams on shift take the team calls in a
simulation with the dispatch stage's queue rule (:class:`heart.agents.triage.whatif.Capacity`):
CRT's and CoR's reached are then the calls a team was assigned to, the others are missed
with "no team free", and waits and the teams' utilisation by hour of the week are reported.

Exit status: 0 the comparison ran; 1 the export could not be read or a report not written;
2 the mapping, a policy, the roster or the timings file is unusable (file, field and problem
named), or a policy does not
know a category the mapping produces (those calls would silently reach no pilot); 65 no
row of the export became a call, or too many were rejected (as ``heart import``), and no
report is written.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from heart.agents.capacity.simulate import PoolFigures
from heart.agents.capacity.timing import (
    DEFAULT_ON_SCENE_MINUTES,
    DEFAULT_TRAVEL_MINUTES,
    TimeOnCall,
    calibrate,
    default_time_on_call,
)
from heart.agents.dispatch.roster import RosterError, load_roster
from heart.agents.reporting.aggregate import organisation_of
from heart.agents.reporting.wording import heading
from heart.agents.triage.whatif import (
    DEFAULT_SEED,
    MISS_REASONS,
    OTHER_NAMES,
    ROUTES,
    TEAM_ROUTES,
    Capacity,
    Effort,
    MonthCoverage,
    PilotFigures,
    PolicyFigures,
    WhatIf,
    compare,
)
from heart.cad.importer import ImportResult
from heart.cad.mapping import MAPPINGS_DIR, CadMapping
from heart.cli.import_calls import load_or_report, read_export
from heart.cli.progress import ProgressBar
from heart.policy import Policy, PolicyError, load_policy
from heart.policy.model import PILOTS, RESPONDERS
from heart.schemas.reports import Organisation

DEFAULT_OUT = Path("whatif-out")
POLICY_DIR = Path(__file__).resolve().parents[1] / "policy"

REASON_LABELS = {
    "outside_hours": "outside hours",
    "outside_service_area": "outside service area",
    "unknown_beat": "unknown beat",
    "pilot_disabled": "pilot disabled",
    "no_team_free": "no team free",
}
#: What being reached means per pilot, and the routes as the table names them.
REACHED_LABELS = {"ccd": "resolved by phone", "crt": "team assigned", "cor": "team assigned"}
ROUTE_LABELS = {
    "ccd": "ccd (resolved by phone)",
    "crt": "crt (community response team)",
    "cor": "cor (co-response)",
    "police": "police",
}
NOT_MEASURED = "not measured"


def parse_teams(values: Sequence[str]) -> dict[str, int]:
    """``["crt=3", "cor=1"]`` -> ``{"crt": 3, "cor": 1}`` for ``--teams``; ValueError names
    the bad value."""
    teams: dict[str, int] = {}
    for value in values:
        pilot, sep, count = value.partition("=")
        pilot = pilot.strip()
        if not sep or pilot not in PILOTS or not count.strip().isdigit():
            raise ValueError(
                f"--teams {value!r}: use PILOT=N with PILOT one of {', '.join(PILOTS)}"
            )
        teams[pilot] = int(count)
    return teams


def resolve_policy_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A file path as given, or a shipped policy's name (``durham-24x7``,
    ``milwaukee-demo-7x12``) when no such file exists."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    for folder in (POLICY_DIR, MAPPINGS_DIR):
        shipped = folder / f"{path}.toml"
        if shipped.exists():
            return shipped
    return path


def load_calls(
    file: str | os.PathLike[str],
    mapping: str | os.PathLike[str],
    policies: Sequence[str | os.PathLike[str]],
    err: IO[str],
    command: str,
    *,
    progress: bool | None,
    max_reject_rate: float | None,
) -> tuple[CadMapping, list[tuple[str, Policy]], ImportResult] | int:
    """The mapping, the policies and the imported export, with the import's account on
    ``err``; or an exit status after printing why one of them cannot be used."""
    loaded_mapping = load_or_report(mapping, err, command)
    if loaded_mapping is None:
        return 2
    loaded = load_policies(policies, loaded_mapping, err, command)
    if loaded is None:
        return 2
    imported = read_export(
        file, loaded_mapping, err, command, live=progress, max_reject_rate=max_reject_rate
    )
    if isinstance(imported, int):
        return imported
    print(imported.summary(top=5), file=err)
    return loaded_mapping, loaded, imported


def load_policies(
    names: Sequence[str | os.PathLike[str]],
    mapping: CadMapping,
    err: IO[str],
    command: str = "whatif",
) -> list[tuple[str, Policy]] | None:
    """``(label, policy)`` per name (the mapping's demo policy when none), or None after
    printing why one cannot be used with this mapping (as ``heart COMMAND: ...``)."""
    paths = [resolve_policy_path(n) for n in names] or [mapping.policy_path]
    loaded: list[tuple[str, Policy]] = []
    labels: set[str] = set()
    for path in paths:
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            print(f"heart {command}: {exc}", file=err)
            return None
        unknown = mapping.unknown_categories(policy)
        if unknown:
            print(
                f"heart {command}: policy file {path}: categories: does not know "
                f"{', '.join(repr(c) for c in unknown)}, which mapping {mapping.name} "
                "produces; those calls would reach no pilot",
                file=err,
            )
            return None
        if policy.timezone != mapping.time.timezone:
            # Not fatal (a zone may be right for a reason), but hours judged in another
            # city's zone are the commonest way to get a what-if quietly wrong.
            print(
                f"heart {command}: warning: policy {path.name} judges hours in "
                f"{policy.timezone}, "
                f"the export is in {mapping.time.timezone}",
                file=err,
            )
        label = path.stem
        while label in labels:
            label += "'"
        labels.add(label)
        loaded.append((label, policy))
    return loaded


def run_whatif(
    file: str | os.PathLike[str],
    mapping: str | os.PathLike[str],
    policies: Sequence[str | os.PathLike[str]],
    *,
    out_dir: str | os.PathLike[str] = DEFAULT_OUT,
    travel_minutes: float = DEFAULT_TRAVEL_MINUTES,
    on_scene_minutes: float = DEFAULT_ON_SCENE_MINUTES,
    teams: Mapping[str, int] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    progress: bool | None = None,
    max_reject_rate: float | None = None,
    capacity: bool = False,
    roster: str | os.PathLike[str] | None = None,
    max_wait_minutes: float | None = None,
    timings: str | os.PathLike[str] | None = None,
    seed: int = DEFAULT_SEED,
) -> int:
    """``heart whatif``; returns the exit status (see the module docstring).

    ``capacity`` (or a ``roster``) models capacity: ``teams`` per pilot (1 each unless
    given) on shift during the pilot's hours, or the roster's teams and shifts; a call
    waits up to each policy's maximum wait (``max_wait_minutes`` when given). Times on
    call are drawn with ``seed`` from the travel and on-scene means, or from the dispatch
    timings in ``timings`` (JSON lines of dispatch events).
    """
    from heart.cli.whatif_page import render_html

    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    modelled: Capacity | None = None
    try:
        if roster is not None and teams:
            raise ValueError("--teams and --roster both give the teams: use one")
        loaded_roster = load_roster(roster) if roster is not None else None
        if loaded_roster is not None:
            teams = {k: sum(1 for t in loaded_roster.teams if t.kind == k) for k in TEAM_ROUTES}
        effort = Effort(travel_minutes, on_scene_minutes, dict(teams or {}))
        if capacity or loaded_roster is not None:
            model = (
                read_timings(timings)
                if timings is not None
                else default_time_on_call(travel_minutes, on_scene_minutes)
            )
            modelled = Capacity(model, seed, max_wait_minutes, loaded_roster)
    except (ValueError, RosterError, OSError) as exc:
        print(f"heart whatif: {exc}", file=err)
        return 2
    inputs = load_calls(
        file, mapping, policies, err, "whatif", progress=progress, max_reject_rate=max_reject_rate
    )
    if isinstance(inputs, int):
        return inputs
    loaded_mapping, loaded, imported = inputs

    bar = ProgressBar(f"decide x{len(loaded)} policies", err, live=progress)
    result = compare(
        imported.events,
        loaded,
        effort,
        in_person_known=loaded_mapping.knows_in_person,
        progress=lambda done, total: bar.update(done, total, done, "decisions"),
        capacity=modelled,
    )
    bar.done(result.calls * len(loaded), "decisions")

    report = report_dict(result, imported, loaded_mapping, loaded)
    print(names_text(report), file=out)
    print(render_table(result, zone_name=loaded_mapping.time.timezone), file=out)
    for line in notes(result, report):
        print(f"note: {line}", file=out)
    target = Path(out_dir)
    try:
        target.mkdir(parents=True, exist_ok=True)
        (target / "whatif.json").write_bytes(
            orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        (target / "whatif.html").write_text(render_html(result, report), encoding="utf-8")
    except OSError as exc:
        print(f"heart whatif: cannot write the report in {target}: {exc.strerror or exc}", file=err)
        return 1
    print(f"report: {target / 'whatif.html'}  data: {target / 'whatif.json'}", file=out)
    return 0


def read_timings(path: str | os.PathLike[str]) -> TimeOnCall:
    """The time on call calibrated from a file of dispatch events, one JSON object a line
    (what ``dispatch.events`` carries). ValueError names the file, the line and the
    problem; OSError when it cannot be read."""
    events = []
    with Path(path).open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"timings file {path}, line {number}: not JSON ({exc})") from None
            if not isinstance(event, dict):
                raise ValueError(f"timings file {path}, line {number}: not a JSON object")
            events.append(event)
    return calibrate(events, source=f"timings file {path}")


def report_dict(
    result: WhatIf,
    imported: ImportResult,
    mapping: CadMapping,
    policies: Sequence[tuple[str, Policy]],
) -> dict[str, Any]:
    return {
        **export_names(mapping, policies),
        "export": imported.path,
        "mapping": mapping.name,
        "timezone": mapping.time.timezone,
        "needs_in_person_from": mapping.in_person.column if mapping.in_person else None,
        "import": import_figures(imported),
        "whatif": result.to_dict(),
    }


# --- who and where: the heading of every output -------------------------------------------


def export_names(mapping: CadMapping, policies: Sequence[tuple[str, Policy]]) -> dict[str, Any]:
    """The names a what-if or staffing output is headed with, for its JSON.

    ``city`` and ``export_title`` are the mapping's: the export is that city's whatever the
    policies. ``organisation`` is who runs the pilots (the monthly report's names, from
    the policies' ``[organisation]``), see :func:`shared_organisation`; ``heading`` is
    the monthly report's heading of it, neutral when it is None.
    """
    shared = shared_organisation(mapping, [policy for _, policy in policies])
    return {
        "city": mapping.city,
        "export_title": mapping.title,
        "organisation": shared.model_dump() if shared is not None else None,
        "heading": heading(shared),
    }


def shared_organisation(mapping: CadMapping, policies: Sequence[Policy]) -> Organisation | None:
    """The names every policy gives alike, field by field, when every policy names the
    export's city; else None (a neutral heading).

    A policy of another city run on this export is a what-if about that policy, not a
    report of its department: heading a Milwaukee export "Durham Community Safety
    Department" would say who runs Milwaukee's calls wrongly. Names the policies do not
    share (two departments' wordings) are left out rather than one picked.
    """
    names = [organisation_of(policy) for policy in policies]
    if not names or any(n is None or not _same_city(n.city, mapping.city) for n in names):
        return None
    fields = {
        field: values.pop() if len(values := {getattr(n, field) for n in names}) == 1 else None
        for field in ("department", "city", "program")
    }
    return Organisation(**fields) if any(fields.values()) else None


def _same_city(name: str | None, slug: str) -> bool:
    """Whether a policy's city (``San José, CA``) is the mapping's (``sanjose``): the name
    before its first comma, without accents, spaces or punctuation, is the slug without
    its hyphens and underscores."""
    if name is None:
        return False
    plain = unicodedata.normalize("NFKD", name.split(",")[0]).casefold()
    letters = "".join(c for c in plain if c.isalnum() and c.isascii())
    return letters == slug.replace("-", "").replace("_", "")


def export_label(report: Mapping[str, Any]) -> str:
    """The export as a person knows it: the mapping's title, else its name."""
    return str(report.get("export_title") or report["mapping"])


def names_text(report: Mapping[str, Any]) -> str:
    """The terminal's first two lines: who runs the pilots, and whose calls these are."""
    return f"{report['heading']}\nexport: {export_label(report)} (mapping {report['mapping']})"


def import_figures(imported: ImportResult) -> dict[str, Any]:
    """The import's account for a report: counts only, without how long it took, so the
    same export gives the same report."""
    figures = imported.to_dict(top=10)
    figures.pop("seconds", None)
    return figures


# --- words and numbers shared by the table and the page -----------------------------------


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` to one decimal, never shown as 0% or 100% unless it is:
    3,607 of 3,609 is 99.9%, and 9,999 of 10,000 is >99.9%, not 100.0%."""
    if whole <= 0:
        return "-"
    if part == whole:
        return "100%"
    if part == 0:
        return "0%"
    text = f"{100 * part / whole:.1f}%"
    if text == "100.0%":
        return ">99.9%"
    if text == "0.0%":
        return "<0.1%"
    return text


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def months_text(figures: PolicyFigures) -> str:
    """The months the calls cover in the policy's zone, each partial one marked: ``May
    2018 (partial: 1-21 May, 21 of 31 days)``, or for a long run ``January 2024 to
    November 2024, 11 months (partial: November 2024, 1-2 Nov, 2 of 30 days)``."""
    return months_text_of(figures.months)


def months_text_of(months: Sequence[MonthCoverage]) -> str:
    """:func:`months_text` of a list of months."""
    if len(months) <= 2:
        return ", ".join(m.label() for m in months) or "no calls"
    partial = "; ".join(f"{m.name}, {m.span()}" for m in months if m.partial)
    return f"{months[0].name} to {months[-1].name}, {len(months)} months" + (
        f" (partial: {partial})" if partial else ""
    )


def partial_months(result: WhatIf) -> list[MonthCoverage]:
    """Each partial month once, in order (policies in other zones may add their own)."""
    seen: dict[MonthCoverage, None] = {}
    for figures in result.policies:
        seen.update((m, None) for m in figures.months if m.partial)
    return list(seen)


def ccd_note(result: WhatIf, column: str | None) -> str:
    """What the CAD export can tell about CCD, in one sentence fit for a page or terminal."""
    if not result.in_person_known:
        return (
            "This export cannot tell which calls could be resolved by phone: the mapping "
            "reads no disposition ([in_person]), so every call is taken as needing someone "
            "in person. CCD's reached is not measured (no call goes to ccd), and CRT's "
            "reached is an upper bound."
        )
    where = f"column {column!r}" if column else "the calls"
    return (
        f"CCD reached counts the calls that {where} shows were closed without sending "
        "anyone and that the policy routes to CCD: a lower bound on what clinicians could "
        "resolve by phone, since the export cannot show a call an officer attended that a "
        "clinician could have closed."
    )


def notes(result: WhatIf, report: Mapping[str, Any]) -> list[str]:
    """The plain sentences the table needs to be read right (also on the page)."""
    lines = [ccd_note(result, report.get("needs_in_person_from"))]
    for month in partial_months(result):
        lines.append(
            f"{month.name} is a partial month: the calls cover {month.span()} only; its "
            "figures are for those days, not the whole month."
        )
    effort = result.effort
    if result.capacity is None:
        lines.append(
            "Demand in team-equivalents = team-hours on calls per hour the pilot is open "
            f"({effort.travel_minutes:g} min travel + {effort.on_scene_minutes:g} min on scene "
            "per crt/cor call). Capacity is not modelled, so it is not teams busy: above the "
            f"teams on shift (crt {effort.teams_of('crt')}, cor {effort.teams_of('cor')}) "
            "calls would wait or be missed."
        )
    else:
        lines.append(capacity_note(result))
    return lines


def capacity_note(result: WhatIf) -> str:
    """How the capacity what-if staffed the teams, in one paragraph."""
    capacity = result.capacity
    assert capacity is not None
    if capacity.roster is not None:
        teams = f"the teams and shifts of roster {capacity.roster.version_id}"
    else:
        effort = result.effort
        teams = (
            f"{effort.teams_of('crt')} CRT and {effort.teams_of('cor')} CoR teams on shift "
            "whenever the pilot is open"
        )
    waits = sorted({c.max_wait_minutes for f in result.policies for c in f.capacity.values()})
    wait = " or ".join(f"{w:g}" for w in waits) or "-"
    return (
        f"Capacity modelled with {teams}: a team call that finds no free team waits up to "
        f"{wait} min (the policy's max_queue_wait_minutes, never past stale_call_minutes), "
        "then falls back to police and is missed with 'no team free'; reached = a team "
        f"was assigned. Time on call: {capacity.describe_time()}; seed {capacity.seed}."
    )


# --- the table ----------------------------------------------------------------------------


Show = Callable[[PolicyFigures], str]
#: A table row: its label, how deep it sits under the row it is part of, how to show it.
Row = tuple[str, int, Show]


def _count(get: Callable[[PolicyFigures], int]) -> Show:
    return lambda f: f"{get(f):,}"


def _pilot_rows(result: WhatIf, pilot: str) -> list[Row]:
    def of(f: PolicyFigures) -> PilotFigures:
        return f.pilots[pilot]

    rows: list[Row] = [
        (f"{pilot} matched", 0, _count(lambda f: of(f).matched)),
        ("kept off by weapon or violence", 1, _count(lambda f: of(f).kept_off)),
        (f"{pilot} eligible", 0, _count(lambda f: of(f).eligible)),
    ]
    measured = all(of(f).measured for f in result.policies)
    if measured:
        rows.append((f"reached ({REACHED_LABELS[pilot]})", 1, _count(lambda f: of(f).reached)))
    rows.append(("missed", 1, _count(lambda f: of(f).missed_total)))
    for reason in MISS_REASONS:
        if any(of(f).missed[reason] for f in result.policies):
            rows.append((REASON_LABELS[reason], 2, _count(lambda f, r=reason: of(f).missed[r])))
    if measured:
        rows.append((OTHER_NAMES[pilot], 1, _count(lambda f: of(f).other_total)))
        for route in ROUTES:
            if any(of(f).other[route] for f in result.policies):
                rows.append((ROUTE_LABELS[route], 2, _count(lambda f, r=route: of(f).other[r])))
        rows.append(
            (
                f"{pilot} reached, share of eligible",
                0,
                lambda f: percent(of(f).reached, of(f).eligible),
            )
        )
    else:
        rows.append(
            (
                f"not missed: reached or {OTHER_NAMES[pilot]} (not told apart)",
                1,
                _count(lambda f: of(f).reached_or_other),
            )
        )
        rows.append((f"{pilot} reached, share of eligible", 0, lambda f: NOT_MEASURED))
    return rows


def table_rows(result: WhatIf) -> list[Row]:
    """The comparison's rows, parts indented under the whole they add up to."""
    rows: list[Row] = [("calls", 0, _count(lambda f: f.calls))]
    rows += [(f"route {ROUTE_LABELS[r]}", 1, _count(lambda f, r=r: f.routes[r])) for r in ROUTES]
    rows.append(("care navigation follow-ups", 0, _count(lambda f: f.followups)))
    for pilot in RESPONDERS:
        rows += _pilot_rows(result, pilot)
        if result.capacity is not None and pilot in TEAM_ROUTES:
            rows += _capacity_rows(pilot)
    rows.append(("team-hours on calls (crt+cor)", 0, lambda f: _num(f.response_team_hours)))
    rows.append(("team-hours staffed (crt+cor)", 0, lambda f: _num(f.staffed_team_hours)))
    for pilot in TEAM_ROUTES:
        rows.append(
            (
                f"{pilot} open hours per team",
                0,
                lambda f, p=pilot: _num(f.hours[p].staffed_hours_per_team),
            )
        )
        rows.append(
            (
                f"{pilot} demand, team-equivalents (not teams busy)",
                0,
                lambda f, p=pilot: _num(f.hours[p].demand_team_equivalents, 2),
            )
        )
        rows.append(
            (
                f"{pilot} peak team calls at once",
                0,
                lambda f, p=pilot: f"{f.hours[p].peak_concurrent:,}",
            )
        )
    return rows


def _capacity_rows(pilot: str) -> list[Row]:
    def minutes(get: Callable[[PoolFigures], float | None]) -> Show:
        return lambda f: _num(get(f.capacity[pilot].pool), 1) if pilot in f.capacity else "-"

    def busiest(f: PolicyFigures) -> str:
        shares = [u for u in (f.capacity[pilot].pool.utilisation() or ()) if u is not None]
        return f"{100 * max(shares):.0f}%" if shares else "-"

    return [
        (f"{pilot} teams (capacity modelled)", 0, lambda f: f"{f.capacity[pilot].teams:,}"),
        ("team calls: reached + no team free", 1, _count(lambda f: f.capacity[pilot].team_calls)),
        ("wait for a team, p50 (min, reached calls)", 1, minutes(lambda p: p.wait_p50)),
        ("wait for a team, p90 (min, reached calls)", 1, minutes(lambda p: p.wait_p90)),
        ("team utilisation, busiest hour of the week", 1, busiest),
    ]


def render_table(result: WhatIf, *, zone_name: str = "") -> str:
    """The comparison as fixed-width text, one column per policy."""
    rows = table_rows(result)
    labels = [f.label for f in result.policies]
    shown = [("  " * depth + label) for label, depth, _ in rows]
    first = max(len(label) for label in shown)
    cells = [[show(f) for f in result.policies] for _, _, show in rows]
    widths = [
        max(len(labels[i]), *(len(row[i]) for row in cells)) for i in range(len(result.policies))
    ]
    lines = [headline(result, zone_name), *_months_lines(result)]
    lines.append(_line(" " * first, labels, widths))
    for label, row in zip(shown, cells, strict=True):
        lines.append(_line(label.ljust(first), row, widths))
    return "\n".join(lines)


def _months_lines(result: WhatIf) -> list[str]:
    texts = {f.label: months_text(f) for f in result.policies}
    if len(set(texts.values())) <= 1:
        return [f"months: {text}" for text in list(texts.values())[:1]]
    return [f"months ({f.label}, {f.timezone}): {texts[f.label]}" for f in result.policies]


def _line(first: str, cells: Sequence[str], widths: Sequence[int]) -> str:
    return first + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))


def period(result: WhatIf, zone_name: str) -> str:
    """``33,968 calls from 2018-05-01 00:00 to 2018-05-21 14:14 (America/Chicago)``."""
    if result.first_call is None or result.last_call is None:
        return "no calls"
    first, last = result.first_call, result.last_call
    return (
        f"{result.calls:,} calls from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"
        f"{f' ({zone_name})' if zone_name else ''}"
    )


def headline(result: WhatIf, zone_name: str) -> str:
    noun = "policy" if len(result.policies) == 1 else "policies"
    return f"what-if: {period(result, zone_name)}, {len(result.policies)} {noun}"
