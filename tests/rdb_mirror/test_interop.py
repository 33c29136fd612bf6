"""rdiff-backup 2.2.7 reads what rdb-mirror writes, and rdb-mirror continues its repositories."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import (
    differences,
    restore_with_rdiff_backup,
    run_mirror,
    run_rdiff_backup,
    session_time,
)

from rdb_mirror import BackupOptions, backup

pytestmark = pytest.mark.interop

SESSIONS = 4


def _restore_all(exe: str, repo: Path, scans: list[trees.Snapshot], workdir: Path) -> None:
    for n, scan in enumerate(scans):
        restored = restore_with_rdiff_backup(exe, repo, session_time(n), workdir / f"at{n}")
        assert differences(scan, restored) == [], f"session {n}"


def test_rdiff_backup_restores_every_session(rdiff_backup: str, tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=21)
    scans = []
    for n in range(SESSIONS):
        if n:
            trees.mutate_tree(src, seed=200 + n)
        scans.append(trees.scan(src))
        proc = run_mirror("--current-time", session_time(n), src, repo)
        assert proc.returncode == 0, proc.stderr
    listing = run_rdiff_backup(rdiff_backup, "--parsable-output", "list", "increments", repo)
    assert listing.returncode == 0, listing.stderr
    times = [int(line.split()[0]) for line in listing.stdout.splitlines() if line.strip()]
    assert times == [session_time(n) for n in range(SESSIONS)]
    for n in range(SESSIONS):
        verify = run_rdiff_backup(rdiff_backup, "verify", "--at", str(session_time(n)), repo)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    _restore_all(rdiff_backup, repo, scans, tmp_path)


def test_continue_a_repository_rdiff_backup_made(rdiff_backup: str, tmp_path: Path) -> None:
    """Two sessions by rdiff-backup, two by rdb-mirror, one more by rdiff-backup: all restore."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=31)
    scans = []
    for n in range(5):
        if n:
            trees.mutate_tree(src, seed=300 + n)
        scans.append(trees.scan(src))
        if n in (0, 1, 4):
            proc = run_rdiff_backup(
                rdiff_backup, "--current-time", str(session_time(n)), "backup", src, repo
            )
            assert proc.returncode == 0, proc.stderr
        else:
            result = backup(src, repo, BackupOptions(current_time=session_time(n)))
            assert result.errors == []
            assert differences(scans[-1], trees.scan(repo)) == []
    verify = run_rdiff_backup(rdiff_backup, "verify", repo)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    _restore_all(rdiff_backup, repo, scans, tmp_path)
