"""Personal data never leaks, and the Kafka security settings reach the clients.

Privacy: calls carrying planted names, phone numbers and addresses in ``caller`` and
``location`` (valid calls, and invalid ones that are dead-lettered) run through every
stage. Then every worker log, the test process's own logs, every dead-letter header,
every decision and dispatch event, and every worker's /metrics are searched:

- caller names and phone numbers appear nowhere (in any spelling of the number);
- addresses appear only where a responder needs them: in the decision (dispatch reads the
  address from it) and in the dispatch events that send or redirect a team
  (assigned, queued, updated, fallback, cancelled), never in a log, a header or a metric.

The dead-letter *value* is the original record unchanged, by design (it is kept for
reprocessing), so it is not searched.

Security: the embedded broker (Tansu 0.6.0) can require SASL/SCRAM, but with its memory
storage no user can exist before authentication is required (``tansu user create`` itself
needs an authenticated connection), and its ``--cert``/``--key`` options cannot be given
together, so TLS cannot be served. So: against a broker that requires authentication a
plaintext client is refused and a SCRAM client built from ``HeartSettings`` is driven into
the SCRAM exchange (and refused for its unknown user); and the configuration is shown to
pass through unchanged to aiokafka kwargs, Faust credentials and Faust's aiokafka clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from heart.schemas import DispatchEvent, UnitStatusReport
from heart.streams.admin import create_topics
from heart.streams.app import create_app, faust_credentials
from heart.streams.codec import DecodeError, decode
from heart.streams.embedded.broker import broker_binary
from heart.streams.ports import find_free_port, port_in_use
from heart.streams.settings import HeartSettings
from heart.streams.topics import (
    CAD_CALLS,
    DEADLETTER,
    DISPATCH_EVENTS,
    FOLLOWUP_TASKS,
    FOLLOWUP_TIMERS,
    TRIAGE_DECISIONS,
    UNITS_AUDIT,
    UNITS_STATUS,
)
from tests.factories import T0, call_received
from tests.kafka import ROOT, Worker
from tests.reliability.support import Feed, TopicWatch, of_type, stop_worker

NAMES = ("Zelda Quixote-Pemberton", "Rosalind Okonkwo-Vasquez", "Ýmir Þórðarson")
PHONES = ("919-555-0147", "+1 (984) 555-0199", "9195550123")
ADDRESSES = ("4417 Wisteria Hollow Lane", "88 Quillfeather Court Apt 3")
#: Dispatch events that send, hold or redirect a team (or police): they carry the address.
ADDRESSED = {
    "dispatch.assigned",
    "dispatch.queued",
    "dispatch.updated",
    "dispatch.fallback",
    "dispatch.cancelled",
    "dispatch.backup_requested",
}


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _leaks(text: str, *, addresses: bool = True) -> list[str]:
    """Planted values found in ``text``; phone numbers are also matched digit for digit."""
    found = [n for n in NAMES if n in text]
    found += [n.split()[-1] for n in NAMES if n.split()[-1] in text]
    # Any run of digits and separators, compared digit for digit: 919.555.0147 counts.
    runs = {_digits(m) for m in re.findall(r"\d[\d\s().+-]{6,}\d", text)}
    found += [p for p in PHONES if p in text or any(_digits(p)[-10:] in r for r in runs)]
    if addresses:
        found += [a for a in ADDRESSES if a in text]
    return found


def _calls() -> tuple[list[tuple[str, bytes]], set[str]]:
    """Valid calls (CRT, so a team goes) and invalid ones, all carrying personal data."""
    out: list[tuple[str, bytes]] = []
    valid = set()
    for i in range(12):
        call = call_received(
            call_id=f"PII-{i}",
            event_id=f"pii-{i}",
            beat=("111", "214", "411", "512")[i % 4],
            occurred_at=T0,
            caller={"name": NAMES[i % 3], "phone": PHONES[i % 3]},
            location={"address": ADDRESSES[i % 2], "lat": 35.99, "lon": -78.9},
            safety_notes=None,
        )
        out.append((call.call_id, call.model_dump_json().encode()))
        valid.add(call.call_id)
    base = orjson.loads(out[0][1])
    bad = [
        {**base, "call_id": "PII-B1", "occurred_at": "2024-07-15T10:00:00"},  # naive
        {**base, "call_id": "PII-B2", "caller": {"name": NAMES[0] * 20, "phone": PHONES[1]}},
        {**base, "call_id": "PII-B3", "caller": {"name": NAMES[1], "phone": PHONES[0] * 5}},
        {**base, "call_id": "PII-B4", "location": {"address": ADDRESSES[0] * 30}},
        {**base, "call_id": "PII-B5", "caller": NAMES[2]},  # not an object
        {**base, "call_id": "PII-B6", "location": {"address": ADDRESSES[1], "lat": 999}},
    ]
    out += [(b["call_id"], orjson.dumps(b)) for b in bad]
    out.append(("PII-B7", f'{{"caller": "{NAMES[0]}", "phone": "{PHONES[0]}"'.encode()))
    return out, valid


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


@pytest.mark.broker
async def test_planted_personal_data_never_leaks(
    settings: HeartSettings,
    unique: str,
    tmp_path: Path,
    captured: pytest.LogCaptureFixture,
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"pii{unique}."})
    await create_topics(scoped)
    workers = {
        name: Worker(name, scoped, tmp_path, HEART_CLOCK="event").start()
        for name in ("triage", "dispatch", "navigation")
    }
    watches = {
        spec.name: await TopicWatch(scoped, spec).start()
        for spec in (
            TRIAGE_DECISIONS,
            DISPATCH_EVENTS,
            DEADLETTER,
            UNITS_AUDIT,
            FOLLOWUP_TIMERS,
            FOLLOWUP_TASKS,
        )
    }
    feed = await Feed(scoped).start()
    calls, valid = _calls()
    try:
        await asyncio.gather(*(w.wait_ready(90) for w in workers.values()))
        for key, raw in calls:
            await feed.send(CAD_CALLS, key, raw)
        await feed.producer.flush()
        # Four teams go; each clears (a follow-up is scheduled); the rest wait and are
        # released to police after the policy's wait (event time moves on with a report).
        await watches[DISPATCH_EVENTS.name].wait(
            lambda w: len(of_type(w.events(), "dispatch.assigned")) >= 4,
            timeout=60,
            what="teams assigned",
        )
        for e in of_type(watches[DISPATCH_EVENTS.name].events(), "dispatch.assigned"):
            for n, status in enumerate(("en_route", "on_scene", "cleared"), start=1):
                report = UnitStatusReport(
                    team_id=e.team_id or "",
                    status=status,  # type: ignore[arg-type]
                    call_id=e.call_id,
                    occurred_at=T0 + timedelta(minutes=n),
                    event_id=f"pii-r-{e.call_id}-{status}",
                )
                await feed.send(UNITS_STATUS, report.team_id, report)
        await feed.producer.flush()
        await watches[DISPATCH_EVENTS.name].wait(
            lambda w: len(of_type(w.events(), "dispatch.cleared")) >= 4,
            timeout=60,
            what="teams cleared",
        )
        await watches[DEADLETTER.name].wait(
            lambda w: len(w.records) >= 7, timeout=60, what="dead letters"
        )
        await watches[FOLLOWUP_TIMERS.name].wait(
            lambda w: len(w.records) >= 1, timeout=60, what="a follow-up scheduled"
        )
        for w in watches.values():
            await w.quiet(1.5)
        metrics = {
            name: urllib.request.urlopen(f"http://127.0.0.1:{w.metrics_port}/metrics", timeout=5)
            .read()
            .decode()
            for name, w in workers.items()
        }
    finally:
        await feed.stop()
        for w in watches.values():
            await w.stop()
        for w in workers.values():
            stop_worker(w)

    decisions = watches[TRIAGE_DECISIONS.name].events()
    assert {d.call_id for d in decisions} == valid, "the planted calls went through"
    dispatched: list[DispatchEvent] = watches[DISPATCH_EVENTS.name].events()
    assert of_type(dispatched, "dispatch.assigned"), "teams were sent"

    problems: dict[str, list[str]] = {}

    def check(where: str, text: str, *, addresses: bool = True) -> None:
        if found := _leaks(text, addresses=addresses):
            problems[where] = found

    for name, w in workers.items():
        check(f"{name} log", w.log())
    # In process: everything a product would log (INFO and up), and the project's own
    # DEBUG lines. (aiokafka's own DEBUG lines in this process come from the test's
    # stand-in CAD producer, which logs what it sends; see the --loglevel debug test.)
    product = "heart"
    check(
        "test process log",
        "\n".join(
            r.getMessage()
            for r in captured.records
            if r.levelno >= logging.INFO or r.name.startswith(product)
        ),
    )
    for name, body in metrics.items():
        check(f"{name} /metrics", body)
    for record in watches[DEADLETTER.name].records:
        check(f"dead-letter headers of {record.key!r}", repr(record.headers))
    for d in decisions:
        # The decision carries the address (dispatch needs it), never the caller.
        check(f"decision {d.call_id}", d.model_dump_json(), addresses=False)
        assert "caller" not in orjson.loads(d.model_dump_json())
    for e in dispatched:
        check(f"{e.event_type} {e.call_id}", e.model_dump_json(), addresses=False)
        if e.event_type not in ADDRESSED:
            check(f"{e.event_type} {e.call_id} (no address)", e.model_dump_json())
    for spec in (UNITS_AUDIT, FOLLOWUP_TIMERS, FOLLOWUP_TASKS):
        for record in watches[spec.name].records:
            check(f"{spec.name} {record.key!r}", record.value.decode())
    assert problems == {}, problems

    # The team learns the address (it must find the person), and nothing about the caller.
    assigned = of_type(dispatched, "dispatch.assigned")[0]
    assert assigned.location is not None and assigned.location.address in ADDRESSES
    assert "caller" not in orjson.loads(assigned.model_dump_json())


def test_decode_errors_name_fields_never_values(captured: pytest.LogCaptureFixture) -> None:
    """In process: the text every dead-letter header and log line is built from."""
    calls, _ = _calls()
    refused = 0
    for _, raw in calls:
        try:
            decode(CAD_CALLS.adapter, raw)
        except DecodeError as exc:
            refused += 1
            logging.getLogger("heart.test").warning("refused: %s (%s)", exc, exc.detail)
            assert _leaks(str(exc)) == [] and _leaks(exc.detail) == [], exc.detail
    assert refused == 7
    assert _leaks(captured.text) == []


# --- SASL/SCRAM and TLS -------------------------------------------------------------------


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Tansu with ``--authentication``: every client must authenticate (SASL/SCRAM)."""
    port = find_free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path / "auth-broker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--authentication",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"RUST_LOG": "warn"},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while not port_in_use("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield f"127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(10)


async def _connect(settings: HeartSettings) -> BaseException | None:
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs(), request_timeout_ms=5000)  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(admin.start(), 15)
        await admin.list_topics()
    except BaseException as exc:
        return exc
    finally:
        with contextlib.suppress(BaseException):
            await admin.close()
    return None


async def test_a_broker_requiring_authentication_refuses_plaintext_and_runs_scram(
    auth_broker: tuple[str, Path],
) -> None:
    bootstrap, log = auth_broker
    plaintext = await _connect(HeartSettings(kafka_bootstrap=bootstrap))
    assert plaintext is not None, "a client without credentials must be refused"

    scram = HeartSettings.from_env(
        {
            "HEART_KAFKA_BOOTSTRAP": bootstrap,
            "HEART_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "HEART_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "HEART_KAFKA_SASL_USERNAME": "heart",
            "HEART_KAFKA_SASL_PASSWORD": "not-a-user-here",
        }
    )
    refused = await _connect(scram)
    assert refused is not None, "an unknown SCRAM user must be refused"
    trace = "".join(traceback.format_exception(refused))
    # The settings drove aiokafka into the SCRAM exchange itself (client-first,
    # server-first, client-final), which the broker ended without a server signature.
    assert "scram" in trace.lower(), trace[-2000:]

    plain = await _connect(
        scram.model_copy(update={"kafka_sasl_mechanism": "PLAIN"})  # type: ignore[arg-type]
    )
    assert plain is not None
    assert "NoSharedMechanism" in log.read_text(), "the broker offers SCRAM only, not PLAIN"


def test_sasl_and_tls_settings_pass_through_to_every_client(tmp_path: Path) -> None:
    # A CA file aiokafka can load: a throwaway self-signed certificate.
    cert, key = tmp_path / "ca.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=heart-test",
        ],
        check=True,
        capture_output=True,
    )
    env = {
        "HEART_KAFKA_BOOTSTRAP": "kafka-1:9093,kafka-2:9093",
        "HEART_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "HEART_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "HEART_KAFKA_SASL_USERNAME": "heart-triage",
        "HEART_KAFKA_SASL_PASSWORD": "s3cret-pw",
        "HEART_KAFKA_SSL_CAFILE": str(cert),
    }
    settings = HeartSettings.from_env(env)
    assert "s3cret-pw" not in repr(settings), "the password never reaches a log line"

    raw = settings.aiokafka_kwargs()
    assert raw["bootstrap_servers"] == ["kafka-1:9093", "kafka-2:9093"]
    assert raw["security_protocol"] == "SASL_SSL"
    assert (raw["sasl_mechanism"], raw["sasl_plain_username"], raw["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "heart-triage",
        "s3cret-pw",
    )
    assert isinstance(raw["ssl_context"], ssl.SSLContext)
    assert raw["ssl_context"].verify_mode == ssl.CERT_REQUIRED

    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    faust_kwargs = credentials_to_aiokafka_auth(credentials)
    assert faust_kwargs["security_protocol"] == "SASL_SSL"
    assert faust_kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert faust_kwargs["sasl_plain_username"] == "heart-triage"
    assert faust_kwargs["sasl_plain_password"] == "s3cret-pw"
    assert isinstance(faust_kwargs["ssl_context"], ssl.SSLContext)

    # The stage's Faust app carries the same credentials to its consumer and producer.
    app = create_app("triage", settings)
    assert app.conf.broker_credentials is credentials or (
        credentials_to_aiokafka_auth(app.conf.broker_credentials)["sasl_plain_username"]
        == "heart-triage"
    )
    assert [str(u) for u in app.conf.broker] == [
        "kafka://kafka-1:9093",
        "kafka://kafka-2:9093",
    ]

    tls_only = HeartSettings.from_env(
        {
            "HEART_KAFKA_SECURITY_PROTOCOL": "SSL",
            "HEART_KAFKA_SSL_CAFILE": str(cert),
        }
    )
    tls_credentials = faust_credentials(tls_only)
    assert isinstance(tls_credentials, SSLCredentials)
    assert credentials_to_aiokafka_auth(tls_credentials)["security_protocol"] == "SSL"
    assert tls_only.aiokafka_kwargs()["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in tls_only.aiokafka_kwargs()


class DebugWorker(Worker):
    """``heart worker STAGE --loglevel debug``: what an operator runs to chase a problem."""

    def start(self) -> DebugWorker:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "heart.cli", "worker", self.stage, "--loglevel", "debug"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self


@pytest.mark.broker
async def test_debug_logging_does_not_leak_personal_data(
    settings: HeartSettings, unique: str, tmp_path: Path
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"piidbg{unique}."})
    await create_topics(scoped)
    worker = DebugWorker("triage", scoped, tmp_path).start()
    decisions = await TopicWatch(scoped, TRIAGE_DECISIONS).start()
    feed = await Feed(scoped).start()
    try:
        await worker.wait_ready(90)
        calls, _ = _calls()
        for key, raw in calls[:3]:
            await feed.send(CAD_CALLS, key, raw)
        await feed.producer.flush()
        await decisions.wait(lambda w: len(w.records) >= 3, timeout=30, what="decisions")
        await asyncio.sleep(1.0)
    finally:
        await feed.stop()
        await decisions.stop()
        stop_worker(worker)
    leaks = _leaks(worker.log())
    lines = [line[:160] for line in worker.log().splitlines() if _leaks(line)][:3]
    assert leaks == [], f"--loglevel debug logs personal data, e.g. {lines}"
