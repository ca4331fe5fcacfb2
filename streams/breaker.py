"""The dead-letter circuit breaker.

When more than a set share of a stage's recent messages fail (a bad deploy, a CAD that
changed its format), dead-lettering every message would quietly empty the stream into the
dead-letter topic. Instead the stage pauses and says why, loudly, in its log and in
``heart_circuit_open``. Messages not yet consumed stay in their topic, uncommitted; after a
cool-down one message is let through: if it is good the stage resumes, if not it pauses
again for twice as long (up to a cap).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque

from heart.streams import metrics

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(
        self,
        stage: str,
        *,
        window: int = 100,
        threshold: float = 0.5,
        min_events: int = 20,
        cooldown_s: float = 30.0,
        max_cooldown_s: float = 600.0,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"breaker threshold must be in (0, 1], got {threshold}")
        self.stage = stage
        self.threshold = threshold
        self.min_events = min(min_events, window)
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._recent: deque[str | None] = deque(maxlen=window)
        self._open = False
        self._half_open = False
        self._next_cooldown = cooldown_s
        self.trips = 0
        self._gauge = metrics.CIRCUIT_OPEN.labels(stage)
        self._gauge.set(0)

    @property
    def is_open(self) -> bool:
        return self._open

    def failure_share(self) -> float:
        if not self._recent:
            return 0.0
        return sum(1 for r in self._recent if r is not None) / len(self._recent)

    def record(self, failure_reason: str | None) -> None:
        """Record one message's fate: None for processed, else the dead-letter reason."""
        if self._half_open:
            self._half_open = False
            if failure_reason is None:
                self._close()
            else:
                self._trip()
            return
        self._recent.append(failure_reason)
        if (
            failure_reason is not None
            and len(self._recent) >= self.min_events
            and self.failure_share() > self.threshold
        ):
            self._trip()

    def _trip(self) -> None:
        self._open = True
        self.trips += 1
        self._gauge.set(1)
        metrics.CIRCUIT_TRIPS.labels(self.stage).inc()
        reasons = Counter(r for r in self._recent if r is not None).most_common(3)
        log.critical(
            "CIRCUIT OPEN: stage %s paused: %.0f%% of its last %d messages failed (%s). "
            "A bad deploy or a changed CAD format? Failed messages are in heart.deadletter; "
            "unread ones wait in their topic. Retrying one message in %.0fs.",
            self.stage,
            100 * self.failure_share(),
            len(self._recent),
            ", ".join(f"{reason}={n}" for reason, n in reasons) or "probe failed",
            self._next_cooldown,
        )

    def _close(self) -> None:
        log.warning("circuit closed: stage %s resumes after a good message", self.stage)
        self._open = False
        self._recent.clear()
        self._next_cooldown = self.cooldown_s
        self._gauge.set(0)

    async def wait(self) -> None:
        """Block while open; after the cool-down, let exactly one message through."""
        if not self._open or self._half_open:
            return
        await asyncio.sleep(self._next_cooldown)
        self._next_cooldown = min(self.max_cooldown_s, self._next_cooldown * 2)
        self._half_open = True
