"""What the repository occupies on disk: the mirror, and the increments kept for each session.

An increment named ``X.<T>.<type>`` preserves X as it was in the session at T; it is written
by the next session (reference §3.1). So "increment size of session T" here is the space
spent to keep T restorable, as in ``rdiff-backup list increments --size``; the statistics
file's ``IncrementFileSize`` of session T is instead what session T wrote (for T's
predecessor).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rdb_format.errors import RdbError
from rdb_format.increments import parse_increment_name
from rdb_format.layout import DATA_DIR, INCREMENTS, LONG_FILENAME_DATA
from rdb_format.quoting import Quoting
from rdb_format.repository import RepositoryState


@dataclass
class DiskUsage:
    """Bytes and entries measured on disk."""

    mirror_bytes: int = 0  # sum of the sizes of the mirror's regular files
    mirror_entries: int = 0  # every mirror entry (all types, the root included)
    # session time -> [bytes, files] of the increment files named with that time
    increments: dict[int, list[int]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


def _walk(top: str, unreadable: list[str]) -> Iterator[os.DirEntry[str]]:
    """Every entry under ``top`` (not following symlinks), depth-first."""
    pending = [top]
    while pending:
        directory = pending.pop()
        try:
            listing = os.scandir(directory)
        except OSError as error:
            unreadable.append(f"{directory}: {error.strerror}")
            continue
        with listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    yield entry


def measure_mirror(root: Path, usage: DiskUsage) -> None:
    """Sum the mirror (the repository without its top-level rdiff-backup-data)."""
    pending = [os.fspath(root)]
    first = True
    usage.mirror_entries += 1  # the root
    while pending:
        directory = pending.pop()
        try:
            listing = os.scandir(directory)
        except OSError as error:
            usage.unreadable.append(f"{directory}: {error.strerror}")
            continue
        with listing:
            for entry in listing:
                if first and entry.name == DATA_DIR:
                    continue
                usage.mirror_entries += 1
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    usage.mirror_bytes += info.st_size
                elif stat.S_ISDIR(info.st_mode):
                    pending.append(entry.path)
        first = False


def _add_increment(usage: DiskUsage, quoting: Quoting, name: str, size: int, where: str) -> None:
    raw = os.fsencode(name)
    if quoting.active and b";" in raw:
        try:
            raw = quoting.unquote(raw, path=where)
        except RdbError:
            return
    parsed = parse_increment_name(raw)
    if parsed is None or parsed.kind == "data":
        return
    slot = usage.increments.get(parsed.time)
    if slot is None:
        usage.increments[parsed.time] = [size, 1]
    else:
        slot[0] += size
        slot[1] += 1


def measure_increments(state: RepositoryState, usage: DiskUsage) -> None:
    """Sum increment files by time: ``increments/**``, ``long_filename_data/*`` and the root
    ``increments.<T>.dir`` markers (0 bytes each). ``long_filename_data/<N>`` files hold
    mirror data of over-long names: they are added to the mirror instead."""
    quoting = state.quoting
    for data_entry in state.entries:
        parsed = data_entry.name
        if parsed.base == INCREMENTS.encode() and parsed.kind == "dir":
            slot = usage.increments.setdefault(parsed.time, [0, 0])
            slot[1] += 1
    data_dir = state.layout.data_dir
    for top in (data_dir / INCREMENTS, data_dir / LONG_FILENAME_DATA):
        if not top.is_dir():
            continue
        long_names = top.name == LONG_FILENAME_DATA
        for entry in _walk(os.fspath(top), usage.unreadable):
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if long_names and entry.name.isdigit():
                # the mirror data of an over-long name (reference §1.6): part of the mirror
                usage.mirror_entries += 1
                if stat.S_ISREG(info.st_mode):
                    usage.mirror_bytes += info.st_size
                continue
            _add_increment(usage, quoting, entry.name, info.st_size, entry.path)
