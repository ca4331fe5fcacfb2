"""How many teams a policy needs: the reach curve and the smallest count that hits a target.

For each policy and team pilot (CRT, CoR), the calls the policy routes to the pilot's
teams (its *team calls*: eligible calls inside its hours and area) are run through the
capacity simulation (:mod:`heart.agents.capacity.simulate`) with 1, 2, ... ``teams_max``
identical teams on shift whenever the pilot is open. Each count gives one point of the
reach curve: calls reached (a team assigned), the share of the team calls that is, calls
that fell back to police for want of a team, and the p50 and p90 wait of the reached
calls. ``teams_needed`` is the smallest count whose share reaches the target.

The target is a share of the team calls, not of every eligible call: no number of teams
reaches a call the policy's hours or area leave out (those are missed by coverage, counted
beside the curve, and drawn on the hour-of-week map of demand against hours).

Every count runs the same calls with the same times on call (drawn per call, see
:mod:`heart.agents.capacity.timing`), so the curve compares counts, not luck. Only the
curve's points are kept per count, so memory does not grow with the counts tried. Once a
count has no call that waited or fell back, every larger count gives the same figures
(identical teams, each call on its own team from the moment it came in): those points are
filled in without running them (``simulated`` false), unless ``shortcut`` is off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from heart.agents.capacity.shifts import HOURS_OF_WEEK, HourGrid, intervals
from heart.agents.capacity.simulate import PoolFigures, simulate_identical_teams
from heart.agents.capacity.timing import TimeOnCall
from heart.agents.dispatch.queue_rule import RELEASE_REASONS
from heart.agents.triage.whatif import TEAM_ROUTES, Decided, Demand, period_days
from heart.policy.model import Policy

#: ``progress(runs_done, runs_planned)``.
Progress = Callable[[int, int], None]
#: Team counts tried when none is given.
DEFAULT_TEAMS_MAX = 12
DEFAULT_TARGET = 0.9


@dataclass(frozen=True)
class CurvePoint:
    """One team count on the reach curve: ``team_calls = reached + fallbacks``."""

    teams: int
    team_calls: int
    reached: int
    fallbacks: int
    wait_p50: float | None
    wait_p90: float | None
    #: Reached calls that waited at all.
    waited: int
    #: False when filled in from the count before (nothing waited or fell back there).
    simulated: bool = True

    @property
    def reached_share(self) -> float | None:
        return self.reached / self.team_calls if self.team_calls else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "teams": self.teams,
            "reached": self.reached,
            # Unrounded: a share below the target never shows as the target.
            "reached_share": self.reached_share,
            "fallbacks": self.fallbacks,
            "wait_p50_min": _round(self.wait_p50),
            "wait_p90_min": _round(self.wait_p90),
            "waited": self.waited,
            "simulated": self.simulated,
        }


@dataclass
class PilotStaffing:
    """One team pilot under one policy."""

    pilot: str
    #: Eligible calls (glossary): ``team_calls + missed_by_coverage + other``.
    eligible: int
    team_calls: int
    #: Eligible calls the policy's coverage leaves out, by first reason.
    missed_by_coverage: dict[str, int]
    #: Eligible calls routed elsewhere (resolved by phone, co-response, police).
    other: int
    curve: list[CurvePoint] = field(default_factory=list)
    teams_needed: int | None = None
    #: The run at ``teams_needed`` (else at the most teams tried), with its busy and
    #: on-shift team-minutes by hour of the week.
    at_needed: PoolFigures | None = None
    #: Per hour of the week (Monday 00-01 first): eligible calls, over the whole period.
    eligible_by_hour: list[int] = field(default_factory=lambda: [0] * HOURS_OF_WEEK)
    #: Per hour of the week: minutes the pilot is open (0-60).
    open_minutes_by_hour: list[int] = field(default_factory=lambda: [0] * HOURS_OF_WEEK)

    def to_dict(self) -> dict[str, Any]:
        at = self.at_needed
        return {
            "pilot": self.pilot,
            "eligible": self.eligible,
            "team_calls": self.team_calls,
            "missed_by_coverage": self.missed_by_coverage,
            "other": self.other,
            "curve": [point.to_dict() for point in self.curve],
            "teams_needed": self.teams_needed,
            "at_teams_needed": None
            if at is None
            else {
                "fallbacks_by_reason": {r: at.fallbacks[r] for r in RELEASE_REASONS},
                "utilisation_by_hour_of_week": [_round(u, 3) for u in at.utilisation() or ()],
            },
            "eligible_by_hour_of_week": self.eligible_by_hour,
            "open_minutes_by_hour_of_week": self.open_minutes_by_hour,
        }


@dataclass
class PolicyStaffing:
    label: str
    policy_version: str
    title: str | None
    timezone: str
    #: The longest a call waits here, minutes: the maximum wait, capped by the
    #: stale-call limit (no team goes to a stale call).
    max_wait_minutes: float
    pilots: dict[str, PilotStaffing] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "policy_version": self.policy_version,
            "title": self.title,
            "timezone": self.timezone,
            "max_wait_minutes": self.max_wait_minutes,
            "pilots": {name: p.to_dict() for name, p in self.pilots.items()},
        }


@dataclass
class Staffing:
    """The search over every policy, on the same calls."""

    calls: int
    first_call: datetime | None
    last_call: datetime | None
    target: float
    teams_max: int
    time_on_call: TimeOnCall
    seed: int
    #: The ``--max-wait-minutes`` asked for, or None for each policy's own.
    max_wait_minutes: float | None
    policies: list[PolicyStaffing]
    #: Curve points simulated (the rest were filled in, see the module docstring).
    runs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "first_call": self.first_call.isoformat() if self.first_call else None,
            "last_call": self.last_call.isoformat() if self.last_call else None,
            "target": self.target,
            "teams_max": self.teams_max,
            "assumptions": {
                "time_on_call": self.time_on_call.to_dict(),
                "max_wait_minutes": self.max_wait_minutes,
                "teams_on_shift": "whenever the pilot is open (the policy's hours)",
                "seed": self.seed,
                "reached_share": "reached / team calls (the calls the policy routes to the "
                "pilot's teams); teams_needed: the fewest teams whose share reaches the "
                "target",
            },
            "policies": [p.to_dict() for p in self.policies],
        }


def search(
    decided: Decided,
    *,
    target: float = DEFAULT_TARGET,
    teams_max: int = DEFAULT_TEAMS_MAX,
    time_on_call: TimeOnCall,
    seed: int,
    max_wait_minutes: float | None = None,
    shortcut: bool = True,
    progress: Progress | None = None,
) -> Staffing:
    """The reach curve and ``teams_needed`` of every policy and team pilot (see the
    module docstring). ValueError names a target or team count out of range."""
    if not (math.isfinite(target) and 0 < target <= 1):
        raise ValueError(f"the target must be a share above 0 and at most 1, not {target}")
    if teams_max < 1:
        raise ValueError(f"the most teams to try must be 1 or more, not {teams_max}")
    if max_wait_minutes is not None and not (
        math.isfinite(max_wait_minutes) and max_wait_minutes >= 0
    ):
        raise ValueError(f"the maximum wait must be 0 or more minutes, not {max_wait_minutes}")
    planned = len(decided.demands) * len(TEAM_ROUTES) * (teams_max + 1)
    done = 0
    runs = 0
    policies = []
    for demand in decided.demands:
        policy = demand.policy
        wanted = (
            policy.dispatch.max_queue_wait_minutes if max_wait_minutes is None else max_wait_minutes
        )
        waits = min(wanted, policy.dispatch.stale_call_minutes)
        result = PolicyStaffing(
            demand.label, policy.version_id, policy.title, policy.timezone, waits
        )
        days = period_days(policy, decided.first_call, decided.last_call)
        for pilot in TEAM_ROUTES:
            staffing, simulated = _pilot(
                demand, pilot, days, target, teams_max, time_on_call, seed, waits, shortcut
            )
            result.pilots[pilot] = staffing
            runs += simulated
            done += teams_max + 1
            if progress is not None:
                progress(done, planned)
        policies.append(result)
    return Staffing(
        decided.calls,
        decided.first_call,
        decided.last_call,
        target,
        teams_max,
        time_on_call,
        seed,
        max_wait_minutes,
        policies,
        runs,
    )


def _pilot(
    demand: Demand,
    pilot: str,
    days: Sequence[date],
    target: float,
    teams_max: int,
    time_on_call: TimeOnCall,
    seed: int,
    max_wait: float,
    shortcut: bool,
) -> tuple[PilotStaffing, int]:
    policy = demand.policy
    figures = demand.figures.pilots[pilot]
    calls = demand.team_calls[pilot]
    coverage = {r: n for r, n in figures.missed.items() if n}
    staffing = PilotStaffing(
        pilot,
        eligible=figures.eligible,
        team_calls=len(calls),
        missed_by_coverage=coverage,
        other=figures.other_total,
        eligible_by_hour=list(demand.eligible_by_hour[pilot]),
        open_minutes_by_hour=_open_minutes(policy, pilot),
    )
    if not calls or not days:
        staffing.teams_needed = 0
        return staffing, 0
    zone = policy.zone
    week = next(rule.week for rule in policy.rules if rule.pilot == pilot)
    shift = intervals(week, zone, days[0] - timedelta(days=1), days[-1] + timedelta(days=2))
    # Keyed by the pilot, not the policy: a call keeps its time under every policy.
    durations = time_on_call.durations([c.call_id for c in calls], seed, pilot)
    simulated = 0

    def run(teams: int, grid: HourGrid | None = None) -> PoolFigures:
        return simulate_identical_teams(
            calls,
            pilot,
            teams,
            shift,
            max_wait_minutes=max_wait,
            stale_call_minutes=policy.dispatch.stale_call_minutes,
            durations=durations,
            grid=grid,
        )

    previous: CurvePoint | None = None
    for teams in range(1, teams_max + 1):
        if shortcut and previous is not None and not previous.fallbacks and not previous.waited:
            point = CurvePoint(
                teams,
                previous.team_calls,
                previous.reached,
                0,
                previous.wait_p50,
                previous.wait_p90,
                0,
                simulated=False,
            )
        else:
            pool = run(teams)
            simulated += 1
            point = CurvePoint(
                teams,
                len(calls),
                pool.reached,
                pool.fallbacks_total,
                pool.wait_p50,
                pool.wait_p90,
                pool.waited,
            )
        staffing.curve.append(point)
        if staffing.teams_needed is None and point.reached >= target * len(calls) - 1e-9:
            staffing.teams_needed = teams
        previous = point
    shown = staffing.teams_needed or teams_max
    staffing.at_needed = run(shown, HourGrid.for_days(zone, days[0], days[-1]))
    return staffing, simulated + 1


def _open_minutes(policy: Policy, pilot: str) -> list[int]:
    """Minutes per hour of the week the pilot is open (0 when disabled)."""
    out = [0] * HOURS_OF_WEEK
    if not getattr(policy.pilots, pilot).enabled:
        return out
    week = next(rule.week for rule in policy.rules if rule.pilot == pilot)
    for day, windows in enumerate(week):
        covered: set[int] = set()
        for start, end in windows:
            covered.update(range(start, end))
        for minute in covered:
            out[day * 24 + minute // 60] += 1
    return out


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
