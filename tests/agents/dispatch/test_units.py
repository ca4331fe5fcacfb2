"""Unit status state machine: every (current, reported) pair against a table written out here,
independently of the module's own table."""

from __future__ import annotations

import itertools

import pytest

from heart.agents.dispatch.units import (
    ON_CALL,
    STATUSES,
    TRANSITIONS,
    IllegalTransition,
    assign,
    transition,
)
from heart.schemas.dispatch import UnitStatus

LEGAL: set[tuple[str, str]] = {
    ("available", "out_of_service"),
    ("dispatched", "en_route"),
    ("dispatched", "on_scene"),
    ("dispatched", "cleared"),
    ("en_route", "on_scene"),
    ("en_route", "cleared"),
    ("on_scene", "transporting"),
    ("on_scene", "cleared"),
    ("transporting", "cleared"),
    ("cleared", "available"),
    ("cleared", "out_of_service"),
    ("out_of_service", "available"),
}


def test_statuses_are_the_wire_statuses() -> None:
    assert set(STATUSES) == set(TRANSITIONS)
    assert set(STATUSES) == {
        "available",
        "dispatched",
        "en_route",
        "on_scene",
        "transporting",
        "cleared",
        "out_of_service",
    }
    assert {"dispatched", "en_route", "on_scene", "transporting"} == ON_CALL


@pytest.mark.parametrize(("current", "new"), list(itertools.product(STATUSES, STATUSES)))
def test_every_reported_transition(current: UnitStatus, new: UnitStatus) -> None:
    if current == new or (current, new) in LEGAL:
        transition(current, new)
        return
    with pytest.raises(IllegalTransition) as caught:
        transition(current, new)
    error = caught.value
    assert (error.current, error.new) == (current, new)
    assert str(error).startswith(f"{current} -> {new}: ")
    assert error.reason


@pytest.mark.parametrize("current", [s for s in STATUSES if s != "dispatched"])
def test_a_team_never_dispatches_itself(current: UnitStatus) -> None:
    with pytest.raises(IllegalTransition, match="only an assignment dispatches a team"):
        transition(current, "dispatched")


@pytest.mark.parametrize("current", sorted(ON_CALL))
def test_a_team_on_a_call_must_clear_before_going_out_of_service(current: UnitStatus) -> None:
    with pytest.raises(IllegalTransition, match="clear it first"):
        transition(current, "out_of_service")


@pytest.mark.parametrize(
    ("current", "new", "reason"),
    [
        ("available", "en_route", "not on a call"),
        ("available", "cleared", "not on a call"),
        ("out_of_service", "on_scene", "not on a call"),
        ("en_route", "available", "leaves a call by reporting cleared"),
        ("transporting", "on_scene", "allowed: cleared"),
    ],
)
def test_reasons_say_why(current: UnitStatus, new: UnitStatus, reason: str) -> None:
    with pytest.raises(IllegalTransition, match=reason):
        transition(current, new)


@pytest.mark.parametrize("current", STATUSES)
def test_only_an_available_team_can_be_assigned(current: UnitStatus) -> None:
    if current == "available":
        assign(current)
        return
    with pytest.raises(IllegalTransition, match="only an available team"):
        assign(current)
