"""The reverse increment of one changed regular file, written in one C call with the GIL
released: the librsync signature of the new version, the delta of the old version against it,
gzipped or not, then the old file's owner, mode and times on the increment. Or the old version
whole, gzipped or not (a snapshot increment: a file deleted or replaced by another type).

Done in Python (rdb_increment.writer's general path) a small file's increment was ~0.6 ms of
Python holding the GIL (a BytesIO signature, its loading, a delta generator, a GzipFile, the
attribute calls) for ~0.05 ms of librsync. The C routine (``rdb_write_delta``, in
``rdb_fastio._increment``) makes the same bytes: the same librsync calls with the same
parameters, the old file fed in the pieces the Python path's reads cut (a delta against an
empty signature has one literal per piece), and a gzip member as Python's ``gzip.GzipFile``
writes it (zlib raw deflate at the same level, its header fields and trailer).

Each version is read whole into memory and must have the size the caller saw; the increment is
built in memory, then written with one ``write``. Anything that goes wrong (a file missing, not
regular or of another size, an unreadable file, librsync or zlib failing, the target taken or
not writable) leaves nothing at the target's name and is reported by its status: the caller
then takes its general path, which says exactly what is wrong.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

try:
    from rdb_fastio._increment import ffi, lib  # type: ignore[import-not-found]  # no stubs
except ModuleNotFoundError as missing:  # an editable install from before this module
    raise ImportError(
        "rdb_fastio._increment is not built (an install of rdb-fastio older than it); rebuild "
        "it: './dev setup', or 'pip install -e packages/rdb-fastio'"
    ) from missing

# librsync writes its error messages to stderr unless told otherwise, process-wide: quiet here,
# unless the rdiff package (which shares the library) already takes them for its own errors
if "rdiff._binding" not in sys.modules:
    lib.rdb_delta_quiet()

#: The largest version (old or new) this routine is for: both are held whole in memory.
DELTA_LIMIT = 8 << 20

_NS = 1_000_000_000


class DeltaStatus(enum.IntEnum):
    """How writing one increment ended (anything but DONE leaves nothing at the target)."""

    DONE = 0
    CREATE = 1  # the target could not be created (it exists, or a directory is missing ...)
    OPEN_NEW = 2
    READ_NEW = 3
    OPEN_OLD = 4
    READ_OLD = 5
    CHANGED = 6  # a version is no regular file (a symlink, ...) or not of the size seen
    RSYNC = 7  # librsync failed
    WRITE = 8
    MODE = 9
    TIMES = 10
    FSYNC = 11
    CLOSE = 12
    MEMORY = 13  # no memory, or zlib failed


@dataclass(frozen=True, slots=True)
class DeltaWritten:
    """What :func:`write_delta_increment` did: its status, the errno of the step that failed
    (0 if none), the increment's size and the bytes of the old version read (when DONE)."""

    status: DeltaStatus
    error: int
    size: int
    read: int


@dataclass(frozen=True, slots=True)
class DeltaJob:
    """One increment: the delta that turns ``new`` (the signature's basis, ``new_size`` bytes)
    back into ``old`` (``old_size`` bytes), created at ``target`` (which must not exist) with
    mode 0600 and then the ``owner`` (uid, gid; failures ignored; None: left), ``mode`` and
    ``times_ns`` (atime, mtime) of the old file. The signature: ``block_len``, ``strong_len``,
    ``magic``. ``gzip_name``: gzip it with this FNAME in the header (None: not gzipped) at
    ``level`` with ``gzip_mtime``. ``fsync``: fsync it before it is closed. ``snapshot``: the
    increment is ``old`` whole instead (a ``.snapshot[.gz]`` of a deleted or replaced file),
    gzipped or not as above; ``new`` and the signature's fields are then not used."""

    old: bytes
    new: bytes
    target: bytes
    old_size: int
    new_size: int
    block_len: int
    strong_len: int
    magic: int
    mode: int
    times_ns: tuple[int, int]
    owner: tuple[int, int] | None = None
    gzip_name: bytes | None = None
    level: int = 9
    gzip_mtime: int = 0
    fsync: bool = False
    snapshot: bool = False  # the old version whole (a .snapshot[.gz]): new is not read


def _c_job(job: DeltaJob) -> tuple[Any, list[Any]]:
    """``job`` as the C struct, and the buffers it points into (keep them while it runs)."""
    c = ffi.new("struct rdb_delta_job *")
    keep = [ffi.new("char[]", job.old), ffi.new("char[]", job.new), ffi.new("char[]", job.target)]
    c.old, c.new, c.target = keep
    c.old_size, c.new_size = job.old_size, job.new_size
    c.block_len, c.strong_len, c.magic = job.block_len, job.strong_len, job.magic
    c.gzip_name = ffi.NULL
    if job.gzip_name is not None:
        keep.append(ffi.new("char[]", job.gzip_name))
        c.gzip_name = keep[-1]
        c.gzip = 1
        c.level = job.level
        c.gzip_mtime = job.gzip_mtime & 0xFFFFFFFF
    if job.owner is not None:
        c.set_owner = 1
        c.uid, c.gid = job.owner
    c.mode = job.mode
    c.atime_sec, c.atime_nsec = divmod(job.times_ns[0], _NS)
    c.mtime_sec, c.mtime_nsec = divmod(job.times_ns[1], _NS)
    c.fsync = job.fsync
    c.snapshot = job.snapshot
    return c, keep


def _written(c: Any) -> DeltaWritten:
    return DeltaWritten(DeltaStatus(c.status), c.error, c.size, c.read)


def write_delta_increment(job: DeltaJob) -> DeltaWritten:
    """Write ``job``'s increment in one C call, with the GIL released."""
    c, _keep = _c_job(job)
    lib.rdb_write_delta(c)
    return _written(c)


class DeltaBatch:
    """Increments written together in one C call with the GIL released: each job is made
    into its C form as it is added (on the adding thread), then :meth:`run` (once, from any
    thread), then :meth:`result` of each."""

    __slots__ = ("_jobs", "_keep")

    def __init__(self) -> None:
        self._jobs: list[Any] = []
        self._keep: list[Any] = []

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: DeltaJob) -> int:
        """Add ``job``; its position, for :meth:`result`."""
        c, keep = _c_job(job)
        self._jobs.append(c)
        self._keep.append(keep)
        return len(self._jobs) - 1

    def run(self) -> None:
        """Write every increment of the batch, in the order added."""
        if self._jobs:
            lib.rdb_write_deltas(ffi.new("struct rdb_delta_job *[]", self._jobs), len(self._jobs))

    def result(self, position: int) -> DeltaWritten:
        """What became of the job at ``position`` (after :meth:`run`)."""
        return _written(self._jobs[position])


def set_times(files: Sequence[tuple[bytes, int, int]]) -> list[OSError | None]:
    """Set each ``(path, atime_ns, mtime_ns)``'s times (no symlink followed) in one C call
    with the GIL released; per file, None or the OSError of its ``utimensat``."""
    count = len(files)
    if count == 0:
        return []
    batch = ffi.new("struct rdb_times[]", count)
    keep: list[Any] = []
    for n, (path, atime_ns, mtime_ns) in enumerate(files):
        c = batch[n]
        keep.append(ffi.new("char[]", path))
        c.path = keep[-1]
        c.atime_sec, c.atime_nsec = divmod(atime_ns, _NS)
        c.mtime_sec, c.mtime_nsec = divmod(mtime_ns, _NS)
    lib.rdb_set_times(batch, count)
    results: list[OSError | None] = []
    for n, (path, _, _) in enumerate(files):
        error = batch[n].error
        results.append(OSError(error, os.strerror(error), os.fsdecode(path)) if error else None)
    return results
