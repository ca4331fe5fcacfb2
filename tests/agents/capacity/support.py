"""Synthetic call histories and a policy for the capacity tests."""

from __future__ import annotations

import random
import tomllib
from datetime import UTC, datetime, timedelta

from heart.agents.capacity.shifts import to_us
from heart.agents.capacity.simulate import TeamCall
from heart.policy import Policy
from heart.policy.model import parse_policy
from heart.schemas.calls import CallReceived

START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
EVERY_DAY = '["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'


def around_the_clock(*, max_wait: int = 10, stale: int = 10) -> Policy:
    """CRT citywide, every hour of every day, for "Welfare Check" calls."""
    hours = f'[{{ days = {EVERY_DAY}, start = "00:00", end = "24:00" }}]'
    text = f"""
name = "always"
version = "1"
timezone = "UTC"
[categories]
"Welfare Check" = []
"Mental Health Crisis" = []
[risk]
excluded_by_weapon = ["crt"]
excluded_by_violence = ["crt"]
requires_weapon_or_violence = ["cor"]
[dispatch]
max_queue_wait_minutes = {max_wait}
stale_call_minutes = {stale}
[pilots.ccd]
enabled = true
service_area = "citywide"
hours = {hours}
call_types = ["Mental Health Crisis"]
[pilots.crt]
enabled = true
service_area = "citywide"
hours = {hours}
call_types = ["Welfare Check"]
[pilots.cor]
enabled = true
service_area = "citywide"
hours = {hours}
call_types = ["Mental Health Crisis"]
[pilots.cn]
enabled = true
follows = ["ccd", "crt"]
followup_within_hours = 48
unable_to_reach_retries = 3
service_area = "citywide"
hours = {hours}
"""
    return parse_policy(tomllib.loads(text), source="always")


def poisson_minutes(seed: str, calls: int, per_minute: float) -> list[float]:
    """Arrival minutes of a Poisson process."""
    rng = random.Random(seed)
    minute = 0.0
    out = []
    for _ in range(calls):
        minute += rng.expovariate(per_minute)
        out.append(minute)
    return out


def team_calls(minutes: list[float]) -> list[TeamCall]:
    start = to_us(START)
    return [TeamCall(start + round(m * 60_000_000), f"c{n:07d}") for n, m in enumerate(minutes)]


def welfare_calls(minutes: list[float]) -> list[CallReceived]:
    """A CRT call ("Welfare Check", in person) at each minute."""
    return [
        CallReceived(
            call_id=f"c{n:07d}",
            occurred_at=START + timedelta(minutes=m),
            call_type="Welfare Check",
            beat="1",
            needs_in_person=True,
        )
        for n, m in enumerate(minutes)
    ]
