"""Times on call: each shape has the mean it is given, a call's draw depends only on the
seed, the stream and its id, and calibration from dispatch timings refuses too few."""

from __future__ import annotations

import statistics

import pytest

from heart.agents.capacity.timing import (
    MIN_TIMINGS,
    Distribution,
    TimeOnCall,
    calibrate,
    default_time_on_call,
    uniforms,
)


def mean_of(distribution: Distribution, steps: int = 200_000) -> float:
    return statistics.fmean(distribution.quantile((n + 0.5) / steps) for n in range(steps))


@pytest.mark.parametrize(
    "distribution",
    [
        Distribution.fixed(12.0),
        Distribution.exponential(45.0),
        Distribution.lognormal(7.6, 0.45),
        Distribution.lognormal(45.0, 0.5),
        Distribution.empirical([5.0, 10.0, 30.0, 55.0]),
    ],
)
def test_each_shape_has_its_mean(distribution: Distribution) -> None:
    assert mean_of(distribution) == pytest.approx(distribution.mean, rel=2e-3)


def test_the_defaults_are_the_departments_travel_and_the_assumed_scene() -> None:
    model = default_time_on_call()
    assert (model.travel.mean, model.on_scene.mean) == (7.6, 45.0)
    assert model.mean_minutes == pytest.approx(52.6)
    assert "assumed" in model.source


def test_time_on_call_keeps_travel_and_gives_the_rest_to_the_scene() -> None:
    model = default_time_on_call().with_mean(60.0)
    assert model.travel.mean == 7.6
    assert model.on_scene.mean == pytest.approx(52.4)
    assert model.mean_minutes == pytest.approx(60.0)
    with pytest.raises(ValueError, match=r"more than the 7\.6 min of travel"):
        default_time_on_call().with_mean(7.6)


def test_draws_are_keyed_by_seed_stream_and_call() -> None:
    model = default_time_on_call()
    ids = [f"C-{n}" for n in range(2_000)]
    first = model.durations(ids, 1, "crt")
    assert first == model.durations(ids, 1, "crt")
    assert first[:10] == model.durations(ids[:10], 1, "crt"), "a call's time is its own"
    assert first != model.durations(ids, 2, "crt")
    assert first != model.durations(ids, 1, "cor")
    assert statistics.fmean(first) / 60e6 == pytest.approx(52.6, rel=0.03)
    u, v = uniforms(1, "crt", "C-1")
    assert 0 < u < 1 and 0 < v < 1 and u != v


def events(travel: int, scene: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [
        {"event_type": "dispatch.on_scene", "assignment_to_on_scene_s": 300 + n}
        for n in range(travel)
    ]
    out += [{"event_type": "dispatch.cleared", "time_on_scene_s": 1800 + n} for n in range(scene)]
    # Not timings: skipped.
    out += [
        {"event_type": "dispatch.cleared", "time_on_scene_s": None},
        {"event_type": "dispatch.assigned", "decision_to_assignment_s": 12},
    ]
    return out


def test_calibration_uses_a_systems_own_timings() -> None:
    model = calibrate(events(MIN_TIMINGS, MIN_TIMINGS + 5))
    assert isinstance(model, TimeOnCall)
    assert model.travel.shape == model.on_scene.shape == "empirical"
    assert model.travel.mean == pytest.approx((300 + (MIN_TIMINGS - 1) / 2) / 60)
    assert len(model.on_scene.samples) == MIN_TIMINGS + 5
    assert "calibrated" in model.source


def test_calibration_refuses_too_few_timings() -> None:
    with pytest.raises(ValueError, match=r"3 travel timings \(dispatch.on_scene"):
        calibrate(events(3, MIN_TIMINGS))
    with pytest.raises(ValueError, match="0 on-scene timings"):
        calibrate(events(MIN_TIMINGS, 0))


def test_bad_means_are_refused() -> None:
    with pytest.raises(ValueError, match="0 or more minutes"):
        Distribution.exponential(-1.0)
    with pytest.raises(ValueError, match="needs samples"):
        Distribution.empirical([])
