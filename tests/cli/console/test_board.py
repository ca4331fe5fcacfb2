"""The console's projection and alerts as tables: events in, board and alerts out, at a given
time. No I/O: the same events and the same ``now`` give the same board."""

from __future__ import annotations

from typing import Any

import pytest

from heart.cli.console.alerts import alerts
from heart.cli.console.board import Board
from heart.cli.console.console_settings import ConsoleSettings
from heart.cli.console.views import (
    allowed_actions,
    analyst_view,
    navigator_view,
    supervisor_view,
    team_view,
)
from heart.policy import Policy, load_policy
from tests.cli.console.events import (
    answered,
    at,
    audit,
    closure,
    consult,
    consult_overdue,
    decision,
    dispatch,
    disposed,
    due,
    engaged,
    followup_overdue,
    outcome,
    scheduled,
)

POLICY = load_policy()  # Durham: max_queue_wait_minutes 10, urgent consult target 2 min
SETTINGS = ConsoleSettings()


def board_of(events: list[Any], retries: int = 3) -> Board:
    board = Board(unable_to_reach_retries=retries)
    board.add_roster_teams(["CRT-1", "CRT-2"])
    for event in events:
        board.apply(event)
    return board


def supervisor(events: list[Any], minute: float) -> dict[str, Any]:
    return supervisor_view(board_of(events), at(minute), POLICY, SETTINGS)


CALLS = [
    (
        "a decision opens a call with its route and reasons",
        [decision("c1", "crt", reasons=["category:welfare"])],
        [("c1", "crt", None, ["category:welfare"], None)],
    ),
    (
        "the latest revision wins; an older one arriving late changes nothing",
        [
            decision("c1", "crt"),
            decision(
                "c1", "ccd", 1, revision=2, rules_route="crt", reasons=["clinician_disposition"]
            ),
            decision("c1", "police", 0.5, revision=1),
        ],
        [("c1", "ccd", "crt", ["clinician_disposition"], None)],
    ),
    (
        "rules_route equal to the route is not shown as an overrule",
        [decision("c1", "crt", revision=2, rules_route="crt")],
        [("c1", "crt", None, ["category:crt"], None)],
    ),
    (
        "assignment names the team; clearing ends the call",
        [
            decision("c1"),
            decision("c2"),
            dispatch("assigned", "c1", 1, "CRT-1"),
            dispatch("assigned", "c2", 1, "CRT-2"),
            dispatch("cleared", "c2", 30, "CRT-2"),
        ],
        [("c1", "crt", None, ["category:crt"], "CRT-1")],
    ),
    (
        "a fallback ends the call; a ccd closure ends a phone call",
        [
            decision("c1"),
            dispatch("fallback", "c1", 10, reason="no_team_free"),
            decision("c2", "ccd"),
            closure("c2", 5),
        ],
        [],
    ),
    (
        "a police call leaves the board after police_call_minutes",
        [decision("c1", "police", 0), decision("c2", "police", 10)],
        [("c2", "police", None, ["category:police"], None)],
    ),
    (
        "dispatch read before the decision (another partition) is applied when it comes",
        [
            dispatch("queued", "c1", 1),
            dispatch("assigned", "c1", 3, "CRT-1"),
            dispatch("queued", "c2", 1),
            decision("c1"),
            decision("c2"),
        ],
        [
            ("c1", "crt", None, ["category:crt"], "CRT-1"),
            ("c2", "crt", None, ["category:crt"], None),
        ],
    ),
    (
        "a queued step read after the assignment does not put the call back in the queue",
        [decision("c1"), dispatch("assigned", "c1", 3, "CRT-1"), dispatch("queued", "c1", 1)],
        [("c1", "crt", None, ["category:crt"], "CRT-1")],
    ),
    (
        "events for a call never decided do not invent it",
        [dispatch("queued", "ghost", 1), closure("ghost", 2)],
        [],
    ),
]


@pytest.mark.parametrize(("events", "expected"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_open_calls(events: list[Any], expected: list[tuple[Any, ...]]) -> None:
    view = supervisor(events, 20)
    got = [
        (c["call_id"], c["route"], c["rules_route"], c["reasons"], c["team_id"])
        for c in view["calls"]
    ]
    assert got == expected


TEAMS = [
    ("a roster team with no event is available, for no known time", [], ("available", None, None)),
    (
        "assigned, then en route: time in status counts from the last change",
        [
            decision("c1"),
            dispatch("assigned", "c1", 1, "CRT-1"),
            dispatch("en_route", "c1", 4, "CRT-1"),
        ],
        ("en_route", 16 * 60, "c1"),
    ),
    (
        "transporting comes from the audit trail only",
        [
            decision("c1"),
            dispatch("assigned", "c1", 1, "CRT-1"),
            dispatch("on_scene", "c1", 5, "CRT-1"),
            audit("CRT-1", "on_scene", "transporting", 12, "c1"),
        ],
        ("transporting", 8 * 60, "c1"),
    ),
    (
        "an older audit record read after a newer dispatch event does not roll back",
        [
            decision("c1"),
            dispatch("assigned", "c1", 1, "CRT-1"),
            dispatch("on_scene", "c1", 6, "CRT-1"),
            audit("CRT-1", "dispatched", "en_route", 3, "c1"),
        ],
        ("on_scene", 14 * 60, "c1"),
    ),
    (
        "cleared frees the team at once",
        [
            decision("c1"),
            dispatch("assigned", "c1", 1, "CRT-1"),
            dispatch("cleared", "c1", 15, "CRT-1"),
        ],
        ("available", 5 * 60, None),
    ),
    (
        "a team stood down by a ccd re-decision is free",
        [
            decision("c1"),
            dispatch("assigned", "c1", 1, "CRT-1"),
            dispatch("cancelled", "c1", 2, "CRT-1", reason="superseded:ccd"),
        ],
        ("available", 18 * 60, None),
    ),
    (
        "out of service",
        [audit("CRT-1", "available", "out_of_service", 5)],
        ("out_of_service", 15 * 60, None),
    ),
]


@pytest.mark.parametrize(("events", "expected"), [t[1:] for t in TEAMS], ids=[t[0] for t in TEAMS])
def test_teams(events: list[Any], expected: tuple[Any, ...]) -> None:
    team = next(t for t in supervisor(events, 20)["teams"] if t["team_id"] == "CRT-1")
    assert (team["status"], team["in_status_s"], team["call_id"]) == expected


def test_queue_order_does_not_depend_on_the_topics_interleaving() -> None:
    events = [decision("c1"), dispatch("queued", "c1", 1), dispatch("assigned", "c1", 4, "CRT-1")]
    for order in (events, events[::-1], [events[1], events[0], events[2]]):
        view = supervisor(order, 5)
        assert view["queue"] == []
        assert [(c["call_id"], c["dispatch"], c["team_id"]) for c in view["calls"]] == [
            ("c1", "assigned", "CRT-1")
        ]


def test_queue_waiting_time_and_the_end_of_waiting() -> None:
    events = [
        decision("c1", priority=2),
        decision("c2"),
        dispatch("queued", "c1", 1),
        dispatch("queued", "c2", 3),
    ]
    view = supervisor(events, 7)
    assert [(q["call_id"], q["waiting_s"], q["limit_s"]) for q in view["queue"]] == [
        ("c1", 360, 600),
        ("c2", 240, 600),
    ]
    events.append(dispatch("assigned", "c1", 8, "CRT-1", queue_wait_s=420))
    assert [q["call_id"] for q in supervisor(events, 9)["queue"]] == ["c2"]


def test_clinicians_on_the_line_until_responders_arrive_or_the_phone_part_ends() -> None:
    events = [
        decision("c1", "ccd"),
        engaged("c1", 1),
        decision("c2", "crt"),
        engaged("c2", 1, "clin-0002"),
        decision("c3", "ccd"),
        engaged("c3", 2),
    ]
    assert [e["call_id"] for e in supervisor(events, 5)["on_the_line"]] == ["c1", "c2", "c3"]
    events += [
        disposed("c1", "resolved_by_phone", 6),
        dispatch("assigned", "c2", 2, "CRT-1"),
        dispatch("on_scene", "c2", 9, "CRT-1"),
        disposed("c3", "dispatch_crt", 4),
    ]
    on_line = supervisor(events, 10)["on_the_line"]
    assert [(e["call_id"], e["on_line_s"], e["disposition"]) for e in on_line] == [
        ("c3", 8 * 60, "dispatch_crt")
    ]


def test_fallbacks_and_backup_requests_newest_first_and_bounded() -> None:
    board = Board(recent_items=2)
    for i in range(3):
        board.apply(decision(f"c{i}"))
        board.apply(dispatch("fallback", f"c{i}", i, reason="no_team_free", queue_wait_s=600))
    board.apply(dispatch("backup_requested", "c9", 5, "CRT-2"))
    view = supervisor_view(board, at(6), POLICY, SETTINGS)
    assert [(f["call_id"], f["reason"]) for f in view["fallbacks"]] == [
        ("c2", "no_team_free"),
        ("c1", "no_team_free"),
    ]
    assert [(b["call_id"], b["team_id"]) for b in view["backups"]] == [("c9", "CRT-2")]


TASKS = [
    (
        "scheduled, not yet released",
        [scheduled("k1")],
        [("k1", None, 0, False)],
    ),
    (
        "released at the due event, attempts counted",
        [scheduled("k1"), due("k1", 60), outcome("k1", "unable_to_reach", 70), due("k1", 130, 2)],
        [("k1", at(130).isoformat().replace("+00:00", "Z"), 1, False)],
    ),
    (
        "a final outcome closes the case",
        [scheduled("k1"), due("k1", 60), outcome("k1", "connected_to_care", 70)],
        [],
    ),
    (
        "every attempt unable to reach closes it too (1 + retries)",
        [scheduled("k1"), *[outcome("k1", "unable_to_reach", m) for m in (70, 80, 90, 100)]],
        [],
    ),
    (
        "an outcome for an unknown case changes nothing",
        [outcome("k9", "reached", 10), scheduled("k1", at_risk=True)],
        [("k1", None, 0, True)],
    ),
]


@pytest.mark.parametrize(("events", "expected"), [t[1:] for t in TASKS], ids=[t[0] for t in TASKS])
def test_followup_tasks(events: list[Any], expected: list[tuple[Any, ...]]) -> None:
    view = navigator_view(board_of(events), at(140))
    got = [
        (t["case_id"], t["released_at"], t["attempts_made"], t["at_risk"]) for t in view["tasks"]
    ]
    assert got == expected


ALERTS = [
    ("nothing is late", [decision("c1"), dispatch("assigned", "c1", 1, "CRT-1")], 5, []),
    (
        "a team dispatched past its threshold (10 min)",
        [decision("c1"), dispatch("assigned", "c1", 1, "CRT-1")],
        11,
        [("team_status", "CRT-1", "warning")],
    ),
    (
        "a call waiting near the fallback limit (10 - 2 min)",
        [decision("c1"), dispatch("queued", "c1", 0)],
        8,
        [("queue_wait", "c1", "critical")],
    ),
    (
        "a call waiting, not yet near the limit",
        [decision("c1"), dispatch("queued", "c1", 0)],
        7.9,
        [],
    ),
    (
        "an urgent consult past its 2-minute target",
        [consult("k1", 0), consult("k2", 0, "routine")],
        2,
        [("consult_overdue", "k1", "critical")],
    ),
    (
        "an answered consult is not overdue",
        [consult("k1", 0), answered("k1", 1)],
        30,
        [],
    ),
    (
        "the CCD stage's overdue notice counts even before the console's clock gets there",
        [consult_overdue("k3", 31)],
        5,
        [("consult_overdue", "k3", "warning")],
    ),
    (
        "a follow-up at risk, and one past its deadline",
        [scheduled("f1", at_risk=True), scheduled("f2", deadline_h=1)],
        61,
        [("followup_overdue", "f2", "critical"), ("followup_at_risk", "f1", "warning")],
    ),
    (
        "Care Navigation's overdue notice",
        [scheduled("f1"), followup_overdue("f1", 5)],
        6,
        [("followup_overdue", "f1", "critical")],
    ),
    (
        "a closed follow-up raises nothing",
        [scheduled("f1", deadline_h=1), outcome("f1", "declined", 30)],
        90,
        [],
    ),
]


@pytest.mark.parametrize(
    ("events", "minute", "expected"), [a[1:] for a in ALERTS], ids=[a[0] for a in ALERTS]
)
def test_alerts(events: list[Any], minute: float, expected: list[tuple[str, str, str]]) -> None:
    found = alerts(board_of(events), at(minute), POLICY, SETTINGS)
    assert [(a.kind, a.subject, a.severity) for a in found] == expected


def test_an_alert_is_raised_by_the_clock_alone() -> None:
    board = board_of([decision("c1"), dispatch("assigned", "c1", 0, "CRT-1")])
    applied = board.applied
    assert alerts(board, at(9.9), POLICY, SETTINGS) == []
    raised = alerts(board, at(10), POLICY, SETTINGS)
    assert board.applied == applied  # no event in between: only time passed
    assert [(a.kind, a.subject, a.since) for a in raised] == [("team_status", "CRT-1", at(10))]
    assert raised[0].message == "CRT-1 dispatched for 10 min (alert at 10 min)"


def test_status_thresholds_come_from_the_policy() -> None:
    board = board_of([decision("c1"), dispatch("assigned", "c1", 0, "CRT-1")])

    def with_thresholds(table: dict[str, float]) -> Policy:
        dispatch_ = POLICY.dispatch.model_copy(update={"status_alert_minutes": table})
        return POLICY.model_copy(update={"dispatch": dispatch_})

    stricter = with_thresholds({"dispatched": 3})
    assert [a.kind for a in alerts(board, at(3), stricter, SETTINGS)] == ["team_status"]
    assert alerts(board, at(300), with_thresholds({}), SETTINGS) == []


def test_team_view_holds_only_that_teams_assignment() -> None:
    board = board_of(
        [
            decision("c1"),
            decision("c2"),
            dispatch("assigned", "c1", 1, "CRT-1", call_type="WELFARE CHECK"),
            dispatch("assigned", "c2", 1, "CRT-2"),
        ]
    )
    mine = team_view(board, "CRT-1", at(2))
    assert mine["assignment"]["call_id"] == "c1"
    assert mine["status"] == "dispatched"
    assert mine["actions"] == ["en_route", "on_scene", "cleared", "cleared_declined", "backup"]
    assert "c2" not in repr(mine)
    assert team_view(board, "CRT-3", at(2))["assignment"] is None


ACTIONS = [
    ("available", None, ["out_of_service"]),
    ("dispatched", "c1", ["en_route", "on_scene", "cleared", "cleared_declined", "backup"]),
    ("on_scene", "c1", ["transporting", "cleared", "cleared_declined", "backup"]),
    ("transporting", "c1", ["cleared", "cleared_declined", "backup"]),
    ("out_of_service", None, ["available"]),
]


@pytest.mark.parametrize(("status", "call_id", "expected"), ACTIONS)
def test_team_buttons_follow_the_dispatch_state_machine(
    status: str, call_id: str | None, expected: list[str]
) -> None:
    from heart.cli.console.board import TeamRow

    assert allowed_actions(TeamRow("CRT-1", status, at(0), call_id)) == expected  # type: ignore[arg-type]


def test_analyst_view_has_counts_and_no_ids() -> None:
    board = board_of([decision("c1"), decision("c2", "ccd", revision=2, rules_route="crt")])
    view = analyst_view(board, at(1), POLICY, SETTINGS)
    assert view["open_calls_by_route"] == {"ccd": 1, "crt": 1}
    assert view["overruled_open_calls"] == 1
    assert view["teams_by_status"] == {"available": 2}
    text = repr(view)
    assert "c1" not in text and "CRT-1" not in text


def test_prune_forgets_what_ended_long_ago() -> None:
    from datetime import timedelta

    board = board_of([decision("c1"), closure("c1", 1), decision("c2")])
    board.prune(at(30), timedelta(minutes=60))
    assert set(board.calls) == {"c1", "c2"}
    board.prune(at(62), timedelta(minutes=60))
    assert set(board.calls) == {"c2"}
    board.apply(dispatch("queued", "never-decided", 70))
    assert set(board.early) == {"never-decided"}
    board.prune(at(131), timedelta(minutes=60))
    assert board.early == {}
