"""Mirror files replaced or removed only once the increments keeping their old data are on disk.

A backup session writes the reverse increment of a changed file (its previous version, as a
diff or a snapshot), then replaces the mirror copy. Against a kill that order is enough: the
page cache outlives the process. Against power loss it is not: a file system may persist the
rename of the mirror copy before the increment's data blocks (ext4 with delayed allocation
allocates them only at writeback), and then the previous version exists nowhere. An fsync
per increment would make the order hold, at a journal commit per changed file.

So the destructive steps (a rename over an old mirror file, an unlink, removing a deleted
directory's tree) are queued here instead, and run in their order after one ``syncfs`` of the
repository's file system: every increment written before a step was queued is on disk before
the step runs. A flush starts on a thread of its own once :data:`FLUSH_STEPS` steps or
:data:`FLUSH_BYTES` of new mirror data wait (so the staged copies do not pile up), and
:meth:`DurableOrder.flush` runs the rest before the directories' attributes are set and the
session commits. Steps that create the old path's replacement (a file becoming a directory
whose entries are written next) call :meth:`DurableOrder.flush` first instead.

Only the loss of data needs this: an increment holding no data (``.missing``, ``.dir``, a
symlink's or a special file's snapshot) is a directory change, which journaling file systems
commit in order, and attribute changes have the previous session's metadata behind them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence

from rdb_format.errors import RdbError
from rdb_mirror.release import Releaser
from rdb_mirror.workers import Job, Workers

__all__ = ["FLUSH_BYTES", "FLUSH_STEPS", "DurableOrder", "SyncFailed", "link_descriptor"]

#: Steps queued before a flush starts on its own: few enough that the final flush is short.
FLUSH_STEPS = 1024
#: New mirror data (staged copies waiting for their rename) before a flush starts on its own:
#: until then each changed file's old and new versions both take disk space.
FLUSH_BYTES = 256 << 20

_AnyPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]
_Sync = Callable[..., object]
_HOLD = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class SyncFailed(RdbError):
    """The sync before queued steps, or a step itself, failed: the session must not commit."""


class _Step:
    __slots__ = ("action", "source", "target")

    def __init__(
        self, target: bytes, source: bytes | None, action: Callable[[], None] | None
    ) -> None:
        self.target = target  # what the step destroys (for messages)
        self.source = source  # a replace's new file, else None
        self.action = action  # a queued call, else None (replace or unlink)


class DurableOrder:
    """Destructive mirror steps held until a sync of ``paths``' file systems. Thread-safe:
    pool jobs queue steps while the session's thread flushes."""

    def __init__(
        self,
        paths: Sequence[_AnyPath],
        release: Releaser,
        sync: _Sync,
        *,
        steps: int = FLUSH_STEPS,
        data: int = FLUSH_BYTES,
    ) -> None:
        self._paths = tuple(paths)
        self._release = release
        self._sync = sync
        self._limit_steps = steps
        self._limit_bytes = data
        self._lock = threading.Lock()  # the queue and the pending sources
        self._flushing = threading.Lock()  # one flush at a time, in order
        self._steps: list[_Step] = []
        self._bytes = 0
        self._sources: dict[bytes, bytes] = {}  # target → its queued new file
        self._thread: Workers | None = None
        self._job: Job[None] | None = None

    # ---- queueing (any thread) ----------------------------------------------------------

    def replace(self, source: _AnyPath, target: _AnyPath, size: int = 0) -> None:
        """``os.replace(source, target)`` after the next sync; ``size``: the new file's."""
        new, old = os.fsencode(source), os.fsencode(target)
        with self._lock:
            self._steps.append(_Step(old, new, None))
            self._sources[old] = new
            self._bytes += size

    def unlink(self, path: _AnyPath) -> None:
        """``os.unlink(path)`` after the next sync (gone by then: nothing to do)."""
        with self._lock:
            self._steps.append(_Step(os.fsencode(path), None, None))

    def later(self, path: _AnyPath, action: Callable[[], None]) -> None:
        """Call ``action`` (which destroys ``path``) after the next sync."""
        with self._lock:
            self._steps.append(_Step(os.fsencode(path), None, action))

    def open_current(self, target: _AnyPath) -> int:
        """An ``O_PATH`` descriptor of ``target``'s newest content (to link to with
        :func:`link_descriptor`): its queued new file while its replace waits, else
        ``target`` itself. A hard link made to it must get the new content, not the old copy
        the mirror still shows."""
        name = os.fsencode(target)
        for _ in range(2):
            with self._lock:
                current = self._sources.get(name, name)
            try:
                return os.open(current, _HOLD)
            except FileNotFoundError:
                if current == name:
                    raise
                # renamed onto ``target`` since: the source map no longer names it
        return os.open(name, _HOLD)

    # ---- flushing (the session's thread) ------------------------------------------------

    def flush_if_due(self) -> None:
        """Start a flush on the order's own thread when enough waits and none runs."""
        if len(self._steps) < self._limit_steps and self._bytes < self._limit_bytes:
            return
        if self._job is not None:
            if not self._job.done():
                return
            self._job.result()  # a failed flush ends the session here
        if self._thread is None:
            self._thread = Workers(1, "rdb-durable")
        self._job = self._thread.submit(self._flush)

    def flush(self) -> None:
        """Sync, then run every step queued so far, in order (after a flush in progress)."""
        self._wait()
        self._flush()

    def close(self) -> None:
        """End the thread. Steps still queued are dropped (a session that failed: its
        increments exist and the mirror copies are the previous session's, which is what
        regress expects); their new files are removed. A flush that failed meanwhile raised
        in :meth:`flush` already, or the session is failing for another reason: not again."""
        try:
            with contextlib.suppress(Exception):  # see the docstring
                self._wait()
        finally:
            if self._thread is not None:
                self._thread.shutdown()
                self._thread = None
            with self._lock:
                steps, self._steps = self._steps, []
                self._sources.clear()
            for step in steps:
                if step.source is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(step.source)

    def _wait(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            job.result()

    def _flush(self) -> None:
        with self._flushing:
            with self._lock:
                steps, self._steps = self._steps, []
                self._bytes = 0
            if not steps:
                return
            try:
                self._sync(*self._paths)
            except OSError as error:
                with self._lock:
                    self._steps[:0] = steps  # not run: close() removes their new files
                raise SyncFailed(
                    f"{os.fsdecode(self._paths[0])}: cannot sync the increments written "
                    f"before replacing mirror files: {error.strerror}"
                ) from None
            for index, step in enumerate(steps):
                try:
                    self._run(step)
                except OSError as error:
                    with self._lock:
                        self._steps[:0] = steps[index + 1 :]
                    raise SyncFailed(
                        f"{os.fsdecode(step.target)}: cannot replace or remove the mirror copy "
                        f"after its increment was written: {error.strerror}"
                    ) from None

    def _run(self, step: _Step) -> None:
        if step.action is not None:
            step.action()
        elif step.source is not None:
            with self._lock:  # renamed and forgotten together (open_current)
                self._release.replace(step.source, step.target)
                if self._sources.get(step.target) == step.source:
                    del self._sources[step.target]
        else:
            with contextlib.suppress(FileNotFoundError):
                self._release.unlink(step.target)


def link_descriptor(fd: int, path: _AnyPath) -> None:
    """Make ``path`` a new hard link to the file open as ``fd`` (an ``O_PATH`` one too):
    ``linkat`` of ``/proc/self/fd/N`` with ``AT_SYMLINK_FOLLOW``, which Python asks for only
    when given a directory descriptor (plain ``os.link`` would link the magic link itself)."""
    directory = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(str(fd), path, src_dir_fd=directory, follow_symlinks=True)
    finally:
        os.close(directory)
