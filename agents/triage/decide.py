"""Triage decisions as pure functions: a call and a policy in, a decision out.

No Faust, no I/O, no clock: the stream stage supplies ``now`` and ids, so the same inputs
always give the same decision and replays reproduce history.

Eligibility
    Every responding pilot whose call types match is listed, in the order ccd, crt, cor,
    with all the reasons it could not take the call, in this order: ``pilot_disabled``,
    ``outside_hours``, ``unknown_beat`` or ``outside_service_area``, ``weapon``,
    ``violence``. That list is what the department staffs from ("eligible but missed, and
    why"), so it reports every reason, not just the first.

    A pilot's types match when the call's category is among its ``call_types``, or the
    call is flagged behavioural health and the pilot takes flagged calls, and, for a pilot
    in ``risk.requires_weapon_or_violence``, a weapon or violence is reported. Area reasons
    apply only to pilots with a beat list: no beat (or one not in ``known_beats``) is
    ``unknown_beat``, a beat outside the list is ``outside_service_area``.

Route
    weapon or violence -> cor if CoR is eligible, else police;
    else CCD eligible and no in-person need -> ccd;
    else in-person need and CRT eligible -> crt;
    else police.
    ``pilots`` is the route's pilot, plus ccd whenever CCD is eligible (the clinician stays
    on the call even when a team goes), plus cn when Care Navigation follows the route.

Stale calls
    A decision made more than ``policy.dispatch.stale_call_minutes`` after the CAD event
    it decides (``stale=True``, judged by the stage: :func:`is_stale`) must not act on the
    call as if it were new: the CAD's standard response has taken over. Every pilot that
    would have been eligible is ineligible with the one reason ``stale`` (pilots already
    ineligible keep their reasons), so the route is police, and the reasons end in
    ``stale``. A stale call is eligible and missed with the reason ``stale`` (an outage is a
    miss), and it stays stale:
    its re-decisions are stale too, so that a later update never sends a HEART team to a
    call the standard response took. A fresh update to a call HEART holds (a phone
    clinician asking for a team) is judged by the update's own time.

Reasons vocabulary (``TriageDecision.reasons``), always in this order:
    1. ``weapon_reported``, ``violence_reported``: the risk flags set on the call.
    2. ``needs_in_person`` or ``no_in_person_needed``: the call taker's judgement.
    3. ``behavioral_health_flag``: the call taker flagged behavioural health.
    4. Per matching pilot, in order ccd, crt, cor: ``<pilot>_eligible``, or one
       ``<pilot>_ineligible:<reason>`` per IneligibleReason.
       ``no_pilot_matches`` instead when no pilot's call types match.
    5. ``resolved_by_phone`` when the route is ccd.
    6. ``cn_follows_up`` when Care Navigation is added, or
       ``cn_ineligible:pilot_disabled`` when it would follow the route but is disabled.
    7. ``stale`` when the decision came too late (see "Stale calls").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from heart.policy.model import PILOTS, PilotRule, Policy, normalize
from heart.schemas.calls import CallReceived, CallUpdated
from heart.schemas.triage import (
    MISS_REASONS,
    IneligibleReason,
    PilotEligibility,
    Route,
    TriageDecision,
)

_PILOT_ORDER = {pilot: index for index, pilot in enumerate(PILOTS)}

#: Fields of a call whose change can change a decision's route, pilots or interpreter.
DECISION_FIELDS: tuple[str, ...] = (
    "call_type",
    "beat",
    "weapon_involved",
    "violence_reported",
    "needs_in_person",
    "behavioral_health",
    "language",
)


@dataclass(frozen=True, slots=True)
class _PolicyView:
    """A policy's per-event lookups, read once. The policy's own properties go through
    pydantic's private-attribute lookup on every access, which profiling showed as a
    fifth of a decision's time; the policy is frozen, so the values cannot change."""

    zone: ZoneInfo
    rules: tuple[PilotRule, ...]
    known_beats: frozenset[str] | None
    followed_by_cn: frozenset[str]
    cn_follows: frozenset[str]
    version_id: str
    aliases: Mapping[str, str]


_VIEWS: dict[int, tuple[Policy, _PolicyView]] = {}


def _view(policy: Policy) -> _PolicyView:
    hit = _VIEWS.get(id(policy))
    # The identity check guards against a collected policy's id being reused.
    if hit is not None and hit[0] is policy:
        return hit[1]
    view = _PolicyView(
        zone=policy.zone,
        rules=policy.rules,
        known_beats=policy.known_beat_set,
        followed_by_cn=policy.followed_by_cn,
        cn_follows=frozenset(policy.pilots.cn.follows),
        version_id=policy.version_id,
        aliases=policy.category_aliases,
    )
    if len(_VIEWS) >= 64:  # a process holds a handful of policies; never grow unbounded
        _VIEWS.clear()
    _VIEWS[id(policy)] = (policy, view)
    return view


def ineligible_reasons(
    rule: PilotRule,
    known: frozenset[str] | None,
    local: datetime,
    beat: str | None,
    weapon: bool,
    violence: bool,
) -> list[IneligibleReason]:
    reasons: list[IneligibleReason] = []
    if not rule.enabled:
        reasons.append("pilot_disabled")
    if not rule.open_at(local):
        reasons.append("outside_hours")
    if rule.beats is not None:
        if beat is None or (known is not None and beat not in known):
            reasons.append("unknown_beat")
        elif beat not in rule.beats:
            reasons.append("outside_service_area")
    if weapon and rule.excluded_by_weapon:
        reasons.append("weapon")
    if violence and rule.excluded_by_violence:
        reasons.append("violence")
    return reasons


def _matches(rule: PilotRule, category: str | None, call: CallReceived, risky: bool) -> bool:
    typed = category in rule.call_types or (rule.takes_flagged and call.behavioral_health)
    return typed and (risky or not rule.requires_weapon_or_violence)


def interpreter_for(language: str) -> str | None:
    """The language to interpret, or None for English (any region or script of it)."""
    primary = language.split("-", 1)[0]
    return None if primary.casefold() == "en" else language


def is_stale(event_at: datetime, reference: datetime, policy: Policy) -> bool:
    """Whether a decision at ``reference`` (the stage's time) on a CAD event of
    ``event_at`` comes more than the policy's ``stale_call_minutes`` after the event."""
    return reference - event_at > timedelta(minutes=policy.dispatch.stale_call_minutes)


def decide(
    call: CallReceived,
    policy: Policy,
    *,
    revision: int = 1,
    supersedes: str | None = None,
    event_id: str | None = None,
    now: datetime | None = None,
    source_occurred_at: datetime | None = None,
    stale: bool = False,
) -> TriageDecision:
    """Decide where ``call`` goes under ``policy`` (see the module docstring for the rules).

    Hours are judged at ``call.occurred_at`` in the policy's zone, whatever offset the
    event carries. The decision's ``occurred_at`` is ``now`` (aware), else the call's.
    ``source_occurred_at`` is the time of the CAD event decided on (default: the call's
    receipt); ``stale`` decides the call as too late to act on (see "Stale calls").
    """
    view = _view(policy)
    category = view.aliases.get(normalize(call.call_type))
    local = call.occurred_at.astimezone(view.zone)
    beat = normalize(call.beat or "") or None
    weapon = call.weapon_involved
    violence = call.violence_reported
    risky = weapon or violence

    reasons: list[str] = []
    if weapon:
        reasons.append("weapon_reported")
    if violence:
        reasons.append("violence_reported")
    reasons.append("needs_in_person" if call.needs_in_person else "no_in_person_needed")
    if call.behavioral_health:
        reasons.append("behavioral_health_flag")

    eligibility: list[PilotEligibility] = []
    eligible: set[str] = set()
    for rule in view.rules:
        if not _matches(rule, category, call, risky):
            continue
        missed = ineligible_reasons(rule, view.known_beats, local, beat, weapon, violence)
        if stale and not missed:
            missed = ["stale"]
        eligibility.append(PilotEligibility(pilot=rule.pilot, eligible=not missed, reasons=missed))
        if missed:
            reasons.extend(f"{rule.pilot}_ineligible:{why}" for why in missed)
        else:
            eligible.add(rule.pilot)
            reasons.append(f"{rule.pilot}_eligible")
    if not eligibility:
        reasons.append("no_pilot_matches")

    route: Route
    if risky:
        route = "cor" if "cor" in eligible else "police"
    elif "ccd" in eligible and not call.needs_in_person:
        route = "ccd"
        reasons.append("resolved_by_phone")
    elif call.needs_in_person and "crt" in eligible:
        route = "crt"
    else:
        route = "police"

    involved: set[str] = set()
    if route != "police":
        involved.add(route)
    if "ccd" in eligible:
        involved.add("ccd")
    if route in view.followed_by_cn:
        involved.add("cn")
        reasons.append("cn_follows_up")
    elif route in view.cn_follows:
        reasons.append("cn_ineligible:pilot_disabled")
    if stale:
        reasons.append("stale")

    extra: dict[str, Any] = {} if event_id is None else {"event_id": event_id}
    return TriageDecision(
        **extra,
        occurred_at=now if now is not None else call.occurred_at,
        call_id=call.call_id,
        route=route,
        pilots=sorted(involved, key=_PILOT_ORDER.__getitem__),
        reasons=reasons,
        eligibility=eligibility,
        interpreter=interpreter_for(call.language),
        policy_version=view.version_id,
        revision=revision,
        supersedes=supersedes,
        source_event_id=call.event_id,
        source_occurred_at=source_occurred_at or call.occurred_at,
        call_received_at=call.occurred_at,
        call_type=call.call_type,
        category=category,
        beat=call.beat,
        district=call.district,
        priority=call.priority,
        language=call.language,
        location=call.location,
        safety_notes=call.safety_notes,
        weapon_involved=weapon,
        violence_reported=violence,
    )


def missed(decision: TriageDecision) -> list[tuple[str, str]]:
    """Each pilot that missed a call it should have had, once, with the first reason why.

    A miss is a matching pilot kept off only by coverage (hours, area, beat, a disabled
    pilot), what more staffing would fix, or because the call was decided too late
    (``stale``: a stage was paused or down). A call a pilot is excluded from by its nature
    (weapon, violence) is not a miss. The triage stage counts these in
    ``heart_eligible_missed_total`` and what-if tallies them, so both must use this one rule.
    """
    return [
        (entry.pilot, entry.reasons[0])
        for entry in decision.eligibility
        if not entry.eligible and set(entry.reasons) <= MISS_REASONS
    ]


def apply_update(call: CallReceived, update: CallUpdated) -> CallReceived:
    """The call as known after ``update``: each field the update carries (not None) replaces.

    - ``occurred_at`` stays the call's: it is when the call was received, which is what
      ``call_received_at`` reports and what hours are judged at, so a correction made after
      16:30 does not turn an in-hours call into an out-of-hours one.
    - ``event_id`` becomes the update's: the merged call is "the call as of that event",
      and ``decide`` copies it to ``source_event_id``, so each revision names its cause.
    - ``caller`` is kept (updates never carry it).
    - None never clears a field: the wire form cannot tell "absent" from "cleared".

    Raises ValueError when the update belongs to another call.
    """
    if update.call_id != call.call_id:
        raise ValueError(f"update for call {update.call_id!r} applied to call {call.call_id!r}")
    changes: dict[str, Any] = {
        name: value
        for name in _UPDATABLE
        if (value := getattr(update, name)) is not None and value != getattr(call, name)
    }
    changes["event_id"] = update.event_id
    # model_copy skips validation; the update was validated against the same constraints.
    return call.model_copy(update=changes)


_UPDATABLE: tuple[str, ...] = tuple(
    name
    for name in CallUpdated.model_fields
    if name in CallReceived.model_fields
    and name not in {"event_id", "event_type", "occurred_at", "schema_version", "call_id"}
)


def needs_redecision(old: CallReceived, new: CallReceived) -> bool:
    """Whether ``new`` differs from ``old`` in anything that can change the route, the
    pilots or the interpreter (see DECISION_FIELDS). Differences in case or whitespace of
    the call type or beat do not count: matching ignores them.
    """
    if normalize(old.call_type) != normalize(new.call_type):
        return True
    if normalize(old.beat or "") != normalize(new.beat or ""):
        return True
    return any(
        getattr(old, name) != getattr(new, name)
        for name in DECISION_FIELDS
        if name not in ("call_type", "beat")
    )
