"""The reporting stage as a real worker process on the embedded broker, on event time:
a month of decisions, dispatch and follow-up events in, the month's snapshot on
``reports.monthly`` out, the same figures after a SIGKILL, and ``heart report`` files;
and the clinicians' events (``ccd.assessments``, ``ccd.consults``) in the month's Crisis
Call Diversion section."""

from __future__ import annotations

import asyncio
import io
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from heart.agents.reporting.aggregate import fact_of
from heart.cli.report import build_report_from_events, run_report
from heart.policy import load_policy
from heart.schemas import (
    DispatchEvent,
    FollowupDue,
    FollowupOutcome,
    FollowupOverdue,
    FollowupScheduled,
    TriageDecision,
)
from heart.schemas.ccd import (
    CcdDisposition,
    CcdEngaged,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    ConsultAnswered,
    ConsultClosed,
    ConsultOverdue,
    ConsultRequested,
)
from heart.schemas.reports import MonthReport
from heart.streams.admin import create_topics
from heart.streams.codec import decode
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CCD_ASSESSMENTS,
    CCD_CONSULTS,
    DISPATCH_EVENTS,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    REPORT_PARTS,
    REPORT_RECORDS,
    REPORTS_COMMANDS,
    REPORTS_MONTHLY,
    TRIAGE_DECISIONS,
    TopicSpec,
)
from tests.agents.reporting.clinicians import CLINICIAN, busy_month, closed, on_scene
from tests.agents.reporting.synthetic import PERSONAL, decision, july, local, redelivered
from tests.kafka import Worker, key_partition, produce, produce_placed, read_topic

pytestmark = pytest.mark.broker
POLICY = load_policy()
MONTHS = ("2024-06", "2024-07", "2024-08")


def route(event: Any) -> tuple[TopicSpec, str]:
    """The topic and key each producer uses for this event."""
    if isinstance(event, TriageDecision):
        return TRIAGE_DECISIONS, event.call_id
    if isinstance(event, DispatchEvent):
        return DISPATCH_EVENTS, event.team_id or event.call_id
    if isinstance(event, FollowupScheduled):
        return FOLLOWUP_TIMERS, event.case_id
    if isinstance(event, FollowupDue | FollowupOverdue):
        return FOLLOWUP_TASKS, event.case_id
    if isinstance(event, CcdEngaged | CcdScreened | CcdSafetyPlan | CcdReferral | CcdDisposition):
        return CCD_ASSESSMENTS, event.call_id
    if isinstance(event, ConsultRequested | ConsultAnswered | ConsultClosed | ConsultOverdue):
        return CCD_CONSULTS, event.consult_id
    assert isinstance(event, FollowupOutcome)
    return FOLLOWUP_OUTCOMES, event.case_id


async def publish(settings: HeartSettings, events: list[Any]) -> None:
    by_topic: dict[str, tuple[TopicSpec, list[tuple[str, Any]]]] = {}
    for event in events:
        spec, key = route(event)
        by_topic.setdefault(spec.name, (spec, []))[1].append((key, event))
    await asyncio.gather(*(produce(settings, spec, recs) for spec, recs in by_topic.values()))


def latest(records: list[ConsumerRecord]) -> dict[str, MonthReport]:
    """Each month's newest snapshot: the largest version, as ``heart report`` takes it."""
    out: dict[str, MonthReport] = {}
    for record in records:
        snapshot = decode(MonthReport, record.value)
        assert record.key == snapshot.month.encode()
        if snapshot.month not in out or snapshot.version >= out[snapshot.month].version:
            out[snapshot.month] = snapshot
    return out


def figures(snapshot: MonthReport | None) -> dict[str, Any] | None:
    return snapshot.model_dump(exclude={"version"}) if snapshot is not None else None


def expected(events: list[Any]) -> dict[str, dict[str, Any] | None]:
    return {m: figures(build_report_from_events(events, m, POLICY)) for m in MONTHS}


async def snapshots_matching(
    settings: HeartSettings, want: dict[str, dict[str, Any] | None], timeout: float = 20.0
) -> dict[str, MonthReport]:
    def done(records: list[ConsumerRecord]) -> bool:
        have = latest(records)
        return all(figures(have.get(m)) == w for m, w in want.items())

    try:
        records = await read_topic(settings, REPORTS_MONTHLY, until=done, timeout=timeout)
    except TimeoutError:
        records = await read_topic(settings, REPORTS_MONTHLY, until=lambda r: True, timeout=5)
        have = latest(records)
        for month, w in want.items():
            assert figures(have.get(month)) == w, month
        raise
    return latest(records)


@pytest.fixture
async def scoped(settings: HeartSettings, unique: str) -> HeartSettings:
    scoped = settings.model_copy(update={"topic_prefix": f"rep{unique}."})
    await create_topics(scoped)
    return scoped


async def test_month_snapshot_survives_sigkill_and_heart_report_writes_it(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    month = july()
    worker = Worker("reporting", scoped, tmp_path, HEART_CLOCK="event").start()
    try:
        await worker.wait_ready()
        # Every event once, then some again: redelivery must not change a figure.
        await publish(scoped, redelivered(month))
        first = await snapshots_matching(scoped, expected(month))
        assert first["2024-07"].calls == 14
        worker.kill(signal.SIGKILL)

        # A new call after the crash: the restarted worker recovers the month from its
        # changelogs and counts on from there, without counting anything twice.
        worker = Worker("reporting", scoped, tmp_path, HEART_CLOCK="event").start()
        await worker.wait_ready()
        late = decision(
            "L1", "ccd", local(2024, 7, 20, 11), "Welfare Check",
            eligibility={"ccd": []}, pilots=["ccd", "cn"],
        )  # fmt: skip
        await publish(scoped, [late, *month[:5]])
        after = await snapshots_matching(scoped, expected([*month, late]))
    finally:
        worker.kill(signal.SIGTERM)
    july_snapshot = after["2024-07"]
    assert (july_snapshot.calls, july_snapshot.routes["ccd"]) == (15, 5)
    assert july_snapshot.version > first["2024-07"].version

    # heart report: the newest snapshot, as HTML and JSON files.
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(
        run_report, scoped, "2024-07", tmp_path / "out", out=out, err=err
    )
    assert code == 0, err.getvalue()
    html_path = tmp_path / "out" / "heart-report-2024-07.html"
    json_path = tmp_path / "out" / "heart-report-2024-07.json"
    assert f"wrote {html_path}" in out.getvalue()
    assert "calls decided 15" in out.getvalue()
    page = html_path.read_text()
    assert "Monthly pilot report: July 2024" in page
    # The worker's policy names who runs the pilots, and the snapshot carries it.
    heading = "Durham Community Safety Department · Durham, NC · HEART crisis response pilots"
    assert heading in page
    assert out.getvalue().startswith(heading + "\n")
    written = MonthReport.model_validate(orjson.loads(json_path.read_bytes()))
    assert written == july_snapshot
    for secret in PERSONAL:
        assert secret not in page and secret not in json_path.read_text(), secret

    # A month nobody reported on, and a month that is not one.
    err = io.StringIO()
    code = await asyncio.to_thread(run_report, scoped, "2023-01", tmp_path, err=err)
    assert code == 1
    assert "no figures for 2023-01" in err.getvalue()
    err = io.StringIO()
    assert await asyncio.to_thread(run_report, scoped, "July", tmp_path, err=err) == 2
    assert "--month" in err.getvalue()
    assert not (tmp_path / "heart-report-2023-01.html").exists()


def last_values(records: list[ConsumerRecord]) -> dict[bytes, Any]:
    """A changelog compacted by hand: each key's last value (None when deleted)."""
    return {r.key: (orjson.loads(r.value) if r.value is not None else None) for r in records}


async def test_idle_records_are_forgotten_and_their_months_keep_every_figure(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    # 3.6 s of wall time: retention is wall time even on the event clock, so that a
    # replay's weeks of event time never make a crash's redeliveries look forgotten.
    env = {"HEART_CLOCK": "event", "HEART_REPORTING_RECORD_RETENTION_H": "0.001"}
    month = july()
    september = decision(
        "S1", "ccd", local(2024, 9, 3, 10), "Welfare Check",
        eligibility={"ccd": []}, pilots=["ccd", "cn"],
    )  # fmt: skip
    events = [*month, september]
    months = (*MONTHS, "2024-09")
    worker = Worker("reporting", scoped, tmp_path, **env).start()
    try:
        await worker.wait_ready()
        await publish(scoped, events)
        want = {m: figures(build_report_from_events(events, m, POLICY)) for m in months}
        await snapshots_matching(scoped, want)

        # Every record is forgotten, and each month holds its settled base only.
        def forgotten(records: list[ConsumerRecord]) -> bool:
            values = last_values(records)
            return len(values) >= 15 and all(v is None for v in values.values())

        await read_topic(scoped, REPORT_RECORDS.changelog, until=forgotten, timeout=45)

        def settled(records: list[ConsumerRecord]) -> bool:
            alive = {k for k, v in last_values(records).items() if v is not None}
            return alive == {f'"{m}|"'.encode() for m in months}

        parts = await read_topic(scoped, REPORT_PARTS.changelog, until=settled, timeout=30)
        bases = [v for v in last_values(parts).values() if v is not None]
        assert {b["month"] for b in bases} == set(months) and all("base" in b for b in bases)
        worker.kill(signal.SIGKILL)

        # Restarted, the worker rebuilds each month from its base; a late July call adds
        # to it, counted once.
        worker = Worker("reporting", scoped, tmp_path, **env).start()
        await worker.wait_ready()
        late = decision(
            "L1", "ccd", local(2024, 7, 20, 11), "Welfare Check",
            eligibility={"ccd": []}, pilots=["ccd", "cn"],
        )  # fmt: skip
        await publish(scoped, [late])
        events.append(late)
        want = {m: figures(build_report_from_events(events, m, POLICY)) for m in months}
        after = await snapshots_matching(scoped, want)
    finally:
        worker.kill(signal.SIGTERM)
    assert after["2024-07"].calls == 15


async def test_a_fact_is_applied_where_it_arrives_and_forwarded_from_elsewhere(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    # Decisions and follow-up events arrive keyed by call or case, on the partition that
    # owns the key: applied there, without a hop. Dispatch events (keyed by team) and
    # events an outside producer partitioned its own way go through reports.commands.
    # The figures are the same either way.
    month = july()
    zone = POLICY.zone
    partitions = REPORTS_COMMANDS.partitions
    owner = {id(e): key_partition(f.key, partitions) for e in month if (f := fact_of(e, zone))}
    misplaced = {id(e) for e in month if isinstance(e, FollowupOutcome | FollowupScheduled)}
    assert misplaced and owner.keys() & misplaced
    placed: list[tuple[TopicSpec, str, int, Any]] = []
    for event in month:
        spec, key = route(event)
        partition = key_partition(key, spec.partitions)
        if id(event) in misplaced:
            partition = (partition + 1) % spec.partitions
        placed.append((spec, key, partition, event))
    forwarded = sum(1 for _, _, p, e in placed if id(e) in owner and owner[id(e)] != p)
    in_place = sum(1 for _, _, p, e in placed if id(e) in owner and owner[id(e)] == p)
    assert forwarded and in_place

    worker = Worker("reporting", scoped, tmp_path, HEART_CLOCK="event").start()
    try:
        await worker.wait_ready()
        await produce_placed(scoped, placed)
        await snapshots_matching(scoped, expected(month))
    finally:
        worker.kill(signal.SIGTERM)

    commands = await read_topic(scoped, REPORTS_COMMANDS, until=lambda r: True, settle=2.0)
    facts = [c for c in commands if c.value and orjson.loads(c.value)["kind"] == "fact"]
    assert len(facts) == forwarded


async def test_the_clinicians_work_reaches_the_months_crisis_call_diversion_section(
    scoped: HeartSettings, tmp_path: Path
) -> None:
    # Three calls a clinician worked (two overridden, one timed on the line), two
    # consults, and a police arrival on a call no clinician joined, through the real
    # broker: decisions, clinicians' events, consults and dispatch on their own topics.
    events = [
        *busy_month(),
        closed("K1", local(2024, 7, 10, 9, 20)),
        on_scene("P1", local(2024, 7, 10, 9, 30), "police"),
    ]
    want = build_report_from_events(events, "2024-07", POLICY)
    worker = Worker("reporting", scoped, tmp_path, HEART_CLOCK="event").start()
    try:
        await worker.wait_ready()
        await publish(scoped, events)
        got = await snapshots_matching(scoped, {"2024-07": figures(want)})
    finally:
        worker.kill(signal.SIGTERM)
    work = got["2024-07"].ccd_work
    assert work == want.ccd_work
    assert work.clinician_events and work.calls_engaged == 3
    assert work.screenings and work.screenings.by_risk_level["high"] == 1
    assert work.dispositions and work.dispositions.by_value["resolved_by_phone"] == 2
    assert work.overrides and [
        (d.rules_route, d.route, d.calls) for d in work.overrides.by_direction
    ] == [("ccd", "crt", 1), ("crt", "ccd", 1)]
    assert work.consults and [
        (r.requested_by, r.requested, r.answered_within_target)
        for r in work.consults.by_requester
        if r.requested
    ] == [("dispatcher", 1, 1), ("crt", 1, 0)]
    # A: engaged at 09:00, the CRT team on scene at 09:12.
    assert work.time_on_line and work.time_on_line.model_dump() == {
        "calls": 1,
        "median_s": 720.0,
        "p90_s": 720.0,
    }
    raw = got["2024-07"].model_dump_json()
    assert CLINICIAN not in raw and "SECRET" not in raw
