"""How long a team is busy with a call: travel to the scene plus time on scene.

The defaults are the department's figure and a stated assumption:

- travel: lognormal with a mean of 7.6 minutes, the figure Durham's teams averaged in
  their first two months, and the spread the city simulator draws with (sigma of the log
  0.45: most trips 3 to 15 minutes);
- on scene: lognormal with a mean of 45 minutes and sigma of the log 0.5 (most visits 17
  to 90 minutes). No figure is published, so this is an assumption and a parameter.

Either part can be fixed, exponential, lognormal, or the empirical distribution of a
running system's own dispatch timings (:func:`calibrate`: ``assignment_to_on_scene_s``
of ``dispatch.on_scene`` and ``time_on_scene_s`` of ``dispatch.cleared``).

Draws are keyed by the call: a call's two uniforms come from a hash of the seed, a stream
name and its call id, so the same call takes the same time under every policy and every
team count (common random numbers: curves compare policies and team counts, not luck),
and the same seed gives the same times on any machine.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: Microseconds per minute: the simulation's clock runs in integer microseconds.
MINUTE_US = 60_000_000
#: The department's mean travel, assignment to on scene.
DEFAULT_TRAVEL_MINUTES = 7.6
#: The assumed mean time on scene (no published figure).
DEFAULT_ON_SCENE_MINUTES = 45.0
TRAVEL_SIGMA = 0.45
ON_SCENE_SIGMA = 0.5
#: Fewest timings of each kind :func:`calibrate` accepts: fewer say little about a spread.
MIN_TIMINGS = 20

Shape = Literal["fixed", "exponential", "lognormal", "empirical"]
_NORMAL = statistics.NormalDist()
_TWO_64 = float(2**64)


@dataclass(frozen=True)
class Distribution:
    """One part of the time on call, in minutes."""

    shape: Shape
    mean: float
    #: Lognormal only: the standard deviation of the log.
    sigma: float = 0.0
    #: Empirical only: the observed minutes, sorted.
    samples: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not math.isfinite(self.mean) or self.mean < 0:
            raise ValueError(f"a mean time must be 0 or more minutes, not {self.mean}")
        if self.shape == "lognormal" and not (self.sigma >= 0 and math.isfinite(self.sigma)):
            raise ValueError(f"a lognormal sigma must be 0 or more, not {self.sigma}")
        if self.shape == "empirical" and not self.samples:
            raise ValueError("an empirical distribution needs samples")

    @classmethod
    def fixed(cls, minutes: float) -> Distribution:
        return cls("fixed", minutes)

    @classmethod
    def exponential(cls, mean: float) -> Distribution:
        return cls("exponential", mean)

    @classmethod
    def lognormal(cls, mean: float, sigma: float) -> Distribution:
        return cls("lognormal", mean, sigma)

    @classmethod
    def empirical(cls, minutes: Iterable[float]) -> Distribution:
        samples = tuple(sorted(m for m in minutes if math.isfinite(m) and m >= 0))
        if not samples:
            raise ValueError("an empirical distribution needs samples")
        return cls("empirical", statistics.fmean(samples), samples=samples)

    def quantile(self, u: float) -> float:
        """The minutes at probability ``u`` (0 < u < 1)."""
        if self.shape == "fixed" or self.mean == 0:
            return self.mean
        if self.shape == "exponential":
            return -self.mean * math.log1p(-u)
        if self.shape == "lognormal":
            mu = math.log(self.mean) - self.sigma**2 / 2
            return math.exp(mu + self.sigma * _NORMAL.inv_cdf(u))
        return self.samples[min(int(u * len(self.samples)), len(self.samples) - 1)]

    def scaled(self, mean: float) -> Distribution:
        """The same shape with another mean."""
        if self.shape == "empirical":
            factor = mean / self.mean if self.mean else 0.0
            return Distribution("empirical", mean, samples=tuple(s * factor for s in self.samples))
        return Distribution(self.shape, mean, self.sigma)

    def describe(self) -> str:
        if self.shape == "fixed":
            return f"{self.mean:g} min, fixed"
        if self.shape == "exponential":
            return f"mean {self.mean:g} min, exponential"
        if self.shape == "lognormal":
            return f"mean {self.mean:g} min, lognormal (sigma of log {self.sigma:g})"
        return f"mean {self.mean:.1f} min, as observed ({len(self.samples):,} timings)"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": self.shape, "mean_minutes": round(self.mean, 3)}
        if self.shape == "lognormal":
            out["sigma_of_log"] = self.sigma
        if self.shape == "empirical":
            out["timings"] = len(self.samples)
        return out


@dataclass(frozen=True)
class TimeOnCall:
    """Travel plus time on scene: how long one call keeps one team busy."""

    travel: Distribution
    on_scene: Distribution
    #: Where the figures come from, in a few words, for reports.
    source: str = "defaults"

    @property
    def mean_minutes(self) -> float:
        return self.travel.mean + self.on_scene.mean

    def with_mean(self, minutes: float) -> TimeOnCall:
        """Mean travel plus on scene of ``minutes``: travel keeps its mean, on scene takes
        the rest (``--time-on-call-minutes``). ValueError when it leaves nothing for the
        scene."""
        if not math.isfinite(minutes) or minutes <= self.travel.mean:
            raise ValueError(
                f"time on call must be more than the {self.travel.mean:g} min of travel, "
                f"not {minutes:g} min"
            )
        return TimeOnCall(
            self.travel,
            self.on_scene.scaled(minutes - self.travel.mean),
            f"{self.source}, time on call set to {minutes:g} min",
        )

    def minutes(self, u_travel: float, u_scene: float) -> float:
        return self.travel.quantile(u_travel) + self.on_scene.quantile(u_scene)

    def durations(self, call_ids: Sequence[str], seed: int, stream: str) -> list[int]:
        """Each call's time on call, in microseconds, keyed by seed, stream and call id."""
        out = []
        for call_id in call_ids:
            u1, u2 = uniforms(seed, stream, call_id)
            out.append(round(self.minutes(u1, u2) * MINUTE_US))
        return out

    def describe(self) -> str:
        return (
            f"{self.mean_minutes:.1f} min per call: travel {self.travel.describe()} + "
            f"on scene {self.on_scene.describe()}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean_minutes": round(self.mean_minutes, 3),
            "travel": self.travel.to_dict(),
            "on_scene": self.on_scene.to_dict(),
            "source": self.source,
        }


def default_time_on_call(
    travel_minutes: float = DEFAULT_TRAVEL_MINUTES,
    on_scene_minutes: float = DEFAULT_ON_SCENE_MINUTES,
) -> TimeOnCall:
    """The default shapes (see the module docstring) with the given means."""
    return TimeOnCall(
        Distribution.lognormal(travel_minutes, TRAVEL_SIGMA),
        Distribution.lognormal(on_scene_minutes, ON_SCENE_SIGMA),
        "defaults: the department's 7.6 min travel, an assumed 45 min on scene"
        if (travel_minutes, on_scene_minutes) == (DEFAULT_TRAVEL_MINUTES, DEFAULT_ON_SCENE_MINUTES)
        else f"lognormal, {travel_minutes:g} min travel and {on_scene_minutes:g} min on scene",
    )


def uniforms(seed: int, stream: str, call_id: str) -> tuple[float, float]:
    """Two independent uniforms in (0, 1) for one call, the same on every machine."""
    digest = hashlib.blake2b(f"{seed}|{stream}|{call_id}".encode(), digest_size=16).digest()
    a = int.from_bytes(digest[:8], "little")
    b = int.from_bytes(digest[8:], "little")
    return (a + 0.5) / _TWO_64, (b + 0.5) / _TWO_64


def calibrate(events: Iterable[Mapping[str, Any]], source: str = "dispatch timings") -> TimeOnCall:
    """The time on call a running system shows: the empirical distributions of its
    ``dispatch.on_scene`` events' ``assignment_to_on_scene_s`` (travel) and its
    ``dispatch.cleared`` events' ``time_on_scene_s``, as JSON objects (what
    ``dispatch.events`` carries). Other events are skipped.

    The two parts are drawn independently. ValueError when either has fewer than
    :data:`MIN_TIMINGS` timings.
    """
    travel: list[float] = []
    scene: list[float] = []
    for event in events:
        kind = event.get("event_type")
        if kind == "dispatch.on_scene" and _seconds(event.get("assignment_to_on_scene_s")):
            travel.append(float(event["assignment_to_on_scene_s"]) / 60)
        elif kind == "dispatch.cleared" and _seconds(event.get("time_on_scene_s")):
            scene.append(float(event["time_on_scene_s"]) / 60)
    for name, found, field in (
        ("travel", travel, "dispatch.on_scene with assignment_to_on_scene_s"),
        ("on-scene", scene, "dispatch.cleared with time_on_scene_s"),
    ):
        if len(found) < MIN_TIMINGS:
            raise ValueError(
                f"{source}: {len(found)} {name} timings ({field}); at least {MIN_TIMINGS} "
                "are needed to calibrate"
            )
    return TimeOnCall(
        Distribution.empirical(travel),
        Distribution.empirical(scene),
        f"calibrated from {source} ({len(travel):,} arrivals, {len(scene):,} clearings)",
    )


def _seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
