"""The monthly report as a self-contained HTML page (inline CSS and SVG, no external asset,
no script) and as JSON.

Only the :class:`MonthReport`'s figures are rendered, and the report holds counts only, so
no call id, person, phone number or place can reach the page. Every chart prints its
numbers and carries a title and a text description for screen readers; each pilot's
eligible calls are shown as the sum of their parts; the page ends with the same figures as
a table and the glossary of the terms (:data:`~heart.schemas.glossary.GLOSSARY`).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import date
from math import ceil
from zoneinfo import ZoneInfo

import orjson

from heart.agents.reporting.aggregate import MISSED_REASONS, ROUTES, TEAM_PILOTS
from heart.agents.reporting.wording import (
    REACHED_MEANS,
    capitalised,
    ccd_figures,
    followup_reconciliation,
    heading,
    other_label,
    partial_label,
    parts_sum,
    reason_label,
    report_title,
)
from heart.schemas.glossary import GLOSSARY
from heart.schemas.reports import OTHER_PARTS, MonthReport, PilotReport

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
REACHED = "#009E73"
REASON_COLOURS: dict[str, str] = {
    "outside_hours": "#E69F00",
    "outside_service_area": "#56B4E9",
    "unknown_beat": "#CC79A7",
    "pilot_disabled": "#8C8C8C",
    "no_team_free": "#D55E00",
    "stale": "#000000",
}
OTHER = "#6B6B6B"
#: Eligible calls neither reached nor missed: lighter fills, drawn after the misses.
OTHER_PART_COLOURS: dict[str, str] = {
    "needed_in_person": "#0072B2",
    "waiting_for_team": "#C4C9D0",
    "resolved_by_phone": "#F0E442",
    "other_responder": "#332288",
    "no_followup_scheduled": "#DDCC77",
}
#: Colours dark enough for white text on top; the others get dark text.
DARK_FILLS = {REACHED, "#D55E00", "#8C8C8C", "#6B6B6B", "#0072B2", "#332288"}
MEDIAN_COLOUR = "#0072B2"
P90_COLOUR = "#9CC9E8"
#: Darkest first: each funnel step a shade lighter than the one it came from.
FUNNEL_SHADES = ("#1F3A5F", "#2F5A8A", "#3F73AD", "#5B8FC7")
TYPE_COLOUR = "#4C7FA8"
INK = "#1b1f24"
MUTED = "#5b6470"
LINE = "#d9dee5"
TRACK = "#eef1f5"

SHORT = {"ccd": "CCD", "crt": "CRT", "cor": "CoR", "cn": "CN"}

CSS = """
:root { color-scheme: light; --ink: #1b1f24; --muted: #5b6470; --line: #d9dee5;
  --card: #ffffff; --bg: #f3f5f8; --accent: #1F3A5F; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
header { background: var(--accent); color: #fff; padding: 28px 0 30px; }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 28px; }
.eyebrow { margin: 0; text-transform: uppercase; letter-spacing: .08em; font-size: 13px;
  opacity: .85; }
h1 { margin: 4px 0 6px; font-size: 34px; line-height: 1.2; }
header .meta { margin: 0; opacity: .9; font-size: 14px; }
main { padding: 24px 0 8px; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 20px 24px 18px; margin: 0 0 20px; }
h2 { margin: 0 0 4px; font-size: 21px; }
.lede { margin: 0 0 14px; color: var(--muted); font-size: 14px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 14px;
  margin: 0 0 20px; padding: 0; list-style: none; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 16px; border-top: 4px solid var(--accent); }
.kpi .value { display: block; font-size: 30px; font-weight: 700; line-height: 1.15;
  font-variant-numeric: tabular-nums; }
.kpi .label { display: block; font-size: 14px; font-weight: 600; }
.kpi .note { display: block; font-size: 13px; color: var(--muted); }
.pilots { display: grid; grid-template-columns: repeat(auto-fit, minmax(230px, 1fr));
  gap: 14px; margin: 0; padding: 0; list-style: none; }
.pilot { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.tag { display: inline-block; font-weight: 700; font-size: 13px; color: #fff;
  background: var(--accent); border-radius: 4px; padding: 1px 7px; margin-right: 8px;
  vertical-align: 1px; }
.pilot .name { font-weight: 600; }
.pilot .big { display: block; font-size: 28px; font-weight: 700; margin-top: 6px;
  font-variant-numeric: tabular-nums; }
.pilot .what { display: block; font-size: 13px; color: var(--muted); }
.parts { margin: 8px 0 0; padding: 0; list-style: none; font-size: 13px;
  font-variant-numeric: tabular-nums; }
.parts li { display: flex; justify-content: space-between; gap: 10px; padding: 1px 0; }
.parts li.total { border-top: 1px solid var(--line); margin-top: 3px; padding-top: 3px;
  font-weight: 700; }
.partial { background: #FFF4D6; border: 1px solid #E6C36A; border-radius: 8px;
  padding: 10px 14px; margin: 18px 0; font-size: 14.5px; }
.partial-tag { display: inline-block; vertical-align: middle; font-size: 15px;
  font-weight: 600; background: #FFF4D6; color: #1b1f24; border-radius: 4px;
  padding: 2px 8px; margin-left: 8px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 0 0 10px; padding: 0;
  list-style: none; font-size: 14px; }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { width: 14px; height: 14px; border-radius: 3px; display: inline-block;
  border: 1px solid rgba(0,0,0,.15); }
svg { display: block; width: 100%; height: auto; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));
  gap: 10px 40px; }
.panel h3 { margin: 8px 0 6px; font-size: 16px; }
.notes { display: flex; flex-wrap: wrap; gap: 4px 26px; margin: 12px 0 0; padding: 0;
  list-style: none; font-size: 14px; }
.empty { color: var(--muted); font-style: italic; margin: 6px 0 12px; }
table { border-collapse: collapse; width: 100%; font-size: 14px;
  font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding-bottom: 8px; }
th, td { border-bottom: 1px solid var(--line); padding: 7px 8px; text-align: right;
  vertical-align: top; }
th[scope=row], thead th:first-child { text-align: left; }
thead th { background: #eef1f5; font-weight: 700; vertical-align: bottom; }
thead th .sub { display: block; font-weight: 400; font-size: 12.5px; color: var(--muted); }
tbody th { font-weight: 600; }
td.text { font-size: 13px; line-height: 1.45; }
table.ccd td, table.ccd th { text-align: left; } table.ccd td { font-size: 14px; }
tbody tr:nth-child(even) td, tbody tr:nth-child(even) th { background: #fafbfc; }
footer { color: var(--muted); font-size: 13px; padding: 6px 0 36px; }
footer dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 8px 0; }
footer dt { font-weight: 600; color: var(--ink); }
footer dd { margin: 0; }
dl.terms { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; margin: 0;
  font-size: 14.5px; }
dl.terms dt { font-weight: 700; }
dl.terms dd { margin: 0; }
@media print { body { background: #fff; } header { background: #fff; color: var(--ink); }
  section.card, .kpi { break-inside: avoid; } }
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _month_title(month: str) -> str:
    year, mon = (int(x) for x in month.split("-"))
    return date(year, mon, 1).strftime("%B %Y")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"


def _svg(ident: str, width: int, height: int, title: str, desc: str, body: Iterable[str]) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-t">{esc(title)}</title><desc id="{ident}-d">{esc(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, content: str, **attrs: object) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" {extra}>{esc(content)}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, **attrs: object) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" '
        f'fill="{fill}" {extra}/>'
    )


def _ink(fill: str) -> str:
    return "#ffffff" if fill in DARK_FILLS else "#1b1f24"


def _axis(value: float) -> tuple[float, float]:
    """A round axis end at or above ``value`` and its tick step (3 to 6 ticks)."""
    for step in (0.5, 1, 2, 2.5, 5, 10, 15, 20, 30, 60, 120):
        ticks = max(1, ceil(value / step))
        if ticks <= 6:
            return ticks * step, step
    step = 60 * ceil(value / 360)
    return step * ceil(value / step), step


def _row_label(y: float, pilot: PilotReport) -> list[str]:
    return [
        _text(0, y + 15, SHORT[pilot.pilot], font_size=15, font_weight=700),
        _text(0, y + 32, pilot.name, font_size=12.5, fill=MUTED),
    ]


# --- charts -------------------------------------------------------------------------------


def _reasons_in(report: MonthReport) -> list[str]:
    seen = {r for p in report.pilots for r in p.missed_by_reason}
    known = [r for r in MISSED_REASONS if r in seen]
    return known + sorted(seen - set(MISSED_REASONS))


def _others_in(report: MonthReport) -> list[str]:
    seen = {part for p in report.pilots for part, n in p.other.items() if n}
    return [part for part in OTHER_PARTS if part in seen]


def _legend(items: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f'<li><span class="swatch" style="background:{colour}" aria-hidden="true"></span>'
        f"{esc(label)}</li>"
        for label, colour in items
    )
    return f'<ul class="legend">{cells}</ul>'


#: Characters of 12.5 px text that fit under a bar (its width plus the right margin).
SUM_LINE_CHARS = 125


def _wrap(text: str, width: int) -> list[str]:
    """``text`` broken before its `` + `` terms into lines of at most ``width`` characters
    where it can be (a single term longer than that keeps its own line)."""
    out: list[str] = []
    for term in text.split(" + "):
        if out and len(out[-1]) + 3 + len(term) <= width:
            out[-1] += " + " + term
        else:
            out.append(term if not out else "+ " + term)
    return out


def eligibility_chart(report: MonthReport) -> str:
    """Per pilot, its eligible calls as one full-width bar: the reached share, the missed
    share by reason, then the rest by what became of them, so that the segments add up to
    the eligible count. Full width because pilots differ by orders of magnitude (a month's
    600 CRT-eligible calls against 18 for Co-Response) and the mix is what staffing is
    planned from; the counts are printed beside and below each bar."""
    reasons = _reasons_in(report)
    others = _others_in(report)
    width, left, right, row, top, bar, line = 1040, 200, 210, 62, 4, 26, 15
    span = width - left - right
    body: list[str] = []
    lines: list[str] = []
    y = float(top)
    for p in report.pilots:
        body += _row_label(y, p)
        if p.eligible == 0:
            body.append(_rect(left, y + 4, span, bar, TRACK, rx=4))
            body.append(_text(left + 10, y + 22, "no eligible calls", font_size=14, fill=MUTED))
            lines.append(f"{p.name}: no eligible calls.")
            y += row
            continue
        segments = [(f"Reached ({REACHED_MEANS[p.pilot]})", p.reached, REACHED)]
        segments += [
            (reason_label(r), p.missed_by_reason.get(r, 0), REASON_COLOURS.get(r, OTHER))
            for r in reasons
        ]
        segments += [
            (other_label(part).capitalize(), p.other.get(part, 0), OTHER_PART_COLOURS[part])
            for part in others
        ]
        x = float(left)
        for label, n, colour in segments:
            if n <= 0:
                continue
            w = span * n / p.eligible
            body.append(
                f"<g><title>{esc(p.name)}: {esc(label)} {n}</title>"
                + _rect(x, y + 4, w, bar, colour)
                + "</g>"
            )
            if w >= 14 + 9 * len(str(n)):
                body.append(
                    _text(
                        x + w / 2,
                        y + 22,
                        str(n),
                        font_size=14,
                        font_weight=700,
                        fill=_ink(colour),
                        text_anchor="middle",
                    )
                )
            x += w
        body.append(
            _text(
                left + span + 12,
                y + 15,
                f"{_pct(p.reached, p.eligible)} reached",
                font_size=15,
                font_weight=700,
                fill=INK,
            )
        )
        body.append(
            _text(
                left + span + 12,
                y + 32,
                f"{p.reached} of {p.eligible} eligible",
                font_size=12.5,
                fill=MUTED,
            )
        )
        total = parts_sum(p)
        wrapped = _wrap(total, SUM_LINE_CHARS)
        for n, text in enumerate(wrapped):
            body.append(_text(left, y + 46 + n * line, text, font_size=12.5, fill=MUTED))
        lines.append(f"{p.name}: {total}.")
        y += row + line * (len(wrapped) - 1)
    legend = _legend(
        [("Reached", REACHED)]
        + [(reason_label(r), REASON_COLOURS.get(r, OTHER)) for r in reasons]
        + [(other_label(part).capitalize(), OTHER_PART_COLOURS[part]) for part in others]
    )
    title = "Eligible calls by part: reached, missed by reason, and the rest, by pilot"
    return legend + _svg("elig", width, int(y) - 8, title, " ".join(lines), body)


def response_chart(report: MonthReport) -> str:
    """Per team pilot, the median and 90th percentile of assignment to on scene."""
    teams = [p for p in report.pilots if p.pilot in TEAM_PILOTS]
    timed = [p.response_time for p in teams if p.response_time is not None]
    if not timed:
        return '<p class="empty">No team reported on scene this month.</p>'
    width, left, right, bar, gap, group, top = 1040, 200, 150, 24, 6, 26, 6
    axis_max, step = _axis(max(rt.p90_s for rt in timed) / 60)
    span = width - left - right
    grid: list[str] = []
    body: list[str] = []
    lines: list[str] = []
    y = float(top)
    for p in teams:
        rt = p.response_time
        body += _row_label(y, p)
        if rt is None:
            body.append(_text(left + 4, y + 20, "no on-scene reports", font_size=14, fill=MUTED))
            lines.append(f"{p.name}: no on-scene reports.")
            y += 2 * bar + gap + group
            continue
        for label, seconds, colour in (
            ("median", rt.median_s, MEDIAN_COLOUR),
            ("p90", rt.p90_s, P90_COLOUR),
        ):
            w = span * (seconds / 60) / axis_max
            body.append(_rect(left, y, w, bar, colour, rx=3))
            body.append(
                _text(left + w + 8, y + 16, f"{label} {_minutes(seconds)}", font_size=14, fill=INK)
            )
            y += bar + gap
        calls = f"{rt.calls} call{'s' if rt.calls != 1 else ''}"
        body.append(_text(0, y - gap - 4, calls, font_size=12.5, fill=MUTED))
        lines.append(
            f"{p.name}: median {_minutes(rt.median_s)}, 90th percentile "
            f"{_minutes(rt.p90_s)}, {calls}."
        )
        y += group
    axis_y = y - group + 8
    ticks = round(axis_max / step)
    for t in range(ticks + 1):
        x = left + span * t / ticks
        grid.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y:.1f}" stroke="{LINE}"/>'
        )
        grid.append(
            _text(
                x,
                axis_y + 17,
                f"{step * t:g} min",
                font_size=12.5,
                fill=MUTED,
                text_anchor="middle",
            )
        )
    legend = _legend([("Median", MEDIAN_COLOUR), ("90th percentile", P90_COLOUR)])
    title = "Response time: assignment to on scene, in minutes"
    # Grid first, so that bars and labels are drawn over it.
    return legend + _svg("resp", width, int(axis_y + 26), title, " ".join(lines), grid + body)


def followup_chart(report: MonthReport) -> str:
    """Care Navigation's funnel: scheduled, completed, in time, connected to care. Every
    step counts the follow-ups scheduled this month, whenever they were completed, so no
    step exceeds the one before."""
    f = report.followups
    if f.scheduled == 0:
        return '<p class="empty">No follow-up was scheduled this month.</p>'
    steps = [
        ("Scheduled", f.scheduled, "cases opened this month"),
        ("Completed", f.completed, "reached the person"),
        ("Within 48 hours", f.within_48h, "by the deadline"),
        ("Connected to care", f.connected_to_care, "referred on"),
    ]
    width, left, right, row, top, bar = 1040, 200, 40, 46, 4, 32
    span = width - left - right
    scale = max(n for _, n, _ in steps) or 1
    body: list[str] = []
    for i, (label, n, note) in enumerate(steps):
        y = top + i * row
        w = span * n / scale
        body.append(_text(0, y + 16, label, font_size=15, font_weight=700))
        body.append(_text(0, y + 33, note, font_size=12.5, fill=MUTED))
        body.append(_rect(left, y + 2, span, bar, TRACK, rx=4))
        if n:
            body.append(_rect(left + (span - w) / 2, y + 2, w, bar, FUNNEL_SHADES[i], rx=4))
        share = f"  ·  {_pct(n, f.scheduled)} of scheduled" if i and f.scheduled else ""
        # Inside a bar wide enough for it, else beside the bar: never half on, half off.
        inside = w > 190
        body.append(
            _text(
                left + span / 2 if inside else left + (span + w) / 2 + 10,
                y + 23,
                f"{n}{share}",
                font_size=14.5,
                font_weight=700,
                fill="#ffffff" if inside else INK,
                text_anchor="middle" if inside else "start",
            )
        )
    desc = (
        f"{f.scheduled} scheduled, {f.completed} completed, {f.within_48h} within 48 hours, "
        f"{f.connected_to_care} connected to care; {f.overdue} overdue; {f.at_risk} at risk."
    )
    chart = _svg("fu", width, top + row * len(steps), "Follow-up funnel", desc, body)
    notes = [
        f"<li><strong>{f.overdue}</strong>&nbsp;overdue: no outcome by the 48-hour deadline</li>",
        f"<li><strong>{f.at_risk}</strong>&nbsp;at risk when scheduled: too few staffed hours "
        "before the deadline</li>",
    ]
    notes += [
        f"<li>after {esc(SHORT[p.pilot])} contacts: <strong>{p.followups.scheduled}</strong>"
        f"&nbsp;scheduled, {p.followups.within_48h} within 48 h</li>"
        for p in report.pilots
        if p.pilot != "cn" and p.followups.scheduled
    ]
    reconciliation = followup_reconciliation(report)
    if reconciliation is not None:
        notes.append(f"<li>{esc(reconciliation)}</li>")
    return chart + f'<ul class="notes">{"".join(notes)}</ul>'


def _types_panel(p: PilotReport) -> str:
    head = f'<h3><span class="tag">{esc(SHORT[p.pilot])}</span>{esc(p.name)}</h3>'
    if not p.top_call_types:
        return f'<div class="panel">{head}<p class="empty">No calls reached.</p></div>'
    width, left, right, row = 480, 180, 40, 30
    top_n = max(t.calls for t in p.top_call_types)
    span = width - left - right
    body: list[str] = []
    for i, t in enumerate(p.top_call_types):
        y = i * row
        label = t.call_type if len(t.call_type) <= 24 else t.call_type[:23] + "…"
        body.append(_text(left - 10, y + 19, label, font_size=14, text_anchor="end", fill=INK))
        w = span * t.calls / top_n
        body.append(_rect(left, y + 4, w, 22, TYPE_COLOUR, rx=3))
        body.append(_text(left + w + 7, y + 20, str(t.calls), font_size=14, font_weight=700))
    desc = "; ".join(f"{t.call_type}: {t.calls}" for t in p.top_call_types)
    title = f"Top call types, {p.name}"
    svg = _svg(f"types-{p.pilot}", width, row * len(p.top_call_types), title, desc, body)
    return f'<div class="panel">{head}{svg}</div>'


def call_types_chart(report: MonthReport) -> str:
    return '<div class="grid2">' + "".join(_types_panel(p) for p in report.pilots) + "</div>"


def ccd_work_section(report: MonthReport) -> str:
    """The clinicians' work as a table of figures, each with its parts written as a sum;
    a plain note instead when the month has no clinician events (no zeros as facts)."""
    rows = ccd_figures(report)
    if not rows:
        return f'<p class="empty" role="note">{esc(report.ccd_work.note or "")}</p>'
    body = "".join(
        f'<tr><th scope="row">{esc(label)}</th><td class="text">{esc(text)}</td></tr>'
        for label, text in rows
    )
    return (
        '<table class="ccd"><caption>Counted in the month each call came in; consults in '
        "the month they were requested. Where a figure has parts, they add up to it."
        "</caption>"
        '<thead><tr><th scope="col">Figure</th><th scope="col">This month</th></tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


# --- page ---------------------------------------------------------------------------------


def _kpis(report: MonthReport) -> str:
    f = report.followups
    crt = report.pilot("crt").response_time
    by_team = report.heart_handled - report.resolved_by_phone
    cards = [
        (str(report.calls), "Calls decided", "every 911 call gets a triage decision"),
        (
            str(report.heart_handled),
            "HEART handled",
            f"{report.resolved_by_phone} resolved by phone + {by_team} given a team",
        ),
        (
            _pct(report.resolved_by_phone, report.heart_handled),
            "Resolved by phone",
            f"{report.resolved_by_phone} of {report.heart_handled} HEART handled",
        ),
        (
            _minutes(crt.median_s) if crt else "n/a",
            "CRT median response",
            f"assignment to on scene, {crt.calls} calls" if crt else "no on-scene reports",
        ),
        (
            _pct(f.within_48h, f.scheduled) if f.scheduled else "n/a",
            "Follow-ups on time",
            f"within 48 h: {f.within_48h} of {f.scheduled} scheduled",
        ),
        (
            str(sum(p.backup_requests for p in report.pilots)),
            "Police backup",
            "requests from teams on scene",
        ),
    ]
    items = "".join(
        f'<li class="kpi"><span class="value">{esc(v)}</span><span class="label">{esc(label)}'
        f'</span><span class="note">{esc(note)}</span></li>'
        for v, label, note in cards
    )
    return f'<ul class="kpis" aria-label="The month at a glance">{items}</ul>'


def _parts_list(p: PilotReport) -> str:
    """The pilot's eligible calls as a sum: each part on its line, the total below."""
    rows = [("Reached", p.reached), ("Missed", p.missed)]
    rows += [(other_label(part).capitalize(), n) for part, n in p.other.items() if n]
    items = "".join(
        f'<li><span>{"+ " if i else ""}{esc(label)}</span><span class="n">{n}</span></li>'
        for i, (label, n) in enumerate(rows)
    )
    total = f'<li class="total"><span>= Eligible</span><span class="n">{p.eligible}</span></li>'
    return f'<ul class="parts" aria-label="{esc(parts_sum(p))}">{items}{total}</ul>'


def _pilot_cards(report: MonthReport) -> str:
    items = "".join(
        f'<li class="pilot"><span class="tag">{esc(SHORT[p.pilot])}</span>'
        f'<span class="name">{esc(p.name)}</span>'
        f'<span class="big">{p.reached}</span>'
        f'<span class="what">reached: {esc(REACHED_MEANS[p.pilot])}</span>'
        f"{_parts_list(p)}</li>"
        for p in report.pilots
    )
    return f'<ul class="pilots">{items}</ul>'


def _table(report: MonthReport) -> str:
    """Figures as rows, pilots as columns: four narrow columns read better than thirteen."""
    pilots = report.pilots
    reasons = _reasons_in(report)
    others = _others_in(report)

    def minutes(p: PilotReport, which: str) -> str:
        rt = p.response_time
        return _minutes(getattr(rt, which)) if rt is not None else "&ndash;"

    rows: list[tuple[str, list[str]]] = [
        ("Eligible calls", [str(p.eligible) for p in pilots]),
        ("= Reached", [str(p.reached) for p in pilots]),
        ("+ Missed", [str(p.missed) for p in pilots]),
    ]
    rows += [
        (
            f"\u2003Missed: {reason_label(r).lower()}",
            [str(p.missed_by_reason.get(r, 0)) for p in pilots],
        )
        for r in reasons
    ]
    rows += [
        (f"+ {other_label(part).capitalize()}", [str(p.other.get(part, 0)) for p in pilots])
        for part in others
    ]
    rows += [
        (
            "Reached, team assigned or follow-up scheduled in another month",
            [str(p.reached_in_other_month) for p in pilots],
        ),
        ("Median response", [minutes(p, "median_s") for p in pilots]),
        ("p90 response", [minutes(p, "p90_s") for p in pilots]),
        ("Police backup requests", [str(p.backup_requests) for p in pilots]),
        ("Follow-ups scheduled", [str(p.followups.scheduled) for p in pilots]),
        ("Follow-ups completed", [str(p.followups.completed) for p in pilots]),
        ("Completed within 48 h", [str(p.followups.within_48h) for p in pilots]),
        ("Connected to care", [str(p.followups.connected_to_care) for p in pilots]),
        ("Follow-ups overdue", [str(p.followups.overdue) for p in pilots]),
        ("Follow-ups at risk", [str(p.followups.at_risk) for p in pilots]),
        (
            "Top call types",
            [
                "<br>".join(f"{esc(t.call_type)} ({t.calls})" for t in p.top_call_types)
                or "&ndash;"
                for p in pilots
            ],
        ),
    ]
    head = "".join(
        f'<th scope="col">{esc(SHORT[p.pilot])}<span class="sub">{esc(p.name)}</span></th>'
        for p in pilots
    )
    body = "".join(
        f'<tr><th scope="row">{esc(label)}</th>'
        + "".join(
            f"<td{' class=text' if label == 'Top call types' else ''}>{v}</td>" for v in values
        )
        + "</tr>"
        for label, values in rows
    )
    routes = ", ".join(f"{esc(SHORT.get(r, r))} {report.routes.get(r, 0)}" for r in ROUTES)
    partial = partial_label(report)
    return (
        f"<table><caption>{_month_title(report.month)}"
        + (f" ({esc(partial)})" if partial else "")
        + f". Calls decided {report.calls} by route: {routes}. Each pilot's eligible calls "
        "are the sum of the rows marked = and +. Follow-ups for CCD, CRT and CoR are those "
        "after their own contacts; CN holds them all.</caption>"
        f'<thead><tr><th scope="col">Figure</th>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _meta(report: MonthReport) -> str:
    parts = [f"Times in {esc(report.timezone)}"]
    zone = ZoneInfo(report.timezone)
    if report.data_from is not None and report.data_through is not None:
        first = report.data_from.astimezone(zone)
        last = report.data_through.astimezone(zone)
        parts.append(f"data from {first:%-d %b %Y, %H:%M} through {last:%-d %b %Y, %H:%M %Z}")
    if report.policy_versions:
        parts.append("policy " + ", ".join(esc(v) for v in report.policy_versions))
    parts.append(f"snapshot version {report.version}")
    return " · ".join(parts)


#: How the figures are counted, beyond the terms themselves (those come from GLOSSARY).
COUNTING_RULES: tuple[tuple[str, str], ...] = (
    (
        "Month",
        "A call's figures (decided, eligible and its parts, HEART handled) count in the "
        "month the call came in; response times and police backup in the month they "
        "happened; follow-ups in the month they were scheduled. All in the policy's time "
        "zone.",
    ),
    (
        "Parts",
        "Each eligible call is in exactly one part: reached, missed (by its first reason), "
        "or one of the named rest, so the parts add up to eligible. The rest: "
        + "; ".join(
            f"{label} ({who})"
            for label, who in (
                (other_label("needed_in_person"), "CCD"),
                (other_label("waiting_for_team"), "CRT, CoR: no team yet when the data ends"),
                (other_label("resolved_by_phone"), "CRT, CoR"),
                (other_label("other_responder"), "CRT, CoR"),
                (other_label("no_followup_scheduled"), "CN: no contact, or not ended yet"),
            )
        )
        + ".",
    ),
    (
        "Response time",
        "From a team's assignment to its on-scene report; the median and the "
        "90th percentile (nearest rank).",
    ),
    (
        "Within 48 hours",
        "A completed follow-up whose outcome came by the case's deadline.",
    ),
    (
        "Crisis Call Diversion",
        "The clinicians' work on a call counts in the month the call came in, for calls "
        "whose triage decision is in the data: calls engaged, screenings (one per C-SSRS "
        "screening with a risk level), safety plans (one per call, its steps over all its "
        "events), referrals (each resource once per call), the call's last disposition, "
        "overrides (as last decided) and time on the line. Consults count in the month "
        "they were requested.",
    ),
    ("Privacy", "Counts only: this page holds no call id, name, phone number or address."),
)


def _glossary() -> str:
    """The report's terms, each with its one definition, straight from GLOSSARY."""
    terms = "".join(
        f'<dt id="term-{esc(term.replace(" ", "-"))}">{esc(capitalised(term))}</dt>'
        f"<dd>{esc(meaning)}</dd>"
        for term, meaning in GLOSSARY.items()
    )
    return f'<dl class="terms">{terms}</dl>'


def _partial_note(report: MonthReport) -> str:
    partial = partial_label(report)
    if partial is None:
        return ""
    return (
        f'<p class="partial" role="note"><strong>{esc(capitalised(partial))}.</strong> '
        f"{esc(GLOSSARY['partial month'])}</p>"
    )


def render_html(report: MonthReport) -> str:
    """The month's page: header, key figures, four charts, the full table and the terms."""
    month = _month_title(report.month)
    partial = partial_label(report)
    suffix = f" ({partial})" if partial else ""
    title = f"{report_title(report.organisation)}: {month}{suffix}"
    rules = "".join(f"<dt>{esc(t)}</dt><dd>{esc(d)}</dd>" for t, d in COUNTING_RULES)
    sections = [
        (
            "calls",
            "Calls reached per pilot",
            "What each pilot reached this month, and where the rest of its eligible calls "
            "went: the parts add up to the eligible calls.",
            _pilot_cards(report),
        ),
        (
            "eligible",
            "Eligible calls, part by part",
            "Calls each pilot could have taken by their type: reached, missed by reason, and "
            "the rest by what became of them. The department plans staffing from the missed "
            "figures.",
            eligibility_chart(report),
        ),
        (
            "response",
            "Response time",
            "From a team's assignment to its arrival on scene.",
            response_chart(report),
        ),
        (
            "followups",
            "Follow-ups (Care Navigation)",
            "Follow-ups scheduled this month after a contact, and how far they got, "
            "whenever that was.",
            followup_chart(report),
        ),
        (
            "ccd-work",
            "Crisis Call Diversion: the clinicians' work",
            "What CCD clinicians did on the calls and consults of the month, from their own "
            "events.",
            ccd_work_section(report),
        ),
        (
            "types",
            "Top call types",
            "The most frequent call types among the calls each pilot reached.",
            call_types_chart(report),
        ),
        ("figures", "All figures", "The numbers behind the charts.", _table(report)),
        (
            "terms",
            "Terms",
            "Each term has this one meaning wherever this report uses it, on this page, in "
            "its JSON and in the terminal summary.",
            _glossary(),
        ),
    ]
    body = "".join(
        f'<section class="card" aria-labelledby="h-{ident}"><h2 id="h-{ident}">{esc(h)}</h2>'
        f'<p class="lede">{esc(lede)}</p>{content}</section>'
        for ident, h, lede, content in sections
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}"
        "</style></head><body>"
        f'<header><div class="wrap"><p class="eyebrow">{esc(heading(report.organisation))}</p>'
        f"<h1>Monthly pilot report: {esc(month)}"
        + (f' <span class="partial-tag">{esc(partial)}</span>' if partial else "")
        + "</h1>"
        f'<p class="meta">{_meta(report)}</p></div></header>'
        f'<main class="wrap">{_partial_note(report)}{_kpis(report)}{body}</main>'
        '<footer class="wrap"><h2>How the figures are counted</h2>'
        f"<dl>{rules}</dl>"
        "<p>Generated by HEART Stream from the reporting stage's snapshot on "
        "reports.monthly.</p></footer>"
        "</body></html>\n"
    )


def render_json(report: MonthReport) -> bytes:
    """The same figures as the page, as indented JSON with sorted keys."""
    return (
        orjson.dumps(
            report.model_dump(mode="json"), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        )
        + b"\n"
    )
