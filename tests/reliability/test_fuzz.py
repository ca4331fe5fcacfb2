"""Hypothesis-generated bad input on ``cad.calls``, ``units.status`` and ``followup.outcomes``.

One worker per stage runs for the whole module; hypothesis draws a batch of messages once
(derandomized, so CI sees the same batch every run), the batch is sent interleaved with
good messages, and then:

- every bad message is on ``heart.deadletter`` exactly once per stage that reads its topic,
  with the reason this file predicts for it (``cad.calls`` is read by triage alone: Care
  Navigation learns of closed phone calls from triage's closures);
- messages that look odd but are valid (unknown call types and beats, odd Unicode in free
  text, a huge unknown field, a redelivered event id) are processed, not dead-lettered;
  far-future timestamps are bad messages (``future_timestamp``, docs/reliability.md "Far-future
  timestamps");
- every good message is processed, and every worker is still alive afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from heart.policy import load_policy
from heart.schemas import DeadLetter, DispatchEvent, FollowupOutcome, UnitStatusReport
from heart.streams.admin import create_topics
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CAD_CALLS,
    DEADLETTER,
    DISPATCH_CLEARED,
    FOLLOWUP_OUTCOMES,
    FOLLOWUP_TIMERS,
    TRIAGE_DECISIONS,
    UNITS_AUDIT,
    UNITS_STATUS,
    TopicSpec,
)
from tests.factories import T0, call_received
from tests.kafka import Worker
from tests.reliability.support import Feed, TopicWatch, distinct, stop_worker

pytestmark = pytest.mark.broker
POLICY = load_policy()

#: Bad messages per topic drawn by hypothesis (plus the fixed cases below).
EXAMPLES = 40
MIB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One fuzz message and what must become of it."""

    topic: TopicSpec
    key: str
    value: bytes | None
    #: The dead-letter reason, or None when the message is valid and must be processed.
    reason: str | None
    label: str


def _collect(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """Draw ``n`` examples from ``strategy`` once, reproducibly, without running a test."""
    out: list[Any] = []

    @settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(example: Any) -> None:
        out.append(example)

    draw()
    return out[:n]


# --- cad.calls ----------------------------------------------------------------------------


def _good_call(call_id: str, **overrides: Any) -> dict[str, Any]:
    data = orjson.loads(call_received(call_id=call_id, event_id=f"ev-{call_id}").model_dump_json())
    data.update(overrides)
    return data


#: NUL, right-to-left override and mark, Arabic, emoji, a combining accent, a BOM.
ODD_TEXT = st.lists(
    st.sampled_from(
        ["\u0000", "\u202e", "\u200f", "\u0645", "\U0001f600", "e\u0301", "\ufeff", "a", " "]
    ),
    min_size=1,
    max_size=30,
).map("".join)

NOT_A_STRING = st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.booleans())

#: (field, wrong value) pairs; each makes a call.received invalid with reason invalid_event.
CALL_WRONG_FIELDS = st.one_of(
    st.tuples(st.just("call_id"), st.one_of(NOT_A_STRING, st.just(""), st.text(min_size=65))),
    st.tuples(st.just("call_type"), st.one_of(NOT_A_STRING, st.just(""))),
    st.tuples(
        st.just("weapon_involved"),
        st.sampled_from(["perhaps", "armed?", [], {}, 2, -1, 0.5]),
    ),
    st.tuples(
        st.just("priority"),
        st.one_of(st.integers(min_value=100), st.integers(max_value=-1), st.just("high")),
    ),
    st.tuples(
        st.just("occurred_at"),
        st.sampled_from(["yesterday", "2024-13-45T00:00:00Z", "", [], {}, True]),
    ),
    st.tuples(st.just("language"), st.sampled_from(["english!", "", "e", "x" * 40, 7])),
    st.tuples(st.just("location"), st.sampled_from([{"lat": 200}, {"lon": -999}, "here", 5])),
    st.tuples(st.just("caller"), st.sampled_from(["Jordan", 12, [1], {"name": ["x"]}])),
)


@st.composite
def bad_cad(draw: st.DrawFn) -> tuple[str, bytes | None, str]:
    kind = draw(
        st.sampled_from(
            [
                "garbage",
                "truncated",
                "not_object",
                "wrong_type",
                "missing",
                "naive",
                "far_future",
                "unknown_event_type",
                "bad_utf8",
                "surrogate",
                "long_string",
            ]
        )
    )
    good = _good_call("X")
    if kind == "garbage":
        raw = draw(st.binary(min_size=1, max_size=200).filter(_not_json))
        return kind, raw, "invalid_json"
    if kind == "truncated":
        text = orjson.dumps(good)
        return kind, text[: draw(st.integers(1, len(text) - 1))], "invalid_json"
    if kind == "not_object":
        value = draw(st.one_of(st.integers(), st.lists(st.integers(), max_size=3), st.text()))
        return kind, orjson.dumps(value), "invalid_event"
    if kind == "wrong_type":
        field, value = draw(CALL_WRONG_FIELDS)
        return f"wrong_type:{field}", orjson.dumps({**good, field: value}), "invalid_event"
    if kind == "missing":
        field = draw(st.sampled_from(["call_id", "call_type", "occurred_at"]))
        return (
            f"missing:{field}",
            orjson.dumps({k: v for k, v in good.items() if k != field}),
            ("missing_field"),
        )
    if kind == "naive":
        moment = draw(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)))
        return kind, orjson.dumps({**good, "occurred_at": moment.isoformat()}), "naive_timestamp"
    if kind == "far_future":
        # A broken clock: refused by every stage that reads the topic (docs/reliability.md,
        # "Far-future timestamps").
        year = draw(st.integers(2100, 9998))
        return (
            kind,
            orjson.dumps({**good, "occurred_at": f"{year}-06-01T12:00:00+00:00"}),
            ("future_timestamp"),
        )
    if kind == "unknown_event_type":
        event_type = draw(st.text(max_size=20).filter(lambda t: not t.startswith("call.")))
        return kind, orjson.dumps({**good, "event_type": event_type}), "unknown_event_type"
    if kind == "bad_utf8":
        text = orjson.dumps(good).replace(b"Welfare Check", b"Welfare \xff\xfe Check")
        return kind, text, "invalid_json"
    if kind == "surrogate":
        escape = draw(st.sampled_from([b"\\ud800", b"\\udfff", b"\\udbff\\u0041"]))
        return (
            kind,
            orjson.dumps(good).replace(b"Welfare Check", b"Welfare " + escape),
            ("invalid_json"),
        )
    # A string longer than its field allows (call_type 200, caller name 200, notes 1000).
    field, limit = draw(st.sampled_from([("call_type", 200), ("safety_notes", 1000)]))
    size = draw(st.integers(limit + 1, 50_000))
    return f"long:{field}", orjson.dumps({**good, field: "x" * size}), "invalid_event"


def _not_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return True
    return False


@st.composite
def odd_but_valid_cad(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Calls that look wrong but are valid: each must get a decision."""
    kind = draw(st.sampled_from(["unknown_type", "unknown_beat", "odd_unicode", "lax"]))
    if kind == "unknown_type":
        return kind, {"call_type": draw(st.text(min_size=1, max_size=60).filter(str.strip))}
    if kind == "unknown_beat":
        return kind, {"beat": draw(st.text(min_size=1, max_size=32))}
    if kind == "odd_unicode":
        field = draw(st.sampled_from(["call_type", "location", "caller", "safety_notes"]))
        text = draw(ODD_TEXT)
        value: Any = {
            "location": {"address": text},
            "caller": {"name": text, "phone": text[:40]},
        }.get(field, text)
        return f"odd_unicode:{field}", {field: value}
    # pydantic's lax mode: "true", 1 and "5" are a bool and an int; accepted on purpose.
    return kind, {"weapon_involved": "true", "priority": "5", "needs_in_person": 1}


# --- units.status -------------------------------------------------------------------------


def _good_report(i: int, status: str) -> UnitStatusReport:
    return UnitStatusReport(
        team_id="COR-2",
        status=status,  # type: ignore[arg-type]
        occurred_at=T0 + timedelta(seconds=i),
        event_id=f"good-report-{i}",
    )


@st.composite
def bad_report(draw: st.DrawFn) -> tuple[str, bytes | None, str]:
    base = orjson.loads(
        UnitStatusReport(team_id="CRT-4", status="available", occurred_at=T0).model_dump_json()
    )
    kind = draw(
        st.sampled_from(
            [
                "garbage",
                "wrong_status",
                "wrong_type",
                "naive",
                "unknown_team",
                "missing",
                "event",
                "future",
            ]
        )
    )
    if kind == "garbage":
        return kind, draw(st.binary(min_size=1, max_size=100).filter(_not_json)), "invalid_json"
    if kind == "wrong_status":
        status = draw(st.text(max_size=20).filter(lambda s: s not in _STATUSES))
        return kind, orjson.dumps({**base, "status": status}), "invalid_event"
    if kind == "wrong_type":
        field, value = draw(
            st.one_of(
                st.tuples(st.just("team_id"), st.one_of(NOT_A_STRING, st.just(""))),
                st.tuples(st.just("backup_requested"), st.sampled_from(["help!", [], 3])),
                st.tuples(st.just("occurred_at"), st.sampled_from(["now", "", {}])),
            )
        )
        return f"wrong_type:{field}", orjson.dumps({**base, field: value}), "invalid_event"
    if kind == "naive":
        return (
            kind,
            orjson.dumps({**base, "occurred_at": "2024-07-15T10:00:00"}),
            ("naive_timestamp"),
        )
    if kind == "unknown_team":
        team = draw(st.text(min_size=1, max_size=64).filter(lambda t: t not in _TEAMS))
        return kind, orjson.dumps({**base, "team_id": team}), "unknown_team"
    if kind == "missing":
        field = draw(st.sampled_from(["team_id", "status", "occurred_at"]))
        return kind, orjson.dumps({k: v for k, v in base.items() if k != field}), "missing_field"
    if kind == "future":
        # Responder apps get five minutes of clock skew; this one is hours to years ahead.
        ahead = draw(st.integers(min_value=3_600, max_value=10**10))
        moment = datetime.now(UTC) + timedelta(seconds=ahead)
        return kind, orjson.dumps({**base, "occurred_at": moment.isoformat()}), "future_timestamp"
    # Another event type on this topic: UnitStatusReport is a single model, not a union.
    return kind, orjson.dumps({**base, "event_type": "call.received"}), "invalid_event"


_STATUSES = {
    "available",
    "dispatched",
    "en_route",
    "on_scene",
    "transporting",
    "cleared",
    "out_of_service",
}
_TEAMS = {"CRT-1", "CRT-2", "CRT-3", "CRT-4", "COR-1", "COR-2"}


# --- followup.outcomes --------------------------------------------------------------------


@st.composite
def bad_outcome(draw: st.DrawFn) -> tuple[str, bytes | None, str]:
    base = orjson.loads(
        FollowupOutcome(case_id="FZ-0", outcome="reached", occurred_at=T0).model_dump_json()
    )
    kind = draw(
        st.sampled_from(["garbage", "wrong_outcome", "wrong_type", "naive", "unknown_case"])
    )
    if kind == "garbage":
        return kind, draw(st.binary(min_size=1, max_size=100).filter(_not_json)), "invalid_json"
    if kind == "wrong_outcome":
        outcome = draw(st.text(max_size=20).filter(lambda s: s not in _OUTCOMES))
        return kind, orjson.dumps({**base, "outcome": outcome}), "invalid_event"
    if kind == "wrong_type":
        field, value = draw(
            st.one_of(
                st.tuples(st.just("case_id"), st.one_of(NOT_A_STRING, st.just(""))),
                st.tuples(st.just("care_kind"), st.sampled_from([[], {}, 5, "x" * 101])),
            )
        )
        return f"wrong_type:{field}", orjson.dumps({**base, field: value}), "invalid_event"
    if kind == "naive":
        return (
            kind,
            orjson.dumps({**base, "occurred_at": "2024-07-16T10:00:00"}),
            ("naive_timestamp"),
        )
    case = draw(st.text(min_size=1, max_size=64).filter(lambda c: not c.startswith("FZ-")))
    return kind, orjson.dumps({**base, "case_id": case}), "unknown_case"


_OUTCOMES = {"reached", "connected_to_care", "declined", "unable_to_reach"}


# --- the batch ----------------------------------------------------------------------------

GOOD_CALLS = 150
SHARED_ID_CALLS = ("DUPID-A", "DUPID-B")
GOOD_REPORTS = 90
CASES = 90


def _batch() -> tuple[list[Case], list[Case]]:
    """Bad and odd-but-valid cases, each with a unique key so its fate can be found."""
    cases: list[Case] = []
    for n, (label, raw, reason) in enumerate(_collect(bad_cad(), EXAMPLES)):
        cases.append(Case(CAD_CALLS, f"BAD-C-{n}", raw, reason, label))
    for n, (label, overrides) in enumerate(_collect(odd_but_valid_cad(), EXAMPLES)):
        call_id = f"ODD-{n}"
        raw = orjson.dumps(_good_call(call_id, **overrides))
        cases.append(Case(CAD_CALLS, call_id, raw, None, label))
    for n, (label, raw, reason) in enumerate(_collect(bad_report(), EXAMPLES)):
        cases.append(Case(UNITS_STATUS, f"BAD-U-{n}", raw, reason, label))
    for n, (label, raw, reason) in enumerate(_collect(bad_outcome(), EXAMPLES)):
        cases.append(Case(FOLLOWUP_OUTCOMES, f"BAD-O-{n}", raw, reason, label))

    # Fixed cases hypothesis would rarely draw.
    big = _good_call("HUGE-1", safety_notes="n" * (MIB + 10))
    huge_unknown = _good_call("HUGE-OK", notes_from_cad="z" * (MIB - 4096))
    cases += [
        Case(CAD_CALLS, "HUGE-1", orjson.dumps(big), "too_large", "huge:>1MiB"),
        Case(CAD_CALLS, "HUGE-2", b"[" * (MIB + 1), "too_large", "huge:>1MiB garbage"),
        Case(CAD_CALLS, "EMPTY-1", b"", "invalid_json", "empty bytes"),
        Case(CAD_CALLS, "TOMB-1", None, "empty_message", "tombstone (no value)"),
        # A huge unknown field under the size limit is ignored, as any unknown field is.
        Case(CAD_CALLS, "HUGE-OK", orjson.dumps(huge_unknown), None, "huge unknown field"),
        Case(UNITS_STATUS, "HUGE-U", b'{"x": "' + b"y" * (MIB + 1) + b'"}', "too_large", "huge"),
        Case(UNITS_STATUS, "TOMB-U", None, "empty_message", "tombstone (no value)"),
        Case(FOLLOWUP_OUTCOMES, "TOMB-O", None, "empty_message", "tombstone (no value)"),
    ]
    # A semantic refusal: an update for a call triage never received.
    orphan: dict[str, Any] = {
        "event_id": "orphan-upd",
        "event_type": "call.updated",
        "call_id": "ORPHAN-1",
    }
    orphan["occurred_at"] = T0.isoformat()
    cases.append(Case(CAD_CALLS, "ORPHAN-1", orjson.dumps(orphan), "unknown_call", "orphan update"))

    # Good messages: calls, COR-2 going out of service and back, outcomes for real cases.
    good: list[Case] = []
    for i in range(GOOD_CALLS):
        raw = orjson.dumps(_good_call(f"G-{i}", call_type="Burglary" if i % 2 else "Trespass"))
        good.append(Case(CAD_CALLS, f"G-{i}", raw, None, "good call"))
    # The CAD redelivers a good call (same event id): one decision, no dead letter.
    good.append(Case(CAD_CALLS, "G-0", good[0].value, None, "redelivered"))
    # A CAD that reuses one event id for two different calls: both are valid calls.
    for call_id in SHARED_ID_CALLS:
        raw = orjson.dumps({**_good_call(call_id), "event_id": "cad-reused-id"})
        good.append(Case(CAD_CALLS, call_id, raw, None, "event id reused across calls"))
    for i in range(GOOD_REPORTS):
        report = _good_report(i, "out_of_service" if i % 2 == 0 else "available")
        raw = orjson.dumps(report.model_dump(mode="json"))
        good.append(Case(UNITS_STATUS, "COR-2", raw, None, "good report"))
    for i in range(CASES):
        outcome = FollowupOutcome(
            case_id=f"FZ-{i}", outcome="reached", occurred_at=T0 + timedelta(hours=1)
        )
        raw = orjson.dumps(outcome.model_dump(mode="json"))
        good.append(Case(FOLLOWUP_OUTCOMES, f"FZ-{i}", raw, None, "good outcome"))
    return cases, good


def _interleave(bad: list[Case], good: list[Case]) -> list[Case]:
    """Bad messages spread evenly among at least twice as many good ones, per topic, so
    that no window of recent messages is mostly bad and the circuit breaker (which pauses a
    stage when more than half fail) stays closed."""
    out: list[Case] = []
    for spec in (CAD_CALLS, UNITS_STATUS, FOLLOWUP_OUTCOMES):
        b = [c for c in bad if c.topic is spec and c.reason is not None]
        g = [c for c in bad + good if c.topic is spec and c.reason is None]
        assert len(g) >= 2 * len(b), f"{spec.name}: {len(g)} good for {len(b)} bad"
        total = len(b)
        for i, case in enumerate(g):
            out.append(case)
            while b and total - len(b) < (i + 1) * total / len(g):
                out.append(b.pop(0))
        out.extend(b)
    return out


# --- the run ------------------------------------------------------------------------------

STAGES = ("triage", "dispatch", "navigation")
#: Which stages read each fuzzed topic, and so dead-letter what they cannot decode.
READERS = {
    CAD_CALLS.name: ("triage",),
    UNITS_STATUS.name: ("dispatch",),
    FOLLOWUP_OUTCOMES.name: ("navigation",),
}
#: Refusals that only the stage owning the meaning makes (decoding succeeded).
SEMANTIC = {"unknown_call": "triage", "unknown_team": "dispatch", "unknown_case": "navigation"}


def expected_deadletters(cases: list[Case]) -> Counter[tuple[str, str, str]]:
    want: Counter[tuple[str, str, str]] = Counter()
    for case in cases:
        if case.reason is None:
            continue
        if case.reason in SEMANTIC:
            stages: tuple[str, ...] = (SEMANTIC[case.reason],)
        else:
            stages = READERS[case.topic.name]
        for stage in stages:
            want[(case.key, stage, case.reason)] += 1
    return want


def _metric(port: int, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class FuzzRun:
    scoped: HeartSettings
    workers: dict[str, Worker]
    bad: list[Case]
    good: list[Case]
    deadletters: list[DeadLetter]
    dead_keys: list[str | None]
    decisions: list[Any]
    audit: list[Any]


@pytest.fixture(scope="module")
async def fuzz(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FuzzRun]:
    log_dir = tmp_path_factory.mktemp("fuzz")
    scoped = HeartSettings(kafka_bootstrap=broker.bootstrap, topic_prefix=f"fuzz-{log_dir.name}.")
    await create_topics(scoped)
    bad, good = _batch()
    workers = {name: Worker(name, scoped, log_dir).start() for name in STAGES}
    watches = {
        "dead": await TopicWatch(scoped, DEADLETTER).start(),
        "decisions": await TopicWatch(scoped, TRIAGE_DECISIONS).start(),
        "audit": await TopicWatch(scoped, UNITS_AUDIT).start(),
        "timers": await TopicWatch(scoped, FOLLOWUP_TIMERS).start(),
    }
    feed = await Feed(scoped).start()
    try:
        await asyncio.gather(*(w.wait_ready(90) for w in workers.values()))
        # Care Navigation needs real cases for the good outcomes: teams clear their calls.
        for i in range(CASES):
            cleared = DispatchEvent(
                event_type="dispatch.cleared",
                occurred_at=T0,
                call_id=f"FZ-{i}",
                route="crt",
                team_id="CRT-1",
                event_id=f"fz-cleared-{i}",
            )
            await feed.send(DISPATCH_CLEARED, cleared.call_id, cleared)
        await feed.producer.flush()
        await watches["timers"].wait(
            lambda w: len(w.records) >= CASES, timeout=60, what="the fuzz cases scheduled"
        )

        # One partition per topic: the stage reads the messages in the order they were
        # interleaved, so its breaker sees at most one bad message in three. (Spread over
        # partitions by key, a burst of bad ones can be read first and pause the stage.)
        for case in _interleave(bad, good):
            await feed.send(case.topic, case.key, case.value, partition=0)
        await feed.producer.flush()

        want = expected_deadletters(bad)
        valid_calls = {c.key for c in bad + good if c.topic is CAD_CALLS and c.reason is None}
        # Wait for what should arrive; the tests then judge what did (a shortfall fails
        # there, with the cases named, rather than here with a count).
        with contextlib.suppress(TimeoutError):
            await watches["dead"].wait(
                lambda w: len(w.records) >= sum(want.values()), timeout=25, what="dead letters"
            )
        with contextlib.suppress(TimeoutError):
            await watches["decisions"].wait(
                lambda w: valid_calls <= {r.key.decode() for r in w.records},
                timeout=20,
                what="a decision for every valid call",
            )
        with contextlib.suppress(TimeoutError):
            await watches["audit"].wait(
                lambda w: len(w.records) >= GOOD_REPORTS, timeout=20, what="every good report"
            )
        for w in watches.values():
            await w.quiet(2.0)
        yield FuzzRun(
            scoped=scoped,
            workers=workers,
            bad=bad,
            good=good,
            deadletters=[DeadLetter.from_headers(r.headers) for r in watches["dead"].records],
            dead_keys=[r.key.decode() if r.key else None for r in watches["dead"].records],
            decisions=watches["decisions"].events(),
            audit=watches["audit"].events(),
        )
    finally:
        await feed.stop()
        for w in watches.values():
            await w.stop()
        for w in workers.values():
            if w.proc is not None and w.proc.poll() is None:
                stop_worker(w)


async def test_every_bad_message_is_dead_lettered_once_per_reader_with_its_reason(
    fuzz: FuzzRun,
) -> None:
    got = Counter(
        (key, letter.stage, letter.reason)
        for key, letter in zip(fuzz.dead_keys, fuzz.deadletters, strict=True)
    )
    want = expected_deadletters(fuzz.bad)
    labels = {c.key: c.label for c in fuzz.bad}
    wrong = {
        (k, labels.get(k), s, r): (got[(k, s, r)], want[(k, s, r)])
        for (k, s, r) in set(got) | set(want)
        if got[(k, s, r)] != want[(k, s, r)]
    }
    assert wrong == {}, "dead letters (got, want) per (key, label, stage, reason)"
    # Counted per source topic, as the brief asks: bad sent == dead letters of that topic.
    for spec in (CAD_CALLS, UNITS_STATUS, FOLLOWUP_OUTCOMES):
        full = spec.full_name(fuzz.scoped.topic_prefix)
        letters = [d for d in fuzz.deadletters if d.source_topic == full]
        sent = [c for c in fuzz.bad if c.topic is spec and c.reason is not None]
        expected = sum(1 if c.reason in SEMANTIC else len(READERS[spec.name]) for c in sent)
        assert len(letters) == expected, spec.name
    # Every dead letter says where it came from and why, and never echoes a value.
    for letter in fuzz.deadletters:
        assert letter.reason and letter.error_class and letter.error_message
        assert letter.source_offset >= 0 and letter.source_partition >= 0


async def test_no_good_or_odd_but_valid_message_is_dead_lettered_and_all_are_processed(
    fuzz: FuzzRun,
) -> None:
    dead = set(fuzz.dead_keys)
    valid = [c for c in fuzz.bad + fuzz.good if c.reason is None]
    assert not [(c.key, c.label) for c in valid if c.key in dead]
    # Repeats are recognised per call here; test_calls_sharing_a_cad_event_id_… shows why
    # de-duplicating on event_id alone is not yet safe.
    per_call = {(d.call_id, d.event_id): d for d in fuzz.decisions}
    decided = Counter(call_id for call_id, _ in per_call)
    valid_calls = {c.key for c in valid if c.topic is CAD_CALLS}
    missing, extra = sorted(valid_calls - set(decided)), sorted(set(decided) - valid_calls)
    assert (missing, extra) == ([], []), "every valid call decided (missing), nothing else"
    assert all(n == 1 for n in decided.values()), "a redelivered call is decided once"
    # Unknown call types are valid calls; with no pilot matching they go to police.
    routes = {d.call_id: d for d in fuzz.decisions}
    unknown = [c.key for c in fuzz.bad if c.label == "unknown_type"]
    assert unknown
    for key in unknown:
        decision = routes[key]
        if POLICY.category_for(decision.call_type) is None:
            assert decision.route == "police" and "no_pilot_matches" in decision.reasons
    # COR-2 went out of service and back, once per good report, in order.
    changes = [(a.from_status, a.to_status) for a in distinct(fuzz.audit) if a.team_id == "COR-2"]
    assert changes == [("available", "out_of_service"), ("out_of_service", "available")] * (
        GOOD_REPORTS // 2
    )
    port = fuzz.workers["navigation"].metrics_port
    assert _metric(port, "heart_followups_completed_total") == CASES


async def test_no_stage_stopped_and_later_good_messages_are_processed(fuzz: FuzzRun) -> None:
    for name, worker in fuzz.workers.items():
        assert worker.proc is not None and worker.proc.poll() is None, f"{name} died"
        assert _metric(worker.metrics_port, "heart_circuit_trips_total") == 0, name
        log = worker.log()
        assert "Traceback" not in log, f"{name}:\n{log[-3000:]}"
    scoped = fuzz.scoped
    decisions = await TopicWatch(scoped, TRIAGE_DECISIONS).start()
    feed = await Feed(scoped).start()
    try:
        await feed.send(CAD_CALLS, "LATER-1", call_received(call_id="LATER-1"))
        await feed.producer.flush()
        await decisions.wait(
            lambda w: any(r.key == b"LATER-1" for r in w.records), timeout=30, what="LATER-1"
        )
    finally:
        await feed.stop()
        await decisions.stop()


async def test_calls_sharing_a_cad_event_id_get_distinct_decision_ids(fuzz: FuzzRun) -> None:
    """Consumers de-duplicate on ``event_id``; two different calls' decisions must not share
    one, or a consumer drops the second call as a duplicate of the first."""
    decisions = {d.call_id: d for d in fuzz.decisions if d.call_id in SHARED_ID_CALLS}
    assert set(decisions) == set(SHARED_ID_CALLS), "both calls are decided"
    a, b = (decisions[c] for c in SHARED_ID_CALLS)
    assert a.event_id != b.event_id, (
        f"calls {a.call_id} and {b.call_id} got decisions with the same event_id "
        f"{a.event_id}: a consumer de-duplicating on event_id loses {b.call_id}"
    )
