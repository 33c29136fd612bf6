"""rdb-mirror end to end, checked with our own readers: mirror, metadata, statistics, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences, session_time

from rdb_clikit.protocol import RecordingProgress
from rdb_format.layout import Layout
from rdb_format.metadata import path_key
from rdb_format.metadata_diff import list_metadata_files, records_at
from rdb_format.repository import read_state
from rdb_format.statistics import iter_file_statistics, read_session_statistics
from rdb_mirror import BackupOptions, backup
from rdb_mirror.check import check
from rdb_mirror.source import IncludeAll

SESSIONS = 4


def _records_match_scan(repo: Path, when: int, scan: trees.Snapshot) -> list[str]:
    """The metadata at ``when`` describes exactly the scanned tree."""
    problems = []
    records = {path_key(r.path): r for r in records_at(repo / "rdiff-backup-data", when)}
    if set(records) != set(scan):
        problems.append(f"paths differ: {sorted(set(records) ^ set(scan))[:5]}")
    for index, entry in scan.items():
        record = records.get(index)
        if record is None:
            continue
        if record.type != entry.type or record.permissions != entry.perms:
            problems.append(f"{index}: type/perms")
        if entry.type == "reg" and record.size != entry.size:
            problems.append(f"{index}: size")
        if entry.type not in ("sym", "dev") and record.mod_time != entry.mtime:
            problems.append(f"{index}: mtime")
        if entry.type == "sym" and record.sym_data != entry.target:
            problems.append(f"{index}: target")
        if record.sha1_digest is not None and record.sha1_digest != entry.sha1:
            problems.append(f"{index}: sha1")
    return problems


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[trees.Snapshot]]:
    """A repository of SESSIONS sessions of a mutating generated tree; the scans before each."""
    base = tmp_path_factory.mktemp("history")
    src, repo = base / "src", base / "repo"
    trees.build_tree(src, seed=11)
    scans = []
    for n in range(SESSIONS):
        if n:
            trees.mutate_tree(src, seed=100 + n)
        scans.append(trees.scan(src))
        result = backup(src, repo, BackupOptions(current_time=session_time(n)))
        assert result.errors == []
        assert differences(scans[-1], trees.scan(repo)) == []
    return src, repo, scans


def test_mirror_equals_source_after_each_session(
    history: tuple[Path, Path, list[trees.Snapshot]],
) -> None:
    _, repo, scans = history
    assert differences(scans[-1], trees.scan(repo)) == []
    assert check(repo).problems == []


def test_metadata_of_every_session(history: tuple[Path, Path, list[trees.Snapshot]]) -> None:
    _, repo, scans = history
    state = read_state(Layout(repo))
    assert state.sessions == tuple(session_time(n) for n in range(SESSIONS))
    assert len(state.markers) == 1
    assert state.root_increment_times == tuple(session_time(n) for n in range(SESSIONS - 1))
    kinds = [f.kind for f in list_metadata_files(repo / "rdiff-backup-data")]
    assert kinds == ["diff"] * (SESSIONS - 1) + ["snapshot"]
    for n, scan in enumerate(scans):
        assert _records_match_scan(repo, session_time(n), scan) == []


def test_statistics_files(history: tuple[Path, Path, list[trees.Snapshot]]) -> None:
    _, repo, scans = history
    data = repo / "rdiff-backup-data"
    last = session_time(SESSIONS - 1)
    stats_file = next(data.glob("session_statistics.*"))
    assert stats_file
    stats = [read_session_statistics(p) for p in sorted(data.glob("session_statistics.*"))]
    assert [int(s.start_time) for s in stats] == [session_time(n) for n in range(SESSIONS)]
    assert stats[-1].source_files == len(scans[-1])
    assert stats[0].new_files == len(scans[0])
    assert all(s.increment_files > 0 for s in stats[1:])
    rows = list(iter_file_statistics(next(data.glob("file_statistics.*2023-11-15T01*"))))
    assert rows[0].path == b"."
    assert len({r.path for r in rows if r.source_size is not None}) == len(scans[-1])
    assert last


def test_no_change_session(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=3)
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    before = {p.name for p in (repo / "rdiff-backup-data" / "increments").rglob("*")}
    progress = RecordingProgress()
    result = backup(src, repo, BackupOptions(current_time=session_time(1)), progress)
    s = result.statistics
    assert (s.new_files, s.changed_files, s.deleted_files, s.increment_files) == (0, 0, 0, 0)
    assert result.bytes_read == 0  # nothing was read: stat only
    after = {p.name for p in (repo / "rdiff-backup-data" / "increments").rglob("*")}
    assert after == before
    diff = next((repo / "rdiff-backup-data").glob("mirror_metadata.*.diff"))
    assert diff.stat().st_size == 0


def test_file_changed_while_read_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that changes after it was listed: error_log entry, old version kept, goes on."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "stable.txt").write_bytes(b"stable\n")
    (src / "moving.txt").write_bytes(b"version 1\n")
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    (src / "moving.txt").write_bytes(b"version 2 longer\n")
    (src / "new.txt").write_bytes(b"new\n")

    real = IncludeAll.decide

    def decide(
        self: IncludeAll, index: tuple[bytes, ...], path: bytes, st: os.stat_result
    ) -> bool | None:
        if index == (b"moving.txt",):
            with open(path, "ab") as out:
                out.write(b"appended while the backup runs\n")
        return real(self, index, path, st)

    monkeypatch.setattr(IncludeAll, "decide", decide)
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert len(result.errors) == 1
    assert result.errors[0].startswith("UpdateError: 'moving.txt'")
    assert (repo / "moving.txt").read_bytes() == b"version 2 longer\n"[:0] + b"version 1\n"
    assert (repo / "new.txt").read_bytes() == b"new\n"
    log = next((repo / "rdiff-backup-data").glob("error_log.2023-11-14T23*"))
    assert log.name.endswith(".data.gz")
    assert check(repo).problems == []


def test_walk_failure_commits_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the walk dies, the session is not committed (unsent entries would look deleted)."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=4)
    backup(src, repo, BackupOptions(current_time=session_time(0)))

    def broken(
        self: IncludeAll, index: tuple[bytes, ...], path: bytes, st: os.stat_result
    ) -> bool | None:
        if index == (b"dir",):
            raise OSError(5, "Input/output error", path)
        return True

    monkeypatch.setattr(IncludeAll, "decide", broken)
    from rdb_format.errors import RdbError

    with pytest.raises(RdbError, match="walk of the source failed"):
        backup(src, repo, BackupOptions(current_time=session_time(1)))
    monkeypatch.undo()
    state = read_state(Layout(repo))
    assert state.unfinished
    result = backup(src, repo, BackupOptions(current_time=session_time(2)))
    assert result.regressed is not None
    assert differences(trees.scan(src), trees.scan(repo)) == []


@pytest.mark.parametrize("held_bytes", [0, 64 << 10, 32 << 20])
def test_small_contents_held_or_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_bytes: int
) -> None:
    """Small files arrive as one Content message and are held in memory (up to a budget) until
    their pool job stages them, or staged at once; large ones come in chunks. Every way gives
    the same mirror, also for a directory replaced by a file."""
    from rdb_mirror import repo_side

    monkeypatch.setattr(repo_side, "HELD_BYTES", held_bytes)
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "d").mkdir(parents=True)
    (src / "becomes_file").mkdir()
    (src / "becomes_file" / "inner").write_bytes(b"inner\n")
    for i in range(300):
        (src / "d" / f"f{i:03d}").write_bytes(os.urandom(i * 97))
    (src / "empty").write_bytes(b"")
    (src / "large").write_bytes(os.urandom((1 << 20) + 12345))
    (src / "exactly_a_chunk").write_bytes(os.urandom(1 << 20))
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    assert differences(trees.scan(src), trees.scan(repo)) == []
    (src / "becomes_file" / "inner").unlink()
    (src / "becomes_file").rmdir()
    (src / "becomes_file").write_bytes(b"now a file\n")
    for i in range(0, 300, 7):
        (src / "d" / f"f{i:03d}").write_bytes(os.urandom(i * 31 + 1))
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert result.errors == []
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert check(repo).problems == []
    assert not [p for p in (repo / "rdiff-backup-data").iterdir() if "tmp" in p.name]


def test_new_files_do_not_keep_an_inherited_acl(tmp_path: Path) -> None:
    """A destination whose directory passes a default ACL down: the mirror's new files and
    directories still get exactly the source's ACLs (none here), EAs too."""
    import shutil
    import subprocess

    if shutil.which("setfacl") is None:
        pytest.skip("setfacl is needed to give the destination a default ACL")
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "sub").mkdir(parents=True)
    (src / "plain").write_bytes(b"no acl\n")
    (src / "sub" / "with-ea").write_bytes(b"an ea\n")
    os.setxattr(src / "sub" / "with-ea", "user.note", b"kept")
    dest.mkdir()
    subprocess.run(["setfacl", "-d", "-m", "u:nobody:rwx", str(dest)], check=True)
    result = backup(src, dest, BackupOptions(current_time=session_time(0)))
    assert result.errors == []
    assert differences(trees.scan(src), trees.scan(dest)) == []
    assert "system.posix_acl_access" not in os.listxattr(dest / "plain")
    assert os.getxattr(dest / "sub" / "with-ea", "user.note") == b"kept"
