"""The C-SSRS screener: which answers a screening must carry, and its risk level.

The rule is the screener's published triage (Columbia Lighthouse Project, C-SSRS Screener
with triage points; see docs/ccd.md):

- high: Q4 or Q5 yes, or Q6 yes within the past 3 months;
- moderate: Q3 yes, or Q6 yes longer ago;
- low: only Q1 and/or Q2 yes;
- none: every answer no.

As the screener is given, Q3 to Q5 are asked only after a yes to Q2, and Q6's timing only
after a yes to Q6. Q1, Q2 and Q6 are always asked (the schema requires them).
"""

from __future__ import annotations

from dataclasses import dataclass

from heart.schemas.ccd import CssrsAnswers, RiskLevel

#: Dead-letter reasons for a screening the stage cannot score.
INCOMPLETE = "screening_incomplete"
INCONSISTENT = "screening_inconsistent"

_AFTER_Q2 = ("q3", "q4", "q5")


@dataclass(frozen=True, slots=True)
class ScreeningProblem:
    """Why a screening cannot be scored: ``reason`` for the dead letter, ``detail`` naming
    the questions (never an answer's meaning beyond yes/no)."""

    reason: str
    detail: str


def screening_problem(answers: CssrsAnswers) -> ScreeningProblem | None:
    """None when the screening has exactly the answers the screener asks for."""
    if answers.q2:
        missing = [q for q in _AFTER_Q2 if getattr(answers, q) is None]
        if missing:
            return ScreeningProblem(
                INCOMPLETE, f"{', '.join(missing)} must be answered when q2 is yes"
            )
    else:
        asked = [q for q in _AFTER_Q2 if getattr(answers, q) is not None]
        if asked:
            return ScreeningProblem(
                INCONSISTENT, f"{', '.join(asked)} are asked only when q2 is yes; q2 is no"
            )
    if answers.q6 and answers.q6_when is None:
        return ScreeningProblem(INCOMPLETE, "q6_when must be answered when q6 is yes")
    if not answers.q6 and answers.q6_when is not None:
        return ScreeningProblem(INCONSISTENT, "q6_when is asked only when q6 is yes; q6 is no")
    return None


def risk_level(answers: CssrsAnswers) -> RiskLevel:
    """The screener's triage level. Raises ValueError for a screening that
    :func:`screening_problem` refuses: a partial screening has no level."""
    problem = screening_problem(answers)
    if problem is not None:
        raise ValueError(f"{problem.reason}: {problem.detail}")
    recent = answers.q6 and answers.q6_when == "past_3_months"
    if answers.q4 or answers.q5 or recent:
        return "high"
    if answers.q3 or answers.q6:
        return "moderate"
    if answers.q1 or answers.q2:
        return "low"
    return "none"
