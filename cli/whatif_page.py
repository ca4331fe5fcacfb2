"""The what-if as a self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

Laid out like the monthly report: a header naming who runs the pilots (the monthly
report's heading, from the policies' organisation when they all name the export's city,
else neutral), the export and the period, a notice for
each partial month, then one panel per pilot comparing the policies on the same axis, the
calls per route, the team demand, every figure as a table, what a CAD export can tell
about CCD, and the glossary, generated from :data:`heart.schemas.glossary.GLOSSARY`.

Every bar is printed as numbers beside it, and under each panel its figures are written
out as the sum they are (``eligible = reached + missed + other``), so the parts visibly
add up. The page holds counts only: no call id, person, phone number or place.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from heart.agents.triage.whatif import (
    MISS_REASONS,
    OTHER_NAMES,
    ROUTES,
    TEAM_ROUTES,
    CapacityFigures,
    PilotFigures,
    WhatIf,
)
from heart.cli.whatif import (
    REACHED_LABELS,
    REASON_LABELS,
    capacity_note,
    ccd_note,
    export_label,
    months_text,
    partial_months,
    percent,
    period,
    table_rows,
)
from heart.policy.model import RESPONDERS
from heart.schemas.glossary import GLOSSARY

PILOT_NAMES = {
    "ccd": "Crisis Call Diversion",
    "crt": "Community Response Teams",
    "cor": "Co-Response",
}
SHORT = {"ccd": "CCD", "crt": "CRT", "cor": "CoR", "police": "Police"}

#: Okabe-Ito colours, as the monthly report uses: told apart with common colour-vision
#: deficiencies.
COLOURS = {
    "reached": "#009E73",
    "outside_hours": "#E69F00",
    "outside_service_area": "#56B4E9",
    "unknown_beat": "#CC79A7",
    "pilot_disabled": "#8C8C8C",
    "no_team_free": "#D55E00",
    "other": "#C9CFD8",
    "unknown": "#E4E8EE",
    "ccd": "#0072B2",
    "crt": "#009E73",
    "cor": "#D55E00",
}
#: Fills dark enough for white numbers on top; the others get dark ones.
DARK = {"#009E73", "#8C8C8C", "#0072B2", "#D55E00"}
INK, MUTED, LINE = "#1b1f24", "#5b6470", "#d9dee5"

CSS = """
:root { color-scheme: light; --ink: #1b1f24; --muted: #5b6470; --line: #d9dee5;
  --card: #fff; --bg: #f3f5f8; --accent: #1F3A5F; --warn: #8a5a00; --warnbg: #fff6e0; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
header { background: var(--accent); color: #fff; padding: 26px 0 28px; }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 28px; }
.eyebrow { margin: 0; text-transform: uppercase; letter-spacing: .08em; font-size: 13px;
  opacity: .85; }
h1 { margin: 4px 0 6px; font-size: 32px; line-height: 1.2; }
header .meta { margin: 0; opacity: .92; font-size: 14px; }
header .export-title { font-size: 16px; font-weight: 600; }
main { padding: 24px 0 8px; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 20px 24px 18px; margin: 0 0 20px; }
section.notice { background: var(--warnbg); border-color: #f0d9a0; }
section.notice h2 { color: var(--warn); }
h2 { margin: 0 0 4px; font-size: 21px; }
h3 { margin: 14px 0 4px; font-size: 16px; }
.lede { margin: 0 0 12px; color: var(--muted); font-size: 14px; }
.tag { display: inline-block; font-weight: 700; font-size: 13px; color: #fff;
  background: var(--accent); border-radius: 4px; padding: 1px 7px; margin-right: 8px;
  vertical-align: 1px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 0 0 6px; padding: 0;
  list-style: none; font-size: 14px; }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { width: 14px; height: 14px; border-radius: 3px; display: inline-block;
  border: 1px solid rgba(0,0,0,.15); }
.swatch.unknown { background: repeating-linear-gradient(45deg, #E4E8EE 0 3px, #B8C0CC 3px 5px); }
svg { display: block; width: 100%; height: auto; max-width: 900px; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
.panel { border-top: 1px solid var(--line); padding-top: 4px; margin-top: 10px; }
.panel:first-of-type { border-top: 0; }
ul.sums { margin: 4px 0 8px; padding: 0 0 0 18px; font-size: 14px;
  font-variant-numeric: tabular-nums; }
ul.sums li { margin: 2px 0; }
.empty { color: var(--muted); font-style: italic; margin: 6px 0 12px; }
table { border-collapse: collapse; width: 100%; font-size: 14px;
  font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: right;
  vertical-align: top; }
th[scope=row], thead th:first-child { text-align: left; }
thead th { background: #eef1f5; font-weight: 700; vertical-align: bottom; }
tbody th { font-weight: 600; }
tbody th.d1 { font-weight: 400; padding-left: 26px; }
tbody th.d2 { font-weight: 400; padding-left: 46px; color: var(--muted); }
tbody tr:nth-child(even) td, tbody tr:nth-child(even) th { background: #fafbfc; }
dl.terms { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; margin: 8px 0;
  font-size: 14px; }
dl.terms dt { font-weight: 700; }
dl.terms dd { margin: 0; }
ul.notes { margin: 6px 0; padding-left: 20px; font-size: 14px; }
ul.notes li { margin: 4px 0; }
footer { color: var(--muted); font-size: 13px; padding: 0 0 36px; }
code { font-size: .92em; }
@media print { body { background: #fff; } header { background: #fff; color: var(--ink); }
  section.card { break-inside: avoid; } }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _text(x: float, y: float, body: str, **attrs: object) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{_esc(v)}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{_esc(body)}</text>'


def _short(label: str, limit: int = 26) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def nice_ticks(top: float, count: int = 5) -> list[int]:
    """Round tick values from 0 to at least ``top``: 0, 1,000, 2,000... never fractions."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    whole = max(1, math.ceil(step))
    return list(range(0, math.ceil(top / whole) * whole + 1, whole))


def render_html(result: WhatIf, report: Mapping[str, Any]) -> str:
    """The page (see the module docstring)."""
    imported = report["import"]
    policies = result.policies
    noun = "policy" if len(policies) == 1 else "policies"
    months = months_text(policies[0]) if policies else "no calls"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>What-if: {_esc(export_label(report))}, {len(policies)} {noun}</title>",
        f"<style>{CSS}</style></head><body>",
        '<header><div class="wrap">',
        f'<p class="eyebrow">{_esc(report["heading"])}</p>',
        f"<h1>What-if: {len(policies)} {noun} on {result.calls:,} real calls</h1>",
        f'<p class="meta"><span class="export-title">{_esc(export_label(report))}</span><br>'
        f"{_esc(period(result, report['timezone']))} &middot; "
        f"{_esc(months)}<br>export <code>{_esc(Path(report['export']).name)}</code> &middot; "
        f"mapping <code>{_esc(report['mapping'])}</code></p>",
        "</div></header>",
        '<main><div class="wrap">',
        partial_notice(partial_months(result)),
        _ccd_notice(result, report),
        _pilots_card(result),
        _capacity_card(result),
        _routes_card(result),
        _demand_card(result),
        _table_card(result),
        _export_card(result, report, imported),
        _glossary_card(),
        "</div></main>",
        _footer(result),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


# --- notices --------------------------------------------------------------------------


def partial_notice(months: Sequence[Any]) -> str:
    """The page's partial-month notice for the partial ones of ``months``, or nothing."""
    partial = [m for m in months if m.partial]
    if not partial:
        return ""
    items = "".join(
        f'<li class="partial-month"><b>{_esc(m.name)}</b>: the calls cover {_esc(m.span())} '
        "only.</li>"
        for m in partial
    )
    return (
        '<section class="card notice" id="partial-month"><h2>Partial month</h2>'
        f'<ul class="notes">{items}</ul><p class="lede">{_esc(GLOSSARY["partial month"])}</p>'
        "</section>"
    )


def _ccd_notice(result: WhatIf, report: Mapping[str, Any]) -> str:
    if result.in_person_known:
        return ""
    return (
        '<section class="card notice" id="ccd-not-measured"><h2>CCD reach is not measured'
        f'</h2><p class="lede">{_esc(ccd_note(result, None))}</p></section>'
    )


# --- eligible calls per pilot ---------------------------------------------------------


def _segments(p: PilotFigures) -> list[tuple[str, str, int]]:
    """(colour key, label, calls) in bar order: reached, each miss, the named rest."""
    out: list[tuple[str, str, int]] = []
    if p.measured:
        out.append(("reached", f"reached ({REACHED_LABELS[p.pilot]})", p.reached))
    out += [(r, f"missed: {REASON_LABELS[r]}", p.missed[r]) for r in MISS_REASONS]
    if p.measured:
        out.append(("other", p.other_name, p.other_total))
    else:
        out.append(("unknown", f"reached or {p.other_name} (not told apart)", p.reached_or_other))
    return out


def _sum_text(label: str, p: PilotFigures) -> str:
    """The panel's figures as the sum they are, as the test and a reader check them."""
    reasons = ", ".join(f"{REASON_LABELS[r]} {p.missed[r]:,}" for r in MISS_REASONS if p.missed[r])
    missed = f"{p.missed_total:,} missed" + (f" ({reasons})" if reasons else "")
    if p.measured:
        return (
            f"{label}: {p.eligible:,} eligible = {p.reached:,} reached + {missed} + "
            f"{p.other_total:,} {p.other_name}"
        )
    return (
        f"{label}: {p.eligible:,} eligible = {missed} + {p.reached_or_other:,} reached or "
        f"{p.other_name} (not told apart)"
    )


def _pilots_card(result: WhatIf) -> str:
    legend = _legend(
        [
            ("reached", "Reached"),
            *((r, f"Missed: {REASON_LABELS[r]}") for r in MISS_REASONS),
            ("other", "Other: needed someone in person (CCD) / routed elsewhere (teams)"),
        ]
        + ([] if result.in_person_known else [("unknown", "Reached or other, not told apart")])
    )
    panels = [_pilot_panel(result, pilot) for pilot in RESPONDERS]
    return (
        '<section class="card" id="eligible"><h2>Eligible calls: reached, missed and the rest'
        "</h2>"
        '<p class="lede">Per pilot, the calls it was eligible for under each policy: '
        "<b>eligible = reached + missed + other</b>. Missed calls are what more hours or a "
        "wider service area would reach; the department staffs from them. One axis per "
        "pilot, the same for every policy.</p>"
        f"{legend}{''.join(panels)}</section>"
    )


def _pilot_panel(result: WhatIf, pilot: str) -> str:
    figures = [(f.label, f.pilots[pilot]) for f in result.policies]
    head = (
        f'<div class="panel" id="pilot-{pilot}"><h3><span class="tag">{SHORT[pilot]}</span>'
        f"{_esc(PILOT_NAMES[pilot])}</h3>"
    )
    if all(p.eligible == 0 for _, p in figures):
        matched = max(p.matched for _, p in figures)
        return (
            f'{head}<p class="empty">No eligible calls under any policy (matched: '
            f"{matched:,}, all kept off by a weapon or violence).</p></div>"
            if matched
            else f'{head}<p class="empty">No call matched its call types.</p></div>'
        )
    sums = "".join(
        f'<li class="sum" data-pilot="{pilot}" data-policy="{_esc(label)}" '
        f'data-eligible="{p.eligible}" data-missed="{p.missed_total}" '
        f'data-reached="{p.reached if p.measured else ""}" '
        f'data-other="{p.other_total if p.measured else ""}" '
        f'data-reached-or-other="{p.reached_or_other}">{_esc(_sum_text(label, p))}</li>'
        for label, p in figures
    )
    return f'{head}{_bars_svg(pilot, figures)}<ul class="sums">{sums}</ul></div>'


def _bars_svg(pilot: str, figures: Sequence[tuple[str, PilotFigures]]) -> str:
    left, right, top, bar_h, gap = 180, 215, 10, 26, 14
    width = 900
    ticks = nice_ticks(max(p.eligible for _, p in figures))
    span = width - left - right
    scale = span / ticks[-1]
    axis_y = top + len(figures) * (bar_h + gap)
    height = axis_y + 46
    name = f"{SHORT[pilot]} eligible calls per policy"
    desc = "; ".join(_sum_text(label, p) for label, p in figures)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_esc(name)}"><title>{_esc(name)}</title><desc>{_esc(desc)}</desc>',
        '<defs><pattern id="hatch-' + pilot + '" width="6" height="6" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="#E4E8EE"/><rect width="2" height="6" fill="#B8C0CC"/>'
        "</pattern></defs>",
    ]
    for tick in ticks:
        x = left + tick * scale
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{axis_y}" stroke="{LINE}"/>'
        )
        out.append(
            _text(x, axis_y + 16, f"{tick:,}", text_anchor="middle", font_size=12, fill=MUTED)
        )
    out.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + span}" y2="{axis_y}" stroke="{MUTED}"/>'
    )
    out.append(
        _text(
            left + span / 2,
            axis_y + 36,
            "eligible calls (same axis for every policy)",
            text_anchor="middle",
            font_size=13,
            fill=INK,
        )
    )
    out.append(_text(left - 12, top - 0, "policy", text_anchor="end", font_size=12, fill=MUTED))
    for row, (label, p) in enumerate(figures):
        y = top + 6 + row * (bar_h + gap)
        out.append(
            f'<text x="{left - 12}" y="{y + bar_h * 0.68:.1f}" text-anchor="end" '
            f'font-size="14" fill="{INK}"><title>{_esc(label)}</title>{_esc(_short(label))}'
            "</text>"
        )
        x = float(left)
        out.append(f'<g class="bar" data-policy="{_esc(label)}" data-eligible="{p.eligible}">')
        for key, seg_label, value in _segments(p):
            if value <= 0:
                continue
            w = value * scale
            fill = f"url(#hatch-{pilot})" if key == "unknown" else COLOURS[key]
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" '
                f'fill="{fill}" data-part="{key}" data-calls="{value}"><title>'
                f"{_esc(label)}: {_esc(seg_label)} {value:,}</title></rect>"
            )
            if w >= 8 * len(f"{value:,}") + 8:
                colour = "#fff" if COLOURS.get(key) in DARK else INK
                out.append(
                    _text(
                        x + w / 2,
                        y + bar_h * 0.68,
                        f"{value:,}",
                        text_anchor="middle",
                        font_size=13,
                        font_weight=700,
                        fill=colour,
                    )
                )
            x += w
        out.append("</g>")
        if p.measured:
            rate = (
                f"{p.reached:,} of {p.eligible:,} reached \u00b7 {percent(p.reached, p.eligible)}"
            )
        else:
            rate = f"{p.eligible:,} eligible \u00b7 reach not measured"
        out.append(_text(left + span + 10, y + bar_h * 0.68, rate, font_size=13, fill=INK))
    out.append("</svg>")
    return "\n".join(out)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    lis = "".join(
        f'<li><span class="swatch unknown"></span>{_esc(text)}</li>'
        if key == "unknown"
        else f'<li><span class="swatch" style="background:{COLOURS[key]}"></span>{_esc(text)}</li>'
        for key, text in items
    )
    return f'<ul class="legend">{lis}</ul>'


# --- capacity ---------------------------------------------------------------------------


def _capacity_card(result: WhatIf) -> str:
    if result.capacity is None:
        return ""
    panels = []
    for figures in result.policies:
        for modelled in figures.capacity.values():
            if modelled.team_calls:
                panels.append(_capacity_panel(figures.label, modelled))
    if not panels:
        panels.append('<p class="empty">No policy routes a call to a team.</p>')
    return (
        '<section class="card" id="capacity"><h2>Capacity: teams on shift and their calls'
        f'</h2><p class="lede">{_esc(capacity_note(result))} Each map shows, per hour of the '
        "week (local time) over the whole period, the share of the team-minutes on shift "
        "that teams spent on calls (blank: no team on shift).</p>"
        + _legend_steps(UTILISATION_STEPS, "of team-minutes on shift spent on calls")
        + "".join(panels)
        + "</section>"
    )


def _capacity_panel(label: str, modelled: CapacityFigures) -> str:
    pool = modelled.pool
    pilot = modelled.pilot
    reasons = [
        f"{FALLBACK_WORDS[reason]} {count:,}"
        for reason, count in pool.fallbacks.items()
        if count and reason in FALLBACK_WORDS
    ]
    shown = (
        f" ({', '.join(reasons)})"
        if len(reasons) > 1 or pool.fallbacks["no_team_free"] < (modelled.fallbacks)
        else ""
    )
    sums = (
        f"{label}: {modelled.team_calls:,} team calls = {pool.reached:,} reached + "
        f"{modelled.fallbacks:,} no team free{shown}"
    )
    over = sum(pool.overrun or ()) / 60
    waits = (
        f"Reached calls waited p50 {_minutes(pool.wait_p50)}, p90 {_minutes(pool.wait_p90)} "
        f"for a team ({pool.waited:,} waited at all; at most {modelled.max_wait_minutes:g} min). "
        f"Teams spent {over:,.1f} team-hours finishing calls after their shift ended."
    )
    values = pool.utilisation() or [None] * 168
    return (
        f'<div class="panel capacity" data-pilot="{pilot}" data-policy="{_esc(label)}">'
        f'<h3><span class="tag">{SHORT[pilot]}</span>{_esc(label)}: {modelled.teams:,} '
        f"team{'s' if modelled.teams != 1 else ''}</h3>"
        f'<ul class="sums"><li class="capacity-sum" data-team-calls="{modelled.team_calls}" '
        f'data-reached="{pool.reached}" data-fallbacks="{modelled.fallbacks}">{_esc(sums)}</li>'
        f"<li>{_esc(waits)}</li></ul>"
        + heatmap_svg(
            values,
            name=f"{SHORT[pilot]} team utilisation by hour of the week, {label}",
            steps=UTILISATION_STEPS,
            show=lambda v: f"{100 * v:.0f}%",
            missing="no team on shift",
        )
        + "</div>"
    )


#: The dispatch stage's release reasons, all missed as "no team free", in words.
FALLBACK_WORDS = {
    "no_team_free": "waited the longest allowed",
    "no_team_on_shift": "the last team went off shift",
    "no_team_of_kind": "no team of its kind",
}


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} min"


# --- hour-of-week heat map --------------------------------------------------------------

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Sequential blues, light to dark: a darker cell is more.
HEAT = ("#EEF3F9", "#C6DBEF", "#85BCDB", "#4292C6", "#1F5A99", "#0B2E59")
HEAT_DARK = {"#4292C6", "#1F5A99", "#0B2E59"}
NO_VALUE = "#FFFFFF"
OPEN_STROKE = "#009E73"
#: (lower bound, label) of each colour step, for shares 0-1.
UTILISATION_STEPS: tuple[tuple[float, str], ...] = (
    (0.0, "0-19%"),
    (0.2, "20-39%"),
    (0.4, "40-59%"),
    (0.6, "60-79%"),
    (0.8, "80-94%"),
    (0.95, "95-100%"),
)


def _step(value: float, steps: Sequence[tuple[float, str]]) -> int:
    index = 0
    for n, (low, _) in enumerate(steps):
        if value >= low:
            index = n
    return index


def _legend_steps(
    steps: Sequence[tuple[float, str]], what: str, *, open_hours: bool = False
) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{HEAT[n]}"></span>{_esc(text)}</li>'
        for n, (_, text) in enumerate(steps)
    )
    if open_hours:
        items += (
            f'<li><span class="swatch" style="background:#fff;border:2px solid {OPEN_STROKE}">'
            "</span>hour the policy covers (outlined; dashed: part of the hour)</li>"
        )
    return f'<ul class="legend heat-legend" aria-label="{_esc(what)}">{items}</ul>'


def heatmap_svg(
    values: Sequence[float | None],
    *,
    name: str,
    steps: Sequence[tuple[float, str]],
    show: Callable[[float], str],
    missing: str,
    open_minutes: Sequence[int] | None = None,
) -> str:
    """168 cells, a row per weekday (Monday first) and a column per local hour, coloured
    by ``steps``, each with its value printed; ``open_minutes`` outlines the hours a
    policy covers (dashed when it covers part of the hour)."""
    left, top, cell_w, cell_h = 46, 30, 34.5, 26
    width = left + 24 * cell_w + 8
    height = top + 7 * cell_h + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height}" '
        f'role="img" class="heatmap" aria-label="{_esc(name)}"><title>{_esc(name)}</title>'
    ]
    for hour in range(24):
        x = left + hour * cell_w + cell_w / 2
        out.append(_text(x, top - 8, f"{hour:02d}", text_anchor="middle", font_size=11, fill=MUTED))
    for day, day_name in enumerate(DAY_NAMES):
        y = top + day * cell_h
        out.append(_text(left - 8, y + cell_h * 0.65, day_name, text_anchor="end", font_size=12))
        for hour in range(24):
            index = day * 24 + hour
            value = values[index]
            x = left + hour * cell_w
            fill = NO_VALUE if value is None else HEAT[_step(value, steps)]
            shown = missing if value is None else show(value)
            opened = open_minutes[index] if open_minutes is not None else 0
            when = f"{day_name} {hour:02d}:00-{hour + 1:02d}:00"
            cover = f"; open {opened} of 60 min" if open_minutes is not None else ""
            out.append(
                f'<rect class="cell" x="{x + 1:.1f}" y="{y + 1}" width="{cell_w - 2:.1f}" '
                f'height="{cell_h - 2}" fill="{fill}" stroke="{LINE}" data-hour="{index}" '
                f'data-value="{"" if value is None else round(value, 4)}" '
                f'data-open="{opened}"><title>{when}: {_esc(shown)}{cover}</title></rect>'
            )
            if opened:
                dash = "" if opened >= 60 else ' stroke-dasharray="3 2"'
                out.append(
                    f'<rect class="open" x="{x + 2:.1f}" y="{y + 2}" width="{cell_w - 4:.1f}" '
                    f'height="{cell_h - 4}" fill="none" stroke="{OPEN_STROKE}" '
                    f'stroke-width="2"{dash}/>'
                )
            if value is not None and show(value):
                colour = "#fff" if fill in HEAT_DARK else INK
                out.append(
                    _text(
                        x + cell_w / 2,
                        y + cell_h * 0.66,
                        show(value),
                        text_anchor="middle",
                        font_size=10,
                        fill=colour,
                    )
                )
    out.append(
        _text(
            left + 12 * cell_w,
            top + 7 * cell_h + 20,
            "hour of the day (local time), a row per day of the week",
            text_anchor="middle",
            font_size=12,
            fill=INK,
        )
    )
    out.append("</svg>")
    return "\n".join(out)


# --- routes -----------------------------------------------------------------------------


def _routes_card(result: WhatIf) -> str:
    heart = [r for r in ROUTES if r != "police"]
    police = ", ".join(f"{f.label} {f.routes['police']:,}" for f in result.policies)
    return (
        '<section class="card" id="routes"><h2>Calls per HEART route</h2>'
        '<p class="lede">Where each policy sends the calls. Police takes every other call '
        f"({_esc(police)}).</p>"
        + _legend([(r, f"{SHORT[r]}: {ROUTE_WORDS[r]}") for r in heart])
        + _routes_svg(result, heart)
        + "</section>"
    )


ROUTE_WORDS = {"ccd": "resolved by phone", "crt": "team assigned", "cor": "clinician and officer"}


def _routes_svg(result: WhatIf, routes: Sequence[str]) -> str:
    left, top, bar_w, inner, group_gap = 70, 16, 44, 6, 60
    group_w = len(routes) * (bar_w + inner) - inner
    count = len(result.policies)
    groups_w = count * (group_w + group_gap) - group_gap
    width = max(left + 30 + groups_w + 30, 360)
    plot_h = 220
    base = top + plot_h
    height = base + 62
    ticks = nice_ticks(max((f.routes[r] for f in result.policies for r in routes), default=0))
    scale = plot_h / ticks[-1]
    desc = "; ".join(
        f"{f.label}: " + ", ".join(f"{r} {f.routes[r]:,}" for r in routes) for f in result.policies
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'style="max-width:{width}px" aria-label="calls per HEART route">'
        f"<title>Calls per HEART route</title><desc>{_esc(desc)}</desc>",
    ]
    for tick in ticks:
        y = base - tick * scale
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="{LINE}"/>'
        )
        out.append(_text(left - 8, y + 4, f"{tick:,}", text_anchor="end", font_size=12, fill=MUTED))
    mid = top + plot_h / 2
    out.append(
        f'<text x="16" y="{mid:.1f}" transform="rotate(-90 16 {mid:.1f})" '
        f'text-anchor="middle" font-size="13" fill="{INK}">calls</text>'
    )
    out.append(f'<line x1="{left}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="{MUTED}"/>')
    for index, figures in enumerate(result.policies):
        gx = left + 30 + index * (group_w + group_gap)
        for slot, route in enumerate(routes):
            value = figures.routes[route]
            h = value * scale
            x = gx + slot * (bar_w + inner)
            out.append(
                f'<rect x="{x}" y="{base - h:.1f}" width="{bar_w}" height="{max(h, 0.5):.1f}" '
                f'fill="{COLOURS[route]}"><title>{_esc(figures.label)}: {route} {value:,}'
                "</title></rect>"
            )
            out.append(
                _text(
                    x + bar_w / 2,
                    base - h - 5,
                    f"{value:,}",
                    text_anchor="middle",
                    font_size=12,
                    fill=INK,
                )
            )
            out.append(
                _text(
                    x + bar_w / 2,
                    base + 15,
                    SHORT[route],
                    text_anchor="middle",
                    font_size=11,
                    fill=MUTED,
                )
            )
        out.append(
            f'<text x="{gx + group_w / 2:.1f}" y="{base + 34}" text-anchor="middle" '
            f'font-size="13" font-weight="600" fill="{INK}"><title>{_esc(figures.label)}'
            f"</title>{_esc(_short(figures.label, 24))}</text>"
        )
    out.append(
        _text(
            left + 30 + groups_w / 2,
            base + 54,
            "policy",
            text_anchor="middle",
            font_size=12,
            fill=MUTED,
        )
    )
    out.append("</svg>")
    return "\n".join(out)


# --- team demand ------------------------------------------------------------------------


def _demand_card(result: WhatIf) -> str:
    effort = result.effort
    head = "".join(f'<th scope="col">{_esc(f.label)}</th>' for f in result.policies)
    rows = []
    for pilot in TEAM_ROUTES:
        for label, show in (
            ("calls a team is assigned to", lambda h: f"{h.team_calls:,}"),
            ("team-hours on calls", lambda h: f"{h.response_hours:,.1f}"),
            ("hours open, per team", lambda h: f"{h.staffed_hours_per_team:,.1f}"),
            ("teams on shift (given)", lambda h: f"{h.teams:,}"),
            (
                "demand in team-equivalents",
                lambda h: (
                    "-"
                    if h.demand_team_equivalents is None
                    else f"{h.demand_team_equivalents:,.2f}"
                ),
            ),
            ("peak team calls at once", lambda h: f"{h.peak_concurrent:,}"),
        ):
            cells = "".join(f"<td>{_esc(show(f.hours[pilot]))}</td>" for f in result.policies)
            rows.append(f'<tr><th scope="row">{SHORT[pilot]} {_esc(label)}</th>{cells}</tr>')
    if result.capacity is None:
        heading = "Team demand (capacity not modelled)"
        busy = (
            "It is <b>not</b> the number of teams busy: the what-if sends a team to every call "
            "it routes to a team, as if one were always free. Where demand exceeds the teams "
            "on shift, calls would wait or be missed."
        )
    else:
        heading = "Team demand"
        busy = (
            "It is <b>not</b> the number of teams busy: it counts every call routed to a team, "
            "reached or not. The capacity card above shows what the teams on shift could take."
        )
    return (
        f'<section class="card" id="demand"><h2>{heading}</h2>'
        '<p class="lede"><b>Demand in team-equivalents</b> is the team-hours of work per hour '
        "the pilot is open: team calls &times; "
        f"({effort.travel_minutes:g} min travel + {effort.on_scene_minutes:g} min on scene) "
        f"&divide; open hours. {busy}</p>"
        f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</section>"
    )


# --- all figures ------------------------------------------------------------------------


def _table_card(result: WhatIf) -> str:
    head = "".join(f'<th scope="col">{_esc(f.label)}</th>' for f in result.policies)
    body = []
    for label, depth, show in table_rows(result):
        cells = "".join(f"<td>{_esc(show(f))}</td>" for f in result.policies)
        cls = f' class="d{depth}"' if depth else ""
        body.append(f'<tr><th scope="row"{cls}>{_esc(label)}</th>{cells}</tr>')
    return (
        '<section class="card" id="figures"><h2>All figures</h2>'
        '<p class="lede">Indented rows are the parts of the row above them and add up to it.'
        "</p>"
        f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "</section>"
    )


# --- what the export can tell, the glossary, the footer -----------------------------------


def _export_card(result: WhatIf, report: Mapping[str, Any], imported: Mapping[str, Any]) -> str:
    column = report.get("needs_in_person_from")
    closed = imported.get("closed_without_dispatch")
    how = (
        f"The mapping reads <code>needs_in_person</code> from column <code>{_esc(column)}"
        f"</code>: {closed or 0:,} calls were closed without sending anyone."
        if column
        else "The mapping reads no disposition, so every call is taken as needing someone "
        "in person."
    )
    items = [
        "A CAD export tells what each call was (its type), when and where it came in, and "
        "how it ended. That is enough to count, per pilot, the calls it matched, was "
        "eligible for and missed by hours or area.",
        "It cannot tell what a clinician on the line would have achieved. A call is taken as "
        "resolvable by phone only when the export shows it was closed without sending "
        "anyone; a call an officer attended that a clinician could have closed looks like "
        "any other.",
        how + " " + _esc(ccd_note(result, column)),
        "Capacity is not modelled: a call routed to a team counts as reached, as if a team "
        "were free. The team demand above says how many teams that would take."
        if result.capacity is None
        else _esc(capacity_note(result)),
        f"Import: {imported['rows']:,} rows, {imported['accepted']:,} calls, "
        f"{imported['rejected']:,} rejected; {imported['unmapped_type']:,} calls are of a "
        "type the mapping leaves to police.",
    ]
    body = "".join(f"<li>{item}</li>" for item in items)
    return (
        '<section class="card" id="ccd-and-exports"><h2>What a CAD export can and cannot '
        f'tell about CCD</h2><ul class="notes">{body}</ul></section>'
    )


def _glossary_card() -> str:
    terms = "".join(
        f"<dt>{_esc(term)}</dt><dd>{_esc(meaning)}</dd>" for term, meaning in GLOSSARY.items()
    )
    other = "; ".join(f"{SHORT[p]}: {OTHER_NAMES[p]}" for p in RESPONDERS)
    return (
        '<section class="card" id="glossary"><h2>Glossary</h2>'
        '<p class="lede">Each term has this one meaning here, in the monthly report and in '
        f"the terminal. Per pilot, eligible = reached + missed + other, where other is "
        f"named for each pilot ({_esc(other)}).</p>"
        f'<dl class="terms">{terms}</dl></section>'
    )


def _footer(result: WhatIf) -> str:
    items = "".join(
        f"<li><b>{_esc(f.label)}</b>: {_esc(f.title or '')} <code>{_esc(f.policy_version)}"
        f"</code>, hours in {_esc(f.timezone)}</li>"
        for f in result.policies
    )
    return (
        f'<footer><div class="wrap"><p>Policies compared:</p><ul>{items}</ul>'
        "<p>Generated by HEART Stream's <code>heart whatif</code> from the export; counts "
        "only: no call id, person, phone number or address.</p></div></footer>"
    )
