"""The policy file: Durham's default loads with the seed's values; bad files are refused
with the file, the field path and the problem named."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from heart.policy import Policy, PolicyError, default_policy_path, load_policy

DEFAULT_TEXT = default_policy_path().read_text(encoding="utf-8")
REPO = Path(__file__).resolve().parents[2]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
CRT_BEATS = {"111", "112", "113", "114", "122", "214", "223", "411", "413", "511", "512", "513"}
CRT_TYPES = {
    "Suicide Threat",
    "Mental Health Crisis",
    "Trespass",
    "Welfare Check",
    "Intoxicated Person",
    "Panhandling",
    "Nuisance",
    "Prostitution",
    "Public Indecency",
    "Lost Person",
}


def edit(text: str, old: str, new: str, *, section: str | None = None) -> str:
    """Replace the first ``old`` after the ``[section]`` header; fail loudly if absent."""
    start = text.index(f"[{section}]\n") if section else 0
    at = text.index(old, start)
    return text[:at] + new + text[at + len(old) :]


def drop_section(text: str, section: str) -> str:
    start = text.index(f"[{section}]\n")
    following = text.find("\n[", start + 1)
    return text[:start] + (text[following + 1 :] if following != -1 else "")


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "bad-policy.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def durham() -> Policy:
    return load_policy()


# --- the default policy -------------------------------------------------------------------


def test_default_policy_loads_with_versioned_id(durham: Policy) -> None:
    assert durham.name == "durham"
    assert durham.version == "2022-06-27"
    assert re.fullmatch(r"durham@2022-06-27\+[0-9a-f]{8}", durham.version_id)
    assert str(durham.zone) == "America/New_York"
    assert durham.dispatch.max_queue_wait_minutes == 10


def test_load_policy_accepts_str_and_path(durham: Policy) -> None:
    assert load_policy(str(default_policy_path())).version_id == durham.version_id
    assert load_policy(default_policy_path()).version_id == durham.version_id


def test_version_id_ignores_comments_and_layout(
    durham: Policy, write_policy: Callable[[str], Path]
) -> None:
    spaced = re.sub(r"^(\w+) = ", r"\1   =   ", DEFAULT_TEXT, flags=re.MULTILINE)
    reformatted = "# a comment the hash must not see\n\n" + spaced.replace("\n[", "\n\n[")
    assert load_policy(write_policy(reformatted)).version_id == durham.version_id


def test_version_id_changes_with_content(
    durham: Policy, write_policy: Callable[[str], Path]
) -> None:
    changed = edit(DEFAULT_TEXT, 'start = "08:30"', 'start = "08:45"', section="pilots.crt")
    other = load_policy(write_policy(changed))
    assert other.version_id.startswith("durham@2022-06-27+")
    assert other.version_id != durham.version_id


def test_ccd_matches_the_seed(durham: Policy) -> None:
    ccd = durham.pilots.ccd
    assert ccd.enabled
    assert ccd.service_area is None  # citywide
    assert [(w.days, w.start, w.end) for w in ccd.hours] == [(list(WEEKDAYS), "08:00", "16:30")]
    assert set(ccd.call_types) == {"Suicide Threat", "Mental Health Crisis"}
    assert ccd.includes_behavioral_health_flag


def test_crt_matches_the_seed(durham: Policy) -> None:
    crt = durham.pilots.crt
    assert crt.enabled
    assert crt.service_area is not None
    assert set(crt.service_area.beats) == CRT_BEATS
    assert len(crt.service_area.beats) == 12
    assert [(w.days, w.start, w.end) for w in crt.hours] == [(list(WEEKDAYS), "08:30", "16:30")]
    assert set(crt.call_types) == CRT_TYPES
    assert not crt.includes_behavioral_health_flag
    assert durham.risk.excluded_by_weapon == ["crt"]
    assert durham.risk.excluded_by_violence == ["crt"]


def test_cor_is_an_explicit_assumption(durham: Policy) -> None:
    cor = durham.pilots.cor
    assert cor.enabled
    assert cor.assumption and "assumed" in cor.assumption.lower()
    assert cor.service_area is None
    assert [(w.days, w.start, w.end) for w in cor.hours] == [(list(WEEKDAYS), "08:30", "16:30")]
    assert durham.risk.requires_weapon_or_violence == ["cor"]


def test_cn_matches_the_seed(durham: Policy) -> None:
    cn = durham.pilots.cn
    assert cn.enabled
    assert cn.follows == ["ccd", "crt"]
    assert cn.followup_within_hours == 48
    assert cn.unable_to_reach_retries == 3
    assert [(w.days, w.start, w.end) for w in cn.hours] == [(list(WEEKDAYS), "08:30", "16:30")]
    assert durham.followed_by_cn == {"ccd", "crt"}


def test_durham_ships_without_a_city_beat_list(durham: Policy) -> None:
    assert durham.known_beats == []
    assert durham.known_beat_set is None


def test_precomputed_rules(durham: Policy) -> None:
    assert [rule.pilot for rule in durham.rules] == ["ccd", "crt", "cor"]
    crt = durham.rule("crt")
    assert crt.week == (((510, 990),),) * 5 + ((), ())
    assert crt.beats == CRT_BEATS
    assert crt.excluded_by_weapon and crt.excluded_by_violence
    assert durham.rule("ccd").week[0] == ((480, 990),)
    assert durham.rule("cor").requires_weapon_or_violence
    with pytest.raises(KeyError):
        durham.rule("cn")


@pytest.mark.parametrize(
    ("call_type", "category"),
    [
        ("Suicide Threat", "Suicide Threat"),
        ("SUICTHRT", "Suicide Threat"),
        ("  suicidal   person ", "Suicide Threat"),
        ("EDP", "Mental Health Crisis"),
        ("mentally disturbed person", "Mental Health Crisis"),
        ("TRESPASS/UNWANTED", "Trespass"),
        ("Unwanted Person", "Trespass"),
        ("WELFARE CITIZEN", "Welfare Check"),
        ("check\twelfare", "Welfare Check"),
        ("INTOX", "Intoxicated Person"),
        ("PHANDLE", "Panhandling"),
        ("indecent", "Public Indecency"),
        ("INDECENCY", "Public Indecency"),
        ("Nuisance", "Nuisance"),
        ("PROSTITUTION", "Prostitution"),
        ("lost person", "Lost Person"),
        ("BURGLARY", None),
        ("SUICIDE", None),  # APCO SUICIDE is an attempt: a medical call, not a threat
        ("WELFARE-CHECK", None),
    ],
)
def test_category_for(durham: Policy, call_type: str, category: str | None) -> None:
    assert durham.category_for(call_type) == category


def test_category_aliases_agree_with_category_for_and_are_read_only(durham: Policy) -> None:
    aliases = durham.category_aliases
    assert aliases
    for text, category in aliases.items():
        assert durham.category_for(text) == category
    with pytest.raises(TypeError):
        aliases["burglary"] = "Trespass"  # type: ignore[index]
    assert durham.category_for("burglary") is None


def test_window_may_end_at_midnight(write_policy: Callable[[str], Path]) -> None:
    text = edit(
        DEFAULT_TEXT,
        'start = "08:30", end = "16:30"',
        'start = "00:00", end = "24:00" }, { days = ["Sat"], start = "10:00", end = "12:00"',
        section="pilots.crt",
    )
    crt = load_policy(write_policy(text)).rule("crt")
    assert crt.week[0] == ((0, 1440),)
    assert crt.week[5] == ((600, 720),)  # day names ignore case
    assert crt.open_at(datetime(2024, 7, 15, 23, 59))
    assert not crt.open_at(datetime(2024, 7, 20, 12, 0))


def test_overlapping_windows_are_a_union(write_policy: Callable[[str], Path]) -> None:
    text = edit(
        DEFAULT_TEXT,
        'end = "16:30" }',
        'end = "16:30" }, { days = ["mon"], start = "16:00", end = "20:00" }',
        section="pilots.crt",
    )
    crt = load_policy(write_policy(text)).rule("crt")
    assert crt.open_at(datetime(2024, 7, 15, 19, 59))
    assert not crt.open_at(datetime(2024, 7, 16, 19, 59))


def test_known_beats_when_given(write_policy: Callable[[str], Path]) -> None:
    beats = ", ".join(f'"{b}"' for b in sorted(CRT_BEATS | {"121", "211"}))
    policy = load_policy(
        write_policy(edit(DEFAULT_TEXT, "known_beats = []", f"known_beats = [{beats}]"))
    )
    assert policy.known_beat_set == CRT_BEATS | {"121", "211"}


# --- bad files ----------------------------------------------------------------------------

CRT = "pilots.crt"

BAD_POLICIES = [
    pytest.param(
        DEFAULT_TEXT + "\n[pilots.xyz]\nenabled = true\n",
        "pilots.xyz",
        "unknown pilot 'xyz' (known: ccd, crt, cor, cn)",
        id="unknown-pilot",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'end = "16:30"', 'end = "08:00"', section=CRT),
        "pilots.crt.hours[0].end",
        "end 08:00 is not after start 08:30",
        id="end-before-start",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'end = "16:30"', 'end = "08:30"', section=CRT),
        "pilots.crt.hours[0].end",
        "end 08:30 is not after start 08:30",
        id="end-equals-start",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'start = "08:30", end', 'start = "24:00", end', section=CRT),
        "pilots.crt.hours[0].start",
        "start cannot be 24:00",
        id="start-at-midnight-end",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, '"fri"]', '"fir"]', section=CRT),
        "pilots.crt.hours[0].days[4]",
        "unknown day 'fir' (use mon..sun)",
        id="unknown-day",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, '"fri"]', '"fri", "Mon"]', section=CRT),
        "pilots.crt.hours[0].days[5]",
        "day 'mon' listed twice",
        id="day-twice",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'days = ["mon", "tue", "wed", "thu", "fri"]', "days = []", section=CRT),
        "pilots.crt.hours[0].days",
        "must not be empty",
        id="no-days",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, '"111", "112"', '111, "112"', section=CRT),
        "pilots.crt.service_area.beats[0]",
        'must be a string, got integer 111 (quote it: "111")',
        id="beat-integer",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, '"111", "112"', '"111", " 111 "', section=CRT),
        "pilots.crt.service_area.beats[1]",
        "beat ' 111 ' listed twice",
        id="beat-twice",
    ),
    pytest.param(
        edit(
            DEFAULT_TEXT,
            'service_area = "citywide"',
            'service_area = "everywhere"',
            section="pilots.ccd",
        ),
        "pilots.ccd.service_area",
        "unknown service area 'everywhere'",
        id="bad-service-area",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, '"Lost Person",\n]', '"Lost Person",\n    "trespass",\n]', section=CRT),
        "pilots.crt.call_types[10]",
        "call type 'trespass' listed twice",
        id="call-type-twice",
    ),
    pytest.param(
        edit(
            DEFAULT_TEXT,
            '"Welfare Check" = ["WELFARE CHECK"',
            '"Welfare Check" = ["edp", "WELFARE CHECK"',
        ),
        'categories."Welfare Check"[0]',
        "alias 'edp' already maps to 'Mental Health Crisis'",
        id="alias-in-two-categories",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, '"Nuisance" = ["NUISANCE"', '"Nuisance" = ["Trespass"'),
        "categories.Nuisance[0]",
        "alias 'Trespass' already maps to 'Trespass'",
        id="alias-is-another-category",
    ),
    pytest.param(
        edit(
            DEFAULT_TEXT,
            '"Lost Person" = ["LOST PERSON"]',
            '"Lost Person" = ["LOST PERSON", "lost  person"]',
        ),
        'categories."Lost Person"[1]',
        "alias 'lost  person' listed twice",
        id="alias-twice",
    ),
    pytest.param(
        edit(
            DEFAULT_TEXT,
            '"Lost Person" = ["LOST PERSON"]',
            '"Lost Person" = ["LOST PERSON"]\n"lost person" = []',
        ),
        'categories."lost person"',
        "category 'lost person' duplicates 'Lost Person'",
        id="category-twice",
    ),
    pytest.param(
        edit(
            DEFAULT_TEXT,
            '"Mental Health Crisis"]',
            '"Mental Health Crisis", "Burglary"]',
            section="pilots.ccd",
        ),
        "pilots.ccd.call_types[2]",
        "unknown category 'Burglary' (not in [categories])",
        id="unknown-category",
    ),
    pytest.param(
        edit(
            DEFAULT_TEXT, '"Mental Health Crisis"]', '"mental health crisis"]', section="pilots.cor"
        ),
        "pilots.cor.call_types[1]",
        "unknown category 'mental health crisis' (did you mean 'Mental Health Crisis'?)",
        id="category-wrong-case",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'start = "08:30"', 'start = "8:30"', section=CRT),
        "pilots.crt.hours[0].start",
        "invalid time '8:30' (use HH:MM, 00:00 to 24:00; did you mean \"08:30\"?)",
        id="time-without-leading-zero",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'end = "16:30"', 'end = "24:30"', section=CRT),
        "pilots.crt.hours[0].end",
        "invalid time '24:30'",
        id="time-past-midnight",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'end = "16:30"', 'end = "16:60"', section=CRT),
        "pilots.crt.hours[0].end",
        "invalid time '16:60'",
        id="time-bad-minutes",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'start = "08:30"', "start = 08:30:00", section=CRT),
        "pilots.crt.hours[0].start",
        'must be a quoted "HH:MM" string, got time 08:30:00 (did you mean "08:30"?)',
        id="time-toml-literal",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, '"America/New_York"', '"America/Durham"'),
        "timezone",
        "unknown time zone 'America/Durham'",
        id="bad-timezone",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, '"America/New_York"', '"../../etc/passwd"'),
        "timezone",
        "unknown time zone '../../etc/passwd'",
        id="timezone-path",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'name = "durham"', 'name = "durham"\ncolour = "teal"'),
        "colour",
        "unknown key 'colour' (known: name, version,",
        id="extra-key-top",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, "enabled = true", 'enabled = true\ncolour = "teal"', section=CRT),
        "pilots.crt.colour",
        "unknown key 'colour' (known: enabled, hours, service_area, assumption, call_types,",
        id="extra-key-pilot",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'end = "16:30" }', 'end = "16:30", colour = "teal" }', section=CRT),
        "pilots.crt.hours[0].colour",
        "unknown key 'colour' (known: days, start, end)",
        id="extra-key-window",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, '"513",\n] }', '"513",\n], colour = "teal" }', section=CRT),
        "pilots.crt.service_area.colour",
        "unknown key 'colour' (known: beats)",
        id="extra-key-service-area",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, "follows =", "call_types = []\nfollows =", section="pilots.cn"),
        "pilots.cn.call_types",
        "unknown key 'call_types'",
        id="extra-key-cn",
    ),
    pytest.param(
        edit(
            DEFAULT_TEXT, "max_queue_wait_minutes = 10", "max_queue_wait_minutes = 10\nmax_wait = 5"
        ),
        "dispatch.max_wait",
        "unknown key 'max_wait' (known: max_queue_wait_minutes, stale_call_minutes, "
        "status_alert_minutes)",
        id="extra-key-dispatch",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, "[risk]\n", "[risk]\nexcluded_by_knife = []\n"),
        "risk.excluded_by_knife",
        "unknown key 'excluded_by_knife'",
        id="extra-key-risk",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, "enabled = true\n", "", section=CRT),
        "pilots.crt.enabled",
        "required key is missing",
        id="missing-key",
    ),
    pytest.param(
        drop_section(DEFAULT_TEXT, "risk"),
        "risk",
        "required key is missing",
        id="missing-risk",
    ),
    pytest.param(
        drop_section(DEFAULT_TEXT, "pilots.cor"),
        "pilots.cor",
        "required key is missing",
        id="missing-pilot",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, "enabled = true", 'enabled = "yes"', section=CRT),
        "pilots.crt.enabled",
        "must be a boolean (true or false), got string 'yes'",
        id="enabled-not-bool",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, "max_queue_wait_minutes = 10", 'max_queue_wait_minutes = "10"'),
        "dispatch.max_queue_wait_minutes",
        "must be an integer, got string '10'",
        id="int-as-string",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, "max_queue_wait_minutes = 10", "max_queue_wait_minutes = 0"),
        "dispatch.max_queue_wait_minutes",
        "greater than 0",
        id="int-not-positive",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'excluded_by_weapon = ["crt"]', 'excluded_by_weapon = ["crt", "swat"]'),
        "risk.excluded_by_weapon[1]",
        "unknown pilot 'swat' (use ccd, crt, cor)",
        id="risk-unknown-pilot",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'excluded_by_weapon = ["crt"]', 'excluded_by_weapon = ["crt", "crt"]'),
        "risk.excluded_by_weapon[1]",
        "pilot 'crt' listed twice",
        id="risk-pilot-twice",
    ),
    pytest.param(
        edit(
            edit(
                DEFAULT_TEXT, 'excluded_by_weapon = ["crt"]', 'excluded_by_weapon = ["crt", "cor"]'
            ),
            'excluded_by_violence = ["crt"]',
            'excluded_by_violence = ["cor", "crt"]',
        ),
        "risk.requires_weapon_or_violence[0]",
        "pilot 'cor' requires a weapon or violence but is excluded by both",
        id="risk-contradiction",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'follows = ["ccd", "crt"]', 'follows = ["ccd", "cn"]'),
        "pilots.cn.follows[1]",
        "unknown pilot 'cn' (use ccd, crt, cor)",
        id="cn-follows-unknown",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, "known_beats = []", 'known_beats = ["111"]'),
        "pilots.crt.service_area.beats[1]",
        "beat '112' is not in known_beats",
        id="beat-not-known",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, "known_beats = []", "known_beats = [111]"),
        "known_beats[0]",
        "must be a string, got integer 111",
        id="known-beat-integer",
    ),
    pytest.param(
        edit(
            DEFAULT_TEXT,
            'hours = [{ days = ["mon", "tue", "wed", "thu", "fri"], '
            'start = "08:30", end = "16:30" }]',
            "hours = []",
            section=CRT,
        ),
        "pilots.crt.hours",
        "an enabled pilot needs at least one window",
        id="enabled-without-hours",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, '"Lost Person" = ["LOST PERSON"]', '"Lost Person" = ["  "]'),
        'categories."Lost Person"[0]',
        "must not be blank",
        id="blank-alias",
    ),
    pytest.param(
        edit(
            DEFAULT_TEXT,
            '"Lost Person" = ["LOST PERSON"]',
            '"Lost Person" = ["LOST PERSON"]\n" " = []',
        ),
        'categories." "',
        "key must not be blank",
        id="blank-category",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'service_area = "citywide"', "service_area = 5", section="pilots.ccd"),
        "pilots.ccd.service_area",
        'must be "citywide" or {beats = [...]}, got integer 5',
        id="service-area-integer",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'city = "Durham, NC"', 'city = "  "'),
        "organisation.city",
        "must not be blank",
        id="organisation-blank-name",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'city = "Durham, NC"', "city = 27701"),
        "organisation.city",
        'must be a string, got integer 27701 (quote it: "27701")',
        id="organisation-name-integer",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'city = "Durham, NC"', 'city = "Durham, NC"\ncounty = "Durham"'),
        "organisation.county",
        "unknown key 'county' (known: department, city, program)",
        id="organisation-unknown-key",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'program = "HEART"', f'program = "{"H" * 121}"'),
        "organisation.program",
        "must be one line of at most 120 characters",
        id="organisation-name-too-long",
    ),
    pytest.param(
        edit(
            DEFAULT_TEXT,
            'department = "Durham Community Safety Department"\ncity = "Durham, NC"\n'
            'program = "HEART"\n',
            "",
        ),
        "organisation",
        "names nothing: set department, city or program, or leave the table out",
        id="organisation-empty",
    ),
    pytest.param(
        edit(DEFAULT_TEXT, 'version = "2022-06-27"', 'version = "2022 June"'),
        "version",
        "should match pattern",
        id="bad-version",
    ),
]


@pytest.mark.parametrize(("text", "field", "problem"), BAD_POLICIES)
def test_bad_policy_is_refused(
    write_policy: Callable[[str], Path], text: str, field: str, problem: str
) -> None:
    path = write_policy(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"{field}: " in message, message
    assert problem in message, message
    assert any(f == field and problem in p for f, p in caught.value.problems)
    assert caught.value.source == str(path)


def test_pilot_taking_nothing_is_refused(write_policy: Callable[[str], Path]) -> None:
    text = edit(
        edit(
            DEFAULT_TEXT,
            'call_types = ["Suicide Threat", "Mental Health Crisis"]',
            "call_types = []",
            section="pilots.cor",
        ),
        "includes_behavioral_health_flag = true",
        "includes_behavioral_health_flag = false",
        section="pilots.cor",
    )
    with pytest.raises(PolicyError, match=r"pilots\.cor\.call_types: pilot takes no calls"):
        load_policy(write_policy(text))


def test_every_problem_is_reported_at_once(write_policy: Callable[[str], Path]) -> None:
    text = edit(DEFAULT_TEXT, '"fri"]', '"fir"]', section=CRT)
    text = edit(text, '"America/New_York"', '"Mars/Olympus"')
    text = edit(text, 'start = "08:00"', 'start = "8am"', section="pilots.ccd")
    with pytest.raises(PolicyError) as caught:
        load_policy(write_policy(text))
    message = str(caught.value)
    assert "has 3 problems" in message
    assert "pilots.crt.hours[0].days[4]: unknown day 'fir'" in message
    assert "timezone: unknown time zone 'Mars/Olympus'" in message
    assert "pilots.ccd.hours[0].start: invalid time '8am'" in message


def test_toml_syntax_error_names_the_line(write_policy: Callable[[str], Path]) -> None:
    text = edit(DEFAULT_TEXT, "enabled = true", "enabled = tru", section=CRT)
    line = text[: text.index("enabled = tru\n")].count("\n") + 1
    path = write_policy(text, "syntax.toml")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert str(path) in message
    assert "TOML syntax error" in message
    assert f"line {line}" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(PolicyError, match=r"nowhere\.toml: file not found"):
        load_policy(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path)


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(DEFAULT_TEXT.replace("Durham, NC", "Durh\xe4m").encode("latin-1"))
    with pytest.raises(PolicyError, match=r"latin1\.toml: not UTF-8"):
        load_policy(path)


def test_policy_error_is_a_value_error() -> None:
    error = PolicyError("x.toml", [("a.b", "broken")])
    assert isinstance(error, ValueError)
    assert str(error) == "policy file x.toml: a.b: broken"


# --- the organisation a report names ----------------------------------------------------------

SHIPPED_POLICIES = sorted(
    [
        *REPO.glob("policy/durham*.toml"),
        REPO / "bench/policy-24x7.toml",
        *REPO.glob("cad/mappings/*-policy.toml"),
        *REPO.glob("cad/mappings/milwaukee-demo-[0-9]*.toml"),
    ]
)


def test_durham_names_its_department_city_and_program(durham: Policy) -> None:
    assert durham.organisation is not None
    assert (
        durham.organisation.department,
        durham.organisation.city,
        durham.organisation.program,
    ) == ("Durham Community Safety Department", "Durham, NC", "HEART")


@pytest.mark.parametrize("path", SHIPPED_POLICIES, ids=lambda p: p.name)
def test_every_shipped_policy_names_its_organisation_honestly(path: Path) -> None:
    organisation = load_policy(path).organisation
    assert organisation is not None and organisation.department and organisation.city
    if path.parent.name == "mappings":
        # Durham's model applied to another city's calls: never Durham's department.
        city = "Milwaukee, WI" if "milwaukee" in path.name else "San José, CA"
        assert organisation.city == city
        assert "what-if" in organisation.department
        assert "Durham Community Safety Department" not in organisation.department


def test_the_organisation_is_optional(write_policy: Callable[[str], Path]) -> None:
    start = DEFAULT_TEXT.index("[organisation]")
    text = DEFAULT_TEXT[:start] + DEFAULT_TEXT[DEFAULT_TEXT.index("[dispatch]") :]
    assert load_policy(write_policy(text)).organisation is None
    only_city = edit(
        DEFAULT_TEXT, 'department = "Durham Community Safety Department"\n', ""
    ).replace('program = "HEART"\n', "")
    organisation = load_policy(write_policy(only_city)).organisation
    assert organisation is not None
    assert (organisation.department, organisation.city, organisation.program) == (
        None,
        "Durham, NC",
        None,
    )


# --- hints lead to a valid value ---------------------------------------------------------------

HINT = re.compile(r'(?:did you mean|quote it:|e\.g\.) "([^"]*)"')


def _follow_hint(
    write_policy: Callable[[str], Path], text: str, bad: str, value: str, field: str
) -> str:
    """Load ``text``; take the hint given for ``field``; return the text with ``value``
    in the line ``bad`` replaced by the hinted value, quoted."""
    with pytest.raises(PolicyError) as caught:
        load_policy(write_policy(text))
    problem = dict(caught.value.problems)[field]
    hint = HINT.search(problem)
    assert hint is not None, f"no hint to follow: {problem}"
    return text.replace(bad, bad.replace(value, f'"{hint.group(1)}"', 1), 1)


@pytest.mark.parametrize(
    ("key", "bad", "valid"),
    [
        ("start", "800", "08:00"),
        ("start", "830", "08:30"),
        ("start", "8", "08:00"),
        ("start", '"800"', "08:00"),
        ("start", '"0830"', "08:30"),
        ("start", '"8:30"', "08:30"),
        ("start", "08:30:00", "08:30"),
        ("start", '"08:30:00"', "08:30"),
        ("start", "2400", "00:00"),
        ("start", "8.5", "08:30"),
        ("start", '"16:60"', "08:30"),
        ("start", "true", "08:30"),
        ("end", "1630", "16:30"),
        ("end", "2400", "24:00"),
        ("end", '"1630"', "16:30"),
    ],
)
def test_a_time_hint_leads_to_a_valid_time(
    write_policy: Callable[[str], Path], key: str, bad: str, valid: str
) -> None:
    # CRT's window is 08:30-16:30: a hinted start before 16:30, or end after 08:30, loads.
    old = f'{key} = "{"08:30" if key == "start" else "16:30"}"'
    text = edit(DEFAULT_TEXT, old, f"{key} = {bad}", section=CRT)
    fixed = _follow_hint(write_policy, text, f"{key} = {bad}", bad, f"{CRT}.hours[0].{key}")
    assert f'{key} = "{valid}"' in fixed
    policy = load_policy(write_policy(fixed))
    assert getattr(policy.pilots.crt.hours[0], key) == valid


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('name = "durham"', "name = 5", "name"),
        ('version = "2022-06-27"', "version = 2022", "version"),
        ('"111", "112"', '111, "112"', f"{CRT}.service_area.beats[0]"),
        ('city = "Durham, NC"', "city = 27701", "organisation.city"),
    ],
)
def test_quote_it_leads_to_a_valid_value(
    write_policy: Callable[[str], Path], old: str, new: str, field: str
) -> None:
    text = edit(DEFAULT_TEXT, old, new)
    bare = new.split("= ")[-1].split(",")[0]
    load_policy(write_policy(_follow_hint(write_policy, text, new, bare, field)))


def test_no_quote_it_where_the_quoted_value_would_be_refused_too(
    write_policy: Callable[[str], Path],
) -> None:
    # "5" is no time zone, and "-1" no policy name: quoting would only lead to the next error.
    for old, new, field in (
        ('timezone = "America/New_York"', "timezone = 5", "timezone"),
        ('name = "durham"', "name = -1", "name"),
    ):
        with pytest.raises(PolicyError) as caught:
            load_policy(write_policy(edit(DEFAULT_TEXT, old, new)))
        problem = dict(caught.value.problems)[field]
        assert problem.startswith("must be a string, got integer"), problem
        assert "quote it" not in problem, problem


def test_status_alert_thresholds_are_the_policys_with_defaults_when_absent(tmp_path: Path) -> None:
    assert dict(load_policy().dispatch.status_alerts)["dispatched"] == 10
    without = tmp_path / "without.toml"
    start = DEFAULT_TEXT.index("[dispatch.status_alert_minutes]")
    without.write_text(DEFAULT_TEXT[:start] + DEFAULT_TEXT[DEFAULT_TEXT.index("[risk]") :])
    assert load_policy(without).dispatch.status_alerts["on_scene"] == 90
    text = DEFAULT_TEXT.replace("\ndispatched = 10\n", "\ndispatched = 4\n")
    assert text != DEFAULT_TEXT
    file = tmp_path / "policy.toml"
    file.write_text(text)
    assert load_policy(file).dispatch.status_alerts["dispatched"] == 4
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("dispatched = 4", "dispatched = 4\nlunch = 5"))
    with pytest.raises(PolicyError) as caught:
        load_policy(bad)
    assert "dispatch.status_alert_minutes.lunch" in str(caught.value)


# --- the queue wait and the stale limit -------------------------------------------------------


def test_a_queue_wait_past_the_stale_limit_is_refused(write_policy: Callable[[str], Path]) -> None:
    text = edit(DEFAULT_TEXT, "max_queue_wait_minutes = 10", "max_queue_wait_minutes = 15")
    path = write_policy(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value) == (
        f"policy file {path}: dispatch.max_queue_wait_minutes: 15 is longer than "
        "dispatch.stale_call_minutes = 10, after which no team is sent (set "
        "max_queue_wait_minutes to at most 10, or raise stale_call_minutes)"
    )


def test_the_stale_limit_a_queue_wait_is_checked_against_may_be_the_default(
    write_policy: Callable[[str], Path],
) -> None:
    text = edit(DEFAULT_TEXT, "stale_call_minutes = 10\n", "")
    assert load_policy(write_policy(text)).dispatch.stale_call_minutes == 10
    too_long = edit(text, "max_queue_wait_minutes = 10", "max_queue_wait_minutes = 11")
    with pytest.raises(PolicyError, match=r"stale_call_minutes = 10 \(the default\)"):
        load_policy(write_policy(too_long))


@pytest.mark.parametrize(("wait", "stale"), [(10, 10), (15, 15), (5, 30)])
def test_a_queue_wait_up_to_the_stale_limit_is_accepted(
    write_policy: Callable[[str], Path], wait: int, stale: int
) -> None:
    text = edit(DEFAULT_TEXT, "max_queue_wait_minutes = 10", f"max_queue_wait_minutes = {wait}")
    text = edit(text, "stale_call_minutes = 10", f"stale_call_minutes = {stale}")
    dispatch = load_policy(write_policy(text)).dispatch
    assert (dispatch.max_queue_wait_minutes, dispatch.stale_call_minutes) == (wait, stale)
