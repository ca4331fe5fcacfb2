"""Lag gauges: what a stage has not processed yet, buffered records included."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP
from prometheus_client import REGISTRY

from heart.streams import lag
from heart.streams.lag import note_processed, sample, unprocessed


def test_records_waiting_in_the_stream_buffer_count_as_lag() -> None:
    # Faust handed offsets up to 9,999 to the stream; the stage has processed up to 99.
    assert unprocessed(10_000, read=9_999, processed=99) == 9_900


def test_a_rewind_counts_from_the_read_offset() -> None:
    # The partition is re-read from 50: what was processed past it comes again.
    assert unprocessed(200, read=49, processed=150) == 150


def test_nothing_read_counts_the_whole_partition() -> None:
    assert unprocessed(30, read=None, processed=None) == 30


def test_caught_up_is_zero_and_never_negative() -> None:
    assert unprocessed(100, read=99, processed=99) == 0
    assert unprocessed(100, read=120, processed=None) == 0


@dataclass
class _Consumer:
    highwaters: dict[TP, int]
    _read_offset: dict[TP, int] = field(default_factory=dict)

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)


@dataclass
class _App:
    consumer: _Consumer


def _gauge(name: str, stage: str, topic: str, partition: int) -> Any:
    labels = {"stage": stage, "topic": topic, "partition": str(partition)}
    return REGISTRY.get_sample_value(name, labels)


@pytest.fixture(autouse=True)
def _forget_processed() -> Any:
    yield
    lag._processed.clear()


def test_sample_sets_messages_and_seconds_from_the_last_processed_record() -> None:
    tp = TP("lagtest.calls", 0)
    consumer = _Consumer({tp: 1_000}, {tp: 999})
    note_processed(tp, 399, time.time() - 30)
    sample(_App(consumer), "lagtest")  # type: ignore[arg-type]
    assert _gauge("heart_consumergroup_lag", "lagtest", "lagtest.calls", 0) == 600
    seconds = _gauge("heart_consumergroup_lag_seconds", "lagtest", "lagtest.calls", 0)
    assert 29 <= seconds <= 60


def test_a_record_without_a_timestamp_keeps_the_last_known_age() -> None:
    tp = TP("lagtest.calls", 3)
    note_processed(tp, 10, 1_000.0)
    note_processed(tp, 11, None)
    assert lag._processed[tp] == (11, 1_000.0)


def test_a_partition_given_away_forgets_what_was_processed_there() -> None:
    mine, gone = TP("lagtest.calls", 1), TP("lagtest.calls", 2)
    note_processed(mine, 9, None)
    note_processed(gone, 500, None)
    consumer = _Consumer({mine: 10}, {mine: 9})
    sample(_App(consumer), "lagtest")  # type: ignore[arg-type]
    assert _gauge("heart_consumergroup_lag", "lagtest", "lagtest.calls", 1) == 0
    assert gone not in lag._processed
    # Back later, not yet read again: the stale offset no longer hides its records.
    consumer.highwaters[gone] = 800
    sample(_App(consumer), "lagtest")  # type: ignore[arg-type]
    assert _gauge("heart_consumergroup_lag", "lagtest", "lagtest.calls", 2) == 800
