"""Who may sign in to the console: a validated users file, and salted scrypt password hashes.

Layout::

    [[users]]
    id = "sup-0001"                 # opaque: it goes on the events a user's actions write
    name = "Demo supervisor"        # shown on the page only, never written to a topic
    role = "supervisor"             # supervisor | clinician | team | navigator | analyst
    password = "scrypt$16384$8$1$<salt hex>$<hash hex>"   # heart console --hash-password

    [[users]]
    id = "team-crt-1"
    name = "CRT-1 crew"
    role = "team"
    team_id = "CRT-1"               # required for role "team", refused for the others

A password is stored only as ``hash_password``'s output (hashlib's scrypt with a random
16-byte salt); :func:`verify_password` compares in constant time.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Literal, TextIO

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from heart.policy.file_problems import FileProblem, Problems, problems_from
from heart.policy.toml_file import read_toml

Role = Literal["supervisor", "clinician", "team", "navigator", "analyst"]
ROLES: tuple[Role, ...] = ("supervisor", "clinician", "team", "navigator", "analyst")

#: scrypt cost: n=2**14, r=8, p=1 (16 MiB, tens of milliseconds), the cost Python's docs
#: and OWASP's password storage guidance name for interactive sign-in.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 16_384, 8, 1
_HASH = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([0-9a-f]{32})\$([0-9a-f]{64})$")
#: Opaque ids: they travel on events (navigator_id, clinician_id) and in Kafka headers. A
#: digit is required, as for the CCD's clinician ids, so that a name never passes for one.
USER_ID_PATTERN = r"^[A-Za-z0-9._:-]*[0-9][A-Za-z0-9._:-]*$"

DEFAULT_USERS_PATH = Path(__file__).with_name("demo-users.toml")


class UsersFileError(FileProblem):
    kind = "console users file"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    match = _HASH.match(stored)
    if match is None:
        return False
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    digest = hashlib.scrypt(
        password.encode(),
        salt=bytes.fromhex(match.group(4)),
        n=n,
        r=r,
        p=p,
        dklen=32,
        maxmem=256 * 1024 * 1024,
    )
    return hmac.compare_digest(digest.hex(), match.group(5))


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=80)
    role: Role
    team_id: str | None = Field(None, min_length=1, max_length=64)
    password: str = Field(repr=False)

    @field_validator("id")
    @classmethod
    def _opaque(cls, value: str) -> str:
        if not re.match(USER_ID_PATTERN, value):
            raise Problems.one(
                f"{value!r} is not an opaque id: use letters, digits and . _ : - with at "
                "least one digit (e.g. nav-0001), never a person's name"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> User:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.role == "team" and self.team_id is None:
            problems.append((("team_id",), "a team user needs the team_id of its team"))
        if self.role != "team" and self.team_id is not None:
            problems.append((("team_id",), f"only team users have a team_id (role is {self.role})"))
        if _HASH.match(self.password) is None:
            problems.append(
                (
                    ("password",),
                    "not a password hash: store the output of "
                    "`heart console --hash-password`, never the password itself",
                )
            )
        if problems:
            raise Problems(problems)
        return self


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    users: list[User] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> UsersFile:
        seen: set[str] = set()
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for index, user in enumerate(self.users):
            if user.id in seen:
                problems.append((("users", index, "id"), f"user id {user.id!r} appears twice"))
            seen.add(user.id)
        if problems:
            raise Problems(problems)
        return self

    def by_id(self) -> dict[str, User]:
        return {user.id: user for user in self.users}


def load_users(path: str | os.PathLike[str] | None = None) -> UsersFile:
    """The users in ``path`` (the shipped demo users when None); raises
    :class:`UsersFileError` naming the file, the field and the problem."""
    file = Path(path) if path is not None else DEFAULT_USERS_PATH
    data = read_toml(file, UsersFileError)
    try:
        return UsersFile.model_validate(data)
    except ValidationError as exc:
        raise UsersFileError(file, problems_from(exc, UsersFile)) from None


#: Shorter passwords are refused when hashing one for a users file.
MIN_PASSWORD_LENGTH = 10


def read_password_hash(stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """``heart console --hash-password``: a password from stdin (asked without echo on a
    terminal), its hash on stdout for a users file's ``password``."""
    if stdin.isatty():
        password = getpass.getpass("password: ", stream=stderr)
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        print(
            f"heart console: the password must have at least {MIN_PASSWORD_LENGTH} characters",
            file=stderr,
        )
        return 2
    print(hash_password(password), file=stdout)
    return 0
