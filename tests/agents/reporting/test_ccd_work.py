"""The Crisis Call Diversion section, figure by figure, from small hand-counted scenarios.

Every scenario folds its events into a fresh state (in the given order, and again
shuffled) and reads one figure of July 2024; ``T`` is 10 July, 09:00 Durham time."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from heart.agents.reporting.aggregate import Totals, apply, new_state, parts_of, report
from heart.agents.reporting.render import render_json
from heart.cli.report import build_report_from_events
from heart.policy import load_policy
from heart.schemas.reports import (
    NO_CLINICIAN_EVENTS,
    CcdWorkReport,
    MonthReport,
    OverrideDirection,
    OverrideFigures,
)
from tests.agents.reporting.clinicians import (
    STEPS,
    answered,
    call,
    disposition,
    engaged,
    minutes,
    on_scene,
    overridden,
    plan,
    referral,
    requested,
    screened,
)
from tests.agents.reporting.synthetic import july, local

POLICY = load_policy()
TARGETS = POLICY.ccd_work.consult_targets
T = local(2024, 7, 10, 9)


def month_of(events: list[Any], month: str = "2024-07") -> MonthReport:
    return build_report_from_events(events, month, POLICY)


def work(events: list[Any], month: str = "2024-07") -> CcdWorkReport:
    return month_of(events, month).ccd_work


Getter = Callable[[CcdWorkReport], Any]

ENGAGED: list[Any] = [
    call("A", T),
    call("B", T),
    engaged("A", minutes(T, 1), eid="e1"),
    engaged("A", minutes(T, 1), eid="e1"),  # redelivered
    engaged("A", minutes(T, 5), eid="e2"),  # a second clinician joins: the same call
    engaged("B", minutes(T, 2)),
    engaged("X", minutes(T, 2)),  # no decision for X in the data: no call figure
]
SCREENINGS: list[Any] = [
    call("A", T),
    call("B", T),
    call("C", T),
    screened("A", minutes(T, 1), "none"),
    screened("A", minutes(T, 9), "high"),  # screened again: two screenings
    screened("B", minutes(T, 1), "low"),
    screened("B", minutes(T, 2), "moderate_q6"),
    screened("C", minutes(T, 1), "high_q6", eid="s-c"),
    screened("C", minutes(T, 1), "high_q6", eid="s-c"),  # redelivered
    screened("C", minutes(T, 2), "moderate"),
    screened("C", minutes(T, 3), "incomplete"),  # refused by the CCD stage: not counted
]
PLANS: list[Any] = [
    *(call(n, T) for n in "ABCD"),
    plan("A", minutes(T, 5), 3),
    plan("A", minutes(T, 9), 6),  # completed later
    plan("B", minutes(T, 5), 2),
    plan("C", minutes(T, 5), 0),
    plan("D", minutes(T, 5), set(STEPS[:3])),
    plan("D", minutes(T, 6), set(STEPS[3:])),  # the rest of the steps, in a second event
]
REFERRALS: list[Any] = [
    call("A", T),
    call("B", T),
    referral("A", minutes(T, 3), "outpatient", warm=False),
    referral("A", minutes(T, 4), "988", warm=False),
    referral("A", minutes(T, 5), "988", warm=True),  # the same resource: once, warm
    referral("B", minutes(T, 3), "988", warm=False),
    referral("B", minutes(T, 4), "nowhere_listed", warm=True),  # not in the policy: refused
]
DISPOSITIONS: list[Any] = [
    *(call(n, T) for n in "ABC"),
    disposition("A", minutes(T, 5), "resolved_by_phone"),  # the last word, arriving first
    disposition("A", minutes(T, 2), "dispatch_crt"),
    disposition("B", minutes(T, 3), "police_needed"),
    disposition("C", minutes(T, 3), "transferred_988"),
    disposition("X", minutes(T, 3), "ems_needed"),  # no such call in the data
]
OVERRIDES: list[Any] = [
    call("A", T),
    overridden("A", T, "ccd", "crt"),
    overridden("B", T, "ccd", "crt"),
    call("C", T, route="crt"),
    overridden("C", T, "crt", "ccd"),
    overridden("D", T, "ccd", "ccd"),  # the clinician agreed with the rules
    overridden("E", T, "ccd", "cor"),
    call("E", T, route="police").model_copy(update={"revision": 3, "event_id": "dec-E-3"}),
]
CONSULTS: list[Any] = [
    requested("K1", T, "dispatcher", "urgent"),
    answered("K1", minutes(T, TARGETS.urgent - 1)),
    requested("K2", T, "dispatcher", "urgent"),
    answered("K2", minutes(T, TARGETS.urgent + 1)),
    requested("K3", T, "police", "routine"),
    answered("K3", minutes(T, TARGETS.routine)),  # on the target itself: within
    requested("K4", T, "crt", "soon"),  # never answered
    requested("K5", T, "cor", "soon"),
    answered("K5", minutes(T, TARGETS.soon + 2)),  # a second answer: the first counts
    answered("K5", minutes(T, TARGETS.soon - 1)),
    answered("K6", minutes(T, 1)),  # its request is not in the data: counted nowhere
]
ON_THE_LINE: list[Any] = [
    *(call(n, T) for n in "ABCDE"),
    engaged("A", T),
    on_scene("A", minutes(T, 10), "crt", seconds=540),
    engaged("B", T),
    on_scene("B", minutes(T, 4), "police"),  # police report no assignment time
    engaged("C", T),
    on_scene("C", minutes(T, -1), "crt", seconds=300),  # already there: not on the line
    engaged("D", T),  # nobody came
    engaged("E", minutes(T, 2)),
    engaged("E", T),  # the first engaged counts, whatever arrives first
    on_scene("E", minutes(T, 20), "cor", seconds=900),
    on_scene("E", minutes(T, 6), "crt", seconds=300),  # the first on scene counts
    on_scene("F", minutes(T, 3), "police"),  # no clinician on F
]


@pytest.mark.parametrize(
    ("events", "figure", "expected"),
    [
        pytest.param(ENGAGED, lambda w: w.calls_engaged, 2, id="engaged-distinct-calls"),
        pytest.param(
            SCREENINGS,
            lambda w: (w.screenings.total, w.screenings.by_risk_level),
            (6, {"none": 1, "low": 1, "moderate": 2, "high": 2}),
            id="screenings-by-risk-level",
        ),
        pytest.param(
            PLANS,
            lambda w: w.safety_plans.model_dump(),
            {"plans": 4, "all_six_steps": 2, "fewer_steps": 2},
            id="safety-plans-and-all-six-steps",
        ),
        pytest.param(
            REFERRALS,
            lambda w: (
                w.referrals.total,
                w.referrals.warm_handoffs,
                [(r.resource, r.referrals, r.warm_handoffs) for r in w.referrals.by_resource],
            ),
            # The policy's order: 988 before outpatient.
            (3, 1, [("988", 2, 1), ("outpatient", 1, 0)]),
            id="referrals-by-resource-with-warm-handoffs",
        ),
        pytest.param(
            DISPOSITIONS,
            lambda w: (
                w.dispositions.calls,
                {d: n for d, n in w.dispositions.by_value.items() if n},
            ),
            (3, {"resolved_by_phone": 1, "police_needed": 1, "transferred_988": 1}),
            id="dispositions-last-per-call",
        ),
        pytest.param(
            OVERRIDES,
            lambda w: (
                w.overrides.calls,
                [(d.rules_route, d.route, d.calls) for d in w.overrides.by_direction],
            ),
            (3, [("ccd", "crt", 2), ("crt", "ccd", 1)]),
            id="overrides-each-direction",
        ),
        pytest.param(
            CONSULTS,
            lambda w: (
                (w.consults.requested, w.consults.answered, w.consults.answered_within_target),
                w.consults.share_within_target,
                [
                    (r.requested_by, r.requested, r.answered, r.answered_within_target)
                    for r in w.consults.by_requester
                ],
                [r.share_within_target for r in w.consults.by_requester],
            ),
            (
                (5, 4, 3),
                pytest.approx(3 / 5),
                [
                    ("dispatcher", 2, 2, 1),
                    ("police", 1, 1, 1),
                    ("crt", 1, 0, 0),
                    ("cor", 1, 1, 1),
                ],
                [0.5, 1.0, 0.0, 1.0],
            ),
            id="consults-by-requester-within-target",
        ),
        pytest.param(
            ON_THE_LINE,
            lambda w: w.time_on_line.model_dump(),
            # A 10 min, B 4 min, E 6 min: median 6 min, p90 (nearest rank) 10 min.
            {"calls": 3, "median_s": 360.0, "p90_s": 600.0},
            id="time-on-the-line",
        ),
    ],
)
def test_each_figure(events: list[Any], figure: Getter, expected: Any) -> None:
    assert figure(work(events)) == expected
    for seed in range(3):
        shuffled = list(events)
        random.Random(seed).shuffle(shuffled)
        assert figure(work(shuffled)) == expected, f"arrival order, seed {seed}"


ALL = [
    *ENGAGED,
    *SCREENINGS,
    *PLANS,
    *REFERRALS,
    *DISPOSITIONS,
    *OVERRIDES,
    *CONSULTS,
    *ON_THE_LINE,
]


def test_parts_add_up_to_their_wholes() -> None:
    w = work(ALL)
    assert w.clinician_events and w.note is None
    assert w.screenings and sum(w.screenings.by_risk_level.values()) == w.screenings.total
    assert w.safety_plans
    assert w.safety_plans.plans == w.safety_plans.all_six_steps + w.safety_plans.fewer_steps
    assert w.referrals
    assert sum(r.referrals for r in w.referrals.by_resource) == w.referrals.total
    assert sum(r.warm_handoffs for r in w.referrals.by_resource) == w.referrals.warm_handoffs
    assert w.dispositions and sum(w.dispositions.by_value.values()) == w.dispositions.calls
    assert list(w.dispositions.by_value) == [
        "resolved_by_phone", "dispatch_crt", "dispatch_cor", "police_needed",
        "ems_needed", "transferred_988", "disconnected",
    ]  # fmt: skip
    assert w.overrides and sum(d.calls for d in w.overrides.by_direction) == w.overrides.calls
    assert w.consults
    for figure in ("requested", "answered", "answered_within_target"):
        total = sum(getattr(r, figure) for r in w.consults.by_requester)
        assert total == getattr(w.consults, figure), figure
    assert w.time_on_line and w.calls_engaged is not None
    assert w.time_on_line.calls <= w.calls_engaged


def test_the_same_events_give_the_same_report_in_any_order() -> None:
    first = render_json(month_of(ALL).model_copy(update={"version": 0}))
    for seed in range(5):
        shuffled = list(ALL)
        random.Random(seed).shuffle(shuffled)
        again = render_json(month_of(shuffled).model_copy(update={"version": 0}))
        assert again == first, seed


def test_a_month_without_clinician_events_says_so_instead_of_zeros() -> None:
    # A CAD export's month: decisions, dispatch and follow-ups, no clinician events.
    w = work(july())
    assert w.clinician_events is False
    assert w.note == NO_CLINICIAN_EVENTS
    assert w.note.startswith("No clinician events: a CAD export records none; ")
    figures = w.model_dump(exclude={"clinician_events", "note"})
    assert figures and all(value is None for value in figures.values()), figures


def test_responders_on_scene_without_a_clinician_change_no_figure() -> None:
    # A police arrival is kept only to end a clinician's time on the line: on a call
    # without one it counts nowhere, not even in the month's data range.
    month = july()
    police = on_scene("C5", local(2024, 7, 31, 23, 59), "police")
    before, after = month_of(month), month_of([*month, police])
    assert after.model_dump(exclude={"version"}) == before.model_dump(exclude={"version"})


def test_a_consult_alone_makes_a_month_with_clinician_events() -> None:
    w = work([requested("K1", T, "dispatcher", "urgent")])
    assert w.clinician_events is True
    assert w.calls_engaged == 0
    assert w.consults and (w.consults.requested, w.consults.answered) == (1, 0)
    assert w.consults.share_within_target == 0.0
    assert w.time_on_line and w.time_on_line.model_dump() == {
        "calls": 0,
        "median_s": None,
        "p90_s": None,
    }


def test_a_calls_clinician_figures_count_in_the_month_the_call_came_in() -> None:
    late = local(2024, 7, 31, 23, 55)
    events = [
        call("N", late),
        engaged("N", local(2024, 8, 1, 0, 1)),
        screened("N", local(2024, 8, 1, 0, 5), "low"),
        on_scene("N", local(2024, 8, 1, 0, 20), "crt", seconds=600),
        # A consult counts in the month it was requested, whenever answered.
        requested("K9", local(2024, 7, 31, 23, 59), "police", "urgent"),
        answered("K9", local(2024, 8, 1, 0, 0)),
    ]
    july_work = work(events, "2024-07")
    assert july_work.calls_engaged == 1
    assert july_work.screenings and july_work.screenings.total == 1
    assert july_work.time_on_line and july_work.time_on_line.median_s == 19 * 60
    assert july_work.consults and july_work.consults.answered_within_target == 1
    assert work(events, "2024-08").clinician_events is False


def test_a_superseded_override_is_no_longer_counted() -> None:
    # E's override (ccd to cor) is superseded by revision 3: as last decided, none.
    w = work([*OVERRIDES[-2:], engaged("E", T)])
    assert w.overrides and (w.overrides.calls, w.overrides.by_direction) == (0, [])
    assert work(OVERRIDES[-2:-1]).overrides == OverrideFigures(
        calls=1, by_direction=[OverrideDirection(rules_route="ccd", route="cor", calls=1)]
    )


def test_month_totals_with_clinician_figures_survive_a_round_trip() -> None:
    # The stage stores each month's settled base as JSON: clinician keys (risk levels,
    # step counts, seconds on the line) must come back equal.
    state = new_state(POLICY)
    for event in ALL:
        apply(state, event)
    parts = [p for record in state.records.values() for p in parts_of(record).values()]
    totals = Totals.of(parts)
    assert any(key[0] == "ccd_line" for key in totals.counts)
    assert Totals.load(totals.dump()) == totals
    assert report(state, "2024-07").ccd_work.clinician_events
