"""The circuit breaker: a stage that fails on valid input pauses, holding the message.

Two kinds of failure get two answers (``docs/reliability.md``, "Bad input and processing
failures"):

- A message that cannot be decoded or validated is the sender's fault. It is dead-lettered
  at full speed, however many there are, and never pauses the stage
  (:mod:`heart.streams.deadletter`): good calls behind bad ones keep flowing.
- The stage's own exception on a message that validated means a bad deploy or a broken
  dependency. Dead-lettering would lose a valid call, so the reader that handed the message
  out pauses instead and holds it, unacknowledged: it takes nothing more until the held
  message succeeds, and a restart reads it again. This breaker counts only these.

While a message is held the breaker is open: ``heart_circuit_open`` is 1 and one CRITICAL
line says what failed. After a cool-down the held message is tried again; each failed
retry doubles the next cool-down, up to a maximum, so a cause that goes away is recovered
from within that maximum. An operator need not wait:

- SIGUSR1, *reset*: retry every held message now (after a fix that needed no restart);
- SIGUSR2, *skip*: dead-letter every held message as ``processing_error`` and go on, for
  a message that cannot succeed before a fix is deployed (redrive it afterwards).

Both take effect at once, whatever is left of the cool-down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from heart.streams import metrics

log = logging.getLogger(__name__)

#: What a paused reader does once its wait ends.
Verdict = Literal["retry", "skip"]
#: How often a waiting reader checks whether it must stop waiting (a rebalance).
INTERRUPT_CHECK_S = 0.5
#: The operator's signals (docs/reliability.md, runbook).
RESET_SIGNAL = signal.SIGUSR1
SKIP_SIGNAL = signal.SIGUSR2


@dataclass
class Hold:
    """The message a reader holds: where it is, what failed, and when to try again."""

    topic: str
    partition: int
    offset: int
    error_class: str
    cooldown_s: float
    since: float = field(default_factory=time.monotonic)
    #: Times the stage failed on it, the first failure included.
    failures: int = 1
    #: A verdict reached but not yet acted on (the reader could not take the message:
    #: a rebalance began), so that the next wait does not start the cool-down again.
    pending: Verdict | None = None

    def is_at(self, topic: str, partition: int, offset: int) -> bool:
        return (self.topic, self.partition, self.offset) == (topic, partition, offset)

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class CircuitBreaker:
    """One stage's breaker. Each reader of the stage (one per agent stream) holds at most
    one message; the stage's breaker is open while any reader holds one."""

    def __init__(self, stage: str, *, cooldown_s: float = 30.0, max_cooldown_s: float = 120.0):
        if cooldown_s <= 0:
            raise ValueError(f"breaker cool-down must be positive, got {cooldown_s}")
        self.stage = stage
        self.cooldown_s = cooldown_s
        # The maximum is never below the first cool-down, whatever the settings say.
        self.max_cooldown_s = max(cooldown_s, max_cooldown_s)
        self.trips = 0
        self._holds: dict[object, Hold] = {}
        self._resets = 0
        self._skips = 0
        self._poke = asyncio.Event()
        self._gauge = metrics.CIRCUIT_OPEN.labels(stage)
        self._gauge.set(0)
        metrics.CIRCUIT_TRIPS.labels(stage)  # served at 0 from the start, for rate()
        _BREAKERS.add(self)

    @property
    def is_open(self) -> bool:
        return bool(self._holds)

    def held(self, reader: object) -> Hold | None:
        return self._holds.get(reader)

    def holds(self) -> list[Hold]:
        """Every message the stage's readers hold now."""
        return list(self._holds.values())

    def hold(self, reader: object, topic: str, partition: int, offset: int, error: str) -> Hold:
        """The stage failed on the message ``reader`` handed out: hold it, or count one more
        failure of the message already held."""
        current = self._holds.get(reader)
        if current is not None and current.is_at(topic, partition, offset):
            current.failures += 1
            current.cooldown_s = min(self.max_cooldown_s, current.cooldown_s * 2)
            log.critical(
                "stage %s still paused: the held message %s failed again (%s, %d failures "
                "in %.0fs). Retrying in %.0fs; SIGUSR1 retries now, SIGUSR2 dead-letters it.",
                self.stage,
                current.where(),
                error,
                current.failures,
                time.monotonic() - current.since,
                current.cooldown_s,
            )
            return current
        hold = Hold(topic, partition, offset, error, self.cooldown_s)
        self._holds[reader] = hold
        self.trips += 1
        metrics.CIRCUIT_TRIPS.labels(self.stage).inc()
        self._gauge.set(1)
        # The exception's class only: its text may quote the input.
        log.critical(
            "CIRCUIT OPEN: stage %s paused: its code raised %s on a valid message (%s). The "
            "message is held and nothing behind it is processed or lost; the CAD's standard "
            "response covers new calls. A bad deploy? Fix it and restart the worker, or send "
            "SIGUSR1 to retry now (SIGUSR2 dead-letters the message instead). Retrying in %.0fs.",
            self.stage,
            error,
            hold.where(),
            hold.cooldown_s,
        )
        return hold

    def release(self, reader: object, why: Literal["succeeded", "skipped", "gone"]) -> None:
        """``reader`` holds nothing any more: its message succeeded, was skipped, or is no
        longer this worker's to process (its partition moved)."""
        hold = self._holds.pop(reader, None)
        if hold is None:
            return
        paused = time.monotonic() - hold.since
        if why == "succeeded":
            log.warning(
                "circuit closed: stage %s resumes: the held message %s succeeded after %d "
                "failure(s), paused %.0fs",
                self.stage,
                hold.where(),
                hold.failures,
                paused,
            )
        elif why == "skipped":
            log.warning(
                "circuit closed: stage %s resumes: the held message %s was dead-lettered as "
                "processing_error on request (SIGUSR2), paused %.0fs; redrive it after the fix",
                self.stage,
                hold.where(),
                paused,
            )
        else:
            log.warning(
                "stage %s: the held message %s is no longer this worker's (its partition "
                "moved); it stays unacknowledged for whoever reads it next",
                self.stage,
                hold.where(),
            )
        if not self._holds:
            self._gauge.set(0)

    def forget(self, reader: object) -> None:
        """The reader is gone (the stage stops or restarts an agent); its message was never
        acknowledged and is read again from the committed offset."""
        if self._holds.pop(reader, None) is not None and not self._holds:
            self._gauge.set(0)

    async def wait(
        self, reader: object, interrupted: Callable[[], bool] | None = None
    ) -> Verdict | None:
        """Block the reader until its held message is to be retried (the cool-down ended, or
        a reset) or skipped (on request); None as soon as ``interrupted()`` (checked every
        :data:`INTERRUPT_CHECK_S`) says the reader must stop waiting: a rebalance began."""
        hold = self._holds[reader]
        if hold.pending is not None:
            return hold.pending
        resets, skips = self._resets, self._skips
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold.cooldown_s
        verdict: Verdict = "retry"
        while True:
            if self._skips != skips:
                verdict = "skip"
                break
            remaining = deadline - loop.time()
            if self._resets != resets or remaining <= 0:
                break
            if interrupted is not None:
                if interrupted():
                    return None
                remaining = min(remaining, INTERRUPT_CHECK_S)
            poke = self._poke
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poke.wait(), remaining)
        hold.pending = verdict
        return verdict

    def taken(self, reader: object) -> None:
        """The reader took its held message to retry or skip it: the verdict is spent."""
        hold = self._holds.get(reader)
        if hold is not None:
            hold.pending = None

    def reset(self) -> int:
        """Retry every held message now; returns how many are held."""
        self._resets += 1
        self._wake()
        return len(self._holds)

    def skip(self) -> int:
        """Dead-letter every held message and go on; returns how many are held."""
        self._skips += 1
        self._wake()
        return len(self._holds)

    def _wake(self) -> None:
        poke, self._poke = self._poke, asyncio.Event()
        poke.set()


_BREAKERS: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


def _on_signal(action: Literal["reset", "skip"]) -> None:
    held = sum(getattr(breaker, action)() for breaker in list(_BREAKERS))
    stages = ", ".join(sorted({b.stage for b in _BREAKERS if b.is_open})) or "none"
    what = "retrying" if action == "reset" else "dead-lettering"
    log.warning(
        "operator %s (SIG%s): %s %d held message(s) now (paused stages: %s)",
        action,
        "USR1" if action == "reset" else "USR2",
        what,
        held,
        stages,
    )


def install_operator_signals(loop: asyncio.AbstractEventLoop) -> None:
    """SIGUSR1 resets and SIGUSR2 skips every breaker of this process. Installed once the
    worker runs, so they replace the stack dump and debugger the Faust worker would bind
    to them (a debugger in a container with no terminal would hang the stage)."""
    loop.add_signal_handler(RESET_SIGNAL, _on_signal, "reset")
    loop.add_signal_handler(SKIP_SIGNAL, _on_signal, "skip")
