"""``.dir`` increments of changed directories, made by pool jobs in batches (MARKER_BATCH)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.interop import trees
from tests.rdb_mirror.helpers import differences, restored, run_mirror, session_time

from rdb_format.timestamps import format_timestring
from rdb_mirror.repo_side import MARKER_BATCH

DIRS = MARKER_BATCH * 2 + 7  # several full batches and a short last one


def _tree(root: Path) -> None:
    for n in range(DIRS):
        sub = root / f"d{n:03d}"
        sub.mkdir(parents=True)
        (sub / "f").write_bytes(b"version one %d" % n)
        sub.chmod(0o750 if n % 2 else 0o755)
        os.utime(sub, ns=(1_600_000_000_000_000_000 + n, 1_600_000_000_000_000_000 + n))


def _change(root: Path) -> None:
    for n in range(DIRS):
        (root / f"d{n:03d}" / "f").write_bytes(b"version two, longer %d" % n)


def test_every_changed_directory_gets_its_marker(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _tree(src)
    first = trees.scan(src)
    assert run_mirror(src, repo, "--current-time", session_time(1)).returncode == 0
    old_dirs = {n: os.lstat(repo / f"d{n:03d}") for n in range(DIRS)}
    _change(src)
    done = run_mirror(src, repo, "--current-time", session_time(2))
    assert done.returncode == 0, done.stderr
    stamp = format_timestring(session_time(1))
    increments = repo / "rdiff-backup-data" / "increments"
    for n, old in old_dirs.items():
        marker = increments / f"d{n:03d}.{stamp}.dir"
        st = os.lstat(marker)  # present, an empty file with the old directory's attributes
        assert stat.S_ISREG(st.st_mode) and st.st_size == 0
        assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(old.st_mode)
        assert st.st_mtime_ns == old.st_mtime_ns
    assert (repo / "rdiff-backup-data" / f"increments.{stamp}.dir").exists()
    assert differences(first, restored(repo, session_time(1), tmp_path / "at1")) == []


def test_a_marker_that_cannot_be_made_ends_the_session(tmp_path: Path) -> None:
    """A leftover increment in a marker's place: the session fails naming it, the file is
    not written over, and the previous session stays restorable after the regress."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    _tree(src)
    first = trees.scan(src)
    assert run_mirror(src, repo, "--current-time", session_time(1)).returncode == 0
    _change(src)
    stamp = format_timestring(session_time(1))
    planted = repo / "rdiff-backup-data" / "increments" / f"d{DIRS - 3:03d}.{stamp}.dir"
    planted.write_bytes(b"not ours")
    failed = run_mirror(src, repo, "--current-time", session_time(2))
    assert failed.returncode != 0
    assert "already exists" in failed.stderr and planted.name in failed.stderr
    assert "Traceback" not in failed.stderr
    assert planted.read_bytes() == b"not ours"  # never written over
    assert run_mirror("--regress", repo).returncode == 0
    assert differences(first, restored(repo, session_time(1), tmp_path / "at1")) == []
