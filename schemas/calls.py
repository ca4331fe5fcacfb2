"""CAD call events on ``cad.calls``: what a CAD system integrates against."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from heart.schemas.base import Event, WireModel

#: BCP 47 language tag, loosely: primary subtag and optional subtags.
LANGUAGE_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"


class Location(WireModel):
    address: str | None = Field(None, max_length=500)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)


class Caller(WireModel):
    """Personal data: never logged, never in a metric label, never forwarded to teams."""

    name: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=40)


class CallReceived(Event):
    event_type: Literal["call.received"] = "call.received"
    call_id: str = Field(min_length=1, max_length=64)
    call_type: str = Field(min_length=1, max_length=200, description="CAD call-type text.")
    beat: str | None = Field(None, max_length=32)
    district: str | None = Field(None, max_length=32)
    weapon_involved: bool = False
    violence_reported: bool = Field(False, description="Physically violent toward others.")
    needs_in_person: bool = Field(
        True, description="Call taker's or clinician's judgement that someone must go."
    )
    behavioral_health: bool = Field(
        False, description='Call taker\'s flag: "other calls involving behavioral health concerns".'
    )
    language: str = Field("en", pattern=LANGUAGE_PATTERN, max_length=35)
    priority: int | None = Field(None, ge=0, le=99)
    location: Location | None = None
    caller: Caller | None = None
    safety_notes: str | None = Field(None, max_length=1000)


class CallUpdated(Event):
    """A change to a received call. Only the fields present change."""

    event_type: Literal["call.updated"] = "call.updated"
    call_id: str = Field(min_length=1, max_length=64)
    call_type: str | None = Field(None, min_length=1, max_length=200)
    beat: str | None = Field(None, max_length=32)
    district: str | None = Field(None, max_length=32)
    weapon_involved: bool | None = None
    violence_reported: bool | None = None
    needs_in_person: bool | None = None
    behavioral_health: bool | None = None
    language: str | None = Field(None, pattern=LANGUAGE_PATTERN, max_length=35)
    priority: int | None = Field(None, ge=0, le=99)
    location: Location | None = None
    safety_notes: str | None = Field(None, max_length=1000)


class CallClosed(Event):
    event_type: Literal["call.closed"] = "call.closed"
    call_id: str = Field(min_length=1, max_length=64)
    disposition: str | None = Field(None, max_length=64)
    followup_declined: bool = Field(
        False, description="The person declined a follow-up at the contact."
    )
