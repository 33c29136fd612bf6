"""A directory that cannot be replaced (a file in it the kernel will not remove) ends the
session, uncommitted: the metadata never says the mirror holds what it does not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences, restored, run_mirror, session_time


def _chattr(flag: str, path: Path) -> bool:
    # chattr is e2fsprogs' (./dev installs it); a file system may refuse the flag
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


def test_a_directory_that_cannot_become_a_file_ends_the_session(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"inside the directory\n")
    (src / "other.txt").write_bytes(b"unchanged\n")
    first = run_mirror("--current-time", session_time(0), src, repo)
    assert first.returncode == 0, first.stderr
    before = trees.scan(src)
    pinned = repo / "d" / "f"
    if not _chattr("+i", pinned):
        pytest.skip("this file system cannot make a file immutable (chattr +i)")
    try:
        (src / "d" / "f").unlink()
        (src / "d").rmdir()
        (src / "d").write_bytes(b"the directory is a file now\n")
        failed = run_mirror("--current-time", session_time(1), src, repo)
        assert failed.returncode == 1, failed.stderr
        assert "Traceback" not in failed.stderr
        assert f"{pinned}: cannot replace or remove" in failed.stderr
        assert "Operation not permitted" in failed.stderr
    finally:
        _chattr("-i", pinned)
    # the failed session is rolled back by the next run, which then completes
    again = run_mirror("--current-time", session_time(2), src, repo)
    assert again.returncode == 0, again.stderr
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0")) == []
    newest = restored(repo, session_time(2), tmp_path / "r2")
    assert differences(trees.scan(src), newest) == []


def test_a_directory_whose_tree_cannot_be_removed_ends_the_session(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "d").mkdir(parents=True)
    first = run_mirror("--current-time", session_time(0), src, repo)
    assert first.returncode == 0, first.stderr
    planted = repo / "d" / "not-in-the-metadata"  # no step of the session removes it
    planted.write_bytes(b"x")
    if not _chattr("+i", planted):
        pytest.skip("this file system cannot make a file immutable (chattr +i)")
    try:
        (src / "d").rmdir()
        (src / "d").write_bytes(b"the directory is a file now\n")
        failed = run_mirror("--current-time", session_time(1), src, repo)
        assert failed.returncode == 1, failed.stderr
        assert "Traceback" not in failed.stderr
        assert f"{repo / 'd'}: cannot replace the directory with what the source has now" in (
            failed.stderr
        )
    finally:
        _chattr("-i", planted)
    again = run_mirror("--current-time", session_time(2), src, repo)
    assert again.returncode == 0, again.stderr
    assert differences(trees.scan(src), trees.scan(repo)) == []
