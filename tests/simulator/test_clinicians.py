"""Simulated CCD clinicians: valid events, in order, at the configured rates, for a seed."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from heart.agents.ccd.screening import risk_level, screening_problem
from heart.agents.triage.decide import decide
from heart.policy import load_policy
from heart.schemas.calls import CallClosed, CallReceived
from heart.schemas.ccd import (
    RISK_LEVELS,
    CcdAssessmentEvent,
    CcdDisposition,
    CcdReferral,
    CcdSafetyPlan,
    CcdScreened,
    ConsultAnswered,
    ConsultClosed,
    ConsultEvent,
    ConsultRequested,
)
from heart.schemas.triage import TriageDecision
from heart.simulator.cad_feed import CadFeed
from heart.simulator.clinician_config import (
    ClinicianConfig,
    ClinicianConfigError,
    default_clinician_config_path,
    load_clinician_config,
)
from heart.simulator.clinicians import Clinicians, Scheduled
from heart.streams.codec import encode
from heart.streams.topics import CAD_CALLS, CCD_ASSESSMENTS, CCD_CONSULTS
from tests.factories import T0, call_received

POLICY = load_policy()
CONFIG = load_clinician_config()
ASSESSMENT = TypeAdapter(CcdAssessmentEvent)
CONSULT = TypeAdapter(ConsultEvent)


def _decision(call_id: str, **call: Any) -> TriageDecision:
    return decide(call_received(call_id=call_id, **call), POLICY, now=T0)


#: T0 is a Monday 10:00 in Durham, inside every pilot's hours.
CCD_CALL = _decision("CCD-0", call_type="Suicide Threat", needs_in_person=False)
CRT_CALL = _decision("CRT-0", call_type="Mental Health Crisis", needs_in_person=True)
POLICE_CALL = _decision("POL-0", call_type="Trespass", beat="999")


def _many(base: TriageDecision, n: int, prefix: str) -> list[TriageDecision]:
    return [base.model_copy(update={"call_id": f"{prefix}-{i:05d}"}) for i in range(n)]


def _run(decisions: list[TriageDecision], seed: int = 7) -> tuple[Clinicians, list[Scheduled]]:
    clinicians = Clinicians(CONFIG, POLICY, seed=seed, decline_followup_share=0.2)
    out: list[Scheduled] = []
    for decision in decisions:
        out += clinicians.on_decision(decision, T0)
    return clinicians, out


def _by_call(items: list[Scheduled]) -> dict[str, list[Any]]:
    calls: dict[str, list[Any]] = defaultdict(list)
    for item in items:
        if item.topic is CCD_ASSESSMENTS:
            calls[item.key].append(item.event)
    return calls


def _near(count: int, total: int, share: float, tolerance: float = 0.02) -> None:
    assert total > 0
    assert abs(count / total - share) <= tolerance, f"{count}/{total} vs {share}"


def test_the_routes_the_tests_rely_on() -> None:
    assert CCD_CALL.route == "ccd"
    assert CRT_CALL.route == "crt" and "ccd" in CRT_CALL.pilots
    assert POLICE_CALL.route == "police" and POLICE_CALL.category == "Trespass"


def test_a_seed_gives_the_same_events_and_another_seed_others() -> None:
    start = datetime(2024, 3, 4, 12, tzinfo=UTC)

    def city(seed: int) -> list[dict[str, Any]]:
        clinicians = Clinicians(CONFIG, POLICY, seed=seed, decline_followup_share=0.2)
        out: list[Scheduled] = []
        for item in CadFeed(start, seed=3).events_until(start + timedelta(days=3)):
            if isinstance(item.event, CallReceived):
                out += clinicians.on_decision(decide(item.event, POLICY, now=item.at), item.at)
                out += clinicians.on_assigned(item.event.call_id, "CRT-1", "crt", item.at)
        return [{"at": i.at, "key": i.key, **i.event.model_dump(mode="json")} for i in out]

    first = city(11)
    assert first and first == city(11)
    assert first != city(12)


def test_every_event_validates_on_its_topic_with_its_key() -> None:
    _, items = _run(_many(CCD_CALL, 400, "A") + _many(CRT_CALL, 400, "B"))
    clinicians = Clinicians(CONFIG, POLICY, seed=3)
    for i in range(400):
        items += clinicians.on_assigned(f"T-{i}", "CRT-7", "crt", T0)
        items += clinicians.on_decision(POLICE_CALL.model_copy(update={"call_id": f"P-{i}"}), T0)
    topics = Counter(item.topic.name for item in items)
    assert topics[CCD_ASSESSMENTS.name] and topics[CCD_CONSULTS.name] and topics[CAD_CALLS.name]
    resources = set(POLICY.ccd_work.referral_resources)
    for item in items:
        wire = encode(item.event)
        assert item.at == item.event.occurred_at  # type: ignore[attr-defined]
        if item.topic is CCD_ASSESSMENTS:
            event = ASSESSMENT.validate_json(wire)
            assert item.key == event.call_id
            assert event.clinician_id in CONFIG.staff.clinician_ids
            if isinstance(event, CcdReferral):
                assert event.resource in resources
        elif item.topic is CCD_CONSULTS:
            event = CONSULT.validate_json(wire)
            assert item.key == event.consult_id
        else:
            assert item.topic is CAD_CALLS
            closed = CallClosed.model_validate_json(wire)
            assert item.key == closed.call_id


def test_every_screening_follows_the_screeners_skip_logic() -> None:
    _, items = _run(_many(CCD_CALL, 3000, "S") + _many(CRT_CALL, 3000, "L"))
    screenings = [i.event for i in items if isinstance(i.event, CcdScreened)]
    assert len(screenings) > 2000
    for screening in screenings:
        answers = screening.answers
        assert screening_problem(answers) is None, answers
        assert (answers.q3 is not None) == answers.q2
        assert (answers.q4 is not None) == answers.q2
        assert (answers.q5 is not None) == answers.q2
        assert (answers.q6_when is not None) == answers.q6


@pytest.mark.parametrize("level", RISK_LEVELS)
def test_answers_built_for_a_level_score_at_that_level(level: str) -> None:
    clinicians = Clinicians(CONFIG, POLICY, seed=5)
    seen = set()
    for _ in range(500):
        answers = clinicians._answers(level)
        assert screening_problem(answers) is None
        assert risk_level(answers) == level
        seen.add(answers)
    # Not one fixed answer per level: the screener's paths to a level vary.
    assert len(seen) >= (1 if level == "none" else 2)


def test_a_ccd_call_is_worked_in_order_then_closed_by_the_cad_after_a_phone_ending() -> None:
    _, items = _run(_many(CCD_CALL, 2000, "O"))
    order = ["ccd.engaged", "ccd.screened", "ccd.safety_plan", "ccd.referral", "ccd.disposition"]
    closes = {i.key: i.event for i in items if i.topic is CAD_CALLS}
    delays = CONFIG.delays
    for call_id, events in _by_call(items).items():
        kinds = [e.event_type for e in events]
        assert kinds[0] == "ccd.engaged" and kinds[-1] == "ccd.disposition"
        assert kinds == sorted(kinds, key=order.index), kinds
        times = [e.occurred_at for e in events]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert T0 + timedelta(minutes=delays.engage.shortest) <= times[0]
        assert times[0] <= T0 + timedelta(minutes=delays.engage.longest)
        assert len({e.clinician_id for e in events}) == 1
        disposition = events[-1].disposition
        if any(isinstance(e, CcdSafetyPlan) for e in events):
            screened = next(e for e in events if isinstance(e, CcdScreened))
            assert risk_level(screened.answers) != "none"
        if disposition in ("resolved_by_phone", "transferred_988", "disconnected"):
            close = closes[call_id]
            assert close.disposition == disposition
            assert close.occurred_at > events[-1].occurred_at
        else:
            assert call_id not in closes
        if disposition == "transferred_988":
            referrals = [e for e in events if isinstance(e, CcdReferral)]
            assert [(r.resource, r.warm_handoff) for r in referrals] == [("988", True)]
        if disposition == "disconnected":
            assert not any(isinstance(e, CcdSafetyPlan | CcdReferral) for e in events)


def test_a_ccd_calls_shares_are_near_the_configured_rates() -> None:
    n = 20_000
    _, items = _run(_many(CCD_CALL, n, "R"))
    calls = _by_call(items)
    assert len(calls) == n
    ccd = CONFIG.ccd_calls
    dispositions = Counter(events[-1].disposition for events in calls.values())
    for disposition, share in ccd.dispositions.items():
        _near(dispositions[disposition], n, share)
    phone = dispositions["resolved_by_phone"] + dispositions["transferred_988"]
    _near(phone, n, 0.46)  # Houston's share completely diverted
    police = dispositions["police_needed"] + dispositions["dispatch_cor"]
    _near(police, n, 1 - 0.854)  # Austin's share addressed without law enforcement

    screenings = [e for events in calls.values() for e in events if isinstance(e, CcdScreened)]
    _near(len(screenings), n, ccd.screened_share)
    levels = Counter(risk_level(s.answers) for s in screenings)
    for level, share in CONFIG.screening.risk_levels.items():
        _near(levels[level], len(screenings), share)

    plans: Counter[str] = Counter()
    screened_at: Counter[str] = Counter()
    for events in calls.values():
        if events[-1].disposition == "disconnected":
            continue
        for e in events:
            if isinstance(e, CcdScreened):
                screened_at[risk_level(e.answers)] += 1
            if isinstance(e, CcdSafetyPlan):
                plans[
                    risk_level(next(x for x in events if isinstance(x, CcdScreened)).answers)
                ] += 1
    for level, share in CONFIG.safety_plans.share_by_risk.items():
        _near(plans[level], screened_at[level], share, tolerance=0.04)
    all_plans = [e for events in calls.values() for e in events if isinstance(e, CcdSafetyPlan)]
    _near(sum(p.steps.completed == 6 for p in all_plans), len(all_plans), 0.7, tolerance=0.04)

    referrable = [
        events
        for events in calls.values()
        if events[-1].disposition not in ("disconnected", "transferred_988")
    ]
    referred = [ev for ev in referrable if any(isinstance(e, CcdReferral) for e in ev)]
    _near(len(referred), len(referrable), CONFIG.referrals.share)
    referrals = [e for ev in referrable for e in ev if isinstance(e, CcdReferral)]
    _near(
        sum(r.warm_handoff for r in referrals), len(referrals), CONFIG.referrals.warm_handoff_share
    )
    resources = Counter(r.resource for r in referrals)
    assert resources["988"] > 0
    weights = CONFIG.referrals.resource_weights
    # A first referral's resource follows the weights (a second one is drawn from the rest).
    firsts = Counter(next(e for e in ev if isinstance(e, CcdReferral)).resource for ev in referred)
    for resource, weight in weights.items():
        _near(firsts[resource], len(referred), weight / sum(weights.values()))


def test_on_the_line_a_clinician_joins_the_configured_share_and_ends_before_the_team() -> None:
    n = 20_000
    _, items = _run(_many(CRT_CALL, n, "T"))
    line = CONFIG.on_the_line
    calls = _by_call(items)
    _near(len(calls), n, line.share)
    outcomes = Counter(
        events[-1].disposition if isinstance(events[-1], CcdDisposition) else "none"
        for events in calls.values()
    )
    for outcome, share in line.outcomes.items():
        _near(outcomes[outcome], len(calls), share)
    latest = T0 + timedelta(
        minutes=CONFIG.delays.engage.longest + CONFIG.delays.line_disposition.longest
    )
    for events in calls.values():
        assert not any(isinstance(e, CcdSafetyPlan) for e in events)
        times = [e.occurred_at for e in events]
        assert times == sorted(times) and times[-1] <= latest


def test_consults_are_answered_within_target_except_the_late_share_and_closed() -> None:
    clinicians = Clinicians(CONFIG, POLICY, seed=9)
    items: list[Scheduled] = []
    for i in range(20_000):
        items += clinicians.on_assigned(f"A-{i}", "COR-1", "cor", T0)
    consults: dict[str, list[Any]] = defaultdict(list)
    for item in items:
        consults[item.key].append(item.event)
    _near(len(consults), 20_000, CONFIG.consults.cor.share)
    targets = POLICY.ccd_work.consult_targets
    late = 0
    for events in consults.values():
        requested, answered, closed = events
        assert isinstance(requested, ConsultRequested) and requested.requested_by == "cor"
        assert requested.team_id == "COR-1" and requested.call_id is not None
        assert isinstance(answered, ConsultAnswered) and isinstance(closed, ConsultClosed)
        assert requested.occurred_at < answered.occurred_at < closed.occurred_at
        due = requested.occurred_at + timedelta(minutes=targets.minutes(requested.urgency))
        late += answered.occurred_at > due
    _near(late, len(consults), CONFIG.consults.late_share, tolerance=0.01)
    urgencies = Counter(events[0].urgency for events in consults.values())
    for urgency, share in CONFIG.consults.cor.urgency.items():
        _near(urgencies[urgency], len(consults), share)


def test_no_consult_is_asked_while_ccd_is_closed() -> None:
    clinicians = Clinicians(CONFIG, POLICY, seed=9)
    saturday = datetime(2024, 7, 20, 14, tzinfo=UTC)
    night = T0 + timedelta(hours=10)
    for at in (saturday, night):
        assert not any(clinicians.on_assigned(f"N-{i}", "CRT-1", "crt", at) for i in range(500))
        police = POLICE_CALL.model_copy(update={"call_received_at": at})
        assert not any(clinicians.on_decision(police, at) for _ in range(500))


def test_dispatchers_and_officers_ask_about_behavioural_calls_no_clinician_is_on() -> None:
    _, items = _run(_many(POLICE_CALL, 20_000, "P"))
    asked = Counter(i.event.requested_by for i in items if isinstance(i.event, ConsultRequested))
    # The trespass call is outside CCD's types: no clinician on it, so dispatchers ask.
    _near(asked["dispatcher"], 20_000, CONFIG.consults.dispatcher.share, tolerance=0.01)
    _near(asked["police"], 20_000, CONFIG.consults.police.share, tolerance=0.01)
    assert not any(i.topic is CCD_ASSESSMENTS for i in items)


def test_re_decisions_start_no_new_work() -> None:
    again = CCD_CALL.model_copy(update={"revision": 2, "supersedes": CCD_CALL.event_id})
    clinicians = Clinicians(CONFIG, POLICY, seed=1)
    assert clinicians.on_decision(again, T0) == []


# --- the file -----------------------------------------------------------------------------


def _write(tmp_path: Path, old: str, new: str) -> Path:
    text = default_clinician_config_path().read_text()
    assert old in text
    file = tmp_path / "clinicians.toml"
    file.write_text(text.replace(old, new, 1))
    return file


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        (
            "resolved_by_phone = 0.42",
            "resolved_by_phone = 0.52",
            "ccd_calls.dispositions",
            "add up to 1, they add up to 1.1",
        ),
        (
            "resolved_by_phone = 0.42",
            "resolved_by_fone = 0.42",
            "ccd_calls.dispositions.resolved_by_fone",
            "'resolved_by_fone' is not one of resolved_by_phone,",
        ),
        ('"CL-101"', '"Jane Smith"', "staff.clinician_ids[0]", "is not an opaque staff id"),
        (
            "screened_share = 0.8",
            "screened_share = 1.8",
            "ccd_calls.screened_share",
            "less than or equal to 1",
        ),
        (
            "engage = { shortest = 0.2, longest = 1.5 }",
            "engage = { shortest = 2.0, longest = 1.5 }",
            "delays.engage.longest",
            "shorter than shortest",
        ),
        ("late_share = 0.05", "late_shar = 0.05", "consults.late_shar", "unknown key"),
        (
            'routes = ["crt", "cor", "police"]',
            'routes = ["ccd"]',
            "on_the_line.routes[0]",
            "'ccd' is not one of crt, cor, police",
        ),
    ],
)
def test_a_bad_file_names_the_file_and_the_field(
    tmp_path: Path, old: str, new: str, field: str, problem: str
) -> None:
    file = _write(tmp_path, old, new)
    with pytest.raises(ClinicianConfigError) as caught:
        load_clinician_config(file)
    message = str(caught.value)
    assert message.startswith(f"simulated clinicians file {file}")
    assert field in message and problem in message


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ClinicianConfigError, match="file not found"):
        load_clinician_config(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[staff\n")
    with pytest.raises(ClinicianConfigError, match="TOML syntax error"):
        load_clinician_config(broken)


def test_the_shipped_file_says_where_every_table_comes_from() -> None:
    config: ClinicianConfig = load_clinician_config()
    tables = [
        config.staff,
        config.ccd_calls,
        config.on_the_line,
        config.screening,
        config.safety_plans,
        config.referrals,
        config.consults,
        config.delays,
    ]
    for table in tables:
        assert table.source or table.assumption, type(table).__name__
