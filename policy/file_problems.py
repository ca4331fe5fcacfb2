"""Problems in a project file (policy, roster, CAD mapping), each named by its field path.

Every loader reports the same way: the file, then ``field.path: problem`` for each problem,
in the file's own terms (TOML types, the keys that exist there) rather than pydantic's.
This module holds that once: the error the loaders raise (:class:`FileProblem`), the
exception their validators raise to place problems at fields (:class:`Problems`), and the
translation of a pydantic ``ValidationError`` into ``(field_path, problem)`` pairs
(:func:`problems_from`).
"""

from __future__ import annotations

import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, TypeAdapter, ValidationError

#: Where a problem is, as pydantic reports it: keys and list indexes from the file's root.
Loc = tuple[str | int, ...]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# Pydantic marks a problem with a table's key (not its value) by this part of the location.
_KEY_MARKER = "[key]"


class FileProblem(ValueError):
    """A file that cannot be used. The message names the file, each field, the problem.

    ``problems`` holds ``(field_path, problem)`` pairs; the field path is dotted with list
    indexes in brackets (``pilots.crt.hours[0].end``), or ``""`` for the file as a whole.
    Each loader subclasses it to name its kind of file and to be caught on its own.
    """

    #: What the message calls the file: "policy file", "roster file"...
    kind: ClassVar[str] = "file"

    def __init__(self, source: str | os.PathLike[str], problems: Sequence[tuple[str, str]]) -> None:
        self.source = str(source)
        self.problems = list(problems)
        lines = [f"{field}: {problem}" if field else problem for field, problem in self.problems]
        if len(lines) == 1:
            message = f"{self.kind} {self.source}: {lines[0]}"
        else:
            body = "\n".join(f"  {line}" for line in lines)
            message = f"{self.kind} {self.source} has {len(lines)} problems:\n{body}"
        super().__init__(message)


class Problems(ValueError):
    """Raised inside validators; carries locations relative to the validated value.

    Pydantic wraps it in a ``value_error`` whose context keeps this instance, which lets
    one validator report several problems, each at its own field path, without the
    "Value error, " prefix pydantic adds to plain messages.
    """

    def __init__(self, items: Sequence[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(problem for _, problem in items))
        self.items = list(items)

    @classmethod
    def one(cls, problem: str, *loc: str | int) -> Problems:
        return cls([(loc, problem)])


def field_path(loc: Iterable[str | int]) -> str:
    """``("categories", "Welfare Check", 0)`` -> ``categories."Welfare Check"[0]``: keys
    that TOML could not write bare are quoted, as they would be in the file."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            key = part if _BARE_KEY.match(part) else json.dumps(part)
            path += f".{key}" if path else key
    return path


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for "must be ..., got <type>" messages."""
    # bool before int: a TOML boolean is a Python int subclass.
    for kind, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "float"),
        (str, "string"),
        (list, "array"),
        (dict, "table"),
        (datetime, "date-time"),
        (date, "date"),
        (time, "time"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def problems_from(
    exc: ValidationError,
    root: type[BaseModel],
    *,
    key_nouns: Mapping[Loc, str] | None = None,
) -> list[tuple[str, str]]:
    """``(field_path, problem)`` pairs for a validation error of the model ``root``.

    ``root`` supplies the keys suggested beside an unknown key. ``key_nouns`` names what
    the keys of a table are, where "key" would say less: ``{("pilots",): "pilot"}`` turns
    "unknown key 'xyz'" under ``pilots`` into "unknown pilot 'xyz'".
    """
    problems: list[tuple[str, str]] = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        cause = error.get("ctx", {}).get("error")
        found = (
            [(loc + sub, problem) for sub, problem in cause.items]
            if isinstance(cause, Problems)
            else [(loc, _describe(error, root, key_nouns or {}))]
        )
        for where, problem in found:
            if _KEY_MARKER in where:
                where = tuple(part for part in where if part != _KEY_MARKER)
                problem = f"key {problem}"
            problems.append((field_path(where), problem))
    return problems


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "a boolean (true or false)",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _describe(error: Mapping[str, Any], root: type[BaseModel], key_nouns: Mapping[Loc, str]) -> str:
    kind = error["type"]
    loc: Loc = tuple(error["loc"])
    value = error.get("input")
    if kind == "extra_forbidden":
        noun = key_nouns.get(loc[:-1], "key")
        known = _known_keys(root, loc[:-1])
        return f"unknown {noun} {loc[-1]!r}" + (f" (known: {', '.join(known)})" if known else "")
    if kind == "missing":
        return "required key is missing"
    if kind in _EXPECTED:
        problem = f"must be {_EXPECTED[kind]}, got {toml_type(value)} {value!r}"
        if (
            kind == "string_type"
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and _accepts(root, loc, str(value))
        ):
            # Only a hint the field would accept: "quote it" must not lead to the next error.
            problem += f' (quote it: "{value}")'
        return problem
    if kind == "too_short" and error.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    return str(error["msg"])


def _annotation_at(root: type[BaseModel], loc: Loc) -> Any:
    """The type (with its validators and constraints) of the value at ``loc`` under
    ``root``, or None when the path leaves the models' known shapes."""
    annotation: Any = root
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            # A field's own constraints live beside its annotation, not in it.
            annotation = (
                Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
            )
        elif typing.get_origin(annotation) in (list, dict):
            # The item type: a list's only argument, a dict's value type.
            annotation = typing.get_args(annotation)[-1]
        else:
            return None
    return annotation


def _known_keys(root: type[BaseModel], loc: Loc) -> list[str] | None:
    """Keys the model at ``loc`` under ``root`` accepts, to suggest beside an unknown key."""
    annotation = _unwrap(_annotation_at(root, loc))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return None


def _accepts(root: type[BaseModel], loc: Loc, value: str) -> bool:
    """Whether the field at ``loc`` would accept ``value`` on its own (its type, validators
    and constraints; not checks across fields)."""
    annotation = _annotation_at(root, loc)
    if annotation is None:
        return False
    try:
        TypeAdapter(annotation).validate_python(value, strict=True)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


def _unwrap(annotation: Any) -> Any:
    # Annotated[X, ...] -> X; an optional X -> X. Other unions stay: no single model.
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(annotation) if arm is not type(None)]
        annotation = arms[0] if len(arms) == 1 else annotation
    return annotation
