"""What commands write by default into the current directory is ignored by git."""

from __future__ import annotations

import argparse
import fnmatch
from pathlib import Path

from heart.cli.main import build_parser
from tests.kafka import ROOT


def ignored(path: str, patterns: list[str]) -> bool:
    """Enough of gitignore's rules for these patterns: a trailing / matches folders, a
    pattern without / matches a name at any depth."""
    name = path.rstrip("/")
    is_dir = path.endswith("/")
    for pattern in patterns:
        if pattern.endswith("/") and not is_dir:
            continue
        if fnmatch.fnmatch(Path(name).name, pattern.strip("/")):
            return True
    return False


def default_outputs() -> dict[str, str]:
    """Each command's default output: a folder, or for ``.`` the files it writes there."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = {}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.dest == "out" and isinstance(action.default, Path):
                found[name] = f"{action.default}/"
    return found


def test_default_output_folders_are_ignored() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    outputs = default_outputs()
    assert {"whatif", "replay", "report"} <= set(outputs), outputs
    for command, out in outputs.items():
        if out == "./":
            # heart report writes the month's page and figures into the current folder.
            for name in ("heart-report-2024-07.html", "heart-report-2024-07.json"):
                assert ignored(name, patterns), f"heart {command}: {name}"
        else:
            assert ignored(out, patterns), f"heart {command} writes {out} by default"
    # Faust's data folders, wherever an app without HEART_DATA_DIR leaves them.
    assert ignored("heart-triage-data/", patterns)
    assert ignored("tri1c6887bc.heart-triage-data/", patterns)
    assert not ignored("heart/", patterns)
