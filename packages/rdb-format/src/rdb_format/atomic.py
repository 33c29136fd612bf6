"""Crash-safe file writes: write a temp file in the same directory, fsync it, rename it over.

A reader (or a crash) therefore sees either the old file or the complete new one, never a
partial file. Temp files are named ``rdiff-backup.tmp.<N>`` like rdiff-backup's own, so a
leftover one is recognised and ignored (in ``rdiff-backup-data``) or cleaned up by regress (in
the mirror) by both tools.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

from rdb_format.errors import RdbError

TEMP_PREFIX = "rdiff-backup.tmp."

PathArg = str | os.PathLike[str]


def is_temp_name(name: str | bytes) -> bool:
    """Whether a directory entry is a temp file left by us or rdiff-backup."""
    if isinstance(name, bytes):
        return name.startswith(TEMP_PREFIX.encode())
    return name.startswith(TEMP_PREFIX)


def fsync_dir(path: PathArg) -> None:
    """Flush a directory's entries (creations, renames, unlinks) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_temp(directory: PathArg, mode: int = 0o600) -> tuple[int, Path]:
    """Create a new, unique ``rdiff-backup.tmp.<N>`` in ``directory``: (write fd, its path).

    O_EXCL|O_CLOEXEC; the caller closes the fd and renames, links or removes the file.
    """
    import secrets  # here: its import (hmac, hashlib) is start-up cost for readers

    directory = Path(directory)
    for _ in range(100):
        candidate = directory / f"{TEMP_PREFIX}{secrets.randbelow(10**12)}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except FileExistsError:
            continue
        return fd, candidate
    raise RdbError("cannot create a unique temporary file", path=directory)


_open_temp = open_temp  # the old private name, kept for callers


@contextlib.contextmanager
def atomic_writer(path: PathArg, *, mode: int = 0o600, fsync: bool = True) -> Iterator[BinaryIO]:
    """Stream into a temp file that replaces ``path`` only if the block exits normally.

    On an exception the temp file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    fd, temp = open_temp(target.parent, mode)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            if fsync:
                os.fsync(stream.fileno())
        temp.replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    if fsync:
        fsync_dir(target.parent)


def write_atomic(path: PathArg, data: bytes, *, mode: int = 0o600, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (and durably unless ``fsync=False``)."""
    with atomic_writer(path, mode=mode, fsync=fsync) as stream:
        stream.write(data)


@contextlib.contextmanager
def exclusive_writer(path: PathArg, *, mode: int = 0o600, fsync: bool = True) -> Iterator[BinaryIO]:
    """Stream into a temp file that becomes ``path`` only if ``path`` does not exist yet.

    "Create, never overwrite": at the end the temp file is hard-linked (link(2)) to ``path``,
    which fails with FileExistsError if anything is there, so an existing file is never
    replaced, even by a racing writer, and ``path`` appears complete at once. On any
    exception (FileExistsError included) the temp file is removed. With ``fsync=False`` the
    caller syncs later (see :class:`SyncBatch`).
    """
    target = Path(path)
    fd, temp = open_temp(target.parent, mode)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            if fsync:
                os.fsync(stream.fileno())
        os.link(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    if fsync:
        fsync_dir(target.parent)


def create_exclusive(path: PathArg, data: bytes, *, mode: int = 0o600, fsync: bool = True) -> None:
    """Create ``path`` holding ``data`` atomically; FileExistsError if it already exists.

    The file appears with its full content at once (link(2) of a synced temp file), so a
    reader never sees it empty or half-written. Works on NFS, where O_EXCL may not.
    """
    with exclusive_writer(path, mode=mode, fsync=fsync) as stream:
        stream.write(data)


class SyncBatch:
    """Collect what a session wrote, then make it all durable at once before the commit.

    The durability rule (docs/format.md §12): everything a session wrote must be on disk
    before its commit point (the old ``current_mirror`` marker is removed, or the first
    marker written). Write with ``fsync=False``, :meth:`add` each file (its directory is
    added too) or directory, and call :meth:`sync` once, just before the commit: each file
    and directory is fsync'd once, however often it was added. A path that has gone since
    (a temp file renamed away) is skipped.
    """

    def __init__(self) -> None:
        self._files: dict[str, None] = {}
        self._dirs: dict[str, None] = {}

    def add(self, path: PathArg) -> None:
        """A file written (its parent directory's entry is synced too)."""
        name = os.fspath(path)
        self._files[name] = None
        self._dirs[os.path.dirname(os.path.abspath(name))] = None

    def add_dir(self, path: PathArg) -> None:
        """A directory whose entries changed (created, renamed or removed names)."""
        self._dirs[os.path.abspath(os.fspath(path))] = None

    def __len__(self) -> int:
        return len(self._files) + len(self._dirs)

    def sync(self) -> int:
        """fsync every file, then every directory, once; returns how many were synced.

        The batch is empty afterwards. A missing path is skipped; other errors propagate.
        """
        count = 0
        for name in self._files:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except (FileNotFoundError, OSError) as error:
                if isinstance(error, FileNotFoundError) or error.errno == errno.ELOOP:
                    continue  # gone, or a symlink (nothing to fsync)
                raise
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            count += 1
        for name in self._dirs:
            try:
                fsync_dir(name)
            except FileNotFoundError:
                continue
            count += 1
        self._files.clear()
        self._dirs.clear()
        return count


def sync_filesystems(*paths: PathArg) -> str:
    """Make everything written to the file systems holding ``paths`` durable; returns how.

    ``syncfs(2)`` of each distinct file system (one writeback and journal commit each, and
    only of those file systems), else, where syncfs is unavailable, ``sync()`` of all. Used
    once before a commit point instead of an fsync per file (docs/rdb-mirror.md). A failing
    syncfs (e.g. EIO: written data is lost) raises OSError: the caller must not commit.
    """
    seen: set[int] = set()
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            device = os.fstat(fd).st_dev
            if device in seen:
                continue
            seen.add(device)
            if not _syncfs(fd):
                os.sync()
                return "sync"
        finally:
            os.close(fd)
    return "syncfs"


def syncfs_descriptor(fd: int) -> bool:
    """``syncfs`` of the file system holding open file ``fd``; False when this system has
    none. A failure (e.g. EIO: written data is lost) raises OSError."""
    return _syncfs(fd)


def _syncfs(fd: int) -> bool:
    """syncfs(fd) through libc; False when this system has no syncfs."""
    function = _libc_syncfs()
    if function is None:
        return False
    if function(fd) != 0:
        number = _errno()
        if number == errno.ENOSYS:
            return False
        raise OSError(number, f"syncfs failed: {os.strerror(number)}")
    return True


_SYNCFS: list[object] = []


def _libc_syncfs() -> Callable[[int], int] | None:
    if not _SYNCFS:
        try:
            import ctypes

            _SYNCFS.append(ctypes.CDLL(None, use_errno=True).syncfs)
        except (OSError, AttributeError, ImportError):
            _SYNCFS.append(None)
    return cast("Callable[[int], int] | None", _SYNCFS[0])


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def remove_durable(path: PathArg, *, missing_ok: bool = False) -> None:
    """Unlink ``path`` and fsync its directory so the removal survives a crash."""
    target = Path(path)
    try:
        target.unlink()
    except FileNotFoundError:
        if not missing_ok:
            raise
        return
    fsync_dir(target.parent)
