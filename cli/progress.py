"""Terminal output shared by every command.

- :class:`ProgressBar`: a live bar on a terminal (rich); anywhere else a plain progress
  line now and then; and one plain summary line when the work is done.
- :class:`LiveStatus`: a long-running command's status (``heart up``, ``heart
  simulate``): one display updated in place on a terminal, a plain line now and then
  elsewhere.
- :func:`configure_logs`: libraries' logs stay quiet (critical only) unless asked.
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


#: Seconds between plain progress lines when the output is not a terminal.
PLAIN_EVERY_S = 10.0


class ProgressBar:
    """A one-line progress bar on a terminal; on anything else, occasional plain lines.

    A bar redrawn into a log file or a CI transcript is noise, so when ``stream`` is not a
    TTY :meth:`update` prints its plain line at most once every ``every`` seconds (a long
    run still shows it is moving), and :meth:`done` prints the final one.
    """

    def __init__(
        self,
        label: str,
        stream: IO[str],
        *,
        live: bool | None = None,
        every: float = PLAIN_EVERY_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.label = label
        self.stream = stream
        self.live = is_terminal(stream) if live is None else live
        self.every = every
        self._clock = clock
        self.started = clock()
        self._drawn = 0.0
        self._next_plain = self.started + every
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def update(self, done: int, total: int, count: int, unit: str) -> None:
        now = self._clock()
        if not self.live:
            # The final line is done()'s: a plain line of a finished count would repeat it.
            if now >= self._next_plain and done < total:
                self._next_plain = now + self.every
                self.stream.write(self._line(done, total, count, unit, now) + "\n")
                self.stream.flush()
            return
        if now - self._drawn < _REDRAW_S and done < total:
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
        self.stream.write(self._line(1, 1, count, unit, self._clock()) + "\n")
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


#: Loggers of the libraries a command uses, and HEART's copy of aiokafka's metadata update;
#: silent but for critical failures unless asked. aiokafka logs every failed reconnection
#: as an error, hundreds of lines while a broker is away, and the command says that once in
#: its own final line.
LIBRARY_LOGGERS = ("aiokafka", "kafka", "faust", "mode", "heart.streams.kafka.explicit_topics")
#: At DEBUG these print every record they send or receive, personal data included.
PAYLOAD_LOGGERS = ("aiokafka", "faust.topics", "faust.transport", "faust.tables")
LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logs(level: str | None = None, *, verbose: bool = False) -> int:
    """Set this process's log level: ``level`` if given, else info with ``verbose``, else
    warning. A command prints its own progress and its own failures; the libraries' logs
    are for ``-v`` or ``--log-level``, and stay at critical otherwise. Returns the level
    set.

    Record-printing loggers stay at info or above whatever is asked: a terminal or a
    log file is no place for callers' details.
    """
    chosen = (
        getattr(logging, level.upper()) if level else logging.INFO if verbose else logging.WARNING
    )
    libraries = chosen if level or verbose else logging.CRITICAL
    logging.getLogger().setLevel(chosen)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(libraries)
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(max(libraries, logging.INFO))
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
