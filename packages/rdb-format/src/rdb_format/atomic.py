"""Crash-safe file writes: write a temp file in the same directory, fsync it, rename it over.

A reader (or a crash) therefore sees either the old file or the complete new one, never a
partial file. Temp files are named ``rdiff-backup.tmp.<N>`` like rdiff-backup's own, so a
leftover one is recognised and ignored (in ``rdiff-backup-data``) or cleaned up by regress (in
the mirror) by both tools.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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


def _open_temp(directory: Path, mode: int) -> tuple[int, Path]:
    for _ in range(100):
        candidate = directory / f"{TEMP_PREFIX}{secrets.randbelow(10**12)}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except FileExistsError:
            continue
        return fd, candidate
    raise RdbError("cannot create a unique temporary file", path=directory)


@contextlib.contextmanager
def atomic_writer(path: PathArg, *, mode: int = 0o600, fsync: bool = True) -> Iterator[BinaryIO]:
    """Stream into a temp file that replaces ``path`` only if the block exits normally.

    On an exception the temp file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    fd, temp = _open_temp(target.parent, mode)
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


def create_exclusive(path: PathArg, data: bytes, *, mode: int = 0o600) -> None:
    """Create ``path`` holding ``data`` atomically; FileExistsError if it already exists.

    The file appears with its full content at once (link(2) of a synced temp file), so a
    reader never sees it empty or half-written. Works on NFS, where O_EXCL may not.
    """
    target = Path(path)
    fd, temp = _open_temp(target.parent, mode)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.link(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    fsync_dir(target.parent)


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
