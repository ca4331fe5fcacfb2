"""The simulated clinicians' rates and delays: a validated TOML file, not constants in code.

The shipped file (``clinicians.toml`` beside this module) gives each figure with its source,
or says it is an assumption. :func:`load_clinician_config` reads a file and raises
:class:`ClinicianConfigError` naming the file, each field and the problem, as the policy
and roster loaders do.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from heart.policy.file_problems import FileProblem, Problems, problems_from
from heart.policy.toml_file import read_toml
from heart.schemas.ccd import CLINICIAN_ID_PATTERN, RESOURCE_ID_PATTERN, Disposition, Urgency

#: A share of calls: 0 to 1.
Share = Annotated[float, Field(ge=0.0, le=1.0)]


def _clinician_id(value: str) -> str:
    if len(value) > 64 or not re.fullmatch(CLINICIAN_ID_PATTERN, value):
        raise Problems.one(
            f"{value!r} is not an opaque staff id (up to 64 letters, digits and . _ : -, with "
            'at least one digit, e.g. "CL-101"; never a name)'
        )
    return value


def _resource_id(value: str) -> str:
    if len(value) > 64 or not re.fullmatch(RESOURCE_ID_PATTERN, value):
        raise Problems.one(
            f"{value!r} is not a resource id (lower-case letters, digits, _ and -, as the "
            "policy's [ccd.referral_resources] keys are)"
        )
    return value


def _one_of(*values: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in values:
            raise Problems.one(f"{value!r} is not one of {', '.join(values)}")
        return value

    return AfterValidator(check)


ClinicianIdText = Annotated[str, AfterValidator(_clinician_id)]
ResourceIdText = Annotated[str, AfterValidator(_resource_id)]
#: The routes a clinician may stay on the line of (``ccd`` calls are the clinician's own).
TeamRoute = Annotated[str, _one_of("crt", "cor", "police")]
DispositionKey = Annotated[str, _one_of(*get_args(Disposition))]
#: An on-the-line clinician's outcome: a disposition, or ``none`` (the route stands and no
#: disposition is sent).
LineOutcome = Annotated[str, _one_of("none", *get_args(Disposition))]
RiskLevelKey = Annotated[str, _one_of("none", "low", "moderate", "high")]
UrgencyKey = Annotated[str, _one_of(*get_args(Urgency))]

#: How far a mix's shares may sum from 1 (TOML decimals are not exact).
_SUM_TOLERANCE = 1e-6


class ClinicianConfigError(FileProblem):
    """A simulated clinicians file that cannot be used."""

    kind = "simulated clinicians file"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Documented(_Strict):
    #: Where the table's figures come from, and which of them are assumptions.
    source: str | None = None
    assumption: str | None = None


def _mix_sums_to_one(mix: Mapping[str, float], name: str) -> None:
    total = sum(mix.values())
    if not math.isclose(total, 1.0, abs_tol=_SUM_TOLERANCE):
        raise Problems.one(f"shares must add up to 1, they add up to {total:g}", name)


class Minutes(_Strict):
    """A delay drawn uniformly between ``[shortest, longest]`` minutes."""

    shortest: float = Field(ge=0.0)
    longest: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> Minutes:
        if self.longest < self.shortest:
            raise Problems.one(
                f"is shorter than shortest ({self.longest:g} < {self.shortest:g})", "longest"
            )
        return self


class Staff(_Documented):
    #: Opaque staff ids, never names: the schema refuses an id without a digit.
    clinician_ids: list[ClinicianIdText] = Field(min_length=1)


class CcdCalls(_Documented):
    """Calls triage routes to ``ccd``: the clinician's own calls."""

    screened_share: Share
    dispositions: dict[DispositionKey, Share] = Field(min_length=1)

    @model_validator(mode="after")
    def _sums(self) -> CcdCalls:
        _mix_sums_to_one(self.dispositions, "dispositions")
        return self


class OnTheLine(_Documented):
    """Calls on a team or police route where a clinician stays on the line (CCD eligible)."""

    routes: list[TeamRoute] = Field(min_length=1)
    share: Share
    screened_share: Share
    outcomes: dict[LineOutcome, Share] = Field(min_length=1)

    @model_validator(mode="after")
    def _sums(self) -> OnTheLine:
        _mix_sums_to_one(self.outcomes, "outcomes")
        return self


class Screening(_Documented):
    risk_levels: dict[RiskLevelKey, Share]

    @model_validator(mode="after")
    def _sums(self) -> Screening:
        _mix_sums_to_one(self.risk_levels, "risk_levels")
        return self


class SafetyPlans(_Documented):
    #: Share of screened callers at each risk level who complete a safety plan.
    share_by_risk: dict[RiskLevelKey, Share]
    #: Of those plans, the share with all six steps; the others stop after 1 to 5 steps.
    all_steps_share: Share


class Referrals(_Documented):
    #: Share of engaged calls with at least one referral (a 988 transfer always has one).
    share: Share
    #: Of those, the share with a second, different resource.
    second_share: Share
    warm_handoff_share: Share
    #: Relative weights of the policy's resources; a policy resource not named here gets
    #: ``unlisted_weight``, and a name here that the policy lacks is never referred to.
    resource_weights: dict[ResourceIdText, float] = Field(min_length=1)
    unlisted_weight: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _weights(self) -> Referrals:
        for resource, weight in self.resource_weights.items():
            if weight < 0:
                raise Problems.one(
                    f"must be 0 or more, got {weight:g}", "resource_weights", resource
                )
        return self


class Requesters(_Documented):
    """One kind of requester: how often they ask, and how urgently."""

    share: Share
    urgency: dict[UrgencyKey, Share]

    @model_validator(mode="after")
    def _sums(self) -> Requesters:
        _mix_sums_to_one(self.urgency, "urgency")
        return self


class Consults(_Documented):
    #: Of the behavioural calls no clinician is on, while CCD is open.
    dispatcher: Requesters
    #: Of the behavioural calls routed to police, while CCD is open.
    police: Requesters
    #: Of the CRT / CoR teams assigned, while CCD is open.
    crt: Requesters
    cor: Requesters
    #: Share of consults answered after their urgency's target (so ``consult.overdue``).
    late_share: Share


class Delays(_Documented):
    """Minutes between one step and the next."""

    engage: Minutes
    screen: Minutes
    safety_plan: Minutes
    referral: Minutes
    disposition: Minutes
    line_disposition: Minutes
    cad_close: Minutes
    police_consult: Minutes
    team_consult: Minutes
    consult_close: Minutes


class ClinicianConfig(_Strict):
    """The whole file."""

    title: str | None = None
    staff: Staff
    ccd_calls: CcdCalls
    on_the_line: OnTheLine
    screening: Screening
    safety_plans: SafetyPlans
    referrals: Referrals
    consults: Consults
    delays: Delays


def default_clinician_config_path() -> Path:
    return Path(__file__).with_name("clinicians.toml")


def parse_clinician_config(
    data: Mapping[str, Any], *, source: str | os.PathLike[str]
) -> ClinicianConfig:
    """Validate already-parsed TOML data; ``source`` names it in errors."""
    try:
        return ClinicianConfig.model_validate(data)
    except ValidationError as exc:
        raise ClinicianConfigError(source, problems_from(exc, ClinicianConfig)) from None


def load_clinician_config(path: str | os.PathLike[str] | None = None) -> ClinicianConfig:
    """Load and validate a clinicians file (the shipped one when ``path`` is None)."""
    file = Path(path) if path is not None else default_clinician_config_path()
    return parse_clinician_config(read_toml(file, ClinicianConfigError), source=file)
