"""Care Navigation forgets a finished case ``navigation_closed_retention_h`` after its last
event, and never an open one (``_Sweeper._full_scan``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from heart.agents.navigation.agent import _Sweeper
from heart.streams import expiry
from heart.streams.settings import HeartSettings
from heart.streams.stage import create_stage

NOW = datetime(2024, 7, 22, 12, tzinfo=UTC)


def record(partition: int, touched: datetime, *, open_: bool) -> dict[str, Any]:
    pending = expiry.iso(NOW + timedelta(hours=1)) if open_ else None
    return expiry.stamped({"case": {}, "pending_at": pending}, partition=partition, touched=touched)


def scan(retention_h: float, cases: dict[str, Any], partition: int = 0) -> _Sweeper:
    # Outside a batch the stage deletes from the table itself (here a plain dict).
    stage = create_stage("navigation", HeartSettings())
    sweeper = _Sweeper(stage, cases, None, timedelta(hours=retention_h))  # type: ignore[arg-type]
    sweeper._full_scan(partition, NOW)
    return sweeper


def test_a_finished_case_is_forgotten_after_the_retention_and_kept_before() -> None:
    cases = {
        "old": record(0, NOW - timedelta(hours=2), open_=False),
        "recent": record(0, NOW - timedelta(minutes=30), open_=False),
    }
    scan(1.0, cases)
    assert set(cases) == {"recent"}


def test_an_open_case_is_never_forgotten_and_is_counted() -> None:
    cases = {
        "waiting": record(0, NOW - timedelta(days=30), open_=True),
        "other-partition": record(1, NOW - timedelta(days=30), open_=False),
    }
    sweeper = scan(1.0, cases)
    # Another partition's case waits for that partition's own scan.
    assert set(cases) == {"waiting", "other-partition"}
    assert sweeper.open_by_partition == {0: 1}


def test_the_default_keeps_finished_cases_a_week() -> None:
    assert HeartSettings().navigation_closed_retention_h == 168.0
    cases = {
        "six-days": record(0, NOW - timedelta(days=6), open_=False),
        "eight-days": record(0, NOW - timedelta(days=8), open_=False),
    }
    scan(HeartSettings().navigation_closed_retention_h, cases)
    assert set(cases) == {"six-days"}
