"""The stage registry: every stage's name and the module that registers its agents."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Protocol

from heart.streams.settings import HeartSettings
from heart.streams.stage import Stage, create_stage

#: Stage name -> module exposing ``register(stage: Stage) -> None``.
STAGES: dict[str, str] = {
    "triage": "heart.agents.triage.agent",
    "ccd": "heart.agents.ccd.agent",
    "dispatch": "heart.agents.dispatch.agent",
    "navigation": "heart.agents.navigation.agent",
    "eido": "heart.agents.eido.agent",
    "reporting": "heart.agents.reporting.agent",
}


class StageModule(Protocol):
    register: Callable[[Stage], None]


class UnknownStage(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown stage {name!r}; the stages are: {', '.join(sorted(STAGES))}")


def build_stage(name: str, settings: HeartSettings) -> Stage:
    if name not in STAGES:
        raise UnknownStage(name)
    module: StageModule = importlib.import_module(STAGES[name])  # type: ignore[assignment]
    stage = create_stage(name, settings)
    module.register(stage)
    return stage


@functools.cache
def stage_inputs(name: str) -> frozenset[str]:
    """Catalog names of the topics a stage's agents consume, read from the agents
    themselves (deploy manifests, benchmarks and drain checks must not keep their own
    lists)."""
    stage = build_stage(name, HeartSettings())
    names: set[str] = set()
    for agent in stage.app.agents.values():
        names.update(agent.channel.topics)  # type: ignore[attr-defined]
    return frozenset(stage.topic_label(n) or n for n in names)
