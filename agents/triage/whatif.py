"""What-if: the same calls through several policies, with the pure triage decision.

No broker and no clock: each call is decided as the triage stage would have decided it
when it came in, once per policy, and the decisions are tallied into what a department
plans from, in the terms of :data:`heart.schemas.glossary.GLOSSARY` (the monthly report's):

- calls per route (ccd, crt, cor, police);
- per responding pilot: the calls its types *matched*; of those, the ones a weapon or
  violence kept it off, and the *eligible* rest, which add up as
  ``eligible = reached + missed + other``:

  - *reached*: the policy routes the call to the pilot (CCD: resolved by phone; CRT and
    CoR: a team is sent, capacity not modelled);
  - *missed*: kept off only by coverage, counted under the first reason. A miss is
    exactly what the triage stage counts in ``heart_eligible_missed_total``: both use
    :func:`heart.agents.triage.decide.missed`;
  - *other*, named per pilot (:data:`OTHER_NAMES`): for CCD the calls that needed someone
    in person, for a team pilot the calls routed elsewhere (resolved by phone first,
    or a co-response), by the route they took;
- the months the calls cover, each marked partial when the calls cover it only in part;
- the team-hours needed (see :class:`Effort`).

CCD's reach rests on ``needs_in_person``. Calls from a CAD export whose mapping cannot
derive it (no ``[in_person]``) all need someone in person by default, so no call could be
resolved by phone: :func:`compare` is told so, and CCD's reached and other are then
reported as unknown instead of as a measured 0.
"""

from __future__ import annotations

import calendar
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from heart.agents.triage.decide import decide, missed
from heart.policy.model import DAYS, PILOTS, RESPONDERS, Policy, Window
from heart.schemas.calls import CallReceived
from heart.schemas.triage import COVERAGE_REASONS, IneligibleReason, Route, TriageDecision

ROUTES: tuple[Route, ...] = ("ccd", "crt", "cor", "police")
#: Coverage reasons in the order reports show them. ``no_team_free``, the glossary's
#: capacity reason, never occurs: the what-if does not model capacity.
MISS_REASONS: tuple[IneligibleReason, ...] = (
    "outside_hours",
    "outside_service_area",
    "unknown_beat",
    "pilot_disabled",
)
#: Routes that send a team in person; their calls are the team workload.
TEAM_ROUTES: tuple[Route, ...] = ("crt", "cor")
#: Per pilot, what its eligible calls that were neither reached nor missed are.
OTHER_NAMES: dict[str, str] = {
    "ccd": "needed someone in person",
    "crt": "routed elsewhere",
    "cor": "routed elsewhere",
}

#: ``progress(calls_decided, calls_to_decide)``, every :data:`PROGRESS_EVERY` decisions.
Progress = Callable[[int, int], None]
PROGRESS_EVERY = 2_000


@dataclass(frozen=True)
class Effort:
    """How team-hours are estimated.

    - *Response team-hours*: each call routed to a team (crt or cor) occupies one team for
      the mean travel time plus the mean time on scene. The travel default is the 7.6
      minutes Durham's teams averaged in their first two months; the on-scene default of
      45 minutes is an assumption (no figure is published), so it is a parameter.
    - *Staffed team-hours*: the hours each pilot's weekly windows open over the calendar
      days the calls span (first to last call, in the policy's zone, both days counted),
      times the teams (or seats) on shift per pilot, 1 unless given. For a period of
      whole weeks this is weekly hours x weeks x teams.
    - *Demand in team-equivalents* is response hours / open hours: the average team-hours
      of work per hour the pilot is open. Capacity is not modelled, so it is not the
      teams busy: a demand above the teams on shift means calls would wait or be missed.
      *Peak* is the most team calls overlapping at one moment, each lasting travel + on
      scene: the teams that would never queue.
    """

    travel_minutes: float = 7.6
    on_scene_minutes: float = 45.0
    #: Teams (CRT, CoR) or seats (CCD, CN) on shift per pilot; missing pilots have 1.
    teams: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.travel_minutes < 0 or self.on_scene_minutes < 0:
            raise ValueError("travel and on-scene minutes must not be negative")
        bad = {p: n for p, n in self.teams.items() if p not in PILOTS or n < 0}
        if bad:
            raise ValueError(f"teams must name pilots ({', '.join(PILOTS)}) with counts >= 0")

    @property
    def minutes_per_call(self) -> float:
        return self.travel_minutes + self.on_scene_minutes

    def teams_of(self, pilot: str) -> int:
        return self.teams.get(pilot, 1)


@dataclass
class PilotFigures:
    """One responding pilot under one policy; ``eligible = reached + missed + other``."""

    pilot: str
    #: Calls whose type is one of the pilot's, whatever the hours, place or risk.
    matched: int = 0
    #: Matched calls a weapon or violence keeps the pilot off: neither eligible nor missed.
    kept_off: int = 0
    #: Matched calls the call itself does not keep the pilot from.
    eligible: int = 0
    #: Eligible calls routed to the pilot.
    reached: int = 0
    #: First coverage reason -> eligible calls missed for it.
    missed: Counter[str] = field(default_factory=Counter)
    #: Route -> eligible calls neither reached nor missed (named by :data:`OTHER_NAMES`).
    other: Counter[str] = field(default_factory=Counter)
    #: False when the calls cannot tell reached from other: CCD on calls whose
    #: ``needs_in_person`` is a default, not a fact.
    measured: bool = True

    @property
    def missed_total(self) -> int:
        return sum(self.missed.values())

    @property
    def other_total(self) -> int:
        return sum(self.other.values())

    @property
    def other_name(self) -> str:
        return OTHER_NAMES[self.pilot]

    @property
    def reached_or_other(self) -> int:
        """Eligible calls not missed: all a CAD export without dispositions can count."""
        return self.reached + self.other_total

    @property
    def reach_rate(self) -> float | None:
        """Reached / eligible; None with no eligible call, or when not measured."""
        return self.reached / self.eligible if self.eligible and self.measured else None

    def to_dict(self) -> dict[str, Any]:
        known = self.measured
        return {
            "pilot": self.pilot,
            "matched": self.matched,
            "kept_off_weapon_or_violence": self.kept_off,
            "eligible": self.eligible,
            "reached": self.reached if known else None,
            "missed": self.missed_total,
            "missed_by_reason": {r: self.missed[r] for r in MISS_REASONS if self.missed[r]},
            "other": self.other_total if known else None,
            "other_name": self.other_name,
            "other_by_route": (
                {r: self.other[r] for r in ROUTES if self.other[r]} if known else None
            ),
            "reached_or_other": self.reached_or_other,
            "reach_measured": known,
            # Unrounded: a share below 1 never shows as 1 (or above 0 as 0).
            "reach_rate": self.reach_rate,
        }


@dataclass(frozen=True)
class MonthCoverage:
    """One calendar month of the calls, in a policy's zone, and the days they cover."""

    first_day: date
    last_day: date

    @property
    def month(self) -> str:
        return f"{self.first_day:%Y-%m}"

    @property
    def days_in_month(self) -> int:
        return calendar.monthrange(self.first_day.year, self.first_day.month)[1]

    @property
    def days_covered(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def partial(self) -> bool:
        return self.days_covered < self.days_in_month

    @property
    def name(self) -> str:
        """``May 2018``."""
        return f"{self.first_day:%B %Y}"

    def span(self) -> str:
        """The days covered, e.g. ``1\u201321 May, 21 of 31 days``."""
        return (
            f"{self.first_day.day}\u2013{self.last_day.day} {self.first_day:%b}, "
            f"{self.days_covered} of {self.days_in_month} days"
        )

    def label(self) -> str:
        """``May 2018``, or ``May 2018 (partial: 1\u201321 May, 21 of 31 days)``."""
        return f"{self.name} (partial: {self.span()})" if self.partial else self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "days_covered": self.days_covered,
            "days_in_month": self.days_in_month,
            "partial": self.partial,
        }


def months_covered(first: datetime, last: datetime, zone: ZoneInfo) -> list[MonthCoverage]:
    """The months from ``first`` to ``last`` (the first and last call) in ``zone``, each
    with the days the calls span in it: a month the period does not fill is partial."""
    start, end = first.astimezone(zone).date(), last.astimezone(zone).date()
    out = []
    day = start
    while day <= end:
        month_end = day.replace(day=calendar.monthrange(day.year, day.month)[1])
        out.append(MonthCoverage(day, min(month_end, end)))
        day = month_end + timedelta(days=1)
    return out


@dataclass
class HoursFigures:
    """Team-hours of one pilot under one policy (see :class:`Effort`)."""

    pilot: str
    #: Calls routed to the pilot's teams (0 for CCD and CN, which send no team).
    team_calls: int
    response_hours: float
    staffed_hours_per_team: float
    teams: int
    peak_concurrent: int

    @property
    def staffed_team_hours(self) -> float:
        return self.staffed_hours_per_team * self.teams

    @property
    def demand_team_equivalents(self) -> float | None:
        """Team-hours of work per open hour; not teams busy (see :class:`Effort`)."""
        if self.staffed_hours_per_team <= 0:
            return None
        return self.response_hours / self.staffed_hours_per_team

    def to_dict(self) -> dict[str, Any]:
        return {
            "pilot": self.pilot,
            "team_calls": self.team_calls,
            "response_team_hours": round(self.response_hours, 1),
            "staffed_hours_per_team": round(self.staffed_hours_per_team, 1),
            "teams": self.teams,
            "staffed_team_hours": round(self.staffed_team_hours, 1),
            "demand_team_equivalents": _round(self.demand_team_equivalents),
            "peak_concurrent_team_calls": self.peak_concurrent,
        }


@dataclass
class PolicyFigures:
    """Every figure of one policy over the calls."""

    label: str
    policy_version: str
    title: str | None
    calls: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    pilots: dict[str, PilotFigures] = field(default_factory=dict)
    #: Calls Care Navigation would follow up.
    followups: int = 0
    hours: dict[str, HoursFigures] = field(default_factory=dict)
    #: The months the calls cover, in this policy's zone.
    months: list[MonthCoverage] = field(default_factory=list)
    timezone: str = "UTC"

    @property
    def response_team_hours(self) -> float:
        return sum(h.response_hours for h in self.hours.values())

    @property
    def staffed_team_hours(self) -> float:
        """Shift hours of the in-person teams (CRT and CoR) the windows imply."""
        return sum(self.hours[p].staffed_team_hours for p in TEAM_ROUTES if p in self.hours)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "policy_version": self.policy_version,
            "title": self.title,
            "timezone": self.timezone,
            "months": [m.to_dict() for m in self.months],
            "calls": self.calls,
            "routes": {route: self.routes[route] for route in ROUTES},
            "pilots": {name: figures.to_dict() for name, figures in self.pilots.items()},
            "cn_followups": self.followups,
            "team_hours": {
                "response": round(self.response_team_hours, 1),
                "staffed_in_person": round(self.staffed_team_hours, 1),
                "by_pilot": {name: h.to_dict() for name, h in self.hours.items()},
            },
        }


@dataclass
class WhatIf:
    """Policies compared on the same calls."""

    calls: int
    first_call: datetime | None
    last_call: datetime | None
    effort: Effort
    policies: list[PolicyFigures]
    #: Whether each call's ``needs_in_person`` is known (see :func:`compare`).
    in_person_known: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "first_call": self.first_call.isoformat() if self.first_call else None,
            "last_call": self.last_call.isoformat() if self.last_call else None,
            "needs_in_person_known": self.in_person_known,
            "assumptions": {
                "travel_minutes": self.effort.travel_minutes,
                "on_scene_minutes": self.effort.on_scene_minutes,
                "teams": {pilot: self.effort.teams_of(pilot) for pilot in PILOTS},
                "note": (
                    "Capacity is not modelled: reached = the policy routes the call to the "
                    "pilot, as if a team were free. Response team-hours = team calls x "
                    "(travel + on scene); staffed team-hours = the windows' open hours over "
                    "the calls' calendar days x teams on shift; demand in team-equivalents = "
                    "response team-hours / open hours, not teams busy."
                ),
            },
            "policies": [p.to_dict() for p in self.policies],
        }


def compare(
    calls: Iterable[CallReceived],
    policies: Sequence[tuple[str, Policy]],
    effort: Effort | None = None,
    *,
    in_person_known: bool = True,
    progress: Progress | None = None,
) -> WhatIf:
    """Decide every call under every ``(label, policy)`` and tally the figures.

    ``in_person_known`` says whether the calls' ``needs_in_person`` is a fact (live calls,
    or an export whose mapping reads it from a disposition) or a default: only with facts
    can CCD's reached be told from the calls that needed someone in person.
    """
    effort = effort or Effort()
    ordered = sorted(calls, key=lambda call: call.occurred_at)
    total = len(ordered) * len(policies)
    done = 0
    results = []
    for label, policy in policies:
        figures = PolicyFigures(
            label, policy.version_id, policy.title, calls=len(ordered), timezone=policy.timezone
        )
        figures.pilots = {pilot: PilotFigures(pilot) for pilot in RESPONDERS}
        figures.pilots["ccd"].measured = in_person_known
        starts: dict[str, list[datetime]] = {pilot: [] for pilot in TEAM_ROUTES}
        for call in ordered:
            # A fixed event id: the decision is thrown away, and generating a random one
            # per call is a measurable share of the time.
            decision = decide(call, policy, event_id="whatif")
            _tally(figures, decision)
            if decision.route in starts:
                starts[decision.route].append(call.occurred_at)
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(done, total)
        figures.hours = _hours(policy, ordered, starts, effort)
        if ordered:
            figures.months = months_covered(
                ordered[0].occurred_at, ordered[-1].occurred_at, policy.zone
            )
        results.append(figures)
    if progress is not None:
        progress(total, total)
    return WhatIf(
        calls=len(ordered),
        first_call=ordered[0].occurred_at if ordered else None,
        last_call=ordered[-1].occurred_at if ordered else None,
        effort=effort,
        policies=results,
        in_person_known=in_person_known,
    )


def _tally(figures: PolicyFigures, decision: TriageDecision) -> None:
    route = decision.route
    figures.routes[route] += 1
    if "cn" in decision.pilots:
        figures.followups += 1
    for entry in decision.eligibility:
        pilot = figures.pilots[entry.pilot]
        pilot.matched += 1
        if entry.eligible:
            pilot.eligible += 1
            if route == entry.pilot:
                pilot.reached += 1
            else:
                pilot.other[route] += 1
        elif set(entry.reasons) <= COVERAGE_REASONS:
            pilot.eligible += 1  # and missed, tallied below with the triage stage's rule
        else:
            pilot.kept_off += 1
    for pilot, reason in missed(decision):
        figures.pilots[pilot].missed[reason] += 1


def _hours(
    policy: Policy,
    calls: Sequence[CallReceived],
    starts: Mapping[str, Sequence[datetime]],
    effort: Effort,
) -> dict[str, HoursFigures]:
    days = _period(policy, calls)
    per_call = effort.minutes_per_call
    out = {}
    for pilot in PILOTS:
        spec = getattr(policy.pilots, pilot)
        weekly = weekly_minutes(spec.hours) if spec.enabled else (0,) * len(DAYS)
        staffed = sum(weekly[day.weekday()] for day in days) / 60
        team_starts = starts.get(pilot, ())
        out[pilot] = HoursFigures(
            pilot=pilot,
            team_calls=len(team_starts),
            response_hours=len(team_starts) * per_call / 60,
            staffed_hours_per_team=staffed,
            teams=effort.teams_of(pilot),
            peak_concurrent=peak_concurrent(team_starts, timedelta(minutes=per_call)),
        )
    return out


def _period(policy: Policy, calls: Sequence[CallReceived]) -> list[date]:
    """The calendar days from the first call to the last, in the policy's zone."""
    if not calls:
        return []
    first = calls[0].occurred_at.astimezone(policy.zone).date()
    last = calls[-1].occurred_at.astimezone(policy.zone).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def weekly_minutes(windows: Iterable[Window]) -> tuple[int, ...]:
    """Open minutes per weekday (Monday first); overlapping windows count once."""
    opened: list[set[int]] = [set() for _ in DAYS]
    for window in windows:
        start, end = _minute(window.start), _minute(window.end)
        for day in window.days:
            opened[DAYS.index(day)].update(range(start, end))
    return tuple(len(minutes) for minutes in opened)


def _minute(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def peak_concurrent(starts: Sequence[datetime], duration: timedelta) -> int:
    """The most intervals ``[start, start + duration)`` that overlap at one moment."""
    if not starts or duration <= timedelta(0):
        return 0
    # An end sorts before a start at the same instant: [a, b) and [b, c) do not overlap.
    edges = sorted([(s, 1) for s in starts] + [(s + duration, -1) for s in starts])
    busy = peak = 0
    for _, step in edges:
        busy += step
        peak = max(peak, busy)
    return peak


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)
