"""The libraries whose private attributes heart.streams patches are within the versions the
patches were written for, and pyproject.toml bounds each of them above."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
#: Distribution -> where the code reaches into its internals.
PATCHED = {
    "faust-streaming": "heart.streams.kafka (consumer, transport, monitor) and heart.streams.app",
    "mode-streaming": "heart.streams.kafka.delivery and heart.streams.kafka.consumer",
    "aiokafka": "heart.streams.kafka.explicit_topics and heart.streams.embedded.fetch_wait",
    "uvicorn": "heart.cli.console.server (Server.capture_signals)",
}


def _requirements() -> dict[str, Requirement]:
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {(r := Requirement(text)).name: r for text in listed}


def test_every_patched_library_has_an_upper_bound() -> None:
    requirements = _requirements()
    for name, where in PATCHED.items():
        assert name in requirements, f"pyproject.toml must pin {name} ({where} patches it)"
        uppers = [s for s in requirements[name].specifier if s.operator in ("<", "<=", "==")]
        assert uppers, f"give {name} an upper bound in pyproject.toml: {where} patches it"


def test_installed_versions_are_those_the_patches_were_written_for() -> None:
    requirements = _requirements()
    for name, where in PATCHED.items():
        installed = version(name)
        allowed = requirements[name].specifier
        assert allowed.contains(installed, prereleases=True), (
            f"{name} {installed} is installed, but {where} patches its internals and was "
            f"written for {name}{allowed}: install a version in that range, or re-check the "
            "patches against this one and widen the range"
        )
