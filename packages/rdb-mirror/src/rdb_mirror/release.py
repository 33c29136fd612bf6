"""Freeing the storage of replaced and deleted mirror files on the pool, off the walk's thread.

A rename over a file, or an unlink, frees the old file's blocks in the call that drops the
inode's last reference. On some file systems that is most of the call: on the benchmark VM's
ext4 (mounted with ``discard``) a rename over a 6 KB file took 170–560 µs, and 10–20 µs when
the old inode was still held open (``benchmarks/bench_release.py``). So the old file is held
by an ``O_PATH`` descriptor first (which opens nothing: no device is opened, no permission
needed), the rename or unlink only changes the directory, and a thread of the releaser's own
closes the descriptors, a batch at a time, freeing the blocks there with the GIL released.
"""

from __future__ import annotations

import os
import threading

from rdb_mirror.workers import Workers

__all__ = ["BATCH", "PENDING_LIMIT", "Releaser"]

#: Descriptors closed per job: waking a thread per file cost the walk's thread a GIL hand-off
#: each (more than the close it spared it, measured with py-spy on a django incremental).
BATCH = 32
#: Descriptors in batches handed to the thread at most; past it the calling thread closes its
#: own (an incremental of 100,000 deletions must not run out of descriptors). Up to
#: ``BATCH - 1`` more wait to fill the next batch.
PENDING_LIMIT = 128

_AnyPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]
_HOLD = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class Releaser:
    """:meth:`replace` and :meth:`unlink` that leave freeing the old file to a thread of its
    own (``BATCH`` at a time); :meth:`close` frees the rest and ends it. Thread-safe."""

    def __init__(self, *, batch: int = BATCH, limit: int = PENDING_LIMIT) -> None:
        self._batch = batch
        self._held: list[int] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, limit // batch))  # batches in flight
        self._thread: Workers | None = None

    def replace(self, source: _AnyPath, target: _AnyPath) -> None:
        """``os.replace(source, target)``; the file ``target`` named before is freed later."""
        held = _hold(target)
        try:
            os.replace(source, target)
        finally:
            self._release(held)

    def unlink(self, path: _AnyPath) -> None:
        """``os.unlink(path)``; the file is freed later."""
        held = _hold(path)
        try:
            os.unlink(path)
        finally:
            self._release(held)

    def close(self) -> None:
        """Free every file still held (waiting for the thread) and end the thread."""
        with self._lock:
            held, self._held = self._held, []
            thread, self._thread = self._thread, None
        _close_all(held)
        if thread is not None:
            thread.shutdown()

    def _release(self, fd: int) -> None:
        if fd < 0:
            return
        with self._lock:
            self._held.append(fd)
            if len(self._held) < self._batch:
                return
            batch, self._held = self._held, []
            if self._thread is None:
                self._thread = Workers(1, "rdb-release")
            thread = self._thread
        if self._slots.acquire(blocking=False):
            thread.submit(self._close_batch, batch)
        else:
            _close_all(batch)

    def _close_batch(self, batch: list[int]) -> None:
        try:
            _close_all(batch)
        finally:
            self._slots.release()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _hold(path: _AnyPath) -> int:
    """A descriptor keeping ``path``'s inode, or -1 if there is nothing to hold."""
    try:
        return os.open(path, _HOLD)
    except OSError:
        return -1
