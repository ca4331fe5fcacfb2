"""The console's users and settings files: validated, each problem named with its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from heart.cli.console.console_settings import ConsoleSettingsError, load_console_settings
from heart.cli.console.users import (
    UsersFileError,
    hash_password,
    load_users,
    verify_password,
)

HASH = hash_password("correct horse battery")

USERS = [
    ('id = "bob"\nname = "Bob"\nrole = "navigator"', "users[0].id: 'bob' is not an opaque id"),
    ('id = "t-1"\nname = "T"\nrole = "team"', "users[0].team_id: a team user needs the team_id"),
    (
        'id = "n-1"\nname = "N"\nrole = "navigator"\nteam_id = "CRT-1"',
        "users[0].team_id: only team users have a team_id (role is navigator)",
    ),
    ('id = "n-1"\nname = "N"\nrole = "pilot"', "users[0].role:"),
]


@pytest.mark.parametrize(("body", "problem"), USERS)
def test_a_bad_users_file_names_the_field(tmp_path: Path, body: str, problem: str) -> None:
    file = tmp_path / "users.toml"
    password = "" if "password" in body else f'\npassword = "{HASH}"'
    file.write_text(f"[[users]]\n{body}{password}\n")
    with pytest.raises(UsersFileError) as caught:
        load_users(file)
    assert problem in str(caught.value)


SCRYPT = "scrypt$16384$8$1$" + "0" * 32 + "$" + "0" * 64


@pytest.mark.parametrize(
    "stored",
    ["hunter2", SCRYPT, HASH.replace("$argon2id$", "$argon2i$")],
    ids=["plain", "scrypt", "argon2i"],
)
def test_a_password_that_is_not_an_argon2id_hash_is_refused(tmp_path: Path, stored: str) -> None:
    file = tmp_path / "users.toml"
    file.write_text(
        f'[[users]]\nid = "n-1"\nname = "N"\nrole = "navigator"\npassword = "{stored}"\n'
    )
    with pytest.raises(
        UsersFileError, match=r"users\[0\].password: not an argon2id password hash: set it with"
    ):
        load_users(file)


def test_passwords_are_salted_argon2id_hashes() -> None:
    assert HASH.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert hash_password("correct horse battery") != HASH  # a new salt each time
    assert verify_password("correct horse battery", HASH)
    assert not verify_password("correct horse batterY", HASH)
    assert not verify_password("anything", "not-a-hash")
    # No hash (an unknown id, a single-sign-on-only user): never a match.
    assert not verify_password("", None)
    assert not verify_password("no user has this password", None)


def test_a_user_without_a_password_signs_in_only_through_single_sign_on(tmp_path: Path) -> None:
    file = tmp_path / "users.toml"
    file.write_text('[[users]]\nid = "ana-0007"\nname = "A"\nrole = "analyst"\n')
    assert load_users(file).users[0].password is None


def test_every_demo_user_signs_in_with_the_password_docs_console_md_lists() -> None:
    users = load_users().by_id()
    listed = {
        "sup-0001": "demo-supervisor",
        "clin-0001": "demo-clinician",
        "nav-0001": "demo-navigator",
        "ana-0001": "demo-analyst",
        **{f"team-crt-{n}": f"demo-crt-{n}" for n in range(1, 5)},
        **{f"team-cor-{n}": f"demo-cor-{n}" for n in range(1, 3)},
    }
    assert set(users) == set(listed)
    for user_id, password in listed.items():
        assert verify_password(password, users[user_id].password), user_id
    docs = (Path(__file__).resolve().parents[3] / "docs" / "console.md").read_text()
    assert "`demo-crt-1` … `demo-crt-4`" in docs and "`demo-supervisor`" in docs


def test_the_demo_users_cover_every_role_and_every_roster_team() -> None:
    users = load_users().users
    assert {u.role for u in users} == {"supervisor", "clinician", "team", "navigator", "analyst"}
    assert {u.team_id for u in users if u.role == "team"} == {
        "CRT-1",
        "CRT-2",
        "CRT-3",
        "CRT-4",
        "COR-1",
        "COR-2",
    }


def test_console_settings_defaults_and_errors(tmp_path: Path) -> None:
    defaults = load_console_settings()
    assert defaults.queue.warn_before_fallback_minutes == 2
    file = tmp_path / "console.toml"
    file.write_text(
        "clock_interval_s = 0\n[queue]\nwarn_before_fallback_minutes = -5\n[board]\nsize = 3\n"
    )
    with pytest.raises(ConsoleSettingsError) as caught:
        load_console_settings(file)
    text = str(caught.value)
    assert "clock_interval_s: Input should be greater than 0" in text
    assert "queue.warn_before_fallback_minutes: Input should be greater than or equal to 0" in text
    assert "board.size" in text
