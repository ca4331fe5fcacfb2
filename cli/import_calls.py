"""``heart import FILE --mapping M``: a city's CAD export as ``call.received`` events.

The events come out in time order (exports often are not), as JSON lines in a file or on
stdout, or produced to ``cad.calls``. Everything a person needs to judge the import goes to
stderr: a progress bar while it runs, then the import's own account (rows, calls, rejects
by reason with examples, the largest local types the mapping leaves to police). A bad row
is counted and skipped, never fatal; but when no row became a call, or the rejected share
is above ``--max-reject-rate`` (:mod:`heart.cli.reject_limit`), the mapping does not fit
the export and the import fails, before anything is written. ``heart whatif`` reads an
export through the same loader (:func:`read_export`) and fails the same way.

Exit status: 0 the import ran; 1 the export or the output could not be read or written;
2 the mapping (or its demo policy) is unusable, with the file, the field and the problem
named; 65 no row became a call, or too many were rejected (the share, the top reasons and
the option are named); 69 the broker (``--to-topic``) could not be reached.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Literal

from heart.cad.importer import ImportResult, import_rows
from heart.cad.mapping import CadMapping, MappingError, load_mapping
from heart.cli.broker_reach import is_broker_unavailable
from heart.cli.progress import ProgressBar
from heart.cli.reject_limit import DEFAULT_MAX_REJECT_RATE, REJECTS_EXIT, reject_verdict
from heart.policy import PolicyError
from heart.schemas.calls import CallReceived
from heart.streams.codec import encode
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS

#: Where events go: ``"topic"`` for ``cad.calls``, ``"-"`` for stdout, else a file path.
Output = Literal["topic", "-"] | Path

#: Sends in flight before the producer is waited on: enough to fill its batches, few
#: enough that a broker error surfaces within a second, not at the end of the file.
PRODUCE_WINDOW = 2_000


def load_or_report(
    mapping: str | os.PathLike[str], err: IO[str], command: str
) -> CadMapping | None:
    """The mapping, or None after printing why it cannot be used (file, field, problem)."""
    try:
        return load_mapping(mapping)
    except (MappingError, PolicyError) as exc:
        print(f"heart {command}: {exc}", file=err)
        return None


def read_export(
    file: str | os.PathLike[str],
    mapping: CadMapping,
    err: IO[str],
    command: str,
    *,
    live: bool | None = None,
    max_reject_rate: float | None = None,
) -> ImportResult | int:
    """Import ``file`` with a progress bar on ``err``; an exit status when it cannot run
    or its rejects show that ``mapping`` does not fit it (:data:`REJECTS_EXIT`, after the
    import's account and one line naming the share, the top reasons and the limit).

    ``max_reject_rate`` is the command's ``--max-reject-rate``; None applies
    :data:`DEFAULT_MAX_REJECT_RATE` for a command that has no such option.
    """
    path = Path(file)
    bar = ProgressBar(f"import {path.name}", err, live=live)
    rows = 0

    def progress(read: int, offset: int, total: int) -> None:
        nonlocal rows
        rows = read
        bar.update(offset, total, read, "rows")

    try:
        result = import_rows(path, mapping, progress=progress)
    except MappingError as exc:
        # The header lacks a mapped column: the mapping does not describe this export.
        print(f"heart {command}: {exc}", file=err)
        return 2
    except OSError as exc:
        print(f"heart {command}: cannot read {path}: {exc.strerror or exc}", file=err)
        return 1
    bar.done(result.rows, "rows")
    verdict = reject_verdict(
        rows=result.rows,
        accepted=result.accepted,
        rejects=result.rejects,
        max_rate=DEFAULT_MAX_REJECT_RATE if max_reject_rate is None else max_reject_rate,
        option=None if max_reject_rate is None else "--max-reject-rate",
    )
    if verdict is not None:
        print(result.summary(), file=err)
        print(f"heart {command}: {verdict}", file=err)
        return REJECTS_EXIT
    return result


def write_jsonl(events: Sequence[CallReceived], out: IO[bytes]) -> None:
    # One write per few thousand events: a write per line costs more than encoding it.
    chunk: list[bytes] = []
    for event in events:
        chunk.append(encode(event))
        if len(chunk) >= 4_096:
            out.write(b"\n".join(chunk) + b"\n")
            chunk.clear()
    if chunk:
        out.write(b"\n".join(chunk) + b"\n")


async def produce_calls(
    settings: HeartSettings,
    events: Sequence[CallReceived],
    *,
    progress: ProgressBar | None = None,
) -> int:
    """Produce ``events`` to ``cad.calls`` in order, keyed by call id; returns how many.

    Creates the topic first when it is missing (a broker that auto-creates would give it
    the wrong partition count). Sends are batched by the producer and awaited in windows,
    then flushed, so every event is acknowledged when this returns.
    """
    from aiokafka import AIOKafkaProducer

    from heart.streams.admin import create_topics

    await create_topics(settings, [CAD_CALLS])
    topic = CAD_CALLS.full_name(settings.topic_prefix)
    producer = AIOKafkaProducer(
        linger_ms=20,
        max_batch_size=256 * 1024,
        **settings.aiokafka_kwargs(),  # type: ignore[arg-type]
    )
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[object]] = []
        for event in events:
            pending.append(
                await producer.send(topic, value=encode(event), key=event.call_id.encode())
            )
            if len(pending) >= PRODUCE_WINDOW:
                await asyncio.gather(*pending)
                sent += len(pending)
                pending.clear()
                if progress is not None:
                    progress.update(sent, len(events), sent, "events")
        await producer.flush()
        if pending:
            await asyncio.gather(*pending)
            sent += len(pending)
    finally:
        await producer.stop()
    return sent


def run_import(
    settings: HeartSettings,
    file: str | os.PathLike[str],
    mapping: str | os.PathLike[str],
    *,
    out: Output = "-",
    stdout: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
    progress: bool | None = None,
    max_reject_rate: float = DEFAULT_MAX_REJECT_RATE,
) -> int:
    """``heart import``: import ``file`` with ``mapping`` and write the events to ``out``.

    ``progress`` forces the live bar on or off (default: live only when stderr is a TTY).
    Returns the exit status (see the module docstring); an unreachable broker is raised
    (:func:`heart.cli.broker_reach.is_broker_unavailable`) for the CLI to report.
    """
    err = stderr if stderr is not None else sys.stderr
    loaded = load_or_report(mapping, err, "import")
    if loaded is None:
        return 2
    result = read_export(
        file, loaded, err, "import", live=progress, max_reject_rate=max_reject_rate
    )
    if isinstance(result, int):
        return result

    status = 0
    if out == "topic":
        status = _to_topic(settings, loaded, result, err, progress)
    elif out == "-":
        stream = stdout if stdout is not None else sys.stdout.buffer
        write_jsonl(result.events, stream)
        stream.flush()
    else:
        target = Path(out)
        try:
            with target.open("wb") as stream:
                write_jsonl(result.events, stream)
        except OSError as exc:
            print(f"heart import: cannot write {target}: {exc.strerror or exc}", file=err)
            status = 1
        else:
            print(f"wrote {result.accepted:,} call.received events to {target}", file=err)
    # The account comes last so that it is what a person sees when the command ends.
    print(result.summary(), file=err)
    return status


def _to_topic(
    settings: HeartSettings,
    mapping: CadMapping,
    result: ImportResult,
    err: IO[str],
    live: bool | None,
) -> int:
    topic = CAD_CALLS.full_name(settings.topic_prefix)
    bar = ProgressBar(f"produce {topic}", err, live=live)
    try:
        sent = asyncio.run(produce_calls(settings, result.events, progress=bar))
    except Exception as exc:  # aiokafka's errors share no base class worth naming
        if is_broker_unavailable(exc):
            raise  # heart.cli.main turns it into the one line every command prints
        print(
            f"heart import: producing to {topic} at {settings.kafka_bootstrap} failed: "
            f"{type(exc).__name__}: {exc}",
            file=err,
        )
        return 1
    bar.done(sent, "events")
    print(f"produced {sent:,} call.received events to {topic}", file=err)
    if settings.policy is None or Path(settings.policy).resolve() != mapping.policy_path.resolve():
        # Triage decides with HEART_POLICY, not the mapping's demo policy: a city's calls
        # judged by another city's hours and beats look like misses, so say which is which.
        print(
            f"note: the triage stage decides with HEART_POLICY "
            f"({settings.policy or 'the Durham default'}); this mapping's demo policy is "
            f"{mapping.policy_path}",
            file=err,
        )
    return 0
