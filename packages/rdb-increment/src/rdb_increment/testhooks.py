"""Fault injection for the crash tests: SIGKILL this process in the middle of a removal.

``RDB_INCREMENT_TEST_KILL_AFTER=N`` kills right after the N-th change a removal makes to the
repository (each unlink, rename or file replacement counts one); ``RDB_INCREMENT_TEST_KILL_AT=
<point>`` kills when the removal reaches a named point (see ``POINTS``). Both are read once, at
import; unset (the normal case) they cost one comparison per change.
"""

from __future__ import annotations

import os
import signal
import threading

POINTS = (
    "locked",  # the writer lock is held, nothing changed yet
    "metadata-merged",  # the sessions before dropped ones have self-contained metadata
    "sessions-dropped",  # the dropped sessions' metadata and data files are gone
    "increments-done",  # every increment is deleted or merged, metadata not yet re-diffed
    "rediffed",  # metadata re-diffed, the journal not yet removed
)

_AFTER = int(os.environ.get("RDB_INCREMENT_TEST_KILL_AFTER", "0") or 0)
_AT = os.environ.get("RDB_INCREMENT_TEST_KILL_AT", "")
_count = 0
_lock = threading.Lock()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def changed() -> None:
    """The removal made one more change to the repository."""
    global _count
    if _AFTER:
        with _lock:
            _count += 1
            if _count >= _AFTER:
                _die()


def point(name: str) -> None:
    """The removal reached ``name``."""
    if _AT and name == _AT:
        _die()
