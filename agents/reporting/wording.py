"""How a monthly report names things, shared by its page and the terminal summary so the
two say the same: the heading from the policy's organisation, the partial-month label and
each pilot's eligible calls written as the sum of their parts."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from heart.schemas.ccd import RISK_LEVELS
from heart.schemas.reports import (
    DISPOSITIONS,
    OTHER_PART_LABELS,
    MonthReport,
    Organisation,
    PilotReport,
)

#: The heading of a report whose policy names no organisation.
NEUTRAL_HEADING = "Crisis response pilots"

REASON_LABELS: dict[str, str] = {
    "outside_hours": "Outside hours",
    "outside_service_area": "Outside service area",
    "unknown_beat": "Unknown beat",
    "pilot_disabled": "Pilot not running",
    "no_team_free": "No team free",
    "stale": "Too late (stage paused or down)",
}

#: What "reached" is for each pilot (the glossary's definition, in a few words).
REACHED_MEANS: dict[str, str] = {
    "ccd": "resolved by phone",
    "crt": "team assigned",
    "cor": "team assigned",
    "cn": "follow-up scheduled",
}


def heading(organisation: Organisation | None) -> str:
    """One line naming who runs the pilots: department, city and program, as given."""
    if organisation is None:
        return NEUTRAL_HEADING
    program = f"{organisation.program} crisis response pilots" if organisation.program else None
    names = [organisation.department, organisation.city, program]
    return " · ".join(n for n in names if n) or NEUTRAL_HEADING


def report_title(organisation: Organisation | None) -> str:
    """ "HEART monthly report" when the policy names a program, else a neutral title."""
    program = organisation.program if organisation is not None else None
    return f"{program} monthly report" if program else "Monthly pilot report"


def days_covered(report: MonthReport) -> tuple[date, date] | None:
    """The first and last day (policy zone) of the events the month counts."""
    if report.data_from is None or report.data_through is None:
        return None
    zone = ZoneInfo(report.timezone)
    return report.data_from.astimezone(zone).date(), report.data_through.astimezone(zone).date()


def partial_label(report: MonthReport) -> str | None:
    """``partial month: 1-21 May`` (with an en dash) for a partial month, else None."""
    days = days_covered(report)
    if not report.partial or days is None:
        return None
    first, last = days
    span = f"{first.day}" if first == last else f"{first.day}\u2013{last.day}"
    return f"partial month: {span} {last:%B}"


def capitalised(text: str) -> str:
    """``text`` with its first letter upper case and the rest as written (str.capitalize
    would turn "partial month: 1-21 May" into "... may")."""
    return text[:1].upper() + text[1:]


def reason_label(reason: str) -> str:
    return REASON_LABELS.get(reason, reason)


def other_label(part: str) -> str:
    return OTHER_PART_LABELS.get(part, part.replace("_", " "))


def parts_sum(p: PilotReport) -> str:
    """``8 eligible = 5 reached + 1 missed (outside hours 1) + 2 needed someone in person``;
    parts that are zero are left out, except reached and missed."""
    missed = ", ".join(f"{reason_label(r).lower()} {n}" for r, n in p.missed_by_reason.items())
    terms = [f"{p.reached} reached", f"{p.missed} missed" + (f" ({missed})" if missed else "")]
    terms += [f"{n} {other_label(part)}" for part, n in p.other.items() if n]
    return f"{p.eligible} eligible = " + " + ".join(terms)


def followup_reconciliation(report: MonthReport) -> str | None:
    """How the month's follow-ups scheduled follow from Care Navigation's reached calls,
    when they differ in their parts: reached calls count in the call's month, follow-ups in
    the month they were scheduled. None when every follow-up is one of the month's reached
    calls and every reached call's follow-up was scheduled in the month."""
    cn = report.pilot("cn")
    f = report.followups
    if not cn.reached_in_other_month and not f.for_other_calls:
        return None
    return (
        f"{f.scheduled} follow-ups scheduled = {cn.reached} Care Navigation reached "
        f"\u2212 {cn.reached_in_other_month} of them scheduled in another month "
        f"+ {f.for_other_calls} for calls of another month or not eligible for CN"
    )


# --- Crisis Call Diversion ----------------------------------------------------------------


def _sum(total: str, terms: list[str]) -> str:
    return f"{total} = " + " + ".join(terms) if terms else total


def _n(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _share(share: float | None) -> str:
    return f"{share:.0%}" if share is not None else "n/a"


def ccd_figures(report: MonthReport) -> list[tuple[str, str]]:
    """The Crisis Call Diversion section as (figure, its sentence) pairs, shared by the page
    and the terminal summary; parts are written as sums of the whole (zero parts left out).
    Empty when the month has no clinician events: the report's ``ccd_work.note`` says so."""
    w = report.ccd_work
    if not w.clinician_events:
        return []
    s, plans, refs = w.screenings, w.safety_plans, w.referrals
    disp, over, cons, line = w.dispositions, w.overrides, w.consults, w.time_on_line
    assert s and plans and refs and disp and over and cons and line
    # Highest risk first; the dicts are walked in their fixed order, not the order a JSON
    # file (keys sorted) gives back.
    levels = [
        f"{level} {s.by_risk_level[level]}"
        for level in reversed(RISK_LEVELS)
        if s.by_risk_level.get(level)
    ]
    plan_parts = [f"{plans.all_six_steps} with all six steps"] if plans.all_six_steps else []
    plan_parts += [f"{plans.fewer_steps} with fewer steps"] if plans.fewer_steps else []
    referrals = [
        f"{r.name} {r.referrals}"
        + (f" ({_n(r.warm_handoffs, 'warm handoff')})" if r.warm_handoffs else "")
        for r in refs.by_resource
        if r.referrals
    ]
    dispositions = [f"{d} {disp.by_value[d]}" for d in DISPOSITIONS if disp.by_value.get(d)]
    overrides = [f"{d.rules_route}\u2192{d.route} {d.calls}" for d in over.by_direction]
    asked = [r for r in cons.by_requester if r.requested]
    within = ", ".join(
        f"{r.requested_by} {r.answered_within_target} of {r.requested}" for r in asked
    )
    consults = _sum(
        f"{_n(cons.requested, 'consult')} requested",
        [f"{r.requested_by} {r.requested}" for r in asked],
    ) + (
        f"; {cons.answered} answered, {cons.answered_within_target} within target "
        f"({_share(cons.share_within_target)}" + (f": {within}" if within else "") + ")"
    )
    timed = (
        f"median {_minutes(line.median_s)}, p90 {_minutes(line.p90_s)} ({_n(line.calls, 'call')})"
        if line.median_s is not None and line.p90_s is not None
        else "no call timed: no responders reported on scene after a clinician joined"
    )
    return [
        ("Calls engaged", _n(w.calls_engaged or 0, "call")),
        ("Screenings by risk level", _sum(_n(s.total, "screening"), levels)),
        ("Safety plans", _sum(_n(plans.plans, "plan"), plan_parts)),
        (
            "Referrals by resource",
            _sum(_n(refs.total, "referral"), referrals)
            + f"; {_n(refs.warm_handoffs, 'warm handoff')} in all",
        ),
        ("Dispositions", _sum(f"{_n(disp.calls, 'call')} with a disposition", dispositions)),
        ("Overrides of the rules", _sum(_n(over.calls, "call"), overrides)),
        ("Consults by requester", consults),
        ("Time on the line", timed),
    ]
