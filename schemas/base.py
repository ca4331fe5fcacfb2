"""Fields every HEART event carries, whatever its topic."""

from __future__ import annotations

import uuid

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: Bumped when a change to any event is not backward compatible for consumers.
SCHEMA_VERSION = 1


def new_event_id() -> str:
    return uuid.uuid4().hex


class WireModel(BaseModel):
    """Base for everything on the wire: unknown fields from newer producers are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Event(WireModel):
    event_id: str = Field(
        default_factory=new_event_id,
        min_length=1,
        max_length=128,
        description="Unique per event; consumers de-duplicate on it.",
    )
    event_type: str = Field(description="Discriminator naming the event's model.")
    occurred_at: AwareDatetime = Field(
        description="RFC 3339 timestamp with an offset. Naive timestamps are rejected."
    )
    schema_version: int = Field(SCHEMA_VERSION, ge=1)


#: An opaque staff id (a clinician, a team member, a navigator): letters, digits and
#: ``. _ : -``, with at least one digit, so that a name ("Jane Smith", "jsmith") never
#: passes for one.
STAFF_ID_PATTERN = r"^[A-Za-z0-9._:-]*[0-9][A-Za-z0-9._:-]*$"
