"""argparse ``type=`` functions shared by every command.

A bad value stops the command while its options are parsed, before a broker, a stage or
a file is touched: argparse prints the usage line and ``argument --speed: must be ...``
and exits with status 2. Each message says what a valid value looks like.
"""

from __future__ import annotations

import argparse
import math

#: Lowest and highest TCP port a command may listen on or connect to.
PORT_RANGE = (1, 65_535)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def positive_float(text: str) -> float:
    """A number above 0: a speed, a duration, an interval."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A number of 0 or more: minutes that may be left out of an estimate."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text!r}")
    return value


def share(text: str) -> float:
    """A share between 0 and 1 inclusive, e.g. 0.2 for a fifth."""
    try:
        value = _number(text)
    except argparse.ArgumentTypeError:
        value = math.nan  # "20%" and the like: answered below with the form wanted
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(
            f"must be a share between 0 and 1 (e.g. 0.2 for 20%), not {text!r}"
        )
    return value


def port(text: str) -> int:
    """A TCP port number."""
    low, high = PORT_RANGE
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a port number from {low} to {high}, not {text!r}"
        ) from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"must be a port number from {low} to {high}, not {text!r}"
        )
    return value


def speed_or_max(text: str) -> float | None:
    """``max`` (None: as fast as the pipeline goes) or event seconds per wall second."""
    if text.strip().lower() == "max":
        return None
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be 'max' or a number greater than 0 (event seconds per wall second), "
            f"not {text!r}"
        ) from None
