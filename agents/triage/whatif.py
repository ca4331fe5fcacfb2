"""What-if: the same calls through several policies, with the pure triage decision.

No broker and no clock: each call is decided as the triage stage would have decided it
when it came in, once per policy, and the decisions are tallied into what a department
plans from, in the terms of :data:`heart.schemas.glossary.GLOSSARY` (the monthly report's):

- calls per route (ccd, crt, cor, police);
- per responding pilot: the calls its types *matched*; of those, the ones a weapon or
  violence kept it off, and the *eligible* rest, which add up as
  ``eligible = reached + missed + other``:

  - *reached*: the policy routes the call to the pilot (CCD: resolved by phone; CRT and
    CoR: a team is sent; as if one were always free, unless capacity is modelled);
  - *missed*: kept off only by coverage, counted under the first reason. A miss is
    exactly what the triage stage counts in ``heart_eligible_missed_total``: both use
    :func:`heart.agents.triage.decide.missed`. With capacity modelled, a team call no
    team could take is missed too, with ``no_team_free``;
  - *other*, named per pilot (:data:`OTHER_NAMES`): for CCD the calls that needed someone
    in person, for a team pilot the calls routed elsewhere (resolved by phone first,
    or a co-response), by the route they took;
- the months the calls cover, each marked partial when the calls cover it only in part;
- the team-hours needed (see :class:`Effort`).

Capacity (:class:`Capacity`): the calls each policy routes to a team are run through a
discrete-event simulation of the teams on shift (:mod:`heart.agents.capacity.simulate`,
the dispatch stage's queue rule): teams per pilot on the pilot's hours, or a roster file's
teams and shifts. CRT's and CoR's reached is then the calls a team was assigned to, and
their waits and the teams' utilisation by hour of the week are reported.

Each distinct call is decided once per policy: a decision depends only on the call's
:data:`~heart.agents.triage.decide.DECISION_FIELDS` and its local weekday and minute, so
calls alike in those share one decision (the same contract re-decisions rely on).

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
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from heart.agents.capacity.shifts import HOURS_OF_WEEK, HourGrid, intervals, to_us
from heart.agents.capacity.simulate import (
    Duration,
    PoolFigures,
    TeamCall,
    simulate,
    simulate_identical_teams,
    summarise_waits,
)
from heart.agents.capacity.timing import MINUTE_US, TimeOnCall
from heart.agents.dispatch.queue_rule import RELEASE_REASONS
from heart.agents.dispatch.roster import Roster
from heart.agents.triage.decide import DECISION_FIELDS, decide, missed
from heart.policy.model import DAYS, PILOTS, RESPONDERS, Policy, Window
from heart.schemas.calls import CallReceived
from heart.schemas.triage import COVERAGE_REASONS, Route, TriageDecision

ROUTES: tuple[Route, ...] = ("ccd", "crt", "cor", "police")
#: Miss reasons in the order reports show them: coverage, then the glossary's capacity
#: reason, which occurs only when capacity is modelled.
MISS_REASONS: tuple[str, ...] = (
    "outside_hours",
    "outside_service_area",
    "unknown_beat",
    "pilot_disabled",
    "no_team_free",
)
#: The seed of the times on call when none is given (``heart replay``'s default too).
DEFAULT_SEED = 2022
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


@dataclass(frozen=True)
class Capacity:
    """How the capacity what-if staffs the team pilots (CRT and CoR).

    Teams come from ``roster`` (each team with its own shifts, in its service area) or,
    without one, :attr:`Effort.teams` per pilot, every team on shift whenever the pilot is
    open. A call that finds no free team waits up to the policy's
    ``max_queue_wait_minutes`` (or ``max_wait_minutes``), never past its
    ``stale_call_minutes``, then falls back to police: missed, ``no_team_free``.
    """

    #: How long a call keeps its team busy: a model drawn per call with ``seed``, or a
    #: function of the call, the team and the moment of assignment.
    time_on_call: TimeOnCall | Duration
    seed: int = DEFAULT_SEED
    #: Replaces every policy's ``dispatch.max_queue_wait_minutes`` when given.
    max_wait_minutes: float | None = None
    roster: Roster | None = None

    def __post_init__(self) -> None:
        if self.max_wait_minutes is not None and not (
            math.isfinite(self.max_wait_minutes) and self.max_wait_minutes >= 0
        ):
            raise ValueError(
                f"the maximum wait must be 0 or more minutes, not {self.max_wait_minutes}"
            )

    def max_wait(self, policy: Policy) -> float:
        """The longest a call of ``policy`` waits, in minutes: the maximum wait, never past
        the stale-call limit (no team goes to a stale call)."""
        wanted = (
            policy.dispatch.max_queue_wait_minutes
            if self.max_wait_minutes is None
            else self.max_wait_minutes
        )
        return min(wanted, policy.dispatch.stale_call_minutes)

    def describe_time(self) -> str:
        if isinstance(self.time_on_call, TimeOnCall):
            return self.time_on_call.describe()
        return "time on call given per assignment"


@dataclass
class CapacityFigures:
    """One team pilot under one policy with capacity modelled."""

    pilot: str
    #: Teams of the pilot's kind (every area of a roster).
    teams: int
    #: Calls the policy routes to the pilot's teams: ``reached + fallbacks``.
    team_calls: int
    pool: PoolFigures
    #: The longest wait a call had, minutes (see :meth:`Capacity.max_wait`).
    max_wait_minutes: float

    @property
    def reached(self) -> int:
        return self.pool.reached

    @property
    def fallbacks(self) -> int:
        return self.pool.fallbacks_total

    def to_dict(self) -> dict[str, Any]:
        pool = self.pool
        utilisation = pool.utilisation()
        return {
            "teams": self.teams,
            "team_calls": self.team_calls,
            "reached": pool.reached,
            "fallbacks": self.fallbacks,
            # The dispatch stage's release reasons; every one is a no_team_free miss.
            "fallbacks_by_reason": {r: pool.fallbacks[r] for r in RELEASE_REASONS},
            "max_wait_minutes": self.max_wait_minutes,
            "wait_minutes": {
                "p50": _round(pool.wait_p50, 2),
                "p90": _round(pool.wait_p90, 2),
                "mean": _round(pool.wait_mean, 2),
                "waited": pool.waited,
            },
            "team_hours": {
                "on_calls": _round(sum(pool.busy or ()) / 60, 1),
                "on_shift": _round(sum(pool.on_shift or ()) / 60, 1),
                "past_shift_end": _round(sum(pool.overrun or ()) / 60, 1),
            },
            "utilisation_by_hour_of_week": (
                None if utilisation is None else [_round(u, 3) for u in utilisation]
            ),
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
    #: Team pilot -> its figures with capacity modelled; empty when it is not.
    capacity: dict[str, CapacityFigures] = field(default_factory=dict)

    @property
    def response_team_hours(self) -> float:
        return sum(h.response_hours for h in self.hours.values())

    @property
    def staffed_team_hours(self) -> float:
        """Shift hours of the in-person teams (CRT and CoR) the windows imply."""
        return sum(self.hours[p].staffed_team_hours for p in TEAM_ROUTES if p in self.hours)

    def to_dict(self) -> dict[str, Any]:
        out = {
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
        if self.capacity:
            out["capacity"] = {name: c.to_dict() for name, c in self.capacity.items()}
        return out


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
    #: How teams were staffed, when capacity is modelled.
    capacity: Capacity | None = None

    def to_dict(self) -> dict[str, Any]:
        assumptions: dict[str, Any] = {
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
        }
        capacity = self.capacity
        if capacity is not None:
            assumptions["note"] = (
                "Capacity is modelled: CRT and CoR reached = a team was assigned in a "
                "simulation of the teams on shift; a call that found no free team waited "
                "up to the maximum wait, then fell back to police (missed, no_team_free)."
            )
            assumptions["capacity"] = {
                "teams_from": capacity.roster.version_id if capacity.roster else "teams",
                "time_on_call": (
                    capacity.time_on_call.to_dict()
                    if isinstance(capacity.time_on_call, TimeOnCall)
                    else capacity.describe_time()
                ),
                "max_wait_minutes": capacity.max_wait_minutes,
                "seed": capacity.seed,
            }
        return {
            "calls": self.calls,
            "first_call": self.first_call.isoformat() if self.first_call else None,
            "last_call": self.last_call.isoformat() if self.last_call else None,
            "needs_in_person_known": self.in_person_known,
            "assumptions": assumptions,
            "policies": [p.to_dict() for p in self.policies],
        }


# --- deciding every call --------------------------------------------------------------

#: The call fields a decision depends on, besides its local weekday and minute.
_DECIDING = attrgetter(*DECISION_FIELDS)


@dataclass
class Demand:
    """One policy's decisions over the calls, before capacity: what it routes where."""

    label: str
    policy: Policy
    figures: PolicyFigures
    #: Team pilot -> the calls routed to its teams, in time order.
    team_calls: dict[str, list[TeamCall]]
    #: Responding pilot -> eligible calls per hour of the week (Monday 00-01 first).
    eligible_by_hour: dict[str, list[int]]


@dataclass
class Decided:
    """Every policy's :class:`Demand` over the same calls."""

    calls: int
    first_call: datetime | None
    last_call: datetime | None
    demands: list[Demand]


def decide_all(
    calls: Iterable[CallReceived],
    policies: Sequence[tuple[str, Policy]],
    *,
    in_person_known: bool = True,
    progress: Progress | None = None,
    total: int | None = None,
) -> Decided:
    """Decide every call under every ``(label, policy)`` in one pass, in any order.

    Only the figures and the team calls are kept, never the calls, so ``calls`` may be a
    generator of any length. ``total`` (calls) sizes the progress reports.

    A decision depends on the call's :data:`DECISION_FIELDS` and, of its time, only on
    which pilots are open then (:meth:`~heart.policy.model.PilotRule.open_at`), so each
    policy decides each such combination once and the calls alike share it.
    """
    zones: list[ZoneInfo] = []
    for _, policy in policies:
        if policy.zone not in zones:
            zones.append(policy.zone)
    which = [zones.index(policy.zone) for _, policy in policies]
    opens = [_open_by_minute_of_week(policy) for _, policy in policies]
    # Per zone: (fields, local minute of the week) -> calls.
    counts: list[dict[tuple[Any, int], int]] = [{} for _ in zones]
    memos: list[dict[tuple[Any, int], tuple[str, TriageDecision]]] = [{} for _ in policies]
    team_calls: list[dict[str, list[TeamCall]]] = [
        {pilot: [] for pilot in TEAM_ROUTES} for _ in policies
    ]
    minutes = [0] * len(zones)
    first: datetime | None = None
    last: datetime | None = None
    seen = 0
    for call in calls:
        moment = call.occurred_at
        if first is None or moment < first:
            first = moment
        if last is None or moment > last:
            last = moment
        fields = _DECIDING(call)
        for z, zone in enumerate(zones):
            local = moment.astimezone(zone)
            minute = local.weekday() * 1440 + local.hour * 60 + local.minute
            minutes[z] = minute
            tally = counts[z]
            key = (fields, minute)
            tally[key] = tally.get(key, 0) + 1
        for p, (_, policy) in enumerate(policies):
            key = (fields, opens[p][minutes[which[p]]])
            memo = memos[p]
            known = memo.get(key)
            if known is None:
                # A fixed event id: the decision is thrown away, and generating a random
                # one per call is a measurable share of the time.
                decision = decide(call, policy, event_id="whatif")
                known = memo[key] = (decision.route, decision)
            route = known[0]
            if route == "crt" or route == "cor":
                team_calls[p][route].append(
                    TeamCall(
                        to_us(moment),
                        call.call_id,
                        call.priority,
                        call.beat,
                        call.district,
                        call.language,
                    )
                )
        seen += 1
        if progress is not None and seen % PROGRESS_EVERY == 0:
            progress(seen * len(policies), (total or seen) * len(policies))
    if progress is not None:
        progress(seen * len(policies), seen * len(policies))

    demands = []
    for p, (label, policy) in enumerate(policies):
        figures = PolicyFigures(
            label, policy.version_id, policy.title, calls=seen, timezone=policy.timezone
        )
        figures.pilots = {pilot: PilotFigures(pilot) for pilot in RESPONDERS}
        figures.pilots["ccd"].measured = in_person_known
        by_hour = {pilot: [0] * HOURS_OF_WEEK for pilot in RESPONDERS}
        memo, open_at = memos[p], opens[p]
        for (fields, minute), count in counts[which[p]].items():
            decision = memo[(fields, open_at[minute])][1]
            _tally(figures, decision, count)
            hour = minute // 60
            for entry in decision.eligibility:
                if entry.eligible or set(entry.reasons) <= COVERAGE_REASONS:
                    by_hour[entry.pilot][hour] += count
        for pilot_calls in team_calls[p].values():
            pilot_calls.sort(key=lambda c: (c.at, c.call_id))
        demands.append(Demand(label, policy, figures, team_calls[p], by_hour))
    return Decided(seen, first, last, demands)


def _open_by_minute_of_week(policy: Policy) -> list[int]:
    """Per local minute of the week (Monday 00:00 first), which responding pilots are open,
    as a bit per pilot rule: what a decision reads of the time."""
    out = [0] * (7 * 1440)
    for bit, rule in enumerate(policy.rules):
        for day, windows in enumerate(rule.week):
            for start, end in windows:
                for minute in range(day * 1440 + start, day * 1440 + end):
                    out[minute] |= 1 << bit
    return out


def compare(
    calls: Iterable[CallReceived],
    policies: Sequence[tuple[str, Policy]],
    effort: Effort | None = None,
    *,
    in_person_known: bool = True,
    progress: Progress | None = None,
    capacity: Capacity | None = None,
) -> WhatIf:
    """Decide every call under every ``(label, policy)`` and tally the figures.

    ``in_person_known`` says whether the calls' ``needs_in_person`` is a fact (live calls,
    or an export whose mapping reads it from a disposition) or a default: only with facts
    can CCD's reached be told from the calls that needed someone in person. With
    ``capacity``, CRT's and CoR's reached are the calls a simulated team took (see
    :class:`Capacity`).
    """
    effort = effort or Effort()
    listed = calls if isinstance(calls, Sequence) else list(calls)
    decided = decide_all(
        listed, policies, in_person_known=in_person_known, progress=progress, total=len(listed)
    )
    results = []
    for demand in decided.demands:
        figures = demand.figures
        policy = demand.policy
        starts = {
            pilot: [_moment(c.at) for c in pilot_calls]
            for pilot, pilot_calls in demand.team_calls.items()
        }
        days = period_days(policy, decided.first_call, decided.last_call)
        figures.hours = _hours(policy, days, starts, effort)
        if decided.first_call is not None and decided.last_call is not None:
            figures.months = months_covered(decided.first_call, decided.last_call, policy.zone)
        if capacity is not None and days:
            figures.capacity = staff(demand, capacity, effort, days)
            for pilot, modelled in figures.capacity.items():
                pilot_figures = figures.pilots[pilot]
                # Every team call is a reached call of the uncapacitated what-if; with
                # capacity it is reached or missed, so eligible still adds up.
                assert modelled.team_calls == pilot_figures.reached
                pilot_figures.reached = modelled.reached
                pilot_figures.missed["no_team_free"] += modelled.fallbacks
        results.append(figures)
    return WhatIf(
        calls=decided.calls,
        first_call=decided.first_call,
        last_call=decided.last_call,
        effort=effort,
        policies=results,
        in_person_known=in_person_known,
        capacity=capacity,
    )


def _moment(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


_EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))


def _tally(figures: PolicyFigures, decision: TriageDecision, count: int = 1) -> None:
    route = decision.route
    figures.routes[route] += count
    if "cn" in decision.pilots:
        figures.followups += count
    for entry in decision.eligibility:
        pilot = figures.pilots[entry.pilot]
        pilot.matched += count
        if entry.eligible:
            pilot.eligible += count
            if route == entry.pilot:
                pilot.reached += count
            else:
                pilot.other[route] += count
        elif set(entry.reasons) <= COVERAGE_REASONS:
            pilot.eligible += count  # and missed, tallied below with the triage stage's rule
        else:
            pilot.kept_off += count
    for pilot, reason in missed(decision):
        figures.pilots[pilot].missed[reason] += count


# --- capacity ---------------------------------------------------------------------------


def staff(
    demand: Demand, capacity: Capacity, effort: Effort, days: Sequence[date]
) -> dict[str, CapacityFigures]:
    """Run each team pilot's calls against its teams (see :class:`Capacity`)."""
    policy = demand.policy
    zone = policy.zone
    grid = HourGrid.for_days(zone, days[0], days[-1])
    # Shifts are laid out past the last day: a call near the end may wait into the next.
    first_day, last_day = days[0] - timedelta(days=1), days[-1] + timedelta(days=2)
    span = (first_day, last_day)
    max_wait = capacity.max_wait(policy)
    out = {}
    for pilot in TEAM_ROUTES:
        calls = demand.team_calls[pilot]
        durations = _durations(capacity, calls, pilot)
        if capacity.roster is None:
            count = effort.teams_of(pilot)
            spec = getattr(policy.pilots, pilot)
            week = next(rule.week for rule in policy.rules if rule.pilot == pilot)
            shift = intervals(week, zone, first_day, last_day) if spec.enabled else []
            pool = simulate_identical_teams(
                calls,
                pilot,
                count,
                shift,
                max_wait_minutes=max_wait,
                stale_call_minutes=policy.dispatch.stale_call_minutes,
                durations=durations,
                grid=grid,
            )
        else:
            count = sum(1 for team in capacity.roster.teams if team.kind == pilot)
            pool = _roster_pools(
                capacity.roster, pilot, calls, durations, policy, max_wait, grid, span
            )
        out[pilot] = CapacityFigures(pilot, count, len(calls), pool, max_wait)
    return out


def _durations(
    capacity: Capacity, calls: Sequence[TeamCall], pilot: str
) -> Sequence[int] | Duration:
    model = capacity.time_on_call
    if isinstance(model, TimeOnCall):
        # Keyed by the pilot, not the policy: a call keeps its time under every policy.
        return model.durations([c.call_id for c in calls], capacity.seed, pilot)
    return model


def _roster_pools(
    roster: Roster,
    kind: str,
    calls: Sequence[TeamCall],
    durations: Sequence[int] | Duration,
    policy: Policy,
    max_wait: float,
    grid: HourGrid,
    span: tuple[date, date],
) -> PoolFigures:
    """One pool per service area of the roster, merged into one set of figures."""
    by_area: dict[str | None, list[tuple[TeamCall, int]]] = {}
    for index, call in enumerate(calls):
        area = roster.area_for(call.beat, call.district)
        if area is not None and call.district is None:
            call = replace(call, district=roster.district_of(area, call.beat))
        by_area.setdefault(area, []).append((call, index))
    merged = PoolFigures()
    for area in sorted(by_area, key=lambda a: (a is None, a or "")):
        pairs = by_area[area]
        teams = [t for t in roster.teams_in(area) if t.kind == kind] if area else []
        area_calls = [c for c, _ in pairs]
        area_durations = durations if callable(durations) else [durations[i] for _, i in pairs]
        pool = simulate(
            area_calls,
            teams,
            [intervals(t.week, policy.zone, *span) for t in teams],
            kind=kind,
            max_wait=round(max_wait * MINUTE_US),
            stale_after=policy.dispatch.stale_call_minutes * MINUTE_US,
            durations=area_durations,
            choose="preference",
            home_district=roster.home_district,
            grid=grid,
            keep_waits=True,
        )
        _merge(merged, pool)
    summarise_waits(merged, merged.nonzero_waits or [])
    return merged


def _merge(into: PoolFigures, pool: PoolFigures) -> None:
    into.calls += pool.calls
    into.reached += pool.reached
    into.fallbacks.update(pool.fallbacks)
    into.nonzero_waits = (into.nonzero_waits or []) + (pool.nonzero_waits or [])
    for name in ("busy", "on_shift", "overrun"):
        mine, theirs = getattr(into, name), getattr(pool, name)
        if theirs is not None:
            summed = theirs if mine is None else [a + b for a, b in zip(mine, theirs, strict=True)]
            setattr(into, name, summed)


# --- team-hours ---------------------------------------------------------------------------


def _hours(
    policy: Policy,
    days: Sequence[date],
    starts: Mapping[str, Sequence[datetime]],
    effort: Effort,
) -> dict[str, HoursFigures]:
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


def period_days(policy: Policy, first: datetime | None, last: datetime | None) -> list[date]:
    """The calendar days from the first call to the last, in the policy's zone."""
    if first is None or last is None:
        return []
    start = first.astimezone(policy.zone).date()
    end = last.astimezone(policy.zone).date()
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


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
