"""A user (not root) backs up read-only directories (0555, 0500): later sessions can still
add, change and remove what is in them, and their modes stay as the source's."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from tests.interop import trees
from tests.rdb_mirror.helpers import differences, restored, session_time
from tests.unprivileged import AS_A_USER


def _as_user(*args: str | int | Path, kill_at: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RDB_MIRROR_TEST_KILL_AT": kill_at} if kill_at else None
    return subprocess.run(
        [*AS_A_USER, sys.executable, "-m", "rdb_mirror", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (1_600_000_000, 1_600_000_000))  # a same-second edit must still show


def _lock(*directories: Path) -> None:
    for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
        directory.chmod(0o555)


def _unlock(root: Path) -> None:
    for directory, _, _ in os.walk(root):
        Path(directory).chmod(0o755)


def test_a_user_changes_what_read_only_directories_hold(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _write(src / "ro/changed.txt", b"first version\n")
    _write(src / "ro/deleted.txt", b"deleted in the second session\n")
    _write(src / "ro/kept.txt", b"never changes\n")
    _write(src / "ro/deeper/inner.txt", b"inside two read-only levels\n")
    _write(src / "gone/sub/file.txt", b"a read-only tree that goes away\n")
    _write(src / "becomes-file/x.txt", b"this directory becomes a file\n")
    _lock(src / "ro", src / "ro/deeper", src / "gone", src / "gone/sub", src / "becomes-file")
    (src / "private").mkdir(mode=0o500)  # no write for the owner either, and empty
    first = _as_user("--current-time", session_time(0), src, repo)
    assert first.returncode == 0, first.stderr
    before = trees.scan(src)

    _unlock(src)
    _write(src / "ro/changed.txt", b"second version, longer than the first\n")
    (src / "ro/deleted.txt").unlink()
    _write(src / "ro/new.txt", b"new in a read-only directory\n")
    _write(src / "ro/deeper/inner.txt", b"changed two levels down\n")
    shutil.rmtree(src / "gone")
    shutil.rmtree(src / "becomes-file")
    _write(src / "becomes-file", b"now a file\n")
    _lock(src / "ro", src / "ro/deeper")
    (src / "private").chmod(0o500)
    second = _as_user("--current-time", session_time(1), src, repo)
    assert second.returncode == 0, second.stderr
    assert "Permission denied" not in second.stderr
    after = trees.scan(src)

    # the mirror is the source, modes included; both sessions restore bit-exact
    assert differences(after, trees.scan(repo)) == []
    assert stat.S_IMODE((repo / "ro").stat().st_mode) == 0o555
    assert stat.S_IMODE((repo / "ro/deeper").stat().st_mode) == 0o555
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0")) == []
    assert differences(after, restored(repo, session_time(1), tmp_path / "r1")) == []


def test_a_user_regresses_a_session_killed_in_read_only_directories(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _write(src / "ro/changed.txt", b"first version\n")
    _lock(src / "ro")
    first = _as_user("--current-time", session_time(0), src, repo)
    assert first.returncode == 0, first.stderr
    before = trees.scan(src)
    _unlock(src)
    _write(src / "ro/changed.txt", b"second version, longer than the first\n")
    _write(src / "ro/new/deeper/file.txt", b"a new read-only tree\n")
    _lock(src / "ro", src / "ro/new", src / "ro/new/deeper")
    killed = _as_user("--current-time", session_time(1), src, repo, kill_at="before-commit")
    assert killed.returncode == -9, killed.stderr
    assert stat.S_IMODE((repo / "ro/new/deeper").stat().st_mode) == 0o555  # all in place

    back = _as_user("--regress", repo)
    assert back.returncode == 0, back.stderr
    assert differences(before, trees.scan(repo)) == []
    again = _as_user("--current-time", session_time(2), src, repo)
    assert again.returncode == 0, again.stderr
    assert differences(trees.scan(src), trees.scan(repo)) == []
