"""CAD adapters: mappings, export import, EIDO intake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The real CAD exports: ``$HEART_SHARED_DATA``, else ``../shared/data`` beside the repo.

    CI clones the repository elsewhere, so the path is never taken from the working
    directory.
    """
    configured = os.environ.get("HEART_SHARED_DATA")
    return Path(configured) if configured else REPO.parent / "shared" / "data"


def shared_file(name: str) -> Path:
    path = shared_data_dir() / name
    if not path.is_file():
        pytest.skip(f"real CAD export {name} not found in {path.parent} (set HEART_SHARED_DATA)")
    return path
