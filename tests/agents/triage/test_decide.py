"""Triage decisions against Durham's 2022 pilots, table by table, as the seed text states them.

Seed: CCD citywide Mon-Fri 8:00-16:30 for Suicide Threat, Mental Health Crisis and other
behavioural-health calls; CRT in 12 beats Mon-Fri 8:30-16:30 for ten types when there is
no weapon and no violence toward others; CN follows CCD and CRT contacts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from heart.agents.triage.decide import (
    DECISION_FIELDS,
    apply_update,
    decide,
    interpreter_for,
    is_stale,
    missed,
    needs_redecision,
)
from heart.agents.triage.state import Lateness, resent, step
from heart.policy import Policy, PolicyError, default_policy_path, load_policy
from heart.schemas.calls import Caller, CallReceived, CallUpdated, Location
from heart.schemas.triage import TriageDecision

DURHAM = ZoneInfo("America/New_York")
DEFAULT_TEXT = default_policy_path().read_text(encoding="utf-8")

CRT_BEATS = ["111", "112", "113", "114", "122", "214", "223", "411", "413", "511", "512", "513"]
NOT_CRT_BEATS = ["121", "211", "311", "999", "1111", "11"]
CCD_TYPES = ["Suicide Threat", "Mental Health Crisis"]
CRT_ONLY_TYPES = [
    "Trespass",
    "Welfare Check",
    "Intoxicated Person",
    "Panhandling",
    "Nuisance",
    "Prostitution",
    "Public Indecency",
    "Lost Person",
]
CRT_TYPES = CCD_TYPES + CRT_ONLY_TYPES

# Weeks without a holiday question: July is EDT (UTC-4), January EST (UTC-5).
SUMMER = "2024-07-16"  # Tuesday
WINTER = "2024-01-16"  # Tuesday
SATURDAY = "2024-07-20"
SUNDAY = "2024-07-21"


def at(day: str, hhmm: str, second: int = 0) -> datetime:
    """A Durham local wall-clock time."""
    hour, minute = map(int, hhmm.split(":"))
    return datetime.fromisoformat(day).replace(
        hour=hour, minute=minute, second=second, tzinfo=DURHAM
    )


MakeCall = Callable[..., CallReceived]


@pytest.fixture
def make_call() -> MakeCall:
    """Factory for calls: an in-hours, in-area trespass that needs someone to go."""

    def factory(**overrides: Any) -> CallReceived:
        fields: dict[str, Any] = {
            "call_id": "C-1",
            "call_type": "Trespass",
            "beat": "111",
            "district": "D1",
            "occurred_at": at(SUMMER, "10:00"),
            "needs_in_person": True,
        }
        fields.update(overrides)
        return CallReceived(**fields)

    return factory


@pytest.fixture(scope="module")
def durham() -> Policy:
    return load_policy()


@pytest.fixture
def policy_with(tmp_path: Path) -> Callable[..., Policy]:
    """Durham's policy with text replaced in one section (first occurrence after it)."""

    def build(*edits: tuple[str | None, str, str]) -> Policy:
        text = DEFAULT_TEXT
        for section, old, new in edits:
            start = text.index(f"[{section}]\n") if section else 0
            where = text.index(old, start)
            text = text[:where] + new + text[where + len(old) :]
        path = tmp_path / "policy.toml"
        path.write_text(text, encoding="utf-8")
        return load_policy(path)

    return build


def reasons_of(decision: TriageDecision, pilot: str) -> list[str] | None:
    """The pilot's ineligibility reasons, [] if eligible, None if its types do not match."""
    for entry in decision.eligibility:
        if entry.pilot == pilot:
            assert entry.eligible == (not entry.reasons)
            return list(entry.reasons)
    return None


# --- hours --------------------------------------------------------------------------------


@pytest.mark.parametrize("day", [SUMMER, WINTER])
@pytest.mark.parametrize(
    ("hhmm", "open_"),
    [
        ("07:59", False),
        ("08:00", True),
        ("08:29", True),
        ("08:30", True),
        ("16:29", True),
        ("16:30", False),
    ],
)
def test_ccd_hour_boundaries(
    durham: Policy, make_call: MakeCall, day: str, hhmm: str, open_: bool
) -> None:
    call = make_call(
        call_type="Mental Health Crisis",
        beat="999",
        needs_in_person=False,
        occurred_at=at(day, hhmm),
    )
    decision = decide(call, durham)
    assert reasons_of(decision, "ccd") == ([] if open_ else ["outside_hours"])
    assert decision.route == ("ccd" if open_ else "police")
    assert decision.pilots == (["ccd", "cn"] if open_ else [])


@pytest.mark.parametrize("day", [SUMMER, WINTER])
@pytest.mark.parametrize(
    ("hhmm", "open_"),
    [("08:00", False), ("08:29", False), ("08:30", True), ("16:29", True), ("16:30", False)],
)
def test_crt_hour_boundaries(
    durham: Policy, make_call: MakeCall, day: str, hhmm: str, open_: bool
) -> None:
    decision = decide(make_call(occurred_at=at(day, hhmm)), durham)
    assert reasons_of(decision, "crt") == ([] if open_ else ["outside_hours"])
    assert decision.route == ("crt" if open_ else "police")
    assert decision.pilots == (["crt", "cn"] if open_ else [])


@pytest.mark.parametrize(("hhmm", "second", "open_"), [("08:29", 59, False), ("16:29", 59, True)])
def test_crt_hours_count_whole_minutes(
    durham: Policy, make_call: MakeCall, hhmm: str, second: int, open_: bool
) -> None:
    decision = decide(make_call(occurred_at=at(SUMMER, hhmm, second)), durham)
    assert reasons_of(decision, "crt") == ([] if open_ else ["outside_hours"])


@pytest.mark.parametrize("day", [SATURDAY, SUNDAY, "2024-01-20", "2024-01-21"])
@pytest.mark.parametrize("hhmm", ["08:00", "10:00", "16:29"])
def test_weekends_are_closed(durham: Policy, make_call: MakeCall, day: str, hhmm: str) -> None:
    call = make_call(call_type="Mental Health Crisis", occurred_at=at(day, hhmm))
    decision = decide(call, durham)
    assert reasons_of(decision, "ccd") == ["outside_hours"]
    assert reasons_of(decision, "crt") == ["outside_hours"]
    assert decision.route == "police"
    assert decision.pilots == []
    assert "ccd_ineligible:outside_hours" in decision.reasons
    assert "crt_ineligible:outside_hours" in decision.reasons


@pytest.mark.parametrize(
    ("day", "hhmm"), [("2024-07-15", "08:30"), ("2024-07-19", "16:29"), ("2024-07-17", "12:00")]
)
def test_weekday_edges_are_open(durham: Policy, make_call: MakeCall, day: str, hhmm: str) -> None:
    assert decide(make_call(occurred_at=at(day, hhmm)), durham).route == "crt"


# --- call types and service area ----------------------------------------------------------


@pytest.mark.parametrize("category", CRT_TYPES)
@pytest.mark.parametrize("beat", CRT_BEATS)
def test_every_crt_type_in_every_crt_beat(
    durham: Policy, make_call: MakeCall, category: str, beat: str
) -> None:
    decision = decide(make_call(call_type=category, beat=beat), durham)
    assert decision.category == category
    assert reasons_of(decision, "crt") == []
    assert decision.route == "crt"
    assert "crt" in decision.pilots and "cn" in decision.pilots


@pytest.mark.parametrize("category", CRT_TYPES)
@pytest.mark.parametrize("beat", NOT_CRT_BEATS)
def test_every_crt_type_outside_the_beats(
    durham: Policy, make_call: MakeCall, category: str, beat: str
) -> None:
    decision = decide(make_call(call_type=category, beat=beat), durham)
    assert reasons_of(decision, "crt") == ["outside_service_area"]
    assert "crt_ineligible:outside_service_area" in decision.reasons
    assert decision.route == "police"
    # A CCD type keeps the clinician on the call even when no team can go.
    assert decision.pilots == (["ccd"] if category in CCD_TYPES else [])


@pytest.mark.parametrize("category", CCD_TYPES)
@pytest.mark.parametrize("beat", [*CRT_BEATS[:2], *NOT_CRT_BEATS[:2], None])
def test_ccd_types_are_citywide(
    durham: Policy, make_call: MakeCall, category: str, beat: str | None
) -> None:
    decision = decide(make_call(call_type=category, beat=beat, needs_in_person=False), durham)
    assert reasons_of(decision, "ccd") == []
    assert decision.route == "ccd"
    assert decision.pilots == ["ccd", "cn"]
    assert "resolved_by_phone" in decision.reasons


@pytest.mark.parametrize("category", CRT_ONLY_TYPES)
def test_crt_only_types_do_not_involve_ccd(
    durham: Policy, make_call: MakeCall, category: str
) -> None:
    decision = decide(make_call(call_type=category), durham)
    assert reasons_of(decision, "ccd") is None
    assert reasons_of(decision, "cor") is None
    assert decision.pilots == ["crt", "cn"]


@pytest.mark.parametrize("category", [*CRT_ONLY_TYPES, "BURGLARY", "NOISE COMPLAINT"])
def test_behavioral_health_flag_brings_in_ccd(
    durham: Policy, make_call: MakeCall, category: str
) -> None:
    call = make_call(call_type=category, behavioral_health=True, needs_in_person=False)
    decision = decide(call, durham)
    assert reasons_of(decision, "ccd") == []
    assert decision.route == "ccd"
    assert "behavioral_health_flag" in decision.reasons


def test_unmatched_type_goes_to_police(durham: Policy, make_call: MakeCall) -> None:
    decision = decide(make_call(call_type="BURGLARY"), durham)
    assert decision.category is None
    assert decision.eligibility == []
    assert decision.route == "police"
    assert decision.pilots == []
    assert decision.reasons == ["needs_in_person", "no_pilot_matches"]


def test_flagged_unmatched_type_needing_a_team_stays_with_ccd_and_police(
    durham: Policy, make_call: MakeCall
) -> None:
    # CRT's types are the seed's list: the flag widens CCD, not CRT.
    decision = decide(make_call(call_type="BURGLARY", behavioral_health=True), durham)
    assert reasons_of(decision, "crt") is None
    assert decision.route == "police"
    assert decision.pilots == ["ccd"]


@pytest.mark.parametrize(
    ("call_type", "category"),
    [
        ("mental health crisis", "Mental Health Crisis"),
        ("  MENTAL   HEALTH  CRISIS  ", "Mental Health Crisis"),
        ("Mental\tHealth\nCrisis", "Mental Health Crisis"),
        ("EDP", "Mental Health Crisis"),
        ("edp ", "Mental Health Crisis"),
        ("Mentally Disturbed Person", "Mental Health Crisis"),
        ("SUICTHRT", "Suicide Threat"),
        ("suicidal person", "Suicide Threat"),
        ("TRESPASS/UNWANTED", "Trespass"),
        ("trespassing", "Trespass"),
        ("UNWANTED PERSON", "Trespass"),
        ("CHECK WELFARE", "Welfare Check"),
        ("welfare", "Welfare Check"),
        ("WELFARE CITIZEN", "Welfare Check"),
        ("INTOX", "Intoxicated Person"),
        ("PHANDLE", "Panhandling"),
        ("INDECENT", "Public Indecency"),
        ("indecency", "Public Indecency"),
        ("NUISANCE", "Nuisance"),
        ("prostitution", "Prostitution"),
        ("LOST PERSON", "Lost Person"),
    ],
)
def test_call_type_matching_ignores_case_whitespace_and_uses_aliases(
    durham: Policy, make_call: MakeCall, call_type: str, category: str
) -> None:
    decision = decide(make_call(call_type=call_type), durham)
    assert decision.category == category
    assert decision.call_type == call_type  # the CAD text is kept as sent
    assert decision.route == "crt"


# --- beats --------------------------------------------------------------------------------


@pytest.mark.parametrize("beat", [None, "", "   "])
def test_missing_beat_is_unknown_for_crt_only(
    durham: Policy, make_call: MakeCall, beat: str | None
) -> None:
    decision = decide(make_call(call_type="Mental Health Crisis", beat=beat), durham)
    assert reasons_of(decision, "crt") == ["unknown_beat"]
    assert reasons_of(decision, "ccd") == []  # citywide: no beat needed
    assert decision.route == "police"
    assert decision.pilots == ["ccd"]
    assert "crt_ineligible:unknown_beat" in decision.reasons


def test_beat_whitespace_is_ignored(durham: Policy, make_call: MakeCall) -> None:
    decision = decide(make_call(beat=" 111 "), durham)
    assert decision.route == "crt"
    assert decision.beat == " 111 "


@pytest.mark.parametrize(
    ("beat", "crt_reasons"),
    [
        ("111", []),
        ("121", ["outside_service_area"]),
        ("999", ["unknown_beat"]),
        (None, ["unknown_beat"]),
    ],
)
def test_known_beats_separate_unknown_from_outside(
    policy_with: Callable[..., Policy],
    make_call: MakeCall,
    beat: str | None,
    crt_reasons: list[str],
) -> None:
    beats = ", ".join(f'"{b}"' for b in [*CRT_BEATS, "121", "211"])
    policy = policy_with((None, "known_beats = []", f"known_beats = [{beats}]"))
    decision = decide(make_call(call_type="Welfare Check", beat=beat), policy)
    assert reasons_of(decision, "crt") == crt_reasons
    flagged = decide(make_call(beat=beat, behavioral_health=True), policy)
    assert reasons_of(flagged, "ccd") == []  # citywide ignores the beat list


# --- weapon and violence ------------------------------------------------------------------


@dataclass(frozen=True)
class RiskCase:
    call_type: str
    weapon: bool = False
    violence: bool = False
    flagged: bool = False
    hhmm: str = "10:00"
    # Expected: the route, the pilots, then each pilot's reasons (None: types do not match).
    route: str = "police"
    pilots: tuple[str, ...] = ()
    ccd: tuple[str, ...] | None = None
    crt: tuple[str, ...] | None = None
    cor: tuple[str, ...] | None = None


RISK_CASES = [
    pytest.param(
        RiskCase(
            "Mental Health Crisis",
            weapon=True,
            route="cor",
            pilots=("ccd", "cor"),
            ccd=(),
            crt=("weapon",),
            cor=(),
        ),
        id="mh-weapon-in-hours",
    ),
    pytest.param(
        RiskCase(
            "Suicide Threat",
            violence=True,
            route="cor",
            pilots=("ccd", "cor"),
            ccd=(),
            crt=("violence",),
            cor=(),
        ),
        id="suicide-violence-in-hours",
    ),
    pytest.param(
        RiskCase(
            "Mental Health Crisis",
            weapon=True,
            violence=True,
            route="cor",
            pilots=("ccd", "cor"),
            ccd=(),
            crt=("weapon", "violence"),
            cor=(),
        ),
        id="mh-weapon-and-violence",
    ),
    pytest.param(
        RiskCase("Trespass", weapon=True, crt=("weapon",)),
        id="trespass-weapon-not-behavioral",
    ),
    pytest.param(
        RiskCase(
            "Trespass",
            violence=True,
            flagged=True,
            route="cor",
            pilots=("ccd", "cor"),
            ccd=(),
            crt=("violence",),
            cor=(),
        ),
        id="flagged-trespass-violence",
    ),
    pytest.param(
        RiskCase(
            "Mental Health Crisis",
            weapon=True,
            hhmm="08:15",
            pilots=("ccd",),
            ccd=(),
            crt=("outside_hours", "weapon"),
            cor=("outside_hours",),
        ),
        id="mh-weapon-before-cor-opens",
    ),
    pytest.param(
        RiskCase("Welfare Check", violence=True, hhmm="16:45", crt=("outside_hours", "violence")),
        id="welfare-violence-after-hours",
    ),
]


@pytest.mark.parametrize("case", RISK_CASES)
def test_weapon_and_violence(durham: Policy, make_call: MakeCall, case: RiskCase) -> None:
    call = make_call(
        call_type=case.call_type,
        behavioral_health=case.flagged,
        weapon_involved=case.weapon,
        violence_reported=case.violence,
        occurred_at=at(SUMMER, case.hhmm),
    )
    decision = decide(call, durham)
    assert decision.route == case.route
    assert decision.pilots == list(case.pilots)
    for pilot in ("ccd", "crt", "cor"):
        expected = getattr(case, pilot)
        assert reasons_of(decision, pilot) == (None if expected is None else list(expected)), pilot
    assert ("weapon_reported" in decision.reasons) == case.weapon
    assert ("violence_reported" in decision.reasons) == case.violence
    assert decision.weapon_involved == case.weapon
    assert decision.violence_reported == case.violence


@pytest.mark.parametrize("needs_in_person", [True, False])
def test_risk_overrides_phone_resolution(
    durham: Policy, make_call: MakeCall, needs_in_person: bool
) -> None:
    call = make_call(
        call_type="Suicide Threat", weapon_involved=True, needs_in_person=needs_in_person
    )
    assert decide(call, durham).route == "cor"


def test_cor_does_not_match_without_risk(durham: Policy, make_call: MakeCall) -> None:
    decision = decide(make_call(call_type="Mental Health Crisis"), durham)
    assert [entry.pilot for entry in decision.eligibility] == ["ccd", "crt"]


def test_weapon_call_outside_cor_hours_and_area_lists_every_reason(
    durham: Policy, make_call: MakeCall
) -> None:
    call = make_call(
        call_type="Mental Health Crisis",
        beat="999",
        weapon_involved=True,
        violence_reported=True,
        occurred_at=at(SATURDAY, "10:00"),
    )
    decision = decide(call, durham)
    assert reasons_of(decision, "crt") == [
        "outside_hours",
        "outside_service_area",
        "weapon",
        "violence",
    ]
    assert decision.reasons == [
        "weapon_reported",
        "violence_reported",
        "needs_in_person",
        "ccd_ineligible:outside_hours",
        "crt_ineligible:outside_hours",
        "crt_ineligible:outside_service_area",
        "crt_ineligible:weapon",
        "crt_ineligible:violence",
        "cor_ineligible:outside_hours",
    ]


def test_risk_rules_come_from_the_policy(
    policy_with: Callable[..., Policy], make_call: MakeCall
) -> None:
    policy = policy_with(
        ("risk", 'excluded_by_weapon = ["crt"]', 'excluded_by_weapon = ["ccd", "crt"]'),
        ("risk", 'excluded_by_violence = ["crt"]', "excluded_by_violence = []"),
    )
    weapon = decide(make_call(call_type="Mental Health Crisis", weapon_involved=True), policy)
    assert reasons_of(weapon, "ccd") == ["weapon"]
    assert weapon.pilots == ["cor"]
    violence = decide(make_call(call_type="Mental Health Crisis", violence_reported=True), policy)
    assert reasons_of(violence, "crt") == []
    # The route rule still sends reported violence to CoR, whatever CRT's eligibility.
    assert violence.route == "cor"


# --- in-person need -----------------------------------------------------------------------

IN_PERSON_CASES = [
    # (call_type, beat, hhmm, needs_in_person, route, pilots, extra reasons)
    ("Mental Health Crisis", "111", "10:00", True, "crt", ["ccd", "crt", "cn"], ["crt_eligible"]),
    ("Mental Health Crisis", "111", "10:00", False, "ccd", ["ccd", "cn"], ["resolved_by_phone"]),
    (
        "Mental Health Crisis",
        "999",
        "10:00",
        True,
        "police",
        ["ccd"],
        ["crt_ineligible:outside_service_area"],
    ),
    ("Mental Health Crisis", "999", "10:00", False, "ccd", ["ccd", "cn"], ["resolved_by_phone"]),
    (
        "Mental Health Crisis",
        "111",
        "08:15",
        True,
        "police",
        ["ccd"],
        ["crt_ineligible:outside_hours"],
    ),
    ("Mental Health Crisis", "111", "08:15", False, "ccd", ["ccd", "cn"], ["resolved_by_phone"]),
    ("Trespass", "111", "10:00", True, "crt", ["crt", "cn"], ["crt_eligible"]),
    ("Trespass", "111", "10:00", False, "police", [], ["crt_eligible", "no_in_person_needed"]),
]


@pytest.mark.parametrize(
    ("call_type", "beat", "hhmm", "needs_in_person", "route", "pilots", "expected"),
    IN_PERSON_CASES,
)
def test_needs_in_person(
    durham: Policy,
    make_call: MakeCall,
    call_type: str,
    beat: str,
    hhmm: str,
    needs_in_person: bool,
    route: str,
    pilots: list[str],
    expected: list[str],
) -> None:
    call = make_call(
        call_type=call_type,
        beat=beat,
        occurred_at=at(SUMMER, hhmm),
        needs_in_person=needs_in_person,
    )
    decision = decide(call, durham)
    assert decision.route == route
    assert decision.pilots == pilots
    assert set(expected) <= set(decision.reasons)
    assert ("needs_in_person" in decision.reasons) == needs_in_person
    assert ("no_in_person_needed" in decision.reasons) != needs_in_person


def test_full_reasons_for_a_crt_dispatch(durham: Policy, make_call: MakeCall) -> None:
    decision = decide(make_call(call_type="Suicide Threat", behavioral_health=True), durham)
    assert decision.reasons == [
        "needs_in_person",
        "behavioral_health_flag",
        "ccd_eligible",
        "crt_eligible",
        "cn_follows_up",
    ]


def test_full_reasons_for_a_phone_resolution(durham: Policy, make_call: MakeCall) -> None:
    call = make_call(call_type="Suicide Threat", beat=None, needs_in_person=False)
    assert decide(call, durham).reasons == [
        "no_in_person_needed",
        "ccd_eligible",
        "crt_ineligible:unknown_beat",
        "resolved_by_phone",
        "cn_follows_up",
    ]


# --- time zones ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "open_"),
    [
        ("2024-07-15T12:30:00Z", True),  # 08:30 EDT Monday
        ("2024-07-15T12:29:00Z", False),
        ("2024-07-15T20:29:00Z", True),  # 16:29 EDT
        ("2024-07-15T20:30:00Z", False),
        ("2024-01-15T13:30:00Z", True),  # 08:30 EST Monday
        ("2024-01-15T13:29:00Z", False),
        ("2024-01-15T12:30:00Z", False),  # 07:30 EST: an EDT-only offset would call it open
        ("2024-01-15T21:29:00Z", True),  # 16:29 EST
        ("2024-01-15T21:30:00Z", False),
        ("2024-07-15T08:30:00-04:00", True),
        ("2024-07-15T07:30:00-05:00", True),
        ("2024-07-15T05:30:00-07:00", True),
        ("2024-07-15T14:30:00+02:00", True),
        ("2024-07-15T14:29:00+02:00", False),
        ("2024-07-16T02:30:00+14:00", True),  # Tuesday at the offset, Monday 08:30 in Durham
        ("2024-07-19T20:00:00Z", True),  # Friday 16:00 EDT
        ("2024-07-20T12:30:00Z", False),  # Saturday
        ("2024-07-20T00:30:00+05:00", True),  # Saturday at the offset, Friday 15:30 in Durham
        ("2024-07-19T23:30:00-05:00", False),  # Friday at the offset, Saturday 00:30 in Durham
        ("2024-03-08T13:30:00Z", True),  # Friday before spring-forward, 08:30 EST
        ("2024-03-08T12:30:00Z", False),
        ("2024-03-11T12:30:00Z", True),  # Monday after spring-forward, 08:30 EDT
        ("2024-03-11T12:29:00Z", False),
        ("2024-11-04T13:30:00Z", True),  # Monday after fall-back, 08:30 EST
        ("2024-11-04T12:30:00Z", False),
    ],
)
def test_timestamps_in_any_offset(
    durham: Policy, make_call: MakeCall, stamp: str, open_: bool
) -> None:
    call = make_call(occurred_at=datetime.fromisoformat(stamp))
    decision = decide(call, durham)
    assert reasons_of(decision, "crt") == ([] if open_ else ["outside_hours"])
    assert decision.call_received_at == call.occurred_at


# --- interpreter --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "interpreter"),
    [
        ("en", None),
        ("en-US", None),
        ("EN-gb", None),
        ("es", "es"),
        ("es-MX", "es-MX"),
        ("ase", "ase"),  # American Sign Language
        ("zh-Hant-TW", "zh-Hant-TW"),
        ("eng", "eng"),
    ],
)
def test_interpreter(
    durham: Policy, make_call: MakeCall, language: str, interpreter: str | None
) -> None:
    decision = decide(make_call(language=language), durham)
    assert decision.interpreter == interpreter
    assert decision.language == language
    assert interpreter_for(language) == interpreter


# --- what a decision carries --------------------------------------------------------------


def test_decision_copies_the_call_but_never_the_caller(durham: Policy, make_call: MakeCall) -> None:
    call = make_call(
        call_type="Welfare Check",
        priority=3,
        location=Location(address="101 City Hall Plaza", lat=35.99, lon=-78.9),
        safety_notes="dog on premises",
        caller=Caller(name="Jane Q. Resident", phone="+19195550100"),
    )
    decision = decide(call, durham)
    assert decision.call_id == call.call_id
    assert decision.call_type == call.call_type
    assert decision.category == "Welfare Check"
    assert (decision.beat, decision.district, decision.priority) == ("111", "D1", 3)
    assert decision.location == call.location
    assert decision.safety_notes == "dog on premises"
    assert decision.call_received_at == call.occurred_at
    assert decision.source_event_id == call.event_id
    assert decision.policy_version == durham.version_id
    assert decision.occurred_at == call.occurred_at
    assert (decision.revision, decision.supersedes) == (1, None)
    wire = decision.model_dump_json()
    assert "caller" not in decision.model_dump()
    assert "Jane" not in wire
    assert "5550100" not in wire


def test_revision_supersedes_event_id_and_now(durham: Policy, make_call: MakeCall) -> None:
    call = make_call()
    now = call.occurred_at + timedelta(minutes=7)
    decision = decide(call, durham, revision=2, supersedes="d-1", event_id="d-2", now=now)
    assert (decision.revision, decision.supersedes, decision.event_id) == (2, "d-1", "d-2")
    assert decision.occurred_at == now
    assert decision.call_received_at == call.occurred_at


def test_naive_now_is_refused(durham: Policy, make_call: MakeCall) -> None:
    with pytest.raises(ValidationError):
        decide(make_call(), durham, now=datetime(2024, 7, 16, 10, 0))


def test_decide_is_deterministic(durham: Policy, make_call: MakeCall) -> None:
    call = make_call(call_type="EDP", behavioral_health=True, weapon_involved=True)
    first = decide(call, durham, event_id="d-1")
    assert decide(call, durham, event_id="d-1") == first
    assert [entry.pilot for entry in first.eligibility] == ["ccd", "crt", "cor"]


# --- disabled pilots ----------------------------------------------------------------------


def test_disabled_crt_lists_every_reason(
    policy_with: Callable[..., Policy], make_call: MakeCall
) -> None:
    policy = policy_with(("pilots.crt", "enabled = true", "enabled = false"))
    decision = decide(make_call(occurred_at=at(SUMMER, "10:00")), policy)
    assert reasons_of(decision, "crt") == ["pilot_disabled"]
    assert decision.route == "police"
    late = decide(make_call(beat="999", occurred_at=at(SATURDAY, "10:00")), policy)
    assert reasons_of(late, "crt") == ["pilot_disabled", "outside_hours", "outside_service_area"]


def test_disabled_ccd(policy_with: Callable[..., Policy], make_call: MakeCall) -> None:
    policy = policy_with(("pilots.ccd", "enabled = true", "enabled = false"))
    call = make_call(call_type="Mental Health Crisis", needs_in_person=False)
    decision = decide(call, policy)
    assert reasons_of(decision, "ccd") == ["pilot_disabled"]
    assert decision.route == "police"
    assert "ccd_ineligible:pilot_disabled" in decision.reasons


def test_disabled_cor(policy_with: Callable[..., Policy], make_call: MakeCall) -> None:
    policy = policy_with(("pilots.cor", "enabled = true", "enabled = false"))
    decision = decide(make_call(call_type="EDP", weapon_involved=True), policy)
    assert reasons_of(decision, "cor") == ["pilot_disabled"]
    assert decision.route == "police"
    assert decision.pilots == ["ccd"]


def test_disabled_cn(policy_with: Callable[..., Policy], make_call: MakeCall) -> None:
    policy = policy_with(("pilots.cn", "enabled = true", "enabled = false"))
    decision = decide(make_call(), policy)
    assert decision.route == "crt"
    assert decision.pilots == ["crt"]
    assert decision.reasons[-1] == "cn_ineligible:pilot_disabled"


def test_cn_follows_cor_when_listed(
    policy_with: Callable[..., Policy], make_call: MakeCall
) -> None:
    policy = policy_with(
        ("pilots.cn", 'follows = ["ccd", "crt"]', 'follows = ["ccd", "crt", "cor"]')
    )
    decision = decide(make_call(call_type="EDP", violence_reported=True), policy)
    assert decision.pilots == ["ccd", "cor", "cn"]


# --- misses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, [], id="eligible"),
        pytest.param(
            {"occurred_at": at(SUMMER, "18:00")}, [("crt", "outside_hours")], id="outside-hours"
        ),
        pytest.param({"beat": "121"}, [("crt", "outside_service_area")], id="outside-area"),
        pytest.param({"beat": None}, [("crt", "unknown_beat")], id="no-beat"),
        # Two coverage reasons: one miss, counted under the first.
        pytest.param(
            {"beat": "121", "occurred_at": at(SATURDAY, "10:00")},
            [("crt", "outside_hours")],
            id="outside-hours-and-area",
        ),
        # A pilot kept off by the call itself is not a miss, whatever else applies.
        pytest.param({"weapon_involved": True}, [], id="weapon"),
        pytest.param(
            {"weapon_involved": True, "occurred_at": at(SUMMER, "18:00")},
            [],
            id="weapon-outside-hours",
        ),
        pytest.param({"violence_reported": True, "beat": "121"}, [], id="violence-outside-area"),
        # Every pilot that missed, in decision order.
        pytest.param(
            {"call_type": "Mental Health Crisis", "occurred_at": at(SUMMER, "23:00")},
            [("ccd", "outside_hours"), ("crt", "outside_hours")],
            id="two-pilots-outside-hours",
        ),
        pytest.param(
            {
                "call_type": "Mental Health Crisis",
                "weapon_involved": True,
                "occurred_at": at(SATURDAY, "10:00"),
            },
            [("ccd", "outside_hours"), ("cor", "outside_hours")],
            id="weapon-weekend-crt-excluded-cor-missed",
        ),
        pytest.param({"call_type": "Burglary"}, [], id="no-pilot-matches"),
    ],
)
def test_missed(
    durham: Policy, make_call: MakeCall, overrides: dict[str, Any], expected: list[Any]
) -> None:
    assert missed(decide(make_call(**overrides), durham)) == expected


def test_missed_by_a_disabled_pilot(
    policy_with: Callable[..., Policy], make_call: MakeCall
) -> None:
    policy = policy_with(("pilots.crt", "enabled = true", "enabled = false"))
    assert missed(decide(make_call(), policy)) == [("crt", "pilot_disabled")]
    late = make_call(beat="999", occurred_at=at(SATURDAY, "10:00"))
    assert missed(decide(late, policy)) == [("crt", "pilot_disabled")]
    armed = make_call(weapon_involved=True)
    assert missed(decide(armed, policy)) == []


# --- updates ------------------------------------------------------------------------------


def test_apply_update_replaces_only_fields_present(make_call: MakeCall) -> None:
    call = make_call(caller=Caller(name="Jane"), safety_notes="dog", priority=3)
    update = CallUpdated(
        call_id=call.call_id,
        occurred_at=call.occurred_at + timedelta(minutes=20),
        weapon_involved=True,
        beat="112",
    )
    merged = apply_update(call, update)
    assert (merged.weapon_involved, merged.beat) == (True, "112")
    assert (merged.safety_notes, merged.priority, merged.call_type) == ("dog", 3, "Trespass")
    assert merged.caller == call.caller
    assert merged.occurred_at == call.occurred_at
    assert merged.event_id == update.event_id
    assert call.beat == "111"  # the original is untouched


def test_apply_update_can_turn_flags_off(make_call: MakeCall) -> None:
    call = make_call(weapon_involved=True, needs_in_person=True)
    update = CallUpdated(
        call_id=call.call_id,
        occurred_at=call.occurred_at,
        weapon_involved=False,
        needs_in_person=False,
    )
    merged = apply_update(call, update)
    assert (merged.weapon_involved, merged.needs_in_person) == (False, False)


def test_apply_update_refuses_another_call(make_call: MakeCall) -> None:
    update = CallUpdated(call_id="C-2", occurred_at=at(SUMMER, "10:05"))
    with pytest.raises(ValueError, match="C-2"):
        apply_update(make_call(), update)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"call_type": "Welfare Check"}, True),
        ({"call_type": "  trespass "}, False),
        ({"beat": "112"}, True),
        ({"beat": " 111"}, False),
        ({"weapon_involved": True}, True),
        ({"violence_reported": True}, True),
        ({"needs_in_person": False}, True),
        ({"behavioral_health": True}, True),
        ({"language": "es"}, True),
        ({"priority": 1}, False),
        ({"district": "D2"}, False),
        ({"safety_notes": "gate code 1234"}, False),
        ({"location": Location(address="elsewhere")}, False),
        ({}, False),
    ],
)
def test_needs_redecision(make_call: MakeCall, change: dict[str, Any], expected: bool) -> None:
    old = make_call()
    update = CallUpdated(call_id=old.call_id, occurred_at=at(SUMMER, "10:05"), **change)
    assert needs_redecision(old, apply_update(old, update)) is expected


def test_every_decision_field_is_updatable(make_call: MakeCall) -> None:
    assert set(DECISION_FIELDS) <= set(CallUpdated.model_fields)


def test_redecision_judges_hours_at_receipt(durham: Policy, make_call: MakeCall) -> None:
    call = make_call(call_type="Mental Health Crisis", occurred_at=at(SUMMER, "16:25"))
    first = decide(call, durham, event_id="d-1")
    assert first.route == "crt"
    update = CallUpdated(
        call_id=call.call_id, occurred_at=at(SUMMER, "16:40"), violence_reported=True
    )
    merged = apply_update(call, update)
    assert needs_redecision(call, merged)
    second = decide(merged, durham, revision=2, supersedes=first.event_id, now=update.occurred_at)
    assert second.route == "cor"
    assert reasons_of(second, "crt") == ["violence"]  # not outside_hours: received at 16:25
    assert second.source_event_id == update.event_id
    assert second.call_received_at == call.occurred_at
    assert second.occurred_at == update.occurred_at
    assert (second.revision, second.supersedes) == (2, "d-1")


# --- stale calls: decided too late to act on ----------------------------------------------


def test_a_stale_decision_routes_to_police_and_names_why(
    durham: Policy, make_call: MakeCall
) -> None:
    phone = make_call(call_type="Mental Health Crisis", needs_in_person=False)
    assert decide(phone, durham).route == "ccd"
    stale = decide(phone, durham, stale=True)
    assert (stale.route, stale.pilots) == ("police", [])
    assert reasons_of(stale, "ccd") == ["stale"] and reasons_of(stale, "crt") == ["stale"]
    assert stale.reasons[-1] == "stale"
    assert "ccd_ineligible:stale" in stale.reasons and "resolved_by_phone" not in stale.reasons
    # An outage is a miss like a gap in hours: each pilot it kept off misses it as stale.
    assert missed(stale) == [("ccd", "stale"), ("crt", "stale")]


def test_a_stale_decision_keeps_the_reasons_a_pilot_had_anyway(
    durham: Policy, make_call: MakeCall
) -> None:
    # Out of hours and armed: CRT was out of reach already; only CoR loses it to staleness.
    call = make_call(
        call_type="Mental Health Crisis",
        occurred_at=at(SUMMER, "20:00"),
        weapon_involved=True,
    )
    fresh, stale = decide(call, durham), decide(call, durham, stale=True)
    assert reasons_of(stale, "crt") == reasons_of(fresh, "crt") == ["outside_hours", "weapon"]
    lost_to_staleness = {(e.pilot, "stale") for e in fresh.eligibility if e.eligible}
    assert set(missed(stale)) == set(missed(fresh)) | lost_to_staleness
    cor = reasons_of(fresh, "cor")
    assert reasons_of(stale, "cor") == (cor or ["stale"])
    assert stale.route == "police" and "weapon_reported" in stale.reasons


@pytest.mark.parametrize(
    ("late", "stale"),
    [
        (timedelta(minutes=9, seconds=59), False),
        (timedelta(minutes=10), False),
        (timedelta(minutes=10, seconds=1), True),
        (timedelta(hours=3), True),
    ],
)
def test_stale_after_the_policys_minutes_from_the_call_event(
    durham: Policy, make_call: MakeCall, late: timedelta, stale: bool
) -> None:
    assert durham.dispatch.stale_call_minutes == 10
    call = make_call()
    assert is_stale(call.occurred_at, call.occurred_at + late, durham) is stale
    result = step(None, call, durham, call.occurred_at + late)
    assert result.decision is not None
    assert (result.decision.route, "stale" in result.decision.reasons) == (
        ("police", True) if stale else ("crt", False)
    )
    assert result.decision.occurred_at == call.occurred_at + late
    assert result.decision.source_occurred_at == call.occurred_at


def test_the_stale_limit_is_policy_data(
    policy_with: Callable[..., Policy], make_call: MakeCall
) -> None:
    strict = policy_with(
        ("dispatch", "max_queue_wait_minutes = 10", "max_queue_wait_minutes = 3"),
        ("dispatch", "stale_call_minutes = 10", "stale_call_minutes = 3"),
    )
    call = make_call()
    assert step(None, call, strict, call.occurred_at + timedelta(minutes=4)).state.stale


def test_stale_call_minutes_is_validated(policy_with: Callable[..., Policy]) -> None:
    with pytest.raises(PolicyError, match="stale_call_minutes"):
        policy_with(("dispatch", "stale_call_minutes = 10", "stale_call_minutes = 0"))


WALL, EVENT = "wall", "event"


@pytest.mark.parametrize(
    ("clock", "seen", "partition", "stale"),
    [
        # Wall clock: the stage's now, whatever it has read.
        (WALL, [], 0, True),
        # Event clock: the newest event read from the call's own partition.
        (EVENT, [], 0, False),
        (EVENT, [(0, timedelta(minutes=30))], 0, True),
        (EVENT, [(0, timedelta(minutes=10))], 0, False),
        # Another partition read further ahead is how fetching went, not lateness.
        (EVENT, [(1, timedelta(minutes=30))], 0, False),
    ],
    ids=["wall", "event-nothing-newer", "event-30-min-newer", "event-at-limit", "event-other"],
)
def test_lateness_on_the_wall_and_the_event_clock(
    durham: Policy,
    make_call: MakeCall,
    clock: str,
    seen: list[tuple[int, timedelta]],
    partition: int,
    stale: bool,
) -> None:
    call = make_call()
    lateness = Lateness(on_event_time=clock == EVENT)
    newest = call.occurred_at
    for seen_partition, ahead in seen:
        lateness.reference(seen_partition, call.occurred_at + ahead, call.occurred_at + ahead)
        newest = max(newest, call.occurred_at + ahead)
    # On the wall clock the stage is 20 minutes past the call; on the event clock its now
    # is the newest event it has read from any partition.
    now = call.occurred_at + timedelta(minutes=20) if clock == WALL else newest
    reference = lateness.reference(partition, call.occurred_at, now)
    result = step(None, call, durham, now, reference)
    assert result.state is not None and result.state.stale is stale
    assert result.decision is not None and result.decision.occurred_at == now


def test_a_stale_call_stays_stale_and_a_fresh_update_is_judged_by_its_own_time(
    durham: Policy, make_call: MakeCall
) -> None:
    phone = make_call(call_type="Mental Health Crisis", needs_in_person=False)
    t0 = phone.occurred_at
    fresh = step(None, phone, durham, t0 + timedelta(seconds=5))
    assert fresh.decision is not None and fresh.decision.route == "ccd"
    # 20 minutes into the phone call the clinician asks for a team: a fresh update.
    ask = CallUpdated(call_id="C-1", occurred_at=t0 + timedelta(minutes=20), needs_in_person=True)
    escalated = step(fresh.state, ask, durham, ask.occurred_at + timedelta(seconds=5))
    assert escalated.decision is not None and escalated.decision.route == "crt"
    assert escalated.decision.source_occurred_at == ask.occurred_at
    # A call decided stale: the same update, fresh as it is, brings no team.
    late = step(None, phone, durham, t0 + timedelta(minutes=30))
    assert late.decision is not None and late.decision.route == "police"
    after = step(late.state, ask, durham, ask.occurred_at + timedelta(minutes=11))
    assert after.decision is not None and after.decision.route == "police"
    assert after.decision.revision == 2 and "stale" in after.decision.reasons
    again = step(late.state, ask, durham, ask.occurred_at + timedelta(seconds=5))
    assert again.decision is not None and again.decision.route == "police"


def test_a_stale_decision_is_resent_identical(durham: Policy, make_call: MakeCall) -> None:
    call = make_call()
    first = step(None, call, durham, call.occurred_at + timedelta(minutes=15))
    assert first.state is not None and first.decision is not None
    repeat = step(first.state, call, durham, call.occurred_at + timedelta(hours=2))
    assert repeat.outcome == "duplicate" and repeat.decision is not None
    assert repeat.decision.model_dump_json() == first.decision.model_dump_json()
    assert resent(first.state, call.event_id, durham) == first.decision
