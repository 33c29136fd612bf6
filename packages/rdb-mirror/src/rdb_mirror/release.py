"""Freeing the storage of replaced and deleted mirror files on the pool, off the walk's thread.

A rename over a file, or an unlink, frees the old file's blocks in the call that drops the
inode's last reference. On some file systems that is most of the call: on the benchmark VM's
ext4 (mounted with ``discard``) a rename over a 6 KB file took 170–560 µs, and 10–20 µs when
the old inode was still held open (``benchmarks/bench_release.py``). So the old file is held
by an ``O_PATH`` descriptor first (which opens nothing: no device is opened, no permission
needed), the rename or unlink only changes the directory, and a pool thread closes the
descriptor, freeing the blocks there with the GIL released.
"""

from __future__ import annotations

import os
import threading

from rdb_mirror.workers import Workers

__all__ = ["PENDING_LIMIT", "Releaser"]

#: Descriptors waiting for the pool at most; past it the walk's thread closes its own (an
#: incremental of 100,000 deletions must not run out of descriptors).
PENDING_LIMIT = 128

_AnyPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]
_HOLD = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class Releaser:
    """:meth:`replace` and :meth:`unlink` that leave freeing the old file to ``pool``."""

    def __init__(self, pool: Workers, limit: int = PENDING_LIMIT) -> None:
        self._pool = pool
        self._slots = threading.BoundedSemaphore(limit)

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

    def _release(self, fd: int) -> None:
        if fd < 0:
            return
        if not self._slots.acquire(blocking=False):
            os.close(fd)
            return
        self._pool.submit(self._close, fd)

    def _close(self, fd: int) -> None:
        try:
            os.close(fd)
        finally:
            self._slots.release()


def _hold(path: _AnyPath) -> int:
    """A descriptor keeping ``path``'s inode, or -1 if there is nothing to hold."""
    try:
        return os.open(path, _HOLD)
    except OSError:
        return -1
