"""Every event model by ``event_type``, the per-topic unions, and JSON Schema export."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union

import orjson
from pydantic import Field, TypeAdapter

from heart.schemas.base import SCHEMA_VERSION, Event
from heart.schemas.calls import CallClosed, CallReceived, CallUpdated
from heart.schemas.ccd import (
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    ConsultAnswered,
    ConsultClosed,
    ConsultOverdue,
    ConsultRequested,
)
from heart.schemas.deadletter import DeadLetter
from heart.schemas.dispatch import DispatchEvent, UnitAudit, UnitStatusReport
from heart.schemas.followup import FollowupDue, FollowupOutcome, FollowupOverdue, FollowupScheduled
from heart.schemas.triage import TriageClosure, TriageDecision

MODELS: tuple[type[Event], ...] = (
    CallReceived,
    CallUpdated,
    CallClosed,
    TriageDecision,
    TriageClosure,
    DispatchEvent,
    UnitStatusReport,
    UnitAudit,
    FollowupScheduled,
    FollowupDue,
    FollowupOutcome,
    FollowupOverdue,
    CcdEngaged,
    CcdScreened,
    CcdSafetyPlan,
    CcdReferral,
    CcdDisposition,
    ConsultRequested,
    ConsultAnswered,
    ConsultClosed,
    ConsultOverdue,
    DeadLetter,
)


def event_types(model: type[Event]) -> tuple[str, ...]:
    annotation = model.model_fields["event_type"].annotation
    return tuple(typing.get_args(annotation))


EVENT_TYPES: dict[str, type[Event]] = {t: m for m in MODELS for t in event_types(m)}

CadEvent = Annotated[CallReceived | CallUpdated | CallClosed, Field(discriminator="event_type")]
AnyEvent = Annotated[Union[MODELS], Field(discriminator="event_type")]  # type: ignore[valid-type]  # noqa: UP007

ANY_EVENT: TypeAdapter[Any] = TypeAdapter(AnyEvent)


def export_json_schemas(directory: str | Path, topics: Mapping[str, Any] = {}) -> list[Path]:
    """Write one JSON Schema per event model and one per topic (``topics``: topic name ->
    its value type), plus an index, for CAD and app developers."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    index: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "events": {}, "topics": {}}
    for model in MODELS:
        path = _write(
            out / f"{model.__name__}.schema.json", model.model_json_schema(), model.__name__
        )
        written.append(path)
        for event_type in event_types(model):
            index["events"][event_type] = path.name
    for topic, value in (topics or {}).items():
        schema = TypeAdapter(value).json_schema()
        path = _write(out / f"topic.{topic}.schema.json", schema, f"topic.{topic}")
        written.append(path)
        index["topics"][topic] = path.name
    index_path = out / "index.json"
    index_path.write_bytes(orjson.dumps(index, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    written.append(index_path)
    return written


def _write(path: Path, schema: dict[str, Any], name: str) -> Path:
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://heart-stream.org/schemas/v{SCHEMA_VERSION}/{name}.json"
    path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path
