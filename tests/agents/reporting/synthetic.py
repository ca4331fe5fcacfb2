"""A small synthetic month (July 2024, Durham's zone) whose figures are worked out by hand
in ``test_aggregate.py``. Every event carries planted personal data (a caller's name,
phone and address in the notes and location, telling call and case ids) that must never
reach a report."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from heart.agents.triage.decide import apply_update, decide, needs_redecision
from heart.policy import Policy
from heart.schemas import (
    DispatchEvent,
    FollowupDue,
    FollowupOutcome,
    FollowupOverdue,
    FollowupScheduled,
    PilotEligibility,
    TriageDecision,
)
from heart.schemas.calls import CallReceived
from heart.simulator.cad_feed import CadFeed

NY = ZoneInfo("America/New_York")

NAME = "Jordan Q. Example"
PHONE = "919-555-0142"
ADDRESS = "4242 Mockingbird Lane"
NOTES = f"Caller {NAME}, callback {PHONE}, at {ADDRESS}"
LOCATION = {"address": ADDRESS, "lat": 35.9940, "lon": -78.8986}
#: Every call id starts with this, so a leak of any id is easy to find.
ID_PREFIX = "SECRETCALL"
PERSONAL = (NAME, PHONE, ADDRESS, ID_PREFIX, "35.994", "-78.8986", "navigator-jq")


def local(y: int, mo: int, d: int, h: int = 12, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=NY)


def cid(name: str) -> str:
    return name if name.startswith(ID_PREFIX) else f"{ID_PREFIX}-{name}"


def decision(
    name: str,
    route: str,
    received: datetime,
    category: str | None,
    *,
    eligibility: dict[str, list[str]],
    pilots: list[str],
    reasons: list[str] | None = None,
    revision: int = 1,
    call_type: str | None = None,
    event_id: str | None = None,
) -> TriageDecision:
    entries = [
        PilotEligibility(pilot=p, eligible=not why, reasons=why) for p, why in eligibility.items()
    ]
    return TriageDecision(
        event_id=event_id or f"dec-{name}-{revision}",
        occurred_at=received + timedelta(seconds=2),
        call_id=cid(name),
        route=route,
        pilots=pilots,
        reasons=reasons or [],
        eligibility=entries,
        policy_version="durham@test",
        revision=revision,
        supersedes=f"dec-{name}-{revision - 1}" if revision > 1 else None,
        source_event_id=f"call-{name}-{revision}",
        call_received_at=received,
        call_type=call_type or (category or "OTHER").upper(),
        category=category,
        beat="111",
        location=LOCATION,
        safety_notes=NOTES,
    )


def dispatch(name: str, kind: str, at: datetime, route: str, **extra: Any) -> DispatchEvent:
    extra.setdefault("event_id", f"{kind}-{name}")
    return DispatchEvent(
        event_type=f"dispatch.{kind}",
        occurred_at=at,
        call_id=cid(name),
        route=route,
        team_id=f"{route.upper()}-1",
        location=LOCATION,
        safety_notes=NOTES,
        **extra,
    )


def scheduled(name: str, at: datetime, pilot: str, *, at_risk: bool = False) -> FollowupScheduled:
    return FollowupScheduled(
        event_id=f"sched-{name}",
        occurred_at=at,
        case_id=cid(name),
        call_id=cid(name),
        pilot=pilot,
        contact_ended_at=at,
        deadline=at + timedelta(hours=48),
        release_at=at,
        at_risk=at_risk,
    )


def outcome(name: str, at: datetime, result: str, event_id: str | None = None) -> FollowupOutcome:
    return FollowupOutcome(
        event_id=event_id or f"outcome-{name}-{result}",
        occurred_at=at,
        case_id=cid(name),
        outcome=result,
        care_kind=f"outpatient with {NAME}",
        navigator_id="navigator-jq",
    )


def july() -> list[Any]:
    """The month, in a plausible arrival order (see test_aggregate for the figures)."""
    ccd_ok = {"ccd": []}
    crt_ok = {"crt": []}
    return [
        # Phone calls.
        decision(
            "C1",
            "ccd",
            local(2024, 7, 1, 9),
            "Mental Health Crisis",
            eligibility=ccd_ok,
            pilots=["ccd", "cn"],
        ),
        decision(
            "C9",
            "ccd",
            local(2024, 7, 10, 15),
            "Suicide Threat",
            eligibility=ccd_ok,
            pilots=["ccd", "cn"],
        ),
        scheduled("C9", local(2024, 7, 10, 15, 30), "ccd", at_risk=True),
        FollowupDue(
            event_id="due-C9",
            occurred_at=local(2024, 7, 11, 8, 30),
            case_id=cid("C9"),
            call_id=cid("C9"),
            timer_id=f"{cid('C9')}:1",
            deadline=local(2024, 7, 12, 15, 30),
        ),
        FollowupOverdue(
            event_id="overdue-C9",
            occurred_at=local(2024, 7, 12, 15, 31),
            case_id=cid("C9"),
            call_id=cid("C9"),
            deadline=local(2024, 7, 12, 15, 30),
        ),
        # Team calls.
        decision(
            "C2",
            "crt",
            local(2024, 7, 2, 10),
            "Welfare Check",
            eligibility=crt_ok,
            pilots=["crt", "cn"],
        ),
        dispatch("C2", "assigned", local(2024, 7, 2, 10, 1), "crt", category="Welfare Check"),
        dispatch("C2", "en_route", local(2024, 7, 2, 10, 2), "crt"),
        dispatch("C2", "on_scene", local(2024, 7, 2, 10, 11), "crt", assignment_to_on_scene_s=600),
        dispatch("C2", "cleared", local(2024, 7, 2, 11), "crt", time_on_scene_s=2940),
        scheduled("C2", local(2024, 7, 2, 11, 1), "crt"),
        outcome("C2", local(2024, 7, 3, 9), "unable_to_reach"),
        outcome("C2", local(2024, 7, 3, 14), "reached"),
        decision(
            "C3",
            "crt",
            local(2024, 7, 3, 11),
            "Trespass",
            eligibility=crt_ok,
            pilots=["crt", "cn"],
        ),
        dispatch("C3", "assigned", local(2024, 7, 3, 11, 1), "crt", category="Trespass"),
        dispatch("C3", "on_scene", local(2024, 7, 3, 11, 6), "crt", assignment_to_on_scene_s=300),
        dispatch("C3", "backup_requested", local(2024, 7, 3, 11, 20), "crt"),
        decision(
            "C4",
            "crt",
            local(2024, 7, 4, 12),
            "Trespass",
            eligibility=crt_ok,
            pilots=["crt", "cn"],
        ),
        dispatch("C4", "queued", local(2024, 7, 4, 12, 1), "crt", reason="no_team_free"),
        dispatch("C4", "fallback", local(2024, 7, 4, 12, 11), "crt", reason="no_team_free"),
        decision(
            "C6",
            "cor",
            local(2024, 7, 5, 13),
            "Mental Health Crisis",
            eligibility={"ccd": [], "crt": ["weapon"], "cor": []},
            pilots=["ccd", "cor"],
        ),
        dispatch(
            "C6", "assigned", local(2024, 7, 5, 13, 1), "cor", category="Mental Health Crisis"
        ),
        dispatch("C6", "on_scene", local(2024, 7, 5, 13, 16), "cor", assignment_to_on_scene_s=900),
        decision(
            "C13",
            "crt",
            local(2024, 7, 6, 10),
            "Nuisance",
            eligibility=crt_ok,
            pilots=["crt"],
            reasons=["crt_eligible", "cn_ineligible:pilot_disabled"],
        ),
        dispatch("C13", "fallback", local(2024, 7, 6, 10, 1), "crt", reason="no_team_on_shift"),
        # Missed by coverage, excluded by risk, not HEART's at all.
        decision(
            "C5",
            "police",
            local(2024, 7, 6, 20),
            "Trespass",
            eligibility={"crt": ["outside_hours"]},
            pilots=[],
        ),
        decision(
            "C8",
            "police",
            local(2024, 7, 13, 3),
            "Suicide Threat",
            eligibility={
                "ccd": ["outside_hours"],
                "crt": ["outside_hours", "outside_service_area"],
            },
            pilots=[],
        ),
        decision(
            "C10",
            "police",
            local(2024, 7, 14, 2),
            None,
            call_type="NOISE",
            eligibility={},
            pilots=[],
        ),
        # Superseded: first a team call, then a weapon is reported.
        decision(
            "C7",
            "crt",
            local(2024, 7, 15, 9),
            "Welfare Check",
            eligibility=crt_ok,
            pilots=["crt", "cn"],
        ),
        dispatch("C7", "queued", local(2024, 7, 15, 9, 1), "crt", reason="no_team_free"),
        decision(
            "C7",
            "police",
            local(2024, 7, 15, 9),
            "Welfare Check",
            revision=2,
            eligibility={"crt": ["weapon"]},
            pilots=[],
        ),
        dispatch("C7", "cancelled", local(2024, 7, 15, 9, 3), "crt", reason="superseded:police"),
        # The month's edges.
        decision(
            "C12",
            "ccd",
            local(2024, 7, 31, 14),
            "Mental Health Crisis",
            eligibility=ccd_ok,
            pilots=["ccd", "cn"],
        ),
        scheduled("C12", local(2024, 7, 31, 15), "ccd"),
        outcome("C12", local(2024, 8, 1, 10), "connected_to_care"),
        decision(
            "D1",
            "ccd",
            local(2024, 7, 31, 23, 50),
            "Mental Health Crisis",
            eligibility=ccd_ok,
            pilots=["ccd", "cn"],
        ),
        decision(
            "C11",
            "crt",
            local(2024, 7, 31, 23, 55),
            "Welfare Check",
            eligibility=crt_ok,
            pilots=["crt", "cn"],
        ),
        dispatch("C11", "assigned", local(2024, 8, 1, 0, 2), "crt", category="Welfare Check"),
        dispatch("C11", "on_scene", local(2024, 8, 1, 0, 9), "crt", assignment_to_on_scene_s=420),
        # 1 July 03:30 UTC is still 30 June in Durham.
        decision(
            "D2",
            "ccd",
            local(2024, 6, 30, 23, 30),
            "Mental Health Crisis",
            eligibility=ccd_ok,
            pilots=["ccd", "cn"],
        ),
        # An outcome for a case never scheduled: Care Navigation refuses it; so do we.
        outcome("Z9", local(2024, 7, 20, 10), "reached"),
    ]


def redelivered(events: list[Any]) -> list[Any]:
    """The same month with some events delivered twice, late."""
    again = [
        e
        for e in events
        if e.event_id
        in {
            "dec-C1-1",
            "assigned-C2",
            "sched-C9",
            "outcome-C2-reached",
            "fallback-C4",
            "dec-C7-1",
            "on_scene-C3",
        }
    ]
    return events + again


# --- a realistic month ----------------------------------------------------------------------


def realistic_month(
    policy: Policy, start: datetime, days: int, *, seed: int = 7, calls_per_day: float = 150
) -> list[Any]:
    """``days`` of a Durham-like city from ``start``: the simulator's calls, decided by the
    real triage rules (re-decided when a weapon is reported later), and plausible dispatch
    and Care Navigation events, some spilling into the next month (a team assigned after
    midnight, a follow-up completed days later). The same arguments give the same events.
    No figure here is worked out by hand: tests check what must hold whatever the data."""
    rng = random.Random(seed)
    feed = CadFeed(start, seed=seed, calls_per_day=calls_per_day)
    calls: dict[str, tuple[CallReceived, TriageDecision]] = {}
    events: list[Any] = []
    for item in feed.events_until(start + timedelta(days=days)):
        if isinstance(item.event, CallReceived):
            call = item.event.model_copy(
                update={"call_id": cid(item.event.call_id), "safety_notes": NOTES}
            )
            first = decide(call, policy, event_id=f"dec-{call.call_id}-1")
            calls[call.call_id] = (call, first)
            events.append(first)
            events += _aftermath(rng, first, policy)
        else:
            old, previous = calls[cid(item.event.call_id)]
            new = apply_update(old, item.event.model_copy(update={"call_id": old.call_id}))
            if needs_redecision(old, new):
                revision = previous.revision + 1
                again = decide(
                    new,
                    policy,
                    revision=revision,
                    supersedes=previous.event_id,
                    event_id=f"dec-{new.call_id}-{revision}",
                    now=item.at,
                )
                calls[new.call_id] = (new, again)
                events.append(again)
    return events


def _aftermath(rng: random.Random, decision: TriageDecision, policy: Policy) -> list[Any]:
    """What dispatch and Care Navigation plausibly report after ``decision``."""
    out: list[Any] = []
    at = decision.call_received_at
    name = decision.call_id
    contact_end: datetime | None = None
    if decision.route in ("crt", "cor"):
        route = decision.route
        roll = rng.random()
        if roll < 0.75:
            assigned = at + timedelta(seconds=rng.uniform(30, 900))
            travel = rng.uniform(180, 1500)
            on_scene = assigned + timedelta(seconds=travel)
            cleared = on_scene + timedelta(seconds=rng.uniform(600, 3600))
            out.append(dispatch(name, "assigned", assigned, route))
            out.append(dispatch(name, "on_scene", on_scene, route, assignment_to_on_scene_s=travel))
            if rng.random() < 0.05:
                out.append(dispatch(name, "backup_requested", on_scene, route))
            contact_end = cleared
        elif roll < 0.9:
            reason = rng.choice(("no_team_free", "no_team_on_shift"))
            out.append(dispatch(name, "fallback", at + timedelta(minutes=10), route, reason=reason))
        # else: still waiting for a team when the data ends.
    elif decision.route == "ccd":
        contact_end = at + timedelta(minutes=rng.uniform(5, 40))
    if contact_end is None or "cn" not in decision.pilots or rng.random() < 0.1:
        return out
    pilot = decision.route
    sched = scheduled(name, contact_end + timedelta(minutes=1), pilot, at_risk=rng.random() < 0.2)
    out.append(sched)
    roll = rng.random()
    if roll < 0.7:
        done = sched.occurred_at + timedelta(hours=rng.uniform(1, 72))
        if rng.random() < 0.2:
            first_try = sched.occurred_at + timedelta(minutes=rng.uniform(10, 60))
            out.append(outcome(name, min(first_try, done), "unable_to_reach"))
        result = rng.choice(("reached", "connected_to_care", "declined"))
        out.append(outcome(name, done, result))
        if done > sched.deadline:
            out.append(_overdue(name, sched.deadline))
    elif roll < 0.85:
        out.append(_overdue(name, sched.deadline))
    # else: still open when the data ends.
    return out


def _overdue(name: str, deadline: datetime) -> FollowupOverdue:
    return FollowupOverdue(
        event_id=f"overdue-{name}",
        occurred_at=deadline + timedelta(minutes=1),
        case_id=cid(name),
        call_id=cid(name),
        deadline=deadline,
    )
