"""The topic catalog: every topic, declared once, with its key, value model and config.

The names are the public contract CAD systems, responder apps and care-navigator apps
integrate with. ``HEART_TOPIC_PREFIX`` lets several cities or test runs share one cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from heart.schemas.ccd import CcdAssessmentEvent, ConsultEvent
from heart.schemas.commands import CcdCommand, DispatchCommand, NavigationCommand
from heart.schemas.deadletter import DeadLetter
from heart.schemas.dispatch import DispatchCleared, DispatchEvent, UnitAudit, UnitStatusReport
from heart.schemas.followup import FollowupDue, FollowupOutcome, FollowupOverdue, FollowupScheduled
from heart.schemas.registry import CadEvent
from heart.schemas.reports import MonthReport, ReportCommand
from heart.schemas.triage import TriageClosure, TriageDecision

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    value: Any
    partitions: int
    description: str
    config: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.value)

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"


def _retention(days: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS)}


CAD_CALLS = TopicSpec(
    "cad.calls",
    key="call_id",
    value=CadEvent,
    partitions=6,
    description="CAD call events: call.received, call.updated, call.closed.",
    config=_retention(30),
)
TRIAGE_DECISIONS = TopicSpec(
    "triage.decisions",
    key="call_id",
    value=TriageDecision,
    partitions=6,
    description="One triage decision per call, superseded by re-decisions.",
    config=_retention(30),
)
TRIAGE_CLOSURES = TopicSpec(
    "triage.closures",
    key="call_id",
    value=TriageClosure,
    partitions=6,
    description="A phone-resolved (ccd) call closed by the CAD: the end of a CCD contact.",
    config=_retention(30),
)
DISPATCH_EVENTS = TopicSpec(
    "dispatch.events",
    key="team_id (call_id when no team is involved)",
    value=DispatchEvent,
    partitions=6,
    description="Assignment, movement, fallback and backup events; one team's stay in order.",
    config=_retention(30),
)
DISPATCH_CLEARED = TopicSpec(
    "dispatch.cleared",
    key="call_id",
    value=DispatchCleared,
    partitions=6,
    description="Each dispatch.cleared event again, keyed by its call: the end of a team's "
    "contact, where Care Navigation keeps the call's follow-up.",
    config=_retention(30),
)
UNITS_STATUS = TopicSpec(
    "units.status",
    key="team_id",
    value=UnitStatusReport,
    partitions=6,
    description="Unit status reports from responder apps.",
    config=_retention(30),
)
UNITS_AUDIT = TopicSpec(
    "units.audit",
    key="team_id",
    value=UnitAudit,
    partitions=6,
    description="Audit trail: every change of every team's status, and its cause.",
    config=_retention(365),
)
FOLLOWUP_TIMERS = TopicSpec(
    "followup.timers",
    key="case_id",
    value=FollowupScheduled,
    partitions=6,
    description="Follow-up schedules with their 48-hour deadlines.",
    config=_retention(90),
)
FOLLOWUP_TASKS = TopicSpec(
    "followup.tasks",
    key="case_id",
    value=Annotated[FollowupDue | FollowupOverdue, Field(discriminator="event_type")],
    partitions=6,
    description="Follow-up tasks released to care navigators, and overdue notices.",
    config=_retention(90),
)
FOLLOWUP_OUTCOMES = TopicSpec(
    "followup.outcomes",
    key="case_id",
    value=FollowupOutcome,
    partitions=6,
    description="Outcomes care navigators report.",
    config=_retention(90),
)
CCD_ASSESSMENTS = TopicSpec(
    "ccd.assessments",
    key="call_id",
    value=CcdAssessmentEvent,
    partitions=6,
    description="A CCD clinician's work on a call: ccd.engaged, ccd.screened (C-SSRS), "
    "ccd.safety_plan (Stanley-Brown steps), ccd.referral, ccd.disposition. No narrative.",
    config=_retention(90),
)
CCD_CONSULTS = TopicSpec(
    "ccd.consults",
    key="consult_id",
    value=ConsultEvent,
    partitions=6,
    description="Consults asked of CCD clinicians by dispatchers and responders: "
    "consult.requested, consult.answered, consult.closed, consult.overdue.",
    config=_retention(90),
)
DEADLETTER = TopicSpec(
    "heart.deadletter",
    key="original key",
    value=DeadLetter,
    partitions=3,
    description="Messages no stage could process, unchanged, with heart.dlq.* headers.",
    config=_retention(90),
)

DISPATCH_COMMANDS = TopicSpec(
    "heart.dispatch.commands",
    key="service area",
    value=DispatchCommand,
    partitions=6,
    description="Internal: dispatch inputs re-keyed by service area.",
    config=_retention(7),
)
NAVIGATION_COMMANDS = TopicSpec(
    "heart.navigation.commands",
    key="case_id (= call_id); ticks carry no key and name their partition",
    value=NavigationCommand,
    partitions=6,
    description="Internal: contacts, outcomes and per-partition ticks for Care Navigation.",
    config=_retention(7),
)


CCD_COMMANDS = TopicSpec(
    "heart.ccd.commands",
    key="call_id or consult_id; ticks carry no key and name their partition",
    value=CcdCommand,
    partitions=6,
    description="Internal: CCD inputs re-keyed by call or consult, and per-partition ticks.",
    config=_retention(7),
)
REPORTS_MONTHLY = TopicSpec(
    "reports.monthly",
    key="month (YYYY-MM, policy time zone)",
    value=MonthReport,
    partitions=3,
    description="Monthly per-pilot figures; the newest snapshot of each month wins.",
    # Compacted: a reader wants each month's latest snapshot, not the trail to it.
    config={"cleanup.policy": "compact"},
)
REPORTS_COMMANDS = TopicSpec(
    "heart.reports.commands",
    key="call or case id (facts); month (parts); ticks carry no key and name their partition",
    value=ReportCommand,
    partitions=6,
    description="Internal: report facts by call, month parts by month, publishing ticks.",
    config=_retention(7),
)

CATALOG: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        CAD_CALLS,
        TRIAGE_DECISIONS,
        TRIAGE_CLOSURES,
        DISPATCH_EVENTS,
        DISPATCH_CLEARED,
        UNITS_STATUS,
        UNITS_AUDIT,
        FOLLOWUP_TIMERS,
        FOLLOWUP_TASKS,
        FOLLOWUP_OUTCOMES,
        CCD_ASSESSMENTS,
        CCD_CONSULTS,
        DEADLETTER,
        DISPATCH_COMMANDS,
        NAVIGATION_COMMANDS,
        CCD_COMMANDS,
        REPORTS_MONTHLY,
        REPORTS_COMMANDS,
    )
}

# NG911 intake. An EIDO is the sender's document, not one of our events: the stage reads it
# as a plain JSON object and translates it (``heart.cad.eido``); anything it cannot translate is
# dead-lettered unchanged, so the value model stays permissive on purpose.
CAD_EIDO = TopicSpec(
    "cad.eido",
    key="incident id (EIDO internalIncidentId)",
    value=dict[str, Any],
    partitions=6,
    description="NENA-STA-021 EIDO JSON from NG911 CAD systems; translated onto cad.calls.",
    config=_retention(30),
)
CATALOG[CAD_EIDO.name] = CAD_EIDO


@dataclass(frozen=True)
class TableSpec:
    """A stage's Faust table, declared here rather than in its agent alone.

    Faust writes each table to a changelog topic named ``<app id>-<table>-changelog`` and
    declares it only when the worker starts. After a broker loss the topic comes back
    through the broker's auto-creation instead (4 partitions on the embedded broker, no
    compaction), and recovery waits for partitions that do not match the table's. Declared
    here, ``heart.streams.admin.create_topics`` creates it with the catalog, and the stage makes
    its table from the same declaration (:meth:`heart.streams.stage.Stage.table`).
    """

    stage: str
    name: str
    partitions: int
    help: str

    @property
    def changelog(self) -> TopicSpec:
        # Faust's name for the changelog, with the app id of streams.app.app_id.
        return TopicSpec(
            f"heart-{self.stage}-{self.name}-changelog",
            key="the table's key",
            value=Any,
            partitions=self.partitions,
            description=f"Internal: changelog of {self.stage}'s {self.name!r} table.",
            config={"cleanup.policy": "compact"},
        )


TRIAGE_CALLS = TableSpec(
    "triage",
    "calls",
    partitions=CAD_CALLS.partitions,
    help="Open calls: last decision and recent event ids, for de-duplication.",
)
DISPATCH_AREAS = TableSpec(
    "dispatch",
    "areas",
    partitions=DISPATCH_COMMANDS.partitions,
    help=(
        "Each service area's teams, open calls and queue; beside them, keyed by area, the "
        "released and cleared calls, kept to recognise repeats."
    ),
)
NAVIGATION_CASES = TableSpec(
    "navigation",
    "cases",
    partitions=NAVIGATION_COMMANDS.partitions,
    help="One follow-up case per contact, with its timers.",
)
CCD_CALLS = TableSpec(
    "ccd",
    "calls",
    partitions=CCD_COMMANDS.partitions,
    help=(
        "Per call a clinician engaged on or responders reached: when the clinician joined, "
        "when responders arrived, and recent event ids, for de-duplication."
    ),
)
CCD_CONSULT_STATES = TableSpec(
    "ccd",
    "consults",
    partitions=CCD_COMMANDS.partitions,
    help="Each consult's state (requested, answered, closed, overdue sent) and its due time.",
)
EIDO_INCIDENTS = TableSpec(
    "eido",
    "incidents",
    partitions=CAD_EIDO.partitions,
    help="Each incident's call as last translated, to turn later EIDOs into updates.",
)
REPORT_RECORDS = TableSpec(
    "reporting",
    "report-records",
    partitions=REPORTS_COMMANDS.partitions,
    help="Per call or case: what the monthly report keeps of it.",
)
REPORT_PARTS = TableSpec(
    "reporting",
    "report-parts",
    partitions=REPORTS_COMMANDS.partitions,
    help="Per month and call: the call's contribution to the month.",
)

#: Every stage's tables; tests/streams check that the agents make exactly these.
TABLES: tuple[TableSpec, ...] = (
    TRIAGE_CALLS,
    DISPATCH_AREAS,
    NAVIGATION_CASES,
    CCD_CALLS,
    CCD_CONSULT_STATES,
    EIDO_INCIDENTS,
    REPORT_RECORDS,
    REPORT_PARTS,
)
#: Changelog topic name (without prefix) -> its spec, created alongside the catalog.
CHANGELOGS: dict[str, TopicSpec] = {t.changelog.name: t.changelog for t in TABLES}
