"""Dead letters on ``heart.deadletter``.

The record's key, value and original headers are copied unchanged; these headers are
added, in the shape Kafka Connect and Kafka Streams use. ``DeadLetter`` is their typed view.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import Field

from heart.schemas.base import Event

HEADER_PREFIX = "heart.dlq."
H_TOPIC = HEADER_PREFIX + "topic"
H_PARTITION = HEADER_PREFIX + "partition"
H_OFFSET = HEADER_PREFIX + "offset"
H_STAGE = HEADER_PREFIX + "stage"
H_ERROR_CLASS = HEADER_PREFIX + "error.class"
H_ERROR_MESSAGE = HEADER_PREFIX + "error.message"
H_REASON = HEADER_PREFIX + "reason"
H_FAILED_AT = HEADER_PREFIX + "failed_at"
H_EVENT_ID = HEADER_PREFIX + "event_id"


class DeadLetter(Event):
    event_type: Literal["deadletter"] = "deadletter"
    source_topic: str
    source_partition: int
    source_offset: int
    stage: str
    reason: str = Field(description="Short machine-readable reason, e.g. invalid_json.")
    error_class: str
    error_message: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (H_EVENT_ID, self.event_id.encode()),
            (H_TOPIC, self.source_topic.encode()),
            (H_PARTITION, str(self.source_partition).encode()),
            (H_OFFSET, str(self.source_offset).encode()),
            (H_STAGE, self.stage.encode()),
            (H_REASON, self.reason.encode()),
            (H_ERROR_CLASS, self.error_class.encode()),
            (H_ERROR_MESSAGE, self.error_message.encode()),
            (H_FAILED_AT, self.occurred_at.isoformat().encode()),
        ]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]]) -> DeadLetter:
        h = {k: v.decode("utf-8", "replace") for k, v in headers if k.startswith(HEADER_PREFIX)}
        return cls(
            event_id=h[H_EVENT_ID],
            occurred_at=datetime.fromisoformat(h[H_FAILED_AT]),
            source_topic=h[H_TOPIC],
            source_partition=int(h[H_PARTITION]),
            source_offset=int(h[H_OFFSET]),
            stage=h[H_STAGE],
            reason=h[H_REASON],
            error_class=h[H_ERROR_CLASS],
            error_message=h[H_ERROR_MESSAGE],
        )
