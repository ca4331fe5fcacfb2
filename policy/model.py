"""The triage policy: which pilots take which calls, where and when, loaded from TOML.

A policy is data. Every rule the triage stage applies (call-type categories and their CAD
aliases, hours, service areas, which risks exclude which pilot) lives in the TOML file;
this module only validates it and precomputes lookups so that a decision per event is a
handful of dict and set probes.

Validation is strict because a policy silently misread sends people in crisis to the wrong
responder: TOML integers are never coerced to strings, unknown keys are refused, required
sections have no defaults. Every problem is reported as ``field.path: problem`` together
with the file it came from (see :class:`PolicyError`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from heart.policy.file_problems import FileProblem, Loc, Problems, problems_from, toml_type
from heart.policy.toml_file import read_toml
from heart.schemas.ccd import RESOURCE_ID_PATTERN, URGENCIES
from heart.schemas.dispatch import UnitStatus
from heart.schemas.triage import Pilot, Route

#: Pilot ids, in the order decisions list them; taken from the wire schema so the two agree.
PILOTS: tuple[str, ...] = typing.get_args(Pilot)
#: Pilots that take a call themselves (every route except police).
RESPONDERS: tuple[str, ...] = tuple(r for r in typing.get_args(Route) if r != "police")
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_TIME = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")


def normalize(text: str) -> str:
    """Key used to compare CAD text: case, surrounding and repeated whitespace ignored."""
    return " ".join(text.split()).casefold()


# --- problems -----------------------------------------------------------------------------


class PolicyError(FileProblem):
    """A policy file that cannot be used. The message names the file, each field, the problem.

    ``problems`` holds ``(field_path, problem)`` pairs; the field path is dotted with list
    indexes in brackets (``pilots.crt.hours[0].end``), or ``""`` for the file as a whole.
    """

    kind = "policy file"


# --- field types --------------------------------------------------------------------------


def _non_blank(value: str) -> str:
    if not value.strip():
        raise Problems.one("must not be blank")
    return value


def suggest_time(value: object) -> str | None:
    """The valid ``"HH:MM"`` a mistyped time plainly means, or None when it is not plain:
    800 or "800" -> "08:00", "8:30" -> "08:30", 16 -> "16:00", TOML's 08:30:00 -> "08:30"."""
    if isinstance(value, time):
        return f"{value.hour:02d}:{value.minute:02d}"
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    if text.count(":") == 2 and text.endswith(":00"):
        text = text[:-3]  # seconds, as TOML writes a time
    hours, sep, minutes = text.partition(":")
    if not sep:
        # 8 and 16 are whole hours; 800 and 1630 are hours then minutes.
        if not text.isdigit() or len(text) > 4:
            return None
        hours, minutes = (text, "00") if len(text) <= 2 else (text[:-2], text[-2:])
    if not (hours.isdigit() and minutes.isdigit() and len(hours) <= 2 and len(minutes) == 2):
        return None
    candidate = f"{int(hours):02d}:{minutes}"
    return candidate if _TIME.match(candidate) else None


def _did_you_mean(value: object, info: ValidationInfo) -> str:
    hint = suggest_time(value)
    if hint == "24:00" and info.field_name == "start":
        # A window cannot start at 24:00 (see Window): that hint would fail next.
        hint = "00:00"
    return f'did you mean "{hint}"?' if hint else 'e.g. "08:30"'


def _toml_text(value: object) -> str:
    # As the file spells it: 08:30:00, true; not datetime.time(8, 30), True.
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, time):
        return value.isoformat()
    return repr(value)


def _time_type(value: object, info: ValidationInfo) -> object:
    # Before the string check, so that 800 or TOML's 08:00:00 is told the "HH:MM" string
    # it should be, not the generic "quote it", which would lead to "800".
    if isinstance(value, str):
        return value
    raise Problems.one(
        f'must be a quoted "HH:MM" string, got {toml_type(value)} {_toml_text(value)} '
        f"({_did_you_mean(value, info)})"
    )


def _time_of_day(value: str, info: ValidationInfo) -> str:
    if not _TIME.match(value):
        raise Problems.one(
            f"invalid time {value!r} (use HH:MM, 00:00 to 24:00; {_did_you_mean(value, info)})"
        )
    return value


def _day(value: str) -> str:
    day = value.strip().casefold()
    if day not in DAYS:
        raise Problems.one(f"unknown day {value!r} (use mon..sun)")
    return day


def _responder(value: str) -> str:
    if value not in RESPONDERS:
        raise Problems.one(f"unknown pilot {value!r} (use {', '.join(RESPONDERS)})")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise Problems.one(
            f"unknown time zone {value!r} (use an IANA name like America/New_York)"
        ) from None
    return value


def _service_area(value: object) -> object:
    # "citywide" becomes None so the model holds one shape: a beat list, or nothing to check.
    if isinstance(value, str):
        if value == "citywide":
            return None
        raise Problems.one(f'unknown service area {value!r} (use "citywide" or {{beats = [...]}})')
    if not isinstance(value, dict):
        raise Problems.one(
            f'must be "citywide" or {{beats = [...]}}, got {toml_type(value)} {value!r}'
        )
    return value


def _no_duplicates(values: Sequence[str], what: str) -> list[tuple[Loc, str]]:
    seen: dict[str, str] = {}
    problems: list[tuple[Loc, str]] = []
    for index, value in enumerate(values):
        key = normalize(value)
        if key in seen:
            problems.append(((index,), f"{what} {value!r} listed twice"))
        else:
            seen[key] = value
    return problems


Text = Annotated[str, AfterValidator(_non_blank)]
Beat = Annotated[str, AfterValidator(_non_blank)]
TimeOfDay = Annotated[str, BeforeValidator(_time_type), AfterValidator(_time_of_day)]
Day = Annotated[str, AfterValidator(_day)]
Responder = Annotated[str, AfterValidator(_responder)]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


# --- models -------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Window(_Strict):
    """Opening hours on some weekdays, local time in the policy zone, ``[start, end)``."""

    days: list[Day] = Field(min_length=1)
    start: TimeOfDay
    end: TimeOfDay

    @model_validator(mode="after")
    def _check(self) -> Window:
        problems = [(("days", *loc), p) for loc, p in _no_duplicates(self.days, "day")]
        if self.start == "24:00":
            problems.append((("start",), "start cannot be 24:00 (use 00:00 on the next day)"))
        elif _minutes(self.end) <= _minutes(self.start):
            problems.append(
                (
                    ("end",),
                    f"end {self.end} is not after start {self.start} "
                    "(split a window that crosses midnight in two)",
                )
            )
        if problems:
            raise Problems(problems)
        return self


class BeatArea(_Strict):
    beats: list[Beat] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> BeatArea:
        problems = [(("beats", *loc), p) for loc, p in _no_duplicates(self.beats, "beat")]
        if problems:
            raise Problems(problems)
        return self


#: ``"citywide"`` in the file, ``None`` here; otherwise ``{beats = [...]}``.
ServiceArea = Annotated[BeatArea | None, BeforeValidator(_service_area)]


class _PilotBase(_Strict):
    enabled: bool
    hours: list[Window]
    service_area: ServiceArea
    #: Where the file departs from the department's text, it says so here.
    assumption: Text | None = None

    def _base_problems(self) -> list[tuple[Loc, str]]:
        if self.enabled and not self.hours:
            return [(("hours",), "an enabled pilot needs at least one window")]
        return []


class ResponsePilot(_PilotBase):
    """A pilot that takes calls: CCD by phone, CRT and CoR in person."""

    call_types: list[Text] = Field(default_factory=list)
    #: Also take any call the call taker flags as behavioural health, whatever its type.
    includes_behavioral_health_flag: bool = False

    @model_validator(mode="after")
    def _check(self) -> ResponsePilot:
        problems = self._base_problems()
        problems += [
            (("call_types", *loc), p) for loc, p in _no_duplicates(self.call_types, "call type")
        ]
        if not self.call_types and not self.includes_behavioral_health_flag:
            problems.append(
                (
                    ("call_types",),
                    "pilot takes no calls: list call_types or set "
                    "includes_behavioral_health_flag = true",
                )
            )
        if problems:
            raise Problems(problems)
        return self


class FollowupPilot(_PilotBase):
    """Care Navigation: follows up people after a contact with the pilots it follows."""

    follows: list[Responder] = Field(min_length=1)
    followup_within_hours: int = Field(gt=0)
    unable_to_reach_retries: int = Field(ge=0)
    #: Staffed minutes between an unable-to-reach attempt and the retry's release.
    retry_after_minutes: int = Field(120, gt=0)
    #: A case with fewer staffed minutes than this before its deadline is flagged at risk.
    at_risk_below_staffed_minutes: int = Field(120, ge=0)
    #: Most cases one timer sweep changes, so that a restart drains in batches, not a storm.
    sweep_batch_limit: int = Field(100, gt=0)

    @model_validator(mode="after")
    def _check(self) -> FollowupPilot:
        problems = self._base_problems()
        problems += [(("follows", *loc), p) for loc, p in _no_duplicates(self.follows, "pilot")]
        if problems:
            raise Problems(problems)
        return self


class Pilots(_Strict):
    ccd: ResponsePilot
    crt: ResponsePilot
    cor: ResponsePilot
    cn: FollowupPilot


class Risk(_Strict):
    """Which reported risks keep a pilot off a call, and which pilot exists for them.

    No defaults: forgetting this section must not quietly send unarmed teams to a
    report of a weapon.
    """

    excluded_by_weapon: list[Responder]
    excluded_by_violence: list[Responder]
    #: Pilots that take a call only when a weapon or violence toward others is reported.
    requires_weapon_or_violence: list[Responder]

    @model_validator(mode="after")
    def _check(self) -> Risk:
        problems: list[tuple[Loc, str]] = []
        for name in ("excluded_by_weapon", "excluded_by_violence", "requires_weapon_or_violence"):
            problems += [
                ((name, *loc), p) for loc, p in _no_duplicates(getattr(self, name), "pilot")
            ]
        for index, pilot in enumerate(self.requires_weapon_or_violence):
            if pilot in self.excluded_by_weapon and pilot in self.excluded_by_violence:
                problems.append(
                    (
                        ("requires_weapon_or_violence", index),
                        f"pilot {pilot!r} requires a weapon or violence but is excluded by both",
                    )
                )
        if problems:
            raise Problems(problems)
        return self


class Dispatch(_Strict):
    max_queue_wait_minutes: int = Field(gt=0)
    #: HEART acts on a call only this long after the CAD event that asked for it: later,
    #: triage decides it ``stale`` (police) and dispatch sends no team. The CAD's standard
    #: response has taken over by then. Default: the queue's usual maximum wait.
    stale_call_minutes: int = Field(10, gt=0, le=1440)
    #: A team in one of these statuses this many minutes is flagged to the 911 center (the
    #: console's alerts); a status left out never is. None: the file has no table, and
    #: :data:`DEFAULT_STATUS_ALERT_MINUTES` applies.
    status_alert_minutes: dict[UnitStatus, Annotated[float, Field(gt=0, le=1440)]] | None = None

    @model_validator(mode="after")
    def _check(self) -> Dispatch:
        # Dispatch sends no team to a call older than stale_call_minutes, so a queue wait
        # past it would promise a wait that never happens.
        wait, stale = self.max_queue_wait_minutes, self.stale_call_minutes
        if wait > stale:
            stated = "" if "stale_call_minutes" in self.model_fields_set else " (the default)"
            raise Problems.one(
                f"{wait} is longer than dispatch.stale_call_minutes = {stale}{stated}, after "
                "which no team is sent (set max_queue_wait_minutes to at most "
                f"{stale}, or raise stale_call_minutes)",
                "max_queue_wait_minutes",
            )
        return self

    @property
    def status_alerts(self) -> Mapping[str, float]:
        """The status alert thresholds in force, in minutes."""
        table = self.status_alert_minutes
        return types.MappingProxyType(DEFAULT_STATUS_ALERT_MINUTES if table is None else table)


#: The thresholds a policy without ``[dispatch.status_alert_minutes]`` gets: a team not yet
#: moving after 10 minutes, en route 30, on scene 90, transporting 60, out of service 120.
DEFAULT_STATUS_ALERT_MINUTES: dict[str, float] = {
    "dispatched": 10.0,
    "en_route": 30.0,
    "on_scene": 90.0,
    "transporting": 60.0,
    "out_of_service": 120.0,
}


NAME_MAX = 120


def _one_line_name(value: str) -> str:
    # A report heading shows it on one line: a name, not a paragraph.
    if len(value) > NAME_MAX or "\n" in value:
        raise Problems.one(f"must be one line of at most {NAME_MAX} characters")
    return value


Name = Annotated[str, AfterValidator(_non_blank), AfterValidator(_one_line_name)]


class Organisation(_Strict):
    """Who runs the pilots, as every report names them (page heading, JSON, terminal)."""

    #: e.g. "Durham Community Safety Department".
    department: Name | None = None
    #: e.g. "Durham, NC".
    city: Name | None = None
    #: The programme the pilots belong to, e.g. "HEART".
    program: Name | None = None

    @model_validator(mode="after")
    def _check(self) -> Organisation:
        if self.department is None and self.city is None and self.program is None:
            raise Problems.one(
                "names nothing: set department, city or program, or leave the table out"
            )
        return self


def _resource_id(value: str) -> str:
    if not re.fullmatch(RESOURCE_ID_PATTERN, value) or len(value) > 64:
        raise Problems.one(
            "is not a resource id (use up to 64 lower-case letters, digits, _ and -, "
            'e.g. "mobile_crisis")'
        )
    return value


ResourceKey = Annotated[str, AfterValidator(_resource_id)]

#: The resources a clinician refers to when the file names none: the department's text
#: names 988; the others are the kinds of care its clinicians connect people to.
DEFAULT_REFERRAL_RESOURCES: dict[str, str] = {
    "988": "988 Suicide & Crisis Lifeline",
    "mobile_crisis": "Mobile crisis team",
    "outpatient": "Outpatient mental health care",
    "substance_use": "Substance use treatment",
    "shelter": "Shelter or housing services",
}


class ConsultTargets(_Strict):
    """Minutes a consult may wait unanswered, per urgency, before it is overdue."""

    urgent: int = Field(2, gt=0, le=1440)
    soon: int = Field(10, gt=0, le=1440)
    routine: int = Field(30, gt=0, le=1440)

    @model_validator(mode="after")
    def _check(self) -> ConsultTargets:
        # A more urgent consult must not be allowed to wait longer than a less urgent one.
        for more, less in itertools.pairwise(URGENCIES):
            if getattr(self, more) > getattr(self, less):
                raise Problems(
                    [
                        (
                            (more,),
                            f"{more} target {getattr(self, more)} is longer than the "
                            f"{less} target {getattr(self, less)}",
                        )
                    ]
                )
        return self

    def minutes(self, urgency: str) -> int:
        return int(getattr(self, urgency))


class CcdWork(_Strict):
    """What CCD clinicians do on a call beyond the route: the optional ``[ccd]`` table."""

    #: Resource id -> the name reports show; a referral to any other id is refused.
    referral_resources: dict[ResourceKey, Name] = Field(
        default_factory=lambda: dict(DEFAULT_REFERRAL_RESOURCES), min_length=1
    )
    consult_targets: ConsultTargets = Field(default_factory=ConsultTargets)
    #: A shorter follow-up deadline after a ``high`` C-SSRS screening; None: the same as
    #: everyone's (``pilots.cn.followup_within_hours``).
    high_risk_followup_within_hours: int | None = Field(None, gt=0)


@dataclass(frozen=True, slots=True)
class PilotRule:
    """One responding pilot's rules, precomputed for per-event decisions."""

    pilot: str
    enabled: bool
    call_types: frozenset[str]
    takes_flagged: bool
    #: Normalized beats, or None when the pilot serves the whole city.
    beats: frozenset[str] | None
    #: Per weekday (Monday = 0), the open ``(start, end)`` minute ranges, end exclusive.
    week: tuple[tuple[tuple[int, int], ...], ...]
    excluded_by_weapon: bool
    excluded_by_violence: bool
    requires_weapon_or_violence: bool

    def open_at(self, local: datetime) -> bool:
        """Whether ``local`` (already in the policy zone) falls inside opening hours."""
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.week[local.weekday()])


def _week(windows: Sequence[Window]) -> tuple[tuple[tuple[int, int], ...], ...]:
    ranges: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    for window in windows:
        span = (_minutes(window.start), _minutes(window.end))
        for day in window.days:
            ranges[DAYS.index(day)].append(span)
    return tuple(tuple(sorted(day)) for day in ranges)


class Policy(_Strict):
    """A city's triage policy. Build it with :func:`load_policy`, not by hand."""

    #: Short identifier used in :attr:`version_id`, e.g. ``durham``.
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=32)
    #: The policy's own version, e.g. the date it took effect.
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=32)
    title: Text | None = None
    source: Text | None = None
    #: Reports are headed with these names; without them, with a neutral heading.
    organisation: Organisation | None = None
    timezone: Annotated[str, AfterValidator(_timezone)]
    #: The city's beats; when given, a call's beat outside it is ``unknown_beat``.
    known_beats: list[Beat] = Field(default_factory=list)
    #: Category name -> CAD call-type texts that mean it. The name itself always matches.
    categories: dict[Text, list[Text]] = Field(min_length=1)
    risk: Risk
    dispatch: Dispatch
    pilots: Pilots
    #: Clinicians' referral resources, consult targets, high-risk follow-up; None: defaults.
    ccd: CcdWork | None = None

    _zone: ZoneInfo = PrivateAttr()
    _version_id: str = PrivateAttr()
    _aliases: dict[str, str] = PrivateAttr()
    _known_beats: frozenset[str] | None = PrivateAttr()
    _rules: tuple[PilotRule, ...] = PrivateAttr()

    @model_validator(mode="after")
    def _cross_check(self) -> Policy:
        problems = self._category_problems()
        problems += self._call_type_problems()
        problems += self._beat_problems()
        problems += self._ccd_problems()
        if problems:
            raise Problems(problems)
        self._precompute()
        return self

    def _category_problems(self) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        owner: dict[str, str] = {}
        for category in self.categories:
            key = normalize(category)
            if key in owner:
                problems.append(
                    (("categories", category), f"category {category!r} duplicates {owner[key]!r}")
                )
            owner[key] = category
        for category, aliases in self.categories.items():
            seen: set[str] = set()
            for index, alias in enumerate(aliases):
                key = normalize(alias)
                mapped = owner.get(key, category)
                if mapped != category:
                    problems.append(
                        (
                            ("categories", category, index),
                            f"alias {alias!r} already maps to {mapped!r}",
                        )
                    )
                elif key in seen:
                    problems.append(
                        (("categories", category, index), f"alias {alias!r} listed twice")
                    )
                seen.add(key)
                owner.setdefault(key, category)
        return problems

    def _call_type_problems(self) -> list[tuple[Loc, str]]:
        by_key = {normalize(name): name for name in self.categories}
        problems: list[tuple[Loc, str]] = []
        for pilot in RESPONDERS:
            for index, name in enumerate(getattr(self.pilots, pilot).call_types):
                if name in self.categories:
                    continue
                hint = by_key.get(normalize(name))
                problem = f"unknown category {name!r}" + (
                    f" (did you mean {hint!r}?)" if hint else " (not in [categories])"
                )
                problems.append((("pilots", pilot, "call_types", index), problem))
        return problems

    def _beat_problems(self) -> list[tuple[Loc, str]]:
        problems = [
            (("known_beats", *loc), p) for loc, p in _no_duplicates(self.known_beats, "beat")
        ]
        if not self.known_beats:
            return problems
        known = {normalize(beat) for beat in self.known_beats}
        for pilot in PILOTS:
            area = getattr(self.pilots, pilot).service_area
            for index, beat in enumerate(area.beats if area else ()):
                if normalize(beat) not in known:
                    problems.append(
                        (
                            ("pilots", pilot, "service_area", "beats", index),
                            f"beat {beat!r} is not in known_beats",
                        )
                    )
        return problems

    def _ccd_problems(self) -> list[tuple[Loc, str]]:
        hours = self.ccd.high_risk_followup_within_hours if self.ccd else None
        limit = self.pilots.cn.followup_within_hours
        if hours is not None and hours > limit:
            return [
                (
                    ("ccd", "high_risk_followup_within_hours"),
                    f"{hours} is longer than everyone's deadline, "
                    f"pilots.cn.followup_within_hours = {limit} (it may only shorten it)",
                )
            ]
        return []

    def _precompute(self) -> None:
        self._zone = ZoneInfo(self.timezone)
        aliases: dict[str, str] = {}
        for category, names in self.categories.items():
            for text in (category, *names):
                aliases[normalize(text)] = category
        self._aliases = aliases
        self._known_beats = frozenset(map(normalize, self.known_beats)) or None
        rules = []
        for pilot in RESPONDERS:
            spec: ResponsePilot = getattr(self.pilots, pilot)
            area = spec.service_area
            rules.append(
                PilotRule(
                    pilot=pilot,
                    enabled=spec.enabled,
                    call_types=frozenset(spec.call_types),
                    takes_flagged=spec.includes_behavioral_health_flag,
                    beats=frozenset(map(normalize, area.beats)) if area else None,
                    week=_week(spec.hours),
                    excluded_by_weapon=pilot in self.risk.excluded_by_weapon,
                    excluded_by_violence=pilot in self.risk.excluded_by_violence,
                    requires_weapon_or_violence=pilot in self.risk.requires_weapon_or_violence,
                )
            )
        self._rules = tuple(rules)
        # Hash the validated content, not the file bytes: comments and layout do not
        # change what the policy decides, so they must not change the version either.
        content = self.model_dump(mode="json")
        if self.ccd is None:
            # A file without the optional [ccd] table keeps the version id it had before
            # the table existed: the defaults it stands for are part of this code.
            del content["ccd"]
        if self.dispatch.status_alert_minutes is None:
            # Likewise a file without [dispatch.status_alert_minutes].
            del content["dispatch"]["status_alert_minutes"]
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
        self._version_id = f"{self.name}@{self.version}+{digest}"

    # --- lookups used per event ---------------------------------------------------------

    @property
    def version_id(self) -> str:
        """``name@version+<8 hex of the content's sha256>``; decisions carry it."""
        return self._version_id

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def rules(self) -> tuple[PilotRule, ...]:
        """The responding pilots' rules, in decision order (ccd, crt, cor)."""
        return self._rules

    @property
    def known_beat_set(self) -> frozenset[str] | None:
        """Normalized city beats, or None when beats are not checked."""
        return self._known_beats

    @property
    def ccd_work(self) -> CcdWork:
        """The ``[ccd]`` table, or its defaults when the file has none."""
        return self.ccd if self.ccd is not None else _DEFAULT_CCD_WORK

    def followup_within_hours(self, risk_level: str | None = None) -> int:
        """Care Navigation's deadline after a contact, shorter after a ``high`` screening
        when the policy sets ``ccd.high_risk_followup_within_hours``."""
        shorter = self.ccd_work.high_risk_followup_within_hours
        if risk_level == "high" and shorter is not None:
            return shorter
        return self.pilots.cn.followup_within_hours

    @property
    def followed_by_cn(self) -> frozenset[str]:
        """Routes after which Care Navigation follows up (empty when CN is disabled)."""
        cn = self.pilots.cn
        return frozenset(cn.follows) if cn.enabled else frozenset()

    @property
    def category_aliases(self) -> Mapping[str, str]:
        """Normalized CAD call-type text -> category, read-only (:meth:`category_for`)."""
        return types.MappingProxyType(self._aliases)

    def category_for(self, call_type: str) -> str | None:
        """The category a CAD call-type text belongs to, or None."""
        return self._aliases.get(normalize(call_type))

    def rule(self, pilot: str) -> PilotRule:
        for rule in self._rules:
            if rule.pilot == pilot:
                return rule
        raise KeyError(pilot)


_DEFAULT_CCD_WORK = CcdWork()


# --- loading ------------------------------------------------------------------------------


def default_policy_path() -> Path:
    """The policy shipped with the package: Durham's pilots as launched in 2022."""
    return Path(__file__).with_name("durham.toml")


#: An unknown key under [pilots] is an unknown pilot.
_KEY_NOUNS: dict[Loc, str] = {("pilots",): "pilot"}


def parse_policy(data: Mapping[str, Any], *, source: str | os.PathLike[str]) -> Policy:
    """Validate already-parsed TOML data; ``source`` names it in errors."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(source, problems_from(exc, Policy, key_nouns=_KEY_NOUNS)) from None


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Load and validate a policy file (the default Durham policy when ``path`` is None).

    Raises :class:`PolicyError` naming the file, the field and the problem.
    """
    file = Path(path) if path is not None else default_policy_path()
    return parse_policy(read_toml(file, PolicyError), source=file)
