"""Reading a project TOML file (policy, roster, CAD mapping) with errors that name it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from heart.policy.file_problems import FileProblem


def read_toml(file: Path, error: type[FileProblem]) -> dict[str, Any]:
    """Parse ``file``; a missing or unreadable file, bytes that are not UTF-8, or a TOML
    syntax error raise ``error(file, [("", problem)])``."""
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise error(file, [("", "file not found")]) from None
    except OSError as exc:
        raise error(file, [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(file, [("", f"not UTF-8 text: {exc.reason} at byte {exc.start}")]) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line N, column M)".
        raise error(file, [("", f"TOML syntax error: {exc}")]) from None
