"""A city's CAD export described as data: columns, clock, and what its call types mean.

A mapping file (TOML) is all it takes to plug a new city's calls-for-service export into
HEART Stream: which columns hold the call id, time, type, beat or district and priority;
how its timestamps are written and in which zone; which local call types are which policy
category (by exact alias or by regular expression); and which local types imply a weapon,
violence or a behavioural-health concern; and, where the export records how each call
ended, which disposition codes mean it was closed without sending anyone (``[in_person]``:
those calls get ``needs_in_person = false``, the only way an export can show a call CCD
could resolve by phone). The file also names a demo policy document (in
the format of ``policy/durham.toml``, with a service area in the city's own beats or
districts) so that the pilots have something to work with there.

Validation is as strict as the policy loader's, and for the same reason: a mapping misread
silently turns an export into the wrong calls. Problems come back as
:class:`MappingError`, naming the file, the dotted field path and the problem, in the
words of every project file (:mod:`heart.policy.file_problems`).
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from heart.policy.file_problems import (
    FileProblem,
    Loc,
    Problems,
    field_path,
    problems_from,
    toml_type,
)
from heart.policy.model import (
    Policy,
    Text,
    _no_duplicates,
    _Strict,
    _timezone,
    load_policy,
    normalize,
)
from heart.policy.toml_file import read_toml as read_toml_file
from heart.schemas.calls import LANGUAGE_PATTERN

#: Shipped mappings (and their demo policies and the APCO table) live here.
MAPPINGS_DIR = Path(__file__).with_name("mappings")

#: Flags a mapping can infer from a local call type, as named on ``CallReceived``.
FLAGS: tuple[str, ...] = ("weapon", "violence", "behavioral_health")

_SLUG = r"^[a-z0-9][a-z0-9_-]*$"
# Fields chosen so that a format which drops or confuses one of them cannot round-trip:
# day 3 and month 2 differ, and 16h catches %I without %p.
_SAMPLE_TIME = datetime(2001, 2, 3, 16, 5, 0, tzinfo=UTC)
_CLASSIFY_CACHE_LIMIT = 10_000


class MappingError(FileProblem):
    """A mapping file that cannot be used. The message names the file, each field, the problem.

    ``problems`` holds ``(field_path, problem)`` pairs with the policy loader's path syntax
    (``categories."Welfare Check".patterns[0]``), or ``""`` for the file as a whole.
    """

    kind = "mapping file"


# --- field types --------------------------------------------------------------------------


def _columns(value: object) -> object:
    # One column, or several joined with a space before parsing (a date and a time column).
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise Problems.one(
        f"must be a column name or an array of column names, got {toml_type(value)} {value!r}"
    )


def _time_format(value: str) -> str:
    try:
        back = datetime.strptime(_SAMPLE_TIME.strftime(value), value)
    except ValueError as exc:
        raise Problems.one(f"invalid time format {value!r}: {exc}") from None
    expected = (_SAMPLE_TIME.year, _SAMPLE_TIME.month, _SAMPLE_TIME.day, 16, 5)
    if (back.year, back.month, back.day, back.hour, back.minute) != expected:
        raise Problems.one(
            f"time format {value!r} does not read back a date and time to the minute "
            "(it needs the year, month, day, hour and minute, e.g. %Y-%m-%d %H:%M:%S)"
        )
    return value


def _compile(value: str) -> re.Pattern[str]:
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise Problems.one(f"invalid regular expression {value!r}: {exc}") from None


def _pattern(value: str) -> str:
    _compile(value)
    return value


def _extract(value: str) -> str:
    if _compile(value).groups == 0:
        raise Problems.one(
            f"regular expression {value!r} has no (group): groups mark the time text to keep"
        )
    return value


def _encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise Problems.one(f"unknown text encoding {value!r} (e.g. utf-8-sig, cp1252)") from None
    return value


ColumnList = Annotated[list[Text], BeforeValidator(_columns), Field(min_length=1, max_length=4)]
TimeFormat = Annotated[str, AfterValidator(_time_format)]
Pattern = Annotated[str, AfterValidator(_pattern)]
Extract = Annotated[str, AfterValidator(_extract)]
Slug = Annotated[str, Field(pattern=_SLUG, max_length=32)]


# --- models -------------------------------------------------------------------------------


class Columns(_Strict):
    """Header names of the export's columns. Only the first three are required."""

    call_id: Text
    #: Several columns are joined with single spaces, then parsed as one timestamp.
    time: ColumnList
    call_type: Text
    #: The unit a policy's service area lists. A city with districts and no beats names
    #: its district column here (and usually in ``district`` as well).
    beat: Text | None = None
    district: Text | None = None
    priority: Text | None = None
    address: Text | None = None
    lat: Text | None = None
    lon: Text | None = None

    @model_validator(mode="after")
    def _check(self) -> Columns:
        if (self.lat is None) != (self.lon is None):
            missing = "lon" if self.lon is None else "lat"
            raise Problems.one("lat and lon go together: name both columns or neither", missing)
        return self


class TimeSpec(_Strict):
    """How the export writes a call's time."""

    #: The export's zone: naive local timestamps are placed in it.
    timezone: Annotated[str, AfterValidator(_timezone)]
    #: ``strptime`` formats, tried in order.
    formats: list[TimeFormat] = Field(min_length=1)
    #: Optional regular expression searched in the time text; its groups, joined with
    #: spaces, are what the formats parse (drops agency suffixes, or San José's dummy
    #: ``12:00:00 AM`` between the date and the real time).
    extract: Extract | None = None


class Matcher(_Strict):
    """Local call types, by exact text (case and spacing ignored) or regular expression.

    Patterns are searched (``re.search``, case-insensitive) in the type with its whitespace
    collapsed; anchor them with ``^``/``$`` to match the whole type.
    """

    aliases: list[Text] = Field(default_factory=list)
    patterns: list[Pattern] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Matcher:
        problems = [(("aliases", *loc), p) for loc, p in _no_duplicates(self.aliases, "alias")]
        if not self.aliases and not self.patterns:
            problems.append(((), "matches nothing: list aliases or patterns"))
        if problems:
            raise Problems(problems)
        return self


class Flags(_Strict):
    """Local types that imply a flag the export does not carry as a column."""

    weapon: Matcher | None = None
    violence: Matcher | None = None
    behavioral_health: Matcher | None = None


class Defaults(_Strict):
    """Values for fields a calls-for-service export does not have."""

    #: Exports rarely say whether someone must go; True keeps in-person pilots in play.
    #: With an ``[in_person]`` table the value comes from each call's disposition instead.
    needs_in_person: bool = True
    language: Annotated[str, Field(pattern=LANGUAGE_PATTERN, max_length=35)] = "en"


class InPerson(_Strict):
    """Where a call's ``needs_in_person`` comes from when the export records how it ended.

    A CAD export says what happened, not what a call taker judged: a call whose
    disposition says it was closed without sending anyone (advised by phone, no unit sent)
    is read as not needing anyone in person; every other value, and an empty cell, as
    needing someone, the safe side for in-person pilots. Codes match the cell exactly,
    case and spacing ignored.
    """

    #: The column holding the disposition (or another "how the call ended" code).
    column: Text
    #: Its values that mean the call was closed without sending anyone.
    no_dispatch_codes: list[Text] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> InPerson:
        problems = [
            (("no_dispatch_codes", *loc), problem)
            for loc, problem in _no_duplicates(self.no_dispatch_codes, "code")
        ]
        if problems:
            raise Problems(problems)
        return self


@dataclass(frozen=True, slots=True)
class Classification:
    """What a mapping makes of one local call type."""

    #: The policy category, or None when the mapping does not cover the type.
    category: str | None
    weapon: bool
    violence: bool
    behavioral_health: bool


@dataclass(frozen=True, slots=True)
class _CompiledMatcher:
    aliases: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, matcher: Matcher | None) -> _CompiledMatcher:
        if matcher is None:
            return cls(frozenset(), ())
        return cls(
            frozenset(map(normalize, matcher.aliases)), tuple(map(_compile, matcher.patterns))
        )

    def __call__(self, key: str) -> bool:
        return key in self.aliases or any(p.search(key) for p in self.patterns)


class CadMapping(_Strict):
    """One city's CAD export. Build it with :func:`load_mapping`, not by hand."""

    #: This mapping, e.g. ``milwaukee-2018``.
    name: Slug
    #: The city, e.g. ``milwaukee``: with the call id it makes event ids, so that a
    #: later export of the same calls (another mapping version) re-imports idempotently.
    city: Slug
    title: Text | None = None
    source: Text | None = None
    #: Demo policy document for the city, relative to this file.
    policy: Text
    #: Demo team roster for replays (dispatch needs teams in the city's areas).
    roster: Text | None = None
    encoding: Annotated[str, AfterValidator(_encoding)] = "utf-8-sig"
    delimiter: str = Field(",", min_length=1, max_length=1)
    columns: Columns
    time: TimeSpec
    defaults: Defaults = Field(default_factory=Defaults)
    #: Per-call ``needs_in_person`` from a disposition column; None when the export has none.
    in_person: InPerson | None = None
    #: Policy category -> the local types that mean it. The category name always matches.
    categories: dict[Text, Matcher] = Field(min_length=1)
    flags: Flags = Field(default_factory=Flags)

    _zone: ZoneInfo = PrivateAttr()
    _extract: re.Pattern[str] | None = PrivateAttr()
    _aliases: dict[str, str] = PrivateAttr()
    _patterns: tuple[tuple[re.Pattern[str], str], ...] = PrivateAttr()
    _flags: dict[str, _CompiledMatcher] = PrivateAttr()
    _no_dispatch: frozenset[str] = PrivateAttr()
    _cache: dict[str, Classification] = PrivateAttr(default_factory=dict)
    _source: str = PrivateAttr(default="<mapping>")
    _base_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cross_check(self) -> CadMapping:
        problems: list[tuple[Loc, str]] = []
        if self.in_person is not None and not self.defaults.needs_in_person:
            # [in_person] keeps every code it does not list on "needs someone"; a default
            # of false would be silently ignored, so the two must not disagree.
            problems.append(
                (
                    ("defaults", "needs_in_person"),
                    "false conflicts with [in_person], which sets it per call from column "
                    f"{self.in_person.column!r}: remove one of them",
                )
            )
        owner: dict[str, str] = {}
        for category in self.categories:
            key = normalize(category)
            if key in owner:
                problems.append(
                    (("categories", category), f"category {category!r} duplicates {owner[key]!r}")
                )
            owner[key] = category
        for category, matcher in self.categories.items():
            for index, alias in enumerate(matcher.aliases):
                mapped = owner.setdefault(normalize(alias), category)
                if mapped != category:
                    problems.append(
                        (
                            ("categories", category, "aliases", index),
                            f"alias {alias!r} already maps to {mapped!r}",
                        )
                    )
        if problems:
            raise Problems(problems)
        self._precompute(owner)
        return self

    def _precompute(self, aliases: dict[str, str]) -> None:
        self._zone = ZoneInfo(self.time.timezone)
        self._extract = _compile(self.time.extract) if self.time.extract else None
        self._aliases = aliases
        self._patterns = tuple(
            (_compile(pattern), category)
            for category, matcher in self.categories.items()
            for pattern in matcher.patterns
        )
        self._flags = {flag: _CompiledMatcher.of(getattr(self.flags, flag)) for flag in FLAGS}
        codes = self.in_person.no_dispatch_codes if self.in_person is not None else ()
        self._no_dispatch = frozenset(map(normalize, codes))

    # --- use ----------------------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def source_file(self) -> str:
        """Where this mapping was read from, for messages."""
        return self._source

    @property
    def policy_path(self) -> Path:
        """The demo policy document, resolved against the mapping file's directory."""
        path = Path(self.policy)
        if path.is_absolute() or self._base_dir is None:
            return path
        return self._base_dir / path

    @property
    def roster_path(self) -> Path | None:
        """The demo roster, resolved against the mapping file's directory, if any."""
        if self.roster is None:
            return None
        path = Path(self.roster)
        if path.is_absolute() or self._base_dir is None:
            return path
        return self._base_dir / path

    @property
    def knows_in_person(self) -> bool:
        """Whether each call's ``needs_in_person`` comes from the export (``[in_person]``)
        rather than the default: only then can a call be seen as resolvable by phone."""
        return self.in_person is not None

    def in_person_rule(self) -> Callable[[str | None], bool]:
        """A function from a call's ``[in_person]`` cell (None when empty) to its
        ``needs_in_person``: the default for every call when the mapping has no
        ``[in_person]``. Built once per import: per row it touches no model attribute."""
        if self.in_person is None:
            default = self.defaults.needs_in_person
            return lambda _disposition: default
        codes = self._no_dispatch
        return lambda disposition: disposition is None or normalize(disposition) not in codes

    def load_policy(self) -> Policy:
        """The mapping's demo policy (raises :class:`policy.PolicyError` if it is bad)."""
        return load_policy(self.policy_path)

    def unknown_categories(self, policy: Policy) -> list[str]:
        """Categories this mapping produces that ``policy`` does not know (in file order).

        Calls of such a category would silently never reach a pilot under that policy,
        so commands should refuse or warn when this is not empty.
        """
        return [name for name in self.categories if policy.category_for(name) != name]

    def classify(self, local_type: str) -> Classification:
        """The category and flags ``local_type`` implies. Exact aliases win over patterns;
        among patterns the first in file order wins."""
        key = normalize(local_type)
        known = self._cache.get(key)
        if known is not None:
            return known
        category = self._aliases.get(key)
        if category is None:
            category = next((c for pattern, c in self._patterns if pattern.search(key)), None)
        result = Classification(
            category=category,
            weapon=self._flags["weapon"](key),
            violence=self._flags["violence"](key),
            behavioral_health=self._flags["behavioral_health"](key),
        )
        # Exports have a few hundred distinct types; the cap only guards against a feed of
        # free text growing the cache without bound.
        if len(self._cache) < _CLASSIFY_CACHE_LIMIT:
            self._cache[key] = result
        return result

    def time_parser(self) -> Callable[[str], datetime | None]:
        """A function from a time cell to the time it holds (naive unless a format carries
        ``%z``), or None. Built once per import: per row it touches no model attribute."""
        extract = self._extract
        parsers = [_format_parser(fmt) for fmt in self.time.formats]

        def parse(text: str) -> datetime | None:
            if extract is None:
                core = text.strip()
            else:
                found = extract.search(text)
                if found is None:
                    return None
                core = " ".join(group for group in found.groups() if group is not None)
            for parser in parsers:
                value = parser(core)
                if value is not None:
                    return value
            return None

        return parse

    def parse_time(self, text: str) -> datetime | None:
        """The time a cell holds (naive unless a format carries ``%z``), or None."""
        return self.time_parser()(text)


_NUMERIC = {"Y": r"(\d{4})", "m": r"(\d{1,2})", "d": r"(\d{1,2})", "H": r"(\d{1,2})"}
_NUMERIC |= {"M": r"(\d{1,2})", "S": r"(\d{1,2})"}
_DIRECTIVE = re.compile(r"%(.)")


def _format_parser(fmt: str) -> Callable[[str], datetime | None]:
    """``strptime`` for one format, with a regex fast path for the all-numeric formats CAD
    exports use (``%Y-%m-%d %H:%M:%S``, ``%m/%d/%Y %H:%M``): strptime costs more than the
    rest of an imported row together."""
    order = _DIRECTIVE.findall(fmt)
    fast = (
        set(order) <= set(_NUMERIC)
        and len(order) == len(set(order))
        and {"Y", "m", "d", "H", "M"} <= set(order)
    )
    if not fast:

        def slow(text: str) -> datetime | None:
            try:
                return datetime.strptime(text, fmt)
            except ValueError:
                return None

        return slow
    pieces = []
    for index, piece in enumerate(re.split(r"%(.)", fmt)):
        if index % 2:
            pieces.append(_NUMERIC[piece])
        else:
            # As strptime does, any run of whitespace in the format matches any run in text.
            pieces.extend(r"\s+" if char.isspace() else re.escape(char) for char in piece)
    regex = re.compile("".join(pieces) + r"\Z")
    slots = [("Y", "m", "d", "H", "M", "S").index(d) for d in order]

    def quick(text: str) -> datetime | None:
        found = regex.match(text)
        if found is None:
            return None
        parts = [0, 0, 0, 0, 0, 0]
        for slot, digits in zip(slots, found.groups(), strict=True):
            parts[slot] = int(digits)
        try:
            return datetime(*parts)
        except ValueError:
            return None

    return quick


# --- loading ------------------------------------------------------------------------------


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a TOML file, raising :class:`MappingError` naming it on any failure."""
    return read_toml_file(Path(path), MappingError)


def parse_mapping(
    data: Mapping[str, Any],
    *,
    source: str | os.PathLike[str],
    base_dir: str | os.PathLike[str] | None = None,
) -> CadMapping:
    """Validate already-parsed TOML; ``source`` names it in errors, ``base_dir`` anchors
    the relative policy path."""
    try:
        mapping = CadMapping.model_validate(data)
    except ValidationError as exc:
        raise MappingError(source, problems_from(exc, CadMapping)) from None
    mapping._source = str(source)
    mapping._base_dir = Path(base_dir) if base_dir is not None else None
    return mapping


def shipped_mapping(name: str) -> Path:
    """Path of a mapping shipped with the package, e.g. ``shipped_mapping("milwaukee-2018")``."""
    return MAPPINGS_DIR / f"{name}.toml"


def shipped_mappings() -> list[str]:
    """Names of the mappings shipped with the package, sorted. The folder also holds demo
    policies, rosters and the APCO table: a mapping is a file with ``[columns]`` and
    ``[categories]`` tables."""
    names = []
    for path in sorted(MAPPINGS_DIR.glob("*.toml")):
        try:
            data = read_toml(path)
        except MappingError:
            continue
        if isinstance(data.get("columns"), dict) and isinstance(data.get("categories"), dict):
            names.append(path.stem)
    return names


def resolve_mapping_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A file path as given, or a shipped mapping's name (``milwaukee-2018``) when no such
    file exists, so commands accept ``--mapping milwaukee-2018``."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    shipped = shipped_mapping(str(name_or_path))
    return shipped if shipped.exists() else path


def _not_found(given: str | os.PathLike[str], file: Path) -> MappingError:
    """The error for a mapping that is neither a file nor a shipped name: what exists, and
    the ``.toml`` file in the current directory the name was probably meant to be."""
    shipped = f"shipped mappings: {', '.join(shipped_mappings()) or 'none'}"
    bare = Path(given)
    if bare.suffix or len(bare.parts) > 1:
        return MappingError(file, [("", f"file not found ({shipped})")])
    problem = f"no such file and no shipped mapping of that name ({shipped})"
    local = bare.with_suffix(".toml")
    if local.is_file():
        problem += f"; did you mean ./{local}?"
    return MappingError(file, [("", problem)])


def _named_files(mapping: CadMapping) -> list[tuple[str, str]]:
    """A problem per file the mapping names that is not there, by field."""
    named = [("policy", mapping.policy_path), ("roster", mapping.roster_path)]
    return [
        (field, f"{field} file not found: {path}")
        for field, path in named
        if path is not None and not path.is_file()
    ]


def load_mapping(path: str | os.PathLike[str], *, check_policy: bool = True) -> CadMapping:
    """Load and validate a mapping file (a path, or the name of a shipped mapping).

    Every file the mapping names (its demo policy and roster) must exist. With
    ``check_policy`` the policy must also load and know every category the mapping
    produces. Raises :class:`MappingError` naming the file, field and problem (a missing
    file names the field and the path looked at); a broken policy document raises its own
    ``policy.PolicyError``, which names that file.
    """
    file = resolve_mapping_path(path)
    if not file.exists():
        raise _not_found(path, file)
    mapping = parse_mapping(read_toml(file), source=file, base_dir=file.parent)
    missing = _named_files(mapping)
    if missing:
        raise MappingError(file, missing)
    if check_policy:
        policy_file = mapping.policy_path
        policy = mapping.load_policy()
        unknown = mapping.unknown_categories(policy)
        if unknown:
            known = ", ".join(repr(name) for name in policy.categories)
            raise MappingError(
                file,
                [
                    (
                        field_path(("categories", name)),
                        f"not a category of policy {policy_file.name} (known: {known})",
                    )
                    for name in unknown
                ],
            )
    return mapping
