"""Simulated Crisis Call Diversion clinicians: what they do on a call, as events in time.

Pure: a decision or an assignment in, the events the clinicians will send (with their
times) out; no broker, no clock. The city puts them on its agenda. The same config, policy,
seed and inputs in the same order give the same events, ids included.

What happens, and when (rates and delays from :mod:`heart.simulator.clinician_config`)
    A ``ccd`` call (its first decision): a clinician joins (``ccd.engaged``), screens most
    callers (``ccd.screened``), completes a safety plan with callers at risk
    (``ccd.safety_plan``), connects some to resources (``ccd.referral``), and ends with a
    ``ccd.disposition``. A phone ending (resolved by phone, a transfer to 988, a
    disconnect) is followed by the CAD's ``call.closed``.

    A call on a team or police route whose decision lists ccd among its pilots: a
    clinician may stay on the line until the responders arrive, screen the caller, and
    sometimes end the call by phone before they do (a disposition); most often the route
    stands and no disposition is sent.

    Consults: a dispatcher asks about a behavioural call no clinician is on; officers on a
    behavioural police call, and CRT or CoR teams after their assignment, ask from the
    field. Only while CCD is open (the policy's ``[pilots.ccd]`` hours), since no clinician
    answers outside them. A clinician answers within the urgency's target (the policy's
    ``[ccd.consult_targets]``), except a configured share answered late, and closes it.

The screener's answers follow its skip logic: Q3 to Q5 only after a yes to Q2, Q6's
timing only after a yes to Q6. Each screening is built for a risk level drawn from the
configured mix, so the levels the CCD stage derives come out at the configured rates.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel

from heart.policy.model import Policy
from heart.schemas.calls import CallClosed
from heart.schemas.ccd import (
    BehaviourWhen,
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    ConsultAnswered,
    ConsultClosed,
    ConsultRequested,
    CssrsAnswers,
    Requester,
    SafetyPlanSteps,
)
from heart.schemas.triage import TriageDecision
from heart.simulator.clinician_config import ClinicianConfig, Minutes, Requesters
from heart.streams.topics import CAD_CALLS, CCD_ASSESSMENTS, CCD_CONSULTS, TopicSpec

#: Dispositions that end the contact on the phone, after which the CAD closes the call.
PHONE_ENDINGS: frozenset[str] = frozenset({"resolved_by_phone", "transferred_988"})
#: On the clinician's own (ccd) calls, a disconnect ends the call too.
CCD_CALL_ENDINGS: frozenset[str] = PHONE_ENDINGS | {"disconnected"}
TRANSFER_RESOURCE = "988"
_STEPS: tuple[str, ...] = tuple(SafetyPlanSteps.model_fields)
_CONSULT_ID_MAX = 64


@dataclass(frozen=True, slots=True)
class Scheduled:
    """One event to send at ``at`` on ``topic`` with ``key``."""

    at: datetime
    topic: TopicSpec
    key: str
    event: BaseModel


K = TypeVar("K", bound=str)


def _pick(rng: random.Random, mix: Mapping[K, float]) -> K:
    keys = list(mix)
    return rng.choices(keys, [mix[k] for k in keys])[0]


class Clinicians:
    """The clinicians on the 911 floor (module docstring)."""

    def __init__(
        self,
        config: ClinicianConfig,
        policy: Policy,
        *,
        seed: int = 2022,
        decline_followup_share: float = 0.0,
    ) -> None:
        self.config = config
        # A stream of its own: adding clinicians leaves the responders' draws unchanged.
        self.rng = random.Random(seed + 2)
        self.decline_followup_share = decline_followup_share
        self._targets = policy.ccd_work.consult_targets
        self._ccd = policy.rule("ccd")
        self._zone = policy.zone
        referrals = config.referrals
        self._resources = list(policy.ccd_work.referral_resources)
        self._weights = [
            referrals.resource_weights.get(r, referrals.unlisted_weight) for r in self._resources
        ]
        if not any(self._weights):
            # No weight for any of this policy's resources: refer to them evenly.
            self._weights = [1.0] * len(self._resources)
        self.counts: Counter[str] = Counter()

    # --- inputs ---------------------------------------------------------------------------

    def on_decision(self, decision: TriageDecision, now: datetime) -> list[Scheduled]:
        """What the clinicians (and dispatchers and officers) do about a call's first
        decision. Re-decisions start nothing: the work on the call is already planned."""
        if decision.revision != 1:
            return []
        rng = self.rng
        line = self.config.on_the_line
        if decision.route == "ccd":
            return self._contact(decision, now)
        out: list[Scheduled] = []
        engaged = (
            decision.route in line.routes and "ccd" in decision.pilots and rng.random() < line.share
        )
        if engaged:
            out += self._on_the_line(decision, now)
        behavioural = decision.category is not None or "behavioral_health_flag" in decision.reasons
        if behavioural and not engaged:
            at = now + self._minutes(self.config.delays.engage)
            out += self._maybe_consult("dispatcher", decision.call_id, None, at)
        if behavioural and decision.route == "police":
            at = now + self._minutes(self.config.delays.police_consult)
            out += self._maybe_consult("police", decision.call_id, None, at)
        return out

    def on_assigned(self, call_id: str, team_id: str, route: str, now: datetime) -> list[Scheduled]:
        """A team was assigned to a call: it may ask a clinician from the field."""
        if route not in ("crt", "cor"):
            return []
        at = now + self._minutes(self.config.delays.team_consult)
        return self._maybe_consult(route, call_id, team_id, at)  # type: ignore[arg-type]

    # --- a clinician's own call -----------------------------------------------------------

    def _contact(self, decision: TriageDecision, now: datetime) -> list[Scheduled]:
        rng, config, delays = self.rng, self.config, self.config.delays
        call_id, clinician = decision.call_id, self._clinician()
        disposition = _pick(rng, config.ccd_calls.dispositions)
        at = now + self._minutes(delays.engage)
        out = [self._assessment(CcdEngaged, at, call_id, clinician)]
        if rng.random() < config.ccd_calls.screened_share:
            at += self._minutes(delays.screen)
            level = _pick(rng, config.screening.risk_levels)
            answers = self._answers(level)
            out.append(self._assessment(CcdScreened, at, call_id, clinician, answers=answers))
            # A caller who hung up leaves no time for a plan.
            share = config.safety_plans.share_by_risk.get(level, 0.0)
            if disposition != "disconnected" and rng.random() < share:
                at += self._minutes(delays.safety_plan)
                out.append(self._safety_plan(at, call_id, clinician))
        for resource, warm in self._referrals(disposition):
            at += self._minutes(delays.referral)
            out.append(
                self._assessment(
                    CcdReferral, at, call_id, clinician, resource=resource, warm_handoff=warm
                )
            )
        at += self._minutes(delays.disposition)
        out.append(
            self._assessment(CcdDisposition, at, call_id, clinician, disposition=disposition)
        )
        self.counts[f"disposition:{disposition}"] += 1
        if disposition in CCD_CALL_ENDINGS:
            out.append(self._close(call_id, disposition, at + self._minutes(delays.cad_close)))
        return out

    # --- on the line of a team or police call ---------------------------------------------

    def _on_the_line(self, decision: TriageDecision, now: datetime) -> list[Scheduled]:
        rng, config, delays = self.rng, self.config, self.config.delays
        line = config.on_the_line
        call_id, clinician = decision.call_id, self._clinician()
        outcome = _pick(rng, line.outcomes)
        engaged_at = now + self._minutes(delays.engage)
        # Everything happens before the responders arrive, so the steps share the time
        # from joining to the outcome rather than adding their own delays.
        ends_at = engaged_at + self._minutes(delays.line_disposition)
        steps: list[tuple[type[BaseModel], dict[str, object]]] = []
        if rng.random() < line.screened_share:
            level = _pick(rng, config.screening.risk_levels)
            steps.append((CcdScreened, {"answers": self._answers(level)}))
        if outcome != "none":
            for resource, warm in self._referrals(outcome):
                steps.append((CcdReferral, {"resource": resource, "warm_handoff": warm}))
        out = [self._assessment(CcdEngaged, engaged_at, call_id, clinician)]
        gap = ends_at - engaged_at
        for index, (model, fields) in enumerate(steps, start=1):
            at = engaged_at + gap * index / (len(steps) + 1)
            out.append(self._assessment(model, at, call_id, clinician, **fields))
        self.counts[f"line:{outcome}"] += 1
        if outcome == "none":
            return out
        out.append(
            self._assessment(CcdDisposition, ends_at, call_id, clinician, disposition=outcome)
        )
        if outcome in PHONE_ENDINGS:
            out.append(self._close(call_id, outcome, ends_at + self._minutes(delays.cad_close)))
        return out

    # --- the pieces -----------------------------------------------------------------------

    def _answers(self, level: str) -> CssrsAnswers:
        """C-SSRS screener answers whose triage level is ``level``, asked as the screener
        is given: Q3-Q5 only after a yes to Q2, Q6's timing only after a yes to Q6."""
        rng = self.rng
        q1, q2 = False, False
        q3 = q4 = q5 = None
        q6 = False
        when: BehaviourWhen | None = None
        if level == "low":
            q2 = rng.random() < 0.4
            q1 = True
            if q2:
                q3 = q4 = q5 = False
        elif level == "moderate":
            if rng.random() < 0.6:  # ideation with a method, no intent or plan
                q1, q2, q3, q4, q5 = True, True, True, False, False
                q6 = rng.random() < 0.3
                when = "longer_ago" if q6 else None
            else:  # suicidal behaviour, longer ago than 3 months
                q6, when = True, "longer_ago"
                q2 = rng.random() < 0.4
                q1 = q2 or rng.random() < 0.5
                if q2:
                    q3, q4, q5 = rng.random() < 0.5, False, False
        elif level == "high":
            if rng.random() < 0.7:  # intent or a plan
                q1, q2 = True, True
                q3 = rng.random() < 0.8
                q4, q5 = rng.choice(((True, False), (False, True), (True, True)))
                q6 = rng.random() < 0.4
                if q6:
                    when = rng.choice(("past_3_months", "longer_ago"))
            else:  # suicidal behaviour within the past 3 months
                q6, when = True, "past_3_months"
                q2 = rng.random() < 0.6
                q1 = q2 or rng.random() < 0.5
                if q2:
                    q3, q4, q5 = rng.random() < 0.6, rng.random() < 0.3, rng.random() < 0.3
        return CssrsAnswers(q1=q1, q2=q2, q3=q3, q4=q4, q5=q5, q6=q6, q6_when=when)

    def _safety_plan(self, at: datetime, call_id: str, clinician: str) -> Scheduled:
        rng = self.rng
        # A plan is built in the steps' order; one cut short stops part way.
        done = len(_STEPS) if rng.random() < self.config.safety_plans.all_steps_share else None
        if done is None:
            done = rng.randint(1, len(_STEPS) - 1)
        steps = SafetyPlanSteps(**{name: i < done for i, name in enumerate(_STEPS)})
        ref = f"SP-{rng.getrandbits(48):012x}"
        return self._assessment(CcdSafetyPlan, at, call_id, clinician, steps=steps, record_ref=ref)

    def _referrals(self, disposition: str) -> list[tuple[str, bool]]:
        """``(resource, warm_handoff)`` for the referrals made before ``disposition``."""
        rng, referrals = self.rng, self.config.referrals
        if disposition == "disconnected":
            return []
        if disposition == "transferred_988":
            # A transfer to 988 is a warm handoff to it, when the policy lists it.
            return [(TRANSFER_RESOURCE, True)] if TRANSFER_RESOURCE in self._resources else []
        if rng.random() >= referrals.share:
            return []
        first = rng.choices(self._resources, self._weights)[0]
        chosen = [first]
        others = [(r, w) for r, w in zip(self._resources, self._weights, strict=True) if r != first]
        if others and any(w for _, w in others) and rng.random() < referrals.second_share:
            chosen.append(rng.choices([r for r, _ in others], [w for _, w in others])[0])
        return [(r, rng.random() < referrals.warm_handoff_share) for r in chosen]

    def _maybe_consult(
        self, requested_by: Requester, call_id: str, team_id: str | None, at: datetime
    ) -> list[Scheduled]:
        rng = self.rng
        asked: Requesters = getattr(self.config.consults, requested_by)
        if rng.random() >= asked.share or not self._ccd_open(at):
            return []
        urgency = _pick(rng, asked.urgency)
        consult_id = _consult_id(call_id, requested_by)
        target = timedelta(minutes=self._targets.minutes(urgency))
        late = rng.random() < self.config.consults.late_share
        answered = at + target * (rng.uniform(1.2, 3.0) if late else rng.uniform(0.1, 0.9))
        closed = answered + self._minutes(self.config.delays.consult_close)
        clinician = self._clinician()
        self.counts[f"consult:{requested_by}"] += 1
        self.counts["consult_late"] += late
        events: Sequence[BaseModel] = (
            ConsultRequested(
                event_id=self._id(),
                occurred_at=at,
                consult_id=consult_id,
                requested_by=requested_by,
                call_id=call_id,
                team_id=team_id,
                urgency=urgency,
            ),
            ConsultAnswered(
                event_id=self._id(),
                occurred_at=answered,
                consult_id=consult_id,
                clinician_id=clinician,
            ),
            ConsultClosed(
                event_id=self._id(),
                occurred_at=closed,
                consult_id=consult_id,
                clinician_id=clinician,
            ),
        )
        return [Scheduled(e.occurred_at, CCD_CONSULTS, consult_id, e) for e in events]  # type: ignore[attr-defined]

    def _assessment(
        self, model: type[BaseModel], at: datetime, call_id: str, clinician: str, **fields: object
    ) -> Scheduled:
        event = model(
            event_id=self._id(), occurred_at=at, call_id=call_id, clinician_id=clinician, **fields
        )
        self.counts[event.event_type] += 1  # type: ignore[attr-defined]
        return Scheduled(at, CCD_ASSESSMENTS, call_id, event)

    def _close(self, call_id: str, disposition: str, at: datetime) -> Scheduled:
        closed = CallClosed(
            event_id=self._id(),
            call_id=call_id,
            occurred_at=at,
            disposition=disposition,
            followup_declined=self.rng.random() < self.decline_followup_share,
        )
        return Scheduled(at, CAD_CALLS, call_id, closed)

    def _ccd_open(self, at: datetime) -> bool:
        return self._ccd.enabled and self._ccd.open_at(at.astimezone(self._zone))

    def _clinician(self) -> str:
        return self.rng.choice(self.config.staff.clinician_ids)

    def _minutes(self, span: Minutes) -> timedelta:
        return timedelta(minutes=self.rng.uniform(span.shortest, span.longest))

    def _id(self) -> str:
        # From the seeded stream, not uuid4: the same seed gives the same event ids.
        return f"{self.rng.getrandbits(128):032x}"


def _consult_id(call_id: str, requested_by: str) -> str:
    """One consult per requester per call in the city: readable when it fits."""
    readable = f"{call_id}-{requested_by}"
    if len(readable) <= _CONSULT_ID_MAX:
        return readable
    return "consult-" + hashlib.sha256(readable.encode()).hexdigest()[:40]
