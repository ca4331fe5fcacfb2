"""Terminal output shared by every command.

- :class:`ProgressBar`: a live bar on a terminal (rich), and one plain summary line when
  the work is done, which is all a log file or a CI transcript gets.
- :class:`LiveStatus`: a long-running command's status (``heart up``, ``heart
  simulate``): one display updated in place on a terminal, a plain line now and then
  elsewhere.
- :func:`configure_logs`: libraries' informational logs stay out of the way unless asked.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.text import Text

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


#: Loggers of the libraries a command uses; quiet (warnings and errors) unless asked.
LIBRARY_LOGGERS = ("aiokafka", "kafka", "faust", "mode")
#: At DEBUG these print every record they send or receive, personal data included.
PAYLOAD_LOGGERS = ("aiokafka", "faust.topics", "faust.transport", "faust.tables")
LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logs(level: str | None = None, *, verbose: bool = False) -> int:
    """Set this process's log level: ``level`` if given, else info with ``verbose``, else
    warning. A command prints its own progress; informational logs of the libraries and
    of HEART's modules are for ``-v``. Returns the level set.

    Record-printing loggers stay at info or above whatever is asked: a terminal or a
    log file is no place for callers' details.
    """
    chosen = (
        getattr(logging, level.upper()) if level else logging.INFO if verbose else logging.WARNING
    )
    logging.getLogger().setLevel(chosen)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(chosen)
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(max(chosen, logging.INFO))
    return chosen


class LiveStatus:
    """A status display for a command that runs until stopped.

    On a terminal, :meth:`show` redraws one block of lines in place, and :meth:`note`
    prints a line above it that stays. Anywhere else (a pipe, a log file, CI), :meth:`show`
    prints its plain one-line form at most once every ``every`` seconds, and :meth:`note`
    prints at once: occasional lines a log keeps, never redraws.
    """

    def __init__(
        self,
        stream: IO[str],
        every: float,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.every = every
        self.live = is_terminal(stream) if live is None else live
        self._clock = clock
        self._next_plain = clock() + every
        self._display: Live | None = None
        self._last_plain: str | None = None
        self._handlers: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []

    def __enter__(self) -> LiveStatus:
        if self.live:
            console = Console(file=self.stream, force_terminal=True, highlight=False)
            self._display = Live(Text(""), console=console, refresh_per_second=4, transient=True)
            self._display.start()
            # Log records (warnings) print above the display rather than through it.
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream in (
                    sys.stderr,
                    sys.stdout,
                    sys.__stderr__,
                    sys.__stdout__,
                ):
                    self._handlers.append((handler, handler.stream))
                    handler.setStream(console.file)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the display; the last status stays behind as one plain line."""
        if self._display is not None:
            self._display.stop()
            self._display = None
            if self._last_plain is not None:
                self.stream.write(self._last_plain + "\n")
                self.stream.flush()
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._handlers.clear()

    def show(self, lines: Sequence[str], plain: str) -> None:
        """The current status: ``lines`` on a terminal, ``plain`` elsewhere."""
        self._last_plain = plain
        if self._display is not None:
            self._display.update(Group(*(Text(line) for line in lines)))
            return
        now = self._clock()
        if now < self._next_plain:
            return
        self._next_plain = now + self.every
        self.stream.write(plain + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        """A line that stays: something happened (a stage restarted, stopping...)."""
        if self._display is not None:
            self._display.console.print(Text(message))
            return
        self.stream.write(message + "\n")
        self.stream.flush()
