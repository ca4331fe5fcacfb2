"""The team roster: the Durham default loads as the seed describes the teams; bad files are
refused with the file, the field path and the problem named."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from heart.agents.dispatch.roster import (
    REQUIRED_ROLES,
    Roster,
    RosterError,
    default_roster_path,
    load_roster,
    parse_roster,
)

DURHAM = ZoneInfo("America/New_York")
DEFAULT_TEXT = default_roster_path().read_text(encoding="utf-8")
CRT_PILOT_BEATS = [
    "111",
    "112",
    "113",
    "114",
    "122",
    "214",
    "223",
    "411",
    "413",
    "511",
    "512",
    "513",
]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def local(day: str, hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=DURHAM)


def edit(text: str, old: str, new: str, *, nth: int = 0) -> str:
    """Replace the ``nth`` occurrence of ``old``; fail loudly if absent."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(old, at + 1)
    return text[:at] + new + text[at + len(old) :]


@pytest.fixture
def write_roster(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "bad-roster.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def durham() -> Roster:
    return load_roster()


# --- the default roster -------------------------------------------------------------------


def test_default_roster_is_a_durham_pool(durham: Roster) -> None:
    assert durham.name == "durham"
    assert durham.version_id.startswith("durham@2022-06-27+")
    assert list(durham.areas) == ["durham"]
    teams = durham.teams_in("durham")
    assert [t.kind for t in teams].count("crt") == 4
    assert [t.kind for t in teams].count("cor") == 2
    for team in teams:
        assert sorted(team.roles) == sorted(REQUIRED_ROLES[team.kind])
        assert [(w.days, w.start, w.end) for w in team.shift] == [(WEEKDAYS, "08:30", "16:30")]
    assert any(team.speaks("es") for team in teams if team.kind == "crt")
    assert any(team.speaks("es") for team in teams if team.kind == "cor")


def test_default_districts_hold_the_crt_pilot_beats(durham: Roster) -> None:
    assert list(durham.areas["durham"].districts) == ["D1", "D2", "D3", "D4", "D5"]
    for beat in CRT_PILOT_BEATS:
        assert durham.district_of("durham", beat) == f"D{beat[0]}"
    assert durham.district_of("durham", "999") is None
    assert durham.district_of("durham", None) is None


def test_home_district_comes_from_the_home_beat_or_is_given(durham: Roster) -> None:
    assert durham.home_district("CRT-1") == "D1"  # home_beat 111
    assert durham.home_district("CRT-2") == "D2"  # home_beat 214
    assert durham.home_district("COR-1") == "D2"  # home_district only


def test_area_for(durham: Roster) -> None:
    assert durham.area_for("111") == "durham"
    assert durham.area_for(None, "D3") == "durham"
    assert durham.area_for(None) == "durham"  # the only area


@pytest.mark.parametrize(
    ("when", "on"),
    [
        (local("2024-07-15", "08:29"), False),
        (local("2024-07-15", "08:30"), True),
        (local("2024-07-19", "16:29"), True),
        (local("2024-07-19", "16:30"), False),
        (local("2024-07-20", "10:00"), False),  # Saturday
        (local("2024-01-16", "08:30"), True),  # EST as well as EDT
    ],
)
def test_on_shift_in_the_policy_zone(durham: Roster, when: datetime, on: bool) -> None:
    team = durham.team("CRT-1")
    assert team is not None
    assert team.on_shift(when, DURHAM) is on
    assert team.on_shift(when.astimezone(ZoneInfo("UTC")), DURHAM) is on


def test_on_shift_in_an_area_agrees_with_each_team(durham: Roster) -> None:
    # Every 7 minutes over a week, in and out of the remembered minute, in each area.
    start = local("2024-07-15", "00:00")
    for step in range(7 * 24 * 60 // 7):
        when = start + timedelta(minutes=7 * step, seconds=step % 60)
        for area in (*durham.areas, "nowhere"):
            expected = {t.id for t in durham.teams_in(area) if t.on_shift(when, DURHAM)}
            assert durham.on_shift_in(area, when, DURHAM) == expected, (area, when)
            assert durham.on_shift_in(area, when, DURHAM) == expected, (area, when)


def test_language_match_uses_the_primary_subtag(durham: Roster) -> None:
    team = durham.team("CRT-1")
    assert team is not None
    assert team.speaks("es") and team.speaks("es-MX") and team.speaks("ES")
    assert not team.speaks("fr")


def test_lookups_of_unknown_things(durham: Roster) -> None:
    assert durham.team("CRT-99") is None
    assert durham.teams_in("raleigh") == ()


# --- refused files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "nth", "field", "problem"),
    [
        ('kind = "crt"', 'kind = "star"', 0, "teams[0].kind", "unknown team kind 'star'"),
        (
            'roles = ["clinician", "peer_support", "emt"]',
            'roles = ["clinician", "emt"]',
            1,
            "teams[1].roles",
            "a CRT team is a clinician, a peer support specialist and an EMT",
        ),
        (
            'roles = ["clinician", "peer_support", "emt"]',
            'roles = ["clinician", "peer_support", "emt", "emt"]',
            0,
            "teams[0].roles",
            "a CRT team is",
        ),
        (
            'roles = ["clinician", "police_officer"]',
            'roles = ["clinician", "peer_support"]',
            0,
            "teams[4].roles",
            "a CoR team is a clinician and a police officer",
        ),
        (
            '"clinician", "police_officer"]',
            '"clinician", "sheriff"]',
            0,
            "teams[4].roles[1]",
            "unknown role 'sheriff'",
        ),
        ('id = "CRT-2"', 'id = "crt-1"', 0, "teams[1].id", "team id 'crt-1' duplicates teams[0]"),
        ('id = "CRT-2"', 'id = "CRT 2"', 0, "teams[1].id", "invalid team id 'CRT 2'"),
        ('area = "durham"', 'area = "raleigh"', 2, "teams[2].area", "unknown area 'raleigh'"),
        (
            'start = "08:30", end = "16:30"',
            'start = "16:30", end = "08:30"',
            3,
            "teams[3].shift[0].end",
            "end 08:30 is not after start 16:30",
        ),
        (
            'start = "08:30"',
            'start = "8:30"',
            0,
            "teams[0].shift[0].start",
            "invalid time '8:30'",
        ),
        ('days = ["mon"', 'days = ["mo"', 0, "teams[0].shift[0].days[0]", "unknown day 'mo'"),
        ('home_beat = "111"', "home_beat = 111", 0, "teams[0].home_beat", 'quote it: "111"'),
        ('D2 = ["211"', "D2 = [211", 0, "areas.durham.districts.D2[0]", "must be a string"),
        (
            'languages = ["en", "es"]',
            'languages = ["en", "spanish"]',
            0,
            "teams[0].languages[1]",
            "invalid language tag 'spanish'",
        ),
        (
            'languages = ["en"]',
            'languages = ["en", "EN"]',
            0,
            "teams[1].languages[1]",
            "listed twice",
        ),
        ('home_beat = "214"', 'home_beat = "999"', 0, "teams[1].home_beat", "in no district"),
        (
            'home_district = "D2"',
            'home_district = "D9"',
            0,
            "teams[4].home_district",
            "unknown district 'D9'",
        ),
        (
            'home_beat = "111"',
            'home_beat = "111"\nhome_district = "D2"',
            0,
            "teams[0].home_district",
            "does not hold home_beat '111' (it is in 'D1')",
        ),
        (
            'home_beat = "111"\n',
            "",
            0,
            "teams[0].home_beat",
            "needs a home_beat or a home_district",
        ),
        ('D2 = ["211"', 'D2 = ["111", "211"', 0, "areas.durham.districts.D2[0]", "already in"),
        ('id = "CRT-1"', 'id = "CRT-1"\ncolour = "teal"', 0, "teams[0]", "unknown key 'colour'"),
        ('name = "durham"', 'name = "durham"\ncity = "Durham"', 0, "city", "unknown key 'city'"),
    ],
)
def test_bad_roster_is_refused_with_field_and_problem(
    write_roster: Callable[[str], Path],
    old: str,
    new: str,
    nth: int,
    field: str,
    problem: str,
) -> None:
    path = write_roster(edit(DEFAULT_TEXT, old, new, nth=nth))
    with pytest.raises(RosterError) as caught:
        load_roster(path)
    error = caught.value
    assert str(path) in str(error)
    assert any(
        (where == field or where.startswith(field + ".")) and problem in what
        for where, what in error.problems
    ), error.problems


def test_empty_shift_list_is_refused(write_roster: Callable[[str], Path]) -> None:
    text = edit(DEFAULT_TEXT, "shift = [{", "shift = []\nunused = [{")
    with pytest.raises(RosterError) as caught:
        load_roster(write_roster(text))
    assert ("teams[0].shift", "must not be empty") in caught.value.problems


def test_unknown_key_lists_the_known_keys(write_roster: Callable[[str], Path]) -> None:
    text = edit(DEFAULT_TEXT, 'id = "CRT-1"', 'id = "CRT-1"\nlanguage = "en"')
    with pytest.raises(RosterError) as caught:
        load_roster(write_roster(text))
    [(field, problem)] = caught.value.problems
    assert field == "teams[0].language"
    assert problem.startswith("unknown key 'language' (known: id, kind, area, roles, languages")


def test_several_problems_are_listed_together(write_roster: Callable[[str], Path]) -> None:
    text = edit(DEFAULT_TEXT, 'kind = "crt"', 'kind = "star"')
    text = edit(text, 'languages = ["en"]', 'languages = ["english"]', nth=1)
    with pytest.raises(RosterError) as caught:
        load_roster(write_roster(text))
    message = str(caught.value)
    assert "has 2 problems" in message
    assert "\n  teams[0].kind: unknown team kind 'star'" in message
    assert "\n  teams[3].languages[0]: invalid language tag 'english'" in message


def test_missing_file_and_syntax_errors(
    tmp_path: Path, write_roster: Callable[[str], Path]
) -> None:
    with pytest.raises(RosterError, match="file not found"):
        load_roster(tmp_path / "absent.toml")
    with pytest.raises(RosterError, match="TOML syntax error"):
        load_roster(write_roster("[[teams]\n"))


def test_parse_roster_names_its_source() -> None:
    with pytest.raises(RosterError, match=r"^roster file inline: .*teams"):
        parse_roster(
            {"name": "x", "version": "1", "areas": {"a": {"districts": {"D": ["1"]}}}},
            source="inline",
        )


def test_rosters_are_refused_without_teams() -> None:
    with pytest.raises(RosterError) as caught:
        parse_roster(
            {"name": "x", "version": "1", "areas": {"a": {"districts": {"D": ["1"]}}}, "teams": []},
            source="inline",
        )
    assert caught.value.problems == [("teams", "must not be empty")]
