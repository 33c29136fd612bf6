"""A batch of new, changed or touched files still filling while many outputs wait behind it
is handed to the pool unfilled (repo_side.EARLY_HAND_OVER): the session's result is the one
a full batch gives: the mirror, every increment and marker, the earlier session restored.
And whenever a batch's pool job runs, every file of it has its increments (.missing)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences, restored, session_time

from rdb_mirror import BackupOptions, backup, repo_side
from rdb_mirror.check import check
from rdb_mirror.workers import Job, Workers


def _tree(src: Path) -> None:
    for d in range(8):
        for f in range(150):
            path = src / f"d{d}" / f"f{f:03}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"%d-%d " % (d, f) * (f % 9 + 1))


def _change(src: Path) -> list[str]:
    """Few changes among many unchanged files; the new files' names (relative)."""
    new = []
    for d in range(8):
        for f in range(150):
            path = src / f"d{d}" / f"f{f:03}"
            if f % 31 == 3:
                path.write_bytes(b"changed %d %d " % (d, f) * 7)
            elif f % 37 == 5:
                os.utime(path, ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9 + f))
            elif f % 43 == 7:
                path.unlink()
            if f % 29 == 11:
                name = f"d{d}/new{f:03}"
                (src / name).write_bytes(b"new %d %d" % (d, f))
                new.append(name)
    return new


def _markers(repo: Path, name: str) -> list[str]:
    increments = repo / "rdiff-backup-data" / "increments"
    return [m.name.rsplit(".", 1)[-1] for m in increments.glob(f"{name}.*")]


def test_batches_handed_over_early_write_what_full_ones_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _tree(src)
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    before = trees.scan(src)
    new = _change(src)
    monkeypatch.setattr(repo_side, "EARLY_HAND_OVER", 4)
    sizes: list[int] = []
    real = repo_side.RepositorySide._hand_over

    def spy(self: repo_side.RepositorySide, batch: Any) -> None:
        sizes.append(len(batch.files))
        real(self, batch)

    monkeypatch.setattr(repo_side.RepositorySide, "_hand_over", spy)
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert result.errors == []
    assert sizes and min(sizes) < repo_side.STAGE_BATCH  # handed over unfilled
    assert differences(trees.scan(src), trees.scan(repo)) == []
    for name in new:
        assert _markers(repo, name) == ["missing"], name
    assert check(repo).problems == []
    assert differences(before, restored(repo, session_time(0), tmp_path / "at0")) == []


def _batch_jobs_done_before_submit_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool runs a batch's job before its submitter goes on (a scheduling the pool may
    always choose: the thread that submits can be preempted at any point)."""
    real: Callable[..., Job[Any]] = Workers.submit

    def submit(self: Workers, function: Callable[..., Any], *args: object) -> Job[Any]:
        job = real(self, function, *args)
        if getattr(function, "__name__", "") in ("_write_batch", "_set_times_batch"):
            while not job.done():
                time.sleep(0.001)
        return job

    monkeypatch.setattr(Workers, "submit", submit)


def test_the_last_new_file_of_a_full_batch_gets_its_missing_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "old").mkdir(parents=True)
    (src / "old" / "a").write_bytes(b"a")
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    before = trees.scan(src)
    names = [f"new-{n:03}" for n in range(2 * repo_side.STAGE_BATCH + 5)]
    for n, name in enumerate(names):
        (src / name).write_bytes(b"x" * (n + 1))
    _batch_jobs_done_before_submit_returns(monkeypatch)
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert result.errors == []
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert [n for n in names if _markers(repo, n) != ["missing"]] == []
    assert differences(before, restored(repo, session_time(0), tmp_path / "at0")) == []
