"""Exit statuses shared by every rdb-* command (documented in docs/exit-codes.md)."""

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit statuses. New codes may be added; callers treat unknown ones as failure."""

    OK = 0
    FAILURE = 1  # fatal error: the run did not finish
    USAGE = 2  # bad command line or bad argument value (typer's own code too)
    WARNINGS = 3  # finished, but some files were skipped or had errors (see error_log)
    NOT_A_REPOSITORY = 10  # missing, or not an rdiff-backup/rdb repository
    LOCKED = 11  # another live process is writing the repository
    UNSUPPORTED = 12  # a repository feature or version these tools do not know
    CORRUPT = 13  # unreadable, truncated, garbled or hostile repository data
    UNFINISHED = 14  # an interrupted session must be regressed first
    SOURCE = 15  # the source tree (or restore target) cannot be used
    CONNECTION = 16  # the remote host or command cannot be reached, or the connection was lost
    PROTOCOL = 17  # the remote peer is incompatible (version) or sent malformed data
    INTERRUPTED = 130  # SIGINT
