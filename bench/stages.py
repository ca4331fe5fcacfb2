"""The stages section: each stage alone (``heart worker STAGE``) over a pre-filled input
topic of what it reads in production, on the event clock where it keeps state for a span
of event time; its rate is compared with the floor's in ``bench.throughput``."""

from __future__ import annotations

from pathlib import Path

from bench import workload
from bench.common import Bench
from bench.harness import Proc
from bench.throughput import Keep, Spec, Subject, Subjects, every
from heart.agents.dispatch.area import CALL_MEMORY
from heart.agents.registry import STAGES
from heart.streams.topics import (
    CAD_CALLS,
    DISPATCH_CLEARED,
    DISPATCH_COMMANDS,
    DISPATCH_EVENTS,
    FOLLOWUP_TIMERS,
    NAVIGATION_COMMANDS,
    REPORT_RECORDS,
    REPORTS_COMMANDS,
    TRIAGE_DECISIONS,
)


def envs() -> dict[str, dict[str, str]]:
    """Each stage measured, with its environment."""
    out = {
        "triage": {},
        "dispatch": {
            "HEART_CLOCK": "event",
            "HEART_POLICY": str(workload.POLICY_24X7),
            "HEART_ROSTER": str(workload.ROSTER),
        },
        "navigation": {"HEART_CLOCK": "event"},
    }
    if "reporting" in STAGES:
        out["reporting"] = {"HEART_CLOCK": "event"}
    return out


def spec(bench: Bench, what: str, prefix: str, code: Path) -> Spec:
    """What a run of the stage ``what`` from the source tree ``code`` sends, where, and
    which output records time it."""
    p = prefix
    if what == "triage":
        n = bench.sizes.triage
        out = [(p + TRIAGE_DECISIONS.name, TRIAGE_DECISIONS.partitions, every)]
        return Spec(
            n=n,
            records=lambda: workload.encoded(workload.durham_calls(n)),
            source=(p + CAD_CALLS.name, CAD_CALLS.partitions),
            internal=[],
            start=out,
            end=out,
            input="call.received (simulator's Durham mix), policy durham.toml",
        )
    if what == "dispatch":
        n = bench.sizes.dispatch
        # Within the span dispatch remembers calls for: see workload.gap_within.
        gap = workload.gap_within(CALL_MEMORY * 0.9, n)
        commands = (p + DISPATCH_COMMANDS.name, DISPATCH_COMMANDS.partitions)
        return Spec(
            n=n,
            records=lambda: workload.encoded(workload.decisions(n, gap=gap)),
            source=(p + TRIAGE_DECISIONS.name, TRIAGE_DECISIONS.partitions),
            internal=[commands],
            start=[(*commands, _kind(b"decision"))],
            end=[(p + DISPATCH_EVENTS.name, DISPATCH_EVENTS.partitions, every)],
            input="triage.decision: 75% police, 10% ccd, 12% crt, 3% cor, "
            f"{gap.total_seconds():.1f} s apart (event clock; the run fits in "
            f"{CALL_MEMORY}), bench roster, no clears",
        )
    if what == "navigation":
        n = bench.sizes.navigation
        timers = (p + FOLLOWUP_TIMERS.name, FOLLOWUP_TIMERS.partitions, every)
        source = DISPATCH_CLEARED if _reads_cleared(code) else DISPATCH_EVENTS
        return Spec(
            n=n,
            records=lambda: workload.encoded(workload.cleared(n)),
            source=(p + source.name, source.partitions),
            internal=[(p + NAVIGATION_COMMANDS.name, NAVIGATION_COMMANDS.partitions)],
            # The first and last follow-up scheduled: a clearing keyed by its call is
            # handled on the partition it arrives on, without a command.
            start=[timers],
            end=[timers],
            input=f"{source.name} (crt), keyed by call, 86.4 s apart (event clock)",
        )
    if what == "reporting":
        n = bench.sizes.reporting
        commands = (p + REPORTS_COMMANDS.name, REPORTS_COMMANDS.partitions)
        written = (p + REPORT_RECORDS.changelog.name, REPORTS_COMMANDS.partitions, every)
        return Spec(
            n=n,
            records=lambda: workload.encoded(workload.decisions(n, seed=8)),
            source=(p + TRIAGE_DECISIONS.name, TRIAGE_DECISIONS.partitions),
            internal=[commands],
            # The first and last record written: a decision keyed by its call is
            # applied on the partition it arrives on, without a fact command; parts
            # leave in batches on the 2 s tick, which would add up to a tick to a run
            # of a few seconds.
            start=[written],
            end=[written],
            input="triage.decision, 86.4 s apart (event clock)",
        )
    raise ValueError(what)


def proc(bench: Bench, what: str, code: Path, prefix: str) -> Proc:
    return bench.fleet.worker(what, prefix, code=code, **envs()[what])


def subjects() -> Subjects:
    return {what: Subject(spec, proc) for what in envs()}


def _reads_cleared(code: Path) -> bool:
    """Whether the navigation stage of source tree ``code`` reads ``dispatch.cleared``
    (since 2026-11-29) rather than every event on ``dispatch.events``: a ``--baseline``
    tree from before gets its input where it reads it."""
    return '"dispatch.cleared",' in (code / "streams" / "topics.py").read_text()


def _kind(kind: bytes) -> Keep:
    needle = b'"kind":"' + kind + b'"'
    return lambda r: r.value is not None and needle in r.value
