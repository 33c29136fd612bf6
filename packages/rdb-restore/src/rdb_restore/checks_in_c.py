"""Files rebuilt and checked against their recorded SHA1 in C, many per call, on a thread pool:
what ``verify`` does for every regular file the repository gives as a copy, or as a copy and
reverse diffs, of at most :data:`rdb_fastio.rebuild.DEFAULT_LIMIT` bytes per version.

Each batch is one :class:`rdb_fastio.rebuild.RebuildPlan` call with ``CHECK_ONLY`` targets: the
files are rebuilt in memory and hashed with the GIL released, nothing is written. The walk
closes a directory's descriptors once it has moved on, so a batch holds duplicates of those its
files are read through (a batch ends at :data:`BATCH_DIRS` directories, fewer with many workers:
all the batches in flight hold at most :data:`DESCRIPTOR_BUDGET`). A file
the C routine cannot give (a file missing, a damaged gzip or delta, a version past the limit)
is handed back to the caller (``redo``), whose general way says exactly what is wrong.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from rdb_fastio.rebuild import CHECK_ONLY, DEFAULT_LIMIT, RebuildPlan, RebuildStatus, RepoFile
from rdb_restore.repo import Entry
from rdb_restore.sources import Place, SourceTree
from rdb_restore.writer import PlainCopy

#: A batch ends at this many files ...
BATCH_FILES = 128
#: ... or at this many directories (each holds up to two duplicated descriptors until it is
#: done), fewer with many workers: ...
BATCH_DIRS = 32
#: ... so that all the batches in flight (2 per worker, and the one being filled) hold at most
#: this many, well under the usual limit of 1024 open files (16 workers, 33 batches of 32
#: directories, had held 2112).
DESCRIPTOR_BUDGET = 512

# files found as recorded: how many, and their bytes (counted at once, per batch: the pool's
# thread then holds the GIL the walk needs for as short as it can)
Matched = Callable[[int, int], None]
# a file that is not: (entry, its size, the SHA1 of its bytes (hex), the recorded one)
Mismatched = Callable[[Entry, int, str, str], None]
# a file the C routine could not give: (entry, the recorded SHA1), checked the general way
Redo = Callable[[Entry, str], None]


class _Batch:
    def __init__(self) -> None:
        self.plan = RebuildPlan(DEFAULT_LIMIT)
        self.files: list[tuple[Entry, str]] = []
        self.places: dict[int, tuple[Place, dict[int, int]]] = {}  # by id: kept alive here

    def descriptor(self, place: Place, fd: int) -> int:
        """A duplicate of ``place``'s descriptor ``fd``, valid until the batch is closed."""
        _, dups = self.places.setdefault(id(place), (place, {}))
        dup = dups.get(fd)
        if dup is None:
            dup = dups[fd] = os.dup(fd)
        return dup

    def close(self) -> None:
        for _, dups in self.places.values():
            for fd in dups.values():
                os.close(fd)
        self.places.clear()


class CheckBatches:
    """Gather files into batches and check each batch on a pool of ``workers`` threads (a
    bounded number in flight); ``matched``, ``mismatched`` and ``redo`` are called from the
    pool's threads.
    Use as a context manager: leaving it checks the last batch, waits for all, and raises
    the first error a batch met (other than the files' own)."""

    def __init__(
        self,
        tree: SourceTree,
        workers: int,
        matched: Matched,
        mismatched: Mismatched,
        redo: Redo,
    ) -> None:
        self._tree = tree
        self._matched = matched
        self._mismatched = mismatched
        self._redo = redo
        self._batch: _Batch | None = None
        self._dirs = max(1, min(BATCH_DIRS, DESCRIPTOR_BUDGET // (2 * (workers * 2 + 1))))
        # with very many workers even a directory a batch is too many: fewer batches in
        # flight (--workers 300 had held 1202 descriptors), the rest of the workers idle
        in_flight = min(workers * 2, max(1, DESCRIPTOR_BUDGET // (2 * self._dirs) - 1))
        self._slots = threading.BoundedSemaphore(in_flight)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="rdb-verify")
        self._fatal: list[BaseException] = []

    def take(self, entry: Entry, parent: Place, sha1: str) -> bool:
        """Add regular file ``entry`` (in directory ``parent``, recorded ``sha1``) to the
        batch if C can check it; False if it must be checked the general way."""
        record = entry.record
        if record.size is None or record.size > DEFAULT_LIMIT or self._fatal:
            return False
        found = self._tree.plain_copy(parent, entry.index, record)
        if found is None:
            return False
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch()
        if isinstance(found, PlainCopy):
            base: RepoFile = (batch.descriptor(parent, found.dir_fd), found.name, False)
            deltas: tuple[RepoFile, ...] = ()
        else:
            fd, name, gzipped = found.base
            base = (batch.descriptor(parent, fd), name, gzipped)
            deltas = tuple((batch.descriptor(parent, d), n, gz) for d, n, gz in found.deltas)
        batch.plan.add(base, deltas, CHECK_ONLY, b"", 0, None, bytes.fromhex(sha1))
        batch.files.append((entry, sha1))
        if len(batch.files) >= BATCH_FILES or len(batch.places) >= self._dirs:
            self._hand_over()
        return True

    def _hand_over(self) -> None:
        batch = self._batch
        if batch is None:
            return
        self._slots.acquire()  # (interrupted: the batch is still ours, closed on exit)
        self._batch = None
        try:
            self._pool.submit(self._check, batch)
        except BaseException:
            batch.close()
            self._slots.release()
            raise

    def _check(self, batch: _Batch) -> None:
        try:
            done = batch.plan.rebuild()
            self._matched(batch.plan.count - len(done.failed), done.bytes)
            for n, result in done.failed:
                entry, sha1 = batch.files[n]
                if result.status == RebuildStatus.SHA1:
                    self._mismatched(entry, result.size, result.sha1, sha1)
                else:
                    self._redo(entry, sha1)
        except BaseException as error:
            self._fatal.append(error)
        finally:
            batch.close()
            self._slots.release()

    def __enter__(self) -> CheckBatches:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if error is None:
                self._hand_over()
        finally:
            if self._batch is not None:  # not handed over: an error, or one handing it over
                self._batch.close()
                self._batch = None
            self._pool.shutdown(wait=True)
        if error is None and self._fatal:
            raise self._fatal[0]
