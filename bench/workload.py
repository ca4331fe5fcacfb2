"""What the benchmark sends: Durham-like calls, decisions, cleared events, pre-encoded.

Every generator is seeded, so two runs send the same records. Event times follow Durham's
volume (about 1,000 calls a day) wherever a stage runs on the event clock, so that state a
stage keeps for a span of event time (dispatch remembers finished calls for 6 hours) is as
large as it would be in the city, not as large as a burst of identical timestamps makes it.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from heart.agents.triage.decide import decide
from heart.policy import load_policy
from heart.schemas.calls import CallClosed, CallReceived, Location
from heart.schemas.dispatch import DispatchEvent, UnitStatusReport
from heart.schemas.triage import TriageDecision
from heart.simulator.cad_feed import CadFeed
from heart.streams.codec import encode

BENCH = Path(__file__).resolve().parent
POLICY_24X7 = BENCH / "policy-24x7.toml"
ROSTER = BENCH / "roster-bench.toml"

#: Monday 2024-07-15 10:00 EDT: inside every pilot's hours in the Durham policy.
T0 = datetime(2024, 7, 15, 14, 0, tzinfo=UTC)
#: Durham's ~1,000 calls a day, as event-time spacing.
DURHAM_GAP = timedelta(seconds=86.4)

Record = tuple[bytes, bytes]


def filler(n: int, size: int = 300, seed: int = 1) -> list[Record]:
    """``n`` JSON messages of ``size`` bytes for the floor references."""
    rng = random.Random(seed)
    out: list[Record] = []
    for i in range(n):
        body = {"id": i, "kind": "bench", "pad": ""}
        base = len(orjson.dumps(body))
        body["pad"] = "".join(rng.choices("abcdefghij", k=max(0, size - base)))
        out.append((f"k{i}".encode(), orjson.dumps(body)))
    return out


def durham_calls(n: int, seed: int = 2022) -> list[CallReceived]:
    """``n`` call.received with the simulator's Durham mix and timing (updates dropped)."""
    feed = CadFeed(T0, seed=seed)
    calls: list[CallReceived] = []
    horizon = T0
    while len(calls) < n:
        horizon += timedelta(days=1)
        for fe in feed.events_until(horizon):
            if isinstance(fe.event, CallReceived):
                calls.append(fe.event)
                if len(calls) == n:
                    break
    return calls


def encoded(
    events: list[CallReceived] | list[TriageDecision] | list[DispatchEvent],
) -> list[Record]:
    return [(_key(e).encode(), encode(e)) for e in events]


def _key(event: object) -> str:
    for name in ("call_id", "team_id", "case_id"):
        value = getattr(event, name, None)
        if value:
            return str(value)
    raise ValueError(f"no key for {type(event).__name__}")


def decisions(n: int, seed: int = 7, gap: timedelta = DURHAM_GAP) -> list[TriageDecision]:
    """``n`` triage decisions ``gap`` apart (one Durham gap by default): mostly police (the
    dispatch stage's intake drops them), about 15% for a team (12% crt, 3% cor), the rest
    ccd."""
    rng = random.Random(seed)
    policy = load_policy(POLICY_24X7)
    calls = durham_calls(n, seed=seed)
    out: list[TriageDecision] = []
    for i, call in enumerate(calls):
        at = T0 + i * gap
        draw = rng.random()
        if draw < 0.12:
            kind = dict(
                call_type="Welfare Check",
                needs_in_person=True,
                weapon_involved=False,
                violence_reported=False,
            )
        elif draw < 0.15:
            kind = dict(
                call_type="Mental Health Crisis",
                needs_in_person=True,
                weapon_involved=True,
                violence_reported=False,
            )
        elif draw < 0.25:
            kind = dict(
                call_type="Mental Health Crisis",
                needs_in_person=False,
                weapon_involved=False,
                violence_reported=False,
            )
        else:
            kind = dict(
                call_type="Traffic Stop",
                needs_in_person=True,
                weapon_involved=False,
                violence_reported=False,
            )
        call = call.model_copy(update={"occurred_at": at, "beat": call.beat or "111", **kind})
        decision = decide(
            call, policy, event_id=uuid.uuid5(uuid.NAMESPACE_URL, call.event_id).hex, now=at
        )
        out.append(decision)
    return out


def gap_within(span: timedelta, n: int) -> timedelta:
    """The Durham gap, or less, so that ``n`` events fit in ``span`` of event time.

    A pre-filled topic is read a partition at a time, so a stage on the event clock sees
    a partition's events days ahead of another's. Dispatch refuses a decision more than
    :data:`~agents.dispatch.area.CALL_MEMORY` behind the newest it has read (a late
    redelivery of a call it may have forgotten). At the Durham gap three in four team
    decisions of a 4,000-decision run were refused, and the run measured dead-lettering.
    """
    return min(DURHAM_GAP, span / max(1, n))


def cleared(n: int, seed: int = 11) -> list[DispatchEvent]:
    """``n`` dispatch.cleared events of crt teams, one Durham gap apart: each schedules a
    48-hour follow-up in the navigation stage."""
    rng = random.Random(seed)
    out: list[DispatchEvent] = []
    for i in range(n):
        at = T0 + i * DURHAM_GAP
        team = f"CRT-{rng.randint(1, 60)}"
        out.append(
            DispatchEvent(
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"bench-cleared-{seed}-{i}").hex,
                event_type="dispatch.cleared",
                occurred_at=at,
                call_id=f"NAV-{seed}-{i:07d}",
                route="crt",
                team_id=team,
                service_area="durham",
                call_type="Welfare Check",
                category="Welfare Check",
                language="en",
                time_on_scene_s=rng.uniform(600, 3000),
                followup_declined=False,
            )
        )
    return out


class LiveCalls:
    """Calls stamped with the wall clock for the latency and memory runs.

    ``team_share`` of them are in-person Welfare Checks (a CRT team under the 24/7 bench
    policy), a tenth are phone-only Mental Health Crisis calls (CCD), the rest police.
    """

    def __init__(self, team_share: float, seed: int = 500, tag: str = "L") -> None:
        self.rng = random.Random(seed)
        self.team_share = team_share
        self.tag = tag
        self.serial = 0

    def next(self) -> tuple[CallReceived, bool]:
        rng = self.rng
        self.serial += 1
        draw = rng.random()
        team = draw < self.team_share
        if team:
            call_type, in_person = "Welfare Check", True
        elif draw < self.team_share + 0.1:
            call_type, in_person = "Mental Health Crisis", False
        else:
            call_type, in_person = rng.choice(("Traffic Stop", "Alarm", "Larceny")), True
        d = rng.randint(1, 5)
        beat = f"{d}{rng.choice(('11', '12', '13', '14', '21', '22'))}"
        call = CallReceived(
            call_id=f"{self.tag}-{self.serial:08d}",
            occurred_at=datetime.now(UTC),
            call_type=call_type,
            beat=beat,
            district=f"D{d}",
            needs_in_person=in_person,
            language="es" if rng.random() < 0.08 else "en",
            priority=rng.choice((1, 2, 2, 3, 3, 3)),
            location=Location(address=f"{rng.randint(100, 4999)} Bench St", lat=35.99, lon=-78.9),
        )
        return call, team


def closed(call_id: str) -> CallClosed:
    return CallClosed(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{call_id}|closed").hex,
        call_id=call_id,
        occurred_at=datetime.now(UTC),
        disposition="resolved",
    )


def clear_report(team_id: str, call_id: str) -> UnitStatusReport:
    """The responder app's ``cleared`` (dispatched -> cleared is legal): frees the team."""
    return UnitStatusReport(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{call_id}|{team_id}|cleared").hex,
        team_id=team_id,
        status="cleared",
        call_id=call_id,
        occurred_at=datetime.now(UTC),
    )
