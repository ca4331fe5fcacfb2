"""One valid instance of every CCD event (ccd.assessments and ccd.consults)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from heart.schemas.ccd import (
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    ConsultAnswered,
    ConsultClosed,
    ConsultOverdue,
    ConsultRequested,
)
from tests.factories import T0

CLINICIAN = "CL-0042"
ALL_STEPS = {
    "warning_signs": True,
    "internal_coping": True,
    "distraction": True,
    "people_for_help": True,
    "professionals": True,
    "safe_environment": True,
}


def ccd_events() -> list[Any]:
    return [
        CcdEngaged(call_id="C-1001", clinician_id=CLINICIAN, occurred_at=T0),
        CcdScreened(
            call_id="C-1001",
            clinician_id=CLINICIAN,
            occurred_at=T0,
            answers={"q1": True, "q2": True, "q3": True, "q4": False, "q5": False, "q6": False},
        ),
        CcdSafetyPlan(
            call_id="C-1001",
            clinician_id=CLINICIAN,
            occurred_at=T0,
            steps=ALL_STEPS,
            record_ref="ehr:plan/7731",
        ),
        CcdReferral(
            call_id="C-1001",
            clinician_id=CLINICIAN,
            occurred_at=T0,
            resource="988",
            warm_handoff=True,
        ),
        CcdDisposition(
            call_id="C-1001",
            clinician_id=CLINICIAN,
            occurred_at=T0,
            disposition="resolved_by_phone",
        ),
        ConsultRequested(
            consult_id="Q-1", requested_by="crt", team_id="CRT-1", urgency="urgent", occurred_at=T0
        ),
        ConsultAnswered(consult_id="Q-1", clinician_id=CLINICIAN, occurred_at=T0),
        ConsultClosed(consult_id="Q-1", clinician_id=CLINICIAN, occurred_at=T0),
        ConsultOverdue(
            consult_id="Q-2",
            requested_by="dispatcher",
            urgency="urgent",
            call_id="C-1001",
            occurred_at=T0 + timedelta(minutes=3),
            requested_at=T0,
            due_at=T0 + timedelta(minutes=2),
        ),
    ]
