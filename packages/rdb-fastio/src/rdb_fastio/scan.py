"""A directory's entries with their ``lstat`` in one C call, with the GIL released.

``os.listdir`` gives up CPython's GIL around every ``readdir`` and ``os.lstat`` around every
call, so a walk running beside a busy pool thread waited for the GIL once per name and once
per file (with two CPUs, a cross-CPU wake-up each time: a 20,000-file backup spent a fifth of
its walk in ``os.listdir``). :func:`scan_directory` reads the names, stats them and, if
asked, sizes each one's extended attribute list, all in C. A directory of more than
:data:`SCAN_LIMIT` entries is listed and stat'ed one entry at a time as before, so that
memory stays bounded by its names, not by all their stats at once.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
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


def _ns(time: Any) -> int:
    """Nanoseconds since 1970 of a ``struct rdb_time``."""
    return int(time.sec) * 1_000_000_000 + int(time.nsec)


def scan_directory(path: bytes, *, xattrs: bool, limit: int = SCAN_LIMIT) -> Iterable[ScanEntry]:
    """The entries of directory ``path``, sorted by name (``.`` and ``..`` left out).
    Raises OSError if the directory cannot be opened or read."""
    scan = ffi.new("struct rdb_scan *")
    lib.rdb_scan_dir(path, 1 if xattrs else 0, limit, scan)
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
        lib.rdb_scan_free(scan)
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
