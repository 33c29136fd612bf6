"""Files copied from the mirror are gathered across directories into runs (one C call on the
pool each): a tree of many small directories restores exactly, and the directories a run holds
open stay bounded, so a restore works under the usual limit of open files."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences
from tests.rdb_restore.helpers import plan_class

from rdb_fastio import CopyPlan, FileCopy, PlanCopied
from rdb_mirror import session as mirror
from rdb_restore import RestoreOptions, restore, writer
from rdb_restore.writer import RUN_DIRS

DIRS = 700  # x 3 descriptors each would be far over the limit below if all were held


def _one_file_dirs(src: Path) -> None:
    for n in range(DIRS):
        directory = src / f"d{n:04d}"
        directory.mkdir(parents=True)
        (directory / "f").write_bytes(b"%d\n" % n)
        os.utime(directory / "f", (1_600_000_000 + n, 1_600_000_000 + n))
        os.chmod(directory, 0o750 if n % 2 else 0o755)
        os.utime(directory, (1_600_000_000 - n, 1_600_000_000 - n))


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))


def test_many_one_file_directories_restore_under_512_open_files(tmp_path: Path) -> None:
    assert RUN_DIRS * 3 * 8 < 512  # a run's directories, times the runs in flight with 2 CPUs
    src, repo, target = tmp_path / "src", tmp_path / "repo", tmp_path / "target"
    _one_file_dirs(src)
    subprocess.run(
        [sys.executable, "-m", "rdb_mirror", "-q", str(src), str(repo)],
        check=True,
        capture_output=True,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "rdb_restore", "-q", str(repo), str(target)],
        capture_output=True,
        preexec_fn=_limit_open_files,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert differences(trees.scan(src), trees.scan(target)) == []


def test_a_run_gathers_files_of_many_directories_up_to_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each C call copies the files of several directories (the hand-off per run, not per
    directory, is the point) and never of more than RUN_DIRS (their descriptors stay open)."""
    src, repo, target = tmp_path / "src", tmp_path / "repo", tmp_path / "target"
    _one_file_dirs(src)
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    calls: list[int] = []

    def counting(plan: CopyPlan, jobs: list[tuple[int, int, FileCopy]]) -> PlanCopied:
        calls.append(len({os.fstat(target_dir).st_ino for _, target_dir, _ in jobs}))
        return CopyPlan.copy(plan)

    monkeypatch.setattr(writer, "CopyPlan", plan_class(counting))
    # (2 workers: with more, a run gathers fewer directories; writer.RUN_DESCRIPTORS)
    restore(str(repo), str(target), options=RestoreOptions(workers=2))
    assert differences(trees.scan(src), trees.scan(target)) == []
    assert max(calls) == RUN_DIRS
    assert sum(calls) == DIRS
