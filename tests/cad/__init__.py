"""CAD adapters: mappings, export import, EIDO intake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The real CAD exports: ``$HEART_SHARED_DATA``, else the copy kept in ``data/``.

    The repository carries the two public exports (4.8 MB, sources in data/SOURCES.md) so
    that a clean clone in CI tests the import path on real, messy data, never a skip.
    """
    configured = os.environ.get("HEART_SHARED_DATA")
    return Path(configured) if configured else REPO / "data"


def shared_file(name: str) -> Path:
    path = shared_data_dir() / name
    if not path.is_file():
        pytest.fail(f"real CAD export {name} not found in {path.parent} (set HEART_SHARED_DATA)")
    return path
