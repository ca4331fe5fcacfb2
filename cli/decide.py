"""``heart decide``: the triage stage's pure decision over JSON lines, for dry runs."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO

import orjson

from heart.agents.triage.decide import decide
from heart.agents.triage.state import decision_id
from heart.policy import Policy
from heart.schemas.calls import CallReceived
from heart.streams.codec import DecodeError, decode, encode


def decide_lines(lines: Iterable[bytes], policy: Policy, out: IO[bytes], err: IO[str]) -> int:
    """Decide every valid line; report invalid ones with their line number. Returns #invalid."""
    invalid = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            call = decode(CallReceived, line.rstrip(b"\r\n"))
        except DecodeError as exc:
            invalid += 1
            print(f"line {number}: {_message_with_column(exc)}", file=err)
            continue
        decision = decide(call, policy, event_id=decision_id(call.event_id, call.call_id))
        out.write(encode(decision) + b"\n")
    return invalid


def _message_with_column(exc: DecodeError) -> str:
    """The error with the JSON parser's own position told as a column of the input line.

    The parser sees one line at a time, so its own "line 1" would contradict the input
    line number the message starts with.
    """
    cause = exc.cause
    if isinstance(cause, orjson.JSONDecodeError):
        return f"{exc.reason}: {cause.msg} at column {cause.colno}"
    return str(exc)


def run(source: str, policy: Policy) -> int:
    stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    try:
        invalid = decide_lines(stream, policy, sys.stdout.buffer, sys.stderr)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    sys.stdout.flush()
    if invalid:
        print(f"heart decide: {invalid} invalid line(s)", file=sys.stderr)
        return 1
    return 0
