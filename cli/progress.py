"""Progress output shared by every command: a live bar on a terminal (rich), and one plain
summary line when the work is done, which is all a log file or a CI transcript gets."""

from __future__ import annotations

import time
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

_BAR_WIDTH = 28
_REDRAW_S = 0.1


class ProgressBar:
    """A one-line progress bar on a terminal; on anything else, only the final line.

    A bar redrawn into a log file or a CI transcript is noise, so when ``stream`` is not a
    TTY nothing is drawn until :meth:`done`.
    """

    def __init__(self, label: str, stream: IO[str], *, live: bool | None = None) -> None:
        self.label = label
        self.stream = stream
        self.live = is_terminal(stream) if live is None else live
        self.started = time.perf_counter()
        self._drawn = 0.0
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def update(self, done: int, total: int, count: int, unit: str) -> None:
        now = time.perf_counter()
        if not self.live or (now - self._drawn < _REDRAW_S and done < total):
            return
        self._drawn = now
        if self._bar is None:
            self._bar = Progress(
                TextColumn(self.label, markup=False),
                BarColumn(bar_width=_BAR_WIDTH),
                TaskProgressColumn(),
                TextColumn("{task.fields[count]:,} {task.fields[unit]}"),
                console=Console(file=self.stream, force_terminal=True, highlight=False),
                auto_refresh=False,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=None, count=0, unit=unit)
        assert self._task is not None
        self._bar.update(self._task, completed=done, total=total, count=count, unit=unit)
        self._bar.refresh()

    def done(self, count: int, unit: str) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self.stream.write(self._line(1, 1, count, unit, time.perf_counter()) + "\n")
        self.stream.flush()

    def _line(self, done: int, total: int, count: int, unit: str, now: float) -> str:
        share = min(1.0, done / total) if total > 0 else 1.0
        filled = round(share * _BAR_WIDTH)
        elapsed = now - self.started
        rate = count / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.label} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {share:4.0%} "
            f"{count:,} {unit} {elapsed:5.1f}s {rate:,.0f} {unit}/s"
        )


def is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
