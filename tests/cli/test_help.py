"""The command line explains itself: version, stages, every option's help and default, and
a README command table that cannot drift from ``--help``."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

from heart.agents.registry import STAGES
from heart.cli.main import EXIT_STATUSES, build_parser
from tests.kafka import ROOT

OPTION = re.compile(r"--[a-z][a-z-]*")


def heart_help(*args: str) -> str:
    # A wide terminal keeps each option and its help on one line for the parsing below.
    done = subprocess.run(
        [sys.executable, "-m", "heart.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def commands_in(top_help: str) -> set[str]:
    """The commands `heart --help` lists: the indented names under COMMAND."""
    return set(re.findall(r"^    ([a-z]+)\s", top_help, flags=re.MULTILINE))


def options_in(command_help: str) -> set[str]:
    """The long options a `--help` page declares (not those its help texts mention)."""
    found: set[str] = set()
    for line in command_help.splitlines():
        if line.startswith("  -"):
            invocation = line.strip().split("  ")[0]
            found.update(OPTION.findall(invocation))
    return found


def readme_rows() -> list[tuple[str, set[str]]]:
    """(command, options named) for each row of the README's command table; a row for
    `heart --version` has the command ``""`` (the top-level parser)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = re.match(r"\| (`heart .*?) \| ", line)
        if match is None:
            continue
        usage = match.group(1)
        first = re.match(r"`heart (\S+)", usage)
        assert first is not None, line
        command = "" if first.group(1).startswith("-") else first.group(1).strip("`[]")
        rows.append((command, set(OPTION.findall(usage))))
    return rows


def drift(rows: list[tuple[str, set[str]]], pages: dict[str, str]) -> list[str]:
    """Where the README table and the help pages (command -> page, ``""`` for the top
    level) disagree: a command without a row, a row without a command, an unknown option."""
    commands = commands_in(pages[""])
    documented = {command for command, _ in rows if command}
    problems = [f"`heart {c}` has no README row" for c in sorted(commands - documented)]
    problems += [f"README row for unknown `heart {c}`" for c in sorted(documented - commands)]
    for command, options in rows:
        if command in pages:
            unknown = options - options_in(pages[command]) - {"--help"}
            problems += [f"README row `heart {command}` names {o}" for o in sorted(unknown)]
    return problems


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    top = heart_help("--help")
    return {"": top} | {command: heart_help(command, "--help") for command in commands_in(top)}


def test_readme_command_table_matches_help(pages: dict[str, str]) -> None:
    assert {"up", "worker", "import", "replay", "whatif"} <= commands_in(pages[""])
    assert drift(readme_rows(), pages) == []


def test_the_table_check_reports_each_kind_of_drift(pages: dict[str, str]) -> None:
    rows = [row for row in readme_rows() if row[0] != "whatif"]
    rows += [("import", {"--mapping", "--jsonl-out"}), ("serve", set())]
    assert drift(rows, pages) == [
        "`heart whatif` has no README row",
        "README row for unknown `heart serve`",
        "README row `heart import` names --jsonl-out",
    ]
    # Options are read from the declarations, not from what help texts mention.
    assert "--max-reject-rate" in options_in(pages["import"])
    assert "--no-such-option" not in options_in(pages["import"])


def test_version_comes_from_the_installed_distribution() -> None:
    assert heart_help("--version").strip() == f"heart {version('heart-stream')}"


def test_worker_help_lists_every_stage_with_what_it_does() -> None:
    page = heart_help("worker", "--help")
    listed = page.split("stages:\n", 1)[1]
    for stage in STAGES:
        assert re.search(rf"^  {stage}\s+\S", listed, flags=re.MULTILINE), listed
    assert "one decision per call" in listed  # triage's own summary, not a module path


def test_top_level_help_documents_the_exit_statuses() -> None:
    page = heart_help("--help")
    for status in ("0", "1", "2", "65", "69", "75", "130", "141"):
        assert re.search(rf"^  {status} +\S", page, flags=re.MULTILINE), status
    assert EXIT_STATUSES.splitlines()[0] in page
    assert "HEART_KAFKA_BOOTSTRAP" in page and "--max-reject-rate" in page


def _parsers(parser: argparse.ArgumentParser, prog: str = "heart"):
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prog} {name}")


def _is_flag(action: argparse.Action) -> bool:
    return action.nargs == 0


@pytest.mark.parametrize("prog", [prog for prog, _ in _parsers(build_parser())])
def test_every_option_has_help_and_shows_its_default(prog: str) -> None:
    parser = dict(_parsers(build_parser()))[prog]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{prog} {name}: no help"
        if action.option_strings and not _is_flag(action) and not action.required:
            shown = formatter._expand_help(action)
            assert "default" in shown, f"{prog} {name}: help does not show the default"


def test_help_pages_show_defaults_as_people_read_them() -> None:
    page = heart_help("up", "--help")
    assert "(default: 60.0)" in page and "(default: 9101)" in page
    assert "(default: run until Ctrl-C)" in page
    assert "(default: None)" not in page
    assert "(default: 0.2)" in heart_help("import", "--help")
