"""Report figures for a small synthetic month, every one worked out by hand.

The month (``synthetic.july``), calls by name; "received" is local Durham time:

====  =========  ======================  ==================================================
call  route      category                what happens
====  =========  ======================  ==================================================
C1    ccd        Mental Health Crisis    resolved by phone
C9    ccd        Suicide Threat          follow-up (ccd contact) at risk, overdue 12 Jul
C2    crt        Welfare Check           team on scene after 600 s; follow-up (crt contact)
                                         unable to reach, then reached within 48 h
C3    crt        Trespass                team on scene after 300 s; police backup requested
C4    crt        Trespass                queued, then fallback no_team_free
C6    cor        Mental Health Crisis    ccd + cor eligible, crt excluded by weapon; CoR on
                                         scene after 900 s
C13   crt        Nuisance                cn_ineligible:pilot_disabled; fallback
                                         no_team_on_shift (counts as no_team_free)
C5    police     Trespass                crt outside_hours
C8    police     Suicide Threat          ccd outside_hours; crt outside_hours and
                                         outside_service_area (first reason counts)
C10   police     (NOISE, no category)    no pilot matches
C7    crt, then  Welfare Check           revision 2 after a weapon: police, crt excluded
      police
C12   ccd        Mental Health Crisis    31 Jul; follow-up scheduled 31 Jul, connected to
                                         care 1 Aug
D1    ccd        Mental Health Crisis    31 Jul 23:50
C11   crt        Welfare Check           31 Jul 23:55; assigned 1 Aug 00:02, on scene 00:09
D2    ccd        Mental Health Crisis    30 Jun 23:30 (1 Jul 03:30 UTC): June
Z9    -          -                       an outcome for a case never scheduled
====  =========  ======================  ==================================================
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from heart.agents.reporting.aggregate import AggregateState, apply, median, new_state, p90, report
from heart.cli.report import build_report_from_events
from heart.policy import load_policy
from heart.schemas.reports import FollowupFigures, MonthReport, ResponseTimes
from tests.agents.reporting.synthetic import decision, july, local, redelivered

POLICY = load_policy()


def fold(events: list[Any]) -> AggregateState:
    state = new_state(POLICY)
    for event in events:
        apply(state, event)
    return state


def figures(r: MonthReport) -> dict[str, Any]:
    """Everything but the version, which counts applied changes and so arrival order."""
    return r.model_dump(exclude={"version"})


@pytest.fixture(scope="module")
def state() -> AggregateState:
    return fold(july())


def test_month_wide_figures(state: AggregateState) -> None:
    r = report(state, "2024-07")
    assert r.month == "2024-07"
    assert r.timezone == "America/New_York"
    # C1 C9 C12 D1 | C2 C3 C4 C13 C11 | C6 | C5 C8 C10 C7 (its revision 2); not D2 (June).
    assert r.routes == {"ccd": 4, "crt": 5, "cor": 1, "police": 4}
    assert r.calls == 14
    # By phone: C1 C9 C12 D1; teams assigned in July: C2 C3 (crt), C6 (cor). C11's team
    # was assigned in August.
    assert (r.heart_handled, r.resolved_by_phone) == (7, 4)
    assert r.phone_share == pytest.approx(4 / 7)
    assert r.data_through == local(2024, 7, 31, 23, 55)  # C11 received
    assert r.policy_versions == ["durham@test"]


def test_calls_handled_per_pilot(state: AggregateState) -> None:
    r = report(state, "2024-07")
    handled = {p.pilot: p.calls_handled for p in r.pilots}
    # ccd: route ccd; crt, cor: teams assigned in July; cn: follow-ups scheduled (C2 C9 C12).
    assert handled == {"ccd": 4, "crt": 2, "cor": 1, "cn": 3}
    assert [p.name for p in r.pilots] == [
        "Crisis Call Diversion",
        "Community Response Teams",
        "Co-Response",
        "Care Navigation",
    ]


def test_eligible_and_missed_by_reason(state: AggregateState) -> None:
    r = report(state, "2024-07")
    ccd, crt, cor, cn = (r.pilot(p) for p in ("ccd", "crt", "cor", "cn"))
    # ccd eligible: C1 C6 C8 C9 D1 C12; missed C8 outside hours.
    assert (ccd.eligible, ccd.missed, ccd.reached) == (6, 1, 5)
    assert ccd.missed_by_reason == {"outside_hours": 1}
    # crt eligible: C2 C3 C4 C5 C8 C11 C13 (C6 and C7 excluded by a weapon: not misses);
    # missed C5 C8 outside hours, C4 and C13 (no team on shift) no team free.
    assert (crt.eligible, crt.missed, crt.reached) == (7, 4, 3)
    assert crt.missed_by_reason == {"outside_hours": 2, "no_team_free": 2}
    assert list(crt.missed_by_reason) == ["outside_hours", "no_team_free"], "report order"
    assert (cor.eligible, cor.missed, cor.reached) == (1, 0, 1)
    # cn: every decision that involves it (C1 C2 C3 C4 C9 D1 C11 C12) plus C13, missed
    # because Care Navigation was not running.
    assert (cn.eligible, cn.missed, cn.reached) == (9, 1, 8)
    assert cn.missed_by_reason == {"pilot_disabled": 1}


def test_response_times(state: AggregateState) -> None:
    r = report(state, "2024-07")
    # crt: 600 and 300 s (C11's 420 s is August's): median the mean of the two, p90 by
    # nearest rank the larger.
    assert r.pilot("crt").response_time == ResponseTimes(calls=2, median_s=450.0, p90_s=600.0)
    assert r.pilot("cor").response_time == ResponseTimes(calls=1, median_s=900.0, p90_s=900.0)
    assert r.pilot("ccd").response_time is None
    assert r.pilot("cn").response_time is None


def test_quantile_definitions() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert median(values) == 10.5
    assert p90(values) == 18.0  # ceil(0.9 * 20) = 18th value
    assert p90([5.0]) == 5.0
    assert median([3.0, 1.0, 2.0]) == 2.0


def test_followups(state: AggregateState) -> None:
    r = report(state, "2024-07")
    # Scheduled C2 C9 C12; C9 at risk and overdue; C2 reached within 48 h (its earlier
    # unable-to-reach does not close it); C12's outcome is August's; Z9 was never scheduled.
    expected = FollowupFigures(
        scheduled=3, at_risk=1, completed=1, within_48h=1, connected_to_care=0, overdue=1
    )
    assert r.followups == expected
    assert r.pilot("cn").followups == expected
    # Per contact pilot: C9 and C12 after phone calls, C2 after a team.
    assert r.pilot("ccd").followups == FollowupFigures(scheduled=2, at_risk=1, overdue=1)
    assert r.pilot("crt").followups == FollowupFigures(scheduled=1, completed=1, within_48h=1)
    assert r.pilot("cor").followups == FollowupFigures()


def test_top_call_types_and_backup(state: AggregateState) -> None:
    r = report(state, "2024-07")

    def top(pilot: str) -> list[tuple[str, int]]:
        return [(t.call_type, t.calls) for t in r.pilot(pilot).top_call_types]

    assert top("ccd") == [("Mental Health Crisis", 3), ("Suicide Threat", 1)]
    assert top("crt") == [("Trespass", 1), ("Welfare Check", 1)]  # ties by name
    assert top("cor") == [("Mental Health Crisis", 1)]
    # cn: the followed-up calls' types, joined from their decisions.
    assert top("cn") == [("Mental Health Crisis", 1), ("Suicide Threat", 1), ("Welfare Check", 1)]
    assert {p.pilot: p.backup_requests for p in r.pilots} == {"ccd": 0, "crt": 1, "cor": 0, "cn": 0}


def test_month_boundaries_in_the_policy_zone(state: AggregateState) -> None:
    june = report(state, "2024-06")
    # D2 at 23:30 on 30 June in Durham, though 1 July in UTC.
    assert (june.calls, june.routes["ccd"], june.heart_handled) == (1, 1, 1)
    august = report(state, "2024-08")
    # No decision, but C11's assignment and on-scene report, and C12's outcome, happened
    # in August; C12's deadline (2 Aug 15:00) was met.
    assert august.calls == 0
    assert august.pilot("crt").calls_handled == 1
    assert august.pilot("crt").response_time == ResponseTimes(calls=1, median_s=420, p90_s=420)
    assert august.pilot("crt").eligible == 0
    assert august.followups == FollowupFigures(completed=1, within_48h=1, connected_to_care=1)
    assert august.pilot("ccd").followups == FollowupFigures(
        completed=1, within_48h=1, connected_to_care=1
    )
    assert (august.heart_handled, august.resolved_by_phone, august.phone_share) == (1, 0, 0.0)


def test_a_month_without_data_is_all_zero(state: AggregateState) -> None:
    empty = report(state, "2023-01")
    assert (empty.calls, empty.version, empty.heart_handled, empty.phone_share) == (0, 0, 0, None)
    assert all(p.calls_handled == p.eligible == 0 for p in empty.pilots)


def test_supersession_replaces_the_earlier_decision_in_every_count() -> None:
    first = decision(
        "S1", "crt", local(2024, 7, 8, 10), "Welfare Check",
        eligibility={"crt": []}, pilots=["crt", "cn"],
    )  # fmt: skip
    second = decision(
        "S1", "police", local(2024, 7, 8, 10), "Welfare Check", revision=2,
        eligibility={"crt": ["weapon"]}, pilots=[],
    )  # fmt: skip
    for order in ([first, second], [second, first], [first, second, first, second]):
        r = report(fold(order), "2024-07")
        assert r.calls == 1
        assert r.routes == {"ccd": 0, "crt": 0, "cor": 0, "police": 1}
        assert r.pilot("crt").eligible == 0, "the weapon excluded it: neither eligible nor missed"
        assert r.pilot("cn").eligible == 0
    # And the other way round: a police call re-decided to a team call.
    police_first = second.model_copy(update={"revision": 1, "event_id": "x1"})
    team_second = first.model_copy(update={"revision": 2, "event_id": "x2"})
    r = report(fold([police_first, team_second]), "2024-07")
    assert r.routes["crt"] == 1 and r.routes["police"] == 0
    assert (r.pilot("crt").eligible, r.pilot("cn").eligible) == (1, 1)


def test_duplicates_change_nothing(state: AggregateState) -> None:
    again = fold(redelivered(july()))
    for month in ("2024-06", "2024-07", "2024-08"):
        assert report(again, month) == report(state, month), month


def test_arrival_order_does_not_matter(state: AggregateState) -> None:
    # Topics are consumed independently: a team's on-scene report can arrive before the
    # decision, an outcome before its schedule.
    events = redelivered(july())
    for seed in range(5):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        again = fold(shuffled)
        for month in ("2024-06", "2024-07", "2024-08"):
            assert figures(report(again, month)) == figures(report(state, month)), (seed, month)


def test_version_grows_with_every_change() -> None:
    events = july()
    state = new_state(POLICY)
    versions = []
    for event in events:
        apply(state, event)
        versions.append(report(state, "2024-07").version)
    assert versions == sorted(versions)
    assert versions[-1] > 0


def test_report_round_trips_through_json(state: AggregateState) -> None:
    r = report(state, "2024-07")
    assert MonthReport.model_validate_json(r.model_dump_json()) == r


def test_build_report_from_events_is_the_same_fold(state: AggregateState) -> None:
    assert build_report_from_events(july(), "2024-07", POLICY) == report(state, "2024-07")
    with pytest.raises(ValueError, match="--month"):
        build_report_from_events(july(), "2024-7", POLICY)


def test_the_policy_time_zone_decides_the_month() -> None:
    # The same events under a policy in UTC: D2 (03:30 UTC on 1 July) moves into July,
    # D1 (03:50 UTC on 1 August) out of it.
    state = AggregateState(timezone="UTC")
    for event in july():
        apply(state, event)
    assert report(state, "2024-06").calls == 0
    assert report(state, "2024-07").routes["ccd"] == 4
    assert report(state, "2024-08").routes["ccd"] == 1


def test_memory_is_per_call_and_compact(state: AggregateState) -> None:
    # One record per call or case id, and only the months a record touches hold a part.
    assert len(state.records) == 16  # 15 calls (C7 once) + Z9
    assert sorted(state.parts) == ["2024-06", "2024-07", "2024-08"]
    assert sorted(state.parts["2024-08"]) == ["SECRETCALL-C11", "SECRETCALL-C12"]
    biggest = max(len(r.model_dump_json(exclude_defaults=True)) for r in state.records.values())
    assert biggest < 1500
