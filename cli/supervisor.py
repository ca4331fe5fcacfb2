"""Process supervision for ``heart up`` and ``heart replay``: one worker process per stage,
restarted on death, except a stage that could not start at all."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: What Faust's worker logs once the stage has started and joined its group.
READY_MARKER = "[^Worker]: Ready"
#: Exit status of a worker whose table recovery stalled (cli.worker): worth a restart
#: even before the stage was ever ready.
RECOVERY_STALLED_EXIT = 75
#: Continuation lines kept after a stage's error line (e.g. a roster's problems).
ERROR_DETAIL_LINES = 12
#: The one line a worker prints under its name that is not an error (cli/worker.py).
_WORKER_INFO = ": metrics on http"
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


class StageStartError(RuntimeError):
    """A stage exited before it was ever ready: a setting, policy or roster it cannot use.
    Restarting it would fail the same way."""

    def __init__(self, stage: str, code: int | None, reason: str, log_path: Path) -> None:
        self.stage = stage
        self.code = code
        self.reason = reason
        self.log_path = log_path
        super().__init__(f"stage {stage} could not start (exit {code}): {reason}")

    def describe(self) -> str:
        """For the user: the stage's own error, then where its whole log is."""
        return f"stage {self.stage} could not start: {self.reason}\n(full log: {self.log_path})"


def stage_error(log_text: str) -> str:
    """The stage's own account of why it stopped, from its log.

    A worker reports bad input as ``heart worker...: message`` and maybe indented detail
    lines; that is kept whole. Otherwise the exception line that ends a traceback, else the
    last line that says anything.
    """
    return logged_error(log_text) or _last_words(log_text)


def logged_error(log_text: str) -> str | None:
    """The error a stage logged last (see :func:`stage_error`), or None when it logged
    none (a stage killed by a signal has only its ordinary last lines)."""
    lines = [line.rstrip() for line in log_text.splitlines()]
    for i in range(len(lines) - 1, -1, -1):
        if _EXCEPTION_LINE.match(lines[i]):
            return lines[i]
        if lines[i].startswith("heart worker") and _WORKER_INFO not in lines[i]:
            detail = []
            for line in lines[i + 1 :]:
                if not line.startswith((" ", "\t")) or len(detail) >= ERROR_DETAIL_LINES:
                    break
                detail.append(line)
            return "\n".join([lines[i].split(": ", 1)[-1], *detail])
    return None


def _last_words(log_text: str) -> str:
    meaningful = [line.strip() for line in log_text.splitlines() if line.strip()]
    return meaningful[-1] if meaningful else "no output (see its log)"


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
    was_ready: bool = False

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

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ready(self) -> bool:
        """True once this stage has been ready (in this log, so across restarts too)."""
        if not self.was_ready:
            self.was_ready = READY_MARKER in self.log_text()
        return self.was_ready

    def start_error(self) -> StageStartError | None:
        """Why this stage, which exited by itself before it was ever ready, cannot start;
        None while it runs, once it has been ready, or when a restart may help (killed by
        a signal, or its table recovery stalled)."""
        if self.proc is None or self.alive() or self.ready():
            return None
        code = self.proc.returncode
        if code <= 0 or code == RECOVERY_STALLED_EXIT:
            return None
        return StageStartError(self.stage, code, stage_error(self.log_text()), self.log_path)


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
        """Restart dead stages whose backoff has passed. Returns messages to show the user.

        Raises :class:`StageStartError` for a stage that died before it was ever ready.
        """
        messages = []
        now = time.monotonic()
        for p in self.processes:
            if p.alive():
                continue
            failed = p.start_error()
            if failed is not None:
                raise failed
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
                error = logged_error(p.log_text())
                if error is not None:
                    msg += f"\n  its last error: {error.splitlines()[0]}"
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
