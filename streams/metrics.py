"""Prometheus metrics. One ``heart_`` prefix, base units, ``_total`` on counters.

Labels are low-cardinality by construction: stage, topic, partition, route, pilot, reason.
Never a call id, a person, a phone number or an address.

Every family lives on the default registry (the catalog tools and tests read), but a
worker serves only its own: the families every stage has (:data:`SHARED`) and those of the
stages it runs (:data:`STAGE_FAMILIES`, noted by :func:`note_stage` when a stage's app is
built), so a stage never shows another's figures, not even as zeros.
"""

from __future__ import annotations

import logging

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics import MetricWrapperBase

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

EVENTS_CONSUMED = Counter(
    "heart_events_consumed_total", "Events consumed, per stage and topic.", ["stage", "topic"]
)
EVENTS_PRODUCED = Counter(
    "heart_events_produced_total", "Events produced, per stage and topic.", ["stage", "topic"]
)
PROCESSING_SECONDS = Histogram(
    "heart_processing_seconds",
    "Time to process one consumed event, per stage.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
DEADLETTERS = Counter(
    "heart_deadletters_total", "Messages sent to the dead-letter topic.", ["stage", "reason"]
)
DUPLICATES = Counter(
    "heart_duplicates_total",
    "Redelivered events recognised by event_id and not processed again.",
    ["stage", "topic"],
)
CONSUMER_LAG = Gauge(
    "heart_consumergroup_lag",
    "Messages between a partition's high watermark and the last record the stage "
    "processed (records waiting in its stream buffers count).",
    ["stage", "topic", "partition"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "heart_consumergroup_lag_seconds",
    "Age of the oldest unprocessed message in a partition, in seconds.",
    ["stage", "topic", "partition"],
)

CALLS = Counter(
    "heart_calls_total",
    "Calls decided, by the route of their first decision "
    "(re-decisions: heart_decisions_superseded_total).",
    ["route"],
)
PILOT_CALLS = Counter(
    "heart_pilot_calls_total",
    "Calls whose first decision lists each pilot among the pilots involved "
    "(triage.decisions: pilots).",
    ["pilot"],
)
ELIGIBLE_MISSED = Counter(
    "heart_eligible_missed_total",
    "Missed: eligible calls a pilot did not take at their first decision, by first reason "
    "(outside_hours, outside_service_area, unknown_beat, pilot_disabled).",
    ["pilot", "reason"],
)
DECISIONS_SUPERSEDED = Counter(
    "heart_decisions_superseded_total",
    "Re-decisions after a call update, by old and new route.",
    ["from_route", "to_route"],
)

CCD_OVERRIDES = Counter(
    "heart_ccd_overrides_total",
    "Clinician dispositions whose route differs from the route the rules chose, by both "
    "routes (triage.decisions: rules_route, route).",
    ["rules_route", "route"],
)


class MetricsPortError(OSError):
    """The metrics endpoint could not be bound."""


def serve(port: int = 0, host: str = "127.0.0.1", registry: CollectorRegistry | None = None) -> int:
    """Serve ``/metrics`` with prometheus-client's own exposition; return the bound port.

    Without ``registry``, this process's own families (:data:`PROCESS_REGISTRY`).
    """
    if registry is None:
        registry = PROCESS_REGISTRY
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsPortError(
            f"cannot serve metrics on {host}:{port} (HEART_METRICS_PORT; 0 picks a free "
            f"port): {exc.strerror or exc}"
        ) from exc
    bound = int(server.server_port)
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return bound


# Dispatch.
SPAN_BUCKETS = (30, 60, 120, 300, 450, 600, 900, 1200, 1800, 3600, 7200)
DECISION_TO_ASSIGNMENT_SECONDS = Histogram(
    "heart_decision_to_assignment_seconds",
    "From triage decision to a team assigned, queue wait included.",
    ["route"],
    buckets=(0.05, 0.1, 0.5, 1, 5, 30, 60, 120, 300, 600),
)
ASSIGNMENT_TO_ON_SCENE_SECONDS = Histogram(
    "heart_assignment_to_on_scene_seconds",
    "From assignment to the team on scene (the seed's pilots averaged 7.6 minutes).",
    ["route"],
    buckets=SPAN_BUCKETS,
)
TIME_ON_SCENE_SECONDS = Histogram(
    "heart_time_on_scene_seconds", "Time a team spent on scene.", ["route"], buckets=SPAN_BUCKETS
)
DISPATCH_EVENTS = Counter(
    "heart_dispatch_events_total", "Dispatch events by type and route.", ["event", "route"]
)
FALLBACKS = Counter(
    "heart_fallbacks_total", "Calls released to police by dispatch, by why.", ["route", "reason"]
)
BACKUP_REQUESTS = Counter(
    "heart_backup_requests_total", "Police backup requested by a team.", ["route"]
)
QUEUE_LENGTH = Gauge("heart_queue_length", "Calls waiting for a free team.", ["area", "kind"])
QUEUE_OLDEST_WAIT_SECONDS = Gauge(
    "heart_queue_longest_wait_seconds", "Wait of the oldest queued call.", ["area", "kind"]
)
TEAMS = Gauge("heart_teams", "Teams by kind and status.", ["area", "kind", "status"])
TEAM_UTILISATION = Gauge(
    "heart_team_utilisation_ratio",
    "Share of on-shift teams on a call.",
    ["area", "kind"],
)

# Care Navigation.
FOLLOWUPS_SCHEDULED = Counter(
    "heart_followups_scheduled_total", "Follow-ups scheduled, by contact pilot.", ["pilot"]
)
FOLLOWUPS_AT_RISK = Counter(
    "heart_followups_at_risk_total",
    "Follow-ups whose 48-hour deadline cannot be met inside staffed hours.",
    ["pilot"],
)
FOLLOWUPS_SKIPPED = Counter(
    "heart_followups_skipped_total", "Contacts not scheduled, by why.", ["reason"]
)
FOLLOWUPS_DUE = Counter("heart_followups_due_total", "Follow-up tasks released.", ["pilot"])
FOLLOWUPS_COMPLETED = Counter(
    "heart_followups_completed_total",
    "Follow-up cases closed by an outcome, by outcome (reached, connected_to_care or "
    "declined: completed; unable_to_reach once the retries run out: not) and whether "
    "within the deadline.",
    ["pilot", "outcome", "within_deadline"],
)
FOLLOWUPS_OVERDUE = Counter(
    "heart_followups_overdue_total", "Follow-ups with no outcome by the deadline.", ["pilot"]
)
FOLLOWUPS_OPEN = Gauge("heart_followups_open", "Open follow-up cases on this worker.")

# Crisis Call Diversion: the clinicians' work (the ccd stage). Labels are the events' closed
# sets (risk levels, dispositions, requesters, urgencies) and the policy's resource ids.
CCD_CALLS_ENGAGED = Counter(
    "heart_ccd_calls_engaged_total",
    "Calls a CCD clinician joined (ccd.engaged), once per call however many clinicians join.",
)
CCD_SCREENINGS = Counter(
    "heart_ccd_screenings_total",
    "C-SSRS screenings scored (ccd.screened), by the screener's risk level "
    "(none, low, moderate, high); incomplete or inconsistent ones are dead-lettered.",
    ["risk_level"],
)
CCD_SAFETY_PLANS = Counter(
    "heart_ccd_safety_plans_total",
    "Safety plans recorded (ccd.safety_plan), by how many of the six Stanley-Brown steps "
    "were completed (0 to 6; 6: all six).",
    ["steps_completed"],
)
CCD_REFERRALS = Counter(
    "heart_ccd_referrals_total",
    "Referrals (ccd.referral) to a resource of the policy's [ccd.referral_resources], by "
    "resource id and whether the clinician made a warm handoff.",
    ["resource", "warm_handoff"],
)
CCD_DISPOSITIONS = Counter(
    "heart_ccd_dispositions_total",
    "Clinician dispositions received (ccd.disposition), by disposition. Triage applies "
    "them and dead-letters one for a call it never had.",
    ["disposition"],
)
CCD_ON_LINE_SECONDS = Histogram(
    "heart_ccd_on_line_seconds",
    "Time a clinician stayed on the line of a call responders attend: from the first "
    "ccd.engaged to the first dispatch.on_scene of the call, once per call.",
    buckets=(30, 60, 120, 300, 450, 600, 900, 1200, 1800, 3600),
)
CCD_CONSULTS_REQUESTED = Counter(
    "heart_ccd_consults_requested_total",
    "Consults asked of CCD clinicians (consult.requested), by requester and urgency.",
    ["requested_by", "urgency"],
)
CCD_CONSULTS_ANSWERED = Counter(
    "heart_ccd_consults_answered_total",
    "Consults answered (consult.answered), by requester, urgency and whether within the "
    "urgency's target (policy [ccd.consult_targets]).",
    ["requested_by", "urgency", "within_target"],
)
CCD_CONSULT_WAIT_SECONDS = Histogram(
    "heart_ccd_consult_wait_seconds",
    "From consult.requested to consult.answered, by urgency.",
    ["urgency"],
    buckets=(15, 30, 60, 120, 300, 600, 900, 1800, 3600),
)
CCD_CONSULTS_OVERDUE = Counter(
    "heart_ccd_consults_overdue_total",
    "consult.overdue notices sent: consults unanswered past their urgency's target, once "
    "per consult.",
    ["requested_by", "urgency"],
)
CCD_CONSULTS_WAITING = Gauge(
    "heart_ccd_consults_waiting",
    "Consults unanswered and open on this worker's partitions, by urgency.",
    ["urgency"],
)

# Reliability.
CIRCUIT_OPEN = Gauge(
    "heart_circuit_open",
    "1 while a stage is paused: its own code failed on a valid message, which it holds.",
    ["stage"],
)
CIRCUIT_TRIPS = Counter(
    "heart_circuit_trips_total",
    "Times a stage paused on a processing failure (its circuit breaker opened).",
    ["stage"],
)
STALE_CALLS = Counter(
    "heart_stale_calls_total",
    "Calls too old to act on (policy stale_call_minutes): triage decided them stale "
    "(police), dispatch sent no team.",
    ["stage"],
)

# Reporting.
REPORT_SNAPSHOTS = Counter(
    "heart_report_snapshots_total", "Monthly report snapshots published on reports.monthly."
)
REPORT_RECORDS_FORGOTTEN = Counter(
    "heart_report_records_forgotten_total",
    "Per-call report records forgotten after the reporting retention.",
)
REPORT_PARTS_SETTLED = Counter(
    "heart_report_parts_settled_total",
    "Per-call parts of a month folded into the month's settled totals.",
)
DEADLETTER_FAILURES = Counter(
    "heart_deadletter_failures_total",
    "Records that could not even be dead-lettered (logged critically).",
    ["stage"],
)


# Who serves what. A family no stage owns here is served by none: tests/streams check that
# every family is owned.
SHARED: tuple[MetricWrapperBase, ...] = (
    EVENTS_CONSUMED,
    EVENTS_PRODUCED,
    PROCESSING_SECONDS,
    DEADLETTERS,
    DUPLICATES,
    CONSUMER_LAG,
    CONSUMER_LAG_SECONDS,
    CIRCUIT_OPEN,
    CIRCUIT_TRIPS,
    DEADLETTER_FAILURES,
)
STAGE_FAMILIES: dict[str, tuple[MetricWrapperBase, ...]] = {
    # Both count missed eligible calls: triage by coverage, dispatch for want of a team.
    "triage": (
        CALLS,
        PILOT_CALLS,
        ELIGIBLE_MISSED,
        DECISIONS_SUPERSEDED,
        STALE_CALLS,
        CCD_OVERRIDES,
    ),
    "dispatch": (
        ELIGIBLE_MISSED,
        DECISION_TO_ASSIGNMENT_SECONDS,
        ASSIGNMENT_TO_ON_SCENE_SECONDS,
        TIME_ON_SCENE_SECONDS,
        DISPATCH_EVENTS,
        FALLBACKS,
        BACKUP_REQUESTS,
        QUEUE_LENGTH,
        QUEUE_OLDEST_WAIT_SECONDS,
        TEAMS,
        TEAM_UTILISATION,
        STALE_CALLS,
    ),
    "navigation": (
        FOLLOWUPS_SCHEDULED,
        FOLLOWUPS_AT_RISK,
        FOLLOWUPS_SKIPPED,
        FOLLOWUPS_DUE,
        FOLLOWUPS_COMPLETED,
        FOLLOWUPS_OVERDUE,
        FOLLOWUPS_OPEN,
    ),
    "ccd": (
        CCD_CALLS_ENGAGED,
        CCD_SCREENINGS,
        CCD_SAFETY_PLANS,
        CCD_REFERRALS,
        CCD_DISPOSITIONS,
        CCD_ON_LINE_SECONDS,
        CCD_CONSULTS_REQUESTED,
        CCD_CONSULTS_ANSWERED,
        CCD_CONSULT_WAIT_SECONDS,
        CCD_CONSULTS_OVERDUE,
        CCD_CONSULTS_WAITING,
    ),
    "eido": (),
    "reporting": (REPORT_SNAPSHOTS, REPORT_RECORDS_FORGOTTEN, REPORT_PARTS_SETTLED),
}

#: What this process serves: the process's own resource use, :data:`SHARED`, and the
#: families of each stage :func:`note_stage` was told of.
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, *SHARED):
    PROCESS_REGISTRY.register(_collector)
_noted: set[MetricWrapperBase] = set(SHARED)


def note_stage(stage: str) -> None:
    """Serve ``stage``'s families from this process (a stage name not in
    :data:`STAGE_FAMILIES`, e.g. a test's app, adds none)."""
    for family in STAGE_FAMILIES.get(stage, ()):
        if family not in _noted:
            PROCESS_REGISTRY.register(family)
            _noted.add(family)
