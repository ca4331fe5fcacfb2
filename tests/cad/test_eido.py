"""NENA EIDO intake: the shipped valid, partial and invalid samples, every failure reason,
and later EIDOs for the same incident becoming updates."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from heart.agents.triage.decide import decide
from heart.cad.eido import (
    REASONS,
    EidoError,
    EidoTranslator,
    call_update,
    eido_to_call,
    load_apco_table,
    translate_eido,
)
from heart.cad.importer import stable_event_id
from heart.cad.mapping import MappingError, load_mapping
from heart.policy import load_policy
from heart.schemas.calls import CallReceived, CallUpdated

SAMPLES = Path(__file__).resolve().parents[2] / "cad" / "samples"
EDT = timezone(timedelta(hours=-4))


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"eido-{name}.json").read_text(encoding="utf-8"))


@pytest.fixture
def valid() -> dict[str, Any]:
    return sample("valid")


def reason_of(eido: Any) -> str:
    with pytest.raises(EidoError) as exc:
        eido_to_call(eido)
    assert exc.value.reason in REASONS
    return exc.value.reason


# --- the samples --------------------------------------------------------------------------


def test_valid_sample_translates_every_part() -> None:
    call = eido_to_call((SAMPLES / "eido-valid.json").read_bytes())
    assert call.call_id == "EX-24-0716-00123"
    assert call.call_type == "Welfare Check"  # APCO WELFARE
    assert call.occurred_at == datetime(2024, 7, 16, 10, 12, 41, 250_000, tzinfo=EDT)
    assert call.priority == 3
    assert call.beat == "113"
    assert call.location is not None
    assert call.location.address == "100 Example St, Durham, NC 27701"
    assert (call.location.lat, call.location.lon) == (35.994, -78.8986)
    assert call.caller is not None
    assert (call.caller.name, call.caller.phone) == ("Alex Example", "+19195550147")
    assert call.language == "es"
    assert not (call.weapon_involved or call.violence_reported or call.behavioral_health)
    assert call.event_id == stable_event_id("eido", "EX-24-0716-00123")


def test_valid_sample_goes_to_crt_under_durham_policy() -> None:
    # A Tuesday 10:12 in beat 113, a welfare check, no weapon: Durham's CRT takes it.
    decision = decide(eido_to_call(sample("valid")), load_policy())
    assert decision.route == "crt"
    assert decision.category == "Welfare Check"
    assert decision.interpreter == "es"


def test_partial_sample_translates_without_optional_parts() -> None:
    call = eido_to_call(sample("partial"))
    assert call.call_id == "EX-24-0716-00124"
    assert call.call_type == "Mental Health Crisis"  # APCO EDP
    assert call.behavioral_health
    assert call.occurred_at == datetime(2024, 7, 16, 14, 20, 5, tzinfo=UTC)
    assert call.beat is None and call.priority is None
    assert call.location is None and call.caller is None
    assert call.language == "en"


def test_invalid_sample_is_refused_with_a_reason() -> None:
    with pytest.raises(EidoError) as exc:
        eido_to_call((SAMPLES / "eido-invalid.json").read_text(encoding="utf-8"))
    assert exc.value.reason == "missing_incident_id"
    assert "internalIncidentId" in exc.value.message


# --- every failure reason -----------------------------------------------------------------


def test_reasons(valid: dict[str, Any]) -> None:
    assert reason_of(b"{not json") == "invalid_json"
    assert reason_of("[1, 2]") == "unknown_structure"
    assert reason_of({"callComponent": []}) == "unknown_structure"
    assert reason_of({**valid, "callComponent": "call-1"}) == "unknown_structure"

    broken = copy.deepcopy(valid)
    del broken["incidentComponent"]["internalIncidentId"]
    del broken["incidentComponent"]["incidentTrackingIdentifier"]
    assert reason_of(broken) == "missing_incident_id"

    broken = copy.deepcopy(valid)
    for key in ("incidentTypeCommonRegistryText", "incidentTypeInternalText"):
        del broken["incidentComponent"][key]
    del broken["callComponent"][0]["localCallType"]
    assert reason_of(broken) == "missing_call_type"

    broken = copy.deepcopy(valid)
    del broken["callComponent"]
    del broken["incidentComponent"]["lastUpdateTimeStamp"]
    assert reason_of(broken) == "missing_timestamp"

    broken = copy.deepcopy(valid)
    broken["callComponent"][0]["callStartTimestamp"] = "2024-07-16T10:12:41"
    assert reason_of(broken) == "naive_timestamp"

    broken = copy.deepcopy(valid)
    broken["callComponent"][0]["callStartTimestamp"] = "last Tuesday"
    assert reason_of(broken) == "bad_timestamp"

    broken = copy.deepcopy(valid)
    broken["incidentComponent"]["internalIncidentId"] = "X" * 65
    assert reason_of(broken) == "invalid_field"


def test_error_reason_must_be_known() -> None:
    with pytest.raises(ValueError, match="unknown EIDO error reason"):
        EidoError("because", "no")


def test_call_time_falls_back_to_the_incident_stamp(valid: dict[str, Any]) -> None:
    del valid["callComponent"]
    call = eido_to_call(valid)
    assert call.occurred_at == datetime(2024, 7, 16, 10, 14, 5, tzinfo=EDT)


def test_earliest_call_is_when_the_incident_came_in(valid: dict[str, Any]) -> None:
    later = {**valid["callComponent"][0], "callStartTimestamp": "2024-07-16T14:20:00Z"}
    valid["callComponent"].insert(0, later)
    assert eido_to_call(valid).occurred_at == datetime(2024, 7, 16, 10, 12, 41, 250_000, tzinfo=EDT)


# --- call types and flags -----------------------------------------------------------------


def test_unknown_code_keeps_the_code_and_goes_to_police(valid: dict[str, Any]) -> None:
    valid["incidentComponent"]["incidentTypeCommonRegistryText"] = "BURGLARY"
    call = eido_to_call(valid)
    assert call.call_type == "BURGLARY"
    assert decide(call, load_policy()).route == "police"


def test_weapon_code_raises_the_flag(valid: dict[str, Any]) -> None:
    valid["incidentComponent"]["incidentTypeCommonRegistryText"] = "WEAPON"
    call = eido_to_call(valid)
    assert call.weapon_involved and not call.violence_reported


def test_city_mapping_reads_the_local_type(valid: dict[str, Any]) -> None:
    milwaukee = load_mapping("milwaukee-2018")
    incident = valid["incidentComponent"]
    incident["incidentTypeCommonRegistryText"] = "LOCALONLY"
    incident["incidentTypeInternalText"] = "TRESPASSER"
    call = eido_to_call(valid, mapping=milwaukee)
    assert call.call_type == "Trespass"
    assert call.event_id == stable_event_id("milwaukee", "EX-24-0716-00123")
    incident["incidentTypeInternalText"] = "SUBJ WITH WEAPON"
    armed = eido_to_call(valid, mapping=milwaukee)
    assert armed.call_type == "LOCALONLY" and armed.weapon_involved


def test_unreadable_location_falls_back_to_its_description(valid: dict[str, Any]) -> None:
    valid["locationComponent"][0]["locationByValue"] = "<presence><unclosed>"
    call = eido_to_call(valid)
    assert call.location is not None
    assert call.location.address == "front steps of the library"
    assert call.location.lat is None


def test_json_location_and_language_names_are_understood(valid: dict[str, Any]) -> None:
    valid["locationComponent"][0]["locationByValue"] = {
        "address": "1 Plain Json Way",
        "latitude": 36.0,
        "longitude": -78.9,
    }
    person = valid["personComponent"][0]["ncPersonComponent"]
    person["nc:PersonPrimaryLanguage"] = {"nc:LanguageName": "Vietnamese"}
    call = eido_to_call(valid)
    assert call.location is not None
    assert (call.location.address, call.location.lat) == ("1 Plain Json Way", 36.0)
    assert call.language == "vi"


# --- updates ------------------------------------------------------------------------------


def later(eido: dict[str, Any], minutes: int, **incident: Any) -> dict[str, Any]:
    changed = copy.deepcopy(eido)
    stamp = (datetime(2024, 7, 16, 10, 14, 5, tzinfo=EDT) + timedelta(minutes=minutes)).isoformat()
    changed["lastUpdateTimeStamp"] = stamp
    changed["incidentComponent"]["lastUpdateTimeStamp"] = stamp
    changed["incidentComponent"].update(incident)
    return changed


def test_translator_turns_later_eidos_into_updates(valid: dict[str, Any]) -> None:
    translator = EidoTranslator()
    [received] = translator.translate(valid)
    assert isinstance(received, CallReceived)
    # The same EIDO again (a re-delivery) changes nothing.
    assert translator.translate(valid) == []

    [update] = translator.translate(
        later(valid, 5, beatOrDispatchGroupText="212", incidentTypeCommonRegistryText="FIGHT")
    )
    assert isinstance(update, CallUpdated)
    assert update.call_id == received.call_id
    assert update.beat == "212"
    assert update.call_type == "FIGHT"
    assert update.violence_reported is True
    assert update.location is None and update.priority is None  # unchanged
    assert update.occurred_at == datetime(2024, 7, 16, 10, 19, 5, tzinfo=EDT)

    # Back to a welfare code: the type changes, but reported violence is not withdrawn.
    [back] = translator.translate(
        later(valid, 9, beatOrDispatchGroupText="212", incidentTypeCommonRegistryText="WELFARE")
    )
    assert back.call_type == "Welfare Check"
    assert back.violence_reported is None


def test_missing_parts_in_a_later_eido_are_not_removals(valid: dict[str, Any]) -> None:
    translator = EidoTranslator()
    translator.translate(valid)
    sparse = later(valid, 3)
    for name in ("locationComponent", "personComponent"):
        del sparse[name]
    del sparse["incidentComponent"]["beatOrDispatchGroupText"]
    assert translator.translate(sparse) == []


def test_update_ids_are_deterministic(valid: dict[str, Any]) -> None:
    first = eido_to_call(valid)
    changed = translate_eido(later(valid, 5, incidentCommonPriorityNumber=7))
    one = call_update(first, changed)
    two = call_update(first, changed)
    assert one is not None and two is not None
    assert one.priority == 7
    assert one.event_id == two.event_id != first.event_id


def test_translator_forgets_the_least_recent_incident(valid: dict[str, Any]) -> None:
    translator = EidoTranslator(max_incidents=1)
    other = copy.deepcopy(valid)
    other["incidentComponent"]["internalIncidentId"] = "EX-OTHER"
    first = translator.translate(valid)
    translator.translate(other)
    # Forgotten, so received again, with the same event id for consumers to de-duplicate.
    assert translator.translate(valid) == first


# --- the APCO table file ------------------------------------------------------------------


def test_bad_apco_table_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "apco.toml"
    path.write_text(
        'standard = "x"\n[codes.EDP]\ncategory = "Mental Health Crisis"\nweapon = "yes"\n',
        encoding="utf-8",
    )
    with pytest.raises(MappingError) as exc:
        load_apco_table(path)
    assert exc.value.problems == [
        ("codes.EDP.weapon", "must be a boolean (true or false), got string 'yes'")
    ]
    assert str(path) in str(exc.value)
