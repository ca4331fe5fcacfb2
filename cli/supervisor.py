"""Process supervision for ``heart up``: one worker process per stage, restarted on death."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class StageProcess:
    stage: str
    env: dict[str, str]
    log_path: Path
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    history: list[str] = field(default_factory=list)

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "heart.cli", "worker", self.stage],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """Starts every stage, reports any that dies, restarts it with exponential backoff."""

    def __init__(
        self,
        stages: list[str],
        base_env: dict[str, str],
        log_dir: Path,
        first_metrics_port: int,
        max_backoff: float = 30.0,
    ) -> None:
        self.max_backoff = max_backoff
        self.processes = [
            StageProcess(
                stage=name,
                env={**base_env, "HEART_METRICS_PORT": str(first_metrics_port + i)},
                log_path=log_dir / f"{name}.log",
                metrics_port=first_metrics_port + i,
            )
            for i, name in enumerate(stages)
        ]

    def start(self) -> None:
        for p in self.processes:
            p.start()

    def check(self) -> list[str]:
        """Restart dead stages whose backoff has passed. Returns messages to show the user."""
        messages = []
        now = time.monotonic()
        for p in self.processes:
            if p.alive():
                continue
            if p.proc is not None:
                code = p.proc.returncode
                p.proc = None
                p.restarts += 1
                delay = min(self.max_backoff, 2 ** (p.restarts - 1))
                p.next_start = now + delay
                msg = (
                    f"stage {p.stage} died (exit {code}); restart #{p.restarts} in {delay:.0f}s "
                    f"(log: {p.log_path})"
                )
                p.history.append(msg)
                messages.append(msg)
                log.error(msg)
            elif now >= p.next_start:
                p.start()
                messages.append(f"stage {p.stage} restarted (pid {p.proc.pid if p.proc else '?'})")
        return messages

    def stop(self, timeout: float = 15.0) -> None:
        for p in self.processes:
            if p.alive() and p.proc is not None:
                p.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.processes:
            if p.proc is None:
                continue
            try:
                p.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # A stage that ignores SIGTERM must not outlive heart up.
                os.killpg(p.proc.pid, signal.SIGKILL)
                p.proc.wait(5)
