"""Bytes <-> pydantic events. JSON via orjson; validation via pydantic."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

#: Larger messages are refused before parsing; no legitimate event comes near it.
MAX_MESSAGE_BYTES = 1_048_576

M = TypeVar("M", bound=BaseModel)


class DecodeError(ValueError):
    """A message that is not a valid event. ``reason`` is short and machine-readable."""

    def __init__(self, reason: str, message: str, cause: Exception | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message
        self.cause = cause

    @property
    def error_class(self) -> str:
        return type(self.cause).__name__ if self.cause else type(self).__name__


def encode(event: BaseModel) -> bytes:
    return orjson.dumps(event.model_dump(mode="python"))


def decode(target: type[M] | TypeAdapter[Any], raw: bytes | str | None) -> Any:
    """Parse and validate one message; raise ``DecodeError`` naming what is wrong."""
    if raw is None:
        raise DecodeError("empty_message", "message has no value")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise DecodeError("too_large", f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("invalid_json", str(exc), exc) from exc
    if not isinstance(data, dict):
        raise DecodeError("invalid_event", f"expected a JSON object, got {type(data).__name__}")
    try:
        if isinstance(target, TypeAdapter):
            return target.validate_python(data)
        return target.model_validate(data)
    except ValidationError as exc:
        raise DecodeError(_reason(exc), describe_validation_error(exc), exc) from exc


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """One line per problem, naming the field; never echoes input values (personal data)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(event)"
        parts.append(f"{loc}: {err['msg']}")
    extra = exc.error_count() - limit
    if extra > 0:
        parts.append(f"and {extra} more")
    return "; ".join(parts)


def _reason(exc: ValidationError) -> str:
    types = {err["type"] for err in exc.errors()}
    if types & {"union_tag_invalid", "union_tag_not_found"}:
        return "unknown_event_type"
    if "timezone_aware" in types:
        return "naive_timestamp"
    if "missing" in types:
        return "missing_field"
    return "invalid_event"
