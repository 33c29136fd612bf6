"""A deleted regular file's ``.snapshot.gz`` is written in C up to DELTA_LIMIT bytes and in
Python past it: a session that deletes a file of exactly the limit and one of a byte more
writes both snapshots alike (the same gzip header fields, the old bytes inside), and the
earlier session restores bit-exact."""

from __future__ import annotations

import gzip
import hashlib
import random
import time
from pathlib import Path
from typing import Any

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import (
    differences,
    restore_with_rdiff_backup,
    restored,
    session_time,
)

import rdb_increment.writer as writer_module
from rdb_fastio.increment import DELTA_LIMIT, DeltaStatus, write_delta_increment
from rdb_format.timestamps import format_timestring
from rdb_mirror import BackupOptions, backup

SIZES = {"at-limit": DELTA_LIMIT, "over-limit": DELTA_LIMIT + 1}


def _gzip_header(data: bytes) -> tuple[int, int, int, int, int, bytes]:
    """A gzip member's header fields (RFC 1952): CM, FLG, MTIME, XFL, OS, FNAME."""
    assert data[:2] == b"\x1f\x8b" and data[3] == 0x08  # FNAME, nothing else
    fname = data[10 : data.index(b"\0", 10)]
    return data[2], data[3], int.from_bytes(data[4:8], "little"), data[8], data[9], fname


def _deleting_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, trees.Snapshot, dict[str, bytes]]:
    """T0 backs up the two files (incompressible: their snapshots are larger still) and a
    small one, T1 after they are deleted; the repository, T0's scan and the snapshots."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    for name, size in SIZES.items():
        (src / name).write_bytes(random.Random(size).randbytes(size))
    (src / "kept.txt").write_bytes(b"stays\n")
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    before = trees.scan(src)
    for name in SIZES:
        (src / name).unlink()
    in_c: list[tuple[int, DeltaStatus]] = []
    real = write_delta_increment

    def spy(job: Any) -> Any:
        done = real(job)
        in_c.append((job.old_size, done.status))
        return done

    monkeypatch.setattr(writer_module, "write_delta_increment", spy)
    start = int(time.time())
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    end = int(time.time())
    monkeypatch.undo()
    assert result.errors == []
    assert in_c == [(DELTA_LIMIT, DeltaStatus.DONE)]  # the file of a byte more: Python
    t0 = format_timestring(session_time(0), utc_offset=0)
    increments = repo / "rdiff-backup-data" / "increments"
    snapshots = {}
    for name in SIZES:
        snapshot = f"{name}.{t0}.snapshot"
        data = (increments / f"{snapshot}.gz").read_bytes()
        cm, flags, mtime, xfl, os_byte, fname = _gzip_header(data)
        assert (cm, flags, xfl, os_byte, fname) == (8, 0x08, 2, 255, snapshot.encode())
        assert start <= mtime <= end  # the write time, as rdiff-backup's
        snapshots[name] = gzip.decompress(data)
    return repo, before, snapshots


def test_snapshots_at_and_over_the_c_limit_restore_bit_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, before, snapshots = _deleting_session(tmp_path, monkeypatch)
    for name, content in snapshots.items():
        assert hashlib.sha1(content).hexdigest() == before[(name.encode(),)].sha1, name
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0")) == []
    later = trees.scan(tmp_path / "src")
    assert differences(later, restored(repo, session_time(1), tmp_path / "r1")) == []


@pytest.mark.interop
def test_rdiff_backup_restores_snapshots_at_and_over_the_c_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rdiff_backup: str
) -> None:
    repo, before, _ = _deleting_session(tmp_path, monkeypatch)
    theirs = restore_with_rdiff_backup(rdiff_backup, repo, session_time(0), tmp_path / "theirs")
    assert differences(before, theirs) == []
