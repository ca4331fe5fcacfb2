"""A discrete-event simulation of one pool of teams taking a CAD export's team calls.

One pool is the teams of one kind (CRT teams or CoR pairs) in one service area: calls of
one kind never take a team of the other, so each pool runs on its own. In, the calls the
policy routes to the pool's teams, in time order, and each team's shifts; out, what the
dispatch stage would have done with them: calls reached (a team assigned), calls released
to police and why, how long reached calls waited, and the teams' busy time by hour of the
week.

The rule is the dispatch stage's, through the same functions
(:mod:`heart.agents.dispatch.queue_rule`): a call that finds no free team waits, by
priority then age (:func:`~heart.agents.dispatch.queue_rule.queue_key`), and takes the first
team that frees up, until the policy's maximum wait or the stale-call limit runs out
(:func:`~heart.agents.dispatch.queue_rule.last_assignable`); then it falls back to police
(:func:`~heart.agents.dispatch.queue_rule.release_reason`). A team is free when it is
available and on shift. Which free team goes is
:func:`~heart.agents.dispatch.queue_rule.pick_team`'s choice; when the teams are identical
(``choose="any"``: no home beat, every language, one shift) the choice changes no figure,
so any free team goes and the search over team counts stays cheap.

Time is integer microseconds since the epoch. At one moment, in this order: shifts start
and end, teams that clear become available, new calls join the queue, the queue drains,
then calls are released. That is one dispatch command's order (apply, drain, release).

Where the stage and the simulation can differ. The simulation releases a call the moment
it can no longer take a team, and hands a waiting call to a team the moment its shift
starts. The stage does both at its next command: within a second on the wall clock (its
tick), but on event time (``heart replay``) only at the next team call or team report,
since a tick does not move event time. So in a replay:

- a call whose wait ran out shortly before the last shift of the day ended may be
  released as ``no_team_on_shift`` instead of ``no_team_free``, and one still waiting at
  the end of the shift as ``no_team_free`` once the next shift began: the same calls fall
  back, and all three reasons count as the same miss, "no team free";
- with shifts that start while calls wait (teams on staggered shifts), a waiting call may
  miss a team whose shift began before its wait ran out, if no command came in between;
- with ``stale_call_minutes`` longer than the maximum wait, a team that clears after a
  call's wait ran out but before the next command may still take it (the queue drains
  before releases). The shipped policies set both to 10 minutes.

On a replay with one team on the policy's hours, the same calls fall back and the same
team takes every other call (``tests/agents/capacity/test_replay_consistency.py``).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from heart.agents.capacity.shifts import HourGrid, Interval, new_bins
from heart.agents.capacity.timing import MINUTE_US
from heart.agents.dispatch.queue_rule import (
    Candidate,
    is_stale,
    last_assignable,
    pick_team,
    queue_key,
    release_reason,
)

_INF = float("inf")
# Shift changes and clearings at one moment, in the order they are applied.
_OFF, _ON, _FREE = 0, 1, 2
_PENDING, _QUEUED, _ASSIGNED, _RELEASED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class TeamCall:
    """A call the policy routes to a team, as dispatch would queue it."""

    #: When it was decided, microseconds since the epoch: the call's time.
    at: int
    call_id: str
    priority: int | None = None
    beat: str | None = None
    #: The call's district, else the roster's district of its beat.
    district: str | None = None
    language: str = "en"


@dataclass(frozen=True, slots=True)
class PoolTeam:
    """A team of a pool built from a team count: no home, every language, the pilot's
    hours as its shift."""

    id: str
    kind: str
    home_beat: str | None = None

    def speaks(self, language: str) -> bool:
        return True


#: What became of one call: ``(call id, "assigned" or the release reason, when, team id)``.
Outcome = tuple[str, str, int, str | None]

#: The time one assignment keeps its team busy, in microseconds:
#: ``(call, team id, assigned at)``. A plain sequence gives each call's time by position.
Duration = Callable[[TeamCall, str, int], int]


@dataclass
class PoolFigures:
    """What one pool did with its calls: ``calls = reached + sum(fallbacks)``."""

    calls: int = 0
    reached: int = 0
    #: Release reason (:data:`~heart.agents.dispatch.queue_rule.RELEASE_REASONS`) -> calls.
    fallbacks: Counter[str] = field(default_factory=Counter)
    #: Waits of reached calls, decision to assignment, in minutes.
    wait_p50: float | None = None
    wait_p90: float | None = None
    wait_mean: float | None = None
    #: Reached calls that waited at all, and those that waited at most t (see waited_within).
    waited: int = 0
    #: Per hour of the week, team-minutes: busy on calls; on shift; busy past a shift's end.
    busy: list[float] | None = None
    on_shift: list[float] | None = None
    overrun: list[float] | None = None
    #: Minutes-within -> reached calls that waited no longer (see ``wait_marks``).
    within: dict[float, int] = field(default_factory=dict)
    #: The non-zero waits in microseconds, sorted, when asked for (``keep_waits``).
    nonzero_waits: list[int] | None = None

    @property
    def fallbacks_total(self) -> int:
        return sum(self.fallbacks.values())

    def utilisation(self) -> list[float | None] | None:
        """Per hour of the week, the share of the team-minutes on shift spent on calls:
        (busy - busy past a shift's end) / on shift; None for an hour no team is on shift.
        Time a team spends finishing a call after its shift ended is not in it (see
        :attr:`overrun`)."""
        if self.busy is None or self.on_shift is None or self.overrun is None:
            return None
        out: list[float | None] = []
        for busy, shift, over in zip(self.busy, self.on_shift, self.overrun, strict=True):
            out.append(min(1.0, max(0.0, busy - over) / shift) if shift > 0 else None)
        return out


def simulate(
    calls: Sequence[TeamCall],
    teams: Sequence[Candidate],
    shifts: Sequence[Sequence[Interval]],
    *,
    kind: str,
    max_wait: int,
    stale_after: int,
    durations: Sequence[int] | Duration,
    choose: Literal["any", "preference"] = "preference",
    home_district: Callable[[str], str | None] = lambda team_id: None,
    grid: HourGrid | None = None,
    wait_marks: Sequence[float] = (),
    keep_waits: bool = False,
    log: list[Outcome] | None = None,
) -> PoolFigures:
    """Run one pool (see the module docstring).

    ``calls`` are in time order; ``shifts[j]`` are team ``j``'s on-shift intervals, sorted
    and merged; ``max_wait`` and ``stale_after`` are the policy's
    ``max_queue_wait_minutes`` and ``stale_call_minutes`` in microseconds. ``grid`` asks
    for busy and on-shift team-minutes by hour of the week. ``wait_marks`` (minutes) asks
    how many reached calls waited no longer than each; ``keep_waits`` keeps the waits
    themselves (figures of several pools merge with :func:`summarise_waits`). ``log``
    receives each call's :data:`Outcome` as it happens.
    """
    n_teams = len(teams)
    index_of = {team.id: j for j, team in enumerate(teams)}
    on = [False] * n_teams
    busy = [False] * n_teams
    since = [0] * n_teams
    overrun_from: list[int | None] = [None] * n_teams
    is_free = [False] * n_teams
    # choose="any": the free teams, in no particular order. A team that stops being free
    # stays in it until popped (is_free tells), so that the end of a shift is cheap for
    # thousands of teams.
    free_stack: list[int] = []
    free_count = 0
    on_count = 0

    figures = PoolFigures(calls=len(calls))
    busy_bins = on_bins = over_bins = None
    if grid is not None:
        busy_bins, on_bins, over_bins = new_bins(), new_bins(), new_bins()
        # Teams of a pool built from a count share one list of shifts: lay it out once.
        shared: dict[int, tuple[Sequence[Interval], int]] = {}
        for spans in shifts:
            first, count = shared.get(id(spans), (spans, 0))
            shared[id(spans)] = (first, count + 1)
        for spans, count in shared.values():
            one = new_bins()
            for start, end in spans:
                grid.add(one, start, end)
            for hour, minutes in enumerate(one):
                on_bins[hour] += minutes * count

    events: list[tuple[int, int, int]] = []  # (time, order, team): shift changes, clearings
    for j, spans in enumerate(shifts):
        for start, end in spans:
            events.append((start, _ON, j))
            events.append((end, _OFF, j))
    heapq.heapify(events)
    expiries: list[tuple[int, int]] = []  # (first moment past last_assignable, call)
    queue: list[tuple[tuple[bool, int, int, str], int]] = []
    status = [_PENDING] * len(calls)
    waits: list[int] = []  # non-zero waits of reached calls
    fixed = durations if not callable(durations) else None
    by_call = durations if callable(durations) else None
    at = [call.at for call in calls]
    n_calls = len(calls)
    marks_us = [round(m * 60_000_000) for m in wait_marks]
    within = [0] * len(marks_us)

    def release(k: int, now: int) -> None:
        call_at = at[k]
        reason = release_reason(
            kind_on_roster=n_teams > 0,
            kind_on_shift=on_count > 0,
            waited=now - call_at,
            max_wait=max_wait,
            stale=is_stale(now, call_at, stale_after),
        )
        if reason is None:  # pragma: no cover - a release is only asked for when due
            raise AssertionError(f"call {calls[k].call_id} released before it is due")
        status[k] = _RELEASED
        figures.fallbacks[reason] += 1
        if log is not None:
            log.append((calls[k].call_id, reason, now, None))

    def take(team: Candidate) -> bool:
        return is_free[index_of[team.id]]

    def idle(team_id: str) -> int:
        return since[index_of[team_id]]

    def assign(k: int, now: int) -> None:
        nonlocal free_count
        call = calls[k]
        if choose == "any":
            j = free_stack.pop()
            while not is_free[j]:
                j = free_stack.pop()
        else:
            team_id = pick_team(
                teams,
                kind=kind,
                beat=call.beat,
                district=call.district,
                language=call.language,
                free=take,
                home_district=home_district,
                idle_since=idle,
            )
            assert team_id is not None
            j = index_of[team_id]
        is_free[j] = False
        free_count -= 1
        busy[j] = True
        since[j] = now
        length = fixed[k] if fixed is not None else by_call(call, teams[j].id, now)  # type: ignore[misc]
        heapq.heappush(events, (now + length, _FREE, j))
        status[k] = _ASSIGNED
        figures.reached += 1
        if log is not None:
            log.append((call.call_id, "assigned", now, teams[j].id))
        wait = now - at[k]
        if wait:
            waits.append(wait)
        for m, mark in enumerate(marks_us):
            if wait <= mark:
                within[m] += 1
        if busy_bins is not None:
            grid.add(busy_bins, now, now + length)  # type: ignore[union-attr]

    def make_free(j: int) -> None:
        nonlocal free_count
        is_free[j] = True
        free_count += 1
        if choose == "any":
            free_stack.append(j)

    def make_unfree(j: int) -> None:
        nonlocal free_count
        is_free[j] = False
        free_count -= 1

    # The common moments, a call that finds a free team and an empty queue, and a team
    # clearing with nothing waiting, take a short path when nothing else is recorded per
    # call (identical teams, times given per call, no hourly figures, no log). They do what
    # the full moment below would do with them; their calls waited 0, within every mark.
    fast = choose == "any" and fixed is not None and grid is None and log is None
    heappush, heappop = heapq.heappush, heapq.heappop
    fast_reached = 0
    released: Counter[str] = Counter()
    i = 0
    while True:
        t_event = events[0][0] if events else _INF
        t_call = at[i] if i < n_calls else _INF
        t_expiry = expiries[0][0] if expiries else _INF
        if fast and not queue:
            if t_call < t_event and t_call < t_expiry:
                if free_count:
                    j = free_stack.pop()
                    while not is_free[j]:
                        j = free_stack.pop()
                    is_free[j] = False
                    free_count -= 1
                    busy[j] = True
                    since[j] = t_call
                    heappush(events, (t_call + fixed[i], _FREE, j))  # type: ignore[index]
                    status[i] = _ASSIGNED
                    fast_reached += 1
                    i += 1
                    continue
                reason = release_reason(
                    kind_on_roster=n_teams > 0,
                    kind_on_shift=on_count > 0,
                    waited=0,
                    max_wait=max_wait,
                    stale=is_stale(t_call, t_call, stale_after),
                )
                if reason is not None:
                    status[i] = _RELEASED
                    released[reason] += 1
                    i += 1
                    continue
            if t_event < t_call and t_event < t_expiry and events[0][1] == _FREE:
                _, _, j = heappop(events)
                busy[j] = False
                since[j] = t_event
                overrun_from[j] = None
                if on[j]:
                    is_free[j] = True
                    free_count += 1
                    free_stack.append(j)
                continue
        now = min(t_event, t_call, t_expiry)
        if now == _INF:
            break
        now = int(now)
        shift_ended = False
        # Shifts and clearings at this moment.
        while events and events[0][0] == now:
            _, order, j = heappop(events)
            if order == _FREE:
                busy[j] = False
                since[j] = now
                if overrun_from[j] is not None:
                    if over_bins is not None:
                        grid.add(over_bins, overrun_from[j], now)  # type: ignore[union-attr,arg-type]
                    overrun_from[j] = None
                if on[j]:
                    make_free(j)
            elif order == _ON:
                on[j] = True
                on_count += 1
                if busy[j]:
                    if overrun_from[j] is not None and over_bins is not None:
                        grid.add(over_bins, overrun_from[j], now)  # type: ignore[union-attr,arg-type]
                    overrun_from[j] = None
                else:
                    make_free(j)
            else:
                on[j] = False
                on_count -= 1
                if is_free[j]:
                    make_unfree(j)
                if busy[j]:
                    overrun_from[j] = now
                shift_ended = True
        # New calls join the queue; the first takes a free team at once when none waits.
        first_new = i
        while i < n_calls and at[i] == now:
            k = i
            i += 1
            if free_count and not queue:
                assign(k, now)
                continue
            call = calls[k]
            status[k] = _QUEUED
            heapq.heappush(queue, (queue_key(call.priority, at[k], call.call_id), k))
        # The queue drains in dispatch order.
        while free_count and queue:
            _, k = heapq.heappop(queue)
            if status[k] != _QUEUED:
                continue
            if last_assignable(at[k], at[k], max_wait, stale_after) < now:
                release(k, now)
                continue
            assign(k, now)
        # Releases: calls that cannot wait at all, every call when no team is on shift,
        # calls whose wait ran out.
        for k in range(first_new, i):
            if status[k] != _QUEUED:
                continue
            if release_reason(
                kind_on_roster=n_teams > 0,
                kind_on_shift=on_count > 0,
                waited=0,
                max_wait=max_wait,
                stale=False,
            ):
                release(k, now)
            else:
                heapq.heappush(
                    expiries, (last_assignable(at[k], at[k], max_wait, stale_after) + 1, k)
                )
        if shift_ended and on_count == 0 and queue:
            for _, k in queue:
                if status[k] == _QUEUED:
                    release(k, now)
            queue.clear()
        while expiries and expiries[0][0] == now:
            _, k = heapq.heappop(expiries)
            if status[k] == _QUEUED:
                release(k, now)
        # Released calls leave the queue lazily; drop them from its head so that a queue
        # holding none reads as empty.
        while queue and status[queue[0][1]] != _QUEUED:
            heapq.heappop(queue)

    figures.reached += fast_reached
    figures.fallbacks.update(released)
    within = [count + fast_reached for count in within]
    figures.within = {mark: count for mark, count in zip(wait_marks, within, strict=True)}
    summarise_waits(figures, waits)
    if keep_waits:
        figures.nonzero_waits = waits
    if grid is not None:
        figures.busy, figures.on_shift, figures.overrun = busy_bins, on_bins, over_bins
    return figures


def summarise_waits(figures: PoolFigures, waits: list[int]) -> None:
    """Set the wait figures of ``figures`` from the non-zero waits of its reached calls
    (microseconds; sorted in place)."""
    reached = figures.reached
    figures.waited = len(waits)
    figures.wait_p50 = figures.wait_p90 = figures.wait_mean = None
    if not reached:
        return
    waits.sort()
    zeros = reached - len(waits)
    figures.wait_p50 = _percentile(waits, zeros, 0.5)
    figures.wait_p90 = _percentile(waits, zeros, 0.9)
    figures.wait_mean = sum(waits) / reached / 60_000_000


def _percentile(nonzero: Sequence[int], zeros: int, q: float) -> float:
    """The q-quantile of ``zeros`` zero waits and the sorted ``nonzero`` ones, in minutes,
    interpolated linearly between order statistics."""
    total = zeros + len(nonzero)
    pos = q * (total - 1)
    low = int(pos)
    high = min(low + 1, total - 1)

    def value(index: int) -> int:
        return 0 if index < zeros else nonzero[index - zeros]

    exact = value(low) + (value(high) - value(low)) * (pos - low)
    return exact / 60_000_000


def simulate_identical_teams(
    calls: Sequence[TeamCall],
    pilot: str,
    count: int,
    shift: Sequence[Interval],
    *,
    max_wait_minutes: float,
    stale_call_minutes: float,
    durations: Sequence[int] | Duration,
    grid: HourGrid | None = None,
) -> PoolFigures:
    """``count`` interchangeable teams of ``pilot``, all on ``shift``: the pool the what-if's
    ``--teams`` and the staffing search try, with the policy's waits in minutes."""
    return simulate(
        calls,
        [PoolTeam(f"{pilot}-{n + 1}", pilot) for n in range(count)],
        [shift] * count,
        kind=pilot,
        max_wait=round(max_wait_minutes * MINUTE_US),
        stale_after=round(stale_call_minutes * MINUTE_US),
        durations=durations,
        choose="any",
        grid=grid,
    )
