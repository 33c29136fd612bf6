"""Fault injection for the crash tests: SIGKILL this process at a chosen point.

``RDB_MIRROR_TEST_KILL_AFTER=N`` kills after the N-th processed entry;
``RDB_MIRROR_TEST_KILL_AT=<point>`` kills when the session reaches a named point (see
``POINTS``). Both are read once, at import; unset (the normal case) they cost nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "marker-written",  # incremental: the new current_mirror marker is on disk
    "metadata-written",  # the new snapshot, EA/ACL files and error log are in place
    "diff-written",  # the previous snapshot's diff is written, the snapshot not yet removed
    "converted",  # the previous snapshot is now a diff
    "before-commit",  # everything synced, the old marker not yet removed
    "committed",  # the old marker is removed, statistics not yet written
    "regress-walked",  # regress: the mirror is restored, the failed marker not yet removed
)

_AFTER = int(os.environ.get("RDB_MIRROR_TEST_KILL_AFTER", "0") or 0)
_AT = os.environ.get("RDB_MIRROR_TEST_KILL_AT", "")
_count = 0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def file_done() -> None:
    """One more entry processed."""
    global _count
    if _AFTER:
        _count += 1
        if _count >= _AFTER:
            _die()


def point(name: str) -> None:
    """The session reached ``name``."""
    if _AT and name == _AT:
        _die()
