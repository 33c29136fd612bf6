"""A backup history whose changed files' increments were written in C (rdb_fastio.increment,
through rdb-increment's in_place writer): every session restores bit-exact with rdb-restore and
with rdiff-backup 2.2.7, and the repository holds the very increments the Python path writes
(compared uncompressed: the gzip header's MTIME is the write time)."""

from __future__ import annotations

import gzip
import os
import random
from pathlib import Path
from typing import Any

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import (
    differences,
    restore_with_rdiff_backup,
    restored,
    run_rdiff_backup,
    session_time,
)

import rdb_increment.writer as writer_module
from rdb_fastio.increment import DeltaStatus, write_delta_increment
from rdb_mirror import BackupOptions, backup

pytestmark = pytest.mark.interop

SESSIONS = 5
SIZES = [0, 1, 700, 9_000, 10_240, 65_000, 300_000, (1 << 20) + 5, 9 << 20]  # 9 MiB: Python


def _change(rng: random.Random, content: bytes) -> bytes:
    """The next version of a file: grown, shrunk, emptied, replaced or edited in place."""
    choice = rng.randrange(6)
    if choice == 0:
        return content + rng.randbytes(rng.randint(1, 20_000))
    if choice == 1:
        return content[: rng.randint(0, len(content))]
    if choice == 2:
        return b""
    if choice == 3:
        return rng.randbytes(rng.choice(SIZES[:-1]))
    edited = bytearray(content or b"\0")
    for _ in range(rng.randint(1, 12)):
        edited[rng.randrange(len(edited))] ^= 0xA5
    return bytes(edited)


def _history(src: Path, repo: Path) -> list[trees.Snapshot]:
    """SESSIONS backups of a tree whose files change every session; the scans at each."""
    rng = random.Random(4)
    (src / "sub").mkdir(parents=True)
    files = [src / f"f{n}.txt" for n in range(len(SIZES))] + [src / "sub" / "photo.jpg"]
    for path, size in zip(files, [*SIZES, 5_000], strict=True):
        path.write_bytes(rng.randbytes(size))
    scans = []
    for n in range(SESSIONS):
        if n:
            for path in files:
                if rng.random() < 0.8:
                    path.write_bytes(_change(rng, path.read_bytes()))
                    os.utime(path, (session_time(n) - 7, session_time(n) - 5))
            files[0].chmod(0o600 + n)  # and a change of mode
        scans.append(trees.scan(src))
        result = backup(src, repo, BackupOptions(current_time=session_time(n)))
        assert result.errors == []
        assert differences(scans[-1], trees.scan(repo)) == []
    return scans


def _increments(repo: Path) -> dict[str, bytes]:
    """Every increment of changed files, by name, uncompressed."""
    out = {}
    for path in (repo / "rdiff-backup-data" / "increments").rglob("*"):
        if ".diff" in path.name or ".snapshot" in path.name:
            data = path.read_bytes()
            out[str(path.relative_to(repo))] = (
                gzip.decompress(data) if path.suffix == ".gz" else data
            )
    return out


def test_a_history_written_in_c_restores_with_both_tools(
    rdiff_backup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statuses: list[DeltaStatus] = []

    def spy(job: Any) -> Any:
        done = write_delta_increment(job)
        statuses.append(done.status)
        return done

    monkeypatch.setattr(writer_module, "write_delta_increment", spy)
    repo = tmp_path / "repo"
    scans = _history(tmp_path / "src", repo)
    assert len(statuses) >= 20 and set(statuses) == {DeltaStatus.DONE}
    for n, scan in enumerate(scans):
        ours = restored(repo, session_time(n), tmp_path / f"ours{n}")
        assert differences(scan, ours) == [], f"rdb-restore, session {n}"
        theirs = restore_with_rdiff_backup(rdiff_backup, repo, session_time(n), tmp_path / f"rb{n}")
        assert differences(scan, theirs) == [], f"rdiff-backup, session {n}"
    verify = run_rdiff_backup(rdiff_backup, "verify", repo)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # the same history with the Python path only: the same increments
    statuses.clear()
    monkeypatch.setattr(writer_module, "DELTA_LIMIT", -1)
    python_repo = tmp_path / "python-repo"
    _history(tmp_path / "src2", python_repo)
    assert statuses == []
    assert _increments(repo) == _increments(python_repo)
