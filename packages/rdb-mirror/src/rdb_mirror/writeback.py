"""Early writeback: a session's data starts going to disk while the session goes on.

The commit waits for one ``syncfs`` of the repository's file systems (docs/rdb-mirror.md,
"Durability"). Left alone, the kernel writes back almost nothing before it (it waits 30 s,
or until a tenth of the memory is dirty), so that syncfs wrote a first backup's every byte
after the last file was made: 0.20-0.22 s of a 20,000-file first backup on the benchmark
machine, with both CPUs idle. Here a thread calls ``syncfs`` whenever the session has
written another :data:`STEP` bytes, so the disk works while the walk does and the commit's
syncfs finds little left. Nothing changes for a session that writes less than that.

These early syncs are not what makes the session durable (the commit's is), but an error one
of them meets must not be lost: the kernel reports a writeback error to each descriptor
once, and a later syncfs through a new descriptor no longer sees one already reported. So
:meth:`EarlyWriteback.check` raises it, before the commit, as a failed commit sync would, and
the session's other syncs go through :meth:`EarlyWriteback.sync`, which raises it too: the
sync after which :class:`~rdb_mirror.durable.DurableOrder` replaces mirror copies must fail
when the increments keeping their previous versions may have lost their data.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from rdb_format.atomic import PathArg, sync_filesystems, syncfs_descriptor

#: bytes written between two early syncs
STEP = 16 * 1024 * 1024
#: how often the thread looks at the bytes written (seconds)
POLL = 0.05


class EarlyWriteback:
    """A thread syncing the file systems of ``paths`` whenever ``written()`` (the bytes the
    session has written so far, read from another thread) has grown by ``step``."""

    def __init__(
        self,
        paths: Sequence[PathArg],
        written: Callable[[], int],
        *,
        step: int = STEP,
        poll: float = POLL,
        syncfs: Callable[[int], bool] = syncfs_descriptor,
    ) -> None:
        self._fds: list[int] = []
        devices: set[int] = set()
        try:
            for path in paths:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                if os.fstat(fd).st_dev in devices:
                    os.close(fd)
                    continue
                devices.add(os.fstat(fd).st_dev)
                self._fds.append(fd)
        except BaseException:
            self._close()
            raise
        self._written = written
        self._step = step
        self._poll = poll
        self._syncfs = syncfs
        self._stopping = threading.Event()
        self._syncing = threading.Lock()  # held by an early sync until its error is kept
        self._error: OSError | None = None
        self.syncs = 0  # early syncs done (for tests and statistics)
        self._thread = threading.Thread(target=self._run, name="rdb-writeback", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        synced = 0
        while not self._stopping.wait(self._poll):
            written = self._written()
            if written - synced < self._step:
                continue
            synced = written
            with self._syncing:
                try:
                    for fd in self._fds:
                        if not self._syncfs(fd):
                            return  # no syncfs on this system: nothing to start early
                except OSError as error:
                    self._error = error
                    return
            self.syncs += 1

    def stop(self) -> None:
        """Stop the thread (waiting for a sync in progress) and close the descriptors."""
        self._stopping.set()
        self._thread.join()
        self._close()

    def check(self) -> None:
        """Raise the OSError an early sync met: the session must then not commit."""
        if self._error is not None:
            raise self._error

    def sync(self, *paths: PathArg) -> str:
        """:func:`~rdb_format.atomic.sync_filesystems` for the session's other syncs before
        its commit (DurableOrder's), failing also with the error an early sync met: through
        its new descriptor that sync is not told of an error an early sync was told of."""
        self.check()
        how = sync_filesystems(*paths)
        with self._syncing:  # an early sync in progress may be the one told of an error
            pass
        self.check()
        return how

    def _close(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)
