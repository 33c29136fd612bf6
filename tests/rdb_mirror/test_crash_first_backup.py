"""SIGKILL a first backup while its new small files are written in batches by one C call each
(rdb_fastio, on the pool): no file is in the mirror half-made, and the next run,
rdb-mirror's or rdiff-backup 2.2.7's, starts over and backs everything up right."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import (
    differences,
    restore_with_rdiff_backup,
    restored,
    run_mirror,
    run_rdiff_backup,
    session_time,
)

from rdb_format.atomic import is_temp_name
from rdb_format.layout import Layout
from rdb_format.repository import read_state
from rdb_mirror.check import check

#: Small new files: 600 of them is ten batches of 64 (repo_side.STAGE_BATCH).
MANY = 600


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, trees.Snapshot]:
    src = tmp_path_factory.mktemp("first-crash") / "src"
    trees.build_tree(src, seed=47)
    many = src / "many"
    many.mkdir()
    for n in range(MANY):
        (many / f"f{n:03}").write_bytes(os.urandom(n % 97 * 13))
        os.utime(many / f"f{n:03}", ns=(1_600_000_000_000_000_000 + n, 1_500_000_000_000_000_007))
    return src, trees.scan(src)


def _killed_first_backup(src: Path, repo: Path, after: int) -> None:
    """A first backup killed after ``after`` entries: not committed, and every mirror file
    already in place is whole, with its attributes (a batch renames a file only once it is
    written and set)."""
    env = {"RDB_MIRROR_TEST_KILL_AFTER": str(after)}
    proc = run_mirror("--current-time", str(session_time(0)), src, repo, env=env)
    assert proc.returncode == -9, (proc.returncode, proc.stderr)
    assert read_state(Layout(repo)).markers == ()
    source_files = trees.scan(src)
    for path in (repo / "many").iterdir() if (repo / "many").is_dir() else ():
        assert not is_temp_name(path.name), path
        index = (b"many", os.fsencode(path.name))
        written = trees.stat_entry(os.fsencode(path))
        assert differences({index: source_files[index]}, {index: written}) == []


@pytest.mark.parametrize("after", [120, 450])
def test_next_run_starts_over_after_a_first_backup_killed_mid_batch(
    source: tuple[Path, trees.Snapshot], tmp_path: Path, after: int
) -> None:
    src, scan = source
    repo = tmp_path / "repo"
    _killed_first_backup(src, repo, after)
    proc = run_mirror("--current-time", str(session_time(1)), src, repo)
    assert proc.returncode == 0, proc.stderr
    assert differences(scan, trees.scan(repo)) == []
    assert check(repo).problems == []
    assert not [n for n in os.listdir(repo / "rdiff-backup-data") if is_temp_name(n)]
    assert differences(scan, restored(repo, session_time(1), tmp_path / "r")) == []


@pytest.mark.interop
def test_rdiff_backup_starts_over_after_our_first_backup_killed_mid_batch(
    rdiff_backup: str, source: tuple[Path, trees.Snapshot], tmp_path: Path
) -> None:
    src, scan = source
    repo = tmp_path / "repo"
    _killed_first_backup(src, repo, 450)
    when = str(session_time(1))
    proc = run_rdiff_backup(rdiff_backup, "--current-time", when, "backup", src, repo)
    # our lock.yml is there (as after its own API-201 runs): it starts over with --force only
    assert proc.returncode != 0 and "--force will remove the complete repo" in proc.stderr
    proc = run_rdiff_backup(rdiff_backup, "--force", "--current-time", when, "backup", src, repo)
    assert proc.returncode == 0, proc.stderr
    assert differences(scan, trees.scan(repo)) == []
    assert differences(scan, restored(repo, session_time(1), tmp_path / "r")) == []
    again = restore_with_rdiff_backup(rdiff_backup, repo, session_time(1), tmp_path / "r2")
    assert differences(scan, again) == []
