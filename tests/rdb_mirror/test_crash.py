"""SIGKILL rdb-mirror at many points of a session: the next run regresses, nothing is lost."""

from __future__ import annotations

import subprocess
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

from rdb_format.layout import Layout
from rdb_format.metadata import path_key
from rdb_format.metadata_diff import records_at
from rdb_format.repository import read_state
from rdb_mirror import BackupOptions, backup
from rdb_mirror.check import check

KILL_POINTS = [
    {"RDB_MIRROR_TEST_KILL_AFTER": "1"},
    {"RDB_MIRROR_TEST_KILL_AFTER": "7"},
    {"RDB_MIRROR_TEST_KILL_AFTER": "25"},
    {"RDB_MIRROR_TEST_KILL_AFTER": "50"},
    {"RDB_MIRROR_TEST_KILL_AFTER": "75"},
    *(
        {"RDB_MIRROR_TEST_KILL_AT": point}
        for point in (
            "marker-written",
            "walked",
            "metadata-written",
            "diff-written",
            "converted",
            "before-commit",
            "committed",
        )
    ),
]


def _id(env: dict[str, str]) -> str:
    ((key, value),) = env.items()
    return f"{key.rsplit('_', 1)[-1].lower()}-{value}"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[trees.Snapshot]]:
    """A one-session repository, and its source already changed for the next session."""
    root = tmp_path_factory.mktemp("crash")
    src, repo = root / "src", root / "repo"
    trees.build_tree(src, seed=41)
    first = trees.scan(src)
    # in a subprocess: the marker's PID must be a dead process for rdiff-backup's regress
    proc = run_mirror("--current-time", session_time(0), src, repo)
    assert proc.returncode == 0, proc.stderr
    trees.mutate_tree(src, seed=401)
    return src, repo, [first, trees.scan(src)]


def _killed_copy(
    base: tuple[Path, Path, list[trees.Snapshot]], tmp: Path, env: dict[str, str]
) -> Path:
    src, repo, _ = base
    copy = tmp / "repo"
    subprocess.run(["cp", "-a", str(repo), str(copy)], check=True)
    proc = run_mirror("--current-time", session_time(1), src, copy, env=env)
    assert proc.returncode == -9, (proc.returncode, proc.stderr)
    return copy


def _assert_sessions(repo: Path, expected: dict[int, trees.Snapshot]) -> None:
    state = read_state(Layout(repo))
    assert len(state.markers) == 1
    assert state.sessions == tuple(sorted(expected))
    for when, scan in expected.items():
        paths = {path_key(r.path) for r in records_at(repo / "rdiff-backup-data", when)}
        assert paths == set(scan), when


@pytest.mark.parametrize("env", KILL_POINTS, ids=_id)
def test_killed_session_is_regressed(
    base: tuple[Path, Path, list[trees.Snapshot]], tmp_path: Path, env: dict[str, str]
) -> None:
    src, _, (first, second) = base
    repo = _killed_copy(base, tmp_path, env)
    committed = env.get("RDB_MIRROR_TEST_KILL_AT") == "committed"
    markers = read_state(Layout(repo), allow_duplicate_timestamps=True).markers
    assert len(markers) == (1 if committed else 2)
    proc = run_mirror("--regress", repo)
    assert proc.returncode == 0, proc.stderr
    assert differences(second if committed else first, trees.scan(repo)) == []
    assert check(repo).problems == []
    # the next backup goes on from there
    result = backup(src, repo, BackupOptions(current_time=session_time(2)))
    assert result.errors == []
    assert differences(second, trees.scan(repo)) == []
    expected = {session_time(0): first, session_time(2): second}
    if committed:
        expected[session_time(1)] = second
    _assert_sessions(repo, expected)


def test_backup_regresses_by_itself_and_killed_regress_resumes(
    base: tuple[Path, Path, list[trees.Snapshot]], tmp_path: Path
) -> None:
    src, _, (first, second) = base
    repo = _killed_copy(base, tmp_path, {"RDB_MIRROR_TEST_KILL_AFTER": "30"})
    proc = run_mirror("--regress", repo, env={"RDB_MIRROR_TEST_KILL_AT": "regress-walked"})
    assert proc.returncode == -9
    proc = run_mirror("--current-time", session_time(2), src, repo)
    assert proc.returncode == 0, proc.stderr
    assert "rolled back" in proc.stderr
    assert differences(second, trees.scan(repo)) == []
    _assert_sessions(repo, {session_time(0): first, session_time(2): second})


@pytest.mark.interop
@pytest.mark.parametrize(
    "env",
    [{"RDB_MIRROR_TEST_KILL_AFTER": "40"}, {"RDB_MIRROR_TEST_KILL_AT": "diff-written"}],
    ids=_id,
)
def test_rdiff_backup_restores_after_a_crash(
    rdiff_backup: str,
    base: tuple[Path, Path, list[trees.Snapshot]],
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    """Killed, regressed by rdb-mirror, continued: rdiff-backup restores every session."""
    src, _, (first, second) = base
    repo = _killed_copy(base, tmp_path, env)
    result = backup(src, repo, BackupOptions(current_time=session_time(2)))
    assert result.regressed is not None
    for when, scan in ((session_time(0), first), (session_time(2), second)):
        restored = restore_with_rdiff_backup(rdiff_backup, repo, when, tmp_path / f"at{when}")
        assert differences(scan, restored) == []


@pytest.mark.interop
def test_rdiff_backup_regresses_our_killed_session(
    rdiff_backup: str, base: tuple[Path, Path, list[trees.Snapshot]], tmp_path: Path
) -> None:
    src, _, (first, second) = base
    repo = _killed_copy(base, tmp_path, {"RDB_MIRROR_TEST_KILL_AFTER": "40"})
    proc = run_rdiff_backup(rdiff_backup, "regress", repo)
    assert proc.returncode in (0, 2), proc.stderr
    assert len(read_state(Layout(repo)).markers) == 1
    restored = restore_with_rdiff_backup(rdiff_backup, repo, session_time(0), tmp_path / "r")
    assert differences(first, restored) == []
    # rdiff-backup's regress restores contents and attributes but not the mirror's hard links
    assert differences(first, trees.scan(repo), links=False) == []
    result = backup(src, repo, BackupOptions(current_time=session_time(2)))
    assert result.errors == []
    restored = restore_with_rdiff_backup(rdiff_backup, repo, session_time(0), tmp_path / "r0")
    assert differences(first, restored) == []
    assert differences(second, trees.scan(repo)) == []


def test_a_failed_sync_does_not_commit(
    base: tuple[Path, Path, list[trees.Snapshot]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data must be durable before the commit: if syncfs fails (EIO), no commit."""
    import errno

    from rdb_mirror import session

    src, repo, scans = base
    copy = tmp_path / "repo"
    subprocess.run(["cp", "-a", str(repo), str(copy)], check=True)

    def failing(*paths: object) -> str:
        raise OSError(errno.EIO, "syncfs failed: Input/output error")

    monkeypatch.setattr(session, "sync_filesystems", failing)
    with pytest.raises(OSError, match="syncfs failed"):
        backup(src, copy, BackupOptions(current_time=session_time(1)))
    assert len(read_state(Layout(copy)).markers) == 2  # unfinished: the next run regresses
    monkeypatch.undo()
    result = backup(src, copy, BackupOptions(current_time=session_time(2)))
    assert result.regressed is not None
    _assert_sessions(copy, {session_time(0): scans[0], session_time(2): scans[1]})
    assert differences(scans[1], trees.scan(copy)) == []


def test_durability_before_the_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A session that changed the mirror syncs the repository's file system before its
    commit; one that changed nothing fsyncs exactly the files it wrote (and their directory)."""
    import os

    from rdb_format.atomic import sync_filesystems
    from rdb_mirror import session

    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=43)
    events: list[str] = []
    real_sync = sync_filesystems  # the function rdb_mirror.session calls
    real_fsync = os.fsync

    def syncing(*paths: Path) -> str:
        markers = len(read_state(Layout(repo)).markers)  # 0 (first) or 2: not committed yet
        events.append(f"syncfs {markers} markers " + " ".join(sorted(map(os.fspath, paths))))
        return real_sync(*paths)

    def fsync(fd: int) -> None:
        events.append("fsync " + os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(session, "sync_filesystems", syncing)
    monkeypatch.setattr("rdb_format.atomic.os.fsync", fsync)
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    data = repo / "rdiff-backup-data"
    assert [e for e in events if e.startswith("syncfs")] == [f"syncfs 0 markers {repo} {data}"]
    events.clear()
    backup(src, repo, BackupOptions(current_time=session_time(1)))  # nothing changed
    fsynced = {e.removeprefix("fsync ") for e in events if e.startswith("fsync ")}
    assert not any(e.startswith("syncfs") for e in events)
    snapshot = next(data.glob("mirror_metadata.*.snapshot.gz"))
    assert {str(snapshot), str(data)} <= fsynced
    assert not any(str(repo / name) in fsynced for name in os.listdir(src))
    events.clear()
    trees.mutate_tree(src, seed=431)
    backup(src, repo, BackupOptions(current_time=session_time(2)))
    assert [e for e in events if e.startswith("syncfs")] == [f"syncfs 2 markers {repo} {data}"]
