"""The layers import one way only, checked with import-linter's contract in pyproject.toml:
cli -> agents -> cad | simulator -> policy -> streams -> schemas."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "setuptools"
]["package-dir"]
BARE = {dotted.removeprefix("heart.") for dotted in FOLDERS}


def _tree(base: Path, *, copy: bool) -> Path:
    """``base/heart/<layer>`` for every layer folder, so that import-linter (which walks
    files, not the editable install's import hook) sees the package as installed."""
    for dotted, folder in FOLDERS.items():
        target = base.joinpath(*dotted.split("."))
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy:
            shutil.copytree(ROOT / folder, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.symlink_to(ROOT / folder, target_is_directory=True)
    return base


def _lint(base: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=base,
        env={**os.environ, "PYTHONPATH": str(base)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_layers_import_one_way(tmp_path: Path) -> None:
    result = _lint(_tree(tmp_path, copy=False))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    base = _tree(tmp_path, copy=True)
    codec = base / "heart" / "streams" / "codec.py"
    codec.write_text(codec.read_text() + "\nfrom heart.agents.registry import STAGES  # noqa\n")
    result = _lint(base)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "heart.streams.codec -> heart.agents.registry" in result.stdout


def test_nothing_imports_a_layer_by_its_bare_folder_name() -> None:
    offenders = []
    for folder in [*FOLDERS.values(), "tests", "bench"]:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                offenders += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {name}"
                    for name in names
                    if name.split(".")[0] in BARE
                ]
    assert not offenders, "import these as heart.<layer>…:\n" + "\n".join(offenders)
