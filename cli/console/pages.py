"""The console's HTML: a small server-rendered shell per page; ``static/console.js`` fills
it from the page's one live stream. Nothing from the board is written here, so no event's
text reaches the HTML unescaped: the script sets it as text."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from heart.cli.console.users import User

TITLES = {
    "board": "Supervisor board",
    "clinician": "Crisis Call Diversion",
    "team": "Team",
    "navigator": "Care navigation",
    "analyst": "Analyst",
}


def _head(title: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)} · HEART console</title>"
        "<link rel='stylesheet' href='/static/console.css'></head>"
    )


def signin(csrf: str, error: str | None = None, user_id: str = "") -> str:
    problem = f"<p class='error' role='alert'>{html.escape(error)}</p>" if error else ""
    return (
        _head("Sign in") + "<body class='signin'><main><h1>HEART console</h1>"
        "<form method='post' action='/signin'>"
        f"<input type='hidden' name='csrf' value='{html.escape(csrf)}'>"
        f"{problem}"
        "<label>User id <input name='user' autocomplete='username' required "
        f"value='{html.escape(user_id)}' autofocus></label>"
        "<label>Password <input name='password' type='password' "
        "autocomplete='current-password' required></label>"
        "<button type='submit'>Sign in</button></form></main></body></html>"
    )


def refused(message: str) -> str:
    return (
        _head("Not allowed")
        + f"<body><main><h1>Not allowed</h1><p class='error'>{html.escape(message)}</p>"
        "<p><a href='/'>Back to your page</a></p></main></body></html>"
    )


def page(
    kind: str,
    user: User,
    csrf: str,
    actions: Sequence[tuple[str, str, str]] = (),
    config: Mapping[str, Any] | None = None,
) -> str:
    """A page's shell. ``actions``: the team's buttons; ``config``: what the page's forms
    offer (the clinician's questions, resources, dispositions; the urgencies of a consult)."""
    title = TITLES[kind] + (f" {user.team_id}" if user.team_id else "")
    labels = {name: label for name, _status, label in actions}
    return (
        _head(title) + f"<body class='page-{kind}'>"
        "<header><span class='brand'>HEART</span>"
        f"<h1>{html.escape(title)}</h1>"
        "<span id='feed' class='feed' role='status'>connecting…</span>"
        f"<span class='who'>{html.escape(user.name)} ({html.escape(user.role)})</span>"
        "<form method='post' action='/signout' class='signout'>"
        f"<input type='hidden' name='csrf' value='{html.escape(csrf)}'>"
        "<button type='submit'>Sign out</button></form></header>"
        f"<div id='message' class='message' role='alert' hidden></div>"
        f"<main id='app' data-page='{html.escape(kind)}' data-csrf='{html.escape(csrf)}' "
        f"data-role='{html.escape(user.role)}' "
        f"data-actions='{html.escape(orjson.dumps(labels).decode())}' "
        f"data-config='{html.escape(orjson.dumps(config or {}).decode())}'></main>"
        "<script src='/static/console.js'></script></body></html>"
    )
