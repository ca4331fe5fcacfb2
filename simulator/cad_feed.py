"""Durham-like CAD traffic: about 1,000 calls a day with the reported behavioural mix.

Figures from public reporting on Durham's 911 calls and on HEART: the Durham Emergency
Communications Center's ~1,000 calls a day; about 15% of police calls in nine
quality-of-life / behavioural types (2018-19), with trespass, welfare check and mental
health crisis the largest among HEART's responses; mental health under-coded in CAD (1-2%
of calls carry a mental-health code), so the call taker's flag matters; about 35% of HEART
responses by phone in the pilots' first year.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from heart.schemas.calls import CallReceived, CallUpdated, Location

ZONE = ZoneInfo("America/New_York")
CALLS_PER_DAY = 1_000

#: Share within the ~15% behavioural / quality-of-life calls (2024 response counts).
BEHAVIOURAL_TYPES: dict[str, float] = {
    "Trespass": 0.24,
    "Welfare Check": 0.18,
    "Mental Health Crisis": 0.16,
    "Intoxicated Person": 0.08,
    "Suicide Threat": 0.07,
    "Nuisance": 0.09,
    "Panhandling": 0.06,
    "Public Indecency": 0.03,
    "Lost Person": 0.03,
    "Prostitution": 0.02,
    "Assist Person": 0.04,
}
OTHER_TYPES: dict[str, float] = {
    "Traffic Stop": 0.14,
    "Suspicious Person": 0.10,
    "Disturbance": 0.10,
    "Alarm": 0.09,
    "Larceny": 0.08,
    "Motor Vehicle Crash": 0.08,
    "Domestic Disturbance": 0.07,
    "Noise Complaint": 0.06,
    "Property Damage": 0.05,
    "Assault": 0.05,
    "Burglary": 0.04,
    "Shots Fired": 0.03,
    "Robbery": 0.02,
    "Follow Up": 0.09,
}
ARMED_TYPES = {"Assault": (0.3, 1.0), "Shots Fired": (1.0, 0.2), "Robbery": (0.6, 0.6)}
UNDER_CODED = {"Disturbance", "Suspicious Person", "Assist Person", "Noise Complaint"}
PHONE_TYPES = {"Mental Health Crisis", "Suicide Threat", "Assist Person"}

#: Durham police beats: district digit, then a two-digit beat.
BEATS: tuple[str, ...] = tuple(
    f"{d}{b}" for d in range(1, 6) for b in ("11", "12", "13", "14", "21", "22", "23", "24", "25")
)
LANGUAGES = (("en", 0.90), ("es", 0.08), ("ar", 0.01), ("zh", 0.01))

# Relative call volume by local hour: quiet at 4 am, busiest late afternoon.
_HOURLY = [math.exp(-(min((h - 16) % 24, (16 - h) % 24) ** 2) / 30) + 0.25 for h in range(24)]
_HOURLY_MEAN = sum(_HOURLY) / 24


@dataclass(frozen=True)
class FeedEvent:
    at: datetime
    event: CallReceived | CallUpdated


def _pick(rng: random.Random, weights: dict[str, float] | tuple[tuple[str, float], ...]) -> str:
    items = list(weights.items()) if isinstance(weights, dict) else list(weights)
    return rng.choices([k for k, _ in items], [w for _, w in items])[0]


class CadFeed:
    """Generates calls as a Poisson process whose rate follows the hour of day."""

    def __init__(self, start: datetime, seed: int = 2022, calls_per_day: float = CALLS_PER_DAY):
        self.rng = random.Random(seed)
        self.now = start
        self.per_second = calls_per_day / 86_400
        self.serial = 0
        self._pending: list[FeedEvent] = []

    def _rate(self, t: datetime) -> float:
        return self.per_second * _HOURLY[t.astimezone(ZONE).hour] / _HOURLY_MEAN

    def events_until(self, until: datetime) -> Iterator[FeedEvent]:
        """Every event from the feed's current time up to ``until``, in time order."""
        while True:
            gap = self.rng.expovariate(max(self._rate(self.now), 1e-9))
            nxt = self.now + timedelta(seconds=gap)
            due = sorted((p for p in self._pending if p.at <= min(nxt, until)), key=lambda p: p.at)
            for p in due:
                self._pending.remove(p)
                yield p
            if nxt > until:
                # Memoryless: restarting the draw at ``until`` keeps the rate exact when
                # callers ask for short slices.
                self.now = max(self.now, until)
                return
            self.now = nxt
            yield from self._call(nxt)

    def _call(self, at: datetime) -> Iterator[FeedEvent]:
        rng = self.rng
        self.serial += 1
        call_id = f"SIM-{at.astimezone(ZONE):%y%m%d}-{self.serial:06d}"
        behavioural = rng.random() < 0.15
        call_type = _pick(rng, BEHAVIOURAL_TYPES if behavioural else OTHER_TYPES)
        weapon_p, violence_p = ARMED_TYPES.get(call_type, (0.02, 0.03))
        flagged = call_type in PHONE_TYPES or (call_type in UNDER_CODED and rng.random() < 0.2)
        beat = rng.choice(BEATS) if rng.random() > 0.02 else None
        event = CallReceived(
            call_id=call_id,
            occurred_at=at,
            call_type=call_type.upper() if rng.random() < 0.5 else call_type,
            beat=beat,
            district=f"D{beat[0]}" if beat else None,
            weapon_involved=rng.random() < weapon_p,
            violence_reported=rng.random() < violence_p,
            needs_in_person=not (call_type in PHONE_TYPES and rng.random() < 0.45),
            behavioral_health=flagged,
            language=_pick(rng, LANGUAGES),
            priority=rng.choice((1, 2, 2, 3, 3, 3, 4)),
            location=Location(
                address=f"{rng.randint(100, 4999)} Sim St",
                lat=35.99 + rng.uniform(-0.08, 0.08),
                lon=-78.90 + rng.uniform(-0.08, 0.08),
            ),
        )
        yield FeedEvent(at, event)
        if behavioural and rng.random() < 0.03:
            later = at + timedelta(seconds=rng.uniform(60, 240))
            update = CallUpdated(
                call_id=call_id, occurred_at=later, weapon_involved=True, violence_reported=None
            )
            self._pending.append(FeedEvent(later, update))
