"""Fault injection for the crash tests: SIGKILL this process in the middle of a removal.

``RDB_INCREMENT_TEST_KILL_AFTER=N`` kills right after the N-th change a removal makes to the
repository (each unlink, rename or file replacement counts one); ``RDB_INCREMENT_TEST_KILL_AT=
<point>`` kills when the removal reaches a named point (see ``POINTS``). Both are read once, at
import; unset (the normal case) they cost one comparison per change.

:class:`KillSwitch` is the mechanism, also used by rdb-mirror's ``testhooks`` with its own
variables and points.
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


class KillSwitch:
    """SIGKILLs this process after the N-th :meth:`step` (``<prefix>_KILL_AFTER=N``) or at
    the :meth:`point` named by ``<prefix>_KILL_AT``; both read once, here."""

    def __init__(self, prefix: str) -> None:
        self._after = int(os.environ.get(f"{prefix}_KILL_AFTER", "0") or 0)
        self._at = os.environ.get(f"{prefix}_KILL_AT", "")
        self._count = 0
        self._lock = threading.Lock()

    def step(self) -> None:
        """One more counted step."""
        if self._after:
            with self._lock:
                self._count += 1
                if self._count >= self._after:
                    _die()

    def point(self, name: str) -> None:
        """The run reached ``name``."""
        if self._at and name == self._at:
            _die()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


_switch = KillSwitch("RDB_INCREMENT_TEST")
#: The removal made one more change to the repository.
changed = _switch.step
#: The removal reached a named point (one of ``POINTS``).
point = _switch.point
