"""NENA-STA-021 EIDO (Emergency Incident Data Object, JSON) in, call events out.

CAD systems that speak NG911 hand incidents over as EIDOs. This module reads the parts
triage needs and nothing else:

- ``incidentComponent``: ``internalIncidentId`` (the call id), the APCO ANS 2.103 code in
  ``incidentTypeCommonRegistryText`` (mapped to a policy category with the APCO table in
  ``mappings/apco-2.103.toml``, or the local type with a city's CAD mapping),
  ``incidentCommonPriorityNumber`` and ``beatOrDispatchGroupText``;
- ``callComponent``: the earliest ``callStartTimestamp`` is when the call came in;
- ``locationComponent``: the incident's location, PIDF-LO civic address and point;
- ``personComponent``: the caller's name, callback number and language (personal data:
  it goes into ``Caller``, which is never logged).

Translation is pure: an EIDO in, a ``CallReceived`` out, or :class:`EidoError` with a short
machine-readable ``reason`` for the dead-letter topic. :class:`EidoTranslator` adds the one
piece of state needed to turn a later EIDO for the same incident into a ``CallUpdated``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import xml.etree.ElementTree as ElementTree
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PrivateAttr, ValidationError

from heart.cad.importer import stable_event_id
from heart.cad.mapping import (
    MAPPINGS_DIR,
    CadMapping,
    Classification,
    MappingError,
    read_toml,
)
from heart.policy.file_problems import Problems, problems_from
from heart.policy.model import Text, _Strict, normalize
from heart.schemas.calls import LANGUAGE_PATTERN, Caller, CallReceived, CallUpdated, Location

#: Every ``EidoError.reason``; dead letters and metrics use them as a bounded label set.
REASONS: tuple[str, ...] = (
    "invalid_json",
    "unknown_structure",
    "missing_incident_id",
    "missing_call_type",
    "missing_timestamp",
    "naive_timestamp",
    "bad_timestamp",
    "invalid_field",
)

#: Event-id namespace when no city mapping is given.
DEFAULT_NAMESPACE = "eido"

# PIDF-LO is XML inside a JSON string; anything longer is not a location.
_MAX_PIDF = 64_000
_LANGUAGE = re.compile(LANGUAGE_PATTERN)
# NIEM often carries a language as an ISO 639-2/3 code or an English name; the call schema
# wants a BCP 47 tag, whose primary subtag is the two-letter code where one exists.
_LANGUAGE_NAMES = {
    "english": "en",
    "eng": "en",
    "spanish": "es",
    "spa": "es",
    "arabic": "ar",
    "ara": "ar",
    "chinese": "zh",
    "zho": "zh",
    "chi": "zh",
    "mandarin": "zh",
    "cmn": "zh",
    "vietnamese": "vi",
    "vie": "vi",
    "french": "fr",
    "fra": "fr",
    "fre": "fr",
    "korean": "ko",
    "kor": "ko",
    "tagalog": "tl",
    "tgl": "tl",
    "russian": "ru",
    "rus": "ru",
    "portuguese": "pt",
    "por": "pt",
}
# Fields a later EIDO may change, as named on CallUpdated. Weapon and violence flags are
# raised by an update but never lowered: a reported weapon does not become safe because a
# later type code no longer names it.
_RAISE_ONLY = ("weapon_involved", "violence_reported", "behavioral_health")
_UPDATABLE = ("call_type", "beat", "priority", "location", "language")


class EidoError(ValueError):
    """An EIDO that cannot be translated; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown EIDO error reason {reason!r}")
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


# --- the APCO table -----------------------------------------------------------------------


def _code(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
        raise Problems.one(f"invalid code {value!r} (letters, digits, - and _)")
    return value


class ApcoCode(_Strict):
    description: Text | None = None
    category: Text | None = None
    weapon: bool = False
    violence: bool = False
    behavioral_health: bool = False


class ApcoTable(_Strict):
    """APCO ANS 2.103 codes -> policy categories and flags. Load with :func:`load_apco_table`."""

    standard: Text
    codes: dict[Annotated[str, AfterValidator(_code)], ApcoCode] = Field(min_length=1)

    _index: dict[str, Classification] = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._index = {
            normalize(code): Classification(
                category=spec.category,
                weapon=spec.weapon,
                violence=spec.violence,
                behavioral_health=spec.behavioral_health,
            )
            for code, spec in self.codes.items()
        }

    def classify(self, code: str) -> Classification | None:
        """The code's category and flags, or None for a code not in the table."""
        return self._index.get(normalize(code))

    def categories(self) -> set[str]:
        return {spec.category for spec in self.codes.values() if spec.category}


def default_apco_path() -> Path:
    return MAPPINGS_DIR / "apco-2.103.toml"


def load_apco_table(path: str | os.PathLike[str] | None = None) -> ApcoTable:
    """Load the APCO table (the shipped one when ``path`` is None); :class:`MappingError`
    names the file, field and problem."""
    file = Path(path) if path is not None else default_apco_path()
    data = read_toml(file)
    try:
        return ApcoTable.model_validate(data)
    except ValidationError as exc:
        raise MappingError(file, problems_from(exc, ApcoTable)) from None


@functools.cache
def _default_apco() -> ApcoTable:
    return load_apco_table()


# --- reading the JSON ---------------------------------------------------------------------


def _field(obj: Mapping[str, Any], *names: str) -> Any:
    """The first present of ``names``; NIEM keys are tried with and without ``nc:``."""
    for name in names:
        for key in (name, f"nc:{name}"):
            if key in obj and obj[key] is not None:
                return obj[key]
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = " ".join(value.split())
        return value or None
    if isinstance(value, list) and value:
        return _text(value[0])
    return None


def _components(eido: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """A component list; a lone object is accepted as a list of one."""
    value = eido.get(name)
    if value is None:
        return []
    items = [value] if isinstance(value, Mapping) else value
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise EidoError("unknown_structure", f"{name} must be an array of objects")
    return items


def _refs(value: Any) -> list[str]:
    """Reference ids from ``"id"``, ``{"$ref": "id"}`` or a list of either."""
    items = value if isinstance(value, list) else [value]
    refs: list[str] = []
    for item in items:
        if isinstance(item, str):
            refs.append(item.removeprefix("$ref:"))
        elif isinstance(item, Mapping) and isinstance(item.get("$ref"), str):
            refs.append(item["$ref"])
    return refs


def _by_id(items: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for item in items:
        for key in ("$id", "componentIdentifier"):
            if isinstance(item.get(key), str):
                found.setdefault(item[key], item)
    return found


def _timestamp(text: Any, where: str) -> datetime:
    if not isinstance(text, str) or not text.strip():
        raise EidoError("bad_timestamp", f"{where} is not a timestamp string")
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise EidoError("bad_timestamp", f"{where} {text[:40]!r} is not ISO 8601") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise EidoError(
            "naive_timestamp", f"{where} {text[:40]!r} has no UTC offset (EIDO requires one)"
        )
    return value


def _last_update(obj: Mapping[str, Any]) -> datetime | None:
    text = obj.get("lastUpdateTimeStamp", obj.get("lastUpdateTimestamp"))
    try:
        return _timestamp(text, "lastUpdateTimeStamp") if text is not None else None
    except EidoError:
        # Only the call time is essential; a bad update stamp just is not used.
        return None


# --- parts --------------------------------------------------------------------------------


def _incident(eido: Mapping[str, Any]) -> Mapping[str, Any]:
    incident = eido.get("incidentComponent")
    # The standard has one incident object; a list of one is a common serialisation, a
    # longer list is ambiguous and not guessed at.
    if isinstance(incident, list) and len(incident) == 1:
        incident = incident[0]
    if not isinstance(incident, Mapping):
        raise EidoError("unknown_structure", "no incidentComponent object")
    return incident


def _call_time(incident: Mapping[str, Any], calls: list[Mapping[str, Any]]) -> datetime:
    starts = [
        (call["callStartTimestamp"], f"callComponent[{index}].callStartTimestamp")
        for index, call in enumerate(calls)
        if call.get("callStartTimestamp") is not None
    ]
    if starts:
        return min(_timestamp(text, where) for text, where in starts)
    # No call component (an incident created from an alarm or by an officer): the incident's
    # own stamp is the best time there is.
    text = incident.get("lastUpdateTimeStamp", incident.get("lastUpdateTimestamp"))
    if text is not None:
        return _timestamp(text, "incidentComponent.lastUpdateTimeStamp")
    raise EidoError(
        "missing_timestamp", "no callComponent.callStartTimestamp and no incident timestamp"
    )


def _pidf(xml: str) -> tuple[str | None, float | None, float | None]:
    """Civic address and point from a PIDF-LO document; namespaces ignored on purpose,
    because senders differ in prefixes and versions."""
    if len(xml) > _MAX_PIDF:
        return None, None, None
    try:
        # ElementTree resolves no external entities, and the bundled expat bounds entity
        # expansion, so a hostile document cannot reach the network or blow up memory.
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None, None, None
    civic: dict[str, str] = {}
    lat = lon = None
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""
        text = (element.text or "").strip()
        if tag == "pos" and text and lat is None:
            parts = text.split()
            if len(parts) >= 2:
                try:
                    lat, lon = float(parts[0]), float(parts[1])
                except ValueError:
                    lat = lon = None
        elif text and tag in {"HNO", "HNS", "PRD", "RD", "STS", "POD", "A3", "A1", "PC", "LOC"}:
            civic.setdefault(tag, text)
    street = " ".join(civic[k] for k in ("HNO", "HNS", "PRD", "RD", "STS", "POD") if k in civic)
    region = " ".join(civic[k] for k in ("A1", "PC") if k in civic)
    address = ", ".join(
        part for part in (street, civic.get("LOC"), civic.get("A3"), region) if part
    )
    return address or None, lat, lon


def _location(incident: Mapping[str, Any], locations: list[Mapping[str, Any]]) -> Location | None:
    if not locations:
        return None
    index = _by_id(locations)
    chosen = next((index[r] for r in _refs(incident.get("locationReference")) if r in index), None)
    if chosen is None:
        preferred = ("currentincident", "incident", "initial")
        chosen = next(
            (
                loc
                for kind in preferred
                for loc in locations
                if normalize(str(loc.get("locationTypeDescriptionRegistryText", ""))) == kind
            ),
            locations[0],
        )
    address: str | None = None
    lat = lon = None
    by_value = chosen.get("locationByValue")
    if isinstance(by_value, str):
        address, lat, lon = _pidf(by_value)
    elif isinstance(by_value, Mapping):
        # Not the standard's shape, but common in the wild: plain JSON fields.
        address = _text(_field(by_value, "address", "civicAddress"))
        lat, lon = by_value.get("latitude"), by_value.get("longitude")
    if not (_degrees(lat, 90) and _degrees(lon, 180)):
        lat = lon = None
    address = address or _text(chosen.get("locationDescriptionText"))
    if address is None and lat is None:
        return None
    return Location(address=address[:500] if address else None, lat=lat, lon=lon)


def _degrees(value: Any, limit: float) -> bool:
    # bool is an int to Python, never a coordinate.
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and -limit <= value <= limit
    )


def _roles(person: Mapping[str, Any]) -> set[str]:
    value = person.get("personIncidentRoleRegistryText")
    items = value if isinstance(value, list) else [value]
    return {normalize(item) for item in items if isinstance(item, str)}


def _name(niem: Mapping[str, Any]) -> str | None:
    name = _field(niem, "PersonName")
    if isinstance(name, list) and name:
        name = name[0]
    if isinstance(name, str):
        return _text(name)
    if not isinstance(name, Mapping):
        return None
    full = _text(_field(name, "PersonFullName"))
    if full:
        return full
    parts = [
        _text(_field(name, key)) for key in ("PersonGivenName", "PersonMiddleName", "PersonSurName")
    ]
    return " ".join(part for part in parts if part) or None


def _phone(
    person: Mapping[str, Any], niem: Mapping[str, Any], callbacks: dict[str, Mapping[str, Any]]
) -> str | None:
    for ref in _refs(person.get("callBackReference")):
        callback = callbacks.get(ref)
        if callback is None:
            continue
        uri = _text(callback.get("callBackInformationUri"))
        if uri:
            return uri.removeprefix("tel:").removeprefix("sip:")
    contact = _field(niem, "ContactInformation")
    if isinstance(contact, list) and contact:
        contact = contact[0]
    if isinstance(contact, Mapping):
        number = _field(contact, "ContactTelephoneNumber")
        if isinstance(number, Mapping):
            number = _field(number, "FullTelephoneNumber") or number
        if isinstance(number, Mapping):
            number = _field(number, "TelephoneNumberFullID")
        return _text(number)
    return None


def _language(value: Any) -> str | None:
    if isinstance(value, list):
        return next((tag for tag in map(_language, value) if tag), None)
    if isinstance(value, Mapping):
        return _language(_field(value, "LanguageCode", "LanguageName", "language"))
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    known = _LANGUAGE_NAMES.get(text.casefold())
    if known:
        return known
    return text if _LANGUAGE.match(text) and len(text) <= 35 else None


def _caller(
    eido: Mapping[str, Any], persons: list[Mapping[str, Any]]
) -> tuple[Caller | None, str | None]:
    callbacks = _by_id(_components(eido, "callbackComponent"))
    caller = next((p for p in persons if "caller" in _roles(p)), None)
    if caller is None:
        return None, None
    niem = _field(caller, "ncPersonComponent", "PersonComponent") or {}
    if not isinstance(niem, Mapping):
        niem = {}
    name, phone = _name(niem), _phone(caller, niem, callbacks)
    language = _language(_field(niem, "PersonPrimaryLanguage", "PersonLanguage"))
    # Too long to be a name or a number: dropped, never truncated into someone else's.
    name = name if name and len(name) <= 200 else None
    phone = phone if phone and len(phone) <= 40 else None
    return (Caller(name=name, phone=phone) if name or phone else None), language


# --- translation --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EidoCall:
    """A translated EIDO: the call, which fields it stated, and when it was last updated."""

    call: CallReceived
    #: ``CallUpdated`` field names this EIDO actually carried (defaults are not news).
    stated: frozenset[str]
    #: The EIDO's own last-update time, else the call time.
    updated_at: datetime


def _load(eido: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    if isinstance(eido, str | bytes | bytearray):
        try:
            eido = json.loads(eido)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EidoError("invalid_json", f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(eido, Mapping):
        raise EidoError("unknown_structure", "an EIDO must be a JSON object")
    return eido


def translate_eido(
    eido: Mapping[str, Any] | str | bytes,
    *,
    apco: ApcoTable | None = None,
    mapping: CadMapping | None = None,
) -> EidoCall:
    """Translate one EIDO (object or JSON text). Raises :class:`EidoError`.

    The call type is the policy category of the APCO code when the table maps it, else of
    the local type (``incidentTypeInternalText``/``callComponent.localCallType``) when a
    city ``mapping`` maps it, else the APCO code itself, else the local type. Flags from the
    code and from the local type are combined. ``mapping`` also supplies the event-id
    namespace (its city) and the defaults for ``needs_in_person`` and ``language``.
    """
    apco = apco if apco is not None else _default_apco()
    doc = _load(eido)
    incident = _incident(doc)
    calls = _components(doc, "callComponent")
    locations = _components(doc, "locationComponent")
    persons = _components(doc, "personComponent")

    call_id = _text(incident.get("internalIncidentId")) or _text(
        incident.get("incidentTrackingIdentifier")
    )
    if call_id is None:
        raise EidoError("missing_incident_id", "incidentComponent.internalIncidentId is missing")

    code = _text(incident.get("incidentTypeCommonRegistryText"))
    local = _text(incident.get("incidentTypeInternalText")) or next(
        (text for text in (_text(c.get("localCallType")) for c in calls) if text), None
    )
    if code is None and local is None:
        raise EidoError(
            "missing_call_type", "no incidentTypeCommonRegistryText and no local call type"
        )
    by_code = apco.classify(code) if code else None
    by_local = mapping.classify(local) if mapping is not None and local else None
    kinds = [kind for kind in (by_code, by_local) if kind is not None]
    category = next((kind.category for kind in kinds if kind.category), None)
    call_type = category or code or local or ""

    occurred_at = _call_time(incident, calls)
    # An update is never dated before the call it updates, whatever a sender's clock says.
    updated_at = max(
        t for t in (occurred_at, _last_update(incident), _last_update(doc)) if t is not None
    )

    priority = incident.get("incidentCommonPriorityNumber")
    if isinstance(priority, str) and priority.strip().isdigit():
        priority = int(priority)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 99:
        priority = None
    beat = _text(incident.get("beatOrDispatchGroupText"))
    location = _location(incident, locations)
    caller, caller_language = _caller(doc, persons)
    language = caller_language or next(
        (tag for tag in (_language(c.get("languages", c.get("language"))) for c in calls) if tag),
        None,
    )

    namespace = mapping.city if mapping is not None else DEFAULT_NAMESPACE
    stated = {"call_type"}
    stated.update(
        name
        for name, value in (
            ("beat", beat),
            ("priority", priority),
            ("location", location),
            ("language", language),
        )
        if value is not None
    )
    stated.update(
        name
        for name, attr in zip(_RAISE_ONLY, ("weapon", "violence", "behavioral_health"), strict=True)
        if any(getattr(kind, attr) for kind in kinds)
    )
    try:
        call = CallReceived(
            event_id=stable_event_id(namespace, call_id),
            occurred_at=occurred_at,
            call_id=call_id,
            call_type=call_type,
            beat=beat,
            weapon_involved=any(kind.weapon for kind in kinds),
            violence_reported=any(kind.violence for kind in kinds),
            behavioral_health=any(kind.behavioral_health for kind in kinds),
            needs_in_person=mapping.defaults.needs_in_person if mapping is not None else True,
            language=language or (mapping.defaults.language if mapping is not None else "en"),
            priority=priority,
            location=location,
            caller=caller,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        raise EidoError("invalid_field", problems[:200]) from None
    return EidoCall(call=call, stated=frozenset(stated), updated_at=updated_at)


def eido_to_call(
    eido: Mapping[str, Any] | str | bytes,
    *,
    apco: ApcoTable | None = None,
    mapping: CadMapping | None = None,
) -> CallReceived:
    """The ``CallReceived`` an EIDO describes (see :func:`translate_eido`)."""
    return translate_eido(eido, apco=apco, mapping=mapping).call


def call_update(
    previous: CallReceived, current: EidoCall, *, namespace: str = DEFAULT_NAMESPACE
) -> CallUpdated | None:
    """The ``CallUpdated`` that takes ``previous`` to what ``current`` states, or None.

    Only fields the later EIDO stated count (a missing location is not a removed one);
    weapon, violence and behavioural-health flags are raised, never lowered. The event id
    is derived from the call, the update time and the changes, so a re-delivered EIDO
    yields the same id.
    """
    new = current.call
    changes: dict[str, Any] = {}
    for name in _UPDATABLE:
        if name in current.stated and getattr(new, name) != getattr(previous, name):
            changes[name] = getattr(new, name)
    for name in _RAISE_ONLY:
        if name in current.stated and getattr(new, name) and not getattr(previous, name):
            changes[name] = True
    if not changes:
        return None
    fingerprint = json.dumps(
        {
            k: v.model_dump(mode="json") if isinstance(v, Location) else v
            for k, v in changes.items()
        },
        sort_keys=True,
    )
    event_id = stable_event_id(
        namespace, new.call_id, "call.updated", current.updated_at.isoformat(), fingerprint
    )
    return CallUpdated(
        event_id=event_id, occurred_at=current.updated_at, call_id=new.call_id, **changes
    )


class EidoTranslator:
    """EIDOs in arrival order -> ``CallReceived`` for a new incident, ``CallUpdated`` for a
    later EIDO that changes it, nothing for one that changes nothing.

    Keeps the latest known state of up to ``max_incidents`` incidents in memory (least
    recently seen forgotten first); a forgotten incident's next EIDO is a new
    ``CallReceived`` with the same deterministic event id, which consumers de-duplicate.
    A Faust agent would keep the same state in a table and call :func:`call_update`.
    """

    def __init__(
        self,
        *,
        apco: ApcoTable | None = None,
        mapping: CadMapping | None = None,
        max_incidents: int = 100_000,
    ) -> None:
        self.apco = apco if apco is not None else _default_apco()
        self.mapping = mapping
        self.namespace = mapping.city if mapping is not None else DEFAULT_NAMESPACE
        self.max_incidents = max_incidents
        self._known: OrderedDict[str, CallReceived] = OrderedDict()

    def translate(self, eido: Mapping[str, Any] | str | bytes) -> list[CallReceived | CallUpdated]:
        """Events for one EIDO. Raises :class:`EidoError` for one that cannot be read."""
        current = translate_eido(eido, apco=self.apco, mapping=self.mapping)
        call_id = current.call.call_id
        previous = self._known.get(call_id)
        if previous is None:
            self._remember(call_id, current.call)
            return [current.call]
        self._known.move_to_end(call_id)
        update = call_update(previous, current, namespace=self.namespace)
        if update is None:
            return []
        merged = {
            name: getattr(update, name)
            for name in (*_UPDATABLE, *_RAISE_ONLY)
            if getattr(update, name) is not None
        }
        self._remember(call_id, previous.model_copy(update=merged))
        return [update]

    def _remember(self, call_id: str, call: CallReceived) -> None:
        self._known[call_id] = call
        self._known.move_to_end(call_id)
        while len(self._known) > self.max_incidents:
            self._known.popitem(last=False)
