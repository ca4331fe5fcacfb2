"""The distribution installs one top-level package, ``heart``, mapped from the layer folders."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_under_heart() -> None:
    folders = SETUPTOOLS["package-dir"]
    found = set()
    for dotted, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((dotted, *rel)))
        for module in (ROOT / folder).rglob("*.py"):
            assert (module.parent / "__init__.py").exists(), f"add {module.parent}/__init__.py"
    missing = found - set(SETUPTOOLS["packages"])
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    assert all(name.startswith("heart.") for name in SETUPTOOLS["packages"])


def test_the_wheel_holds_only_the_heart_namespace(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves a build/ folder beside the sources it builds.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in SETUPTOOLS["package-dir"].values():
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("heart_stream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"heart"}
    # Data the stages load at run time travels with the code.
    assert "heart/policy/durham.toml" in names
    assert "heart/simulator/clinicians.toml" in names
    assert "heart/cad/mappings/milwaukee-2018.toml" in names
    assert "heart/cli/__main__.py" in names
