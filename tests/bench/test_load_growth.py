"""The load benchmark's memory growth: measured after warm-up, not from the start."""

from __future__ import annotations

import pytest

from bench.load import rss_growth, warmup_seconds


def _rows(values: list[float], every: float = 10.0) -> list[dict[str, float]]:
    return [{"t": i * every, "triage": v} for i, v in enumerate(values)]


def test_warm_up_lasts_the_longest_retention_and_a_minute_but_at_most_half_the_run() -> None:
    assert warmup_seconds(600, 0.05, 0.02) == pytest.approx(240.0)
    assert warmup_seconds(600, 0.0) == pytest.approx(60.0)
    assert warmup_seconds(300, 1.0) == pytest.approx(150.0)


def test_state_gained_during_warm_up_is_not_growth() -> None:
    # 0-240 s: the retention fills (100 -> 180); then flat at 180 with noise.
    rows = _rows([100 + 80 * i / 24 for i in range(24)] + [180, 182, 179, 181] * 9)
    mib, pct = rss_growth(rows, "triage", 240.0)
    assert mib is not None and abs(mib) < 2
    assert pct is not None and abs(pct) < 1


def test_growth_after_warm_up_is_reported_in_mib_and_percent() -> None:
    rows = _rows([100.0] * 24 + [100.0 + i for i in range(37)])
    mib, pct = rss_growth(rows, "triage", 240.0)
    # First minute after warm-up (240-299 s): 100..105, mean 102.5; the last (540-600 s):
    # 130..136, mean 133.
    assert mib == pytest.approx(30.5)
    assert pct == pytest.approx(29.8)


def test_a_run_too_short_to_compare_two_minutes_has_no_growth_figure() -> None:
    # 110 s: the minute after a 60 s warm-up overlaps the last minute.
    assert rss_growth(_rows([100.0] * 12), "triage", 60.0) == (None, None)
    assert rss_growth(_rows([100.0] * 20), "triage", 60.0) == (0.0, 0.0)
    assert rss_growth([], "triage", 60.0) == (None, None)
