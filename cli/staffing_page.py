"""The staffing search as a self-contained HTML page: inline CSS and SVG, no script.

Laid out like the what-if page (:mod:`heart.cli.whatif_page`, whose styles and drawing
helpers it shares): a header naming who runs the pilots (as the what-if page does), the
export and the period, a notice for a partial month, then

- the recommended team counts per policy and team pilot, with the assumptions they rest
  on beside them;
- the reach curve of each team pilot: one line per policy, the share of its team calls
  reached with 1, 2, ... teams on shift, the target drawn across, every point also in a
  table;
- per policy, an hour-of-week map of the pilot's eligible calls, the hours the policy
  covers outlined;
- the glossary.

The page holds counts only: no call id, person, phone number or place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from heart.agents.capacity.staffing import CurvePoint, PilotStaffing, Staffing
from heart.agents.triage.whatif import TEAM_ROUTES, months_covered
from heart.cli.staffing import (
    assumptions,
    coverage_text,
    headline,
    hours_text,
    needed_text,
    pilot_windows,
    point_at_needed,
)
from heart.cli.whatif import export_label, months_text_of, percent
from heart.cli.whatif_page import (
    CSS,
    INK,
    LINE,
    MUTED,
    PILOT_NAMES,
    SHORT,
    _esc,
    _legend_steps,
    _text,
    heatmap_svg,
    partial_notice,
)
from heart.policy import Policy
from heart.schemas.glossary import GLOSSARY

#: One colour and dash per policy line, Okabe-Ito: told apart in colour and in print.
LINE_STYLES = (
    ("#0072B2", ""),
    ("#E69F00", "7 4"),
    ("#009E73", "2 3"),
    ("#CC79A7", "10 3 2 3"),
    ("#56B4E9", "4 2"),
    ("#D55E00", "1 2"),
)
TARGET_COLOUR = "#8a5a00"

PAGE_CSS = """
.split { display: flex; flex-wrap: wrap; gap: 18px 28px; align-items: flex-start; }
.split > .main { flex: 3 1 660px; min-width: 0; }
.split > aside { flex: 1 1 250px; background: #f7f9fb; border: 1px solid var(--line);
  border-radius: 8px; padding: 10px 16px; font-size: 14px; }
aside h3 { margin: 4px 0 6px; }
aside ul { margin: 0; padding-left: 18px; }
aside li { margin: 4px 0; }
.scroll { overflow-x: auto; }
.curve-legend li span.line { display: inline-block; width: 28px; height: 0;
  border-top: 3px solid; vertical-align: middle; }
td.needed { font-weight: 700; }
td.nowrap { white-space: nowrap; }
#recommended th, #recommended td { padding: 6px 6px; }
"""


def render_html(
    result: Staffing, report: Mapping[str, Any], policies: Sequence[tuple[str, Policy]]
) -> str:
    """The page (see the module docstring)."""
    noun = "policy" if len(result.policies) == 1 else "policies"
    months = _months(result, policies)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Staffing: {_esc(export_label(report))}, {len(result.policies)} {noun}</title>",
        f"<style>{CSS}{PAGE_CSS}</style></head><body>",
        '<header><div class="wrap">',
        f'<p class="eyebrow">{_esc(report["heading"])}</p>',
        f"<h1>Staffing: teams needed to reach {100 * result.target:g}% of team calls</h1>",
        f'<p class="meta"><span class="export-title">{_esc(export_label(report))}</span><br>'
        f"{_esc(headline(result, report['timezone']))} &middot; "
        f"{_esc(months_text_of(months) if months else 'no calls')}<br>export "
        f"<code>{_esc(Path(report['export']).name)}</code> &middot; mapping "
        f"<code>{_esc(report['mapping'])}</code></p>",
        "</div></header>",
        '<main><div class="wrap">',
        partial_notice(months),
        _recommendation_card(result, policies),
        _curves_card(result),
        _demand_card(result, policies),
        _glossary_card(),
        "</div></main>",
        _footer(result),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _months(result: Staffing, policies: Sequence[tuple[str, Policy]]) -> list[Any]:
    if result.first_call is None or result.last_call is None or not policies:
        return []
    return months_covered(result.first_call, result.last_call, policies[0][1].zone)


# --- the recommendation ---------------------------------------------------------------


def _recommendation_card(result: Staffing, policies: Sequence[tuple[str, Policy]]) -> str:
    rows = []
    idle = []
    for figures, (_, policy) in zip(result.policies, policies, strict=True):
        for name, pilot in figures.pilots.items():
            if pilot.team_calls == 0:
                idle.append(f"{figures.label} ({SHORT[name]})")
                continue
            point = point_at_needed(pilot)
            assert point is not None
            rows.append(
                f'<tr data-policy="{_esc(figures.label)}" data-pilot="{name}" '
                f'data-teams-needed="{pilot.teams_needed if pilot.teams_needed else ""}">'
                f'<th scope="row">{_esc(figures.label)}</th><td>{SHORT[name]}</td>'
                f'<td class="nowrap">{_esc(hours_text(pilot_windows(policy, name)))}</td>'
                f"<td>{pilot.team_calls:,}</td>"
                f'<td class="needed">{_esc(needed_text(pilot, result.teams_max))}</td>'
                f"<td>{percent(point.reached, point.team_calls)}</td>"
                f'<td>{point.fallbacks:,}</td><td class="nowrap">{_minutes(point.wait_p90)}</td>'
                "</tr>"
            )
    table = (
        '<div class="scroll"><table id="recommended"><thead><tr><th>policy</th><th>pilot</th>'
        "<th>hours open</th><th>team calls</th><th>teams needed</th>"
        "<th>reached</th><th>fallbacks</th><th>wait p90</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        if rows
        else '<p class="empty">No policy sends a team to any of these calls.</p>'
    )
    idle_text = (
        f'<p class="lede">No team calls, so no team needed: {_esc(", ".join(idle))}.</p>'
        if idle
        else ""
    )
    notes = "".join(
        f"<li>{_esc(line)}</li>" for line in assumptions(result, result.max_wait_minutes)
    )
    return (
        '<section class="card" id="recommendation"><h2>Recommended team counts</h2>'
        f'<p class="lede">The fewest teams on shift that reach {100 * result.target:g}% of '
        "each pilot's team calls, tried from 1 to "
        f"{result.teams_max}. Reached (share of the team calls), fallbacks and the p90 wait "
        "of the reached calls are those of that count.</p>"
        f'<div class="split"><div class="main">{table}{idle_text}</div>'
        f'<aside id="assumptions"><h3>Assumptions</h3><ul>{notes}</ul></aside></div>'
        "</section>"
    )


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} min"


# --- reach curves -----------------------------------------------------------------------


def _curves_card(result: Staffing) -> str:
    panels = []
    for pilot in TEAM_ROUTES:
        lines = [(f.label, f.pilots[pilot]) for f in result.policies if f.pilots[pilot].team_calls]
        if not lines:
            continue
        panels.append(
            f'<div class="panel" id="curve-{pilot}"><h3><span class="tag">{SHORT[pilot]}'
            f"</span>{_esc(PILOT_NAMES[pilot])}</h3>"
            + _curve_legend(lines)
            + _curve_svg(pilot, lines, result)
            + _curve_table(pilot, lines)
            + "</div>"
        )
    if not panels:
        panels.append('<p class="empty">No policy sends a team to any of these calls.</p>')
    return (
        '<section class="card" id="curves"><h2>Reach curves</h2>'
        '<p class="lede">Per team pilot, the share of the team calls a team reached with 1, '
        "2, ... teams on shift, one line per policy, and the target across. Every count runs "
        "the same calls with the same times on call. A marked point is the count "
        "recommended.</p>" + "".join(panels) + "</section>"
    )


def _curve_legend(lines: Sequence[tuple[str, PilotStaffing]]) -> str:
    items = "".join(
        f'<li><span class="line" style="border-top-color:{colour};'
        f'{"border-top-style:dashed;" if dash else ""}"></span>{_esc(label)}</li>'
        for (label, _), (colour, dash) in zip(lines, _styles(len(lines)), strict=True)
    )
    return f'<ul class="legend curve-legend">{items}</ul>'


def _styles(count: int) -> list[tuple[str, str]]:
    return [LINE_STYLES[n % len(LINE_STYLES)] for n in range(count)]


def _curve_svg(pilot: str, lines: Sequence[tuple[str, PilotStaffing]], result: Staffing) -> str:
    left, right, top, plot_w, plot_h = 64, 24, 16, 800, 260
    width = left + plot_w + right
    base = top + plot_h
    height = base + 50
    teams_max = result.teams_max
    step_x = plot_w / max(1, teams_max - 1)

    def x_of(teams: int) -> float:
        return left + (teams - 1) * step_x

    def y_of(share: float) -> float:
        return base - share * plot_h

    name = f"{SHORT[pilot]} reach curve: share of team calls reached by teams on shift"
    desc = "; ".join(
        f"{label}: " + ", ".join(f"{p.teams} {percent(p.reached, p.team_calls)}" for p in s.curve)
        for label, s in lines
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_esc(name)}"><title>{_esc(name)}</title><desc>{_esc(desc)}</desc>'
    ]
    for tick in range(0, 101, 20):
        y = y_of(tick / 100)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{LINE}"/>'
        )
        out.append(_text(left - 8, y + 4, f"{tick}%", text_anchor="end", font_size=12, fill=MUTED))
    every = max(1, math.ceil(teams_max / 16))
    for teams in range(1, teams_max + 1):
        if (teams - 1) % every and teams != teams_max:
            continue
        out.append(
            _text(
                x_of(teams), base + 16, f"{teams}", text_anchor="middle", font_size=12, fill=MUTED
            )
        )
    out.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="{MUTED}"/>')
    out.append(
        _text(
            left + plot_w / 2,
            base + 38,
            "teams on shift",
            text_anchor="middle",
            font_size=13,
            fill=INK,
        )
    )
    mid = top + plot_h / 2
    out.append(
        f'<text x="14" y="{mid:.1f}" transform="rotate(-90 14 {mid:.1f})" text-anchor="middle" '
        f'font-size="13" fill="{INK}">share of team calls reached</text>'
    )
    target_y = y_of(result.target)
    out.append(
        f'<line class="target" x1="{left}" y1="{target_y:.1f}" x2="{left + plot_w}" '
        f'y2="{target_y:.1f}" stroke="{TARGET_COLOUR}" stroke-width="1.5" '
        f'stroke-dasharray="6 4"/>'
    )
    out.append(
        _text(
            left + 6,
            target_y - 6,
            f"target {100 * result.target:g}%",
            text_anchor="start",
            font_size=12,
            fill=TARGET_COLOUR,
        )
    )
    for (label, staffing), (colour, dash) in zip(lines, _styles(len(lines)), strict=True):
        points = [(x_of(p.teams), y_of(p.reached_share or 0.0), p) for p in staffing.curve]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<g class="curve" data-policy="{_esc(label)}" data-pilot="{pilot}" '
            f'data-teams-needed="{staffing.teams_needed or ""}">'
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"'
            f"{dashes}/>"
        )
        for x, y, point in points:
            needed = point.teams == staffing.teams_needed
            flag = ' data-needed="1"' if needed else ""
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{6 if needed else 3.5}" '
                f'fill="{"#fff" if needed else colour}" stroke="{colour}" '
                f'stroke-width="{3 if needed else 1}" data-teams="{point.teams}" '
                f'data-reached="{point.reached}" data-team-calls="{point.team_calls}"'
                f"{flag}><title>{_esc(label)}: "
                f"{point.teams} teams, {point.reached:,} of {point.team_calls:,} reached "
                f"({percent(point.reached, point.team_calls)}), {point.fallbacks:,} "
                f"fallbacks, wait p90 {_minutes(point.wait_p90)}</title></circle>"
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _curve_table(pilot: str, lines: Sequence[tuple[str, PilotStaffing]]) -> str:
    head = "".join(f'<th scope="colgroup" colspan="3">{_esc(label)}</th>' for label, _ in lines)
    sub = "<th>reached</th><th>fallbacks</th><th>wait p90</th>" * len(lines)
    count = max(len(s.curve) for _, s in lines)
    body = []
    for index in range(count):
        cells = []
        for _, staffing in lines:
            point: CurvePoint = staffing.curve[index]
            needed = ' class="needed"' if point.teams == staffing.teams_needed else ""
            cells.append(
                f"<td{needed}>{percent(point.reached, point.team_calls)}</td>"
                f"<td>{point.fallbacks:,}</td><td>{_minutes(point.wait_p90)}</td>"
            )
        body.append(f'<tr><th scope="row">{index + 1}</th>{"".join(cells)}</tr>')
    return (
        f'<div class="scroll"><table class="curve-table" data-pilot="{pilot}"><thead>'
        f'<tr><th rowspan="2">teams</th>{head}</tr><tr>{sub}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


# --- demand by hour of the week ---------------------------------------------------------


def _demand_card(result: Staffing, policies: Sequence[tuple[str, Policy]]) -> str:
    days = 0.0
    if result.first_call is not None and result.last_call is not None and policies:
        zone = policies[0][1].zone
        first = result.first_call.astimezone(zone).date()
        last = result.last_call.astimezone(zone).date()
        days = (last - first).days + 1
    weeks = days / 7 if days else 0.0
    panels = []
    top = 0.0
    for figures in result.policies:
        for pilot in TEAM_ROUTES:
            staffing = figures.pilots[pilot]
            if staffing.eligible and weeks:
                top = max(top, max(staffing.eligible_by_hour) / weeks)
    steps = _demand_steps(top)
    for figures, (_, policy) in zip(result.policies, policies, strict=True):
        for pilot in TEAM_ROUTES:
            staffing = figures.pilots[pilot]
            if not staffing.eligible or not weeks:
                continue
            values = [count / weeks for count in staffing.eligible_by_hour]
            panels.append(
                f'<div class="panel demand" data-policy="{_esc(figures.label)}" '
                f'data-pilot="{pilot}" data-eligible="{staffing.eligible}">'
                f'<h3><span class="tag">{SHORT[pilot]}</span>{_esc(figures.label)}: open '
                f"{_esc(hours_text(pilot_windows(policy, pilot)))}</h3>"
                f'<ul class="sums"><li class="coverage-sum">{_esc(coverage_text(staffing))}'
                "</li></ul>"
                + heatmap_svg(
                    values,
                    name=f"{SHORT[pilot]} eligible calls per week by hour, {figures.label}",
                    steps=steps,
                    show=_per_week,
                    missing="",
                    open_minutes=staffing.open_minutes_by_hour,
                )
                + "</div>"
            )
    if not panels:
        panels.append('<p class="empty">No eligible calls for a team pilot.</p>')
    return (
        '<section class="card" id="demand-map"><h2>Eligible calls by hour of the week</h2>'
        f'<p class="lede">Per hour of the week (local time), the team pilot\'s eligible calls '
        f"per week on average over the {days:,.0f} days of calls, and, outlined, the hours "
        "each policy covers. Calls in hours it does not cover are missed whatever the "
        "teams; those in covered hours are its team calls (unless routed elsewhere).</p>"
        + _legend_steps(steps, "eligible calls per week", open_hours=True)
        + "".join(panels)
        + "</section>"
    )


def _per_week(value: float) -> str:
    if value <= 0:
        return ""
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _demand_steps(top: float) -> tuple[tuple[float, str], ...]:
    """Six colour steps from 0 to ``top`` calls per week, on round bounds."""
    if top <= 0:
        return ((0.0, "0"),)
    raw = top / 6
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    bounds = [n * step for n in range(6)]
    labels = []
    for n, low in enumerate(bounds):
        if n == len(bounds) - 1:
            labels.append(f"{_bound(low)} or more a week")
        else:
            labels.append(f"{_bound(low)} to under {_bound(bounds[n + 1])}")
    return tuple(zip(bounds, labels, strict=True))


def _bound(value: float) -> str:
    return f"{value:g}"


# --- glossary and footer ----------------------------------------------------------------


def _glossary_card() -> str:
    terms = "".join(
        f"<dt>{_esc(term)}</dt><dd>{_esc(meaning)}</dd>" for term, meaning in GLOSSARY.items()
    )
    return (
        '<section class="card" id="glossary"><h2>Glossary</h2>'
        '<p class="lede">Each term has this one meaning here, in the what-if and in the '
        "monthly report. Per team pilot, eligible = team calls + missed by hours or area + "
        "routed elsewhere; team calls = reached + fallbacks (missed, no team free). A "
        "<b>team call</b> is an eligible call the policy sends the pilot's team to: what it "
        "would reach if a team were always free.</p>"
        f'<dl class="terms">{terms}</dl></section>'
    )


def _footer(result: Staffing) -> str:
    items = "".join(
        f"<li><b>{_esc(f.label)}</b>: {_esc(f.title or '')} <code>{_esc(f.policy_version)}"
        f"</code>, hours in {_esc(f.timezone)}</li>"
        for f in result.policies
    )
    return (
        f'<footer><div class="wrap"><p>Policies searched:</p><ul>{items}</ul>'
        "<p>Generated by HEART Stream's <code>heart staffing</code> from the export; counts "
        "only: no call id, person, phone number or address.</p></div></footer>"
    )
