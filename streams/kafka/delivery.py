"""Handing fetched records to the streams without four tasks per record.

Faust's fetcher delivers every record with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: ``mode``'s
``Service.wait_first`` wraps the delivery, the flow-control wait and the consumer's
stopped and crashed events in four tasks, waits for the first, then cancels the other
three. A delivery almost never waits (it decodes the record and puts it on a stream's
queue that has room), so per record that machinery cost more than the delivery itself:
about a tenth of a stage worker's CPU.

:func:`wait_first` runs the first awaitable one step in place. When it finishes in that
step it is, by definition, the first to complete: the result is the one ``mode`` would
return and no task is made. When it has to wait (a full queue, flow control, the
producer's back-pressure) it goes on, from where it stopped, under ``mode``'s own
``wait_first``, so suspending flow or stopping the consumer still abandons it as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from mode.services import WaitArgT, WaitResults


class _Resumed:
    """Awaits the rest of a coroutine that has already been driven one step by hand.

    Passes through what the coroutine yields (the future it waits on) and sends back what
    the awaiting task sends, so the task sees the coroutine exactly as if it had awaited
    it from the start.
    """

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the awaiting task: pass it on
                try:
                    yielded = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as done:
                    return done.value


async def _rest(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    return await _Resumed(coro, yielded)


async def wait_first(
    slow: Callable[..., Awaitable[WaitResults]],
    stopped: asyncio.Event,
    crashed: asyncio.Event,
    *coros: WaitArgT,
    timeout: float | None = None,
) -> WaitResults:
    """``Service.wait_first`` with a fast path for a first coroutine that does not wait.

    ``slow`` is ``mode``'s own ``wait_first`` of the service; ``stopped`` and ``crashed``
    are its events, which it also waits on.
    """
    first = coros[0] if coros else None
    if not asyncio.iscoroutine(first) or stopped.is_set() or crashed.is_set():
        return await slow(*coros, timeout=timeout)
    rest = coros[1:]
    try:
        yielded = first.send(None)
    except StopIteration as done:
        _close(rest)
        return WaitResults([first], [done.value], False)
    except BaseException:
        # mode's wait_first propagates the first's exception and cancels the others.
        _close(rest)
        raise
    resumed = _rest(first, yielded)
    results = await slow(resumed, *rest, timeout=timeout)
    # Callers recognise the winner by the awaitable they passed.
    done = [first if waitable is resumed else waitable for waitable in results.done]
    return WaitResults(done, results.results, results.stopped)


def _close(waitables: tuple[WaitArgT, ...]) -> None:
    # Never started: closing them is what cancelling their tasks would have done.
    for waitable in waitables:
        if asyncio.iscoroutine(waitable):
            waitable.close()


class FirstInPlace:
    """For a ``mode.Service`` (listed before it): :func:`wait_first` as its ``wait_first``."""

    _stopped: asyncio.Event
    _crashed: asyncio.Event

    async def wait_first(self, *coros: WaitArgT, timeout: float | None = None) -> WaitResults:
        slow = super().wait_first  # type: ignore[misc]
        return await wait_first(slow, self._stopped, self._crashed, *coros, timeout=timeout)
