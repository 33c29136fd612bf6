"""A first backup's new small files are written in batches by one C call each
(rdb_fastio.write_new_files); a file the batch could not write goes the general way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences, session_time

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
    real = write_new_files
    failed: list[bytes] = []

    def every_third_fails(files: list[NewFile]) -> list[OSError | None]:
        results: list[OSError | None] = []
        for n, file in enumerate(files):
            if n % 3 == 1:
                failed.append(file.target)
                results.append(OSError(5, "cannot write: Input/output error"))
            else:
                results.extend(real([file]))
        return results

    monkeypatch.setattr(repo_side, "write_new_files", every_third_fails)
    result = backup(src, repo, BackupOptions(current_time=session_time(0)))
    assert len(failed) > 60
    assert result.errors == []
    assert differences(trees.scan(src), trees.scan(repo)) == []
