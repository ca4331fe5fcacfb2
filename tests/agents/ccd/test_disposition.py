"""A clinician's disposition as the call's next decision, against Durham's 2022 pilots:
CCD citywide Mon-Fri 08:00-16:30; CRT in 12 beats Mon-Fri 08:30-16:30, never to a weapon
or violence; CoR citywide Mon-Fri 08:30-16:30."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from heart.agents.ccd.disposition import (
    REASON,
    REQUESTED_ROUTE,
    disposition_decision_id,
    redecide,
)
from heart.agents.triage.decide import decide, missed
from heart.policy import Policy, load_policy
from heart.policy.model import default_policy_path, parse_policy
from heart.policy.toml_file import read_toml
from heart.schemas.calls import CallReceived
from heart.schemas.ccd import CcdDisposition, Disposition
from heart.schemas.triage import TriageDecision

DURHAM = ZoneInfo("America/New_York")
TUESDAY = "2024-07-16"


def at(hhmm: str, day: str = TUESDAY) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=DURHAM)


@pytest.fixture(scope="module")
def durham() -> Policy:
    return load_policy()


def decision(policy: Policy, **overrides: Any) -> TriageDecision:
    """The rules' first decision on a call: by default a mental-health call in CRT's beat
    111 at 10:00 that the call taker thinks needs no one in person (route ccd)."""
    fields: dict[str, Any] = {
        "call_id": "C-1",
        "call_type": "Mental Health Crisis",
        "beat": "111",
        "occurred_at": at("10:00"),
        "needs_in_person": False,
    }
    fields.update(overrides)
    return decide(CallReceived(**fields), policy)


def disposition(value: Disposition, when: str = "10:05", call_id: str = "C-1") -> CcdDisposition:
    return CcdDisposition(
        call_id=call_id, clinician_id="CL-0042", occurred_at=at(when), disposition=value
    )


def test_every_disposition_has_a_route() -> None:
    assert set(REQUESTED_ROUTE) == set(Disposition.__args__)  # type: ignore[attr-defined]


def test_ccd_call_sent_to_crt_in_hours_gets_crt_with_both_routes(durham: Policy) -> None:
    first = decision(durham)
    assert first.route == "ccd"
    event = disposition("dispatch_crt")
    result = redecide(first, event, durham, now=at("10:05"))
    new = result.decision
    assert (new.route, new.rules_route) == ("crt", "ccd")
    assert (new.revision, new.supersedes) == (2, first.event_id)
    assert new.reasons[:2] == [REASON, "disposition:dispatch_crt"]
    assert "crt_eligible" in new.reasons and "resolved_by_phone" not in new.reasons
    assert new.pilots == ["ccd", "crt", "cn"]
    assert result.requested == "crt" and result.refused == () and result.overrides_rules
    assert missed(new) == []
    assert new.source_event_id == event.event_id
    assert new.source_occurred_at == at("10:05") and new.occurred_at == at("10:05")
    # The call itself is carried unchanged.
    assert (new.call_type, new.beat, new.call_received_at) == (
        first.call_type,
        first.beat,
        first.call_received_at,
    )


@pytest.mark.parametrize(
    ("when", "call_at", "beat", "reason"),
    [
        ("16:45", "16:20", "111", "outside_hours"),  # CRT closed when the clinician asks
        ("08:15", "08:10", "111", "outside_hours"),  # CCD open, CRT not yet
        ("10:05", "10:00", "121", "outside_service_area"),
        ("10:05", "10:00", None, "unknown_beat"),
    ],
)
def test_crt_outside_its_coverage_goes_to_police_and_is_missed(
    durham: Policy, when: str, call_at: str, beat: str | None, reason: str
) -> None:
    first = decision(durham, occurred_at=at(call_at), beat=beat)
    result = redecide(first, disposition("dispatch_crt", when), durham, now=at(when))
    new = result.decision
    assert (new.route, new.rules_route) == ("police", first.route)
    assert result.refused[0] == reason
    assert f"crt_ineligible:{reason}" in new.reasons
    assert ("crt", reason) in missed(new)
    assert new.pilots == ["ccd"]


def test_hours_are_judged_when_the_clinician_asks(durham: Policy) -> None:
    # Received in CRT's hours, disposed after they ended: no team is there to send.
    first = decision(durham, occurred_at=at("16:00"))
    late = redecide(first, disposition("dispatch_crt", "16:31"), durham, now=at("16:31"))
    assert late.decision.route == "police" and late.refused == ("outside_hours",)


def test_crt_call_resolved_by_phone_becomes_ccd(durham: Policy) -> None:
    first = decision(durham, call_type="Trespass", needs_in_person=True)
    assert first.route == "crt" and "ccd" not in {e.pilot for e in first.eligibility}
    result = redecide(first, disposition("resolved_by_phone"), durham, now=at("10:05"))
    new = result.decision
    assert (new.route, new.rules_route) == ("ccd", "crt")
    assert new.pilots == ["ccd", "cn"]
    assert "resolved_by_phone" in new.reasons and "cn_follows_up" in new.reasons
    # The clinician took the call: CCD is eligible and reached, so the figures add up.
    ccd = [e for e in new.eligibility if e.pilot == "ccd"]
    assert len(ccd) == 1 and ccd[0].eligible
    assert [e.pilot for e in new.eligibility] == ["ccd", "crt"]


def test_resolved_by_phone_outside_ccd_hours_still_counts_as_ccd(durham: Policy) -> None:
    first = decision(durham, occurred_at=at("18:00"))
    assert first.route == "police"
    new = redecide(first, disposition("resolved_by_phone", "18:10"), durham, now=at("18:10"))
    assert ("ccd", "outside_hours") in missed(first)
    assert new.decision.route == "ccd"
    # CCD took it after all; CRT's miss (closed at 18:00) is the rules' and stays.
    assert missed(new.decision) == [("crt", "outside_hours")]


@pytest.mark.parametrize(
    ("value", "route"),
    [
        ("police_needed", "police"),
        ("ems_needed", "police"),
        ("transferred_988", "ccd"),
        ("disconnected", "ccd"),
        ("resolved_by_phone", "ccd"),
    ],
)
def test_routes_of_the_other_dispositions(durham: Policy, value: Disposition, route: str) -> None:
    first = decision(durham)
    result = redecide(first, disposition(value), durham, now=at("10:05"))
    assert result.decision.route == route
    assert result.decision.rules_route == "ccd"
    assert result.overrides_rules == (route != "ccd")


def test_a_weapon_keeps_crt_off_and_cor_goes_instead(durham: Policy) -> None:
    first = decision(durham, weapon_involved=True, needs_in_person=True)
    assert first.route == "cor"
    result = redecide(first, disposition("dispatch_crt"), durham, now=at("10:05"))
    new = result.decision
    assert new.route == "cor" and result.refused == ("weapon",)
    assert "crt_ineligible:weapon" in new.reasons and "cor_eligible" in new.reasons
    assert missed(new) == []  # excluded by the call's nature, not by coverage


def test_cor_outside_its_hours_goes_to_police(durham: Policy) -> None:
    first = decision(durham, occurred_at=at("08:10"))
    result = redecide(first, disposition("dispatch_cor", "08:15"), durham, now=at("08:15"))
    assert result.decision.route == "police"
    assert ("cor", "outside_hours") in missed(result.decision)


def test_a_disabled_pilot_is_not_sent(durham: Policy) -> None:
    data = read_toml(default_policy_path(), ValueError)
    data["pilots"]["crt"]["enabled"] = False
    policy = parse_policy(data, source="crt-off.toml")
    first = decision(policy)
    result = redecide(first, disposition("dispatch_crt"), policy, now=at("10:05"))
    assert result.decision.route == "police" and result.refused == ("pilot_disabled",)
    assert result.decision.policy_version == policy.version_id


def test_a_stale_disposition_sends_no_team(durham: Policy) -> None:
    first = decision(durham)
    result = redecide(first, disposition("dispatch_crt"), durham, now=at("10:30"), stale=True)
    assert result.decision.route == "police" and result.refused == ("stale",)
    assert result.decision.reasons[-1] == "stale"


def test_the_rules_route_survives_a_second_disposition(durham: Policy) -> None:
    first = decision(durham)
    second = redecide(first, disposition("dispatch_crt"), durham, now=at("10:05")).decision
    third = redecide(second, disposition("resolved_by_phone", "10:20"), durham, now=at("10:20"))
    assert (third.decision.route, third.decision.rules_route) == ("ccd", "ccd")
    assert (third.decision.revision, third.decision.supersedes) == (3, second.event_id)
    assert not third.overrides_rules


def test_the_same_disposition_makes_the_same_decision(durham: Policy) -> None:
    first = decision(durham)
    event = disposition("dispatch_crt")
    one = redecide(first, event, durham, now=at("10:05")).decision
    two = redecide(first, event, durham, now=at("10:05")).decision
    assert one == two
    assert one.event_id == disposition_decision_id("C-1", event.event_id)


def test_another_calls_disposition_is_refused(durham: Policy) -> None:
    with pytest.raises(ValueError, match="C-2"):
        redecide(
            decision(durham), disposition("dispatch_crt", call_id="C-2"), durham, now=at("10:05")
        )
