"""The dispatch queue's rule (:mod:`heart.agents.dispatch.queue_rule`) as tables: queue
order, the release test, the stale test, the last moment a team may still take a call,
and which free team goes. The dispatch stage and the capacity simulation both call these
functions; every row is one case of the rule as the stage's docstring states it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from heart.agents.dispatch.queue_rule import (
    is_stale,
    last_assignable,
    pick_team,
    queue_key,
    release_reason,
)
from heart.agents.dispatch.roster import Roster, parse_roster

T0 = datetime(2024, 7, 15, 14, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


# --- queue order --------------------------------------------------------------------------


def test_queue_order_is_priority_then_age_then_call_id() -> None:
    calls = [
        # (call id, priority, decided at)
        ("none-old", None, T0),
        ("p3-new", 3, T0 + 5 * MIN),
        ("p1-newest", 1, T0 + 9 * MIN),
        ("p3-old", 3, T0 + MIN),
        ("p1-b", 1, T0 + 2 * MIN),
        ("p1-a", 1, T0 + 2 * MIN),
        ("none-new", None, T0 + 3 * MIN),
        ("p0", 0, T0 + 8 * MIN),
    ]
    ordered = sorted(calls, key=lambda c: queue_key(c[1], c[2], c[0]))
    assert [c[0] for c in ordered] == [
        "p0",  # priority 0 is a priority, the most urgent, not "none"
        "p1-a",  # same priority and age: call id
        "p1-b",
        "p1-newest",
        "p3-old",
        "p3-new",
        "none-old",  # no priority waits behind every priority, oldest first
        "none-new",
    ]


def test_queue_order_works_in_microseconds_too() -> None:
    assert queue_key(2, 1_000, "b") < queue_key(2, 2_000, "a") < queue_key(None, 0, "a")


# --- release ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_roster", "on_shift", "waited", "max_wait", "stale", "reason"),
    [
        (True, True, 0 * MIN, 10 * MIN, False, None),
        (True, True, 9 * MIN, 10 * MIN, False, None),
        # The maximum wait is reached at exactly max_wait, not after it.
        (True, True, 10 * MIN, 10 * MIN, False, "no_team_free"),
        (True, True, 11 * MIN, 10 * MIN, False, "no_team_free"),
        # A stale call waited for a team: released as no_team_free, however short its wait.
        (True, True, 2 * MIN, 10 * MIN, True, "no_team_free"),
        # No waiting allowed at all.
        (True, True, 0 * MIN, 0 * MIN, False, "no_team_free"),
        # Nobody on shift: waiting cannot help, whatever the wait.
        (True, False, 0 * MIN, 10 * MIN, False, "no_team_on_shift"),
        (True, False, 12 * MIN, 10 * MIN, True, "no_team_on_shift"),
        # No team of the kind at all comes first.
        (False, False, 0 * MIN, 10 * MIN, False, "no_team_of_kind"),
        (False, True, 12 * MIN, 10 * MIN, True, "no_team_of_kind"),
    ],
)
def test_release_reason(
    on_roster: bool,
    on_shift: bool,
    waited: timedelta,
    max_wait: timedelta,
    stale: bool,
    reason: str | None,
) -> None:
    got = release_reason(
        kind_on_roster=on_roster,
        kind_on_shift=on_shift,
        waited=waited,
        max_wait=max_wait,
        stale=stale,
    )
    assert got == reason
    # The same rule in the simulation's unit, integer microseconds.
    assert (
        release_reason(
            kind_on_roster=on_roster,
            kind_on_shift=on_shift,
            waited=waited // timedelta(microseconds=1),
            max_wait=max_wait // timedelta(microseconds=1),
            stale=stale,
        )
        == reason
    )


@pytest.mark.parametrize(
    ("age", "stale"),
    [(0 * MIN, False), (9 * MIN, False), (10 * MIN, False), (10 * MIN + MIN / 60, True)],
)
def test_a_call_is_stale_only_after_the_limit(age: timedelta, stale: bool) -> None:
    assert is_stale(T0 + age, T0, 10 * MIN) is stale


@pytest.mark.parametrize(
    ("max_wait", "stale_after", "decided_late", "last"),
    [
        (10, 10, 0, 10),  # the shipped policies: both ten minutes
        (5, 10, 0, 5),  # the wait runs out first
        (20, 10, 0, 10),  # a longer wait is cut short: no team goes to a stale call
        (10, 10, 3, 7),  # decided 3 min after the CAD event: stale 7 min after the decision
        (0, 10, 0, 0),  # no waiting
    ],
)
def test_last_assignable_agrees_with_the_release_and_stale_tests(
    max_wait: int, stale_after: int, decided_late: int, last: int
) -> None:
    needed_since = T0
    decided_at = T0 + decided_late * MIN
    wait, limit = max_wait * MIN, stale_after * MIN
    moment = last_assignable(decided_at, needed_since, wait, limit)
    assert moment == decided_at + last * MIN
    # At that moment a team still goes: the call is not stale, and a release, if due, comes
    # after the queue drained.
    assert not is_stale(moment, needed_since, limit)
    # A microsecond later it cannot take a team any more and is released, no_team_free.
    after = moment + timedelta(microseconds=1)
    assert (
        release_reason(
            kind_on_roster=True,
            kind_on_shift=True,
            waited=after - decided_at,
            max_wait=wait,
            stale=is_stale(after, needed_since, limit),
        )
        == "no_team_free"
    )
    # And before it, the call may wait on (unless no waiting is allowed at all).
    if last > 0:
        before = moment - timedelta(microseconds=1)
        assert (
            release_reason(
                kind_on_roster=True,
                kind_on_shift=True,
                waited=before - decided_at,
                max_wait=wait,
                stale=is_stale(before, needed_since, limit),
            )
            is None
        )


# --- which team ---------------------------------------------------------------------------


ROSTER = """
name = "rule"
version = "1"
[areas.city.districts]
D1 = ["11", "12"]
D2 = ["21"]
[[teams]]
id = "A"
kind = "crt"
area = "city"
roles = ["clinician", "peer_support", "emt"]
languages = ["en"]
home_beat = "11"
shift = [{ days = ["mon"], start = "00:00", end = "24:00" }]
[[teams]]
id = "B"
kind = "crt"
area = "city"
roles = ["clinician", "peer_support", "emt"]
languages = ["en", "es"]
home_beat = "12"
shift = [{ days = ["mon"], start = "00:00", end = "24:00" }]
[[teams]]
id = "C"
kind = "crt"
area = "city"
roles = ["clinician", "peer_support", "emt"]
languages = ["en", "es"]
home_district = "D2"
shift = [{ days = ["mon"], start = "00:00", end = "24:00" }]
[[teams]]
id = "P"
kind = "cor"
area = "city"
roles = ["clinician", "police_officer"]
languages = ["en", "es"]
home_beat = "11"
shift = [{ days = ["mon"], start = "00:00", end = "24:00" }]
"""


@pytest.fixture(scope="module")
def roster() -> Roster:
    import tomllib

    return parse_roster(tomllib.loads(ROSTER), source="rule.toml")


# Idle since: A longest, then C, then B.
IDLE = {"A": T0, "B": T0 + 2 * MIN, "C": T0 + MIN, "P": T0}


@pytest.mark.parametrize(
    ("kind", "beat", "district", "language", "free", "chosen"),
    [
        # Same beat first, even over a team idle longer.
        ("crt", "12", "D1", "en", "ABC", "B"),
        # Beats are compared as CAD text is: case and spaces do not matter.
        ("crt", " 12 ", None, "en", "ABC", "B"),
        # Then same district: A and B are both in D1; A is idle longer.
        ("crt", "99", "D1", "en", "ABC", "A"),
        # Within a tier, a team that speaks the caller's language (es-MX ~ es) wins.
        ("crt", "99", "D1", "es-MX", "ABC", "B"),
        # District D2 holds only C.
        ("crt", "21", "D2", "en", "ABC", "C"),
        # No beat or district: any team; the language first, then the longest idle.
        ("crt", None, None, "es", "ABC", "C"),
        ("crt", None, None, "en", "ABC", "A"),
        # A team that is not free never goes, whatever the tier.
        ("crt", "11", "D1", "en", "BC", "B"),
        ("crt", "11", "D1", "en", "", None),
        # Only the call's kind.
        ("cor", "12", "D1", "en", "ABCP", "P"),
        ("cor", "12", "D1", "en", "ABC", None),
    ],
)
def test_pick_team(
    roster: Roster,
    kind: str,
    beat: str | None,
    district: str | None,
    language: str,
    free: str,
    chosen: str | None,
) -> None:
    picked = pick_team(
        roster.teams_in("city"),
        kind=kind,
        beat=beat,
        district=district,
        language=language,
        free=lambda team: team.id in free,
        home_district=roster.home_district,
        idle_since=IDLE.__getitem__,
    )
    assert picked == chosen


def test_pick_team_breaks_a_full_tie_by_team_id(roster: Roster) -> None:
    same = dict.fromkeys("ABC", T0)
    picked = pick_team(
        reversed(roster.teams_in("city")),
        kind="crt",
        beat=None,
        district=None,
        language="en",
        free=lambda team: True,
        home_district=roster.home_district,
        idle_since=same.__getitem__,
    )
    assert picked == "A"
