"""Rich consoles: diagnostics on stderr, results on stdout; plain text when not a terminal.

The streams are looked up when a console is made (not at import), so tests and
``typer.testing.CliRunner`` that swap ``sys.stdout``/``sys.stderr`` see the output. rich is
imported when a console is made (about 15 ms): a run that draws nothing never pays it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console


def _console(file: TextIO, *, quiet: bool, force_terminal: bool | None) -> Console:
    from rich.console import Console

    terminal = file.isatty() if force_terminal is None else force_terminal
    return Console(
        file=file,
        quiet=quiet,
        force_terminal=terminal,
        # No colour, markup styling or cursor moves unless a person is watching.
        no_color=not terminal or "NO_COLOR" in os.environ,
        highlight=False,
        soft_wrap=not terminal,
        width=None if terminal else 200,
    )


def stderr_console(*, quiet: bool = False, force_terminal: bool | None = None) -> Console:
    """The console for messages, warnings and progress (stderr). ``quiet`` silences it."""
    return _console(sys.stderr, quiet=quiet, force_terminal=force_terminal)


def stdout_console(*, force_terminal: bool | None = None) -> Console:
    """The console for results (tables) on stdout; plain and wide when piped."""
    return _console(sys.stdout, quiet=False, force_terminal=force_terminal)
