"""What-if: the same calls through several policies, with the pure triage decision.

No broker and no clock: each call is decided as the triage stage would have decided it
when it came in, once per policy, and the decisions are tallied into what a department
plans from:

- calls per route (ccd, crt, cor, police);
- per responding pilot, the calls it was *in scope* for (its call types matched and
  nothing about the call itself, a weapon or violence, kept it off), how many of those it
  *reached* and how many it *missed*, by the first coverage reason. A miss is exactly what
  the triage stage counts in ``heart_eligible_missed_total``: both use
  :func:`heart.agents.triage.decide.missed`;
- the team-hours needed (see :class:`Effort`).

Capacity is not modelled: a reached call is one the policy lets a pilot take, assuming a
team is free. The team-hours figures say how many teams that assumption costs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from heart.agents.triage.decide import decide, missed
from heart.policy.model import DAYS, PILOTS, RESPONDERS, Policy, Window
from heart.schemas.calls import CallReceived
from heart.schemas.triage import COVERAGE_REASONS, IneligibleReason, Route, TriageDecision

ROUTES: tuple[Route, ...] = ("ccd", "crt", "cor", "police")
#: Coverage reasons in the order reports show them.
MISS_REASONS: tuple[IneligibleReason, ...] = (
    "outside_hours",
    "outside_service_area",
    "unknown_beat",
    "pilot_disabled",
)
#: Routes that send a team in person; their calls are the team workload.
TEAM_ROUTES: tuple[Route, ...] = ("crt", "cor")

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
    - *Average teams busy* is response hours / staffed hours of one team: the fewest teams
      on shift that absorb the load on average. *Peak* is the most team calls overlapping
      at one moment, each lasting travel + on scene: the teams that would never queue.
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
    """One responding pilot under one policy."""

    pilot: str
    #: Calls whose types matched the pilot, whatever else.
    matched: int = 0
    #: Calls the pilot could take under this policy.
    eligible: int = 0
    #: Calls the pilot was involved in (its route, or CCD's clinician on the line).
    reached: int = 0
    #: First coverage reason -> calls missed for it.
    missed: Counter[str] = field(default_factory=Counter)
    #: Calls kept off by the call itself (weapon, violence): not misses.
    excluded: int = 0

    @property
    def missed_total(self) -> int:
        return sum(self.missed.values())

    @property
    def in_scope(self) -> int:
        """Calls the pilot should have had: the eligible ones plus the coverage misses."""
        return self.eligible + self.missed_total

    @property
    def reach_rate(self) -> float | None:
        return self.reached / self.in_scope if self.in_scope else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pilot": self.pilot,
            "matched": self.matched,
            "in_scope": self.in_scope,
            "eligible": self.eligible,
            "reached": self.reached,
            "missed": self.missed_total,
            "missed_by_reason": {r: self.missed[r] for r in MISS_REASONS if self.missed[r]},
            "excluded_weapon_or_violence": self.excluded,
            "reach_rate": _round(self.reach_rate),
        }


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
    def avg_teams_busy(self) -> float | None:
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
            "avg_teams_busy": _round(self.avg_teams_busy),
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "first_call": self.first_call.isoformat() if self.first_call else None,
            "last_call": self.last_call.isoformat() if self.last_call else None,
            "assumptions": {
                "travel_minutes": self.effort.travel_minutes,
                "on_scene_minutes": self.effort.on_scene_minutes,
                "teams": {pilot: self.effort.teams_of(pilot) for pilot in PILOTS},
                "note": (
                    "Capacity is not modelled: reached = the policy lets the pilot take the "
                    "call. Response team-hours = team calls x (travel + on scene); staffed "
                    "team-hours = the windows' open hours over the calls' calendar days x "
                    "teams on shift."
                ),
            },
            "policies": [p.to_dict() for p in self.policies],
        }


def compare(
    calls: Iterable[CallReceived],
    policies: Sequence[tuple[str, Policy]],
    effort: Effort | None = None,
    *,
    progress: Progress | None = None,
) -> WhatIf:
    """Decide every call under every ``(label, policy)`` and tally the figures."""
    effort = effort or Effort()
    ordered = sorted(calls, key=lambda call: call.occurred_at)
    total = len(ordered) * len(policies)
    done = 0
    results = []
    for label, policy in policies:
        figures = PolicyFigures(label, policy.version_id, policy.title, calls=len(ordered))
        figures.pilots = {pilot: PilotFigures(pilot) for pilot in RESPONDERS}
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
        results.append(figures)
    if progress is not None:
        progress(total, total)
    return WhatIf(
        calls=len(ordered),
        first_call=ordered[0].occurred_at if ordered else None,
        last_call=ordered[-1].occurred_at if ordered else None,
        effort=effort,
        policies=results,
    )


def _tally(figures: PolicyFigures, decision: TriageDecision) -> None:
    figures.routes[decision.route] += 1
    involved = set(decision.pilots)
    if "cn" in involved:
        figures.followups += 1
    for entry in decision.eligibility:
        pilot = figures.pilots[entry.pilot]
        pilot.matched += 1
        if entry.eligible:
            pilot.eligible += 1
        elif not set(entry.reasons) <= COVERAGE_REASONS:
            pilot.excluded += 1
        if entry.pilot in involved:
            pilot.reached += 1
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
