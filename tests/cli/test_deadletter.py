"""``heart deadletter``: summary, show without personal data unless asked, redrive selection.

The selection and the wording are checked on records built here; reading the topic and the
commands' output on the embedded broker, with dead letters as the stages write them.
"""

from __future__ import annotations

import argparse
import asyncio
import io
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from heart.cli.deadletter import (
    Letter,
    Selection,
    moment,
    payload_view,
    plan_redrive,
    show_lines,
    summary_lines,
)
from heart.cli.main import main
from heart.schemas.deadletter import DeadLetter
from heart.streams.admin import create_topics
from heart.streams.settings import HeartSettings
from heart.streams.topics import DEADLETTER
from tests.factories import call_received

T = datetime(2026, 11, 29, 14, 5, tzinfo=UTC)
#: Personal data planted in every place a CAD might put it.
PERSONAL = ("Jordan Example", "919-555-0100", "101 City Hall Plaza", "dog named Rex", "sobbing")


def cad_call(call_id: str = "C-1", **extra: Any) -> bytes:
    data = orjson.loads(
        call_received(
            call_id=call_id, event_id=f"ev-{call_id}", safety_notes="dog named Rex"
        ).model_dump_json()
    )
    data["narrative"] = "caller sobbing, lives alone"  # a CAD field HEART does not know
    data.update(extra)
    return orjson.dumps(data)


def letter(
    offset: int,
    *,
    stage: str = "triage",
    reason: str = "invalid_event",
    at: datetime = T,
    value: bytes | None = None,
    tombstone: bool = False,
    key: bytes | None = b"C-1",
    extra_headers: list[tuple[str, bytes]] | None = None,
) -> Letter:
    meta = DeadLetter(
        occurred_at=at,
        source_topic="cad.calls",
        source_partition=2,
        source_offset=100 + offset,
        stage=stage,
        reason=reason,
        error_class="ValidationError",
        error_message="weapon_involved: Input should be a valid boolean",
    )
    headers = [("x-cad-caller", b"Jordan Example"), *meta.headers(), *(extra_headers or [])]
    record = SimpleNamespace(
        partition=0,
        offset=offset,
        key=key,
        value=None if tombstone else (cad_call() if value is None else value),
        headers=headers,
    )
    return Letter.of(record)


# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T14:00Z", datetime(2026, 11, 29, 14, 0, tzinfo=UTC)),
        ("2026-11-29T09:00-05:00", datetime(2026, 11, 29, 14, 0, tzinfo=UTC)),
        ("90m", T - timedelta(minutes=90)),
        ("2h", T - timedelta(hours=2)),
        ("3d", T - timedelta(days=3)),
    ],
)
def test_a_time_is_given_with_its_offset_or_as_a_duration_ago(
    text: str, expected: datetime
) -> None:
    assert moment(text, now=T) == expected


@pytest.mark.parametrize("text", ["2026-11-29T14:00", "yesterday", "2h ago", "-3d"])
def test_a_time_without_an_offset_is_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"e\.g\. 2026-11-29T14:00Z"):
        moment(text, now=T)


def test_a_bad_time_stops_the_command_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["deadletter", "summary", "--since", "2026-11-29 14:00"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --since: must be a time with its offset" in err and "Traceback" not in err


def test_redrive_needs_a_selection_and_a_dry_run_or_yes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deadletter", "redrive", "--dry-run"]) == 2
    assert "--stage and/or --reason" in capsys.readouterr().err
    assert main(["deadletter", "redrive", "--reason", "unknown_call"]) == 2
    assert "--dry-run first" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["deadletter", "redrive", "--reason", "x", "--dry-run", "--yes"])
    assert "not allowed with argument" in capsys.readouterr().err


# --- show: personal fields withheld -------------------------------------------------------


def test_show_withholds_every_personal_field_and_names_what_it_withheld() -> None:
    text = "\n".join(show_lines(letter(7), "heart.deadletter", show_payload=False))
    for secret in PERSONAL:
        assert secret not in text, secret
    assert "heart.deadletter[0]@7  key=C-1" in text
    assert "stage=triage  reason=invalid_event  from cad.calls[2]@107" in text
    assert "error ValidationError: weapon_involved: Input should be a valid boolean" in text
    assert 'call_id="C-1"' in text and 'call_type="Welfare Check"' in text
    assert "withheld: caller, location, narrative, safety_notes" in text
    assert "header x-cad-caller: 14 bytes" in text


def test_show_payload_prints_the_whole_message_when_asked() -> None:
    text = "\n".join(show_lines(letter(7), "heart.deadletter", show_payload=True))
    for secret in PERSONAL:
        assert secret in text, secret


@pytest.mark.parametrize(
    ("value", "view"),
    [
        (b"<call>Jordan Example</call>", "27 bytes, not JSON (withheld)"),
        (b'["Jordan Example"]', "18 bytes, JSON list (withheld)"),
        (None, "no value (a tombstone)"),
        (
            orjson.dumps({"call_id": "C-9", "call_type": "x" * 200, "caller": {"name": "J"}}),
            'call_type="' + "x" * 60 + '..."',
        ),
        (orjson.dumps({"call_id": {"name": "Jordan Example"}}), "call_id=<dict>"),
    ],
)
def test_what_show_says_of_odd_values(value: bytes | None, view: str) -> None:
    shown = payload_view(value)
    assert view in shown
    assert "Jordan Example" not in shown


# --- summary ------------------------------------------------------------------------------


def test_the_summary_counts_by_hour_stage_and_reason_and_adds_up() -> None:
    letters = [
        letter(0, at=T),
        letter(1, at=T + timedelta(minutes=50), reason="invalid_json"),
        letter(2, at=T + timedelta(minutes=55), reason="invalid_json"),
        letter(3, at=T + timedelta(hours=2), stage="dispatch", reason="unknown_team"),
    ]
    text = "\n".join(summary_lines(letters, Selection(), "heart.deadletter"))
    assert text.startswith("4 dead letters on heart.deadletter (all)")
    rows = text.split("\n\n")[1].splitlines()
    assert rows == [
        "hour (UTC)        stage     reason          count",
        "2026-11-29 14:00  triage    invalid_event       1",
        "2026-11-29 14:00  triage    invalid_json        1",
        "2026-11-29 15:00  triage    invalid_json        1",
        "2026-11-29 16:00  dispatch  unknown_team        1",
    ]
    totals = text.split("\n\n")[-1].splitlines()
    assert [line.split()[-1] for line in totals[1:]] == ["1", "1", "2", "4"]
    only = summary_lines(letters, Selection(stage="dispatch"), "heart.deadletter")
    assert only[0] == "1 dead letter on heart.deadletter (--stage dispatch)"
    assert summary_lines([], Selection(), "x") == ["no dead letters on x (all)"]


# --- redrive selection --------------------------------------------------------------------


def test_redrive_selects_by_stage_reason_and_time_and_leaves_what_it_cannot_send() -> None:
    letters = [
        letter(0, reason="unknown_call", at=T),
        letter(1, reason="unknown_call", at=T + timedelta(hours=1), value=cad_call("C-2")),
        letter(2, reason="invalid_json", at=T),
        letter(3, stage="dispatch", reason="unknown_call", at=T, value=cad_call("C-3")),
        letter(4, reason="unknown_call", at=T, tombstone=True),
        letter(
            5,
            reason="unknown_call",
            at=T,
            value=cad_call("C-5"),
            extra_headers=[("heart.dlq.value.truncated", b"true")],
        ),
        # The same message dead-lettered again after an earlier redrive: sent once.
        letter(6, reason="unknown_call", at=T + timedelta(minutes=1)),
    ]
    plan = plan_redrive(letters, Selection(stage="triage", reason="unknown_call"))
    assert [x.offset for x in plan.send] == [0, 1]
    assert plan.repeats == 1
    assert plan.refused == {"no value (a tombstone)": 1, "too large: kept truncated": 1}
    assert dict(plan.by_source) == {("cad.calls", "triage", "unknown_call"): 2}
    windowed = Selection(reason="unknown_call", since=T + timedelta(minutes=30))
    assert [x.offset for x in plan_redrive(letters, windowed).send] == [1]
    before = Selection(reason="unknown_call", until=T + timedelta(minutes=30))
    assert [x.offset for x in plan_redrive(letters, before).send] == [0, 3]


# --- on the embedded broker ---------------------------------------------------------------


@pytest.mark.broker
async def test_summary_and_show_read_the_dead_letter_topic(
    settings: HeartSettings, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"dlq{unique}."})
    await create_topics(scoped)
    records = [letter(i, reason="invalid_event" if i % 3 else "invalid_json") for i in range(30)]
    await produce_letters(scoped, records)
    monkeypatch.setenv("HEART_KAFKA_BOOTSTRAP", scoped.kafka_bootstrap)
    monkeypatch.setenv("HEART_TOPIC_PREFIX", scoped.topic_prefix)

    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert await asyncio.to_thread(main, ["deadletter", "summary"]) == 0
    summary = out.getvalue()
    assert f"30 dead letters on {DEADLETTER.full_name(scoped.topic_prefix)} (all)" in summary
    totals = [line.split() for line in summary.split("\n\n")[-1].splitlines()]
    assert totals[1:] == [
        ["triage", "invalid_event", "20"],
        ["triage", "invalid_json", "10"],
        ["all", "30"],
    ]

    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    show = ["deadletter", "show", "--reason", "invalid_json", "--limit", "3"]
    assert await asyncio.to_thread(main, show) == 0
    shown = out.getvalue()
    assert shown.count("reason=invalid_json") == 3
    assert "(the latest 3 of 10 shown" in shown
    for secret in PERSONAL:
        assert secret not in shown, secret


async def produce_letters(settings: HeartSettings, letters: list[Letter]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await producer.start()
    try:
        for x in letters:
            await producer.send(
                DEADLETTER.full_name(settings.topic_prefix),
                x.value,
                key=x.key,
                headers=list(x.headers),
            )
        await producer.flush()
    finally:
        await producer.stop()
