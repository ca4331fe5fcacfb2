"""The Care Navigation stage as real worker processes on the embedded broker, on event time."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from heart.policy import default_policy_path
from heart.schemas import (
    DeadLetter,
    DispatchEvent,
    FollowupOutcome,
    FollowupScheduled,
    TriageClosure,
)
from heart.schemas.ccd import CcdEngaged, CcdScreened, CssrsAnswers
from heart.schemas.registry import ANY_EVENT
from heart.streams.admin import create_topics
from heart.streams.codec import decode
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CCD_ASSESSMENTS,
    DEADLETTER,
    DISPATCH_CLEARED,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    NAVIGATION_CASES,
    NAVIGATION_COMMANDS,
    TRIAGE_CLOSURES,
)
from tests.kafka import (
    Worker,
    key_partition,
    key_per_partition,
    produce,
    produce_placed,
    read_topic,
)

pytestmark = pytest.mark.broker
NY = ZoneInfo("America/New_York")
EVENT_CLOCK = {"HEART_CLOCK": "event"}


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=NY)


THURSDAY_10 = local(2024, 7, 18, 10)  # a weekday inside staffed hours
FRIDAY_10 = local(2024, 7, 19, 10)
FRIDAY_15 = local(2024, 7, 19, 15)  # 90 staffed minutes before the deadline
SATURDAY_22 = local(2024, 7, 20, 22)  # outside staffed hours


def cleared(call_id: str, at: datetime, route: str = "crt", **extra: object) -> DispatchEvent:
    extra.setdefault("event_id", f"cleared-{call_id}")
    return DispatchEvent(
        event_type="dispatch.cleared",
        occurred_at=at,
        call_id=call_id,
        route=route,
        team_id="CRT-1",
        **extra,
    )


def closure(call_id: str, at: datetime, **extra: object) -> TriageClosure:
    return TriageClosure(
        call_id=call_id,
        occurred_at=at,
        route="ccd",
        revision=1,
        decision_id=f"decision-{call_id}",
        source_event_id=f"close-{call_id}",
        **extra,
    )


def clock_pulses(at: datetime, tag: str) -> list[tuple[str, DispatchEvent]]:
    """One police-route event into every partition: no follow-up, but time moves on
    wherever a case may live."""
    return [
        (k, cleared(k, at, route="police", event_id=f"{k}-{at.isoformat()}"))
        for k in key_per_partition(f"pulse-{tag}", NAVIGATION_COMMANDS.partitions)
    ]


def events(records) -> list:
    return [decode(ANY_EVENT, r.value) for r in records]


def of(records, kind: str) -> list:
    return [e for e in events(records) if e.event_type == kind]


@pytest.fixture
async def scoped(settings: HeartSettings, unique: str) -> HeartSettings:
    scoped = settings.model_copy(update={"topic_prefix": f"nav{unique}."})
    await create_topics(scoped)
    return scoped


@pytest.fixture
async def navigator(scoped: HeartSettings, tmp_path: Path) -> AsyncIterator[Worker]:
    worker = Worker("navigation", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await worker.wait_ready()
        yield worker
    finally:
        worker.kill(signal.SIGTERM)


async def test_contacts_schedules_retries_declines_and_overdue(
    scoped: HeartSettings, navigator: Worker
) -> None:
    # Phase 1, Friday afternoon: a CCD phone contact, a weekday team contact (Thursday),
    # a Friday 15:00 one, and two that are not scheduled (declined, redelivered).
    # Triage relays the CAD's close of a phone-resolved call as a closure.
    await produce(
        scoped,
        TRIAGE_CLOSURES,
        [
            ("P-1", closure("P-1", FRIDAY_10 + timedelta(minutes=20))),
            ("P-2", closure("P-2", FRIDAY_10, followup_declined=True)),
        ],
    )
    weekday = cleared("T-1", THURSDAY_10)
    await produce(
        scoped,
        DISPATCH_CLEARED,
        [
            ("T-1", weekday),
            ("T-1", weekday),  # redelivered: still one follow-up
            ("T-4", cleared("T-4", THURSDAY_10, followup_declined=True)),
            ("T-2", cleared("T-2", FRIDAY_15)),
        ],
    )
    timers = await read_topic(scoped, FOLLOWUP_TIMERS, until=lambda r: len(r) >= 3, settle=2.0)
    scheduled = {e.case_id: e for e in events(timers)}
    assert sorted(scheduled) == ["P-1", "T-1", "T-2"], "declined and duplicates not scheduled"
    assert scheduled["P-1"].pilot == "ccd"
    assert scheduled["T-1"].at_risk is False
    assert scheduled["T-1"].deadline == THURSDAY_10 + timedelta(hours=48)
    assert scheduled["T-2"].at_risk is True
    assert scheduled["T-2"].staffed_minutes_to_deadline == pytest.approx(90)
    tasks = await read_topic(
        scoped, FOLLOWUP_TASKS, until=lambda r: len(of(r, "followup.due")) >= 3, settle=1.5
    )
    assert sorted(e.timer_id for e in of(tasks, "followup.due")) == ["P-1:1", "T-1:1", "T-2:1"]
    assert of(tasks, "followup.overdue") == []

    # Navigators: P-1 connected to care; T-1 not reached (a retry Monday 09:30); an
    # outcome for a case that does not exist goes to the dead letters.
    at = FRIDAY_15 + timedelta(minutes=30)
    await produce(
        scoped,
        FOLLOWUP_OUTCOMES,
        [
            ("T-1", FollowupOutcome(case_id="T-1", outcome="unable_to_reach", occurred_at=at)),
            (
                "P-1",
                FollowupOutcome(
                    case_id="P-1",
                    outcome="connected_to_care",
                    care_kind="outpatient",
                    occurred_at=at,
                ),
            ),
            ("Z-9", FollowupOutcome(case_id="Z-9", outcome="reached", occurred_at=at)),
        ],
    )
    # Phase 2, Saturday 22:00: a contact outside staffed hours, released Monday 08:30.
    await produce(scoped, DISPATCH_CLEARED, [("T-3", cleared("T-3", SATURDAY_22))])
    # Read by case: records of different partitions come in no set order.
    timers = await read_topic(
        scoped, FOLLOWUP_TIMERS, until=lambda r: any(rec.key == b"T-3" for rec in r)
    )
    [saturday] = [e for e in events(timers) if e.case_id == "T-3"]
    assert saturday.release_at == local(2024, 7, 22, 8, 30)

    # Phase 3, Monday 11:00: T-3 released, T-1's retry due (09:30, or 10:30 if the outcome
    # reached the stage after the Saturday contact: the two come through different
    # topics); T-1 and T-2 passed their deadlines without a closing outcome; P-1 was
    # reached in time.
    await produce(scoped, DISPATCH_CLEARED, clock_pulses(local(2024, 7, 22, 11), "mon"))
    tasks = await read_topic(
        scoped,
        FOLLOWUP_TASKS,
        until=lambda r: len(of(r, "followup.overdue")) >= 2 and len(of(r, "followup.due")) >= 5,
        settle=2.5,
    )
    due = Counter(e.timer_id for e in of(tasks, "followup.due"))
    assert due == Counter({"P-1:1": 1, "T-1:1": 1, "T-1:2": 1, "T-2:1": 1, "T-3:1": 1})
    assert sorted(e.case_id for e in of(tasks, "followup.overdue")) == ["T-1", "T-2"]
    dead = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 1, settle=0.5)
    assert [DeadLetter.from_headers(r.headers).reason for r in dead] == ["unknown_case"]


async def test_timers_due_during_an_outage_fire_once_after_sigkill(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    worker = Worker("navigation", scoped, tmp_path, **EVENT_CLOCK).start()
    await worker.wait_ready()
    contacts = [cleared(f"O-{i}", SATURDAY_22 + timedelta(minutes=i)) for i in range(30)]
    await produce(scoped, DISPATCH_CLEARED, [(c.call_id, c) for c in contacts])
    await read_topic(scoped, FOLLOWUP_TIMERS, until=lambda r: len(r) >= 30, settle=1.5)
    worker.kill(signal.SIGKILL)

    restarted = Worker("navigation", scoped, tmp_path, **EVENT_CLOCK).start()
    try:
        await restarted.wait_ready()
        await produce(scoped, DISPATCH_CLEARED, clock_pulses(local(2024, 7, 22, 9), "after"))
        tasks = await read_topic(
            scoped, FOLLOWUP_TASKS, until=lambda r: len(of(r, "followup.due")) >= 30, settle=3.0
        )
    finally:
        restarted.kill(signal.SIGTERM)
    due = Counter(e.timer_id for e in of(tasks, "followup.due"))
    assert due == Counter({f"O-{i}:1": 1 for i in range(30)})
    timers = await read_topic(scoped, FOLLOWUP_TIMERS, until=lambda r: len(r) >= 30, settle=0.5)
    assert len({e.event_id for e in events(timers)}) == 30, "no schedule was re-issued"


async def test_two_workers_split_partitions_and_fire_each_timer_once(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    workers = [Worker("navigation", scoped, tmp_path, **EVENT_CLOCK).start() for _ in range(2)]
    try:
        for w in workers:
            await w.wait_ready()
        contacts = [cleared(f"S-{i}", SATURDAY_22 + timedelta(minutes=i)) for i in range(40)]
        await produce(scoped, DISPATCH_CLEARED, [(c.call_id, c) for c in contacts])
        await read_topic(scoped, FOLLOWUP_TIMERS, until=lambda r: len(r) >= 40, settle=1.0)
        await produce(scoped, DISPATCH_CLEARED, clock_pulses(local(2024, 7, 22, 9), "two"))
        tasks = await read_topic(
            scoped, FOLLOWUP_TASKS, until=lambda r: len(of(r, "followup.due")) >= 40, settle=3.0
        )
    finally:
        for w in workers:
            w.kill(signal.SIGTERM)
    due = Counter(e.timer_id for e in of(tasks, "followup.due"))
    assert due == Counter({f"S-{i}:1": 1 for i in range(40)})
    assert all(
        isinstance(e, FollowupScheduled)
        for e in events(await read_topic(scoped, FOLLOWUP_TIMERS, until=lambda r: len(r) >= 40))
    )


async def test_a_contact_is_handled_where_it_arrives_and_forwarded_from_elsewhere(
    scoped: HeartSettings, navigator: Worker
) -> None:
    # Clearings keyed by call arrive on the partition that owns the case: handled there.
    # One an outside producer put elsewhere goes through the commands topic. A clearing
    # redelivered by the other path still schedules once.
    partitions = NAVIGATION_COMMANDS.partitions
    contacts = [cleared(f"W-{i}", SATURDAY_22 + timedelta(minutes=i)) for i in range(12)]
    placed = []
    for i, contact in enumerate(contacts):
        owner = key_partition(contact.call_id, partitions)
        elsewhere = (owner + 1) % partitions
        placed.append((DISPATCH_CLEARED, contact.call_id, elsewhere if i % 3 == 0 else owner))
        if i % 4 == 0:
            placed.append((DISPATCH_CLEARED, contact.call_id, owner if i % 3 == 0 else elsewhere))
    by_id = {c.call_id: c for c in contacts}
    forwarded = sum(1 for _, key, p in placed if p != key_partition(key, partitions))
    assert 0 < forwarded < len(placed)
    await produce_placed(scoped, [(spec, key, p, by_id[key]) for spec, key, p in placed])
    not_a_clearing = cleared("W-x", SATURDAY_22).model_copy(
        update={"event_type": "dispatch.assigned", "event_id": "assigned-W-x"}
    )
    await produce(scoped, DISPATCH_CLEARED, [("W-x", not_a_clearing)])

    timers = await read_topic(scoped, FOLLOWUP_TIMERS, until=lambda r: len(r) >= 12, settle=2.0)
    assert Counter(e.case_id for e in events(timers)) == Counter(list(by_id))
    await produce(scoped, DISPATCH_CLEARED, clock_pulses(local(2024, 7, 22, 11), "placed"))
    tasks = await read_topic(
        scoped, FOLLOWUP_TASKS, until=lambda r: len(of(r, "followup.due")) >= 12, settle=2.0
    )
    due = Counter(e.timer_id for e in of(tasks, "followup.due"))
    assert due == Counter({f"{call_id}:1": 1 for call_id in by_id})

    commands = await read_topic(scoped, NAVIGATION_COMMANDS, until=lambda r: True, settle=1.0)
    contacts_sent = [c for c in commands if c.key is not None]
    assert len(contacts_sent) == forwarded
    dead = await read_topic(scoped, DEADLETTER, until=lambda r: len(r) >= 1, settle=0.5)
    [letter] = [DeadLetter.from_headers(r.headers) for r in dead]
    assert (letter.reason, letter.source_topic) == (
        "invalid_event",
        DISPATCH_CLEARED.full_name(scoped.topic_prefix),
    )


def screened(call_id: str, at: datetime, *, high: bool = True, **answers: object) -> CcdScreened:
    """A C-SSRS screening: high (Q4 yes) or low (only Q1 yes)."""
    base = (
        {"q1": True, "q2": True, "q3": True, "q4": True, "q5": False, "q6": False}
        if high
        else {"q1": True, "q2": False, "q6": False}
    )
    return CcdScreened(
        call_id=call_id,
        occurred_at=at,
        clinician_id="clin-7",
        answers=CssrsAnswers.model_validate({**base, **answers}),
        event_id=f"screened-{call_id}",
    )


async def test_a_high_screening_shortens_the_deadline_before_or_after_the_contact(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    policy = tmp_path / "policy-high-risk-24h.toml"
    policy.write_text(
        default_policy_path().read_text(encoding="utf-8")
        + "\n[ccd]\nhigh_risk_followup_within_hours = 24\n",
        encoding="utf-8",
    )
    worker = Worker("navigation", scoped, tmp_path, HEART_POLICY=str(policy), **EVENT_CLOCK).start()
    try:
        await worker.wait_ready()
        # Before the contact: H-1 screened high, L-1 low. An incomplete screening and a
        # ccd.engaged event are the ccd stage's to judge: navigation skips them.
        incomplete = screened("H-bad", THURSDAY_10).model_copy(
            update={"answers": CssrsAnswers(q1=True, q2=True, q6=False)}
        )
        engaged = CcdEngaged(call_id="H-1", occurred_at=THURSDAY_10, clinician_id="clin-7")
        await produce(
            scoped,
            CCD_ASSESSMENTS,
            [
                ("H-1", screened("H-1", THURSDAY_10)),
                ("L-1", screened("L-1", THURSDAY_10, high=False)),
                ("H-bad", incomplete),
                ("H-1", engaged),
            ],
        )
        # The screening is kept with the call (contacts come on another topic, in no
        # set order with it): wait until the table has it.
        await read_topic(
            scoped,
            NAVIGATION_CASES.changelog,
            until=lambda r: any(b"H-1" in rec.key and b"risk_level" in rec.value for rec in r),
        )
        ended = THURSDAY_10 + timedelta(minutes=30)
        again = closure("H-1", ended + timedelta(minutes=5)).model_copy(
            update={"source_event_id": "disposition-H-1", "event_id": "closure-H-1-again"}
        )
        # The CCD closure of H-1, then another contact for it with another event id (a
        # clinician's resolved_by_phone, then the CAD's close): one follow-up.
        await produce(
            scoped,
            TRIAGE_CLOSURES,
            [
                ("H-1", closure("H-1", ended, event_id="closure-H-1")),
                ("H-1", again),
                ("L-1", closure("L-1", ended)),
                # After the contact: H-2 waits for Monday 08:30, then is screened high.
                ("H-2", closure("H-2", SATURDAY_22)),
            ],
        )
        first = await read_topic(scoped, FOLLOWUP_TIMERS, until=lambda r: len(r) >= 3, settle=1.0)
        await produce(
            scoped,
            CCD_ASSESSMENTS,
            [("H-2", screened("H-2", SATURDAY_22 + timedelta(minutes=20)))],
        )
        timers = await read_topic(scoped, FOLLOWUP_TIMERS, until=lambda r: len(r) >= 4, settle=2.0)
        dead = await read_topic(scoped, DEADLETTER, until=lambda r: True, settle=1.0)
    finally:
        worker.kill(signal.SIGTERM)
    assert sorted(e.case_id for e in events(first)) == ["H-1", "H-2", "L-1"]
    deadlines: dict[str, list[datetime]] = {}
    for e in events(timers):
        deadlines.setdefault(e.case_id, []).append(e.deadline)
    assert deadlines == {
        "H-1": [ended + timedelta(hours=24)],
        "L-1": [ended + timedelta(hours=48)],
        # Scheduled with everyone's 48 hours, then revised by the screening.
        "H-2": [SATURDAY_22 + timedelta(hours=48), SATURDAY_22 + timedelta(hours=24)],
    }
    assert dead == [], "navigation dead-letters nothing from ccd.assessments"
