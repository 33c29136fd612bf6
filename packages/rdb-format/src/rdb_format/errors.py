"""The exception hierarchy of the rdb-* commands.

Every error carries its exit status; the CLI maps them in one place (rdb_clikit) and prints
``str(error)``, which is always one line naming the file and what is wrong.
"""

from __future__ import annotations

import os

from rdb_format.exitcodes import ExitCode


def _show(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """Render a path for a one-line message: undecodable bytes escaped, newlines visible."""
    text = os.fsdecode(path)
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n")


class RdbError(Exception):
    """Base of all expected failures; ``exit_code`` is the process exit status."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, path: str | bytes | os.PathLike[str] | None = None):
        self.path = path
        text = message.replace("\n", " ")
        super().__init__(f"{_show(path)}: {text}" if path is not None else text)


class UsageError(RdbError):
    """A bad option value, e.g. a time spec that cannot be parsed."""

    exit_code = ExitCode.USAGE


class TimeSpecError(UsageError):
    """A user time spec (--at, --older-than) that cannot be understood."""


class RepositoryNotFound(RdbError):
    """The path is not a repository (no rdiff-backup-data), or does not exist."""

    exit_code = ExitCode.NOT_A_REPOSITORY


class RepositoryLocked(RdbError):
    """Another live process holds the repository's writer lock."""

    exit_code = ExitCode.LOCKED


class UnsupportedFormat(RdbError):
    """A repository feature or version these tools do not implement."""

    exit_code = ExitCode.UNSUPPORTED


class CorruptRepository(RdbError):
    """Repository data that is truncated, garbled, out of range or hostile."""

    exit_code = ExitCode.CORRUPT


class HostilePath(CorruptRepository):
    """A stored path that would escape the tree: '..', absolute, or containing NUL."""


class UnfinishedSession(RdbError):
    """The last session was interrupted; the repository must be regressed first."""

    exit_code = ExitCode.UNFINISHED


class SourceError(RdbError):
    """The source tree or the restore target cannot be used."""

    exit_code = ExitCode.SOURCE


class ConnectionFailed(RdbError):
    """The remote side cannot be started or reached, or the connection to it was lost."""

    exit_code = ExitCode.CONNECTION


class ProtocolError(RdbError):
    """The peer speaks an incompatible protocol version, or sent a malformed frame."""

    exit_code = ExitCode.PROTOCOL
