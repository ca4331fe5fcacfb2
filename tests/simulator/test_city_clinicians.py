"""The city runs its clinicians: their work goes on the agenda, and on the status line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from heart.cli.up import run_simulation
from heart.policy import load_policy
from heart.schemas.calls import CallClosed
from heart.schemas.ccd import CcdEngaged, ConsultClosed, ConsultRequested
from heart.simulator.city import City
from heart.simulator.clinician_config import load_clinician_config
from heart.simulator.clinicians import Clinicians
from heart.streams.codec import encode
from heart.streams.settings import HeartSettings
from heart.streams.topics import CAD_CALLS, CCD_ASSESSMENTS, CCD_CONSULTS
from tests.factories import T0
from tests.simulator.test_clinicians import CCD_CALL

POLICY = load_policy()
CONFIG = load_clinician_config()


def _city(clinicians: Clinicians | None) -> City:
    return City(HeartSettings(), T0, 60.0, seed=1, clinicians=clinicians)


def _agenda(city: City) -> list[tuple[str, str, object]]:
    return [(spec.name, key, event) for _, _, spec, key, event in sorted(city._agenda)]


def test_a_ccd_decision_puts_the_clinicians_work_on_the_agenda() -> None:
    city = _city(Clinicians(CONFIG, POLICY, seed=1))
    city._react(orjson.loads(encode(CCD_CALL)), T0)
    agenda = _agenda(city)
    kinds = [getattr(event, "event_type", "") for _, _, event in agenda]
    assert kinds[0] == "ccd.engaged" and "ccd.disposition" in kinds
    assert all(key == CCD_CALL.call_id for _, key, _ in agenda)
    assert {topic for topic, _, _ in agenda} <= {CCD_ASSESSMENTS.name, CAD_CALLS.name}
    assert city.status.routes["ccd"] == 1


def test_a_redecision_adds_no_second_contact() -> None:
    city = _city(Clinicians(CONFIG, POLICY, seed=1))
    city._react(orjson.loads(encode(CCD_CALL)), T0)
    planned = len(city._agenda)
    again = CCD_CALL.model_copy(update={"revision": 2, "supersedes": CCD_CALL.event_id})
    city._react(orjson.loads(encode(again)), T0)
    assert len(city._agenda) == planned


def test_without_clinicians_the_cad_closes_a_ccd_call_as_resolved_by_phone() -> None:
    city = _city(None)
    city._react(orjson.loads(encode(CCD_CALL)), T0)
    ((topic, key, event),) = _agenda(city)
    assert topic == CAD_CALLS.name and key == CCD_CALL.call_id
    assert isinstance(event, CallClosed) and event.disposition == "resolved_by_phone"


def test_an_assigned_team_asks_a_clinician_when_the_config_says_it_always_does() -> None:
    always = CONFIG.consults.crt.model_copy(update={"share": 1.0})
    config = CONFIG.model_copy(
        update={"consults": CONFIG.consults.model_copy(update={"crt": always})}
    )
    city = _city(Clinicians(config, POLICY, seed=1))
    assigned = {
        "event_type": "dispatch.assigned",
        "call_id": "C-9",
        "team_id": "CRT-1",
        "route": "crt",
    }
    city._react(assigned, T0)
    consults = [(t, k, e) for t, k, e in _agenda(city) if t == CCD_CONSULTS.name]
    kinds = [e.event_type for _, _, e in consults]  # type: ignore[attr-defined]
    assert kinds == ["consult.requested", "consult.answered", "consult.closed"]
    requested = consults[0][2]
    assert isinstance(requested, ConsultRequested)
    assert requested.requested_by == "crt" and requested.team_id == "CRT-1"


def test_the_status_counts_calls_engaged_and_consults_asked() -> None:
    city = _city(None)
    engaged = CcdEngaged(occurred_at=T0, call_id="C-1", clinician_id="CL-101")
    asked = ConsultRequested(
        occurred_at=T0, consult_id="K-1", requested_by="police", call_id="C-1", urgency="soon"
    )
    city._count_sent(CCD_ASSESSMENTS, engaged)
    city._count_sent(CCD_CONSULTS, asked)
    city._count_sent(
        CCD_CONSULTS, ConsultClosed(occurred_at=T0, consult_id="K-1", clinician_id="CL-101")
    )
    assert "clinicians engaged=1 consults=1" in city.status.line(T0, POLICY.zone)
    assert any(
        "1 calls engaged, 1 consults asked" in line for line in city.status.lines(T0, POLICY.zone)
    )


async def test_a_bad_policy_stops_heart_simulate_before_the_city_with_its_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text('name = "x"\n')
    settings = HeartSettings(policy=str(bad), kafka_bootstrap="127.0.0.1:1")
    code = await run_simulation(settings, speed=1.0, duration=0.1, status_every=1.0, seed=1)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"heart simulate: policy file {bad}")
    assert "Traceback" not in err
