"""The team roster: which CRT teams and Co-Response pairs serve which service area, and when.

A roster is data, like the triage policy, and is validated as strictly: a team recorded with
the wrong members or an unknown area would be sent to calls it cannot take. Problems are
reported as ``field.path: problem`` with the file named (see :class:`RosterError`).

Layout::

    name = "durham"
    version = "2022-06-27"

    [areas.durham]                      # a service area: one dispatch pool
    districts = { D1 = ["111", "112"], D2 = ["211"] }

    [[teams]]
    id = "CRT-1"
    kind = "crt"                        # crt | cor
    area = "durham"
    roles = ["clinician", "peer_support", "emt"]
    languages = ["en", "es"]
    home_beat = "111"                   # and/or home_district
    shift = [{ days = ["mon", "fri"], start = "08:30", end = "16:30" }]

Shift windows are local time in the *policy's* time zone: one city, one clock.
Members are recorded by role only; names of staff do not belong in a dispatch stream.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, PrivateAttr, ValidationError, model_validator

import heart.policy as _policy_package
from heart.policy.file_problems import FileProblem, Loc, Problems, problems_from
from heart.policy.model import Beat, Text, Window, _no_duplicates, _Strict, _week, normalize
from heart.policy.toml_file import read_toml

#: Per weekday (Monday first), shift windows as [start, end) local minutes.
Week = tuple[tuple[tuple[int, int], ...], ...]

TEAM_KINDS: tuple[str, ...] = ("crt", "cor")
ROLES: tuple[str, ...] = ("clinician", "peer_support", "emt", "police_officer")
#: The members each kind of team must have, exactly (as a multiset of roles).
REQUIRED_ROLES: dict[str, tuple[str, ...]] = {
    "crt": ("clinician", "peer_support", "emt"),
    "cor": ("clinician", "police_officer"),
}
_KIND_TEXT = {"crt": "CRT", "cor": "CoR"}
_ROLE_TEXT = {
    "crt": "a clinician, a peer support specialist and an EMT",
    "cor": "a clinician and a police officer",
}

#: Stricter than the wire's pattern on purpose: a 2-3 letter primary subtag catches the
#: likely mistake of writing "spanish" or "english" where "es" or "en" is meant.
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_TEAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class RosterError(FileProblem):
    """A roster file that cannot be used. The message names the file, each field, the problem.

    ``problems`` holds ``(field_path, problem)`` pairs, dotted with list indexes in brackets
    (``teams[2].roles``), or ``""`` for the file as a whole.
    """

    kind = "roster file"


# --- field types --------------------------------------------------------------------------


def _kind(value: str) -> str:
    if value not in TEAM_KINDS:
        raise Problems.one(f"unknown team kind {value!r} (use {', '.join(TEAM_KINDS)})")
    return value


def _role(value: str) -> str:
    if value not in ROLES:
        raise Problems.one(f"unknown role {value!r} (use {', '.join(ROLES)})")
    return value


def _language(value: str) -> str:
    if not _LANGUAGE.match(value):
        raise Problems.one(
            f"invalid language tag {value!r} (use a BCP 47 tag such as en, es or es-MX)"
        )
    return value


def _team_id(value: str) -> str:
    if not _TEAM_ID.match(value):
        raise Problems.one(
            f"invalid team id {value!r} (letters, digits, '.', '_' and '-'; "
            "starting with a letter or digit)"
        )
    return value


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise Problems.one(f"invalid name {value!r} (lower-case letters, digits, '_' and '-')")
    return value


Kind = Annotated[str, AfterValidator(_kind)]
Role = Annotated[str, AfterValidator(_role)]
Language = Annotated[str, AfterValidator(_language)]
TeamId = Annotated[str, Field(max_length=64), AfterValidator(_team_id)]
AreaName = Annotated[str, Field(max_length=64), AfterValidator(_name)]


def primary_language(tag: str) -> str:
    """The primary subtag of a language tag, case-folded: ``es-MX`` -> ``es``."""
    return tag.split("-", 1)[0].casefold()


# --- models -------------------------------------------------------------------------------


class Area(_Strict):
    """One service area: one dispatch pool, all of whose teams are assigned together."""

    title: Text | None = None
    #: District name -> the police beats in it. Every beat a team or call names is here.
    districts: dict[Text, list[Beat]] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Area:
        problems: list[tuple[Loc, str]] = []
        owner: dict[str, str] = {}
        for district, beats in self.districts.items():
            problems += [
                (("districts", district, *loc), p) for loc, p in _no_duplicates(beats, "beat")
            ]
            if not beats:
                problems.append((("districts", district), "a district needs at least one beat"))
            for index, beat in enumerate(beats):
                key = normalize(beat)
                if key in owner and owner[key] != district:
                    problems.append(
                        (
                            ("districts", district, index),
                            f"beat {beat!r} is already in district {owner[key]!r}",
                        )
                    )
                owner.setdefault(key, district)
        if problems:
            raise Problems(problems)
        return self


class Team(_Strict):
    """A CRT team (clinician, peer support specialist, EMT) or a CoR pair (clinician, officer)."""

    id: TeamId
    kind: Kind
    area: AreaName
    roles: list[Role] = Field(min_length=1)
    languages: list[Language] = Field(min_length=1)
    home_beat: Beat | None = None
    home_district: Text | None = None
    shift: list[Window] = Field(min_length=1)

    _week: Week = PrivateAttr()
    _primary_languages: frozenset[str] = PrivateAttr()

    @model_validator(mode="after")
    def _check(self) -> Team:
        problems: list[tuple[Loc, str]] = []
        required = REQUIRED_ROLES.get(self.kind)
        if required is not None and sorted(self.roles) != sorted(required):
            problems.append(
                (
                    ("roles",),
                    f"a {_KIND_TEXT[self.kind]} team is "
                    f"{_ROLE_TEXT[self.kind]} (roles = {list(required)!r}), "
                    f"got {list(self.roles)!r}",
                )
            )
        problems += [
            (("languages", *loc), p) for loc, p in _no_duplicates(self.languages, "language")
        ]
        if self.home_beat is None and self.home_district is None:
            problems.append((("home_beat",), "a team needs a home_beat or a home_district"))
        if problems:
            raise Problems(problems)
        self._week = _week(self.shift)
        self._primary_languages = frozenset(primary_language(t) for t in self.languages)
        return self

    @property
    def week(self) -> Week:
        """Per weekday (Monday first), the shift windows as [start, end) local minutes."""
        return self._week

    def on_shift(self, when: datetime, zone: ZoneInfo) -> bool:
        """Whether ``when`` (aware; converted to ``zone``) falls inside one of the shifts."""
        local = when.astimezone(zone)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self._week[local.weekday()])

    def speaks(self, language: str) -> bool:
        """Whether a member speaks ``language``, judged on its primary subtag (es-MX ~ es)."""
        return primary_language(language) in self._primary_languages


class Roster(_Strict):
    """The teams of one or more service areas. Build it with :func:`load_roster`."""

    name: Annotated[str, Field(max_length=32), AfterValidator(_name)]
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=32)
    title: Text | None = None
    source: Text | None = None
    assumption: Text | None = None
    areas: dict[AreaName, Area] = Field(min_length=1)
    teams: list[Team] = Field(min_length=1)

    _teams: dict[str, Team] = PrivateAttr()
    _by_area: dict[str, tuple[Team, ...]] = PrivateAttr()
    _beat_district: dict[str, dict[str, str]] = PrivateAttr()
    _home_district: dict[str, str] = PrivateAttr()
    _version_id: str = PrivateAttr()
    _weeks_by_area: dict[str, tuple[tuple[str, Week], ...]] = PrivateAttr()
    _on_shift_last: tuple[tuple[str, int, int, ZoneInfo], frozenset[str]] | None = PrivateAttr(
        default=None
    )

    @model_validator(mode="after")
    def _cross_check(self) -> Roster:
        beat_district = {
            area: {normalize(b): d for d, beats in spec.districts.items() for b in beats}
            for area, spec in self.areas.items()
        }
        problems: list[tuple[Loc, str]] = []
        seen: dict[str, int] = {}
        home: dict[str, str] = {}
        for index, team in enumerate(self.teams):
            key = team.id.casefold()
            if key in seen:
                problems.append(
                    (("teams", index, "id"), f"team id {team.id!r} duplicates teams[{seen[key]}]")
                )
            seen.setdefault(key, index)
            if team.area not in self.areas:
                problems.append(
                    (
                        ("teams", index, "area"),
                        f"unknown area {team.area!r} (known: {', '.join(self.areas)})",
                    )
                )
                continue
            districts = self.areas[team.area].districts
            district = team.home_district
            if district is not None and district not in districts:
                problems.append(
                    (
                        ("teams", index, "home_district"),
                        f"unknown district {district!r} in area {team.area!r} "
                        f"(known: {', '.join(districts)})",
                    )
                )
                continue
            if team.home_beat is not None:
                beat_in = beat_district[team.area].get(normalize(team.home_beat))
                if beat_in is None:
                    problems.append(
                        (
                            ("teams", index, "home_beat"),
                            f"beat {team.home_beat!r} is in no district of area {team.area!r}",
                        )
                    )
                    continue
                if district is not None and district != beat_in:
                    problems.append(
                        (
                            ("teams", index, "home_district"),
                            f"district {district!r} does not hold home_beat "
                            f"{team.home_beat!r} (it is in {beat_in!r})",
                        )
                    )
                    continue
                district = beat_in
            assert district is not None  # the team model requires a beat or a district
            home[team.id] = district
        if problems:
            raise Problems(problems)

        self._teams = {team.id: team for team in self.teams}
        self._by_area = {
            area: tuple(t for t in self.teams if t.area == area) for area in self.areas
        }
        self._weeks_by_area = {
            area: tuple((t.id, t.week) for t in teams) for area, teams in self._by_area.items()
        }
        self._beat_district = beat_district
        self._home_district = home
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
        self._version_id = f"{self.name}@{self.version}+{digest}"
        return self

    # --- lookups ------------------------------------------------------------------------

    @property
    def version_id(self) -> str:
        """``name@version+<8 hex of the content's sha256>``, for logs."""
        return self._version_id

    def team(self, team_id: str) -> Team | None:
        return self._teams.get(team_id)

    def teams_in(self, area: str) -> tuple[Team, ...]:
        """The area's teams in file order (empty for an unknown area)."""
        return self._by_area.get(area, ())

    def on_shift_in(self, area: str, when: datetime, zone: ZoneInfo) -> frozenset[str]:
        """Ids of the area's teams on shift at ``when`` (see :meth:`Team.on_shift`)."""
        local = when.astimezone(zone)
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        # The last answer is kept: shifts are in whole minutes, one command asks several
        # times (free teams, releases, the agent's gauges), and commands come many a
        # minute; an area has dozens of teams.
        key = (area, day, minute, zone)
        last = self._on_shift_last
        if last is not None and last[0] == key:
            return last[1]
        ids = frozenset(
            team_id
            for team_id, week in self._weeks_by_area.get(area, ())
            if any(start <= minute < end for start, end in week[day])
        )
        self._on_shift_last = (key, ids)
        return ids

    def home_district(self, team_id: str) -> str:
        """The team's district: its ``home_district``, else the district of its home beat."""
        return self._home_district[team_id]

    def district_of(self, area: str, beat: str | None) -> str | None:
        """The district of ``beat`` in ``area``, or None when the beat is not listed."""
        if beat is None:
            return None
        return self._beat_district.get(area, {}).get(normalize(beat))

    def area_for(self, beat: str | None, district: str | None = None) -> str | None:
        """The service area a call belongs to: the area listing its beat, else its district,
        else the only area when there is just one; None when it cannot be told."""
        if beat is not None:
            key = normalize(beat)
            for area, beats in self._beat_district.items():
                if key in beats:
                    return area
        if district is not None:
            for area, spec in self.areas.items():
                if district in spec.districts:
                    return area
        if len(self.areas) == 1:
            return next(iter(self.areas))
        return None


# --- loading ------------------------------------------------------------------------------


def default_roster_path() -> Path:
    """The roster shipped with the package: a Durham-like pool of CRT teams and CoR pairs."""
    return Path(_policy_package.__file__).with_name("roster-durham.toml")


def parse_roster(data: Mapping[str, Any], *, source: str | os.PathLike[str]) -> Roster:
    """Validate already-parsed TOML data; ``source`` names it in errors."""
    try:
        return Roster.model_validate(data)
    except ValidationError as exc:
        raise RosterError(source, problems_from(exc, Roster)) from None


def load_roster(path: str | os.PathLike[str] | None = None) -> Roster:
    """Load and validate a roster file (the default Durham roster when ``path`` is None).

    Raises :class:`RosterError` naming the file, the field and the problem.
    """
    file = Path(path) if path is not None else default_roster_path()
    return parse_roster(read_toml(file, RosterError), source=file)
