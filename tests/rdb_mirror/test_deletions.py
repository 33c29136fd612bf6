"""Deleted regular files get their snapshot increments on the pool (C, the GIL released)
while the session goes on; the removal of their directory (deleted, or replaced by a file)
waits for them, whenever the durable order flushes."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import (
    differences,
    restore_with_rdiff_backup,
    restored,
    session_time,
)

from rdb_mirror import BackupOptions, backup, repo_side
from rdb_mirror.durable import DurableOrder


def _files(directory: Path, count: int) -> list[Path]:
    directory.mkdir(parents=True)
    paths = [directory / f"f{n:02}" for n in range(count)]
    for n, path in enumerate(paths):
        path.write_bytes(os.urandom(n * 97 + 1))
    return paths


@pytest.mark.interop
def test_deleted_files_keep_their_snapshots_when_their_directory_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rdiff_backup: str
) -> None:
    """Slow snapshot jobs and a durable order that flushes after every step: each deleted
    file still has its one snapshot, and the earlier session restores whole (rdb-restore
    and rdiff-backup)."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=21)
    deleted = _files(src / "gone", 25) + _files(src / "gone" / "sub", 10)
    deleted += _files(src / "replaced", 8)
    deleted += _files(src / "top", 6)[:3]
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    before = trees.scan(src)
    for path in deleted:
        if path.parent.name == "top":
            path.unlink()
    for directory in ("gone", "replaced"):
        for path in sorted((src / directory).rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        (src / directory).rmdir()
    (src / "replaced").write_bytes(b"a file where a directory was\n")

    real = repo_side.RepositorySide._delete_regular

    def slow(self: repo_side.RepositorySide, *args: object) -> object:
        time.sleep(0.02)
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(repo_side.RepositorySide, "_delete_regular", slow)
    monkeypatch.setattr(repo_side, "DurableOrder", partial(DurableOrder, steps=1))
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert result.errors == []
    assert differences(trees.scan(src), trees.scan(repo)) == []
    increments = repo / "rdiff-backup-data" / "increments"
    for path in deleted:
        relative = path.relative_to(src)
        found = list((increments / relative.parent).glob(f"{path.name}.*"))
        assert [f.name.split(".", 2)[-1] for f in found] == ["snapshot.gz"], relative
    assert differences(before, restored(repo, session_time(0), tmp_path / "ours")) == []
    theirs = restore_with_rdiff_backup(rdiff_backup, repo, session_time(0), tmp_path / "theirs")
    assert differences(before, theirs) == []
