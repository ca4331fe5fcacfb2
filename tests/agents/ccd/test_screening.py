"""The C-SSRS screener's triage rule over every valid set of answers, and the screenings
it refuses. The expectation is written as "the highest level any yes answer points to",
not as the module's if/elif chain, so the two are independent."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from heart.agents.ccd.screening import (
    INCOMPLETE,
    INCONSISTENT,
    risk_level,
    screening_problem,
)
from heart.schemas.ccd import RISK_LEVELS, CssrsAnswers

#: Each yes answer's triage point on the published screener.
POINT_OF_YES = {"q1": "low", "q2": "low", "q3": "moderate", "q4": "high", "q5": "high"}
POINT_OF_Q6 = {"past_3_months": "high", "longer_ago": "moderate"}


def valid_screenings() -> list[dict[str, Any]]:
    """Every set of answers the screener can produce: Q3-Q5 only after a yes to Q2, Q6's
    timing only after a yes to Q6."""
    rows = []
    after_q2 = [None, *itertools.product((False, True), repeat=3)]
    q6_options = [(False, None), (True, "past_3_months"), (True, "longer_ago")]
    for q1, q2 in itertools.product((False, True), repeat=2):
        for q345 in after_q2:
            if (q345 is None) == q2:  # Q3-Q5 asked exactly when Q2 is yes
                continue
            q3, q4, q5 = q345 or (None, None, None)
            for q6, when in q6_options:
                rows.append(
                    {"q1": q1, "q2": q2, "q3": q3, "q4": q4, "q5": q5, "q6": q6, "q6_when": when}
                )
    return rows


def expected(row: dict[str, Any]) -> str:
    points = [POINT_OF_YES[q] for q in POINT_OF_YES if row[q]]
    if row["q6"]:
        points.append(POINT_OF_Q6[row["q6_when"]])
    return max(points, key=RISK_LEVELS.index, default="none")


ROWS = valid_screenings()


def test_the_table_is_every_valid_combination() -> None:
    # Q1 x Q2=no x Q6 (3) + Q1 x Q2=yes x Q3-Q5 (8) x Q6 (3)
    assert len(ROWS) == 2 * 3 + 2 * 8 * 3 == 54
    assert len({tuple(r.values()) for r in ROWS}) == 54
    assert {expected(r) for r in ROWS} == set(RISK_LEVELS)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: ",".join(f"{k}={v}" for k, v in r.items()))
def test_risk_level(row: dict[str, Any]) -> None:
    answers = CssrsAnswers(**row)
    assert screening_problem(answers) is None
    assert risk_level(answers) == expected(row)


@pytest.mark.parametrize(
    ("answers", "level"),
    [
        ({"q1": False, "q2": False, "q6": False}, "none"),
        ({"q1": True, "q2": False, "q6": False}, "low"),
        ({"q1": True, "q2": True, "q3": False, "q4": False, "q5": False, "q6": False}, "low"),
        ({"q1": True, "q2": True, "q3": True, "q4": False, "q5": False, "q6": False}, "moderate"),
        ({"q1": False, "q2": False, "q6": True, "q6_when": "longer_ago"}, "moderate"),
        ({"q1": False, "q2": False, "q6": True, "q6_when": "past_3_months"}, "high"),
        ({"q1": True, "q2": True, "q3": False, "q4": True, "q5": False, "q6": False}, "high"),
        ({"q1": True, "q2": True, "q3": False, "q4": False, "q5": True, "q6": False}, "high"),
    ],
)
def test_the_published_examples(answers: dict[str, Any], level: str) -> None:
    assert risk_level(CssrsAnswers(**answers)) == level


@pytest.mark.parametrize("missing", [("q3",), ("q4",), ("q5",), ("q3", "q4", "q5")])
def test_q3_to_q5_are_required_after_a_yes_to_q2(missing: tuple[str, ...]) -> None:
    row = {"q1": True, "q2": True, "q3": True, "q4": True, "q5": True, "q6": False}
    for question in missing:
        row[question] = None
    answers = CssrsAnswers(**row)
    problem = screening_problem(answers)
    assert problem is not None and problem.reason == INCOMPLETE
    assert all(q in problem.detail for q in missing)
    with pytest.raises(ValueError, match=INCOMPLETE):
        risk_level(answers)


def test_q6_timing_is_required_after_a_yes_to_q6() -> None:
    answers = CssrsAnswers(q1=False, q2=False, q6=True)
    problem = screening_problem(answers)
    assert problem is not None and problem.reason == INCOMPLETE and "q6_when" in problem.detail
    with pytest.raises(ValueError, match=INCOMPLETE):
        risk_level(answers)


@pytest.mark.parametrize(
    "row",
    [
        {"q1": True, "q2": False, "q3": True, "q6": False},
        {"q1": False, "q2": False, "q4": False, "q6": False},
        {"q1": False, "q2": False, "q6": False, "q6_when": "longer_ago"},
    ],
)
def test_answers_the_screener_does_not_ask_are_refused(row: dict[str, Any]) -> None:
    answers = CssrsAnswers(**row)
    problem = screening_problem(answers)
    assert problem is not None and problem.reason == INCONSISTENT
    with pytest.raises(ValueError, match=INCONSISTENT):
        risk_level(answers)
