"""The fetcher's delivery fast path: same answers as mode's wait_first, fewer tasks."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from mode import Service

from heart.streams.kafka.delivery import FirstInPlace


class Fetching(FirstInPlace, Service):
    """A service like the consumer: its wait_first takes the fast path."""


async def returns(value: Any) -> Any:
    return value


async def waits(future: asyncio.Future[Any], seen: list[str]) -> Any:
    try:
        return await future
    except asyncio.CancelledError:
        seen.append("cancelled")
        raise


async def raises() -> None:
    raise LookupError("undecodable")


def never_started(coro: Any) -> bool:
    return inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED and coro.cr_frame is None


async def test_a_delivery_that_does_not_wait_makes_no_task() -> None:
    service = Fetching()
    flow = asyncio.Event()
    first, suspended = returns(7), flow.wait()
    before = len(asyncio.all_tasks())
    created: list[Any] = []
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    loop.set_task_factory(
        lambda lp, coro, **kw: created.append(coro) or asyncio.Task(coro, loop=lp, **kw)
    )
    try:
        result = await service.wait_first(first, suspended)
    finally:
        loop.set_task_factory(factory)
    assert result.done == [first]
    assert result.results == [7]
    assert result.stopped is False
    assert created == []
    assert len(asyncio.all_tasks()) == before
    assert never_started(suspended)


async def test_a_delivery_that_waits_finishes_under_mode() -> None:
    service = Fetching()
    flow = asyncio.Event()
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    first = waits(future, seen)
    asyncio.get_running_loop().call_later(0.01, future.set_result, "queued")
    result = await service.wait_first(first, flow.wait())
    assert result.done == [first]
    assert result.results == ["queued"]
    assert seen == []


async def test_a_waiting_delivery_is_abandoned_when_flow_is_suspended() -> None:
    service = Fetching()
    flow = asyncio.Event()
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    first, suspended = waits(future, seen), flow.wait()
    asyncio.get_running_loop().call_later(0.01, flow.set)
    result = await service.wait_first(first, suspended)
    assert result.done == [suspended]
    await asyncio.sleep(0)  # the cancellation reaches the delivery
    assert seen == ["cancelled"]


async def test_an_error_in_the_first_step_propagates() -> None:
    service = Fetching()
    flow = asyncio.Event()
    suspended = flow.wait()
    with pytest.raises(LookupError, match="undecodable"):
        await service.wait_first(raises(), suspended)
    assert never_started(suspended)


async def test_an_error_after_waiting_propagates() -> None:
    service = Fetching()
    flow = asyncio.Event()
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, future.set_exception, LookupError("late"))
    with pytest.raises(LookupError, match="late"):
        await service.wait_first(waits(future, []), flow.wait())


async def test_a_stopped_service_answers_stopped_as_mode_does() -> None:
    service = Fetching()
    service._stopped.set()
    result = await service.wait_first(returns(1), asyncio.Event().wait())
    assert result.stopped is True
    assert result.done == []


async def test_cancelling_the_waiter_cancels_the_delivery() -> None:
    service = Fetching()
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    waiter = asyncio.ensure_future(service.wait_first(waits(future, seen), asyncio.Event().wait()))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(0)
    assert seen == ["cancelled"]
