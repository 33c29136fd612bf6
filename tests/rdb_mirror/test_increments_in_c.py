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
import rdb_mirror.repo_side as repo_side
from rdb_fastio.increment import DeltaBatch, DeltaStatus, write_delta_increment
from rdb_format.timestamps import format_timestring
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


def _c_statuses(monkeypatch: pytest.MonkeyPatch) -> list[DeltaStatus]:
    """The status of every increment the C routine writes from now on (one at a time through
    the writer, or in the session's batches)."""
    statuses: list[DeltaStatus] = []

    def spy(job: Any) -> Any:
        done = write_delta_increment(job)
        statuses.append(done.status)
        return done

    class SpiedBatch(DeltaBatch):
        __slots__ = ()

        def run(self) -> None:
            super().run()
            statuses.extend(self.result(n).status for n in range(len(self)))

    monkeypatch.setattr(writer_module, "write_delta_increment", spy)
    monkeypatch.setattr(repo_side, "DeltaBatch", SpiedBatch)
    return statuses


def test_a_history_written_in_c_restores_with_both_tools(
    rdiff_backup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statuses = _c_statuses(monkeypatch)
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


@pytest.mark.parametrize("path", ["C", "Python"])
def test_a_leftover_increment_in_a_changed_files_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The increment's name is taken (a leftover of an unfinished session): the file is kept
    as it was with the same warning either way, and the leftover is not written over."""
    statuses = _c_statuses(monkeypatch)
    if path == "Python":
        monkeypatch.setattr(writer_module, "DELTA_LIMIT", -1)
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    for n in range(5):
        (src / f"f{n}").write_bytes(b"first %d\n" % n * 100)
    assert backup(src, repo, BackupOptions(current_time=session_time(0))).errors == []
    for n in range(5):
        (src / f"f{n}").write_bytes(b"second %d\n" % n * 120)
    stamp = format_timestring(session_time(0))
    planted = repo / "rdiff-backup-data" / "increments" / f"f2.{stamp}.diff.gz"
    planted.write_bytes(b"not ours")
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert [error.replace(str(tmp_path), "TMP") for error in result.errors] == [
        f"UpdateError: 'f2' TMP/repo/rdiff-backup-data/increments/f2.{stamp}.diff.gz: "
        "increment already exists (an unfinished session? regress first)"
    ]
    assert planted.read_bytes() == b"not ours"
    assert (repo / "f2").read_bytes() == b"first 2\n" * 100  # kept as it was
    assert (repo / "f3").read_bytes() == b"second 3\n" * 120
    if path == "C":  # the four others' increments; f2's attempt in the batch, then the
        # general path's own (the writer tries C first, then Python, which says why)
        assert sorted(statuses) == [DeltaStatus.DONE] * 4 + [DeltaStatus.CREATE] * 2
    else:
        assert statuses == []
