"""The flood: a CAD bug sends 300 malformed ``call.received``, then 100 valid calls follow.

Bad input must not hold good input hostage. On the embedded broker, with a real
``heart worker triage``: all 300 are dead-lettered with their reasons, all 100 valid calls
are decided within 30 s of being sent (the stage never pauses), the dead-letter rate
metric moves, and the shipped alert rule ``HeartDeadLettersHigh`` fires when its expression
is evaluated, as Prometheus evaluates it, over the samples scraped from the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from heart.schemas import DeadLetter
from heart.streams.admin import create_topics
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, DEADLETTER, TRIAGE_DECISIONS
from tests.factories import call_received
from tests.kafka import ROOT, Worker
from tests.reliability.support import Feed, TopicWatch, stop_worker

pytestmark = pytest.mark.broker

FLOOD, VALID = 300, 100
#: The issue's bar: every valid call decided within this many seconds of being sent.
DECIDED_WITHIN_S = 30.0
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def malformed(i: int, now: datetime) -> tuple[bytes, str]:
    """The i-th bad message of the flood and the reason it must be dead-lettered for: what
    a broken CAD export sends (the kinds the fuzz test draws, cycled)."""
    good = orjson.loads(call_received(call_id=f"BAD-{i}", occurred_at=now).model_dump_json())
    kinds: list[tuple[bytes, str]] = [
        (b"<call><id>" + str(i).encode() + b"</id></call>", "invalid_json"),
        (orjson.dumps({**good, "call_id": None}), "invalid_event"),
        (orjson.dumps({**good, "weapon_involved": "maybe"}), "invalid_event"),
        (orjson.dumps({k: v for k, v in good.items() if k != "call_type"}), "missing_field"),
        (orjson.dumps({**good, "occurred_at": "2026-11-29T10:00:00"}), "naive_timestamp"),
        (orjson.dumps({**good, "event_type": "call.v2.received"}), "unknown_event_type"),
    ]
    return kinds[i % len(kinds)]


# --- the alert rule, evaluated as Prometheus does -----------------------------------------

Scrape = tuple[float, dict[tuple[str, tuple[tuple[str, str], ...]], float]]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def extrapolated_rate(points: list[tuple[float, float]], start: float, end: float) -> float | None:
    """Prometheus's ``rate()`` of one counter series over the range [start, end]
    (promql/functions.go, extrapolatedRate): None with fewer than two samples."""
    points = [(t, v) for t, v in points if start <= t <= end]
    if len(points) < 2:
        return None
    increase = 0.0
    for (_, before), (_, after) in itertools.pairwise(points):
        increase += after - before if after >= before else after  # a counter reset
    first_t, first_v = points[0]
    last_t = points[-1][0]
    sampled = last_t - first_t
    average_step = sampled / (len(points) - 1)
    to_start, to_end = first_t - start, end - last_t
    if increase > 0 and first_v >= 0:
        to_start = min(to_start, sampled * (first_v / increase))
    threshold = average_step * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average_step / 2
    interval += to_end if to_end < threshold else average_step / 2
    return increase * (interval / sampled) / (end - start)


@dataclass(frozen=True)
class RateRule:
    """A rule of the shape ``sum by (L) (rate(M[Wm])) * K > T``; the shipped dead-letter
    rule must have it, or this evaluation no longer says anything about it."""

    by: str
    metric: str
    window_s: float
    factor: float
    threshold: float

    @classmethod
    def parse(cls, expr: str) -> RateRule:
        match = re.fullmatch(
            r"sum by \((\w+)\) \(rate\((\w+)\[(\d+)m\]\)\) \* (\S+) > (\S+)", expr.strip()
        )
        assert match, f"the check cannot evaluate {expr!r}: update it with the rule"
        by, metric, minutes, factor, threshold = match.groups()
        return cls(by, metric, int(minutes) * 60, float(factor), float(threshold))

    def values(self, scrapes: list[Scrape], at: float) -> dict[str, float]:
        """The expression's value per ``by`` label at time ``at`` (before the comparison)."""
        series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        for t, samples in scrapes:
            for (name, labels), value in samples.items():
                if name == self.metric:
                    series.setdefault(labels, []).append((t, value))
        sums: dict[str, float] = {}
        for labels, points in series.items():
            rate = extrapolated_rate(points, at - self.window_s, at)
            if rate is not None:
                key = dict(labels)[self.by]
                sums[key] = sums.get(key, 0.0) + rate
        return {key: value * self.factor for key, value in sums.items()}

    def firing(self, scrapes: list[Scrape], at: float) -> dict[str, float]:
        return {k: v for k, v in self.values(scrapes, at).items() if v > self.threshold}


def dead_letter_rule() -> RateRule:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    [rule] = [r for g in groups for r in g["rules"] if r["alert"] == "HeartDeadLettersHigh"]
    return RateRule.parse(rule["expr"])


def test_the_rate_check_follows_prometheus() -> None:
    rule = RateRule("stage", "c", 300, 60, 1)
    counter = ("c", (("reason", "x"), ("stage", "triage")))
    # A counter seen at 0, then 6 in one scrape 15 s later: 6 in the window fires.
    quiet: list[Scrape] = [(1000.0, {counter: 0.0}), (1015.0, {counter: 0.0})]
    burst: list[Scrape] = [(1000.0, {counter: 0.0}), (1015.0, {counter: 6.0})]
    assert rule.firing(quiet, 1015.0) == {}
    assert set(rule.firing(burst, 1015.0)) == {"triage"}
    # A series that first appears already at 300 shows no increase: no alert. (Why the
    # workers create their dead-letter counters at 0 when they start.)
    born_late: list[Scrape] = [(1000.0, {}), (1015.0, {counter: 300.0}), (1030.0, {counter: 300.0})]
    assert rule.firing(born_late, 1030.0) == {}


# --- the flood ----------------------------------------------------------------------------


@dataclass
class Figures:
    flood_sent_s: float
    dead_lettered_s: float
    decided_s: float


async def test_a_flood_of_bad_calls_does_not_hold_good_calls_hostage(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"flood{unique}."})
    await create_topics(scoped)
    worker = Worker("triage", scoped, tmp_path).start()
    decisions = await TopicWatch(scoped, TRIAGE_DECISIONS).start()
    dead = await TopicWatch(scoped, DEADLETTER).start()
    feed = await Feed(scoped).start()
    scrapes: list[Scrape] = []

    async def scraper() -> None:
        while True:
            with contextlib.suppress(OSError):
                scrapes.append((time.monotonic(), scrape(worker.metrics_port)))
            await asyncio.sleep(0.5)

    scraping: asyncio.Task[None] | None = None
    now = datetime.now(UTC)
    bad = [(f"BAD-{i}", *malformed(i, now)) for i in range(FLOOD)]
    good = [call_received(call_id=f"GOOD-{i}", occurred_at=now) for i in range(VALID)]
    try:
        await worker.wait_ready(90)
        scraping = asyncio.create_task(scraper())
        await asyncio.sleep(1.5)  # Prometheus has seen the counters before the flood
        started = time.monotonic()
        for key, value, _reason in bad:
            await feed.send(CAD_CALLS, key, value)
        await feed.producer.flush()
        flood_sent = time.monotonic()
        for call in good:
            await feed.send(CAD_CALLS, call.call_id, call)
        await feed.producer.flush()
        good_sent = time.monotonic()
        await dead.wait(lambda w: len(w.records) >= FLOOD, timeout=60, what="the flood")
        dead_lettered = time.monotonic()
        wanted = {c.call_id for c in good}
        await decisions.wait(
            lambda w: wanted <= {r.key.decode() for r in w.records}, timeout=60, what="decisions"
        )
        decided = time.monotonic()
        await asyncio.sleep(1.5)  # a scrape after the last dead letter
        for watch in (decisions, dead):
            await watch.quiet(1.0)
    finally:
        if scraping is not None:
            scraping.cancel()
        await feed.stop()
        stop_worker(worker)
        await decisions.stop()
        await dead.stop()
    figures = Figures(flood_sent - started, dead_lettered - started, decided - good_sent)
    print(f"\nflood figures: {figures}")

    # All 300 dead-lettered, once each, with their reasons; nothing else.
    letters = {r.key.decode(): DeadLetter.from_headers(r.headers) for r in dead.records}
    assert len(dead.records) == FLOOD and len(letters) == FLOOD
    assert {k: (letters[k].stage, letters[k].reason) for k in letters} == {
        key: ("triage", reason) for key, _value, reason in bad
    }
    # All 100 decided, once each, within the bar.
    assert sorted(r.key.decode() for r in decisions.records) == sorted(wanted)
    assert figures.decided_s <= DECIDED_WITHIN_S, figures
    # The stage never paused.
    last = scrapes[-1][1]
    assert last[("heart_circuit_trips_total", (("stage", "triage"),))] == 0
    assert last[("heart_circuit_open", (("stage", "triage"),))] == 0

    # The dead-letter rate metric moved, by stage and reason.
    def dead_letters(samples: dict[Any, float]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for (name, labels), value in samples.items():
            if name == "heart_deadletters_total" and dict(labels)["stage"] == "triage":
                counts[dict(labels)["reason"]] += int(value)
        return counts

    assert sum(dead_letters(scrapes[0][1]).values()) == 0
    assert dead_letters(last) == Counter(reason for _k, _v, reason in bad)
    # The shipped alert rule fires on what was scraped; it did not before the flood.
    rule = dead_letter_rule()
    before = [s for s in scrapes if s[0] < started]
    assert rule.firing(before, before[-1][0]) == {}
    firing = rule.firing(scrapes, scrapes[-1][0])
    assert set(firing) == {"triage"}, rule.values(scrapes, scrapes[-1][0])
    # And the worker said so once, loudly, instead of once per message.
    log = worker.log()
    assert log.count("DEAD LETTERS HIGH: stage triage") == 1, log[-3000:]
    assert log.count("dead-lettered ") < 20
    assert "Traceback" not in log
