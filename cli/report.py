"""``heart report --month YYYY-MM [--out DIR]``: the month's page and figures, from the
latest snapshot the reporting stage published on ``reports.monthly``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from heart.agents.reporting.aggregate import ReportInput, apply, is_month, new_state, report
from heart.agents.reporting.render import render_html, render_json
from heart.agents.reporting.wording import (
    capitalised,
    ccd_figures,
    followup_reconciliation,
    heading,
    partial_label,
    parts_sum,
    report_title,
)
from heart.policy import Policy
from heart.schemas.reports import MonthReport
from heart.streams import embedded
from heart.streams.codec import DecodeError, decode
from heart.streams.settings import HeartSettings
from heart.streams.topics import REPORTS_MONTHLY

log = logging.getLogger(__name__)

#: Records read back from the end of the month's partition per round; doubled (x8) until
#: the month's snapshot turns up. Kafka compacts the topic; the embedded broker does not,
#: so reading only the tail keeps the command fast after a long ``heart up``.
FIRST_WINDOW = 512
READ_TIMEOUT_S = 30.0


class MonthError(ValueError):
    pass


def parse_month(text: str) -> str:
    """``text`` if it is a YYYY-MM month; otherwise a MonthError naming the flag."""
    if not is_month(text):
        raise MonthError(f"--month must be a month as YYYY-MM (e.g. 2024-07), got {text!r}")
    return text


def month_arg(text: str) -> str:
    """argparse ``type=`` for ``--month``: argparse then names the flag itself."""
    try:
        return parse_month(text)
    except MonthError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--month ")) from None


def build_report_from_events(
    events: Iterable[ReportInput], month: str, policy: Policy | None = None
) -> MonthReport:
    """The month's report straight from events (tests, and replays without a broker)."""
    state = new_state(policy)
    for event in events:
        apply(state, event)
    return report(state, parse_month(month))


async def fetch_snapshot(settings: HeartSettings, month: str) -> MonthReport | None:
    """The newest snapshot of ``month`` on ``reports.monthly``, or None when there is none."""
    topic = REPORTS_MONTHLY.full_name(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
    )
    try:
        await consumer.start()
        embedded.tune_fetch_wait(consumer, settings)
        # Listing topics never auto-creates one, unlike asking for a missing topic.
        if topic not in await consumer.topics():
            log.info("topic %s does not exist", topic)
            return None
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            return None
        key = month.encode()
        # The producer's own partitioner: the month's snapshots all live in this partition.
        tp = TopicPartition(topic, DefaultPartitioner()(key, partitions, partitions))
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await embedded.end_offsets(settings, [tp], await consumer.end_offsets([tp])))[tp]
        consumer.assign([tp])
        window = FIRST_WINDOW
        stop = end
        while stop > begin:
            start = max(begin, stop - window)
            best = await _best_in(consumer, tp, start, stop, key)
            if best is not None:
                return best
            stop, window = start, window * 8
        return None
    finally:
        await consumer.stop()


async def _best_in(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, stop: int, key: bytes
) -> MonthReport | None:
    consumer.seek(tp, start)
    best: tuple[int, int, MonthReport] | None = None
    deadline = asyncio.get_running_loop().time() + READ_TIMEOUT_S
    while await consumer.position(tp) < stop:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{tp.topic}[{tp.partition}]: could not read up to offset {stop}")
        batch = await consumer.getmany(tp, timeout_ms=200)
        for record in batch.get(tp, []):
            if record.offset >= stop or record.key != key:
                continue
            try:
                snapshot = decode(MonthReport, record.value)
            except DecodeError as exc:
                log.warning("skipping unreadable snapshot at offset %d: %s", record.offset, exc)
                continue
            # The largest version is the newest; a late publish by a former owner of the
            # month cannot win.
            candidate = (snapshot.version, record.offset, snapshot)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
    return best[2] if best is not None else None


def write_report(snapshot: MonthReport, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"heart-report-{snapshot.month}"
    html_path, json_path = out_dir / f"{stem}.html", out_dir / f"{stem}.json"
    html_path.write_text(render_html(snapshot), encoding="utf-8")
    json_path.write_bytes(render_json(snapshot))
    return html_path, json_path


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def summary(snapshot: MonthReport) -> str:
    """A few lines for the terminal, in the page's terms: who, which month (partial or
    not), each pilot's eligible calls as the sum of their parts, and the clinicians' work
    (or that the month has no clinician events). The page has the rest."""
    share = f"{snapshot.phone_share:.0%}" if snapshot.phone_share is not None else "n/a"
    zone = ZoneInfo(snapshot.timezone)
    through = ""
    if snapshot.data_from is not None and snapshot.data_through is not None:
        first = snapshot.data_from.astimezone(zone)
        last = snapshot.data_through.astimezone(zone)
        through = f", data from {first:%Y-%m-%d %H:%M} through {last:%Y-%m-%d %H:%M %Z}"
    routes = ", ".join(f"{route} {n}" for route, n in snapshot.routes.items())
    by_team = snapshot.heart_handled - snapshot.resolved_by_phone
    lines = [
        heading(snapshot.organisation),
        f"{report_title(snapshot.organisation)} {snapshot.month} ({snapshot.timezone}){through}",
    ]
    partial = partial_label(snapshot)
    if partial is not None:
        lines.append(f"  {capitalised(partial)}: figures are for these days only")
    lines += [
        f"  calls decided {snapshot.calls} ({routes})",
        f"  HEART handled {snapshot.heart_handled} = {snapshot.resolved_by_phone} resolved by "
        f"phone ({share}) + {by_team} given a team",
    ]
    for p in snapshot.pilots:
        lines.append(f"  {p.pilot:<4} {parts_sum(p)}")
        if p.response_time is not None:
            rt = p.response_time
            lines.append(
                f"       on scene median {_minutes(rt.median_s)}, p90 {_minutes(rt.p90_s)} "
                f"({rt.calls} calls)"
            )
    f = snapshot.followups
    lines.append(
        f"  follow-ups scheduled {f.scheduled}: completed {f.completed}, within 48 h "
        f"{f.within_48h}, overdue {f.overdue}, at risk {f.at_risk}"
    )
    reconciliation = followup_reconciliation(snapshot)
    if reconciliation is not None:
        lines.append(f"    ({reconciliation})")
    lines.append("  Crisis Call Diversion, the clinicians' work:")
    ccd = ccd_figures(snapshot)
    if not ccd:
        lines.append(f"    {snapshot.ccd_work.note}")
    lines += [f"    {label.lower()}: {text}" for label, text in ccd]
    return "\n".join(lines)


def run_report(
    settings: HeartSettings, month: str, out_dir: Path, *, out: Any = None, err: Any = None
) -> int:
    """Write ``heart-report-YYYY-MM.html`` and ``.json`` into ``out_dir``.

    0 when written, 1 when the month has no snapshot, 2 when ``month`` is malformed.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        month = parse_month(month)
    except MonthError as exc:
        print(f"heart report: {exc}", file=err)
        return 2
    try:
        snapshot = asyncio.run(fetch_snapshot(settings, month))
    except (KafkaError, OSError) as exc:
        print(
            f"heart report: cannot read {REPORTS_MONTHLY.full_name(settings.topic_prefix)} "
            f"from {settings.kafka_bootstrap}: {exc or type(exc).__name__}",
            file=err,
        )
        return 1
    if snapshot is None:
        print(
            f"heart report: no figures for {month} on "
            f"{REPORTS_MONTHLY.full_name(settings.topic_prefix)}: no decision, dispatch or "
            "follow-up event of that month has reached the reporting stage "
            "(is `heart worker reporting` running?)",
            file=err,
        )
        return 1
    html_path, json_path = write_report(snapshot, out_dir)
    print(summary(snapshot), file=out)
    print(f"wrote {html_path}", file=out)
    print(f"wrote {json_path}", file=out)
    return 0
