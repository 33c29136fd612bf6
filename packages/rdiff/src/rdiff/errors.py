"""rdiff's exceptions. Each carries the exit status rdiff's manual documents:
0 success, 1 environmental problem, 2 corrupt or truncated signature or delta, 3 internal error.
"""

from __future__ import annotations


class ExitStatus:
    """The statuses as plain ints (an IntEnum would cost start-up time)."""

    OK = 0
    ENVIRONMENT = 1  # file not found, invalid option, I/O error, output exists without -f
    CORRUPT = 2  # corrupt or truncated signature or delta
    INTERNAL = 3  # a bug, here or in librsync


class RdiffError(Exception):
    """Base class; ``str(error)`` is one line for the user, ``exit_status`` the process status."""

    exit_status: int = ExitStatus.ENVIRONMENT

    def __init__(self, message: str, *, rs_result: int | None = None) -> None:
        super().__init__(message.replace("\n", " "))
        self.rs_result = rs_result  # librsync's rs_result, when the error came from librsync


class UsageError(RdiffError):
    """An invalid option or operand (rdiff exits 1, where librsync's own rdiff exits 101)."""


class RdiffIOError(RdiffError):
    """A file cannot be opened, read, written or sought."""


class OutputExists(RdiffIOError):
    """The output exists and --force was not given."""


class WrongBasis(RdiffError):
    """The basis does not match the signature the delta was made against (--check-signature)."""


class CorruptInput(RdiffError):
    """A signature or delta that is truncated, has a bad magic number, or is corrupt."""

    exit_status = ExitStatus.CORRUPT


class InternalError(RdiffError):
    """Something that should not happen; please report it."""

    exit_status = ExitStatus.INTERNAL
