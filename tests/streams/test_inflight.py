from __future__ import annotations

import asyncio

import pytest

from streams.inflight import InFlight


async def test_room_is_immediate_below_the_limit() -> None:
    flight = InFlight(limit=2, forget_after_s=10)
    flight.sent("a")
    assert await asyncio.wait_for(flight.room(), 0.5) < 0.1
    assert len(flight) == 1


async def test_room_waits_for_an_answer_at_the_limit() -> None:
    flight = InFlight(limit=2, forget_after_s=10)
    flight.sent("a")
    flight.sent("b")
    waiter = asyncio.create_task(flight.room())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    flight.answered("zzz")  # not in flight: changes nothing
    await asyncio.sleep(0.05)
    assert not waiter.done()
    flight.answered("b")
    waited = await asyncio.wait_for(waiter, 0.5)
    assert waited >= 0.09
    assert len(flight) == 1 and flight.forgotten == 0


async def test_an_unanswered_key_stops_holding_a_place() -> None:
    flight = InFlight(limit=1, forget_after_s=0.1)
    flight.sent("dead-lettered")
    waited = await asyncio.wait_for(flight.room(), 2)
    assert 0.05 <= waited < 1.0
    assert flight.forgotten == 1 and len(flight) == 0
    # A late answer for the forgotten key is ignored.
    flight.answered("dead-lettered")
    assert len(flight) == 0


async def test_a_key_sent_again_counts_once_from_its_latest_send() -> None:
    now = [0.0]
    flight = InFlight(limit=3, forget_after_s=10, clock=lambda: now[0])
    flight.sent("a")
    now[0] = 8.0
    flight.sent("b")
    flight.sent("a")
    assert len(flight) == 2
    now[0] = 12.0  # the first send of "a" would be stale by now, its resend is not
    await flight.room()
    assert len(flight) == 2 and flight.forgotten == 0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, not 0"):
        InFlight(limit=0, forget_after_s=1)
