"""Directory listings read ahead of the walk, by a thread of their own.

Listing a directory (``rdb_fastio.scan_directory``: names, ``lstat`` and the size of each
extended attribute list, all in C with the GIL released) is kernel work, and the walk's thread
did it for every directory before it could go on: a fifth of that thread's time in a backup
of a source tree (3,200 directories). The walk tells :class:`ScanAhead` which directories it
is about to enter, in order; their listings are read by a thread of its own while it handles
what it has, and :meth:`ScanAhead.listing` hands over the result (or reads it now).

Its own thread, not the source side's pool: a pool job may wait for the walk's thread (a read
batch waits for room in the repository side's inbox), and the walk waiting for a listing
queued behind such jobs would wait forever. A listing job waits for nothing but the kernel.

Only directories the walk will enter are listed (the selection has decided), a few ahead per
directory level and a bounded number in all, so memory stays that of a few listings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rdb_fastio import ScanEntry, scan_directory
from rdb_mirror.workers import Job, Workers

__all__ = ["AHEAD", "PENDING", "ScanAhead"]

#: Directories listed ahead of the walk per level (the next siblings it will enter).
AHEAD = 4
#: Listings waiting for the walk at most.
PENDING = 32


class ScanAhead:
    """Listings of the directories the walk enters next (``enabled`` False: read when asked).
    :meth:`close` ends its thread."""

    def __init__(self, *, xattrs: bool, enabled: bool = True) -> None:
        self._enabled = enabled
        self._xattrs = xattrs
        self._thread: Workers | None = None  # started on the first directory with subdirectories
        self._jobs: dict[bytes, Job[Iterable[ScanEntry]]] = {}

    def ahead(self, paths: Sequence[bytes]) -> None:
        """The walk will enter ``paths`` in this order: start listing the first few."""
        if not self._enabled or not paths:
            return
        if self._thread is None:
            self._thread = Workers(1, "rdb-scan")
        for path in paths[:AHEAD]:
            if len(self._jobs) >= PENDING:
                return
            if path not in self._jobs:
                self._jobs[path] = self._thread.submit(self._scan, path)

    def listing(self, path: bytes) -> Iterable[ScanEntry]:
        """The entries of directory ``path`` (see ``scan_directory``, whose OSError it
        raises)."""
        job = self._jobs.pop(path, None)
        if job is None:
            return self._scan(path)
        return job.result()

    def forget(self, paths: Iterable[bytes]) -> None:
        """The walk will not enter ``paths`` after all (it could not describe them)."""
        for path in paths:
            self._jobs.pop(path, None)

    def close(self) -> None:
        """Stop reading ahead (listings not started are dropped) and end the thread."""
        self._jobs.clear()
        if self._thread is not None:
            self._thread.shutdown(cancel=True)
            self._thread = None

    def _scan(self, path: bytes) -> Iterable[ScanEntry]:
        return scan_directory(path, xattrs=self._xattrs)
