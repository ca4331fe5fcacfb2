"""Runtime settings, read from ``HEART_*`` environment variables.

Production points at Apache Kafka and the tests at the embedded broker with no code
change: only these values differ. Every field maps to ``HEART_<FIELD>`` in upper case.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "HEART_"
#: Written by ``heart up`` into the data directory while it runs: its broker's address
#: and its pid, so that other commands find it.
UP_STATE_FILE = "up.json"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/heart``, else ``~/.local/state/heart`` (the XDG default)."""
    env = os.environ if environ is None else environ
    state_home = env.get("XDG_STATE_HOME")
    base = Path(state_home) if state_home else Path.home() / ".local" / "state"
    return base / "heart"


class SettingsError(ValueError):
    """A ``HEART_*`` variable holds a value that cannot be used."""


class HeartSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Which broker this is: "embedded" (Tansu, for heart up, tests and CI) turns on the
    # workarounds for its defects (heart.streams.embedded), "kafka" turns them off.
    broker: Literal["embedded", "kafka"] = "embedded"
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = Field(None, repr=False)
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None

    # Tansu never answers a waiting fetch early, so Faust's hard-coded 1.5 s wait costs
    # about a second per hop; 10 ms brings a hop to tens of milliseconds.
    fetch_wait_ms: int = Field(10, ge=1, le=60_000)
    # A fetch from inside a long partition log needs longer than that on Tansu, which
    # stops gathering records when the wait is over (streams/embedded/fetch_wait.py); used only
    # while a consumer is behind, when the broker answers as soon as it has gathered.
    fetch_backlog_wait_ms: int = Field(500, ge=1, le=60_000)
    # Each group join on the embedded broker takes half the session timeout.
    session_timeout_s: float = Field(6.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)
    rebalance_timeout_s: float = Field(6.0, gt=0)
    producer_linger_s: float = Field(0.005, ge=0)
    # aiokafka holds one batch per partition in flight: a stage that writes a burst (a
    # decision and a changelog record per call) waits a broker round trip every
    # producer_max_batch_bytes per partition. Faust's default is 16 KiB.
    producer_max_batch_bytes: int = Field(16_384, ge=1_024, le=1_048_576)
    # Table changelog records wait in Faust's producer buffer; above this many, Faust stops
    # the stream until it has drained (Faust's value: 100).
    producer_buffer_max: int = Field(100, ge=1)
    commit_every: int = Field(10_000, ge=1)
    commit_interval_s: float = Field(1.0, gt=0)
    # Records fetched ahead and waiting per stream are memory a worker holds while it is
    # behind; this bounds it. 2,048 is four batches of the largest size; 512 measured no
    # better for memory under load and cost a plain Faust agent and dispatch about a
    # fifth of their throughput (docs/performance.md, "Stream buffer and fetch sizes").
    stream_buffer_maxsize: int = Field(2_048, ge=1)
    max_poll_records: int = Field(2_000, ge=1)
    # Bytes one fetch may bring per partition (Faust's consumer_max_fetch_size); a record
    # batch larger than this still comes whole, on Kafka and on the embedded broker.
    consumer_max_fetch_bytes: int = Field(1_048_576, ge=1_024)
    # Bytes one fetch response may bring over all its partitions (aiokafka's
    # fetch_max_bytes; Faust leaves aiokafka's 50 MiB, Tansu caps a response at 5 MiB):
    # what a worker that is behind holds fetched but not yet handed to its streams.
    consumer_max_response_bytes: int = Field(1_048_576, ge=1_024)
    # Most input events a stage handles per trip through the event loop (streams.drain);
    # their outputs go to the producer together when the batch is done.
    batch_max_events: int = Field(500, ge=1)
    # Table recovery that applies no changelog record for this long is stuck (seen after a
    # broker loss: it waited for good on records the broker said were there); the worker
    # then exits non-zero so its supervisor (heart up, Kubernetes, compose) restarts it.
    # A healthy recovery applies records continuously. 0 disables the deadline.
    recovery_stall_timeout_s: float = Field(60.0, ge=0)
    # Seconds between handing the heap's free pages back to the OS (streams/memory.py):
    # without it a worker's resident memory creeps while what it holds stays flat.
    # 0 disables it.
    memory_release_interval_s: float = Field(60.0, ge=0)

    # Circuit breaker (streams/breaker.py): a stage whose own code fails on a valid message
    # pauses, holds the message and retries it after the cool-down, doubled after each
    # failed retry up to the maximum; SIGUSR1 retries at once. Bad input never pauses it.
    breaker_cooldown_s: float = Field(30.0, gt=0)
    breaker_max_cooldown_s: float = Field(120.0, gt=0)
    # Dead letters a minute, averaged over 5 minutes, above which a stage logs CRITICAL
    # (once a minute); deploy/prometheus/alerts.yml alerts on the same figure.
    deadletter_alarm_per_min: float = Field(1.0, gt=0)

    # Events dated further ahead of the stage's time than this are dead-lettered as
    # future_timestamp: a device with a broken clock must not lock a team in its status
    # or move an event clock years ahead. Responder apps report as things happen, so
    # their reports get a tight bound; other sources (CAD, other stages) a day.
    future_tolerance_s: float = Field(86_400.0, gt=0)
    future_tolerance_status_s: float = Field(300.0, gt=0)
    # On the event clock the stage's time is the newest event it has read, which trails a
    # sped-up simulation (heart up --speed N) by consumer lag x N: a tight bound would
    # refuse good reports there, so every topic gets this one.
    future_tolerance_event_clock_s: float = Field(86_400.0, gt=0)
    # Triage forgets a call this long after its last event, closed or not: a CAD that
    # never sends call.closed must not grow the stage without bound.
    triage_call_retention_h: float = Field(12.0, gt=0)
    # Triage keeps what it needs of a closed call this long, so that a clinician's
    # disposition documented after the CAD's close is recognised, not refused.
    triage_closed_retention_h: float = Field(2.0, gt=0)
    # A clinician's disposition that arrives before its call (the CCD desk and the CAD
    # are separate producers) is held this long for the call, then dead-lettered as
    # unknown_call. Producers' skew is seconds; two minutes covers a CAD hiccup.
    ccd_disposition_hold_s: float = Field(120.0, gt=0)
    # The ccd stage forgets a call's record this long after its last event: no clinician
    # stays on the line half a day, and a redelivery comes long before.
    ccd_call_retention_h: float = Field(12.0, gt=0)
    # ... and a consult no longer pending (answered, closed or reported overdue) this long
    # after its last event: longer than any target (the policy allows a day at most).
    ccd_consult_retention_h: float = Field(48.0, gt=0)
    # Care Navigation keeps a finished case this long after its last event, so that a
    # late or repeated outcome is told apart from one for a case it never had.
    navigation_closed_retention_h: float = Field(168.0, gt=0)
    # Reporting forgets what it keeps of a call this long after the call's last fact,
    # folding the call's figures into its months' settled totals: past this, no pilot
    # still changes a call, and the stage's memory follows recent calls only.
    reporting_record_retention_h: float = Field(336.0, gt=0)

    clock: Literal["wall", "event"] = "wall"
    policy: str | None = Field(None, description="Path to a policy TOML file.")
    roster: str | None = Field(None, description="Path to a team roster TOML file.")
    metrics_port: int = Field(0, ge=0, le=65535, description="0 picks a free port.")
    topic_replication: int = Field(1, ge=1)
    # Lets several cities, or parallel test runs, share one cluster without crosstalk.
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$", max_length=100)
    # Loopback by default: a worker on a laptop serves its metrics to that laptop only.
    # Containers and Kubernetes set 0.0.0.0 so that Prometheus can reach them.
    metrics_host: str = Field("127.0.0.1", min_length=1)
    # Where workers keep their local state (Faust's per-app data directory) and where
    # `heart up` leaves its address for the other commands: per user, never the current
    # directory. heart up and heart replay give their workers a per-run folder under it.
    data_dir: Path = Field(default_factory=lambda: default_data_dir())

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        # A literal "~" reaches us from .env files and compose, which do not expand it.
        return value.expanduser()

    @model_validator(mode="after")
    def _sasl_complete(self) -> HeartSettings:
        if self.kafka_security_protocol.startswith("SASL_"):
            missing = [
                f"{ENV_PREFIX}{name.upper()}"
                for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    f"security protocol {self.kafka_security_protocol} needs {', '.join(missing)}"
                )
        if self.heartbeat_interval_s >= self.session_timeout_s:
            raise ValueError("heartbeat_interval_s must be shorter than session_timeout_s")
        return self

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, find_running_up: bool | None = None
    ) -> HeartSettings:
        """Settings from ``HEART_*`` variables (the process environment by default).

        ``find_running_up`` (default: only when reading the process environment): without
        ``HEART_KAFKA_BOOTSTRAP``, use the broker of a ``heart up`` that is still running
        (see :func:`running_up`) and say so on stderr in one line.
        """
        env = os.environ if environ is None else environ
        known = set(cls.model_fields)
        values: dict[str, str] = {}
        for key, value in env.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key[len(ENV_PREFIX) :].lower()
            if name in known:
                values[name] = value
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(_describe(exc)) from None
        if find_running_up is None:
            find_running_up = environ is None
        if not find_running_up or "kafka_bootstrap" in values:
            return settings
        up = running_up(settings.data_dir)
        if up is None:
            return settings
        print(
            f"heart: using the broker of the running `heart up` (pid {up.pid}) at "
            f"{up.bootstrap}; set {ENV_PREFIX}KAFKA_BOOTSTRAP to use another",
            file=sys.stderr,
            flush=True,
        )
        return settings.model_copy(update={"kafka_bootstrap": up.bootstrap, "broker": up.broker})

    def aiokafka_kwargs(self) -> dict[str, object]:
        """Connection options shared by every raw aiokafka client (admin, tools, tests)."""
        kwargs: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL_"):
            kwargs["sasl_mechanism"] = self.kafka_sasl_mechanism
            kwargs["sasl_plain_username"] = self.kafka_sasl_username
            kwargs["sasl_plain_password"] = self.kafka_sasl_password
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def ssl_context(self):  # -> ssl.SSLContext
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(
            cafile=self.kafka_ssl_cafile,
            certfile=self.kafka_ssl_certfile,
            keyfile=self.kafka_ssl_keyfile,
        )


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
        lines.append(f"{name}: {err['msg']}")
    return "; ".join(lines)


class RunningUp(BaseModel):
    """What ``heart up`` leaves in ``UP_STATE_FILE`` while it runs."""

    model_config = ConfigDict(frozen=True)

    pid: int
    bootstrap: str
    broker: Literal["embedded", "kafka"] = "embedded"


def up_state_path(data_dir: Path) -> Path:
    return data_dir / UP_STATE_FILE


def write_up_state(data_dir: Path, up: RunningUp) -> Path:
    """Record a running ``heart up`` for the other commands; returns the file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = up_state_path(data_dir)
    # Written whole, then renamed: a reader never sees half a file.
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(orjson.dumps(up.model_dump()))
    partial.replace(path)
    return path


def remove_up_state(data_dir: Path, pid: int) -> None:
    """Remove the state file if it is still the one ``pid`` wrote."""
    path = up_state_path(data_dir)
    up = _read_up_state(path)
    if up is not None and up.pid == pid:
        path.unlink(missing_ok=True)


def running_up(data_dir: Path) -> RunningUp | None:
    """The ``heart up`` recorded in ``data_dir``, if its process is alive and its broker
    accepts connections (a pid can be reused after a crash; the port tells them apart)."""
    up = _read_up_state(up_state_path(data_dir))
    if up is None or not _alive(up.pid):
        return None
    host, _, port = up.bootstrap.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=0.5):
            pass
    except (OSError, ValueError):
        return None
    return up


def _read_up_state(path: Path) -> RunningUp | None:
    try:
        return RunningUp.model_validate(orjson.loads(path.read_bytes()))
    except (OSError, ValueError):
        # Missing, unreadable or not ours: as if no heart up were running.
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
