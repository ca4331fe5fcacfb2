"""What the ccd stage keeps per call, as pure transitions: the clinicians' events on
``ccd.assessments`` checked and de-duplicated, and the time a clinician stays on the line.

A clinician engaged on a call that responders attend stays on the line until they report on
scene (function 6). The time on the line runs from the call's first ``ccd.engaged`` to its
first ``dispatch.on_scene`` and is measured once per call. Either event may be handled first
(they come from different producers, and the on-scene report takes an extra hop to reach
the call's partition), so the record keeps both times and measures once it has both. A
clinician who joins after the responders arrived was never on the line before them: the
call is settled without a measurement.

Refused events change nothing: not the times, not the ids remembered, so a corrected event
sent again is taken.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from heart.agents.ccd.screening import risk_level, screening_problem
from heart.schemas.ccd import (
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    RiskLevel,
)
from heart.schemas.dispatch import DispatchEvent

#: Dead-letter reason for a referral to a resource the policy does not list.
UNKNOWN_RESOURCE = "unknown_referral_resource"
#: Event ids remembered per call (as triage does): a redelivery comes soon after.
SEEN_LIMIT = 32

AssessmentEvent = CcdEngaged | CcdScreened | CcdSafetyPlan | CcdReferral | CcdDisposition
Outcome = Literal["counted", "duplicate", "refused"]


class CallRecord(BaseModel):
    """One call's record; ids of events only, never a clinician's or a person's."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    call_id: str
    #: The earliest ``ccd.engaged`` of the call.
    engaged_at: AwareDatetime | None = None
    #: The first ``dispatch.on_scene`` of the call handled.
    arrived_at: AwareDatetime | None = None
    #: The time on the line was measured, or cannot be (the clinician joined later).
    on_line_settled: bool = False
    seen: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Assessed:
    outcome: Outcome
    #: The record after the event: unchanged when refused or a duplicate (None when there
    #: was none).
    state: CallRecord | None
    #: Dead-letter reason and detail when ``outcome`` is ``refused``; the detail names
    #: fields and questions, never a value an event carried.
    reason: str | None = None
    detail: str | None = None
    #: A scored screening's level.
    risk_level: RiskLevel | None = None
    #: The call's first ``ccd.engaged``: the call counts as engaged.
    first_engagement: bool = False
    #: Seconds on the line, when this event completed the measurement.
    on_line_s: float | None = None


def refusal(event: AssessmentEvent, resources: Collection[str]) -> tuple[str, str] | None:
    """``(reason, detail)`` when the stage cannot take ``event``, else None."""
    if isinstance(event, CcdScreened):
        problem = screening_problem(event.answers)
        if problem is not None:
            return problem.reason, f"answers: {problem.detail}"
    if isinstance(event, CcdReferral) and event.resource not in resources:
        allowed = ", ".join(sorted(resources))
        return (
            UNKNOWN_RESOURCE,
            f"resource: not an id of the policy's [ccd.referral_resources] ({allowed}); "
            "send one of them, or add the resource to the policy",
        )
    return None


def assess(
    state: CallRecord | None, event: AssessmentEvent, resources: Collection[str]
) -> Assessed:
    """What ``event`` does to its call's record (None: none yet). ``resources``: the
    referral resource ids the policy lists."""
    if state is not None and event.event_id in state.seen:
        return Assessed("duplicate", state)
    refused = refusal(event, resources)
    if refused is not None:
        return Assessed("refused", state, refused[0], refused[1])
    record = state or CallRecord(call_id=event.call_id)
    record = record.model_copy(update={"seen": [*record.seen, event.event_id][-SEEN_LIMIT:]})
    if isinstance(event, CcdScreened):
        return Assessed("counted", record, risk_level=risk_level(event.answers))
    if not isinstance(event, CcdEngaged):
        return Assessed("counted", record)
    first = record.engaged_at is None
    if first or event.occurred_at < record.engaged_at:  # type: ignore[operator]
        record = record.model_copy(update={"engaged_at": event.occurred_at})
    record, seconds = _settle(record)
    return Assessed("counted", record, first_engagement=first, on_line_s=seconds)


def arrived(state: CallRecord | None, event: DispatchEvent) -> tuple[CallRecord, float | None]:
    """The record after responders' ``dispatch.on_scene`` for its call, and the seconds
    on the line when this report completes the measurement. Later reports (a backup team,
    a redelivery) change nothing."""
    record = state or CallRecord(call_id=event.call_id)
    if record.arrived_at is not None:
        return record, None
    return _settle(record.model_copy(update={"arrived_at": event.occurred_at}))


def _settle(record: CallRecord) -> tuple[CallRecord, float | None]:
    if record.on_line_settled or record.engaged_at is None or record.arrived_at is None:
        return record, None
    settled = record.model_copy(update={"on_line_settled": True})
    if record.arrived_at < record.engaged_at:
        return settled, None
    return settled, _seconds(record.engaged_at, record.arrived_at)


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()
