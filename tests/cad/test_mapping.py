"""Mapping files: the shipped ones load and mean what they say; bad ones are refused with
the file, the field path and the problem named."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from heart.cad.eido import load_apco_table
from heart.cad.mapping import (
    MAPPINGS_DIR,
    CadMapping,
    MappingError,
    _format_parser,
    load_mapping,
    resolve_mapping_path,
    shipped_mapping,
    shipped_mappings,
)
from heart.policy import load_policy

MILWAUKEE_TEXT = shipped_mapping("milwaukee-2018").read_text(encoding="utf-8")
DEMO_POLICY = MAPPINGS_DIR / "milwaukee-demo-policy.toml"

MINIMAL = f"""
name = "testcity-2024"
city = "testcity"
policy = "{DEMO_POLICY.as_posix()}"

[columns]
call_id = "id"
time = "time"
call_type = "type"

[time]
timezone = "America/Chicago"
formats = ["%Y-%m-%d %H:%M:%S"]

[categories."Welfare Check"]
aliases = ["WELFARE CITIZEN"]
patterns = ['\\bwelfare\\b']
"""


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str, name: str = "bad-mapping.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def milwaukee() -> CadMapping:
    return load_mapping("milwaukee-2018")


@pytest.fixture(scope="module")
def sanjose() -> CadMapping:
    return load_mapping("sanjose-2024")


def problems(exc: pytest.ExceptionInfo[MappingError]) -> dict[str, str]:
    return dict(exc.value.problems)


# --- shipped files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["milwaukee-2018", "sanjose-2024"])
def test_shipped_mapping_and_its_demo_policy_load(name: str) -> None:
    mapping = load_mapping(name)
    assert mapping.name == name
    assert mapping.source_file == str(shipped_mapping(name))
    # The demo policy is an ordinary policy file: the policy loader reads it as is.
    policy = load_policy(mapping.policy_path)
    assert mapping.policy_path.parent == MAPPINGS_DIR
    assert mapping.unknown_categories(policy) == []
    # And so does Durham's: a city's calls can be run through Durham's rules too.
    assert mapping.unknown_categories(load_policy()) == []


def test_milwaukee_demo_policy_uses_districts_as_beats(milwaukee: CadMapping) -> None:
    assert milwaukee.columns.beat == milwaukee.columns.district == "district"
    policy = milwaukee.load_policy()
    assert policy.known_beat_set == frozenset("1234567")
    assert policy.rule("crt").beats == frozenset({"2", "3"})


def test_sanjose_demo_policy_is_citywide(sanjose: CadMapping) -> None:
    assert sanjose.columns.beat is None
    policy = sanjose.load_policy()
    assert all(rule.beats is None for rule in policy.rules)


def test_apco_table_categories_are_durham_categories() -> None:
    table = load_apco_table()
    durham = load_policy()
    assert table.categories() <= set(durham.categories)
    for code in ("SUICTHRT", "EDP", "WELFARE", "TRESPASS", "INTOX", "PHANDLE", "INDECENT"):
        kind = table.classify(code.lower())
        assert kind is not None and kind.category is not None, code
        # Durham's policy names the same code under the same category.
        assert durham.category_for(code) == kind.category


def test_resolve_mapping_by_name_or_path(tmp_path: Path) -> None:
    assert resolve_mapping_path("milwaukee-2018") == shipped_mapping("milwaukee-2018")
    assert load_mapping(str(shipped_mapping("sanjose-2024"))).name == "sanjose-2024"
    missing = tmp_path / "nope.toml"
    assert resolve_mapping_path(missing) == missing


# --- what local types mean ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "category", "weapon", "violence", "behavioral_health"),
    [
        ("WELFARE CITIZEN", "Welfare Check", False, False, False),
        ("  welfare   citizen ", "Welfare Check", False, False, False),
        ("TRESPASSER", "Trespass", False, False, False),
        ("TRBL W/SUBJ", "Trespass", False, False, False),
        # The DV variant of the same type is neither Trespass nor safe for a civilian team.
        ("TRBL W/SUBJ-DV", None, False, True, False),
        ("NOISE NUISANCE", "Nuisance", False, False, False),
        ("IND EXPOSURE", "Public Indecency", False, False, False),
        ("MENTALLY DISTURBED PERSON", "Mental Health Crisis", False, False, True),
        ("MENTAL", "Mental Health Crisis", False, False, True),
        ("SUBJ WITH WEAPON", None, True, False, False),
        ("SUBJ WITH GUN-DV", None, True, True, False),
        ("FIGHT", None, False, True, False),
        ("BATTERY", None, False, True, False),
        ("BATTERY CUTTING", None, True, True, False),
        ("HOSPITAL TO MCMH", None, False, False, True),
        ("TRAFFIC STOP", None, False, False, False),
    ],
)
def test_milwaukee_types(
    milwaukee: CadMapping,
    local: str,
    category: str | None,
    weapon: bool,
    violence: bool,
    behavioral_health: bool,
) -> None:
    kind = milwaukee.classify(local)
    assert (kind.category, kind.weapon, kind.violence, kind.behavioral_health) == (
        category,
        weapon,
        violence,
        behavioral_health,
    )


@pytest.mark.parametrize(
    ("local", "category", "weapon", "violence", "behavioral_health"),
    [
        ("WELFARE CHECK", "Welfare Check", False, False, False),
        ("WELFARE CHECK (COMBINED EVENT)", "Welfare Check", False, False, False),
        ("TRESPASSING", "Trespass", False, False, False),
        ("MENTALLY DISTURBED PERSON", "Mental Health Crisis", False, False, True),
        ("MENTALLY DISTURBED FEMALE", "Mental Health Crisis", False, False, True),
        ("DRUNK IN PUBLIC", "Intoxicated Person", False, False, False),
        ("SOLICITING FOR PROSTITUTION", "Prostitution", False, False, False),
        ("MISSING PERSON, MENTAL HANDICAP", "Lost Person", False, False, False),
        ("MISSING JUVENILE", None, False, False, False),
        ("DISTURBANCE, WEAPON", None, True, False, False),
        ("DISTURBANCE, FIGHT (COMBINED EVENT)", None, False, True, False),
        ("ASSAULT WITH DEADLY WEAPON", None, True, True, False),
        ("DISTURBANCE", None, False, False, False),
    ],
)
def test_sanjose_types(
    sanjose: CadMapping,
    local: str,
    category: str | None,
    weapon: bool,
    violence: bool,
    behavioral_health: bool,
) -> None:
    kind = sanjose.classify(local)
    assert (kind.category, kind.weapon, kind.violence, kind.behavioral_health) == (
        category,
        weapon,
        violence,
        behavioral_health,
    )


def test_exact_alias_beats_any_pattern(write: Callable[..., Path]) -> None:
    text = (
        MINIMAL
        + """
[categories."Trespass"]
aliases = ["WELFARE TRESPASS"]
"""
    )
    mapping = load_mapping(write(text, "ok.toml"))
    # The Welfare Check pattern matches too, but an exact alias is the author's intent.
    assert mapping.classify("welfare trespass").category == "Trespass"
    assert mapping.classify("WELFARE OTHER").category == "Welfare Check"
    # The category name itself always matches.
    assert mapping.classify("trespass").category == "Trespass"


def test_relative_policy_path_resolves_beside_the_mapping(write: Callable[..., Path]) -> None:
    write(DEMO_POLICY.read_text(encoding="utf-8"), "city-policy.toml")
    path = write(MINIMAL.replace(DEMO_POLICY.as_posix(), "city-policy.toml"), "city.toml")
    mapping = load_mapping(path)
    assert mapping.policy_path == path.parent / "city-policy.toml"


# --- time formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("%Y-%m-%d %H:%M:%S", "2018-05-01 00:10:28"),
        ("%Y-%m-%d %H:%M:%S", "2018-05-01   00:10:28"),
        ("%m/%d/%Y %H:%M:%S", "3/5/2024 9:29:25"),
        ("%m/%d/%Y %H:%M", "12/31/2024 23:59"),
        ("%Y%m%d%H%M%S", "20240315092336"),
        ("%Y-%m-%dT%H:%M:%S", "2024-03-15T09:23:36"),
        ("%d.%m.%Y %H:%M", "15.03.2024 09:23"),
        ("%m/%d/%Y %I:%M:%S %p", "3/15/2024 9:23:36 PM"),
    ],
)
def test_time_parser_agrees_with_strptime(fmt: str, text: str) -> None:
    assert _format_parser(fmt)(text) == datetime.strptime(text, fmt)


@pytest.mark.parametrize(
    "text", ["2018-13-01 00:10:28", "2018-02-30 00:10:28", "2018-05-01 24:00:00", "2018-05-01"]
)
def test_time_parser_refuses_what_strptime_refuses(text: str) -> None:
    fmt = "%Y-%m-%d %H:%M:%S"
    with pytest.raises(ValueError):
        datetime.strptime(text, fmt)
    assert _format_parser(fmt)(text) is None


def test_extract_keeps_only_the_groups(sanjose: CadMapping) -> None:
    assert sanjose.parse_time("3/15/2024 12:00:00 AM 07:35:00") == datetime(2024, 3, 15, 7, 35)
    assert sanjose.parse_time("3/15/2024 12:00:00 AM 9:29:25") == datetime(2024, 3, 15, 9, 29, 25)
    assert sanjose.parse_time("3/15/2024 07:35:00") == datetime(2024, 3, 15, 7, 35)
    assert sanjose.parse_time("3/15/2024 01:00:00 PM 07:35:00") is None
    assert sanjose.parse_time("") is None


# --- bad files ----------------------------------------------------------------------------


def test_unknown_key_suggests_this_files_keys(write: Callable[..., Path]) -> None:
    path = write(MINIMAL.replace('city = "testcity"', 'city = "testcity"\ncolumn = "x"'))
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    message = str(exc.value)
    assert message.startswith(f"mapping file {path}: column: unknown key 'column' (known: name,")
    # Suggestions are the mapping's keys, not the policy loader's.
    assert "columns" in message and "pilots" not in message


def test_nested_unknown_key_names_its_path(write: Callable[..., Path]) -> None:
    path = write(MINIMAL.replace('call_type = "type"', 'call_type = "type"\nbeats = "b"'))
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert problems(exc)["columns.beats"].startswith("unknown key 'beats' (known: call_id, time")


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        (
            'call_id = "id"',
            "call_id = 5",
            "columns.call_id",
            'must be a string, got integer 5 (quote it: "5")',
        ),
        (
            'time = "time"',
            "time = 5",
            "columns.time",
            "must be a column name or an array of column names, got integer 5",
        ),
        ('time = "time"', "time = []", "columns.time", "must not be empty"),
        (
            'formats = ["%Y-%m-%d %H:%M:%S"]',
            'formats = ["%H:%M"]',
            "time.formats[0]",
            "time format '%H:%M' does not read back a date and time to the minute",
        ),
        (
            'formats = ["%Y-%m-%d %H:%M:%S"]',
            'formats = ["%Y-%m-%d %I:%M"]',
            "time.formats[0]",
            "does not read back",
        ),
        (
            'timezone = "America/Chicago"',
            'timezone = "Mars/Olympus"',
            "time.timezone",
            "unknown time zone 'Mars/Olympus'",
        ),
        (
            "patterns = ['\\bwelfare\\b']",
            "patterns = ['(welfare']",
            'categories."Welfare Check".patterns[0]',
            "invalid regular expression '(welfare'",
        ),
        (
            'aliases = ["WELFARE CITIZEN"]',
            'aliases = ["WELFARE CITIZEN", "welfare  citizen"]',
            'categories."Welfare Check".aliases[1]',
            "alias 'welfare  citizen' listed twice",
        ),
        ('name = "testcity-2024"', 'name = "Test City"', "name", "String should match pattern"),
        ('city = "testcity"', "", "city", "required key is missing"),
    ],
)
def test_bad_field_is_named_with_its_problem(
    write: Callable[..., Path], old: str, new: str, field: str, problem: str
) -> None:
    assert old in MINIMAL
    path = write(MINIMAL.replace(old, new, 1))
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    found = problems(exc)
    assert field in found, found
    assert problem in found[field]
    assert str(path) in str(exc.value)


def test_alias_under_two_categories_is_refused(write: Callable[..., Path]) -> None:
    path = write(MINIMAL + '\n[categories."Trespass"]\naliases = ["Welfare Citizen"]\n')
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert problems(exc) == {
        "categories.Trespass.aliases[0]": "alias 'Welfare Citizen' already maps to 'Welfare Check'"
    }


def test_matcher_that_matches_nothing_is_refused(write: Callable[..., Path]) -> None:
    path = write(MINIMAL + "\n[flags.weapon]\naliases = []\n")
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert problems(exc) == {"flags.weapon": "matches nothing: list aliases or patterns"}


def test_lat_without_lon_is_refused(write: Callable[..., Path]) -> None:
    path = write(MINIMAL.replace('call_type = "type"', 'call_type = "type"\nlat = "y"'))
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert problems(exc) == {"columns.lon": "lat and lon go together: name both columns or neither"}


def test_extract_without_group_is_refused(write: Callable[..., Path]) -> None:
    path = write(MINIMAL.replace("[time]\n", "[time]\nextract = '^\\d+'\n"))
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert "has no (group)" in problems(exc)["time.extract"]


def test_several_problems_are_reported_together(write: Callable[..., Path]) -> None:
    text = MINIMAL.replace('call_id = "id"', "call_id = 1").replace("America/Chicago", "Nowhere")
    path = write(text)
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert set(problems(exc)) == {"columns.call_id", "time.timezone"}
    assert str(exc.value).startswith(f"mapping file {path} has 2 problems:\n  columns.call_id: ")


def test_category_unknown_to_the_policy_is_refused(write: Callable[..., Path]) -> None:
    path = write(MINIMAL + '\n[categories."Assist Person"]\naliases = ["CITIZEN CONTACT"]\n')
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    problem = problems(exc)['categories."Assist Person"']
    assert problem.startswith("not a category of policy milwaukee-demo-policy.toml (known: ")
    # Structure alone is fine: the check is against the policy.
    assert load_mapping(path, check_policy=False).name == "testcity-2024"


def test_missing_policy_file_is_named(write: Callable[..., Path], tmp_path: Path) -> None:
    path = write(MINIMAL.replace(DEMO_POLICY.as_posix(), "no-such-policy.toml"))
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert problems(exc) == {"policy": f"policy file not found: {tmp_path / 'no-such-policy.toml'}"}


def test_unreadable_files_are_named(write: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=re.escape(f"{tmp_path / 'gone.toml'}: file not found")):
        load_mapping(tmp_path / "gone.toml")
    path = write('name = "x\n')
    with pytest.raises(MappingError, match="TOML syntax error"):
        load_mapping(path)


def test_shipped_milwaukee_text_round_trips_through_the_loader(write: Callable[..., Path]) -> None:
    # A copy elsewhere needs the policy and roster beside it: paths are relative to it.
    write(DEMO_POLICY.read_text(encoding="utf-8"), "milwaukee-demo-policy.toml")
    roster = MAPPINGS_DIR / "milwaukee-demo-roster.toml"
    write(roster.read_text(encoding="utf-8"), "milwaukee-demo-roster.toml")
    copy = load_mapping(write(MILWAUKEE_TEXT, "milwaukee-copy.toml"))
    assert copy.model_dump() == load_mapping("milwaukee-2018").model_dump()


# --- every file a mapping names -----------------------------------------------------------


def test_missing_roster_file_is_named(write: Callable[..., Path], tmp_path: Path) -> None:
    path = write(MINIMAL.replace("[columns]", 'roster = "no-such-roster.toml"\n\n[columns]'))
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert problems(exc) == {"roster": f"roster file not found: {tmp_path / 'no-such-roster.toml'}"}
    # Whether or not the policy is checked: a replay would fail on it later, after 8 s.
    with pytest.raises(MappingError, match="roster file not found"):
        load_mapping(path, check_policy=False)


def test_missing_policy_and_roster_are_named_together(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    text = MINIMAL.replace(DEMO_POLICY.as_posix(), "gone-policy.toml")
    path = write(text.replace("[columns]", 'roster = "gone-roster.toml"\n\n[columns]'))
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert problems(exc) == {
        "policy": f"policy file not found: {tmp_path / 'gone-policy.toml'}",
        "roster": f"roster file not found: {tmp_path / 'gone-roster.toml'}",
    }


def test_roster_that_is_a_directory_is_refused(write: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "a-folder").mkdir()
    path = write(MINIMAL.replace("[columns]", 'roster = "a-folder"\n\n[columns]'))
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert problems(exc) == {"roster": f"roster file not found: {tmp_path / 'a-folder'}"}


@pytest.mark.parametrize("name", ["milwaukee-2018", "sanjose-2024"])
def test_shipped_mappings_name_files_that_exist(name: str) -> None:
    mapping = load_mapping(name)
    assert mapping.roster_path is not None and mapping.roster_path.is_file()
    assert mapping.policy_path.is_file()


# --- a mapping that is not there ----------------------------------------------------------


def test_shipped_mappings_are_listed() -> None:
    # Demo policies, rosters and the APCO table live in the same folder and are not listed.
    assert shipped_mappings() == ["milwaukee-2018", "sanjose-2024"]


def test_unknown_mapping_name_lists_the_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MappingError) as exc:
        load_mapping("nosuchcity")
    assert str(exc.value) == (
        "mapping file nosuchcity: no such file and no shipped mapping of that name "
        "(shipped mappings: milwaukee-2018, sanjose-2024)"
    )
    assert "did you mean" not in str(exc.value)


def test_unknown_mapping_name_suggests_the_toml_file_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nosuchcity.toml").write_text(MINIMAL, encoding="utf-8")
    with pytest.raises(MappingError) as exc:
        load_mapping("nosuchcity")
    assert str(exc.value).endswith("; did you mean ./nosuchcity.toml?")
    # The suggestion works as given.
    assert load_mapping("./nosuchcity.toml").name == "testcity-2024"


def test_missing_mapping_path_lists_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as exc:
        load_mapping(tmp_path / "gone.toml")
    assert str(exc.value) == (
        f"mapping file {tmp_path / 'gone.toml'}: file not found "
        "(shipped mappings: milwaukee-2018, sanjose-2024)"
    )


# --- needs_in_person from a disposition column ---------------------------------------------

IN_PERSON = """
[in_person]
column = "status"
no_dispatch_codes = ["Referral", "Patrol Request"]
"""


def test_in_person_reads_needs_in_person_from_the_disposition(
    write: Callable[..., Path],
) -> None:
    mapping = load_mapping(write(MINIMAL + IN_PERSON))
    assert mapping.knows_in_person
    rule = mapping.in_person_rule()
    # Exact codes, case and spacing ignored; anything else, or nothing, needs someone.
    assert rule("Referral") is False
    assert rule("  patrol   REQUEST ") is False
    assert rule("Advised/Referral") is True
    assert rule("Advised") is True
    assert rule(None) is True


def test_without_in_person_every_call_gets_the_default(write: Callable[..., Path]) -> None:
    mapping = load_mapping(write(MINIMAL))
    assert not mapping.knows_in_person
    assert mapping.in_person_rule()("Referral") is True
    off = load_mapping(write(MINIMAL + "\n[defaults]\nneeds_in_person = false\n", "off.toml"))
    assert off.in_person_rule()("anything") is False


@pytest.mark.parametrize(
    ("table", "field", "problem"),
    [
        (
            '[in_person]\ncolumn = "status"\nno_dispatch_codes = []\n',
            "in_person.no_dispatch_codes",
            "must not be empty",
        ),
        (
            '[in_person]\ncolumn = "status"\nno_dispatch_codes = ["NR", " nr "]\n',
            "in_person.no_dispatch_codes[1]",
            "code ' nr ' listed twice",
        ),
        (
            '[in_person]\nno_dispatch_codes = ["NR"]\n',
            "in_person.column",
            "required key is missing",
        ),
        (
            '[in_person]\ncolumn = "status"\nno_dispatch = ["NR"]\n',
            "in_person.no_dispatch",
            "unknown key",
        ),
        (
            "[defaults]\nneeds_in_person = false\n" + IN_PERSON,
            "defaults.needs_in_person",
            "false conflicts with [in_person], which sets it per call from column 'status'",
        ),
    ],
)
def test_bad_in_person_is_named_with_its_problem(
    write: Callable[..., Path], table: str, field: str, problem: str
) -> None:
    with pytest.raises(MappingError) as exc:
        load_mapping(write(MINIMAL + "\n" + table))
    found = problems(exc)
    assert field in found, found
    assert problem in found[field]


@pytest.mark.parametrize(
    ("name", "column", "codes"),
    [
        ("milwaukee-2018", "status", {"Patrol Request", "Referral"}),
        ("sanjose-2024", "FINAL_DISPO_CODE", {"NR", "ADV"}),
    ],
)
def test_shipped_mappings_read_dispositions(name: str, column: str, codes: set[str]) -> None:
    mapping = load_mapping(name)
    assert mapping.in_person is not None
    assert mapping.in_person.column == column
    assert set(mapping.in_person.no_dispatch_codes) == codes
    # "Advised" is given on scene as often as not (a traffic stop is advised in person).
    assert mapping.in_person_rule()("Advised") is True
