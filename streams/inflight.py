"""Records sent to a stage and not yet answered, for a sender that keeps the stage's
backlog short (the replayer, in front of triage)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class InFlight:
    """Keys sent and not yet answered, oldest first.

    :meth:`room` waits until fewer than ``limit`` are outstanding. A key never answered
    (its record dead-lettered, say) stops holding a place after ``forget_after_s``, so a
    lost answer slows the sender once instead of stalling it.
    """

    def __init__(
        self,
        limit: int,
        forget_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self.forget_after_s = forget_after_s
        self._clock = clock
        self._sent: dict[str, float] = {}  # insertion order is send order
        self._changed = asyncio.Event()
        #: Keys given up on: sent, never answered within ``forget_after_s``.
        self.forgotten = 0

    def __len__(self) -> int:
        return len(self._sent)

    def sent(self, key: str) -> None:
        # A key sent again counts from its latest send, at the back of the line.
        self._sent.pop(key, None)
        self._sent[key] = self._clock()

    def answered(self, key: str) -> None:
        if self._sent.pop(key, None) is not None:
            self._changed.set()

    async def room(self) -> float:
        """Wait until another key may be sent; return the seconds waited."""
        began = self._clock()
        while True:
            self._forget_stale()
            if len(self._sent) < self.limit:
                return self._clock() - began
            self._changed.clear()
            oldest = next(iter(self._sent.values()))
            timeout = max(0.001, oldest + self.forget_after_s - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def _forget_stale(self) -> None:
        cutoff = self._clock() - self.forget_after_s
        while self._sent:
            key, at = next(iter(self._sent.items()))
            if at > cutoff:
                return
            del self._sent[key]
            self.forgotten += 1
