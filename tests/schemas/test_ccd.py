"""The CCD wire contract: what the clinicians' events accept, and what they refuse."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from heart.schemas.ccd import CcdSafetyPlan, SafetyPlanSteps
from heart.schemas.registry import EVENT_TYPES, export_json_schemas
from heart.schemas.triage import TriageDecision
from heart.streams.codec import DecodeError, decode, encode
from heart.streams.topics import CATALOG
from tests.factories import every_event
from tests.schemas.ccd_events import ALL_STEPS, ccd_events

CCD_TYPES = {
    "ccd.engaged",
    "ccd.screened",
    "ccd.safety_plan",
    "ccd.referral",
    "ccd.disposition",
}
CONSULT_TYPES = {"consult.requested", "consult.answered", "consult.closed", "consult.overdue"}


def wire(event_type: str) -> dict[str, Any]:
    """The valid example of ``event_type`` as JSON, to edit into a bad one."""
    (event,) = [e for e in ccd_events() if e.event_type == event_type]
    return orjson.loads(encode(event))


def topic_of(event_type: str) -> str:
    return "ccd.assessments" if event_type in CCD_TYPES else "ccd.consults"


@pytest.mark.parametrize("event", ccd_events(), ids=lambda e: e.event_type)
def test_each_event_round_trips_through_its_topic(event: Any) -> None:
    adapter = CATALOG[topic_of(event.event_type)].adapter
    assert decode(adapter, encode(event)) == event


def test_the_topics_carry_exactly_the_named_events() -> None:
    assert {e.event_type for e in ccd_events()} == CCD_TYPES | CONSULT_TYPES
    for topic, types in (("ccd.assessments", CCD_TYPES), ("ccd.consults", CONSULT_TYPES)):
        spec = CATALOG[topic]
        assert spec.partitions == 6
        schema = spec.adapter.json_schema()
        assert set(schema["discriminator"]["mapping"]) == types
    assert CATALOG["ccd.assessments"].key == "call_id"
    assert CATALOG["ccd.consults"].key == "consult_id"


def test_schema_export_names_every_new_event(tmp_path) -> None:
    export_json_schemas(tmp_path, {name: spec.value for name, spec in CATALOG.items()})
    index = orjson.loads((tmp_path / "index.json").read_bytes())
    assert CCD_TYPES | CONSULT_TYPES <= set(index["events"]) == set(EVENT_TYPES)
    assert {"ccd.assessments", "ccd.consults"} <= set(index["topics"])


def refused(event_type: str, data: dict[str, Any]) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(CATALOG[topic_of(event_type)].adapter, orjson.dumps(data))
    return info.value


@pytest.mark.parametrize("event_type", sorted(CCD_TYPES | CONSULT_TYPES))
@pytest.mark.parametrize("field", ["notes", "narrative", "caller_name"])
def test_no_event_takes_a_field_it_does_not_define(event_type: str, field: str) -> None:
    error = refused(event_type, {**wire(event_type), field: "caller said she has a plan"})
    assert field in str(error)
    assert "caller said" not in str(error)  # the text itself is never echoed


@pytest.mark.parametrize("nested", ["answers", "steps"])
def test_nested_answers_and_steps_take_no_narrative(nested: str) -> None:
    event_type = "ccd.screened" if nested == "answers" else "ccd.safety_plan"
    data = wire(event_type)
    data[nested]["comment"] = "free text"
    assert f"{nested}.comment" in str(refused(event_type, data))


@pytest.mark.parametrize(
    "record_ref",
    ["Patient reports plan", "ehr 7731", "", "x" * 129, "/leading-slash"],
)
def test_record_ref_is_an_opaque_pointer_not_text(record_ref: str) -> None:
    data = {**wire("ccd.safety_plan"), "record_ref": record_ref}
    assert "record_ref" in str(refused("ccd.safety_plan", data))


def test_record_ref_is_optional() -> None:
    data = wire("ccd.safety_plan")
    del data["record_ref"]
    assert decode(CcdSafetyPlan, orjson.dumps(data)).record_ref is None


@pytest.mark.parametrize(
    "clinician_id",
    ["Jane Smith", "jsmith", "", "CL 42", "x1" * 33, "Dr. Smith", "CL-42\n"],
)
@pytest.mark.parametrize("event_type", ["ccd.disposition", "consult.answered"])
def test_a_clinician_is_an_opaque_id_never_a_name(clinician_id: str, event_type: str) -> None:
    data = {**wire(event_type), "clinician_id": clinician_id}
    assert "clinician_id" in str(refused(event_type, data))


@pytest.mark.parametrize("clinician_id", ["CL-0042", "4471", "staff.17", "durham:ccd:09"])
def test_staff_ids_are_accepted(clinician_id: str) -> None:
    data = {**wire("ccd.engaged"), "clinician_id": clinician_id}
    assert decode(CATALOG["ccd.assessments"].adapter, orjson.dumps(data)).clinician_id == (
        clinician_id
    )


@pytest.mark.parametrize("disposition", ["resolved", "dispatch_police", "RESOLVED_BY_PHONE", ""])
def test_unknown_disposition_is_refused(disposition: str) -> None:
    data = {**wire("ccd.disposition"), "disposition": disposition}
    assert "disposition" in str(refused("ccd.disposition", data))


@pytest.mark.parametrize("missing", ["q1", "q2", "q6"])
def test_the_always_asked_answers_are_required(missing: str) -> None:
    data = wire("ccd.screened")
    del data["answers"][missing]
    error = refused("ccd.screened", data)
    assert error.reason == "missing_field" and f"answers.{missing}" in str(error)


def test_q6_timing_is_one_of_the_screeners_two() -> None:
    data = wire("ccd.screened")
    data["answers"].update(q6=True, q6_when="last year")
    assert "answers.q6_when" in str(refused("ccd.screened", data))


def test_answers_are_booleans_not_text() -> None:
    data = wire("ccd.screened")
    data["answers"]["q1"] = "yes, sometimes"
    assert "answers.q1" in str(refused("ccd.screened", data))


def test_safety_plan_carries_all_six_flags() -> None:
    data = wire("ccd.safety_plan")
    del data["steps"]["safe_environment"]
    assert "steps.safe_environment" in str(refused("ccd.safety_plan", data))
    assert SafetyPlanSteps(**ALL_STEPS).completed == 6
    assert SafetyPlanSteps(**{**ALL_STEPS, "distraction": False}).completed == 5


@pytest.mark.parametrize("resource", ["Mobile Crisis", "988 lifeline", "", "-x"])
def test_referral_resource_is_an_id(resource: str) -> None:
    data = {**wire("ccd.referral"), "resource": resource}
    assert "resource" in str(refused("ccd.referral", data))


def test_referral_states_its_warm_handoff() -> None:
    data = wire("ccd.referral")
    del data["warm_handoff"]
    assert "warm_handoff" in str(refused("ccd.referral", data))


def test_consult_names_its_call_or_team() -> None:
    data = wire("consult.requested")
    del data["team_id"]
    assert "call_id" in str(refused("consult.requested", data))
    assert decode(
        CATALOG["ccd.consults"].adapter, orjson.dumps({**data, "call_id": "C-9"})
    ).call_id == ("C-9")


@pytest.mark.parametrize(("field", "value"), [("requested_by", "ems"), ("urgency", "asap")])
def test_consult_requester_and_urgency_are_closed_lists(field: str, value: str) -> None:
    data = {**wire("consult.requested"), field: value}
    assert field in str(refused("consult.requested", data))


def test_naive_timestamps_are_refused() -> None:
    data = {**wire("ccd.engaged"), "occurred_at": "2024-07-15T10:00:00"}
    assert refused("ccd.engaged", data).reason == "naive_timestamp"


def test_decisions_without_rules_route_still_decode() -> None:
    (decision,) = [e for e in every_event() if isinstance(e, TriageDecision)]
    data = orjson.loads(encode(decision))
    del data["rules_route"]
    assert decode(TriageDecision, orjson.dumps(data)).rules_route is None
    assert decode(TriageDecision, orjson.dumps({**data, "rules_route": "ccd"})).rules_route == "ccd"
