"""Care Navigation cases: scheduling, outcomes, retries, overdue, and the timer sweep."""

from __future__ import annotations

import itertools
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from heart.agents.navigation.cases import (
    Case,
    Contact,
    TimerEvent,
    advance,
    contact_from_closure,
    contact_from_dispatch,
    on_outcome,
    outcome_rejection,
    schedule,
    skip_reason,
    sweep,
)
from heart.policy import Policy, PolicyError, default_policy_path, load_policy
from heart.policy.model import parse_policy
from heart.schemas.dispatch import DispatchEvent
from heart.schemas.followup import FollowupDue, FollowupOutcome, FollowupOverdue
from heart.schemas.triage import TriageClosure

DURHAM = ZoneInfo("America/New_York")
_ids = itertools.count(1)


def at(day: str, hhmm: str) -> datetime:
    """A Durham local wall-clock time."""
    hour, minute = map(int, hhmm.split(":"))
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=DURHAM)


# Weeks without holidays or clock changes unless a test says otherwise (July is EDT).
MONDAY = "2024-07-15"
TUESDAY = "2024-07-16"
THURSDAY = "2024-07-18"
FRIDAY = "2024-07-19"
SATURDAY = "2024-07-20"
SUNDAY = "2024-07-21"
NEXT_MONDAY = "2024-07-22"


# --- factories ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def durham() -> Policy:
    return load_policy()


@pytest.fixture
def policy_with() -> Callable[..., Policy]:
    """Durham's policy with ``[pilots.cn]`` keys overridden."""

    def build(**cn: Any) -> Policy:
        data = tomllib.loads(default_policy_path().read_text(encoding="utf-8"))
        data["pilots"]["cn"].update(cn)
        return parse_policy(data, source="test")

    return build


def contact(**overrides: Any) -> Contact:
    data: dict[str, Any] = {
        "call_id": "C-1",
        "pilot": "crt",
        "ended_at": at(TUESDAY, "10:00"),
        "declined": False,
        "source_event_id": "src-1",
    }
    data.update(overrides)
    return Contact.model_validate(data)


def outcome(case: Case, kind: str, when: datetime, **overrides: Any) -> FollowupOutcome:
    data: dict[str, Any] = {
        "event_id": f"out-{next(_ids)}",
        "case_id": case.case_id,
        "outcome": kind,
        "occurred_at": when,
    }
    data.update(overrides)
    return FollowupOutcome.model_validate(data)


def new_case(policy: Policy, now: datetime | None = None, **overrides: Any) -> Case:
    made = contact(**overrides)
    case, event = schedule(made, policy, now or made.ended_at)
    assert case is not None and event is not None
    return case


def dues(events: Iterable[TimerEvent]) -> list[FollowupDue]:
    return [e for e in events if isinstance(e, FollowupDue)]


def overdues(events: Iterable[TimerEvent]) -> list[FollowupOverdue]:
    return [e for e in events if isinstance(e, FollowupOverdue)]


# --- scheduling ---------------------------------------------------------------------------


def test_weekday_contact_is_released_at_once_and_not_at_risk(durham: Policy) -> None:
    ended = at(TUESDAY, "10:00")
    case, event = schedule(contact(ended_at=ended), durham, ended + timedelta(seconds=2))
    assert case is not None and event is not None
    assert case.case_id == case.call_id == "C-1"
    assert case.release_at == ended
    assert case.deadline == ended + timedelta(hours=48)
    assert not case.at_risk
    # Tue 10:00-16:30, all Wednesday, Thu 08:30-10:00.
    assert case.staffed_minutes_to_deadline == 390 + 480 + 90
    assert (event.release_at, event.deadline, event.at_risk) == (
        case.release_at,
        case.deadline,
        False,
    )
    assert event.occurred_at == ended + timedelta(seconds=2)
    assert case.status == "scheduled" and case.next_due_at == ended

    released, events = advance(case, ended + timedelta(seconds=3))
    assert [(e.timer_id, e.attempt, e.at_risk, e.deadline) for e in dues(events)] == [
        ("C-1:1", 1, False, case.deadline)
    ]
    assert released.status == "released"
    assert advance(released, ended + timedelta(hours=1)) == (released, [])


def test_friday_afternoon_contact_is_flagged_at_risk(durham: Policy) -> None:
    case = new_case(durham, ended_at=at(FRIDAY, "15:00"))
    assert case.release_at == at(FRIDAY, "15:00")
    assert case.deadline == at(SUNDAY, "15:00")
    assert case.staffed_minutes_to_deadline == 90
    assert case.at_risk
    _, events = advance(case, at(FRIDAY, "15:00"))
    assert dues(events)[0].at_risk


def test_thursday_afternoon_contact_is_not_at_risk(durham: Policy) -> None:
    case = new_case(durham, ended_at=at(THURSDAY, "15:00"))
    assert case.staffed_minutes_to_deadline == 90 + 480
    assert not case.at_risk


def test_the_at_risk_threshold_comes_from_the_policy(policy_with: Callable[..., Policy]) -> None:
    friday = {"ended_at": at(FRIDAY, "15:00")}
    assert not new_case(policy_with(at_risk_below_staffed_minutes=90), **friday).at_risk
    assert new_case(policy_with(at_risk_below_staffed_minutes=91), **friday).at_risk
    assert not new_case(policy_with(at_risk_below_staffed_minutes=0), **friday).at_risk


def test_saturday_night_contact_is_released_monday_morning(durham: Policy) -> None:
    case = new_case(durham, ended_at=at(SATURDAY, "22:00"))
    assert case.release_at == at(NEXT_MONDAY, "08:30")
    assert case.deadline == at(NEXT_MONDAY, "22:00")
    # The whole of Monday is left: that is the at-risk figure, and it is enough.
    assert case.staffed_minutes_to_deadline == 480
    assert not case.at_risk
    assert advance(case, at(SUNDAY, "12:00")) == (case, [])
    released, events = advance(case, at(NEXT_MONDAY, "08:30"))
    assert [e.timer_id for e in dues(events)] == ["C-1:1"]
    assert released.status == "released"


def test_friday_evening_contact_has_its_deadline_before_anyone_is_on_duty(
    durham: Policy,
) -> None:
    case = new_case(durham, ended_at=at(FRIDAY, "17:00"))
    assert case.deadline == at(SUNDAY, "17:00")
    assert case.release_at == at(NEXT_MONDAY, "08:30")
    assert case.staffed_minutes_to_deadline == 0
    assert case.at_risk
    # The deadline passes on Sunday, before the task is even released on Monday.
    case, events = advance(case, at(SUNDAY, "17:00"))
    assert [type(e) for e in events] == [FollowupOverdue]
    case, events = advance(case, at(NEXT_MONDAY, "08:30"))
    assert [type(e) for e in events] == [FollowupDue]
    assert case.overdue and case.status == "released"


def test_deadline_is_48_real_hours_across_a_clock_change(durham: Policy) -> None:
    spring = new_case(durham, ended_at=at("2024-03-08", "15:00"))
    assert spring.deadline == at("2024-03-10", "16:00")  # EDT from Sunday 03:00
    assert spring.staffed_minutes_to_deadline == 90 and spring.at_risk
    fall = new_case(durham, ended_at=at("2024-11-01", "15:00"))
    assert fall.deadline == at("2024-11-03", "14:00")  # EST from Sunday 02:00
    assert fall.at_risk
    weekend = new_case(durham, ended_at=at("2024-03-09", "12:00"))
    assert weekend.release_at == at("2024-03-11", "08:30")
    assert weekend.release_at == datetime(2024, 3, 11, 12, 30, tzinfo=UTC)
    assert weekend.staffed_minutes_to_deadline == 4 * 60 + 30  # Mon 08:30-13:00 EDT


def test_declined_at_the_contact_is_not_scheduled(durham: Policy) -> None:
    declined = contact(declined=True)
    assert schedule(declined, durham, declined.ended_at) == (None, None)
    assert skip_reason(declined, durham) == "declined"


def test_cor_is_followed_only_when_the_policy_says_so(
    durham: Policy, policy_with: Callable[..., Policy]
) -> None:
    cor = contact(pilot="cor")
    assert schedule(cor, durham, cor.ended_at) == (None, None)
    assert skip_reason(cor, durham) == "not_followed"
    with_cor = policy_with(follows=["ccd", "crt", "cor"])
    case, event = schedule(cor, with_cor, cor.ended_at)
    assert case is not None and event is not None
    assert event.pilot == case.pilot == "cor"
    for pilot in ("ccd", "crt"):
        assert skip_reason(contact(pilot=pilot), durham) is None


def test_nothing_is_scheduled_when_cn_is_disabled(policy_with: Callable[..., Policy]) -> None:
    disabled = policy_with(enabled=False)
    made = contact()
    assert schedule(made, disabled, made.ended_at) == (None, None)
    assert skip_reason(made, disabled) == "cn_disabled"


def test_a_duplicate_schedule_event_schedules_nothing(durham: Policy) -> None:
    made = contact()
    case, _ = schedule(made, durham, made.ended_at)
    assert case is not None
    again = schedule(made, durham, made.ended_at + timedelta(minutes=5), existing=case)
    assert again == (None, None)
    assert skip_reason(made, durham, existing=case) == "duplicate"
    # The same contact reported by another event (call.closed and dispatch.cleared).
    other = contact(source_event_id="src-2")
    assert schedule(other, durham, made.ended_at, existing=case) == (None, None)


def test_a_schedule_recomputed_after_a_crash_is_recognisable(durham: Policy) -> None:
    made = contact()
    first_case, first = schedule(made, durham, made.ended_at)
    second_case, second = schedule(made, durham, made.ended_at)
    assert first is not None and second is not None
    assert first.event_id == second.event_id
    assert first_case == second_case
    _, other = schedule(contact(source_event_id="src-2"), durham, made.ended_at)
    assert other is not None and other.event_id != first.event_id
    # Timer events derive from it too, so a re-fired task carries the same id.
    assert first_case is not None and second_case is not None
    now = made.ended_at
    assert advance(first_case, now)[1][0].event_id == advance(second_case, now)[1][0].event_id


def test_case_round_trips_through_json(durham: Policy) -> None:
    case = new_case(durham, ended_at=at(FRIDAY, "15:00"))
    stages = [case]
    case, _ = advance(case, at(FRIDAY, "15:00"))
    stages.append(case)
    case, _ = on_outcome(
        case, outcome(case, "unable_to_reach", at(FRIDAY, "15:30")), durham, at(FRIDAY, "15:30")
    )
    assert case is not None
    stages.append(case)
    case, _ = advance(case, at(SUNDAY, "16:00"))
    stages.append(case)
    case, _ = on_outcome(
        case,
        outcome(case, "connected_to_care", at(NEXT_MONDAY, "09:00"), care_kind="outpatient"),
        durham,
        at(NEXT_MONDAY, "09:00"),
    )
    assert case is not None
    stages.append(case)
    for stage in stages:
        assert Case.model_validate_json(stage.model_dump_json()) == stage


# --- outcomes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [("reached", "completed"), ("connected_to_care", "completed"), ("declined", "declined")],
)
def test_closing_outcomes_close_the_case(durham: Policy, kind: str, status: str) -> None:
    case, _ = advance(new_case(durham), at(TUESDAY, "10:00"))
    when = at(TUESDAY, "11:00")
    closed, events = on_outcome(case, outcome(case, kind, when, care_kind="x"), durham, when)
    assert closed is not None and events == []
    assert closed.status == status and not closed.is_open
    assert closed.completed_within_deadline is True
    assert closed.closed_at == when
    assert closed.last_outcome == kind and closed.attempts_made == 1
    # Nothing fires any more, not even at the deadline.
    assert advance(closed, case.deadline + timedelta(days=1)) == (closed, [])
    assert sweep([closed], case.deadline + timedelta(days=1), 10) == []
    late = outcome(closed, "reached", at(TUESDAY, "12:00"))
    assert outcome_rejection(closed, late) == "case_closed"
    assert on_outcome(closed, late, durham, at(TUESDAY, "12:00")) == (closed, [])


def test_connected_to_care_keeps_the_kind_of_care(durham: Policy) -> None:
    case = new_case(durham)
    when = at(TUESDAY, "11:00")
    reported = outcome(case, "connected_to_care", when, care_kind="peer support")
    closed, _ = on_outcome(case, reported, durham, when)
    assert closed is not None and closed.care_kind == "peer support"


def test_reached_after_the_deadline_is_completed_late(durham: Policy) -> None:
    case, _ = advance(new_case(durham), at(TUESDAY, "10:00"))
    case, events = advance(case, case.deadline)
    assert len(overdues(events)) == 1
    when = case.deadline + timedelta(hours=1)
    closed, _ = on_outcome(case, outcome(case, "reached", when), durham, when)
    assert closed is not None
    assert closed.status == "completed" and closed.completed_within_deadline is False


def test_a_late_report_counts_when_the_person_was_reached(durham: Policy) -> None:
    case = new_case(durham)
    reached = case.deadline - timedelta(hours=1)
    now = case.deadline + timedelta(hours=3)
    closed, _ = on_outcome(case, outcome(case, "reached", reached), durham, now)
    assert closed is not None
    assert closed.completed_within_deadline is True and closed.closed_at == reached
    # A navigator's clock ahead of ours cannot put the contact in the future.
    future = on_outcome(case, outcome(case, "reached", now + timedelta(days=9)), durham, now)[0]
    assert future is not None and future.closed_at == now


def test_unable_to_reach_retries_three_times_then_exhausts(durham: Policy) -> None:
    case, events = advance(new_case(durham), at(TUESDAY, "10:00"))
    fired = [e.timer_id for e in dues(events)]
    attempts_at = [at(TUESDAY, "10:30"), at(TUESDAY, "12:45"), at(TUESDAY, "15:30")]
    expected_due = [at(TUESDAY, "12:30"), at(TUESDAY, "14:45"), at("2024-07-17", "09:30")]
    for when, due_at in zip(attempts_at, expected_due, strict=True):
        retried, events = on_outcome(case, outcome(case, "unable_to_reach", when), durham, when)
        assert retried is not None and events == []
        assert retried.status == "scheduled"
        assert retried.next_due_at == due_at
        assert retried.attempt == retried.attempts_made + 1
        assert advance(retried, due_at - timedelta(seconds=1)) == (retried, [])
        case, events = advance(retried, due_at)
        fired += [e.timer_id for e in dues(events)]
        assert dues(events)[0].attempt == case.attempt
    assert fired == ["C-1:1", "C-1:2", "C-1:3", "C-1:4"]
    when = at("2024-07-17", "09:40")
    exhausted, events = on_outcome(case, outcome(case, "unable_to_reach", when), durham, when)
    assert exhausted is not None and events == []
    assert exhausted.status == "exhausted" and exhausted.attempts_made == 4
    assert exhausted.completed_within_deadline is False
    # No fifth attempt, and no overdue: the follow-up ended, by the policy's rule.
    assert sweep([exhausted], exhausted.deadline + timedelta(days=3), 10) == []
    again = outcome(exhausted, "unable_to_reach", when)
    assert outcome_rejection(exhausted, again) == "case_closed"
    # Someone reached after all is still recorded.
    later = at("2024-07-17", "11:00")
    closed, _ = on_outcome(exhausted, outcome(exhausted, "reached", later), durham, later)
    assert closed is not None and closed.status == "completed"
    assert closed.completed_within_deadline is True


def test_retry_count_and_spacing_come_from_the_policy(
    policy_with: Callable[..., Policy],
) -> None:
    no_retries = policy_with(unable_to_reach_retries=0)
    case = new_case(no_retries)
    when = at(TUESDAY, "10:30")
    done, _ = on_outcome(case, outcome(case, "unable_to_reach", when), no_retries, when)
    assert done is not None and done.status == "exhausted"

    quick = policy_with(retry_after_minutes=30)
    case = new_case(quick)
    retried, _ = on_outcome(case, outcome(case, "unable_to_reach", when), quick, when)
    assert retried is not None and retried.next_due_at == at(TUESDAY, "11:00")


def test_retries_keep_firing_after_the_deadline_and_overdue_fires_once(
    durham: Policy,
) -> None:
    case, _ = advance(new_case(durham, ended_at=at(FRIDAY, "15:00")), at(FRIDAY, "15:00"))
    all_events: list[TimerEvent] = []
    when = at(FRIDAY, "16:00")
    case, events = on_outcome(case, outcome(case, "unable_to_reach", when), durham, when)
    assert case is not None and case.next_due_at == at(NEXT_MONDAY, "10:00")
    # Sweeps every 15 minutes through the weekend and Monday.
    now = when
    while now < at(NEXT_MONDAY, "12:00"):
        now += timedelta(minutes=15)
        for changed, events in sweep([case], now, 10):
            case = changed
            all_events += events
    assert [type(e) for e in all_events] == [FollowupOverdue, FollowupDue]
    assert all_events[0].occurred_at == at(SUNDAY, "15:00")
    assert isinstance(all_events[1], FollowupDue) and all_events[1].timer_id == "C-1:2"
    assert all_events[0].attempts == 1
    # A further unable_to_reach past the deadline raises no second overdue.
    when = at(NEXT_MONDAY, "12:00")
    case, events = on_outcome(case, outcome(case, "unable_to_reach", when), durham, when)
    assert case is not None and events == []
    _, events = advance(case, at("2024-07-23", "12:00"))
    assert [type(e) for e in events] == [FollowupDue]


def test_an_outcome_before_release_is_accepted(durham: Policy) -> None:
    case = new_case(durham, ended_at=at(SATURDAY, "22:00"))
    when = at(SUNDAY, "10:00")  # a navigator on call reached them over the weekend
    closed, _ = on_outcome(case, outcome(case, "reached", when), durham, when)
    assert closed is not None and closed.status == "completed"
    assert sweep([closed], at(NEXT_MONDAY, "23:00"), 10) == []


def test_a_duplicate_outcome_is_ignored(durham: Policy) -> None:
    case, _ = advance(new_case(durham), at(TUESDAY, "10:00"))
    when = at(TUESDAY, "10:30")
    reported = outcome(case, "unable_to_reach", when)
    once, _ = on_outcome(case, reported, durham, when)
    assert once is not None
    assert outcome_rejection(once, reported) == "duplicate"
    twice, events = on_outcome(once, reported, durham, when + timedelta(minutes=1))
    assert twice is once and events == []
    assert twice.attempts_made == 1


def test_an_outcome_for_an_unknown_case_is_rejected(durham: Policy) -> None:
    orphan = FollowupOutcome(case_id="nope", outcome="reached", occurred_at=at(TUESDAY, "10:00"))
    assert outcome_rejection(None, orphan) == "unknown_case"
    assert on_outcome(None, orphan, durham, at(TUESDAY, "10:00")) == (None, [])


# --- overdue and the sweep ----------------------------------------------------------------


def test_overdue_fires_exactly_once(durham: Policy) -> None:
    case, _ = advance(new_case(durham), at(TUESDAY, "10:00"))
    assert advance(case, case.deadline - timedelta(seconds=1)) == (case, [])
    fired: list[TimerEvent] = []
    now = case.deadline
    for _ in range(20):
        for changed, events in sweep([case], now, 5):
            case = changed
            fired += events
        now += timedelta(hours=1)
    assert len(fired) == 1
    (overdue,) = fired
    assert isinstance(overdue, FollowupOverdue)
    assert (overdue.case_id, overdue.call_id, overdue.deadline) == ("C-1", "C-1", case.deadline)
    assert overdue.occurred_at == case.deadline
    assert case.overdue and case.status == "released"


def test_sweep_takes_the_oldest_due_first_in_bounded_batches(durham: Policy) -> None:
    cases = [
        new_case(
            durham,
            call_id=f"C-{n}",
            source_event_id=f"s-{n}",
            ended_at=at(TUESDAY, "09:00") + timedelta(minutes=n),
        )
        for n in (5, 3, 9, 1, 7)
    ]
    later = new_case(
        durham, call_id="C-late", source_event_id="s-late", ended_at=at(TUESDAY, "15:00")
    )
    now = at(TUESDAY, "12:00")
    batch = sweep([*cases, later], now, 2)
    assert [case.case_id for case, _ in batch] == ["C-1", "C-3"]
    assert all(case.status == "released" for case, _ in batch)
    with pytest.raises(ValueError, match="limit"):
        sweep(cases, now, 0)


def test_sweep_breaks_ties_by_case_id(durham: Policy) -> None:
    ended = at(SATURDAY, "12:00")
    cases = [
        new_case(durham, call_id=cid, source_event_id=f"s-{cid}", ended_at=ended)
        for cid in ("B", "C", "A")
    ]
    batch = sweep(cases, at(NEXT_MONDAY, "09:00"), 2)
    assert [case.case_id for case, _ in batch] == ["A", "B"]


def _contacts_over_two_days(count: int) -> list[Contact]:
    """Contacts spread round the clock from Monday 00:00, some outside staffed hours."""
    start = at(MONDAY, "00:00")
    step = timedelta(hours=48) / count
    return [
        contact(
            call_id=f"C-{n:04d}",
            source_event_id=f"src-{n:04d}",
            pilot=("ccd", "crt")[n % 2],
            ended_at=start + n * step,
        )
        for n in range(count)
    ]


class Downstream:
    """What consumers see: every event sent, and the ids they de-duplicate on."""

    def __init__(self) -> None:
        self.sent: list[TimerEvent] = []

    def send(self, events: Iterable[TimerEvent]) -> None:
        self.sent += events

    def unique(self) -> dict[str, TimerEvent]:
        return {event.event_id: event for event in self.sent}


def test_a_three_day_outage_fires_every_missed_timer_once_in_bounded_batches(
    durham: Policy,
) -> None:
    limit = durham.pilots.cn.sweep_batch_limit
    table: dict[str, Case] = {}
    downstream = Downstream()

    def tick(now: datetime) -> list[int]:
        """The agent on one tick: sweep, write back, send, until nothing is due."""
        sizes = []
        while batch := sweep(table.values(), now, limit):
            assert len(batch) <= limit
            sizes.append(len(batch))
            taken = {case.case_id for case, _ in batch}
            taken_at = [table[cid].pending_at() for cid in taken]
            left_at = [
                pending
                for case in table.values()
                if case.case_id not in taken and (pending := case.pending_at()) and pending <= now
            ]
            # Oldest first: nothing left behind was due before what this batch took.
            assert not left_at or max(filter(None, taken_at)) <= min(left_at)
            for case, events in batch:
                table[case.case_id] = case
                downstream.send(events)
        return sizes

    contacts = _contacts_over_two_days(360)
    outage_start = at(MONDAY, "12:00")
    outage_end = outage_start + timedelta(days=3)
    now = at(MONDAY, "00:00")
    pending = list(contacts)
    # Before the outage: contacts arrive, ticks every 10 minutes.
    while now < outage_start:
        now += timedelta(minutes=10)
        while pending and pending[0].ended_at <= now:
            made = pending.pop(0)
            case, _ = schedule(made, durham, now, existing=table.get(made.call_id))
            if case is not None:
                table[case.case_id] = case
        tick(now)
        if now == at(MONDAY, "11:00"):
            # Navigators miss every third person released so far: retries due at 13:00.
            for case in list(table.values())[::3]:
                reported = outcome(case, "unable_to_reach", now)
                retried, _ = on_outcome(case, reported, durham, now)
                assert retried is not None and retried.next_due_at == at(MONDAY, "13:00")
                table[case.case_id] = retried
    retried_ids = {case.case_id for case in table.values() if case.attempt == 2}
    assert retried_ids
    before = len(downstream.sent)
    # Contacts ended during the outage are read from the topic on restart.
    for made in pending:
        case, _ = schedule(made, durham, outage_end, existing=table.get(made.call_id))
        assert case is not None
        table[case.case_id] = case
    sizes = tick(outage_end)
    assert sizes and max(sizes) == limit and len(sizes) > 1
    assert len(table) == len(contacts)

    due = [e for e in downstream.sent if isinstance(e, FollowupDue)]
    late = [e for e in downstream.sent if isinstance(e, FollowupOverdue)]
    # Every task fired exactly once (first attempts and retries), every passed deadline once.
    expected = {f"{c.call_id}:1": 1 for c in contacts} | {f"{cid}:2": 1 for cid in retried_ids}
    assert Counter(e.timer_id for e in due) == expected
    overdue_cases = {c.case_id for c in table.values() if c.deadline <= outage_end}
    assert Counter(e.case_id for e in late) == dict.fromkeys(overdue_cases, 1)
    assert len(downstream.unique()) == len(downstream.sent)
    assert len(downstream.sent) > before
    # Ticks go on until every deadline has passed: nothing fires twice.
    now = outage_end
    while now < at(SATURDAY, "00:00"):
        now += timedelta(minutes=10)
        assert all(size <= limit for size in tick(now))
    due = [e for e in downstream.sent if isinstance(e, FollowupDue)]
    late = [e for e in downstream.sent if isinstance(e, FollowupOverdue)]
    assert Counter(e.timer_id for e in due) == expected
    assert Counter(e.case_id for e in late) == {c.call_id: 1 for c in contacts}


def test_a_crash_mid_drain_refires_only_what_was_not_written(durham: Policy) -> None:
    """At-least-once: events sent but the table write lost are re-sent with the same ids."""
    limit = 40
    table = {
        case.case_id: case
        for made in _contacts_over_two_days(150)
        if (case := schedule(made, durham, made.ended_at)[0]) is not None
    }
    downstream = Downstream()
    restart = at(MONDAY, "00:00") + timedelta(days=4)
    first = sweep(table.values(), restart, limit)
    for case, events in first:
        table[case.case_id] = case
        downstream.send(events)
    # The second batch is sent, then the worker dies before its table writes land.
    crashed = sweep(table.values(), restart, limit)
    for _, events in crashed:
        downstream.send(events)
    # Restarted, later: the same cases are found due again and fire the same event ids.
    restart_again = restart + timedelta(minutes=5)
    while batch := sweep(table.values(), restart_again, limit):
        for case, events in batch:
            table[case.case_id] = case
            downstream.send(events)
    assert len(downstream.sent) > len(downstream.unique())
    seen = downstream.unique().values()
    assert Counter(e.timer_id for e in seen if isinstance(e, FollowupDue)) == {
        f"{cid}:1": 1 for cid in table
    }
    assert Counter(e.case_id for e in seen if isinstance(e, FollowupOverdue)) == dict.fromkeys(
        table, 1
    )
    assert all(case.overdue and case.status == "released" for case in table.values())


def test_sweep_returns_only_changed_cases(durham: Policy) -> None:
    due_now = new_case(durham, call_id="A", source_event_id="a")
    not_yet = new_case(durham, call_id="B", source_event_id="b", ended_at=at(SATURDAY, "10:00"))
    result = sweep([due_now, not_yet], at(TUESDAY, "10:00"), 10)
    assert [case.case_id for case, _ in result] == ["A"]
    assert sweep([case for case, _ in result], at(TUESDAY, "10:00"), 10) == []


# --- contacts from events -----------------------------------------------------------------


def test_contacts_from_a_closure_and_dispatch_cleared() -> None:
    ended = at(TUESDAY, "10:00")
    closed = TriageClosure(
        call_id="C-9",
        occurred_at=ended,
        route="ccd",
        revision=1,
        decision_id="d-1",
        source_event_id="cad-close-1",
        followup_declined=True,
    )
    made = contact_from_closure(closed)
    assert (made.call_id, made.pilot, made.ended_at, made.declined) == ("C-9", "ccd", ended, True)
    # Named by the CAD's close, so follow-up ids do not depend on who relayed it.
    assert made.source_event_id == "cad-close-1"

    cleared = DispatchEvent(
        event_type="dispatch.cleared", call_id="C-9", route="crt", occurred_at=ended
    )
    made = contact_from_dispatch(cleared)
    assert made is not None and (made.pilot, made.declined) == ("crt", False)
    assert made.source_event_id == cleared.event_id
    for other in (
        cleared.model_copy(update={"event_type": "dispatch.on_scene"}),
        cleared.model_copy(update={"route": "police"}),
    ):
        assert contact_from_dispatch(other) is None


# --- policy additions ---------------------------------------------------------------------


def test_durham_sets_the_navigation_operating_choices(durham: Policy) -> None:
    cn = durham.pilots.cn
    assert (cn.retry_after_minutes, cn.at_risk_below_staffed_minutes, cn.sweep_batch_limit) == (
        120,
        120,
        100,
    )


def test_navigation_operating_choices_default_when_absent() -> None:
    data = tomllib.loads(default_policy_path().read_text(encoding="utf-8"))
    for key in ("retry_after_minutes", "at_risk_below_staffed_minutes", "sweep_batch_limit"):
        del data["pilots"]["cn"][key]
    cn = parse_policy(data, source="test").pilots.cn
    assert (cn.retry_after_minutes, cn.at_risk_below_staffed_minutes, cn.sweep_batch_limit) == (
        120,
        120,
        100,
    )


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("retry_after_minutes", "120", "must be an integer, got string"),
        ("retry_after_minutes", 0, "greater than 0"),
        ("at_risk_below_staffed_minutes", -1, "greater than or equal to 0"),
        ("sweep_batch_limit", True, "must be an integer, got boolean"),
        ("sweep_batch_limit", 0, "greater than 0"),
    ],
)
def test_navigation_operating_choices_are_validated_strictly(
    policy_with: Callable[..., Policy], key: str, value: object, problem: str
) -> None:
    with pytest.raises(PolicyError, match=f"pilots.cn.{key}: .*{problem}"):
        policy_with(**{key: value})
