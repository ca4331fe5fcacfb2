"""Metric values after a known sequence of events, scraped from real workers' /metrics."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from heart.agents.registry import STAGES
from heart.agents.triage.decide import decide
from heart.policy import load_policy
from heart.schemas import UnitStatusReport
from heart.streams import metrics
from heart.streams.admin import create_topics
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, DISPATCH_EVENTS, TRIAGE_DECISIONS, UNITS_STATUS
from tests.factories import T0, call_received
from tests.kafka import Worker, produce, read_topic

POLICY = load_policy()


def scrape(worker: Worker) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def until_value(worker: Worker, name: str, expected: float, **labels: str) -> dict:
    deadline = time.monotonic() + 20
    while True:
        samples = scrape(worker)
        if value(samples, name, **labels) >= expected or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.3)


@pytest.mark.broker
async def test_triage_and_dispatch_metrics_after_known_events(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"met{unique}."})
    await create_topics(scoped)
    # Both on event time: decisions carry the calls' times, so dispatch sees teams on shift.
    triage = Worker("triage", scoped, tmp_path, HEART_CLOCK="event").start()
    dispatch = Worker("dispatch", scoped, tmp_path, HEART_CLOCK="event").start()
    try:
        await triage.wait_ready()
        await dispatch.wait_ready()
        early = T0.replace(hour=11)  # 07:00 EDT: CRT not open yet
        calls = [
            call_received(call_id="M-1", beat="111"),  # crt
            call_received(call_id="M-2", beat="999"),  # crt type, outside the beats
            call_received(call_id="M-3", occurred_at=early),  # crt type, out of hours
            call_received(call_id="M-4", call_type="Burglary"),  # no pilot
            call_received(call_id="M-5", call_type="Trespass", weapon_involved=True),
        ]
        await produce(scoped, CAD_CALLS, [(c.call_id, c) for c in calls] + [("bad", b"{not json")])
        await until_value(triage, "heart_calls_total", 4, route="police")
        # The bad record's key may land in a partition read after the calls' ones.
        samples = await until_value(
            triage, "heart_deadletters_total", 1, stage="triage", reason="invalid_json"
        )
        assert value(samples, "heart_calls_total", route="crt") == 1
        assert value(samples, "heart_calls_total", route="police") == 4
        assert value(samples, "heart_pilot_calls_total", pilot="crt") == 1
        assert value(samples, "heart_pilot_calls_total", pilot="cn") == 1
        # Weapon is an exclusion, not a miss; the two coverage misses are counted once each.
        assert (
            value(samples, "heart_eligible_missed_total", pilot="crt", reason="outside_hours") == 1
        )
        assert (
            value(
                samples, "heart_eligible_missed_total", pilot="crt", reason="outside_service_area"
            )
            == 1
        )
        assert value(samples, "heart_deadletters_total", stage="triage", reason="invalid_json") == 1
        assert value(samples, "heart_events_consumed_total", stage="triage", topic="cad.calls") == 6
        assert (
            value(samples, "heart_events_produced_total", stage="triage", topic="triage.decisions")
            == 5
        )

        # Dispatch: M-1 is assigned to CRT-1; it goes en route, arrives 6 minutes later,
        # asks for backup and clears after 20 minutes on scene.
        await read_topic(scoped, DISPATCH_EVENTS, until=lambda r: len(r) >= 1)
        reports = [
            UnitStatusReport(team_id="CRT-1", status=s, call_id="M-1", occurred_at=T0 + m, **x)
            for s, m, x in (
                ("en_route", timedelta(minutes=1), {}),
                ("on_scene", timedelta(minutes=6), {}),
                ("on_scene", timedelta(minutes=7), {"backup_requested": True}),
                ("cleared", timedelta(minutes=26), {}),
            )
        ]
        await produce(scoped, UNITS_STATUS, [("CRT-1", r) for r in reports])
        samples = await until_value(dispatch, "heart_time_on_scene_seconds_count", 1, route="crt")
        assert (
            value(samples, "heart_dispatch_events_total", event="dispatch.assigned", route="crt")
            == 1
        )
        assert value(samples, "heart_assignment_to_on_scene_seconds_sum", route="crt") == 360
        assert value(samples, "heart_time_on_scene_seconds_sum", route="crt") == 20 * 60
        assert value(samples, "heart_backup_requests_total", route="crt") == 1
        produced = "heart_events_produced_total"
        assert value(samples, produced, stage="dispatch", topic="dispatch.cleared") == 1
        assert value(samples, "heart_queue_length", area="durham", kind="crt") == 0
        assert value(samples, "heart_teams", area="durham", kind="crt", status="available") == 4
        decisions = await read_topic(scoped, TRIAGE_DECISIONS, until=lambda r: len(r) >= 5)
        assert len(decisions) == 5
        assert decide(calls[0], POLICY).route == "crt"
    finally:
        triage.kill(signal.SIGTERM)
        dispatch.kill(signal.SIGTERM)


#: Families only one stage has: no other stage may serve them, not even as zeros.
OWN_FAMILIES = {
    "triage": {
        "heart_calls",
        "heart_pilot_calls",
        "heart_decisions_superseded",
        "heart_ccd_overrides",
    },
    "ccd": {
        "heart_ccd_calls_engaged",
        "heart_ccd_screenings",
        "heart_ccd_safety_plans",
        "heart_ccd_referrals",
        "heart_ccd_dispositions",
        "heart_ccd_on_line_seconds",
        "heart_ccd_consults_requested",
        "heart_ccd_consults_answered",
        "heart_ccd_consult_wait_seconds",
        "heart_ccd_consults_overdue",
        "heart_ccd_consults_waiting",
    },
    "dispatch": {
        "heart_dispatch_events",
        "heart_decision_to_assignment_seconds",
        "heart_assignment_to_on_scene_seconds",
        "heart_time_on_scene_seconds",
        "heart_fallbacks",
        "heart_backup_requests",
        "heart_queue_length",
        "heart_queue_longest_wait_seconds",
        "heart_teams",
        "heart_team_utilisation_ratio",
    },
    "navigation": {
        "heart_followups_scheduled",
        "heart_followups_at_risk",
        "heart_followups_skipped",
        "heart_followups_due",
        "heart_followups_completed",
        "heart_followups_overdue",
        "heart_followups_open",
    },
    "eido": set(),
    "reporting": {
        "heart_report_snapshots",
        "heart_report_records_forgotten",
        "heart_report_parts_settled",
    },
}
#: Every stage has these (RED, lag, dead letters, circuit breaker).
EVERY_STAGE = {"heart_events_consumed", "heart_processing_seconds", "heart_consumergroup_lag"}


def family_names(port: int) -> set[str]:
    url = f"http://127.0.0.1:{port}/metrics"
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    return {f.name for f in text_string_to_metric_families(body) if f.name.startswith("heart_")}


def listening_on(port: int) -> str | None:
    """The IPv4 address a socket listens on at ``port`` (Linux's /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            return socket.inet_ntoa(bytes.fromhex(address)[::-1])
    return None


def test_every_family_is_served_by_some_stage() -> None:
    families = [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]
    owned = set(metrics.SHARED).union(*metrics.STAGE_FAMILIES.values())
    assert [f._name for f in families if f not in owned] == []
    assert set(metrics.STAGE_FAMILIES) == set(STAGES)


@pytest.mark.broker
async def test_each_worker_serves_only_its_own_stages_families(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"own{unique}."})
    await create_topics(scoped)
    workers = {stage: Worker(stage, scoped, tmp_path, HEART_CLOCK="event") for stage in STAGES}
    try:
        for worker in workers.values():
            worker.start()
        for worker in workers.values():
            await worker.wait_ready()
        served = {stage: family_names(w.metrics_port) for stage, w in workers.items()}
        # Loopback only, unless HEART_METRICS_HOST says otherwise (containers do).
        bound = {stage: listening_on(w.metrics_port) for stage, w in workers.items()}
        assert set(bound.values()) == {"127.0.0.1"}, bound
    finally:
        for worker in workers.values():
            worker.kill(signal.SIGTERM)
    for stage, names in served.items():
        assert names >= EVERY_STAGE, (stage, sorted(names))
        assert OWN_FAMILIES[stage] <= names, (stage, sorted(OWN_FAMILIES[stage] - names))
        others = set().union(*(f for s, f in OWN_FAMILIES.items() if s != stage))
        assert sorted(names & others) == [], f"{stage} serves another stage's families"
    # What both count, each in its own terms: missed eligible calls.
    assert "heart_eligible_missed" in served["triage"] & served["dispatch"]
    assert "heart_eligible_missed" not in served["navigation"] | served["reporting"]
