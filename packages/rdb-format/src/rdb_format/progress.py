"""The progress interface a core calls, and the do-nothing default (standard library only).

A core (backup, restore, statistics…) takes a ``Progress`` and depends on rdb_format only;
a command line passes its own implementation (rdb_clikit re-exports these names). The shape is
exactly that of ``rdb_clikit.protocol.Progress``: ``start(task, total)``, ``advance(amount)``,
``warning(message)``, ``finish()``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["NullProgress", "Progress", "RecordingProgress"]


@runtime_checkable
class Progress(Protocol):
    """What a long-running core reports while it works. Every call must be cheap."""

    def start(self, task: str, total: int | None = None) -> None:
        """A new phase begins (``total`` units of work, or None if unknown)."""

    def advance(self, amount: int = 1) -> None:
        """``amount`` more units of the current phase are done."""

    def warning(self, message: str) -> None:
        """Something was skipped or is suspect; the run goes on (one line, no newline)."""

    def finish(self) -> None:
        """The run is over (called once, also after a failure)."""


class NullProgress:
    """Reports nothing: the default when a caller passes no progress."""

    def start(self, task: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def finish(self) -> None:
        pass


class RecordingProgress:
    """Keeps every call (tests, and callers that report warnings themselves)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | int | None]] = []
        self.warnings: list[str] = []

    def start(self, task: str, total: int | None = None) -> None:
        self.events.append(("start", task))
        self.events.append(("total", total))

    def advance(self, amount: int = 1) -> None:
        self.events.append(("advance", amount))

    def warning(self, message: str) -> None:
        self.warnings.append(message)
        self.events.append(("warning", message))

    def finish(self) -> None:
        self.events.append(("finish", None))
