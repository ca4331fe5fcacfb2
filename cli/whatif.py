"""``heart whatif FILE --mapping M --policy A --policy B``: policies compared on real calls.

The export is imported as ``heart import`` would, every call is decided under each policy
with the triage stage's pure decision (no broker), and the figures of
:mod:`heart.agents.triage.whatif` are written three ways: a table on stdout, and in ``--out``
(default ``./whatif-out``) ``whatif.html`` (self-contained: inline CSS and SVG, nothing
fetched) and ``whatif.json``.

Exit status: 0 the comparison ran; 1 the export could not be read or a report not written;
2 the mapping or a policy is unusable (file, field and problem named), or a policy does not
know a category the mapping produces (those calls would silently reach no pilot).
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from heart.agents.triage.whatif import (
    MISS_REASONS,
    ROUTES,
    TEAM_ROUTES,
    Effort,
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

DEFAULT_OUT = Path("whatif-out")
POLICY_DIR = Path(__file__).resolve().parents[1] / "policy"

_REASON_LABELS = {
    "outside_hours": "outside hours",
    "outside_service_area": "outside service area",
    "unknown_beat": "unknown beat",
    "pilot_disabled": "pilot disabled",
}


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


def load_policies(
    names: Sequence[str | os.PathLike[str]], mapping: CadMapping, err: IO[str]
) -> list[tuple[str, Policy]] | None:
    """``(label, policy)`` per name (the mapping's demo policy when none), or None after
    printing why one cannot be used with this mapping."""
    paths = [resolve_policy_path(n) for n in names] or [mapping.policy_path]
    loaded: list[tuple[str, Policy]] = []
    labels: set[str] = set()
    for path in paths:
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            print(f"heart whatif: {exc}", file=err)
            return None
        unknown = mapping.unknown_categories(policy)
        if unknown:
            print(
                f"heart whatif: policy file {path}: categories: does not know "
                f"{', '.join(repr(c) for c in unknown)}, which mapping {mapping.name} "
                "produces; those calls would reach no pilot",
                file=err,
            )
            return None
        if policy.timezone != mapping.time.timezone:
            # Not fatal (a zone may be right for a reason), but hours judged in another
            # city's zone are the commonest way to get a what-if quietly wrong.
            print(
                f"heart whatif: warning: policy {path.name} judges hours in {policy.timezone}, "
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
    travel_minutes: float = 7.6,
    on_scene_minutes: float = 45.0,
    teams: Mapping[str, int] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    progress: bool | None = None,
) -> int:
    """``heart whatif``; returns the exit status (see the module docstring)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        effort = Effort(travel_minutes, on_scene_minutes, dict(teams or {}))
    except ValueError as exc:
        print(f"heart whatif: {exc}", file=err)
        return 2
    loaded_mapping = load_or_report(mapping, err, "whatif")
    if loaded_mapping is None:
        return 2
    loaded = load_policies(policies, loaded_mapping, err)
    if loaded is None:
        return 2
    imported = read_export(file, loaded_mapping, err, "whatif", live=progress)
    if isinstance(imported, int):
        return imported
    print(imported.summary(top=5), file=err)

    bar = ProgressBar(f"decide x{len(loaded)} policies", err, live=progress)
    result = compare(
        imported.events,
        loaded,
        effort,
        progress=lambda done, total: bar.update(done, total, done, "decisions"),
    )
    bar.done(result.calls * len(loaded), "decisions")

    zone = loaded_mapping.zone
    print(render_table(result, zone_name=str(zone)), file=out)
    report = report_dict(result, imported, loaded_mapping)
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


def report_dict(result: WhatIf, imported: ImportResult, mapping: CadMapping) -> dict[str, Any]:
    return {
        "export": imported.path,
        "mapping": mapping.name,
        "timezone": mapping.time.timezone,
        "import": imported.to_dict(top=10),
        "whatif": result.to_dict(),
    }


# --- the table ----------------------------------------------------------------------------


Row = tuple[str, Callable[[PolicyFigures], str]]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table_rows(result: WhatIf) -> list[Row]:
    """The comparison's rows: a label and how to show it for one policy."""
    rows: list[Row] = [
        (f"route {route}", lambda f, r=route: f"{f.routes[r]:,}") for route in ROUTES
    ]
    rows.append(("care navigation follow-ups", lambda f: f"{f.followups:,}"))
    for pilot in RESPONDERS:
        rows.append((f"{pilot} in scope", lambda f, p=pilot: f"{f.pilots[p].in_scope:,}"))
        rows.append((f"{pilot} reached", lambda f, p=pilot: f"{f.pilots[p].reached:,}"))
        rows.append((f"{pilot} missed", lambda f, p=pilot: f"{f.pilots[p].missed_total:,}"))
        for reason in MISS_REASONS:
            if any(f.pilots[pilot].missed[reason] for f in result.policies):
                rows.append(
                    (
                        f"  {_REASON_LABELS[reason]}",
                        lambda f, p=pilot, r=reason: f"{f.pilots[p].missed[r]:,}",
                    )
                )
        rows.append((f"{pilot} reach rate", lambda f, p=pilot: _pct(f.pilots[p].reach_rate)))
    rows.append(("team-hours on calls (crt+cor)", lambda f: _num(f.response_team_hours)))
    rows.append(("team-hours staffed (crt+cor)", lambda f: _num(f.staffed_team_hours)))
    for pilot in TEAM_ROUTES:
        rows.append(
            (
                f"{pilot} staffed hours per team",
                lambda f, p=pilot: _num(f.hours[p].staffed_hours_per_team),
            )
        )
        rows.append(
            (f"{pilot} avg teams busy", lambda f, p=pilot: _num(f.hours[p].avg_teams_busy, 2))
        )
        rows.append(
            (f"{pilot} peak team calls at once", lambda f, p=pilot: f"{f.hours[p].peak_concurrent}")
        )
    return rows


def render_table(result: WhatIf, *, zone_name: str = "") -> str:
    """The comparison as fixed-width text, one column per policy."""
    rows = table_rows(result)
    labels = [f.label for f in result.policies]
    first = max(len(label) for label, _ in rows)
    cells = [[show(f) for f in result.policies] for _, show in rows]
    widths = [
        max(len(labels[i]), *(len(row[i]) for row in cells)) for i in range(len(result.policies))
    ]
    lines = [_headline(result, zone_name)]
    lines.append(_line(" " * first, labels, widths))
    for (label, _), row in zip(rows, cells, strict=True):
        lines.append(_line(label.ljust(first), row, widths))
    effort = result.effort
    lines.append(
        f"team-hours: {effort.travel_minutes:g} min travel + {effort.on_scene_minutes:g} min on "
        f"scene per crt/cor call; staffed = the windows' hours over the period x teams "
        f"(crt {effort.teams_of('crt')}, cor {effort.teams_of('cor')}); capacity not modelled"
    )
    return "\n".join(lines)


def _line(first: str, cells: Sequence[str], widths: Sequence[int]) -> str:
    return first + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))


def _headline(result: WhatIf, zone_name: str) -> str:
    if result.first_call is None or result.last_call is None:
        return f"what-if: no calls, {len(result.policies)} policies"
    first, last = result.first_call, result.last_call
    return (
        f"what-if: {result.calls:,} calls from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"
        f"{f' ({zone_name})' if zone_name else ''}, {len(result.policies)} policies"
    )


# --- the HTML report ----------------------------------------------------------------------

_COLOURS = {
    "reached": "#2e7d32",
    "outside_hours": "#ef6c00",
    "outside_service_area": "#8e24aa",
    "unknown_beat": "#757575",
    "pilot_disabled": "#c62828",
    "ccd": "#1565c0",
    "crt": "#2e7d32",
    "cor": "#6a1b9a",
}
_PILOT_NAMES = {"ccd": "CCD (phone)", "crt": "CRT (team)", "cor": "CoR (co-response)"}

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em;color:#222}
body{max-width:80em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0}
th,td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}
td.sub{padding-left:2em;color:#555}
.note{color:#555;font-size:.9em}
svg text{font:12px system-ui,-apple-system,'Segoe UI',sans-serif;fill:#222}
.legend span{display:inline-block;margin-right:1.2em}
.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(result: WhatIf, report: Mapping[str, Any]) -> str:
    """A self-contained page: the side-by-side chart, the routes chart, the full table."""
    imported = report["import"]
    effort = result.effort
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>What-if: {_esc(report['mapping'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>What-if: {len(result.policies)} policies on {result.calls:,} real calls</h1>",
        f"<p>{_esc(_headline(result, report['timezone']))}. Export <code>"
        f"{_esc(Path(report['export']).name)}</code>, mapping <code>{_esc(report['mapping'])}"
        f"</code>: {imported['rows']:,} rows, {imported['accepted']:,} calls, "
        f"{imported['rejected']:,} rejected, {imported['unmapped_type']:,} of a type the "
        "mapping leaves to police.</p>",
        "<h2>Calls in scope for each pilot: reached, and missed by why</h2>",
        '<p class="note">In scope: the pilot\'s call types matched and no weapon or violence '
        "kept it off. Missed: in scope but outside the pilot's hours or area (the figure a "
        "department staffs from). Same scale in every panel.</p>",
        _legend(["reached", *MISS_REASONS]),
        _pilot_chart(result),
        "<h2>Calls per HEART route</h2>",
        '<p class="note">Police takes every other call (see the table).</p>',
        _legend(["ccd", "crt", "cor"], names=_PILOT_NAMES),
        _routes_chart(result),
        "<h2>All figures</h2>",
        _html_table(result),
        '<p class="note">Team-hours: each call routed to a team (crt, cor) counts '
        f"{effort.travel_minutes:g} min travel (Durham's first-months average) + "
        f"{effort.on_scene_minutes:g} min on scene (assumed). Staffed hours are the "
        "pilot's opening hours over the calendar days the calls span, times the teams on "
        f"shift (crt {effort.teams_of('crt')}, cor {effort.teams_of('cor')}). Average teams "
        "busy = hours on calls / staffed hours of one team; peak = most team calls "
        "overlapping at one moment. Capacity is not modelled: a reached call assumes a free "
        "team.</p>",
        "<h2>Policies</h2><ul>",
        *(
            f"<li><b>{_esc(f.label)}</b>: {_esc(f.title or '')} <code>"
            f"{_esc(f.policy_version)}</code></li>"
            for f in result.policies
        ),
        "</ul></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _legend(keys: Sequence[str], names: Mapping[str, str] | None = None) -> str:
    names = names or {"reached": "reached", **_REASON_LABELS}
    items = "".join(
        f'<span><i style="background:{_COLOURS[k]}"></i>{_esc(names[k])}</span>' for k in keys
    )
    return f'<p class="legend">{items}</p>'


def _svg_open(width: int, height: int, label: str) -> str:
    # Scales down to a narrow window instead of overflowing it; never up past its size.
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'style="width:100%;max-width:{width}px" role="img" aria-label="{_esc(label)}">'
    )


def _pilot_chart(result: WhatIf) -> str:
    """One panel per policy, side by side; per pilot a bar of reached then each miss."""
    # Per panel: pilot names on the left, the bar, then room for "reached/in scope rate".
    panel_w, bar_h, gap, left, right, top = 400, 22, 14, 120, 125, 34
    count = len(result.policies)
    height = top + len(RESPONDERS) * (bar_h + gap) + 10
    width = count * panel_w + (count - 1) * 20
    scale = max((f.pilots[p].in_scope for f in result.policies for p in RESPONDERS), default=0) or 1
    usable = panel_w - left - right
    out = [_svg_open(width, height, "reached and missed per pilot")]
    for index, figures in enumerate(result.policies):
        x0 = index * (panel_w + 20)
        out.append(f'<text x="{x0}" y="16" font-weight="bold">{_esc(figures.label)}</text>')
        for row, pilot in enumerate(RESPONDERS):
            p = figures.pilots[pilot]
            y = top + row * (bar_h + gap)
            out.append(
                f'<text x="{x0}" y="{y + bar_h * 0.7:.1f}">{_esc(_PILOT_NAMES[pilot])}</text>'
            )
            x = x0 + left
            segments = [("reached", p.reached)] + [(r, p.missed[r]) for r in MISS_REASONS]
            for key, value in segments:
                if value <= 0:
                    continue
                w = value / scale * usable
                name = "reached" if key == "reached" else _REASON_LABELS[key]
                out.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{max(w, 0.5):.1f}" height="{bar_h}" '
                    f'fill="{_COLOURS[key]}"><title>{_esc(figures.label)}: {_esc(pilot)} '
                    f"{_esc(name)} {value:,}</title></rect>"
                )
                x += w
            rate = p.reach_rate
            label = f"{p.reached:,}/{p.in_scope:,}" + (f" {rate:.0%}" if rate is not None else "")
            out.append(f'<text x="{x + 4:.1f}" y="{y + bar_h * 0.7:.1f}">{_esc(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _routes_chart(result: WhatIf) -> str:
    """Grouped bars: per policy, the calls routed to ccd, crt and cor."""
    group_w, bar_w, height, base, top = 150, 36, 220, 190, 20
    routes = [r for r in ROUTES if r != "police"]
    count = len(result.policies)
    width = max(count * group_w + 40, 300)
    scale = max((f.routes[r] for f in result.policies for r in routes), default=0) or 1
    out = [
        _svg_open(width, height + 20, "calls per HEART route"),
        f'<line x1="20" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#999"/>',
    ]
    for index, figures in enumerate(result.policies):
        gx = 30 + index * group_w
        for slot, route in enumerate(routes):
            value = figures.routes[route]
            h = value / scale * (base - top - 14)
            x = gx + slot * (bar_w + 4)
            out.append(
                f'<rect x="{x}" y="{base - h:.1f}" width="{bar_w}" height="{max(h, 0.5):.1f}" '
                f'fill="{_COLOURS[route]}"><title>{_esc(figures.label)}: {route} {value:,}'
                "</title></rect>"
            )
            out.append(
                f'<text x="{x + bar_w / 2}" y="{base - h - 4:.1f}" text-anchor="middle">'
                f"{value:,}</text>"
            )
        out.append(
            f'<text x="{gx + (len(routes) * (bar_w + 4)) / 2}" y="{base + 18}" '
            f'text-anchor="middle">{_esc(figures.label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _html_table(result: WhatIf) -> str:
    head = "".join(f"<th>{_esc(f.label)}</th>" for f in result.policies)
    body = []
    for label, show in table_rows(result):
        cls = ' class="sub"' if label.startswith("  ") else ""
        cells = "".join(f"<td>{_esc(show(f))}</td>" for f in result.policies)
        body.append(f"<tr><td{cls}>{_esc(label.strip())}</td>{cells}</tr>")
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
