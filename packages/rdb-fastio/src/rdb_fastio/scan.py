"""A directory's entries with their ``lstat`` in one C call, with the GIL released.

``os.listdir`` gives up CPython's GIL around every ``readdir`` and ``os.lstat`` around every
call, so a walk running beside a busy pool thread waited for the GIL once per name and once
per file (with two CPUs, a cross-CPU wake-up each time: a 20,000-file backup spent a fifth of
its walk in ``os.listdir``). :func:`scan_directory` reads the names, stats them and, if
asked, sizes each one's extended attribute list, all in C. A directory of more than
:data:`SCAN_LIMIT` entries is listed and stat'ed one entry at a time as before, so that
memory stays bounded by its names, not by all their stats at once. :class:`ScanAhead` makes
those scans ahead of a walk on a C thread of its own (idle CPU time only), so that the walk's
thread finds the directories it lists next scanned already.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from functools import partial
from operator import itemgetter
from typing import Any

from rdb_fastio._batchio import ffi, lib

#: One entry of a directory: its name; its lstat (None if that failed); the errno of the
#: failure (0 if none); the size of its extended attribute list (0: it has none; -1: not
#: asked, a symlink, or not known: read it the general way).
ScanEntry = tuple[bytes, os.stat_result | None, int, int]

_BY_NAME = itemgetter(0)
#: More entries than this: :func:`scan_directory` stats them one at a time, as they are used.
SCAN_LIMIT = 20_000
#: An entry as the C scan packs it (``rdb_pack``): ``os.stat_result``'s 19 fields in order,
#: then the errno of its lstat and the size of its extended attribute list. Mode, inode,
#: device, links, uid, gid and rdev are unsigned, as lstat gives them (an inode number can
#: pass 2**63: NFS file ids, FUSE file systems that hash them).
_PACKED = struct.Struct("<6Q4q3d5qQ2q")
#: :class:`ScanAhead`'s bounds: directories queued (their paths only), scans being made or
#: ready, and the entries of the ready ones past which no scan starts (a scan holds at most
#: SCAN_LIMIT entries, ~200 bytes each: at most ~7 MiB held in all).
AHEAD_QUEUE = 256
AHEAD_RESULTS = 64
AHEAD_ENTRIES = 16_384


def _ns(time: Any) -> int:
    """Nanoseconds since 1970 of a ``struct rdb_time``."""
    return int(time.sec) * 1_000_000_000 + int(time.nsec)


def scan_directory(path: bytes, *, xattrs: bool, limit: int = SCAN_LIMIT) -> Iterable[ScanEntry]:
    """The entries of directory ``path``, sorted by name (``.`` and ``..`` left out).
    Raises OSError if the directory cannot be opened or read."""
    scan = ffi.new("struct rdb_scan *")
    lib.rdb_scan_dir(path, 1 if xattrs else 0, limit, scan)
    return _listing(path, scan)


def _listing(path: bytes, scan: Any, free: Any = lib.rdb_scan_free) -> Iterable[ScanEntry]:
    """:func:`scan_directory`'s answer from the C scan of ``path`` (which it frees with
    ``free``)."""
    if scan.too_many:
        return _one_at_a_time(path, sorted(os.listdir(path)))
    if scan.error:
        raise OSError(scan.error, os.strerror(scan.error), os.fsdecode(path))
    try:
        if not scan.wide:
            return _unpacked(scan)
        entries: list[ScanEntry] = []
        stat_result = os.stat_result
        string = ffi.string
        for n in range(scan.count):
            e = scan.entries[n]
            name = string(e.name)
            if e.error:
                entries.append((name, None, e.error, -1))
                continue
            if e.wide:  # after 2262: nanoseconds since 1970 overflowed 64 bits in C
                atime, mtime, ctime = (_ns(t) for t in (e.atime, e.mtime, e.ctime))
            else:
                atime, mtime, ctime = e.atime_ns, e.mtime_ns, e.ctime_ns
            a_sec, a_ns = divmod(atime, 1_000_000_000)
            m_sec, m_ns = divmod(mtime, 1_000_000_000)
            c_sec, c_ns = divmod(ctime, 1_000_000_000)
            st = stat_result(
                (
                    e.mode,
                    e.ino,
                    e.dev,
                    e.nlink,
                    e.uid,
                    e.gid,
                    e.size,
                    a_sec,
                    m_sec,
                    c_sec,
                    a_sec + a_ns * 1e-9,  # as os.lstat makes them (not ns / 1e9: it can
                    m_sec + m_ns * 1e-9,  # differ in the last bit)
                    c_sec + c_ns * 1e-9,
                    atime,
                    mtime,
                    ctime,
                    e.blksize,
                    e.blocks,
                    e.rdev,
                )
            )
            entries.append((name, st, 0, e.xattr_bytes))
    finally:
        free(scan)
    entries.sort(key=_BY_NAME)
    return entries


def _unpacked(scan: Any) -> list[ScanEntry]:
    """The entries of a scan from its packed rows: one C-level unpack per entry instead of a
    cffi field access per stat field (2 µs an entry: as much as the scan's system calls)."""
    count = scan.count
    if not count:
        return []
    names = ffi.unpack(scan.names, scan.names_size - 1).split(b"\0")
    rows = _PACKED.iter_unpack(ffi.buffer(scan.packed, count * _PACKED.size))
    stat_result = os.stat_result
    entries: list[ScanEntry] = [
        (name, None, row[19], -1) if row[19] else (name, stat_result(row[:19]), 0, row[20])
        for name, row in zip(names, rows, strict=True)
    ]
    entries.sort(key=_BY_NAME)
    return entries


class ScanAhead:
    """Directories scanned ahead of a walk, on a C thread that never needs the GIL (a Python
    thread would need it to start each scan and to hand it back, and wait for it behind a
    walk that holds it), and runs only on an idle CPU (SCHED_IDLE: it must not take the
    walk's CPU, nor another process's).

    The walk :meth:`submit` s the directories it will list, and :meth:`take` s each one's
    listing when it gets there: the scan made ahead if it is ready, else None (then the walk
    lists it itself: it never waits for the thread, nor for its lock). The walk must list
    directories in the order of a depth-first walk of sorted listings (a directory, its
    subdirectories, its next sibling), and give their paths as ``parent + b"/" + name``
    (one slash): a directory queued and passed is dropped. With ``explore``, for a walk that
    lists every directory below its root but ``explore`` (the path given), the
    subdirectories of every directory scanned (ahead, or by :meth:`listing`) are queued
    without being submitted.

    Bounded: at most ``queue`` directories queued, at most ``results`` scans being made or
    ready, and no scan starts while the ready ones hold ``entries`` entries or more (the
    directories needed last give way to those needed first). The thread starts with the
    first directory submitted; :meth:`close` stops it and frees what was not taken (the walk
    must close it, also when it ends early). One walk's thread uses it. In a child forked
    meanwhile nothing is scanned ahead."""

    def __init__(
        self,
        *,
        xattrs: bool,
        explore: bytes | None = None,
        limit: int = SCAN_LIMIT,
        queue: int = AHEAD_QUEUE,
        results: int = AHEAD_RESULTS,
        entries: int = AHEAD_ENTRIES,
    ) -> None:
        skip = ffi.NULL if explore is None else explore
        handle = lib.rdb_ahead_new(1 if xattrs else 0, limit, queue, results, entries, skip)
        if handle == ffi.NULL:
            raise MemoryError("cannot make a directory scanner")
        self._handle: Any = ffi.gc(handle, lib.rdb_ahead_free)
        self._scan = ffi.new("struct rdb_scan *")
        # a scan taken is freed by the thread, in its own malloc arena (rdb_ahead_scan_free)
        self._give_back = partial(lib.rdb_ahead_scan_free, self._handle)
        self._xattrs = xattrs
        self._limit = limit
        #: at most this many directories are queued: submit no more at once
        self.capacity = queue
        self.closed = False

    def submit(self, paths: list[bytes]) -> int:
        """Queue ``paths`` (each one reached after the one before it by the walk) to be
        scanned ahead: how many of the first ones are (or already were); the rest are not
        (no room: every directory queued is needed before them)."""
        if self.closed or not paths:
            return 0
        return int(lib.rdb_ahead_submit(self._handle, b"\0".join(paths), len(paths)))

    def take(self, path: bytes) -> Iterable[ScanEntry] | None:
        """The listing of directory ``path`` as :func:`scan_directory` gives it (and raises
        OSError as it does, for an error of the scan made ahead), if its scan ahead is ready;
        None if not. It is dropped then, and so are the directories queued before it."""
        if self.closed or not lib.rdb_ahead_take(self._handle, path, self._scan):
            return None
        return _listing(path, self._scan, self._give_back)

    def listing(self, path: bytes) -> tuple[Iterable[ScanEntry], bool]:
        """The listing of directory ``path`` as :func:`scan_directory` gives it (and raises
        OSError as it does): taken as :meth:`take` takes it (then True), else scanned now, in
        the same C call (one release of the GIL, as scan_directory's own)."""
        if self.closed:
            return scan_directory(path, xattrs=self._xattrs, limit=self._limit), False
        if lib.rdb_ahead_list(self._handle, path, self._scan):
            return _listing(path, self._scan, self._give_back), True
        return _listing(path, self._scan), False

    def stats(self) -> dict[str, int]:
        """What it did so far (see ``struct rdb_ahead_stats``): for tests and measurements."""
        out = ffi.new("struct rdb_ahead_stats *")
        if not self.closed:
            lib.rdb_ahead_stats(self._handle, out)
        return {field: int(getattr(out, field)) for field in dir(out)}

    def close(self) -> None:
        """Stop the thread (once the scan it is making ends) and free every scan not taken."""
        if not self.closed:
            self.closed = True
            ffi.release(self._handle)

    def __enter__(self) -> ScanAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scan_ahead_threads() -> int:
    """The threads of :class:`ScanAhead` s running in this process (for tests)."""
    return int(lib.rdb_ahead_threads())


def _one_at_a_time(path: bytes, names: list[bytes]) -> Iterator[ScanEntry]:
    for name in names:
        try:
            yield name, os.lstat(os.path.join(path, name)), 0, -1
        except OSError as error:
            yield name, None, error.errno or 0, -1


def list_names(dir_fd: int) -> list[bytes]:
    """The names in the directory open as ``dir_fd`` (``.`` and ``..`` left out, in directory
    order), read in one C call with the GIL released (``os.listdir`` gives it up around every
    name). Raises OSError if the directory cannot be read."""
    out = ffi.new("struct rdb_names *")
    lib.rdb_list_names(dir_fd, out)
    if out.error:
        raise OSError(out.error, os.strerror(out.error))
    try:
        if not out.count:
            return []
        return ffi.unpack(out.names, out.size - 1).split(b"\0")
    finally:
        lib.rdb_names_free(out)
