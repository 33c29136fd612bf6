"""Helpers of the rdb-restore tests: run the command, find files in a repository."""

from __future__ import annotations

import gzip
import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from rdb_fastio import Copied, CopyPlan, CopyStatus, FileCopy, PlanCopied


def run_restore(
    *args: str | int | os.PathLike[str], input_: bytes | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[bytes]:
    """``python -m rdb_restore ARGS`` in a subprocess (bytes output)."""
    return subprocess.run(
        [sys.executable, "-m", "rdb_restore", *map(str, args)],
        capture_output=True,
        input=input_,
        env={**os.environ, "TZ": "UTC"},
        timeout=timeout,
        check=False,
    )


def increments(repo: Path, suffix: str) -> list[Path]:
    """Increment files under ``increments/`` whose name ends in ``suffix``, sorted."""
    return sorted((repo / "rdiff-backup-data" / "increments").rglob(f"*{suffix}"))


def metadata_snapshot(repo: Path) -> Path:
    return next((repo / "rdiff-backup-data").glob("mirror_metadata.*.snapshot.gz"))


def rewrite_gzip(path: Path, data: bytes) -> None:
    with gzip.open(path, "wb") as out:
        out.write(data)


def take_way(monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    """Make in-process restores take ``way``: "copied" (files copied from the mirror as they
    are, the default) or "rebuilt" (every file through the general rebuild path)."""
    if way == "rebuilt":
        monkeypatch.setattr(
            importlib.import_module("rdb_restore.restore"), "_plain_copy", lambda *_: None
        )


#: how a test's CopyPlan copies: given the plan and the files added to it (as the arguments
#: of copy_files_between), what CopyPlan.copy would return
PlanCopy = Callable[[CopyPlan, list[tuple[int, int, FileCopy]]], PlanCopied]


def plan_class(copy: PlanCopy) -> type[CopyPlan]:
    """A CopyPlan to put in place of rdb_restore.writer.CopyPlan (monkeypatch), whose copy()
    is ``copy``: to count, slow down or fail the copies of the writer's runs."""

    class TestPlan(CopyPlan):
        def __init__(self) -> None:
            super().__init__()
            self.jobs: list[tuple[int, int, FileCopy]] = []

        def add(self, src_dir: int, dst_dir: int, *fields: Any) -> None:
            super().add(src_dir, dst_dir, *fields)
            self.jobs.append((src_dir, dst_dir, FileCopy(*fields)))

        def copy(self) -> PlanCopied:
            return copy(self, self.jobs)

    return TestPlan


def one_by_one(copy_one: Callable[[int, int, Sequence[FileCopy]], list[Copied]]) -> PlanCopy:
    """A PlanCopy handing each file to ``copy_one`` (copy_files' signature), in order."""

    def copy(plan: CopyPlan, jobs: list[tuple[int, int, FileCopy]]) -> PlanCopied:
        del plan
        total, failed = 0, []
        for n, (src_dir, dst_dir, job) in enumerate(jobs):
            result = copy_one(src_dir, dst_dir, [job])[0]
            if result.status == CopyStatus.DONE:
                total += result.size
            else:
                failed.append((n, result))
        return PlanCopied(total, failed)

    return copy
