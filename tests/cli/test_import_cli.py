"""``heart import``: both real exports whole to JSON lines, out-of-order input, bad mappings,
``--to-topic`` on the real broker, and the import benchmark's quick mode."""

from __future__ import annotations

import asyncio
import io
import itertools
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from heart.cad.importer import stable_event_id
from heart.cli.import_calls import run_import
from heart.cli.progress import ProgressBar
from heart.schemas.calls import CallReceived
from heart.streams.codec import decode
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS
from tests.cad import shared_file
from tests.kafka import read_topic

REPO = Path(__file__).resolve().parents[2]
HEADER = "id,time,location,latitude,longitude,district,nature,status"


def import_to(
    file: Path, mapping: str | Path, out: Path | str, **kw: object
) -> tuple[int, str, bytes]:
    stdout, stderr = io.BytesIO(), io.StringIO()
    status = run_import(HeartSettings(), file, mapping, out=out, stdout=stdout, stderr=stderr, **kw)
    return status, stderr.getvalue(), stdout.getvalue()


def calls_in(lines: bytes) -> list[CallReceived]:
    return [decode(CallReceived, line) for line in lines.splitlines()]


def assert_time_ordered(calls: list[CallReceived]) -> None:
    assert all(a.occurred_at <= b.occurred_at for a, b in itertools.pairwise(calls))


# --- the real exports, whole --------------------------------------------------------------


def test_milwaukee_whole_file_to_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "milwaukee.jsonl"
    status, err, _ = import_to(shared_file("milwaukee-2018-05-calls.csv"), "milwaukee-2018", out)
    assert status == 0, err
    calls = calls_in(out.read_bytes())
    assert len(calls) == 33_968
    assert "33968 rows, 33968 calls, 0 rejected" in err
    assert "wrote 33,968 call.received events" in err
    assert "TRAFFIC STOP" in err  # the largest type the mapping leaves to police is named
    assert_time_ordered(calls)
    assert calls[0].call_id == "1211376"
    assert calls[0].occurred_at.isoformat() == "2018-05-01T00:00:14-05:00"
    assert calls[0].event_id == stable_event_id("milwaukee", "1211376")
    assert len({c.event_id for c in calls}) == 33_968
    categories = Counter(c.call_type for c in calls)
    assert categories["Trespass"] == 2_173 and categories["Welfare Check"] == 919


def test_sanjose_whole_file_to_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "sanjose.jsonl"
    status, err, _ = import_to(shared_file("sanjose-2024-calls-sample.csv"), "sanjose-2024", out)
    assert status == 0, err  # rejects are reported, not fatal
    calls = calls_in(out.read_bytes())
    assert len(calls) == 4_998
    assert "5000 rows, 4998 calls, 2 rejected" in err
    # By reason, with examples that name the line and never the row's data.
    assert (
        "rejected duplicate_call_id: 2 (e.g. line 4127: call id 'P240190737' first seen on "
        "line 2787; line 4765: call id 'P240610016' first seen on line 4454)"
    ) in err
    assert_time_ordered(calls)
    assert calls[0].occurred_at.isoformat() == "2024-01-01T00:05:32-08:00"


# --- order, errors, progress --------------------------------------------------------------


def write_export(tmp_path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = [HEADER] + [
        f'{call_id},{time},"1 EXAMPLE ST,MKE",43.05,-87.95,3,{nature},Advised'
        for call_id, time, nature in rows
    ]
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_out_of_order_input_comes_out_in_time_order(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        [
            ("c", "2018-05-03 09:00:00", "WELFARE CITIZEN"),
            ("a", "2018-05-01 23:59:59", "TRAFFIC STOP"),
            ("e", "2018-05-03 09:00:00", "TRESPASSER"),  # a tie keeps file order: c, e
            ("b", "2018-05-02 00:00:00", "NOISE NUISANCE"),
            ("x", "yesterday", "TRAFFIC STOP"),
            ("d", "2018-05-01 12:00:00", "SUBJ WITH WEAPON"),
        ],
    )
    status, err, out = import_to(export, "milwaukee-2018", "-")
    assert status == 0, err
    calls = calls_in(out)
    assert [c.call_id for c in calls] == ["d", "a", "b", "c", "e"]
    assert calls[0].weapon_involved and calls[0].call_type == "SUBJ WITH WEAPON"
    assert [c.call_type for c in calls[-2:]] == ["Welfare Check", "Trespass"]
    assert "rejected bad_time: 1 (e.g. line 6: time 'yesterday' matches no format)" in err
    # stdout carries only events: everything for people is on stderr.
    assert all(orjson.loads(line)["event_type"] == "call.received" for line in out.splitlines())


def test_bad_mapping_exits_2_naming_file_field_and_problem(tmp_path: Path) -> None:
    export = write_export(tmp_path, [("a", "2018-05-01 10:00:00", "TRAFFIC STOP")])
    mapping = tmp_path / "broken.toml"
    source = (REPO / "cad/mappings/milwaukee-2018.toml").read_text()
    mapping.write_text(source.replace('formats = ["%Y-%m-%d %H:%M:%S"', 'formats = ["%Y-%m"'))
    (tmp_path / "milwaukee-demo-policy.toml").write_text(
        (REPO / "cad/mappings/milwaukee-demo-policy.toml").read_text()
    )
    status, err, out = import_to(export, mapping, "-")
    assert status == 2 and out == b""
    assert f"heart import: mapping file {mapping}: time.formats[0]: time format '%Y-%m'" in err

    # A mapping that does not describe the export: the missing column is named.
    status, err, _ = import_to(
        shared_file("sanjose-2024-calls-sample.csv"), "milwaukee-2018", tmp_path / "x.jsonl"
    )
    assert status == 2
    assert "columns.call_type: column 'nature' is not in the header" in err
    assert not (tmp_path / "x.jsonl").exists()

    status, err, _ = import_to(export, tmp_path / "absent.toml", "-")
    assert status == 2 and f"mapping file {tmp_path / 'absent.toml'}: file not found" in err


def test_unreadable_export_or_output_exits_1(tmp_path: Path) -> None:
    status, err, _ = import_to(tmp_path / "absent.csv", "milwaukee-2018", "-")
    assert status == 1 and "cannot read" in err and "absent.csv" in err
    export = write_export(tmp_path, [("a", "2018-05-01 10:00:00", "TRAFFIC STOP")])
    status, err, _ = import_to(export, "milwaukee-2018", tmp_path / "no-such-dir" / "out.jsonl")
    assert status == 1 and "cannot write" in err


def test_progress_bar_live_only_on_a_terminal(tmp_path: Path) -> None:
    export = write_export(
        tmp_path, [(str(n), "2018-05-01 10:00:00", "TRAFFIC STOP") for n in range(5_000)]
    )
    status, err, _ = import_to(export, "milwaukee-2018", tmp_path / "o.jsonl", progress=False)
    assert status == 0
    assert "\r" not in err
    assert err.startswith("import export.csv [" + "#" * 28 + "] 100% 5,000 rows")

    status, err, _ = import_to(export, "milwaukee-2018", tmp_path / "o.jsonl", progress=True)
    assert status == 0
    assert err.count("\r") >= 1 and "100% 5,000 rows" in err

    stream = io.StringIO()
    bar = ProgressBar("x", stream)
    bar.update(1, 2, 1, "rows")
    assert stream.getvalue() == "", "a StringIO is not a terminal: no redraws"


# --- to the broker ------------------------------------------------------------------------


@pytest.mark.broker
async def test_to_topic_produces_every_call_keyed_in_time_order(
    settings: HeartSettings, unique: str
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"imp{unique}."})
    stdout, stderr = io.BytesIO(), io.StringIO()
    status = await asyncio.to_thread(
        run_import,
        scoped,
        shared_file("sanjose-2024-calls-sample.csv"),
        "sanjose-2024",
        out="topic",
        stdout=stdout,
        stderr=stderr,
        progress=False,
    )
    err = stderr.getvalue()
    assert status == 0, err
    assert stdout.getvalue() == b""
    assert f"produced 4,998 call.received events to imp{unique}.cad.calls" in err
    assert "5000 rows, 4998 calls, 2 rejected" in err
    # The pipeline decides with HEART_POLICY (Durham here), not San José's demo: said so.
    assert "note: the triage stage decides with HEART_POLICY" in err

    records = await read_topic(scoped, CAD_CALLS, until=lambda r: len(r) >= 4_998, settle=1.0)
    assert len(records) == 4_998
    calls = [decode(CallReceived, r.value) for r in records]
    assert all(r.key.decode() == c.call_id for r, c in zip(records, calls, strict=True))
    assert len({c.call_id for c in calls}) == 4_998
    # Keyed by call, so each partition holds its calls in the order produced: time order.
    by_partition: dict[int, list[CallReceived]] = {}
    for record, c in zip(records, calls, strict=True):
        by_partition.setdefault(record.partition, []).append(c)
    assert len(by_partition) > 1
    for partition_calls in by_partition.values():
        assert_time_ordered(partition_calls)


def test_to_topic_without_a_broker_leaves_the_one_line_to_the_cli(tmp_path: Path) -> None:
    from heart.cli.broker_reach import is_broker_unavailable
    from heart.streams.ports import find_free_port

    export = write_export(tmp_path, [("a", "2018-05-01 10:00:00", "TRAFFIC STOP")])
    nowhere = HeartSettings(kafka_bootstrap=f"127.0.0.1:{find_free_port()}")
    # Raised, not printed: `heart` prints one line for it (exit 69, tests/cli/test_errors.py).
    with pytest.raises(Exception) as caught:
        run_import(nowhere, export, "milwaukee-2018", out="topic", stderr=io.StringIO())
    assert is_broker_unavailable(caught.value)


# --- when the rejects show the mapping does not fit -----------------------------------------


def heart(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heart.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_an_import_that_rejects_every_row_fails_with_the_reasons(tmp_path: Path) -> None:
    # A time format that matches no row: the classic wrong mapping.
    export = write_export(
        tmp_path, [(str(n), f"05/0{n + 1}/2018 10:00", "TRAFFIC STOP") for n in range(3)]
    )
    out = tmp_path / "calls.jsonl"
    done = heart("import", str(export), "--mapping", "milwaukee-2018", "--jsonl", str(out))
    assert done.returncode == 65, done.stderr
    assert "rejected bad_time: 3 (e.g. line 2: time '05/01/2018 10:00'" in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "heart import: no row became a call (3 rows, all rejected: bad_time 3); check the "
        "mapping's columns and time formats against the export (examples above)"
    )
    assert "Traceback" not in done.stderr
    assert not out.exists(), "nothing is written for an import that failed"
    # Accepting any share does not make an empty import a success.
    done = heart("import", str(export), "--mapping", "milwaukee-2018", "--max-reject-rate", "1")
    assert done.returncode == 65 and done.stdout == ""


def test_a_large_rejected_share_fails_naming_rate_reasons_and_option(tmp_path: Path) -> None:
    rows = [(f"ok{n}", "2018-05-01 10:00:00", "TRAFFIC STOP") for n in range(6)]
    rows += [(f"us{n}", f"05/01/2018 1{n}:00", "TRAFFIC STOP") for n in range(3)]
    rows += [("", "2018-05-01 11:00:00", "TRAFFIC STOP")]
    export = write_export(tmp_path, rows)
    done = heart("import", str(export), "--mapping", "milwaukee-2018", "--jsonl", "-")
    assert done.returncode == 65, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1] == (
        "heart import: 40.0% of the rows were rejected (4 of 10), more than "
        "--max-reject-rate 0.2 allows; top reasons: bad_time 3, missing_call_id 1; check "
        "the mapping's columns and time formats against the export (examples above), or "
        "pass --max-reject-rate 0.4 to accept this share"
    )
    # The share offered is enough: the same import then goes through.
    done = heart(
        "import",
        str(export),
        "--mapping",
        "milwaukee-2018",
        "--jsonl",
        "-",
        "--max-reject-rate",
        "0.4",
    )
    assert done.returncode == 0, done.stderr
    assert len(calls_in(done.stdout.encode())) == 6


def test_whatif_fails_on_an_export_the_mapping_does_not_fit(tmp_path: Path) -> None:
    export = write_export(
        tmp_path, [(str(n), f"05/0{n + 1}/2018 10:00", "TRAFFIC STOP") for n in range(3)]
    )
    out = tmp_path / "whatif-out"
    done = heart("whatif", str(export), "--mapping", "milwaukee-2018", "--out", str(out))
    assert done.returncode == 65, done.stderr
    assert done.stderr.splitlines()[-1].startswith("heart whatif: no row became a call")
    assert "Traceback" not in done.stderr
    assert not out.exists(), "no empty report"


# --- the benchmark ------------------------------------------------------------------------


def test_import_benchmark_quick_mode_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "import_replay.py"), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("import ") and line.endswith("rows/s") for line in lines)
    assert any("rows/s" in line and line.lstrip().startswith("+jsonl") for line in lines)
    assert any(line.startswith("what-if ") and "decisions/s" in line for line in lines)
