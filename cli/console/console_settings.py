"""The console's own settings file: alert thresholds and refresh, validated like a policy.

How long a team may stay in a status is the policy's (``[dispatch.status_alert_minutes]``):
the department decides it, as it decides the queue's longest wait. This file holds how the
console shows it: how often alerts are re-evaluated, how early a queued call is flagged,
what the board lists, and where the analyst page links to. The shipped ``console.toml``
holds the defaults; ``heart console --settings FILE`` replaces any of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from heart.policy.file_problems import FileProblem, Problems, problems_from
from heart.policy.toml_file import read_toml

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


def _web_address(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise Problems.one(
            "use a whole http:// or https:// address, such as https://grafana.example.org"
        )
    return value


#: An address the analyst page links to; checked, never fetched by the console.
WebAddress = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_web_address)]


class Links(_Strict):
    """Where the analyst page points: the monthly reports and the metrics dashboards. A
    link left out is shown as not configured, naming the key that sets it."""

    reports_url: WebAddress | None = None
    grafana_url: WebAddress | None = None
    prometheus_url: WebAddress | None = None


class ConsoleSettings(_Strict):
    clock_interval_s: float = Field(2.0, gt=0, le=60)
    queue: QueueAlerts = Field(default_factory=QueueAlerts)
    board: BoardSettings = Field(default_factory=BoardSettings)
    links: Links = Field(default_factory=Links)


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
