"""Renderers of :class:`rdb_clikit.protocol.Progress`: a rich bar, plain warnings, JSON lines.

The rich bar is drawn only when stderr is a terminal; warnings are always printed (one line
each, ``<prog>: warning: <message>``) unless the console is quiet. rich is imported only
for a bar (:func:`progress_for` picks :class:`PlainProgress` when stderr is not a terminal).
"""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING

from rdb_clikit.protocol import NullProgress, Progress

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


class RichProgress:
    """A transient progress bar on a terminal console; warnings as plain lines.

    With a total (rdb-mirror takes it from the previous session's statistics) the bar shows
    the time remaining, estimated from the rate so far.
    """

    def __init__(self, console: Console, *, prog: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as _RichBar

        self._console = console
        self._prog = prog
        self._bar = _RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal or console.quiet,
        )
        self._task: TaskID | None = None
        self._started = False

    def start(self, task: str, total: int | None = None) -> None:
        if not self._started:
            self._bar.start()
            self._started = True
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(task, total=total)

    def advance(self, amount: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, amount)

    def warning(self, message: str) -> None:
        from rich.markup import escape

        self._console.print(f"{escape(self._prog)}: warning: {escape(message)}")

    def finish(self) -> None:
        if self._started:
            self._bar.stop()
            self._started = False


# The control characters rich drops from printed text (bell, backspace, VT, FF, CR): a plain
# warning line reads as the rich console printed it.
_RICH_STRIPPED = dict.fromkeys((7, 8, 11, 12, 13))


class PlainProgress:
    """No bar (stderr is not a terminal): warnings only, one plain line each on stderr."""

    def __init__(self, *, prog: str, stream: IO[str] | None = None) -> None:
        self._prog = prog
        self._stream = stream

    def start(self, task: str, total: int | None = None) -> None:
        del task, total

    def advance(self, amount: int = 1) -> None:
        del amount

    def warning(self, message: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        line = f"{self._prog}: warning: {message}".translate(_RICH_STRIPPED)
        stream.write(line + "\n")
        stream.flush()

    def finish(self) -> None:
        pass


class JsonLinesProgress:
    """One JSON object per line: ``{"event": "start"|"advance"|"warning"|"finish", ...}``.

    ``advance`` events are rate-limited to one per ``interval`` seconds (the last count wins).
    """

    def __init__(self, stream: IO[str] | None = None, *, interval: float = 0.5) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._task = ""
        self._total: int | None = None
        self._done = 0
        self._last = 0.0

    def _emit(self, **fields: object) -> None:
        import json  # only for --json: its import is start-up cost

        self._stream.write(json.dumps(fields, separators=(",", ":")) + "\n")
        self._stream.flush()

    def start(self, task: str, total: int | None = None) -> None:
        self._task, self._total, self._done = task, total, 0
        self._last = time.monotonic()
        self._emit(event="start", task=task, total=total)

    def advance(self, amount: int = 1) -> None:
        self._done += amount
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._emit(event="advance", task=self._task, done=self._done, total=self._total)

    def warning(self, message: str) -> None:
        self._emit(event="warning", message=message)

    def finish(self) -> None:
        self._emit(event="finish", task=self._task, done=self._done, total=self._total)


def make_progress(console: Console, *, prog: str, json_lines: bool = False) -> Progress:
    """JSON lines on stderr when asked; else a rich bar (terminal) or warnings only; quiet: none."""
    if json_lines:
        return JsonLinesProgress(console.file)
    if console.quiet:
        return NullProgress()
    return RichProgress(console, prog=prog)


def progress_for(
    *, prog: str, json_lines: bool = False, quiet: bool = False, json_stream: IO[str] | None = None
) -> Progress:
    """The progress a command shows: JSON lines on ``json_stream`` (default stdout) when asked;
    nothing when quiet; a rich bar when stderr is a terminal; else plain warning lines.

    Only the bar imports rich, so scripted runs (``--json``, ``--quiet``, piped) never load it.
    """
    if json_lines:
        return JsonLinesProgress(json_stream if json_stream is not None else sys.stdout)
    if quiet:
        return NullProgress()
    if not sys.stderr.isatty():
        return PlainProgress(prog=prog)
    from rdb_clikit.console import stderr_console

    return RichProgress(stderr_console(), prog=prog)
