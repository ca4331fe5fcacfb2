"""The ccd stage as real worker processes on the embedded broker, on event time."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from heart.schemas import DeadLetter, DispatchEvent
from heart.schemas.ccd import (
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    ConsultAnswered,
    ConsultRequested,
)
from heart.schemas.registry import ANY_EVENT
from heart.streams.admin import create_topics
from heart.streams.codec import decode, encode
from heart.streams.settings import HeartSettings
from heart.streams.topics import CCD_ASSESSMENTS, CCD_CONSULTS, DEADLETTER, DISPATCH_EVENTS
from tests.factories import T0
from tests.kafka import Worker, produce, read_topic

pytestmark = pytest.mark.broker
EVENT_CLOCK = {"HEART_CLOCK": "event"}
CLINICIAN = "CL-0042"
ALL_STEPS = dict.fromkeys(
    (
        "warning_signs",
        "internal_coping",
        "distraction",
        "people_for_help",
        "professionals",
        "safe_environment",
    ),
    True,
)

URGENT = {"requested_by": "dispatcher", "urgency": "urgent"}
IN_TIME = {**URGENT, "within_target": "true"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def scrape(worker: Worker) -> Samples:
    url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _labels), v in samples.items() if n == name)


async def until(worker: Worker, name: str, expected: float, **labels: str) -> Samples:
    deadline = time.monotonic() + 20
    while True:
        samples = scrape(worker)
        if value(samples, name, **labels) >= expected:
            return samples
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}{labels} never reached {expected}")
        await asyncio.sleep(0.3)


def requested(consult_id: str, at: float = 0) -> ConsultRequested:
    return ConsultRequested(
        consult_id=consult_id,
        requested_by="dispatcher",
        call_id=f"C-{consult_id}",
        urgency="urgent",
        occurred_at=minutes(at),
    )


def answered(consult_id: str, at: float) -> ConsultAnswered:
    return ConsultAnswered(consult_id=consult_id, clinician_id=CLINICIAN, occurred_at=minutes(at))


def overdue_records(records: list[ConsumerRecord]) -> list[Any]:
    events = [decode(ANY_EVENT, r.value) for r in records]
    return [e for e in events if e.event_type == "consult.overdue"]


@pytest.fixture
async def scoped(settings: HeartSettings, unique: str) -> HeartSettings:
    scoped = settings.model_copy(update={"topic_prefix": f"ccd{unique}."})
    await create_topics(scoped)
    return scoped


async def test_bad_input_is_dead_lettered_and_the_clinicians_work_counted(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    worker = Worker("ccd", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await worker.wait_ready()
        engaged = CcdEngaged(call_id="C-1", clinician_id=CLINICIAN, occurred_at=T0)
        incomplete = CcdScreened(
            call_id="C-1",
            clinician_id=CLINICIAN,
            occurred_at=minutes(1),
            answers={"q1": True, "q2": True, "q6": False},  # q3-q5 follow a yes to q2
        )
        scored = incomplete.model_copy(
            update={
                "event_id": "screen-2",
                "answers": incomplete.answers.model_copy(
                    update={"q3": True, "q4": False, "q5": False}
                ),
            }
        )
        common = {"call_id": "C-1", "clinician_id": CLINICIAN, "occurred_at": minutes(2)}
        narrative = orjson.loads(encode(engaged)) | {"event_id": "n-1", "notes": "a story"}
        await produce(
            scoped,
            CCD_ASSESSMENTS,
            [
                ("C-1", engaged),
                ("C-1", engaged),  # redelivered: one engaged call
                ("C-1", incomplete),
                ("C-1", scored),
                ("C-1", CcdReferral(**common, resource="tarot", warm_handoff=True)),
                ("C-1", CcdReferral(**common, resource="988", warm_handoff=True)),
                ("C-1", CcdSafetyPlan(**common, steps=ALL_STEPS)),
                ("C-1", CcdDisposition(**common, disposition="dispatch_crt")),
                ("C-1", orjson.dumps(narrative)),  # no narrative ever on the topic
                ("C-2", b"{not json"),
            ],
        )
        # Responders report on scene 7 minutes after the clinician joined: dispatch.events
        # is keyed by team, so the report reaches the call's partition through the stage.
        on_scene = DispatchEvent(
            event_type="dispatch.on_scene",
            occurred_at=minutes(7),
            call_id="C-1",
            route="crt",
            team_id="CRT-1",
        )
        assigned = on_scene.model_copy(
            update={"event_type": "dispatch.assigned", "occurred_at": minutes(3), "event_id": "a"}
        )
        await produce(scoped, DISPATCH_EVENTS, [("CRT-1", assigned), ("CRT-1", on_scene)])
        await produce(
            scoped,
            CCD_CONSULTS,
            [
                ("Q-1", requested("Q-1")),
                ("Q-1", answered("Q-1", 1)),
                ("Q-1", answered("Q-1", 1.5)),  # a second, different answer
                ("Q-9", answered("Q-9", 1)),  # never requested
            ],
        )

        dead = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 6, settle=1.5)
        letters = [DeadLetter.from_headers(r.headers) for r in dead]
        assert Counter(letter.reason for letter in letters) == Counter(
            {
                "screening_incomplete": 1,
                "unknown_referral_resource": 1,
                "invalid_event": 1,
                "invalid_json": 1,
                "consult_answered_twice": 1,
                "unknown_consult": 1,
            }
        )
        assert {letter.stage for letter in letters} == {"ccd"}
        detail = {letter.reason: letter.error_message for letter in letters}
        assert "q3, q4, q5 must be answered" in detail["screening_incomplete"]
        assert "resource:" in detail["unknown_referral_resource"]
        assert "988" in detail["unknown_referral_resource"]
        assert "tarot" not in detail["unknown_referral_resource"]
        assert "already answered" in detail["consult_answered_twice"]

        samples = await until(worker, "heart_ccd_on_line_seconds_count", 1)
        samples = await until(worker, "heart_ccd_consults_answered_total", 1, **IN_TIME)
    finally:
        worker.kill(signal.SIGTERM)

    assert value(samples, "heart_ccd_on_line_seconds_sum") == 7 * 60
    assert value(samples, "heart_ccd_calls_engaged_total") == 1
    # Refused events change nothing: one screening, one referral, one answer counted.
    assert total(samples, "heart_ccd_screenings_total") == 1
    assert value(samples, "heart_ccd_screenings_total", risk_level="moderate") == 1
    assert total(samples, "heart_ccd_referrals_total") == 1
    assert value(samples, "heart_ccd_referrals_total", resource="988", warm_handoff="true") == 1
    assert value(samples, "heart_ccd_safety_plans_total", steps_completed="6") == 1
    assert value(samples, "heart_ccd_dispositions_total", disposition="dispatch_crt") == 1
    assert value(samples, "heart_ccd_consults_requested_total", **URGENT) == 1
    assert total(samples, "heart_ccd_consults_answered_total") == 1
    assert value(samples, "heart_ccd_consult_wait_seconds_sum", urgency="urgent") == 60
    assert value(samples, "heart_duplicates_total", stage="ccd", topic="ccd.assessments") == 1
    assert value(samples, "heart_ccd_consults_waiting", urgency="urgent") == 0


async def test_a_consult_is_reported_overdue_once_after_a_sigkill(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    first = Worker("ccd", scoped, tmp_path, **EVENT_CLOCK).start()
    await first.wait_ready()
    # Q-LATE waits unanswered; Q-OK is answered within its 2-minute target.
    await produce(
        scoped,
        CCD_CONSULTS,
        [
            ("Q-LATE", requested("Q-LATE")),
            ("Q-OK", requested("Q-OK")),
            ("Q-OK", answered("Q-OK", 1)),
        ],
    )
    await until(first, "heart_ccd_consults_answered_total", 1, **IN_TIME)
    # The worker holding both consults dies before either target has passed.
    first.kill(signal.SIGKILL)

    second = Worker("ccd", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await second.wait_ready()
        # Event time moves on past the target: any event of the stage's inputs will do.
        pulse = CcdEngaged(call_id="PULSE", clinician_id=CLINICIAN, occurred_at=minutes(3))
        await produce(scoped, CCD_ASSESSMENTS, [("PULSE", pulse)])
        consults = await read_topic(
            scoped, CCD_CONSULTS, until=lambda r: len(overdue_records(r)) >= 1, settle=3.0
        )
        samples = scrape(second)
    finally:
        second.kill(signal.SIGTERM)
    [notice] = overdue_records(consults)
    assert notice.consult_id == "Q-LATE"
    assert notice.due_at == minutes(2) and notice.requested_at == T0
    assert value(samples, "heart_ccd_consults_overdue_total", **URGENT) == 1
    assert value(samples, "heart_ccd_consults_waiting", urgency="urgent") == 1
    dead = await read_topic(scoped, DEADLETTER, until=lambda r: True, settle=0.5)
    assert dead == [], "its own consult.overdue is read back without a dead letter"
