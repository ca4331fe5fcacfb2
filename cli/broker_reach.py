"""Whether the Kafka broker answers, and one line that says what to do when it does not.

Every command that needs Kafka (``heart worker``, ``topics``, ``simulate``, ``report``,
``import --to-topic``, and ``up`` or ``replay`` pointed at a broker by HEART_KAFKA_BOOTSTRAP)
checks the broker before it builds a producer or a consumer. An address that refuses ends
the command at once (one that never answers, after :data:`PROBE_TIMEOUT_S`) with one line
naming the address and how to get a broker, and exit status
:data:`BROKER_UNAVAILABLE_EXIT`. The CLI's error handling (:mod:`heart.cli.main`)
recognises the same failure when the broker goes away later.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    KafkaUnavailableError,
    NoBrokersAvailable,
    NodeNotReadyError,
)

from heart.streams.settings import HeartSettings

#: Exit status when the broker cannot be reached (sysexits.h EX_UNAVAILABLE).
BROKER_UNAVAILABLE_EXIT = 69

#: How long the check waits for a broker that neither answers nor refuses (a dropped
#: route). A reachable broker, local or remote, answers a metadata request far sooner.
PROBE_TIMEOUT_S = 10.0

#: aiokafka's errors for "no broker answered": a refused or dropped connection, a node
#: that is not (or no longer) connected, a start or a send that timed out waiting for one.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    KafkaConnectionError,
    NoBrokersAvailable,
    NodeNotReadyError,
    KafkaUnavailableError,
    KafkaTimeoutError,
)


class BrokerUnavailable(Exception):
    """No Kafka broker answered at ``bootstrap``; ``reason`` is the last error seen."""

    def __init__(self, bootstrap: str, reason: str = "") -> None:
        self.bootstrap = bootstrap
        self.reason = reason
        super().__init__(unavailable_message(bootstrap, reason))


def unavailable_message(bootstrap: str, reason: str = "", *, starts_own: str = "") -> str:
    """One line: the address, why (when known), and the ways to get a broker there.

    ``starts_own`` names a command (``up``, ``replay``) that starts an embedded broker of
    its own when HEART_KAFKA_BOOTSTRAP is not set: the fix offered is then to unset it.
    """
    why = f" ({reason})" if reason else ""
    if starts_own:
        fix = (
            f"start that broker, or unset HEART_KAFKA_BOOTSTRAP for `heart {starts_own}` "
            "to start an embedded one"
        )
    else:
        fix = (
            "start one with `heart broker` (or run everything with `heart up`), or set "
            "HEART_KAFKA_BOOTSTRAP to a running broker's host:port"
        )
    return f"cannot reach the Kafka broker at {bootstrap}{why}; {fix}"


def is_broker_unavailable(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it was raised from, means no broker answered."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (BrokerUnavailable, *UNREACHABLE_ERRORS)):
            return True
        if isinstance(current, BaseExceptionGroup):
            return any(is_broker_unavailable(e) for e in current.exceptions)
        current = current.__cause__ or current.__context__
    return False


def reason_of(exc: BaseException) -> str:
    """The short reason shown after the address: the probe's, or the error's name."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BrokerUnavailable):
            return current.reason
        if isinstance(current, UNREACHABLE_ERRORS):
            return type(current).__name__
        current = current.__cause__ or current.__context__
    return type(exc).__name__


def check_broker(settings: HeartSettings, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`BrokerUnavailable` unless a broker at the bootstrap address answers."""
    asyncio.run(probe(settings, timeout))


async def probe(settings: HeartSettings, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Connect, fetch the cluster's metadata once and disconnect; see :func:`check_broker`."""
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    with _bootstrap_errors() as errors:
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
        except TimeoutError:
            raise BrokerUnavailable(
                settings.kafka_bootstrap, f"no answer within {timeout:g} s"
            ) from None
        except (OSError, *UNREACHABLE_ERRORS) as exc:
            raise BrokerUnavailable(
                settings.kafka_bootstrap, errors[-1] if errors else type(exc).__name__
            ) from exc
        finally:
            await client.close()


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        # aiokafka logs each failed host as 'Unable connect to "h:p": <reason>'; the
        # reason (refused, no route, authentication) is what the person needs.
        error = record.args[-1] if isinstance(record.args, tuple) and record.args else None
        if isinstance(error, OSError) and error.errno:
            self.into.append(os.strerror(error.errno).lower())  # "connection refused"
        else:
            self.into.append(str(error) if error is not None else record.getMessage())


@contextmanager
def _bootstrap_errors() -> Iterator[list[str]]:
    """While probing, aiokafka's per-host errors are collected for our one line instead
    of being logged as a second, louder account of the same failure."""
    logger = logging.getLogger("aiokafka")
    errors: list[str] = []
    handler = _Collect(errors)
    propagate, level = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    # Collected even when library logs are quieted: the reason belongs in our line.
    logger.setLevel(logging.WARNING)
    try:
        yield errors
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)
