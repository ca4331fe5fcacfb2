"""Who may sign in to the console, and how: a validated users file with argon2 password
hashes, written by ``heart console add-user``, and sign-in through a trusted reverse proxy.

Layout::

    [[users]]
    id = "sup-0001"                 # opaque: it goes on the events a user's actions write
    name = "Demo supervisor"        # shown on the page only, never written to a topic
    role = "supervisor"             # supervisor | clinician | team | navigator | analyst
    password = "$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>"   # heart console add-user

    [[users]]
    id = "team-crt-1"
    name = "CRT-1 crew"
    role = "team"
    team_id = "CRT-1"               # required for role "team", refused for the others

A password is stored only as an argon2id hash (argon2-cffi's ``PasswordHasher`` with its
defaults, RFC 9106's second recommended profile: 64 MiB, 3 passes, 4 lanes, random 16-byte
salt). A user without ``password`` signs in only through the single sign-on proxy.
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, TextIO

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
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

#: Opaque ids: they travel on events (navigator_id, clinician_id) and in Kafka headers. A
#: digit is required, as for the CCD's clinician ids, so that a name never passes for one.
USER_ID_PATTERN = r"^[A-Za-z0-9._:-]*[0-9][A-Za-z0-9._:-]*$"

DEFAULT_USERS_PATH = Path(__file__).with_name("demo-users.toml")

_HASHER = PasswordHasher()


class UsersFileError(FileProblem):
    kind = "console users file"


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` with a new random salt."""
    return _HASHER.hash(password)


def is_password_hash(stored: str) -> bool:
    if not stored.startswith("$argon2id$"):
        return False
    try:
        extract_parameters(stored)
    except InvalidHashError:
        return False
    return True


@cache
def _unknown_user_hash() -> str:
    return hash_password("no user has this password")


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches the hash ``stored``. With no hash (an unknown user id,
    or a user who signs in only through the proxy) a hash is still checked, so that the
    answer's time does not tell ids apart, and the answer is False."""
    try:
        matched = _HASHER.verify(stored or _unknown_user_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and stored is not None


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=80)
    role: Role
    team_id: str | None = Field(None, min_length=1, max_length=64)
    #: None: the user signs in only through the single sign-on proxy.
    password: str | None = Field(None, repr=False)

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
        if self.password is not None and not is_password_hash(self.password):
            problems.append(
                (
                    ("password",),
                    "not an argon2id password hash: set it with `heart console add-user`, "
                    "never write the password itself",
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


# --- heart console add-user ----------------------------------------------------------------

#: Shorter passwords are refused by ``heart console add-user``.
MIN_PASSWORD_LENGTH = 10
#: What each field of a user is called on add-user's command line, for its error messages.
OPTION_OF = {"id": "--id", "name": "--name", "role": "--role", "team_id": "--team"}
NEW_FILE_HEADER = (
    "# HEART console users, written by `heart console add-user`. Keep this file out of the\n"
    "# repository and readable only by the console's account: it holds password hashes.\n"
)


class AddUserError(ValueError):
    """A problem add-user names in one line; ``status`` is the exit status (2: usage, 1: a
    file it could not write)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def add_user_command(
    file: Path,
    *,
    user_id: str,
    name: str,
    role: str,
    team_id: str | None,
    no_password: bool,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """``heart console add-user``: add the user to ``file`` (made when missing) or replace
    the user with the same id, with the password read from stdin (asked twice without echo
    on a terminal), or with none for a user who signs in only through the proxy."""
    try:
        user = _user_from_options(user_id, name, role, team_id)
        existing = _existing_users(file)
        if not no_password:
            password = hash_password(_read_password(stdin, stderr))
            user = user.model_copy(update={"password": password})
        replaced = write_user(file, user, existing)
    except (AddUserError, UsersFileError) as exc:
        print(f"heart console add-user: {exc}", file=stderr)
        return exc.status if isinstance(exc, AddUserError) else 2
    how = "password" if user.password else "single sign-on only, no password"
    print(
        f"heart console: {'updated' if replaced else 'added'} user {user.id} "
        f"({user.role}{', team ' + user.team_id if user.team_id else ''}; {how}) in {file}",
        file=stdout,
    )
    return 0


def _user_from_options(user_id: str, name: str, role: str, team_id: str | None) -> User:
    try:
        return User.model_validate({"id": user_id, "name": name, "role": role, "team_id": team_id})
    except ValidationError as exc:
        lines = [
            f"{OPTION_OF.get(where, where)}: {problem}"
            for where, problem in problems_from(exc, User)
        ]
        raise AddUserError("; ".join(lines)) from None


def _existing_users(file: Path) -> list[User]:
    if not file.exists():
        return []
    data = read_toml(file, UsersFileError)
    if not data:  # an empty file, or only comments: no users yet
        return []
    try:
        return list(UsersFile.model_validate(data).users)
    except ValidationError as exc:
        raise UsersFileError(file, problems_from(exc, UsersFile)) from None


def _read_password(stdin: TextIO, stderr: TextIO) -> str:
    if stdin.isatty():
        password = getpass.getpass("password: ", stream=stderr)
        if getpass.getpass("the same password again: ", stream=stderr) != password:
            raise AddUserError("the two passwords differ; nothing was written")
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AddUserError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters "
            "(give it on stdin, or at the prompt); nothing was written"
        )
    return password


def write_user(file: Path, user: User, existing: Sequence[User]) -> bool:
    """Write ``existing`` with ``user`` added, or put in place of the user with its id (the
    comment lines at the top of the file are kept); True when it replaced one."""
    ids = [u.id for u in existing]
    replaced = user.id in ids
    users = [user if u.id == user.id else u for u in existing] if replaced else [*existing, user]
    header = _header_of(file) if file.exists() else NEW_FILE_HEADER
    text = header + "".join(_user_table(u) for u in users)
    # The file is read back before it replaces the old one: what was written is what loads.
    assert UsersFile.model_validate(tomllib.loads(text)).users == users
    _replace_file(file, text)
    return replaced


def _header_of(file: Path) -> str:
    lines = []
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def _user_table(user: User) -> str:
    # A JSON string is a valid TOML basic string (same escapes for quotes, backslashes and
    # control characters).
    fields = [("id", user.id), ("name", user.name), ("role", user.role)]
    fields += [("team_id", user.team_id), ("password", user.password)]
    body = "".join(
        f"{key} = {json.dumps(value, ensure_ascii=False)}\n"
        for key, value in fields
        if value is not None
    )
    return f"\n[[users]]\n{body}"


def _replace_file(file: Path, text: str) -> None:
    """Write ``text`` beside ``file`` and move it into place, so that a console reading the
    file never sees half of it; a new file is readable by its owner only (mkstemp's 0600),
    an existing one keeps its permissions."""
    try:
        mode = stat.S_IMODE(file.stat().st_mode) if file.exists() else None
        fd, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            if mode is not None:
                os.chmod(temporary, mode)
            os.replace(temporary, file)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise AddUserError(f"cannot write {file}: {exc.strerror or exc}", status=1) from None


# --- single sign-on through a reverse proxy --------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")


def proxy_network(text: str) -> Network:
    """A ``--trusted-proxy`` value: an address (10.0.0.5) or a network (10.0.0.0/24)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
        ) from None


class SignOnError(ValueError):
    """``--trust-proxy-header`` or ``--trusted-proxy`` cannot be used as given."""


@dataclass(frozen=True)
class ProxySignOn:
    """What the console believes of requests that come from a trusted reverse proxy: the
    client's address in ``X-Forwarded-For`` (for the sign-in limits and logs), and, when
    ``user_header`` is set, the signed-in user's id in that header (single sign-on). A
    request from any other address never gets either, whatever headers it carries."""

    proxies: tuple[Network, ...] = ()
    user_header: str | None = None

    def __post_init__(self) -> None:
        if self.user_header is not None and not self.proxies:
            raise SignOnError(
                "--trust-proxy-header needs --trusted-proxy with the proxy's address: "
                "a header any client can send is never trusted on its own"
            )
        if self.user_header is not None and not _HEADER_NAME.match(self.user_header):
            raise SignOnError(
                f"--trust-proxy-header: {self.user_header!r} is not a header name "
                "(letters, digits and -, e.g. X-Remote-User)"
            )

    def trusts(self, peer: str | None) -> bool:
        """Whether the connection's own address (never a forwarded one) is a trusted proxy."""
        if not self.proxies or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.proxies)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address: the one the trusted proxy appended to ``X-Forwarded-For``
        (the last entry; earlier ones are whatever the client sent), else the peer's."""
        if forwarded_for and self.trusts(peer):
            last = forwarded_for.rsplit(",", 1)[-1].strip()
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                pass
        return peer or "unknown"

    def signed_in_as(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        """The user id the trusted proxy vouches for, or None (no single sign-on set up, a
        request not from the proxy, or no header on it)."""
        if self.user_header is None or not self.trusts(peer):
            return None
        value = headers.get(self.user_header, "").strip()
        return value or None
