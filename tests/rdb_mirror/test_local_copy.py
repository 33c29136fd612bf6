"""A local source's large files (1 MiB or more) are copied in the kernel (``copy_file_range``)
by the repository side while the source side hashes them (``LocalFile``); smaller ones travel
as bytes. Either way the mirror, the SHA1s and every session's restore are exact."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences, restored, run_mirror, session_time

from rdb_format.metadata import path_key
from rdb_format.metadata_diff import records_at
from rdb_mirror import BackupOptions, backup, repo_side, source
from rdb_mirror.check import check

MIB = 1 << 20


def _data(size: int, seed: int) -> bytes:
    block = hashlib.sha256(b"%d" % seed).digest() * 2048  # 64 KiB, not compressible by chunks
    return (block * (size // len(block) + 1))[:size]


def _counting_copies(monkeypatch: pytest.MonkeyPatch, parts: list[int] | None = None) -> list[int]:
    """The size of each file copied in the kernel; in ``parts``, each part reported."""
    calls: list[int] = []
    real = repo_side._copy_in_kernel

    def counting(source: int, target: int, progress: Callable[[int], None]) -> int:
        def report(size: int) -> None:
            if parts is not None:
                parts.append(size)
            progress(size)

        copied = real(source, target, report)
        calls.append(copied)
        return copied

    monkeypatch.setattr(repo_side, "_copy_in_kernel", counting)
    return calls


def test_large_files_are_copied_in_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies = _counting_copies(monkeypatch)
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "big").write_bytes(_data(5 * MIB + 17, 1))
    (src / "exactly").write_bytes(_data(MIB, 2))
    (src / "below").write_bytes(_data(MIB - 1, 3))
    (src / "small").write_bytes(b"small\n")
    scans = [trees.scan(src)]
    assert backup(src, repo, BackupOptions(current_time=session_time(0))).errors == []
    assert sorted(copies) == [MIB, 5 * MIB + 17]  # "below" and "small" came as bytes
    (src / "big").write_bytes(_data(5 * MIB + 17, 1)[:-4096] + _data(4096, 9) + b"tail")
    (src / "exactly").unlink()
    os.utime(src / "below", (1_650_000_000, 1_650_000_000))  # touched, same bytes
    scans.append(trees.scan(src))
    assert backup(src, repo, BackupOptions(current_time=session_time(1))).errors == []
    records = {path_key(r.path): r for r in records_at(repo / "rdiff-backup-data", session_time(1))}
    assert records[(b"big",)].sha1_digest == hashlib.sha1((src / "big").read_bytes()).hexdigest()
    increments = os.listdir(repo / "rdiff-backup-data" / "increments")
    assert any(name.startswith("big.") and name.endswith(".diff.gz") for name in increments)
    for n, scan in enumerate(scans):
        assert differences(scan, restored(repo, session_time(n), tmp_path / f"r{n}")) == []
    assert check(repo).problems == []
    assert not [name for name in os.listdir(repo / "rdiff-backup-data") if ".tmp." in name]


def test_a_large_copy_reports_its_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each part of a large file copied in the kernel counts as written as it is copied (the
    early writeback's trigger): 5 MiB in parts of 1 MiB."""
    parts: list[int] = []
    copies = _counting_copies(monkeypatch, parts)
    monkeypatch.setattr(repo_side, "KERNEL_COPY_PART", MIB)
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "big").write_bytes(_data(5 * MIB + 17, 1))
    assert backup(src, repo, BackupOptions(current_time=session_time(0))).errors == []
    assert copies == [5 * MIB + 17]
    assert parts == [MIB] * 5 + [17]
    assert (repo / "big").read_bytes() == (src / "big").read_bytes()


def test_without_copy_file_range_the_copy_goes_through_user_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refused)
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "big").write_bytes(_data(3 * MIB + 5, 4))
    scan = trees.scan(src)
    assert backup(src, repo, BackupOptions(current_time=session_time(0))).errors == []
    assert (repo / "big").read_bytes() == (src / "big").read_bytes()
    assert differences(scan, restored(repo, session_time(0), tmp_path / "r")) == []


def test_a_failed_copy_keeps_the_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "big").write_bytes(_data(2 * MIB, 5))
    first = trees.scan(src)
    assert backup(src, repo, BackupOptions(current_time=session_time(0))).errors == []

    def failing(source: int, target: int, progress: Callable[[int], None]) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(repo_side, "_copy_in_kernel", failing)
    (src / "big").write_bytes(_data(2 * MIB, 6))
    os.utime(src / "big", (1_650_000_000, 1_650_000_000))
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert len(result.errors) == 1 and "No space left" in result.errors[0]
    assert (repo / "big").read_bytes() == _data(2 * MIB, 5)  # the old copy stays
    assert differences(first, restored(repo, session_time(1), tmp_path / "r")) == []
    assert not [name for name in os.listdir(repo / "rdiff-backup-data") if ".tmp." in name]


def test_a_file_changed_after_it_was_hashed_while_it_is_copied_is_not_updated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source side has hashed the file and found it unchanged, but the kernel copy reads
    it after a writer changed it: the SHA1 recorded would not be the mirror copy's. The file
    is not updated (one error naming it), and what is recorded is what the mirror holds."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "big").write_bytes(_data(2 * MIB, 5))
    first = trees.scan(src)
    assert backup(src, repo, BackupOptions(current_time=session_time(0))).errors == []
    (src / "big").write_bytes(_data(2 * MIB, 6))
    os.utime(src / "big", (1_650_000_000, 1_650_000_000))

    hashed = threading.Event()
    real_end, real_copy = source._end, repo_side._copy_in_kernel

    def end_then_signal(*args: Any) -> None:
        real_end(*args)
        hashed.set()

    def copy_after_a_write(fd: int, target: int, progress: Callable[[int], None]) -> int:
        assert hashed.wait(60)  # ContentEnd sent: the SHA1 is that of _data(2 MiB, 6)
        with open(src / "big", "r+b") as writer:
            writer.write(b"written meanwhile")
        return real_copy(fd, target, progress)

    monkeypatch.setattr(source, "_end", end_then_signal)
    monkeypatch.setattr(repo_side, "_copy_in_kernel", copy_after_a_write)
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert len(result.errors) == 1 and "changed while being read" in result.errors[0]
    records = {path_key(r.path): r for r in records_at(repo / "rdiff-backup-data", session_time(1))}
    mirrored = (repo / "big").read_bytes()
    assert records[(b"big",)].sha1_digest == hashlib.sha1(mirrored).hexdigest()
    assert mirrored == _data(2 * MIB, 5)  # the old copy stays
    assert differences(first, restored(repo, session_time(1), tmp_path / "r")) == []
    assert check(repo).problems == []


@pytest.mark.parametrize(
    "env",
    [
        {"RDB_MIRROR_TEST_KILL_AFTER": "2"},
        {"RDB_MIRROR_TEST_KILL_AFTER": "4"},
        {"RDB_MIRROR_TEST_KILL_AT": "before-commit"},
    ],
    ids=["after-2", "after-4", "before-commit"],
)
def test_killed_while_large_files_are_copied(env: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL with kernel copies in flight: the next run regresses (no staged copy left),
    the previous session restores exactly, and the next session completes."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "a").write_bytes(b"a\n")
    (src / "big").write_bytes(_data(4 * MIB, 7))
    (src / "c").write_bytes(b"c\n")
    first = trees.scan(src)
    assert run_mirror("--current-time", session_time(0), src, repo).returncode == 0
    (src / "big").write_bytes(_data(4 * MIB, 8))
    os.utime(src / "big", (1_650_000_000, 1_650_000_000))
    (src / "big2").write_bytes(_data(3 * MIB, 9))
    (src / "d").write_bytes(b"d\n")
    second = trees.scan(src)
    killed = run_mirror("--current-time", session_time(1), src, repo, env=env)
    assert killed.returncode == -9, killed.stderr
    regress = run_mirror("--regress", repo)
    assert regress.returncode == 0, regress.stderr
    data = repo / "rdiff-backup-data"
    assert not [name for name in os.listdir(data) if name.startswith("rdiff-backup.tmp")]
    assert differences(first, restored(repo, session_time(0), tmp_path / "r0")) == []
    assert run_mirror("--current-time", session_time(2), src, repo).returncode == 0
    assert differences(second, restored(repo, session_time(2), tmp_path / "r2")) == []
    assert differences(first, restored(repo, session_time(0), tmp_path / "r0b")) == []
    assert check(repo).problems == []
