"""Clinicians' dispositions through real workers on the embedded broker: triage re-decides,
dispatch sends or stands down a team, and Care Navigation starts once."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from heart.schemas import (
    CallClosed,
    CallReceived,
    DeadLetter,
    DispatchEvent,
    TriageClosure,
    TriageDecision,
)
from heart.schemas.ccd import CcdDisposition, Disposition
from heart.schemas.followup import FollowupScheduled
from heart.streams.admin import create_topics
from heart.streams.codec import decode
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CAD_CALLS,
    CCD_ASSESSMENTS,
    DEADLETTER,
    DISPATCH_EVENTS,
    FOLLOWUP_TIMERS,
    TRIAGE_CLOSURES,
    TRIAGE_DECISIONS,
)
from tests.factories import T0, call_received
from tests.kafka import Worker, produce, read_topic
from tests.streams.test_metrics_values import scrape, until_value, value

pytestmark = pytest.mark.broker
EVENT_CLOCK = {"HEART_CLOCK": "event"}
MINUTE = timedelta(minutes=1)


def disposition(call_id: str, what: Disposition, at: timedelta) -> CcdDisposition:
    return CcdDisposition(
        call_id=call_id,
        clinician_id="CL-101",
        disposition=what,
        occurred_at=T0 + at,
        event_id=f"disp-{call_id}",
    )


def phone_call(call_id: str) -> CallReceived:
    return call_received(call_id=call_id, call_type="Mental Health Crisis", needs_in_person=False)


async def _scoped(settings: HeartSettings, prefix: str) -> HeartSettings:
    scoped = settings.model_copy(update={"topic_prefix": prefix})
    await create_topics(scoped)
    return scoped


def _decisions(records: list[ConsumerRecord]) -> dict[str, list[TriageDecision]]:
    out: dict[str, list[TriageDecision]] = {}
    for r in records:
        d = decode(TriageDecision, r.value)
        out.setdefault(d.call_id, []).append(d)
    return out


async def test_dispositions_send_and_stand_down_teams_and_count_overrides(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    scoped = await _scoped(settings, f"dsp{unique}.")
    triage = Worker("triage", scoped, tmp_path, **EVENT_CLOCK).start()
    dispatch = Worker("dispatch", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await triage.wait_ready()
        await dispatch.wait_ready()
        # P-1 is a phone call (ccd); T-1 needs a team (crt); O-1 is a phone call too.
        calls = [phone_call("P-1"), call_received(call_id="T-1"), phone_call("O-1")]
        await produce(scoped, CAD_CALLS, [(c.call_id, c) for c in calls])
        await read_topic(
            scoped, DISPATCH_EVENTS, until=lambda r: _types(r, "T-1") == ["dispatch.assigned"]
        )
        # The clinician hears that P-1 needs a team, and resolves T-1 by phone.
        await produce(
            scoped,
            CCD_ASSESSMENTS,
            [
                ("P-1", disposition("P-1", "dispatch_crt", 3 * MINUTE)),
                ("T-1", disposition("T-1", "resolved_by_phone", 4 * MINUTE)),
            ],
        )
        events = await read_topic(
            scoped,
            DISPATCH_EVENTS,
            until=lambda r: (
                "dispatch.assigned" in _types(r, "P-1") and "dispatch.cancelled" in _types(r, "T-1")
            ),
        )
        cancelled = [
            e
            for e in map(_event, events)
            if e.call_id == "T-1" and e.event_type != "dispatch.assigned"
        ]
        assert [(e.event_type, e.reason) for e in cancelled] == [
            ("dispatch.cancelled", "superseded:ccd")
        ]
        # O-1: a team asked for at 17:30, after CRT's hours: police, and a miss.
        await produce(
            scoped, CCD_ASSESSMENTS, [("O-1", disposition("O-1", "dispatch_crt", 450 * MINUTE))]
        )
        records = await read_topic(
            scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 6, settle=1.0
        )
        by_call = _decisions(records)
        routes = {
            c: [(d.revision, d.route, d.rules_route) for d in ds] for c, ds in by_call.items()
        }
        assert routes == {
            "P-1": [(1, "ccd", None), (2, "crt", "ccd")],
            "T-1": [(1, "crt", None), (2, "ccd", "crt")],
            "O-1": [(1, "ccd", None), (2, "police", "ccd")],
        }
        assert "crt_ineligible:outside_hours" in by_call["O-1"][1].reasons
        samples = await until_value(
            triage, "heart_eligible_missed_total", 1, pilot="crt", reason="outside_hours"
        )
        overrides = "heart_ccd_overrides_total"
        assert value(samples, overrides, rules_route="ccd", route="crt") == 1
        assert value(samples, overrides, rules_route="crt", route="ccd") == 1
        assert value(samples, overrides, rules_route="ccd", route="police") == 1
        assert (
            value(samples, "heart_eligible_missed_total", pilot="crt", reason="outside_hours") == 1
        )
        # T-1 ended as a CCD contact when the clinician resolved it: one closure.
        closures = await read_topic(scoped, TRIAGE_CLOSURES, until=lambda r: len(r) >= 1)
        assert [decode(TriageClosure, r.value).call_id for r in closures] == ["T-1"]
        assert scrape(dispatch)  # the dispatch worker still serves its metrics
    finally:
        triage.kill(signal.SIGTERM)
        dispatch.kill(signal.SIGTERM)


async def test_follow_up_starts_once_and_early_dispositions_wait_for_their_call(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    scoped = await _scoped(settings, f"dfu{unique}.")
    hold = {"HEART_CCD_DISPOSITION_HOLD_S": "60"}
    triage = Worker("triage", scoped, tmp_path, **EVENT_CLOCK, **hold).start()
    navigation = Worker("navigation", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await triage.wait_ready()
        await navigation.wait_ready()
        # H-1's disposition overtakes its call; G-0's call never comes.
        await produce(
            scoped,
            CCD_ASSESSMENTS,
            [
                ("H-1", disposition("H-1", "dispatch_crt", 1 * MINUTE)),
                ("G-0", disposition("G-0", "resolved_by_phone", 1 * MINUTE)),
            ],
        )
        await produce(scoped, CAD_CALLS, [("H-1", phone_call("H-1"))])
        await read_topic(
            scoped,
            TRIAGE_DECISIONS,
            until=lambda r: [d.route for d in _decisions(r).get("H-1", [])] == ["ccd", "crt"],
        )
        # F-1: resolved by phone, then closed by the CAD. F-2: closed, then resolved.
        f1, f2 = phone_call("F-1"), phone_call("F-2")
        close = {
            c: CallClosed(call_id=c, occurred_at=T0 + 9 * MINUTE, event_id=f"close-{c}")
            for c in ("F-1", "F-2")
        }
        await produce(scoped, CAD_CALLS, [("F-1", f1), ("F-2", f2)])
        await produce(
            scoped, CCD_ASSESSMENTS, [("F-1", disposition("F-1", "resolved_by_phone", 5 * MINUTE))]
        )
        await read_topic(scoped, TRIAGE_CLOSURES, until=lambda r: len(r) >= 1)
        await produce(scoped, CAD_CALLS, [(c, e) for c, e in close.items()])
        await read_topic(scoped, TRIAGE_CLOSURES, until=lambda r: len(r) >= 2)
        await produce(
            scoped, CCD_ASSESSMENTS, [("F-2", disposition("F-2", "resolved_by_phone", 12 * MINUTE))]
        )
        # Event time is now past G-0's hold: its disposition is dead-lettered.
        dead = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 1, timeout=40)
        letters = [DeadLetter.from_headers(r.headers) for r in dead]
        assert [(x.stage, x.reason) for x in letters] == [("triage", "unknown_call")]
        assert dead[0].key == b"G-0"
        timers = await read_topic(
            scoped,
            FOLLOWUP_TIMERS,
            until=lambda r: (
                {decode(FollowupScheduled, x.value).case_id for x in r} >= {"F-1", "F-2"}
            ),
            settle=2.0,
        )
        scheduled = Counter(decode(FollowupScheduled, r.value).case_id for r in timers)
        assert scheduled == {"F-1": 1, "F-2": 1}
        closures = await read_topic(scoped, TRIAGE_CLOSURES, until=lambda r: len(r) >= 2)
        assert Counter(decode(TriageClosure, r.value).call_id for r in closures) == {
            "F-1": 1,
            "F-2": 1,
        }
    finally:
        triage.kill(signal.SIGTERM)
        navigation.kill(signal.SIGTERM)


def _event(record: ConsumerRecord) -> DispatchEvent:
    return decode(DispatchEvent, record.value)


def _types(records: list[ConsumerRecord], call_id: str) -> list[str]:
    return [e.event_type for e in map(_event, records) if e.call_id == call_id]
