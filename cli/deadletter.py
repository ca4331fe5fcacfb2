"""``heart deadletter summary | show | redrive``: the dead letters, for people.

Every stage sets aside what it cannot use on ``heart.deadletter``: the record's key, value
and headers unchanged, plus ``heart.dlq.*`` headers naming the source topic, partition and
offset, the stage, the reason and when (on the stage's clock). These commands read them:

- ``summary``: how many, by stage, reason and hour (UTC), parts adding up to the total;
- ``show``: each one with its headers and what it came from. The payload's personal fields
  (the caller's name and phone, the address or location, narrative and notes, and any
  field not known to be safe) are withheld unless ``--show-payload`` is given;
- ``redrive``: sends the selected dead letters back to the topic and partition they came
  from, unchanged, after a fix. ``--dry-run`` shows what would go, ``--yes`` sends. A
  redriven message keeps its ``event_id``, so a stage that already processed it recognises
  it as a repeat: running a redrive twice is harmless. Identical messages go once per run.

Filters (all commands): ``--stage``, ``--reason``, ``--since`` and ``--until`` (when the
stage dead-lettered it).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import orjson

from heart.schemas.deadletter import HEADER_PREFIX, DeadLetter
from heart.streams.settings import HeartSettings
from heart.streams.topics import DEADLETTER

#: Marks a message redrive sent, with the dead letter it came from (kept if it fails again).
REDRIVEN_FROM = "heart.redriven_from"
#: Payload fields ``show`` prints without ``--show-payload``: ids, types, times and flags of
#: HEART's events. Anything else (caller, location, notes, a CAD's own fields) is withheld.
SAFE_FIELDS = frozenset(
    {
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "call_id",
        "call_type",
        "priority",
        "beat",
        "district",
        "language",
        "needs_in_person",
        "behavioral_health",
        "weapon_involved",
        "violence_reported",
        "disposition",
        "followup_declined",
        "team_id",
        "status",
        "backup_requested",
        "case_id",
        "outcome",
        "care_kind",
        "route",
        "revision",
        "kind",
        "area",
    }
)
#: A safe field's text longer than this is cut: a CAD may put anything in a free-text field.
SAFE_TEXT_MAX = 60
#: ``show --show-payload`` prints at most this much of one value.
PAYLOAD_MAX = 64 * 1024
DEFAULT_LIMIT = 20
READ_TIMEOUT_S = 60.0


# --- options ------------------------------------------------------------------------------

_AGO = re.compile(r"^(\d+)\s*([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def moment(text: str, now: datetime | None = None) -> datetime:
    """argparse ``type=`` for ``--since``/``--until``: a time with its offset, or a
    duration ago (``90m``, ``2h``, ``3d``)."""
    value = text.strip()
    ago = _AGO.match(value)
    if ago:
        amount, unit = ago.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or parsed.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"must be a time with its offset (e.g. 2026-11-29T14:00Z or "
            f"2026-11-29T09:00-05:00) or a duration ago (90m, 2h, 3d), not {text!r}"
        )
    return parsed.astimezone(UTC)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 for all, not {text!r}")
    return value


def add_parser(sub: Any) -> None:
    """``heart deadletter`` and its three commands, under ``heart``'s subparsers."""
    p = sub.add_parser(
        "deadletter", help="summarise, show or redrive the dead letters on heart.deadletter"
    )
    commands = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def filtered(name: str, help: str) -> argparse.ArgumentParser:
        c = commands.add_parser(name, help=help, description=help)
        c.add_argument("--stage", default=None, help="only this stage's (default: every stage)")
        c.add_argument(
            "--reason", default=None, help="only this reason, e.g. invalid_json (default: any)"
        )
        c.add_argument(
            "--since",
            type=moment,
            default=None,
            metavar="TIME",
            help="dead-lettered at or after TIME: 2026-11-29T14:00Z, or 2h ago as 2h "
            "(default: from the first)",
        )
        c.add_argument(
            "--until",
            type=moment,
            default=None,
            metavar="TIME",
            help="dead-lettered before TIME, same forms (default: up to the last)",
        )
        return c

    c = filtered("summary", "count the dead letters by stage, reason and hour (UTC)")
    c.set_defaults(func=run_summary)
    c = filtered("show", "list dead letters with their headers; personal fields withheld")
    c.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT,
        help="show the latest N of those selected; 0 shows all",
    )
    c.add_argument(
        "--show-payload",
        action="store_true",
        help="print each whole message, personal data included (caller, address, notes)",
    )
    c.set_defaults(func=run_show)
    c = filtered(
        "redrive", "send selected dead letters back to their topics (--dry-run first, then --yes)"
    )
    mode = c.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="show what would be sent; send nothing"
    )
    mode.add_argument("--yes", action="store_true", help="send them (after a --dry-run)")
    c.set_defaults(func=run_redrive)


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Letter:
    """One record of ``heart.deadletter``, where it is, and its ``heart.dlq.*`` view."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    #: None when the record lacks HEART's headers (put there by something else).
    meta: DeadLetter | None

    @classmethod
    def of(cls, record: Any) -> Letter:
        headers = tuple((k, bytes(v)) for k, v in (record.headers or ()))
        try:
            meta: DeadLetter | None = DeadLetter.from_headers(headers)
        except (KeyError, ValueError):
            meta = None
        return cls(record.partition, record.offset, record.key, record.value, headers, meta)

    @property
    def truncated(self) -> bool:
        return dict(self.headers).get(HEADER_PREFIX + "value.truncated") == b"true"

    @property
    def failed_at(self) -> datetime | None:
        return None if self.meta is None else self.meta.occurred_at.astimezone(UTC)


@dataclass(frozen=True)
class Selection:
    stage: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Selection:
        return cls(args.stage, args.reason, args.since, args.until)

    def any(self) -> bool:
        return any(v is not None for v in (self.stage, self.reason, self.since, self.until))

    def matches(self, letter: Letter) -> bool:
        meta = letter.meta
        if meta is None:
            return not self.any()
        at = meta.occurred_at
        return (
            (self.stage is None or meta.stage == self.stage)
            and (self.reason is None or meta.reason == self.reason)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
        )

    def describe(self) -> str:
        parts = [
            f"--{name} {value}"
            for name, value in (("stage", self.stage), ("reason", self.reason))
            if value
        ]
        parts += [
            f"--{name} {value.isoformat()}"
            for name, value in (("since", self.since), ("until", self.until))
            if value is not None
        ]
        return " ".join(parts) or "all"


async def read_letters(settings: HeartSettings) -> list[Letter]:
    """Every record on the dead-letter topic up to its end when the read starts."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from heart.streams import embedded

    topic = DEADLETTER.full_name(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
    )
    letters: list[Letter] = []
    try:
        await consumer.start()
        embedded.tune_fetch_wait(consumer, settings)
        if topic not in await consumer.topics():
            return []
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        begin = await consumer.beginning_offsets(tps)
        end = await embedded.end_offsets(settings, tps, await consumer.end_offsets(tps))
        wanted = [tp for tp in tps if end[tp] > begin[tp]]
        if not wanted:
            return []
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, begin[tp])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_TIMEOUT_S
        left = set(wanted)
        while left:
            if loop.time() > deadline:
                raise TimeoutError(f"{topic}: could not read to its end in {READ_TIMEOUT_S:g}s")
            batch = await consumer.getmany(*left, timeout_ms=200)
            for tp, records in batch.items():
                letters += [Letter.of(r) for r in records if r.offset < end[tp]]
            for tp in list(left):
                if await consumer.position(tp) >= end[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return letters


def _letters_count(n: int) -> str:
    return f"{n} dead letter" + ("" if n == 1 else "s")


def _ordered(letters: Iterable[Letter]) -> list[Letter]:
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(letters, key=lambda x: (x.failed_at or oldest, x.partition, x.offset))


# --- summary ------------------------------------------------------------------------------


def summary_lines(letters: Sequence[Letter], selection: Selection, topic: str) -> list[str]:
    chosen = [x for x in letters if selection.matches(x)]
    if not chosen:
        return [f"no dead letters on {topic} ({selection.describe()})"]
    labelled = [x for x in chosen if x.meta is not None]
    rows: Counter[tuple[str, str, str]] = Counter()
    for letter in labelled:
        assert letter.meta is not None and letter.failed_at is not None
        hour = letter.failed_at.strftime("%Y-%m-%d %H:00")
        rows[(hour, letter.meta.stage, letter.meta.reason)] += 1
    parts: Counter[tuple[str, str]] = Counter()
    for (_hour, stage, reason), n in rows.items():
        parts[(stage, reason)] += n
    width = max([len("reason"), *(len(reason) for _s, reason in parts)])
    stage_width = max([len("stage"), *(len(stage) for stage, _r in parts)])
    lines = [
        f"{_letters_count(len(chosen))} on {topic} ({selection.describe()})",
        "",
        f"{'hour (UTC)':<16}  {'stage':<{stage_width}}  {'reason':<{width}}  {'count':>6}",
    ]
    for (hour, stage, reason), n in sorted(rows.items()):
        lines.append(f"{hour:<16}  {stage:<{stage_width}}  {reason:<{width}}  {n:>6}")
    lines += ["", f"{'':<16}  {'stage':<{stage_width}}  {'reason':<{width}}  {'total':>6}"]
    for (stage, reason), n in sorted(parts.items()):
        lines.append(f"{'':<16}  {stage:<{stage_width}}  {reason:<{width}}  {n:>6}")
    unlabelled = len(chosen) - len(labelled)
    if unlabelled:
        lines.append(
            f"{'':<16}  {'(no heart.dlq headers)':<{stage_width + width + 2}}  {unlabelled:>6}"
        )
    lines.append(f"{'':<16}  {'all':<{stage_width + width + 2}}  {len(chosen):>6}")
    return lines


# --- show ---------------------------------------------------------------------------------


def _safe_value(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= SAFE_TEXT_MAX else value[:SAFE_TEXT_MAX] + "..."
        return orjson.dumps(text).decode()
    if value is None or isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    return f"<{type(value).__name__}>"


def payload_view(value: bytes | None) -> str:
    """What can be said of a value without personal data: its size, and for a JSON object
    its safe fields' values and the other fields' names."""
    if value is None:
        return "no value (a tombstone)"
    size = f"{len(value)} bytes"
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return f"{size}, not JSON (withheld)"
    if not isinstance(data, dict):
        return f"{size}, JSON {type(data).__name__} (withheld)"
    shown = [f"{k}={_safe_value(v)}" for k, v in data.items() if k in SAFE_FIELDS]
    withheld = sorted(str(k) for k in data if k not in SAFE_FIELDS)
    text = f"{size}, JSON object: " + (", ".join(shown) or "no safe field")
    if withheld:
        text += f"; withheld: {', '.join(withheld)}"
    return text


def show_lines(letter: Letter, topic: str, *, show_payload: bool) -> list[str]:
    key = letter.key.decode("utf-8", "replace") if letter.key is not None else "(none)"
    lines = [f"{topic}[{letter.partition}]@{letter.offset}  key={key}"]
    meta = letter.meta
    if meta is None:
        lines.append("  no heart.dlq headers: not put here by a HEART stage")
    else:
        lines.append(
            f"  {meta.occurred_at.isoformat()}  stage={meta.stage}  reason={meta.reason}  "
            f"from {meta.source_topic}[{meta.source_partition}]@{meta.source_offset}"
        )
        lines.append(f"  error {meta.error_class}: {meta.error_message}")
    for name, raw in letter.headers:
        if name.startswith(HEADER_PREFIX + "value.") or name == REDRIVEN_FROM:
            lines.append(f"  {name}: {raw.decode('utf-8', 'replace')}")
        elif not name.startswith(HEADER_PREFIX):
            # Another system's header: its value may hold anything.
            shown = raw.decode("utf-8", "replace") if show_payload else f"{len(raw)} bytes"
            lines.append(f"  header {name}: {shown}")
    if show_payload:
        if letter.value is None:
            lines.append("  value: none (a tombstone)")
        else:
            text = letter.value[:PAYLOAD_MAX].decode("utf-8", "replace")
            more = len(letter.value) - PAYLOAD_MAX
            lines.append(f"  value: {text}" + (f" [... {more} more bytes]" if more > 0 else ""))
    else:
        lines.append(f"  value: {payload_view(letter.value)}")
    return lines


# --- redrive ------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a redrive sends, and what it leaves, with why."""

    send: list[Letter]
    #: (source topic, stage, reason) -> letters to send.
    by_source: Counter[tuple[str, str, str]]
    #: why -> letters left.
    refused: Counter[str]
    #: Identical messages selected more than once (sent once).
    repeats: int


def plan_redrive(letters: Sequence[Letter], selection: Selection) -> Plan:
    send: list[Letter] = []
    by_source: Counter[tuple[str, str, str]] = Counter()
    refused: Counter[str] = Counter()
    seen: set[tuple[str, bytes | None, bytes]] = set()
    repeats = 0
    for letter in _ordered(x for x in letters if selection.matches(x)):
        meta = letter.meta
        if meta is None:
            refused["no heart.dlq headers"] += 1
            continue
        if letter.value is None:
            refused["no value (a tombstone)"] += 1
            continue
        if letter.truncated:
            refused["too large: kept truncated"] += 1
            continue
        identity = (meta.source_topic, letter.key, hashlib.sha256(letter.value).digest())
        if identity in seen:
            repeats += 1
            continue
        seen.add(identity)
        send.append(letter)
        by_source[(meta.source_topic, meta.stage, meta.reason)] += 1
    return Plan(send, by_source, refused, repeats)


def plan_lines(plan: Plan, selection: Selection, *, dry_run: bool) -> list[str]:
    lines = [
        f"{'dry run: would send' if dry_run else 'sending'} {_letters_count(len(plan.send))} "
        f"back to their topics ({selection.describe()})"
    ]
    for (topic, stage, reason), n in sorted(plan.by_source.items()):
        lines.append(f"  {n:>6}  to {topic}  (stage {stage}, reason {reason})")
    if plan.repeats:
        lines.append(f"  {plan.repeats:>6}  identical to one above: sent once")
    for why, n in sorted(plan.refused.items()):
        lines.append(f"  {n:>6}  left: {why}")
    return lines


async def send_back(settings: HeartSettings, letters: Sequence[Letter], dlq: str) -> int:
    """Produce each letter to its source topic and partition: key, value and the original
    headers unchanged, plus :data:`REDRIVEN_FROM`. Returns how many were written."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        acks="all",
        max_request_size=2 * 1024 * 1024,
        **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
    )
    await producer.start()
    try:
        partitions: dict[str, set[int]] = {}
        deliveries = []
        for letter in letters:
            meta = letter.meta
            assert meta is not None
            topic = meta.source_topic
            if topic not in partitions:
                partitions[topic] = set(await producer.partitions_for(topic))
            partition = (
                meta.source_partition if meta.source_partition in partitions[topic] else None
            )
            headers = [(k, v) for k, v in letter.headers if not k.startswith(HEADER_PREFIX)]
            headers = [(k, v) for k, v in headers if k != REDRIVEN_FROM]
            headers.append((REDRIVEN_FROM, f"{dlq}[{letter.partition}]@{letter.offset}".encode()))
            deliveries.append(
                await producer.send(
                    topic, letter.value, key=letter.key, partition=partition, headers=headers
                )
            )
        await producer.flush()
        await asyncio.gather(*deliveries)
        return len(deliveries)
    finally:
        await producer.stop()


# --- commands -----------------------------------------------------------------------------


def _letters(settings: HeartSettings) -> list[Letter]:
    from heart.cli.broker_reach import check_broker

    check_broker(settings)
    return asyncio.run(read_letters(settings))


def run_summary(
    args: argparse.Namespace, settings: HeartSettings, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    topic = DEADLETTER.full_name(settings.topic_prefix)
    print("\n".join(summary_lines(_letters(settings), Selection.of(args), topic)), file=out)
    return 0


def run_show(args: argparse.Namespace, settings: HeartSettings, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    topic = DEADLETTER.full_name(settings.topic_prefix)
    selection = Selection.of(args)
    chosen = _ordered(x for x in _letters(settings) if selection.matches(x))
    if not chosen:
        print(f"no dead letters on {topic} ({selection.describe()})", file=out)
        return 0
    shown = chosen[-args.limit :] if args.limit else chosen
    for letter in shown:
        print("\n".join(show_lines(letter, topic, show_payload=args.show_payload)), file=out)
    if len(shown) < len(chosen):
        print(
            f"(the latest {len(shown)} of {len(chosen)} shown, oldest first; --limit 0 shows all)",
            file=out,
        )
    if not args.show_payload:
        print("(personal fields withheld: --show-payload prints whole messages)", file=out)
    return 0


def run_redrive(
    args: argparse.Namespace,
    settings: HeartSettings,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    selection = Selection.of(args)
    if not (args.stage or args.reason):
        print(
            "heart deadletter redrive: choose what to send back with --stage and/or --reason "
            "(see `heart deadletter summary`), then --dry-run",
            file=err,
        )
        return 2
    if not (args.dry_run or args.yes):
        print(
            "heart deadletter redrive: run it with --dry-run first to see what would be sent, "
            "then with --yes to send it",
            file=err,
        )
        return 2
    plan = plan_redrive(_letters(settings), selection)
    print("\n".join(plan_lines(plan, selection, dry_run=args.dry_run)), file=out)
    if args.dry_run:
        print("nothing sent (dry run): run it again with --yes instead of --dry-run", file=out)
        return 0
    if not plan.send:
        print("nothing to send", file=out)
        return 0
    sent = asyncio.run(send_back(settings, plan.send, DEADLETTER.full_name(settings.topic_prefix)))
    print(
        f"sent {sent}: each keeps its event_id, so a stage that already processed one "
        "recognises the repeat",
        file=out,
    )
    return 0
