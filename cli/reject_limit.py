"""When an import's rejects mean the mapping does not fit the export.

Rejected rows are normal: an export has duplicates, rows without a time, test calls. But
a time format that matches no row, or a column that holds something else, rejects most or
all of them, and a report built on the few calls left looks plausible and is wrong. So
every command that imports an export (``heart import``, ``whatif``, ``replay``) stops with
:data:`REJECTS_EXIT` when no row became a call, or when the rejected share is above the
limit.
"""

from __future__ import annotations

import math
from collections import Counter

#: Exit status when the rejects show the mapping does not fit (sysexits.h EX_DATAERR).
REJECTS_EXIT = 65

#: The rejected share above which an import fails. A mapping that fits its export rejects
#: well under 1% of the rows (the shipped Milwaukee and San José samples: 0% and 0.04%);
#: one wrong format or column rejects a fifth or more (a time format that misses
#: single-digit days, AM/PM or a second layout; a call-type column that is often empty).
#: 0.2 catches those and leaves an export's genuinely incomplete rows ample room.
DEFAULT_MAX_REJECT_RATE = 0.2

#: Reject reasons named in the one-line verdict, largest first.
TOP_REASONS = 3


def reject_verdict(
    *,
    rows: int,
    accepted: int,
    rejects: Counter[str],
    max_rate: float,
    option: str | None,
) -> str | None:
    """Why the import must fail, in one line, or None when it may go on.

    ``option`` names the command's option for the limit (``--max-reject-rate``), offered
    as the way to accept a high share on purpose; None when the command has none.
    """
    rejected = sum(rejects.values())
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in rejects.most_common(TOP_REASONS))
    fix = "check the mapping's columns and time formats against the export (examples above)"
    if accepted == 0:
        if rows == 0:
            return "the export has no data rows: nothing to import"
        every = f"{rows:,} rows, all" if rows > 1 else "the one row"
        return f"no row became a call ({every} rejected: {reasons}); {fix}"
    rate = rejected / rows if rows else 0.0
    if rate <= max_rate:
        return None
    limit = f"{option} {max_rate:g}" if option else f"the limit of {max_rate:g}"
    accept = f", or pass {option} {_ceil_share(rate)} to accept this share" if option else ""
    return (
        f"{rate:.1%} of the rows were rejected ({rejected:,} of {rows:,}), more than "
        f"{limit} allows; top reasons: {reasons}; {fix}{accept}"
    )


def _ceil_share(rate: float) -> str:
    """The smallest two-decimal share at or above ``rate``, e.g. 0.634 -> 0.64."""
    # Rounding up, never down: the share offered must let this very import through.
    return f"{min(math.ceil(rate * 100), 100) / 100:g}"
