"""The policy's optional [ccd] table: referral resources, consult targets, and a shorter
follow-up after a high-risk screening. Defaults when absent; refused when wrong."""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path

import pytest

from heart.policy import PolicyError, default_policy_path, load_policy
from heart.policy.model import DEFAULT_REFERRAL_RESOURCES, ConsultTargets
from heart.schemas.ccd import Urgency

DEFAULT_TEXT = default_policy_path().read_text(encoding="utf-8")


@pytest.fixture
def with_ccd(tmp_path: Path) -> Callable[[str], Path]:
    """The default policy with ``table`` (TOML text) appended."""

    def write(table: str) -> Path:
        path = tmp_path / "ccd-policy.toml"
        path.write_text(DEFAULT_TEXT + "\n" + table, encoding="utf-8")
        return path

    return write


def test_without_the_table_the_defaults_apply() -> None:
    durham = load_policy()
    assert durham.ccd is None
    work = durham.ccd_work
    assert {"988", "mobile_crisis", "outpatient", "substance_use", "shelter"} == set(
        work.referral_resources
    )
    assert (work.consult_targets.urgent, work.consult_targets.soon) == (2, 10)
    assert work.consult_targets.routine == 30
    assert work.high_risk_followup_within_hours is None
    for level in (None, "none", "low", "moderate", "high"):
        assert durham.followup_within_hours(level) == 48


def test_targets_cover_every_urgency() -> None:
    assert set(ConsultTargets.model_fields) == set(typing.get_args(Urgency))


def test_the_commented_example_in_durham_toml_is_the_defaults(
    with_ccd: Callable[[str], Path],
) -> None:
    # Uncommenting the documented block must change nothing, as its comment promises.
    lines = DEFAULT_TEXT.splitlines()
    start = lines.index("# [ccd.referral_resources]")
    block = [line.removeprefix("# ").removeprefix("#") for line in lines[start:]]
    policy = load_policy(with_ccd("\n".join(block)))
    assert policy.ccd is not None
    assert policy.ccd == load_policy().ccd_work
    assert policy.ccd.referral_resources == DEFAULT_REFERRAL_RESOURCES


def test_a_city_lists_its_own_resources_and_targets(with_ccd: Callable[[str], Path]) -> None:
    policy = load_policy(
        with_ccd(
            "[ccd]\n"
            "high_risk_followup_within_hours = 24\n"
            "[ccd.referral_resources]\n"
            '"988" = "988 Suicide & Crisis Lifeline"\n'
            'freedom-house = "Freedom House Recovery Center"\n'
            "[ccd.consult_targets]\n"
            "urgent = 1\n"
        )
    )
    work = policy.ccd_work
    assert list(work.referral_resources) == ["988", "freedom-house"]
    assert (work.consult_targets.minutes("urgent"), work.consult_targets.minutes("soon")) == (1, 10)
    assert policy.followup_within_hours("high") == 24
    assert policy.followup_within_hours("moderate") == 48
    assert policy.followup_within_hours(None) == 48


def test_the_table_is_part_of_the_version(with_ccd: Callable[[str], Path]) -> None:
    durham = load_policy()
    same = load_policy(with_ccd("# a comment only\n"))
    changed = load_policy(with_ccd("[ccd.consult_targets]\nurgent = 1\n"))
    assert same.version_id == durham.version_id
    assert changed.version_id != durham.version_id


@pytest.mark.parametrize(
    ("table", "field", "problem"),
    [
        (
            '[ccd.referral_resources]\n"Mobile Crisis" = "Mobile"\n',
            "ccd.referral_resources",
            "resource id",
        ),
        ('[ccd.referral_resources]\nshelter = "  "\n', "ccd.referral_resources.shelter", "blank"),
        ("[ccd]\nreferral_resources = {}\n", "ccd.referral_resources", "must not be empty"),
        ("[ccd.consult_targets]\nurgent = 0\n", "ccd.consult_targets.urgent", "greater than 0"),
        ('[ccd.consult_targets]\nurgent = "2"\n', "ccd.consult_targets.urgent", "integer"),
        (
            "[ccd.consult_targets]\nurgent = 15\n",
            "ccd.consult_targets.urgent",
            "longer than the soon",
        ),
        ("[ccd.consult_targets]\nasap = 1\n", "ccd.consult_targets.asap", ""),
        (
            "[ccd]\nhigh_risk_followup_within_hours = 0\n",
            "ccd.high_risk_followup_within_hours",
            "greater than 0",
        ),
        (
            "[ccd]\nhigh_risk_followup_within_hours = 72\n",
            "ccd.high_risk_followup_within_hours",
            "only shorten",
        ),
        ("[ccd]\nresources = []\n", "ccd.resources", ""),
    ],
)
def test_bad_tables_are_refused_naming_the_field(
    with_ccd: Callable[[str], Path], table: str, field: str, problem: str
) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(with_ccd(table))
    message = str(info.value)
    assert "ccd-policy.toml" in message
    assert field in message, message
    assert problem in message, message
