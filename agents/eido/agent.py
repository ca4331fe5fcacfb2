"""The EIDO intake stage: each EIDO on ``heart.cad.eido`` becomes call events on ``cad.calls``.

The first EIDO of an incident becomes a ``call.received``; a later one that changes what
triage decides on becomes a ``call.updated``; one that changes nothing emits nothing. The
translation is ``heart.cad.eido``'s (pure); this module only keeps each incident's latest known
state in a changelogged table, so that updates survive a restart or a rebalance.

Contract for senders: the record key is the incident id, so that every EIDO of one
incident reaches the same partition, and with it the table entry that holds its state.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import orjson
from faust.types import EventT, StreamT

from heart.cad.eido import EidoError, call_update, translate_eido
from heart.schemas.calls import CallReceived
from heart.streams import metrics
from heart.streams.codec import MAX_MESSAGE_BYTES
from heart.streams.deadletter import ProcessingError
from heart.streams.lag import note_processed
from heart.streams.stage import Stage
from heart.streams.topics import CAD_CALLS, CAD_EIDO, EIDO_INCIDENTS

log = logging.getLogger(__name__)


def parse(raw: bytes | None) -> dict[str, Any]:
    """The EIDO object a record carries. Raises :class:`EidoError` (reason ``invalid_json``
    or ``unknown_structure``) for anything else, so every failure has a dead-letter reason."""
    if raw is None:
        raise EidoError("invalid_json", "message has no value")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise EidoError("invalid_json", f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's message gives a position, never the document's text.
        raise EidoError("invalid_json", f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(doc, dict):
        raise EidoError("unknown_structure", "an EIDO must be a JSON object")
    return doc


def register(stage: Stage) -> None:
    incidents = stage.table(EIDO_INCIDENTS)
    latency = metrics.PROCESSING_SECONDS.labels(stage.name)
    consumed = metrics.EVENTS_CONSUMED.labels(stage.name, CAD_EIDO.name)
    unchanged = metrics.DUPLICATES.labels(stage.name, CAD_EIDO.name)

    async def handle(event: EventT) -> None:
        translated = translate_eido(parse(event.message.value))
        call = translated.call
        stage.clock.observe(translated.updated_at)
        stored = incidents.get(call.call_id)
        if stored is None:
            # Send before remembering: a crash between the two redelivers the EIDO and
            # sends again (same event id, de-duplicated by triage), where the other order
            # could remember a call that never reached cad.calls.
            await stage.send(CAD_CALLS, call.call_id, call)
            incidents[call.call_id] = _state(call, translated.updated_at)
            return
        if translated.updated_at < datetime.fromisoformat(stored["updated_at"]):
            # An EIDO older than the state it would update (a sender retrying out of
            # order) must not undo a newer one.
            unchanged.inc()
            return
        previous = CallReceived.model_validate(stored["call"])
        update = call_update(previous, translated)
        if update is None:
            # A redelivery, or an EIDO whose changes triage does not decide on.
            unchanged.inc()
            return
        await stage.send(CAD_CALLS, call.call_id, update)
        merged = {
            name: value
            for name in update.model_fields_set
            if name in CallReceived.model_fields
            and name not in {"event_id", "event_type", "occurred_at", "schema_version"}
            and (value := getattr(update, name)) is not None
        }
        incidents[call.call_id] = _state(previous.model_copy(update=merged), update.occurred_at)

    @stage.app.agent(stage.topic(CAD_EIDO), name="eido")
    async def intake(stream: StreamT) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            consumed.inc()
            note_processed(event.message.tp, event.message.offset, event.message.timestamp)
            try:
                await handle(event)
            except EidoError as exc:
                await stage.deadletters.send(event, exc, exc.reason)
            except Exception as exc:
                # One EIDO the translator did not foresee must not stop NG911 intake. Only
                # the exception's class is logged and dead-lettered: its text may quote the
                # caller's details.
                name = type(exc).__name__
                log.error(
                    "EIDO intake failed (%s); dead-lettering the record",
                    name,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                await stage.deadletters.send(event, ProcessingError(name), "processing_error")
            latency.observe(time.perf_counter() - started)


def _state(call: CallReceived, updated_at: datetime) -> dict[str, Any]:
    # The caller's name and number are not needed to compute updates: they stay out of the
    # changelog topic.
    return {
        "call": call.model_copy(update={"caller": None}).model_dump(mode="json"),
        "updated_at": updated_at.isoformat(),
    }
