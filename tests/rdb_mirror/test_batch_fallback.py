"""New small files are written in batches by one C call each (rdb_fastio.write_new_files),
in a first backup and in later ones (then with their .missing markers, made after them);
a file the batch could not write goes the general way."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import (
    differences,
    restore_with_rdiff_backup,
    restored,
    session_time,
)

from rdb_fastio import NewFile, write_new_files
from rdb_mirror import BackupOptions, backup, repo_side


def test_a_backup_falls_back_for_files_the_batch_could_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every third file of each batch "fails" in C: the general path writes it instead, and
    the mirror and the session's files are as if nothing had happened."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=11)
    for n in range(200):
        (src / f"small-{n:03}").write_bytes(os.urandom(n * 7))
    failed = _every_third_fails(monkeypatch)
    result = backup(src, repo, BackupOptions(current_time=session_time(0)))
    assert len(failed) > 60
    assert result.errors == []
    assert differences(trees.scan(src), trees.scan(repo)) == []


def _every_third_fails(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Make every third data file of each batch "fail" in C (markers, empty, are made);
    the targets of those that did are listed in the list returned."""
    real = write_new_files
    failed: list[bytes] = []

    def every_third_fails(files: list[NewFile]) -> list[OSError | None]:
        results: list[OSError | None] = []
        for n, file in enumerate(files):
            if n % 3 == 1 and file.data:
                failed.append(file.target)
                results.append(OSError(5, "cannot write: Input/output error"))
            else:
                results.extend(real([file]))
        return results

    monkeypatch.setattr(repo_side, "write_new_files", every_third_fails)
    return failed


@pytest.mark.interop
@pytest.mark.parametrize("batch_fails", [False, True])
def test_new_files_of_a_later_backup_get_one_missing_marker_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rdiff_backup: str, batch_fails: bool
) -> None:
    """A later session's new small files are batched too: each has one empty .missing
    increment (mode 0600), whether the batch or the general path wrote it, and the earlier
    session restores without them, with rdiff-backup and with rdb-restore."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=12)
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    before = trees.scan(src)
    names = [f"new-{n:03}" for n in range(150)]
    for n, name in enumerate(names):
        (src / name).write_bytes(os.urandom(n * 5 + 1))
    failed = _every_third_fails(monkeypatch) if batch_fails else []
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert result.errors == []
    assert len(failed) > 30 if batch_fails else not failed
    assert differences(trees.scan(src), trees.scan(repo)) == []
    increments = repo / "rdiff-backup-data" / "increments"
    for name in names:
        markers = list(increments.glob(f"{name}.*"))
        assert [m.name.rsplit(".", 1)[-1] for m in markers] == ["missing"], name
        st = markers[0].lstat()
        assert st.st_size == 0 and stat.S_IMODE(st.st_mode) == 0o600
    assert differences(before, restored(repo, session_time(0), tmp_path / "ours")) == []
    theirs = restore_with_rdiff_backup(rdiff_backup, repo, session_time(0), tmp_path / "theirs")
    assert differences(before, theirs) == []
