"""Importing CAD exports: the two real files whole, with their reject counts measured and
asserted; out-of-order input; every reject reason counted with examples and no personal
data; DST; idempotent event ids."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from heart.agents.triage.decide import decide
from heart.cad.importer import ImportResult, RejectExample, import_rows, localise, stable_event_id
from heart.cad.mapping import CadMapping, MappingError, load_mapping
from tests.cad import shared_file

MAPPINGS = Path(__file__).resolve().parents[2] / "cad" / "mappings"
MILWAUKEE_HEADER = "id,time,location,latitude,longitude,district,nature,status"
SECRET_ADDRESS = "4242 SECRET PERSONAL LN"


@pytest.fixture(scope="module")
def milwaukee() -> CadMapping:
    return load_mapping("milwaukee-2018")


@pytest.fixture(scope="module")
def sanjose() -> CadMapping:
    return load_mapping("sanjose-2024")


@pytest.fixture(scope="module")
def milwaukee_import(milwaukee: CadMapping) -> ImportResult:
    return import_rows(shared_file("milwaukee-2018-05-calls.csv"), milwaukee)


@pytest.fixture(scope="module")
def sanjose_import(sanjose: CadMapping) -> ImportResult:
    return import_rows(shared_file("sanjose-2024-calls-sample.csv"), sanjose)


def write_csv(tmp_path: Path, lines: list[str], header: str = MILWAUKEE_HEADER) -> Path:
    path = tmp_path / "export.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def row(call_id: str, time: str, nature: str = "TRAFFIC STOP", district: str = "3") -> str:
    return f'{call_id},{time},"{SECRET_ADDRESS},MKE",43.05,-87.95,{district},{nature},Advised'


def assert_time_ordered(result: ImportResult) -> None:
    times = [event.occurred_at for event in result.events]
    assert all(a <= b for a, b in itertools.pairwise(times))


# --- the real exports, whole --------------------------------------------------------------


def test_milwaukee_whole_file(milwaukee_import: ImportResult) -> None:
    result = milwaukee_import
    assert result.rows == 33_968
    # Measured: every row of the May 2018 export is usable.
    assert dict(result.rejects) == {}
    assert dict(result.adjustments) == {}
    assert result.accepted == 33_968
    assert len({e.call_id for e in result.events}) == 33_968
    assert len({e.event_id for e in result.events}) == 33_968
    assert_time_ordered(result)
    # The export is not in time order (it is sorted by call id within blocks); the first
    # call of the month is not the first row.
    assert result.events[0].call_id == "1211376"
    assert result.events[0].occurred_at.isoformat() == "2018-05-01T00:00:14-05:00"
    assert result.events[-1].occurred_at.isoformat() == "2018-05-21T14:14:42-05:00"

    # WELFARE CITIZEN alone is 918 calls, TRBL W/SUBJ 2,166, NOISE NUISANCE 415.
    assert 918 <= result.categories["Welfare Check"] < 1_000
    assert 2_166 <= result.categories["Trespass"] < 2_300
    assert 415 <= result.categories["Nuisance"] < 500
    assert result.categories["Public Indecency"] >= 37
    assert result.flags["weapon"] >= 195 + 333  # SUBJ WITH WEAPON, SUBJ WITH GUN
    assert result.flags["violence"] >= 659 + 351  # BATTERY, FIGHT
    # Unmapped types are valid calls, counted apart from rejects; the largest is named.
    assert result.unmapped_type == result.accepted - sum(result.categories.values())
    assert result.top_unmapped(1) == [("TRAFFIC STOP", 3_719)]
    # Districts are read into beat and district alike; non-geographic units are visible.
    assert {e.beat for e in result.events} >= {"1", "2", "3", "4", "5", "6", "7", "CITY"}
    assert all(e.beat == e.district for e in result.events)


def test_sanjose_whole_file(sanjose_import: ImportResult) -> None:
    result = sanjose_import
    assert result.rows == 5_000
    # Measured: two calls exported twice (once per agency suffix); the first row is kept.
    assert dict(result.rejects) == {"duplicate_call_id": 2}
    assert result.examples["duplicate_call_id"] == [
        RejectExample(4127, "call id 'P240190737' first seen on line 2787"),
        RejectExample(4765, "call id 'P240610016' first seen on line 4454"),
    ]
    assert dict(result.adjustments) == {}
    assert result.accepted == 4_998
    assert_time_ordered(result)

    # Both duplicates were welfare checks: 399 + 76 rows, 2 of them repeats.
    assert 399 + 76 - 2 <= result.categories["Welfare Check"] < 550
    assert result.categories["Trespass"] >= 113
    assert result.categories["Mental Health Crisis"] == 29 + 16
    assert result.categories["Nuisance"] >= 174
    assert result.flags["weapon"] >= 19 + 19
    assert result.top_unmapped(2) == [("VEHICLE STOP", 488), ("DISTURBANCE", 474)]

    # The call time is OFFENSE_DATE + OFFENSE_TIME in Pacific time, not the CDTS stamp.
    first = next(e for e in result.events if e.call_id == "P240750136")
    assert first.occurred_at.isoformat() == "2024-03-15T07:35:00-07:00"
    assert first.priority == 3
    assert first.location is not None and first.location.address
    winter = next(e for e in result.events if e.call_id == "P240010014")
    assert winter.occurred_at.isoformat() == "2024-01-01T00:05:32-08:00"


def test_imported_calls_triage_under_the_demo_policy(
    milwaukee: CadMapping, milwaukee_import: ImportResult
) -> None:
    policy = milwaukee.load_policy()
    routes = Counter(decide(event, policy).route for event in milwaukee_import.events)
    assert routes["crt"] > 0
    assert routes["police"] > routes["crt"]


def test_reimport_gives_the_same_event_ids(
    sanjose: CadMapping, sanjose_import: ImportResult
) -> None:
    again = import_rows(shared_file("sanjose-2024-calls-sample.csv"), sanjose)
    assert [e.event_id for e in again.events] == [e.event_id for e in sanjose_import.events]
    assert sanjose_import.events[0].event_id == stable_event_id("sanjose", "P240010014")


def test_summary_and_dict_carry_the_account(sanjose_import: ImportResult) -> None:
    summary = sanjose_import.summary()
    assert "5000 rows, 4998 calls, 2 rejected" in summary
    assert "rejected duplicate_call_id: 2" in summary
    data = json.loads(json.dumps(sanjose_import.to_dict()))
    assert data["rejects"] == {"duplicate_call_id": 2}
    assert data["top_unmapped"][0] == {"call_type": "VEHICLE STOP", "calls": 488}


# --- ordering -----------------------------------------------------------------------------


def test_out_of_order_input_comes_out_in_time_order(tmp_path: Path, milwaukee: CadMapping) -> None:
    path = write_csv(
        tmp_path,
        [
            row("3", "2018-05-01 12:00:00"),
            row("1", "2018-05-01 08:00:00"),
            row("4", "2018-05-01 12:00:00"),  # same time as 3: stays after it
            row("2", "2018-05-01 09:30:00"),
            row("0", "2018-04-30 23:59:59"),
        ],
    )
    result = import_rows(path, milwaukee)
    assert [e.call_id for e in result.events] == ["0", "1", "2", "3", "4"]


def test_order_is_by_instant_across_offsets(tmp_path: Path) -> None:
    # 01:30 CDT (first pass, fold 0) is before 01:10 CST on the day clocks go back.
    shipped = load_mapping("milwaukee-2018")
    mapping_text = (
        Path(shipped.source_file)
        .read_text(encoding="utf-8")
        .replace('"%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"', '"%Y-%m-%d %H:%M:%S%z"')
        .replace('"milwaukee-demo-policy.toml"', f'"{shipped.policy_path.as_posix()}"')
        .replace('"milwaukee-demo-roster.toml"', f'"{shipped.roster_path.as_posix()}"')
    )
    mapping_file = tmp_path / "aware.toml"
    mapping_file.write_text(mapping_text, encoding="utf-8")
    mapping = load_mapping(mapping_file)
    path = write_csv(
        tmp_path,
        [row("late", "2018-11-04 01:10:00-0600"), row("early", "2018-11-04 01:30:00-0500")],
    )
    result = import_rows(path, mapping)
    assert [e.call_id for e in result.events] == ["early", "late"]
    assert dict(result.adjustments) == {}


# --- rejects and adjustments --------------------------------------------------------------


def test_every_bad_row_is_counted_with_examples_and_none_abort(
    tmp_path: Path, milwaukee: CadMapping
) -> None:
    lines = [
        row("1", "2018-05-01 08:00:00", "WELFARE CITIZEN"),
        row("", "2018-05-01 08:01:00"),  # line 3
        row("3", "2018-05-01 08:02:00", ""),  # line 4
        row("4", ""),  # line 5
        row("5", "yesterday at noon"),  # line 6
        row("1", "2018-05-01 08:05:00"),  # line 7: duplicate of line 2
        "6,2018-05-01 08:06:00,too,few",  # line 8
        row("7" * 65, "2018-05-01 08:07:00"),  # line 9: call id too long
        row("8", "2018-05-01 08:08:00", "MYSTERY TYPE"),
    ]
    result = import_rows(write_csv(tmp_path, lines), milwaukee)
    assert result.rows == 9
    assert dict(result.rejects) == {
        "missing_call_id": 1,
        "missing_call_type": 1,
        "missing_time": 1,
        "bad_time": 1,
        "duplicate_call_id": 1,
        "wrong_field_count": 1,
        "invalid_field": 1,
    }
    assert result.accepted + result.rejected == result.rows
    assert [e.call_id for e in result.events] == ["1", "8"]
    ex = {reason: examples[0] for reason, examples in result.examples.items()}
    assert (ex["missing_call_id"].line, ex["missing_call_id"].detail) == (3, "column 'id' is empty")
    assert ex["missing_call_type"].line == 4
    assert ex["missing_time"].line == 5
    assert (ex["bad_time"].line, ex["bad_time"].detail) == (
        6,
        "time 'yesterday at noon' matches no format",
    )
    assert ex["duplicate_call_id"].detail == "call id '1' first seen on line 2"
    assert ex["wrong_field_count"].detail == "expected 8 fields, got 4"
    assert ex["invalid_field"].line == 9
    assert ex["invalid_field"].detail.startswith("call_id: String should have at most 64")
    # Unmapped is not a reject: the call goes to police and its type is tallied.
    assert result.unmapped == Counter({"MYSTERY TYPE": 1})
    assert result.categories == Counter({"Welfare Check": 1})
    # Nothing personal in any example or in the summary.
    text = result.summary() + json.dumps(result.to_dict())
    assert "SECRET" not in text


def test_examples_are_capped_at_five_per_reason(tmp_path: Path, milwaukee: CadMapping) -> None:
    lines = [row(str(n), "not a time") for n in range(12)]
    result = import_rows(write_csv(tmp_path, lines), milwaukee)
    assert result.rejects == Counter({"bad_time": 12})
    assert [e.line for e in result.examples["bad_time"]] == [2, 3, 4, 5, 6]


def test_blank_lines_bytes_and_coordinates_are_counted(
    tmp_path: Path, milwaukee: CadMapping
) -> None:
    path = tmp_path / "export.csv"
    body = "\n".join(
        [
            MILWAUKEE_HEADER,
            row("1", "2018-05-01 08:00:00"),
            "",
            '2,2018-05-01 08:01:00,"1 MAIN ST",north,west,3,TRAFFIC STOP,Advised',
            '3,2018-05-01 08:02:00,"1 MAIN ST",91.5,-87.9,3,TRAFFIC STOP,Advised',
            '4,2018-05-01 08:03:00,"",,,3,TRAFFIC STOP,Advised',
        ]
    ).encode()
    path.write_bytes(body + b'\n5,2018-05-01 08:04:00,"CAF\xe9",,,3,FIGHT,Advised\n')
    result = import_rows(path, milwaukee)
    assert result.accepted == 5 and result.rejected == 0
    assert dict(result.adjustments) == {
        "blank_line_skipped": 1,
        "coordinates_dropped": 2,
        "undecodable_text": 1,
    }
    by_id = {e.call_id: e for e in result.events}
    assert by_id["2"].location is not None and by_id["2"].location.lat is None
    assert by_id["4"].location is None
    assert by_id["5"].violence_reported


def test_priority_that_is_not_a_number_is_dropped_not_rejected(
    tmp_path: Path, sanjose: CadMapping
) -> None:
    header = (
        "CDTS,EID,START_DATE,CALL_NUMBER,PRIORITY,REPORT_DATE,OFFENSE_DATE,OFFENSE_TIME,"
        "CALLTYPE_CODE,CALL_TYPE,FINAL_DISPO_CODE,FINAL_DISPO,ADDRESS,CITY,STATE"
    )

    def sj(number: str, priority: str, time: str = "07:35:00") -> str:
        date = "3/15/2024 12:00:00 AM"
        return (
            f"20240315092336PD,1,{date},{number},{priority},{date},{date},{time},"
            "WELCK,WELFARE CHECK,R,Report,[100]-[200] MAIN ST,San Jose,CA"
        )

    path = write_csv(tmp_path, [sj("P1", "2"), sj("P2", "high"), sj("P3", "")], header)
    result = import_rows(path, sanjose)
    assert [e.priority for e in result.events] == [2, None, None]
    assert result.adjustments == Counter({"priority_dropped": 1})
    assert result.examples["priority_dropped"][0].detail == "priority 'high' is not 0-99"
    assert result.categories == Counter({"Welfare Check": 3})


def test_header_without_a_mapped_column_names_the_mapping_field(
    tmp_path: Path, milwaukee: CadMapping
) -> None:
    path = write_csv(tmp_path, ["1,2018-05-01 08:00:00,X"], header="id,when,nature")
    with pytest.raises(MappingError) as exc:
        import_rows(path, milwaukee)
    problems = dict(exc.value.problems)
    assert problems["columns.time"] == (
        "column 'time' is not in the header of export.csv (id, when, nature)"
    )
    assert "columns.beat" in problems
    assert str(exc.value).startswith(f"mapping file {milwaukee.source_file} has ")


def test_header_without_the_in_person_column_names_it(
    tmp_path: Path, milwaukee: CadMapping
) -> None:
    header = MILWAUKEE_HEADER.replace(",status", ",outcome")
    path = write_csv(tmp_path, [row("1", "2018-05-01 08:00:00")], header=header)
    with pytest.raises(MappingError) as exc:
        import_rows(path, milwaukee)
    shown = ", ".join(header.split(","))
    assert dict(exc.value.problems) == {
        "in_person.column": f"column 'status' is not in the header of export.csv ({shown})"
    }


# --- needs_in_person from the disposition ---------------------------------------------------


def test_needs_in_person_follows_the_disposition(tmp_path: Path, milwaukee: CadMapping) -> None:
    def with_status(call_id: str, status: str) -> str:
        return row(call_id, "2018-05-01 08:00:00").removesuffix(",Advised") + f",{status}"

    path = write_csv(
        tmp_path,
        [
            with_status("1", "Referral"),
            with_status("2", "PATROL REQUEST"),
            with_status("3", "Advised"),
            with_status("4", "Advised/Referral"),
            with_status("5", ""),
        ],
    )
    result = import_rows(path, milwaukee)
    needs = {e.call_id: e.needs_in_person for e in result.events}
    assert needs == {"1": False, "2": False, "3": True, "4": True, "5": True}
    assert (result.in_person_column, result.no_dispatch) == ("status", 2)
    assert "closed without dispatch (column 'status'): 2 calls" in result.summary()
    data = result.to_dict()
    assert (data["needs_in_person_from"], data["closed_without_dispatch"]) == ("status", 2)


def test_without_in_person_the_import_says_it_cannot_tell(tmp_path: Path) -> None:
    text = (MAPPINGS / "milwaukee-2018.toml").read_text(encoding="utf-8")
    text = text[: text.index("[in_person]")] + text[text.index("# Category names") :]
    for name in ("milwaukee-demo-policy.toml", "milwaukee-demo-roster.toml"):
        (tmp_path / name).write_text((MAPPINGS / name).read_text(encoding="utf-8"))
    (tmp_path / "blind.toml").write_text(text, encoding="utf-8")
    blind = load_mapping(tmp_path / "blind.toml")
    path = write_csv(tmp_path, [row("1", "2018-05-01 08:00:00").replace("Advised", "Referral")])
    result = import_rows(path, blind)
    assert [e.needs_in_person for e in result.events] == [True]
    assert result.in_person_column is None and result.no_dispatch == 0
    assert "does not say which calls were closed without sending anyone" in result.summary()
    assert result.to_dict()["closed_without_dispatch"] is None


def test_the_real_exports_closed_without_dispatch(
    milwaukee_import: ImportResult, sanjose_import: ImportResult
) -> None:
    # Measured, and written into the mappings' comments: Patrol Request 12 + Referral 11;
    # NR 20 + ADV 32.
    assert milwaukee_import.no_dispatch == 23
    assert sum(not e.needs_in_person for e in milwaukee_import.events) == 23
    assert sanjose_import.no_dispatch == 52


def test_empty_file_is_refused(tmp_path: Path, milwaukee: CadMapping) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(MappingError, match="empty file, no header"):
        import_rows(path, milwaukee)


def test_progress_is_reported(tmp_path: Path, milwaukee: CadMapping) -> None:
    lines = [row(str(n), "2018-05-01 08:00:00") for n in range(4_100)]
    path = write_csv(tmp_path, lines)
    calls: list[tuple[int, int, int]] = []
    import_rows(path, milwaukee, progress=lambda *args: calls.append(args))
    size = path.stat().st_size
    assert [c[0] for c in calls] == [2_000, 4_000, 4_100]
    assert calls[-1] == (4_100, size, size)
    assert all(0 < c[1] <= size for c in calls)


# --- daylight saving ----------------------------------------------------------------------


def test_dst_ambiguous_and_missing_times_are_placed_and_counted(
    tmp_path: Path, milwaukee: CadMapping
) -> None:
    path = write_csv(
        tmp_path,
        [
            row("fall", "2018-11-04 01:30:00"),  # happens twice: CDT, then CST
            row("spring", "2018-03-11 02:30:00"),  # never happens
            row("plain", "2018-03-11 03:30:00"),
        ],
    )
    result = import_rows(path, milwaukee)
    by_id = {e.call_id: e for e in result.events}
    assert by_id["fall"].occurred_at.isoformat() == "2018-11-04T01:30:00-05:00"
    assert by_id["spring"].occurred_at.isoformat() == "2018-03-11T03:30:00-05:00"
    assert by_id["spring"].occurred_at == by_id["plain"].occurred_at
    assert result.adjustments == Counter({"ambiguous_time": 1, "nonexistent_time": 1})
    assert result.examples["ambiguous_time"][0].detail == "local time 2018-11-04 01:30:00"


def test_localise_is_deterministic_around_both_changes(milwaukee: CadMapping) -> None:
    zone = milwaukee.zone
    start = datetime(2018, 3, 11, 1, 0)
    for minutes in range(0, 180, 10):
        naive = start + timedelta(minutes=minutes)
        first, _ = localise(naive, zone)
        again, _ = localise(naive, zone)
        assert first == again and first.utcoffset() == again.utcoffset()
    assert localise(datetime(2018, 7, 1, 12), zone) == (
        datetime(2018, 7, 1, 12, tzinfo=zone),
        None,
    )


def test_import_is_fast_enough(milwaukee_import: ImportResult) -> None:
    # Loose on purpose (CI machines vary): tens of thousands of rows in seconds.
    assert milwaukee_import.rows_per_second > 5_000
