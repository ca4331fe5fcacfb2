"""Unit status as a state machine: which status a team may report next.

Two ways a status changes:

- **Assignment** (:func:`assign`): only the dispatcher moves a team from ``available`` to
  ``dispatched``. A responder app reporting ``dispatched`` is refused: a team that could
  dispatch itself could take a call twice, or a call another team already has.
- **Reports** (:func:`transition`): everything else, as :data:`TRANSITIONS` allows.

Choices, and why:

- ``dispatched -> on_scene`` is legal without ``en_route``: apps miss the button, and the
  arrival time is what is measured; refusing the report would lose it.
- ``dispatched | en_route -> cleared`` is legal: a call can be cancelled or resolved before
  the team arrives. There is no ``dispatched -> available``: leaving a call is always an
  explicit, audited ``cleared``.
- ``transporting -> cleared`` only; there is no separate "at facility" status here.
- ``cleared`` is transient: clearing frees the team. The dispatch core moves a cleared team
  to ``available`` at once (and hands it the head of the queue); the table still lists
  ``cleared -> available | out_of_service`` so a caller keeping ``cleared`` also works.
- ``out_of_service`` only from ``available`` (or ``cleared``): a team on a call must clear
  it first, otherwise the call would be left without a team and without a record of why.
- Reporting the current status again is accepted and changes nothing: apps repeat their
  status (heartbeats, retries), and a backup request is sent with the unchanged status.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

from heart.schemas.dispatch import UnitStatus

STATUSES: tuple[UnitStatus, ...] = typing.get_args(UnitStatus)

#: Legal reported transitions, current -> allowed next statuses (besides the same status).
TRANSITIONS: Mapping[UnitStatus, frozenset[UnitStatus]] = {
    "available": frozenset({"out_of_service"}),
    "dispatched": frozenset({"en_route", "on_scene", "cleared"}),
    "en_route": frozenset({"on_scene", "cleared"}),
    "on_scene": frozenset({"transporting", "cleared"}),
    "transporting": frozenset({"cleared"}),
    "cleared": frozenset({"available", "out_of_service"}),
    "out_of_service": frozenset({"available"}),
}

#: Statuses in which the team holds a call.
ON_CALL: frozenset[UnitStatus] = frozenset({"dispatched", "en_route", "on_scene", "transporting"})


class IllegalTransition(ValueError):
    """A status change the state machine refuses; ``reason`` says why in words."""

    def __init__(self, current: str, new: str, reason: str) -> None:
        super().__init__(f"{current} -> {new}: {reason}")
        self.current = current
        self.new = new
        self.reason = reason


def transition(current: UnitStatus, new: UnitStatus) -> None:
    """Check a reported change from ``current`` to ``new``; raise :class:`IllegalTransition`."""
    if new == current:
        return
    if new == "dispatched":
        raise IllegalTransition(current, new, "only an assignment dispatches a team")
    if new in TRANSITIONS[current]:
        return
    if new == "out_of_service":
        reason = "the team is on a call; clear it first"
    elif current in ("available", "out_of_service") and new in ON_CALL | {"cleared"}:
        reason = "the team is not on a call"
    elif new == "available" and current in ON_CALL:
        reason = "a team leaves a call by reporting cleared"
    else:
        reason = f"not allowed after {current} (allowed: {_allowed(current)})"
    raise IllegalTransition(current, new, reason)


def assign(current: UnitStatus) -> None:
    """Check that a team in ``current`` may be dispatched; raise :class:`IllegalTransition`."""
    if current != "available":
        raise IllegalTransition(current, "dispatched", "only an available team can be assigned")


def _allowed(current: UnitStatus) -> str:
    return ", ".join(sorted(TRANSITIONS[current])) or "none"
