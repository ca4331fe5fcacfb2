"""The console's own settings file: alert thresholds and refresh, validated like a policy.

The thresholds are the console's, not the triage policy's: they decide when a person is
told to look, never where a call goes. The shipped ``console.toml`` holds the defaults;
``heart console --settings FILE`` replaces any of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heart.policy.file_problems import FileProblem, problems_from
from heart.policy.toml_file import read_toml
from heart.schemas.dispatch import UnitStatus

DEFAULT_SETTINGS_PATH = Path(__file__).with_name("console.toml")


class ConsoleSettingsError(FileProblem):
    kind = "console settings file"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueueAlerts(_Strict):
    warn_before_fallback_minutes: float = Field(2.0, ge=0)


class BoardSettings(_Strict):
    recent_items: int = Field(20, ge=1, le=500)
    police_call_minutes: float = Field(15.0, gt=0)


class ConsoleSettings(_Strict):
    clock_interval_s: float = Field(2.0, gt=0, le=60)
    #: Status -> minutes in it before an alert; a status not listed never alerts.
    team_status_minutes: dict[UnitStatus, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {
            "dispatched": 10.0,
            "en_route": 30.0,
            "on_scene": 90.0,
            "transporting": 60.0,
            "out_of_service": 120.0,
        }
    )
    queue: QueueAlerts = Field(default_factory=QueueAlerts)
    board: BoardSettings = Field(default_factory=BoardSettings)


def parse_console_settings(
    data: dict[str, Any], *, source: str | os.PathLike[str]
) -> ConsoleSettings:
    try:
        return ConsoleSettings.model_validate(data)
    except ValidationError as exc:
        raise ConsoleSettingsError(source, problems_from(exc, ConsoleSettings)) from None


def load_console_settings(path: str | os.PathLike[str] | None = None) -> ConsoleSettings:
    """The settings in ``path`` (the shipped defaults when None); raises
    :class:`ConsoleSettingsError` naming the file, the field and the problem."""
    file = Path(path) if path is not None else DEFAULT_SETTINGS_PATH
    return parse_console_settings(read_toml(file, ConsoleSettingsError), source=file)
