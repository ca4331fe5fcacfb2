"""The dispatch queue's rule, in one place for the dispatch stage and the capacity what-if.

A call that finds no free team waits, ordered by priority then age, up to the policy's
maximum wait, then falls back to police; a free team goes to the first waiting call it can
take, chosen by the call's place and language. :mod:`heart.agents.dispatch.area` applies
the rule to its stored records, one command at a time; :mod:`heart.agents.capacity.simulate`
applies it to a CAD export's calls in a discrete-event simulation. Both call these
functions, so the two cannot drift apart.

The functions take plain values, not either caller's records. Times are whatever the
caller measures in, as long as they subtract and compare: aware datetimes and timedeltas in
the stage, integer microseconds in the simulation.

- :func:`queue_key`: the dispatch order of waiting calls.
- :func:`is_stale`: a call older than the policy's ``stale_call_minutes`` gets no team.
- :func:`release_reason`: whether a waiting call goes to police now, and why.
- :func:`last_assignable`: the last moment a waiting call can still take a team.
- :func:`pick_team`: which free team takes a call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, Protocol, TypeVar

from heart.policy.model import normalize

#: A moment: an aware datetime in the stage, integer microseconds in the simulation.
When = TypeVar("When")
#: A length of time in the same units (a timedelta, or microseconds).
Span = Any

#: Why a waiting call was released to police (``dispatch.fallback``). The monthly report
#: counts all three as the glossary's ``no_team_free`` miss.
ReleaseReason = Literal["no_team_of_kind", "no_team_on_shift", "no_team_free"]
RELEASE_REASONS: tuple[ReleaseReason, ...] = ("no_team_free", "no_team_on_shift", "no_team_of_kind")


def queue_key(priority: int | None, decided_at: When, call_id: str) -> tuple[bool, int, When, str]:
    """The dispatch order of a waiting call, smallest first: priority (lower number first,
    none last), then when it was decided (oldest first), then call id (a fixed order for
    calls decided at the same moment)."""
    return (priority is None, priority or 0, decided_at, call_id)


def is_stale(now: When, needed_since: When, stale_after: Span) -> bool:
    """Whether a call asked for at ``needed_since`` is past the policy's
    ``stale_call_minutes`` (``stale_after``) at ``now``: the CAD's standard response has
    taken over, so no team may go, even a free one."""
    return bool(now - needed_since > stale_after)  # type: ignore[operator]


def release_reason(
    *,
    kind_on_roster: bool,
    kind_on_shift: bool,
    waited: Span,
    max_wait: Span,
    stale: bool,
) -> ReleaseReason | None:
    """Why a waiting call is released to police now, or None while it may still wait.

    Checked in this order: the roster has no team of the call's kind in its area
    (``no_team_of_kind``); none is on shift now, so waiting cannot help
    (``no_team_on_shift``); it has ``waited`` the policy's ``max_queue_wait_minutes``
    (``max_wait``) or longer since it was decided, or it is stale (``no_team_free``: it
    waited for a team). A caller drains the queue before it releases, so a team freed at
    the very moment the maximum wait runs out still takes the call.
    """
    if not kind_on_roster:
        return "no_team_of_kind"
    if not kind_on_shift:
        return "no_team_on_shift"
    if waited >= max_wait or stale:
        return "no_team_free"
    return None


def last_assignable(
    decided_at: When, needed_since: When, max_wait: Span, stale_after: Span
) -> When:
    """The last moment a waiting call can still take a team, given that teams stay on shift.

    The queue drains before releases, so a team freed exactly ``max_wait`` after the
    decision takes the call (:func:`release_reason`); and a call is not stale until it is
    *more* than ``stale_after`` old (:func:`is_stale`). Any later, the call is released
    as ``no_team_free``.
    """
    return min(decided_at + max_wait, needed_since + stale_after)  # type: ignore[operator]


class Candidate(Protocol):
    """What :func:`pick_team` reads of a team (a roster :class:`~heart.agents.dispatch.
    roster.Team`, or a simulated one)."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def home_beat(self) -> str | None: ...

    def speaks(self, language: str) -> bool: ...


C = TypeVar("C", bound=Candidate)


def pick_team(
    teams: Iterable[C],
    *,
    kind: str,
    beat: str | None,
    district: str | None,
    language: str,
    free: Callable[[C], bool],
    home_district: Callable[[str], str | None],
    idle_since: Callable[[str], Any],
) -> str | None:
    """The id of the free team of ``kind`` that takes a call, or None when none is free.

    Preference, most important first: a team whose home beat is the call's ``beat``, then
    one whose home district (``home_district(team_id)``) is the call's ``district``, then
    any; within that a team that speaks the caller's ``language``; then the team idle
    longest (``idle_since(team_id)``, earliest first); then the team id. Beats and
    districts are compared as the policy compares CAD text (:func:`normalize`).
    ``free(team)`` says whether the team is available and on shift.
    """
    beat_key = normalize(beat) if beat else None
    district_key = normalize(district) if district else None

    def preference(team: C) -> tuple[int, int, Any, str]:
        if (
            beat_key is not None
            and team.home_beat is not None
            and normalize(team.home_beat) == beat_key
        ):
            tier = 0
        elif district_key is not None and normalize(home_district(team.id) or "") == district_key:
            tier = 1
        else:
            tier = 2
        return (tier, 0 if team.speaks(language) else 1, idle_since(team.id), team.id)

    candidates = [team for team in teams if team.kind == kind and free(team)]
    return min(candidates, key=preference).id if candidates else None
