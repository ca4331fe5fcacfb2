"""The one file-problem type and the one pydantic-error translation every loader uses."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from heart.agents.dispatch.roster import RosterError
from heart.cad.mapping import MappingError
from heart.policy import PolicyError
from heart.policy.file_problems import FileProblem, Problems, field_path, problems_from, toml_type


@pytest.mark.parametrize(
    ("error", "kind"),
    [(PolicyError, "policy file"), (RosterError, "roster file"), (MappingError, "mapping file")],
)
def test_each_loader_error_is_a_file_problem_named_by_its_kind(
    error: type[FileProblem], kind: str
) -> None:
    one = error("x.toml", [("a.b", "broken")])
    assert isinstance(one, FileProblem) and isinstance(one, ValueError)
    assert (one.source, one.problems) == ("x.toml", [("a.b", "broken")])
    assert str(one) == f"{kind} x.toml: a.b: broken"
    two = error("x.toml", [("a", "broken"), ("", "not TOML")])
    assert str(two) == f"{kind} x.toml has 2 problems:\n  a: broken\n  not TOML"


def test_a_loader_error_is_not_caught_as_another() -> None:
    with pytest.raises(PolicyError):
        try:
            raise PolicyError("x.toml", [("", "file not found")])
        except (RosterError, MappingError):
            pytest.fail("a policy problem was caught as a roster or mapping problem")


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), ""),
        (("pilots", "crt", "hours", 0, "end"), "pilots.crt.hours[0].end"),
        (("categories", "Welfare Check", "patterns", 0), 'categories."Welfare Check".patterns[0]'),
        (("teams", 2), "teams[2]"),
    ],
)
def test_field_path(loc: tuple[str | int, ...], path: str) -> None:
    assert field_path(loc) == path


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (True, "boolean"),
        (5, "integer"),
        (1.5, "float"),
        ("x", "string"),
        ([], "array"),
        ({}, "table"),
        (date(2024, 1, 1), "date"),
    ],
)
def test_toml_type(value: object, name: str) -> None:
    assert toml_type(value) == name


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    start: str
    end: str

    @field_validator("end")
    @classmethod
    def _check(cls, value: str) -> str:
        if value == "never":
            raise Problems.one("end is never")
        return value


class _Root(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    tables: dict[str, _Inner]


def _problems(
    data: object, key_nouns: dict[tuple[str | int, ...], str] | None = None
) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        _Root.model_validate(data)
    return problems_from(caught.value, _Root, key_nouns=key_nouns)


def test_problems_are_in_the_files_terms() -> None:
    found = _problems({"name": 5, "tables": {"a b": {"start": "x", "end": "never", "colour": 1}}})
    assert found == [
        ("name", 'must be a string, got integer 5 (quote it: "5")'),
        ('tables."a b".end', "end is never"),
        ('tables."a b".colour', "unknown key 'colour' (known: start, end)"),
    ]


def test_key_nouns_name_what_a_tables_keys_are() -> None:
    found = _problems({"name": "x", "tables": {}, "pilot": 1}, key_nouns={(): "section"})
    assert found == [("pilot", "unknown section 'pilot' (known: name, tables)")]
    assert _problems({"tables": {}}) == [("name", "required key is missing")]
