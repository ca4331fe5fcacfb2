"""Workers keep their local state under HEART_DATA_DIR, never in the current directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heart.streams.app import app_data_dir, create_app
from heart.streams.ports import find_free_port
from heart.streams.settings import HeartSettings


def test_an_apps_data_directory_is_under_the_data_dir(tmp_path: Path) -> None:
    settings = HeartSettings(data_dir=tmp_path / "a {b}" / "state", topic_prefix="p.")
    app = create_app("triage", settings)
    expected = tmp_path / "a {b}" / "state" / "stages" / "p.heart-triage"
    assert app_data_dir("p.heart-triage", settings) == expected
    # Faust formats the path; braces in a folder's name survive.
    assert Path(app.conf.datadir) == expected
    app._create_directories()  # what Faust does when the app starts
    assert (expected / "v1" / "tables").is_dir()


@pytest.mark.broker
def test_a_worker_leaves_no_data_folder_in_its_current_directory(
    worker_env: dict[str, str], unique: str, tmp_path: Path
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    log = tmp_path / "triage.log"
    env = {
        **worker_env,
        "HEART_TOPIC_PREFIX": f"dd{unique}.",
        "HEART_DATA_DIR": str(tmp_path / "state"),
        "HEART_METRICS_PORT": str(find_free_port()),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "heart.cli", "worker", "triage"],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "[^Worker]: Ready" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert list(cwd.iterdir()) == []
    assert (tmp_path / "state" / "stages" / f"dd{unique}.heart-triage").is_dir()
