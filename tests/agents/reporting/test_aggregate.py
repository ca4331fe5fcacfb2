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
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from heart.agents.reporting.aggregate import (
    AggregateState,
    apply,
    is_partial,
    median,
    new_state,
    p90,
    report,
)
from heart.agents.reporting.wording import partial_label
from heart.cli.report import build_report_from_events
from heart.policy import load_policy
from heart.schemas.reports import FollowupFigures, MonthReport, ResponseTimes
from tests.agents.reporting.synthetic import (
    decision,
    dispatch,
    july,
    local,
    outcome,
    realistic_month,
    redelivered,
    scheduled,
)

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
    # By phone: C1 C9 C12 D1; given a team: C2 C3 C11 (crt), C6 (cor). C11 is a July call
    # though its team was assigned in August.
    assert (r.heart_handled, r.resolved_by_phone) == (8, 4)
    assert r.phone_share == pytest.approx(4 / 8)
    assert r.data_from == local(2024, 7, 1, 9)  # C1 received
    assert r.data_through == local(2024, 7, 31, 23, 55)  # C11 received
    assert r.partial is False
    assert r.policy_versions == ["durham@test"]
    assert r.organisation is not None
    assert r.organisation.department == "Durham Community Safety Department"


def test_reached_per_pilot(state: AggregateState) -> None:
    r = report(state, "2024-07")
    reached = {p.pilot: p.reached for p in r.pilots}
    # ccd: route ccd; crt, cor: a team assigned (C11's on 1 August counts with its July
    # call); cn: follow-ups scheduled (C2 C9 C12).
    assert reached == {"ccd": 4, "crt": 3, "cor": 1, "cn": 3}
    assert r.pilot("crt").reached_in_other_month == 1
    assert [p.name for p in r.pilots] == [
        "Crisis Call Diversion",
        "Community Response Teams",
        "Co-Response",
        "Care Navigation",
    ]


def test_eligible_and_missed_by_reason(state: AggregateState) -> None:
    r = report(state, "2024-07")
    ccd, crt, cor, cn = (r.pilot(p) for p in ("ccd", "crt", "cor", "cn"))
    # ccd eligible: C1 C6 C8 C9 D1 C12; reached (resolved by phone) C1 C9 C12 D1; missed
    # C8 outside hours; C6 went to Co-Response: it needed someone in person.
    assert (ccd.eligible, ccd.reached, ccd.missed) == (6, 4, 1)
    assert ccd.missed_by_reason == {"outside_hours": 1}
    assert ccd.other == {"needed_in_person": 1}
    # crt eligible: C2 C3 C4 C5 C8 C11 C13 (C6 and C7 excluded by a weapon: not misses);
    # reached C2 C3 C11; missed C5 C8 outside hours, C4 and C13 (no team on shift) no team
    # free.
    assert (crt.eligible, crt.reached, crt.missed) == (7, 3, 4)
    assert crt.missed_by_reason == {"outside_hours": 2, "no_team_free": 2}
    assert list(crt.missed_by_reason) == ["outside_hours", "no_team_free"], "report order"
    assert crt.other == {}
    assert (cor.eligible, cor.reached, cor.missed, cor.other) == (1, 1, 0, {})
    # cn: every decision that involves it (C1 C2 C3 C4 C9 D1 C11 C12) plus C13, missed
    # because Care Navigation was not running; follow-ups scheduled for C2 C9 C12 only.
    assert (cn.eligible, cn.reached, cn.missed) == (9, 3, 1)
    assert cn.missed_by_reason == {"pilot_disabled": 1}
    assert cn.other == {"no_followup_scheduled": 5}
    for p in r.pilots:
        assert p.eligible == p.parts_total, p.pilot


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
    # unable-to-reach does not close it); C12 connected to care on 1 August, counted in
    # July when it was scheduled; Z9 was never scheduled.
    expected = FollowupFigures(
        scheduled=3, at_risk=1, completed=2, within_48h=2, connected_to_care=1, overdue=1
    )
    assert r.followups == expected
    assert r.pilot("cn").followups == expected
    # Per contact pilot: C9 and C12 after phone calls, C2 after a team.
    assert r.pilot("ccd").followups == FollowupFigures(
        scheduled=2, at_risk=1, overdue=1, completed=1, within_48h=1, connected_to_care=1
    )
    assert r.pilot("crt").followups == FollowupFigures(scheduled=1, completed=1, within_48h=1)
    assert r.pilot("cor").followups == FollowupFigures()


def test_top_call_types_and_backup(state: AggregateState) -> None:
    r = report(state, "2024-07")

    def top(pilot: str) -> list[tuple[str, int]]:
        return [(t.call_type, t.calls) for t in r.pilot(pilot).top_call_types]

    assert top("ccd") == [("Mental Health Crisis", 3), ("Suicide Threat", 1)]
    assert top("crt") == [("Welfare Check", 2), ("Trespass", 1)]  # C11 is a July call
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
    # in August. C11 is reached in July (its call's month), C12's outcome counts in July
    # (its follow-up's month): August keeps only C11's response time.
    assert august.calls == 0
    assert august.pilot("crt").reached == 0
    assert august.pilot("crt").response_time == ResponseTimes(calls=1, median_s=420, p90_s=420)
    assert august.pilot("crt").eligible == 0
    assert august.followups == FollowupFigures()
    assert (august.heart_handled, august.resolved_by_phone, august.phone_share) == (0, 0, None)
    # August's events are C11's team at 00:02 and 00:09 and C12's outcome at 10:00.
    assert (august.data_from, august.data_through) == (
        local(2024, 8, 1, 0, 2),
        local(2024, 8, 1, 10),
    )


def test_a_month_without_data_is_all_zero(state: AggregateState) -> None:
    empty = report(state, "2023-01")
    assert (empty.calls, empty.version, empty.heart_handled, empty.phone_share) == (0, 0, 0, None)
    assert all(p.reached == p.eligible == 0 for p in empty.pilots)
    assert (empty.data_from, empty.data_through, empty.partial) == (None, None, False)


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


# --- parts that add up, whatever the data ---------------------------------------------------


@pytest.fixture(scope="module")
def realistic() -> AggregateState:
    # July 2024 and its spill into August: ~4,600 calls decided by the real triage rules.
    return fold(realistic_month(POLICY, local(2024, 7, 1, 0), 31, seed=7))


def test_every_pilots_parts_add_up_to_its_eligible_calls(realistic: AggregateState) -> None:
    seen_parts: set[str] = set()
    for month in sorted(realistic.totals):
        r = report(realistic, month)
        assert r.calls == sum(r.routes.values()), month
        for p in r.pilots:
            where = (month, p.pilot)
            assert p.eligible == p.reached + p.missed + sum(p.other.values()), where
            assert p.missed == sum(p.missed_by_reason.values()), where
            assert 0 <= p.reached_in_other_month <= p.reached, where
            seen_parts |= {part for part, n in p.other.items() if n}
        # HEART handled: calls reached by phone or by a team, each once.
        ccd, crt, cor = (r.pilot(x) for x in ("ccd", "crt", "cor"))
        assert r.resolved_by_phone == ccd.reached, month
        assert max(ccd.reached, crt.reached, cor.reached) <= r.heart_handled, month
        assert r.heart_handled <= ccd.reached + crt.reached + cor.reached, month
    # The month is realistic enough to exercise the parts, not just zeros.
    july_ = report(realistic, "2024-07")
    assert july_.calls > 4000
    assert all(p.eligible > 0 and p.reached > 0 for p in july_.pilots)
    assert july_.pilot("crt").missed_by_reason.get("no_team_free", 0) > 0
    assert {"needed_in_person", "waiting_for_team", "no_followup_scheduled"} <= seen_parts


def test_no_month_completes_more_follow_ups_than_it_scheduled(realistic: AggregateState) -> None:
    completed_later = 0
    for month in sorted(realistic.totals):
        r = report(realistic, month)
        for who, f in [("month", r.followups)] + [(p.pilot, p.followups) for p in r.pilots]:
            where = (month, who)
            assert f.completed <= f.scheduled, where
            assert f.within_48h <= f.completed, where
            assert f.connected_to_care <= f.completed, where
            assert f.overdue <= f.scheduled and f.at_risk <= f.scheduled, where
        # Care Navigation's reached calls and the month's follow-ups reconcile exactly.
        cn = r.pilot("cn")
        assert r.followups.scheduled == (
            cn.reached - cn.reached_in_other_month + r.followups.for_other_calls
        ), month
    for record in realistic.records.values():
        if record.closed is not None and record.scheduled is not None:
            completed_later += record.closed.month != record.scheduled.month
    assert completed_later > 0, "some follow-ups complete in the month after they were scheduled"


def test_a_follow_up_completed_next_month_counts_in_the_month_it_was_scheduled() -> None:
    call = decision(
        "F1", "ccd", local(2024, 7, 31, 22, 30), "Mental Health Crisis",
        eligibility={"ccd": []}, pilots=["ccd", "cn"],
    )  # fmt: skip
    case = scheduled("F1", local(2024, 7, 31, 23), "ccd")
    done = outcome("F1", local(2024, 8, 1, 1), "connected_to_care")
    for order in ([call, case, done], [done, case, call], [case, done, call]):
        state = fold(order)
        july_, august = report(state, "2024-07"), report(state, "2024-08")
        assert july_.followups == FollowupFigures(
            scheduled=1, completed=1, within_48h=1, connected_to_care=1
        )
        assert july_.pilot("ccd").followups == july_.followups
        cn = july_.pilot("cn")
        assert (cn.eligible, cn.reached, cn.missed, cn.other) == (1, 1, 0, {})
        # August saw the outcome, but it counts nowhere there: no 1-of-0 completed.
        assert august.followups == FollowupFigures()
        assert august.data_through == local(2024, 8, 1, 1)


def test_a_deadline_revised_after_a_high_screening_is_the_one_a_completion_is_judged_by() -> None:
    call = decision(
        "F2", "ccd", local(2024, 7, 10, 10), "Mental Health Crisis",
        eligibility={"ccd": []}, pilots=["ccd", "cn"],
    )  # fmt: skip
    first = scheduled("F2", local(2024, 7, 10, 11), "ccd")
    revised = first.model_copy(
        update={"event_id": "sched-F2-revised", "deadline": local(2024, 7, 11, 11)}
    )
    # Completed 30 hours after the contact: within 48 hours, not within the revised 24.
    done = outcome("F2", local(2024, 7, 11, 17), "reached")
    for order in ([call, first, revised, done], [done, revised, call, first]):
        figures_ = report(fold(order), "2024-07").followups
        assert (figures_.scheduled, figures_.completed, figures_.within_48h) == (1, 1, 0)


def test_a_follow_up_scheduled_after_midnight_reconciles_with_its_calls_month() -> None:
    call = decision(
        "F2", "crt", local(2024, 7, 31, 23, 10), "Welfare Check",
        eligibility={"crt": []}, pilots=["crt", "cn"],
    )  # fmt: skip
    events = [
        call,
        dispatch("F2", "assigned", local(2024, 7, 31, 23, 20), "crt"),
        scheduled("F2", local(2024, 8, 1, 0, 40), "crt"),
    ]
    state = fold(events)
    july_, august = report(state, "2024-07"), report(state, "2024-08")
    assert (july_.pilot("cn").reached, july_.pilot("cn").reached_in_other_month) == (1, 1)
    assert july_.followups.scheduled == 0
    assert (august.followups.scheduled, august.followups.for_other_calls) == (1, 1)
    assert august.pilot("cn").eligible == 0


# --- partial months ---------------------------------------------------------------------------


def test_a_month_the_data_covers_in_part_is_partial() -> None:
    # Calls from 1 to 21 May only.
    calls = [
        decision(
            f"P{day}", "police", local(2024, 5, day, 10), None, call_type="NOISE",
            eligibility={}, pilots=[],
        )
        for day in range(1, 22)
    ]  # fmt: skip
    may = report(fold(calls), "2024-05")
    assert may.partial
    assert (may.data_from, may.data_through) == (local(2024, 5, 1, 10), local(2024, 5, 21, 10))
    assert partial_label(may) == "partial month: 1\u201321 May"
    whole = report(fold([*calls, *(c.model_copy(update={
        "call_id": "X" + c.call_id, "event_id": "x" + c.event_id,
        "call_received_at": local(2024, 5, 31, 23, 59),
    }) for c in calls[:1])]), "2024-05")  # fmt: skip
    assert not whole.partial
    assert partial_label(whole) is None


def test_partial_is_judged_in_the_policy_time_zone() -> None:
    ny, utc = ZoneInfo("America/New_York"), ZoneInfo("UTC")
    # 2 May 02:00 UTC is 1 May 22:00 in Durham; 1 June 02:00 UTC is 31 May 22:00.
    first = datetime(2024, 5, 2, 2, tzinfo=UTC)
    last = datetime(2024, 6, 1, 2, tzinfo=UTC)
    assert not is_partial("2024-05", ny, first, last)
    assert is_partial("2024-05", utc, first, datetime(2024, 5, 31, 2, tzinfo=UTC))
    assert not is_partial("2024-05", ny, None, None), "no data: nothing to qualify"
    # A leap year's February ends on the 29th.
    feb_1 = datetime(2024, 2, 1, tzinfo=UTC)
    assert is_partial("2024-02", utc, feb_1, datetime(2024, 2, 28, tzinfo=UTC))
    assert not is_partial("2024-02", utc, feb_1, datetime(2024, 2, 29, 23, tzinfo=UTC))


def test_a_call_too_late_to_act_on_is_missed_as_stale() -> None:
    # Dispatch found the decision stale: without its own reason it would look "waiting".
    late = [
        decision(
            "S1",
            "crt",
            local(2024, 7, 9),
            "Trespass",
            eligibility={"crt": []},
            pilots=["crt", "cn"],
        ),
        dispatch("S1", "fallback", local(2024, 7, 9, 12, 15), "crt", reason="stale"),
    ]
    # Triage itself found it stale: every pilot it would have had misses it as stale.
    stale_at_triage = decision(
        "S2",
        "police",
        local(2024, 7, 9),
        "Trespass",
        eligibility={"crt": ["stale"]},
        pilots=[],
        reasons=["crt_ineligible:stale", "stale"],
    )
    crt = report(fold([*late, stale_at_triage]), "2024-07").pilot("crt")
    assert crt.missed_by_reason == {"stale": 2}
    assert crt.eligible == 2 and crt.reached == 0
