"""A clinician's disposition as the call's next triage decision.

The disposition overrules the policy's guess about the call, not the pilots' coverage: a
clinician who hears that someone must go sends a team the rules did not, or keeps on the
phone a call the rules sent a team to. The result is the next revision of the call's
decision (``revision`` + 1, ``supersedes`` the decision in force), with the reason
``clinician_disposition``, so dispatch reacts to it as to any re-decision.

Routes by disposition
    ``resolved_by_phone`` and ``transferred_988`` -> ccd: the clinician ended the contact
    without sending anyone, so CCD is eligible and reached whatever its hours say.
    ``police_needed`` and ``ems_needed`` -> police: the CAD's standard response.
    ``dispatch_crt`` -> crt, ``dispatch_cor`` -> cor, when the pilot's coverage allows it.
    ``disconnected`` -> the route in force: the clinician learned nothing that overrules it.

Coverage
    A requested team pilot is checked with triage's own coverage rule (enabled, hours,
    beat and area, weapon and violence exclusions): :func:`heart.agents.triage.decide`'s,
    not a copy. Its call types are not checked: the clinician's judgement replaces them.
    Hours are judged at the disposition's time, when the team would go, not at the call's
    receipt. A refused pilot's entry in ``eligibility`` carries the reasons, so the call
    counts as eligible and missed under the first one (:func:`heart.agents.triage.decide.missed`),
    and the call goes to the next route the policy allows: after crt, cor when a weapon or
    violence is reported and CoR's coverage allows it (as the rules would route it), else
    police; after cor, police.

Both routes
    ``route`` is the route in force; ``rules_route`` keeps the route the rules chose (the
    superseded decision's ``rules_route``, or its ``route`` when the rules decided it), so
    overrides can be counted in each direction.

Reasons (``TriageDecision.reasons``), in this order:
    ``clinician_disposition``, ``disposition:<value>``; per team pilot tried,
    ``<pilot>_eligible`` or one ``<pilot>_ineligible:<reason>`` per reason;
    ``resolved_by_phone`` when the route is ccd; ``cn_follows_up`` or
    ``cn_ineligible:pilot_disabled`` as triage adds them; ``stale`` last, when stale.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from heart.agents.ids import uuid5_hex

# The coverage rule is triage's: one definition of hours and area for the whole system.
from heart.agents.triage.decide import ineligible_reasons
from heart.policy.model import PILOTS, Policy, normalize
from heart.schemas.ccd import CcdDisposition, Disposition
from heart.schemas.triage import IneligibleReason, PilotEligibility, Route, TriageDecision

REASON = "clinician_disposition"

#: The route each disposition asks for; None keeps the route in force.
REQUESTED_ROUTE: dict[Disposition, Route | None] = {
    "resolved_by_phone": "ccd",
    "transferred_988": "ccd",
    "dispatch_crt": "crt",
    "dispatch_cor": "cor",
    "police_needed": "police",
    "ems_needed": "police",
    "disconnected": None,
}

_NAMESPACE = uuid.UUID("a3e1c7d2-5b64-4f1e-9c2a-8d7f0b3e6a19")
_PILOT_ORDER = {pilot: index for index, pilot in enumerate(PILOTS)}


@dataclass(frozen=True, slots=True)
class Redecision:
    """The call's next decision, and what the clinician asked for."""

    decision: TriageDecision
    #: The route the disposition asked for (the route in force for ``disconnected``).
    requested: Route
    #: Why the requested team pilot could not go; empty when it went (or none was asked).
    refused: tuple[IneligibleReason, ...] = ()

    @property
    def overrides_rules(self) -> bool:
        return self.decision.route != self.decision.rules_route


def disposition_decision_id(call_id: str, disposition_event_id: str) -> str:
    # Deterministic, as triage's decision ids are: re-applied after a crash, the same
    # disposition makes the same decision, and consumers drop the repeat.
    return uuid5_hex(_NAMESPACE, f"{call_id}|{disposition_event_id}")


def redecide(
    current: TriageDecision,
    disposition: CcdDisposition,
    policy: Policy,
    *,
    now: datetime,
    stale: bool = False,
    event_id: str | None = None,
) -> Redecision:
    """The decision that replaces ``current`` after ``disposition`` (module docstring).

    ``now`` (aware) is the decision's time; ``stale`` says the disposition came more than
    the policy's ``stale_call_minutes`` before it (judged by the stage, as triage judges
    its events), and then no team pilot is sent. Raises ValueError for another call's
    disposition.
    """
    if disposition.call_id != current.call_id:
        raise ValueError(
            f"disposition for call {disposition.call_id!r} applied to call {current.call_id!r}"
        )
    requested: Route = REQUESTED_ROUTE[disposition.disposition] or current.route
    eligibility = {entry.pilot: entry for entry in current.eligibility}
    reasons = [REASON, f"disposition:{disposition.disposition}"]
    refused: tuple[IneligibleReason, ...] = ()

    route: Route = requested
    if requested in ("crt", "cor"):
        risky = current.weapon_involved or current.violence_reported
        chain: tuple[Route, ...] = ("crt", "cor") if requested == "crt" and risky else (requested,)
        route = "police"
        for pilot in chain:
            why = _coverage(pilot, current, disposition.occurred_at, policy, stale)
            eligibility[pilot] = PilotEligibility(pilot=pilot, eligible=not why, reasons=why)
            if pilot == requested:
                refused = tuple(why)
            if why:
                reasons.extend(f"{pilot}_ineligible:{reason}" for reason in why)
                continue
            reasons.append(f"{pilot}_eligible")
            route = pilot
            break
    elif route == "ccd":
        # The clinician resolved it: CCD took the call, whatever its hours or types say.
        eligibility["ccd"] = PilotEligibility(pilot="ccd", eligible=True)
        reasons.append("resolved_by_phone")

    involved = {"ccd"} | ({route} if route != "police" else set())
    if route in policy.followed_by_cn:
        involved.add("cn")
        reasons.append("cn_follows_up")
    elif route in policy.pilots.cn.follows:
        reasons.append("cn_ineligible:pilot_disabled")
    if stale:
        reasons.append("stale")

    data: dict[str, Any] = current.model_dump(exclude={"event_id", "occurred_at"})
    data.update(
        event_id=event_id or disposition_decision_id(current.call_id, disposition.event_id),
        occurred_at=now,
        route=route,
        rules_route=current.rules_route or current.route,
        pilots=sorted(involved, key=_PILOT_ORDER.__getitem__),
        reasons=reasons,
        eligibility=sorted(eligibility.values(), key=lambda e: _PILOT_ORDER[e.pilot]),
        policy_version=policy.version_id,
        revision=current.revision + 1,
        supersedes=current.event_id,
        source_event_id=disposition.event_id,
        source_occurred_at=disposition.occurred_at,
    )
    return Redecision(TriageDecision.model_validate(data), requested, refused)


def _coverage(
    pilot: str, current: TriageDecision, at: datetime, policy: Policy, stale: bool
) -> list[IneligibleReason]:
    """Why ``pilot``'s coverage keeps it off the call at ``at``; empty when it can go."""
    why = ineligible_reasons(
        policy.rule(pilot),
        policy.known_beat_set,
        at.astimezone(policy.zone),
        normalize(current.beat or "") or None,
        current.weapon_involved,
        current.violence_reported,
    )
    if stale and not why:
        return ["stale"]
    return why
