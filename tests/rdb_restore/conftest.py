"""Fixtures of the rdb-restore tests: repositories written by rdb-mirror, sentinels."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.interop import trees

from rdb_fastio import rebuild
from rdb_mirror import session as mirror  # a test dependency (noxfile PACKAGES)

T0 = 1_700_000_000
STEP = 3_600


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Time strings in Z form, whatever the machine's zone (subprocesses inherit it)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@dataclass
class MirrorRepo:
    """A repository written by rdb-mirror over several sessions, and what each one saw."""

    path: Path
    source: Path
    times: list[int]
    scans: list[trees.Snapshot]


def build_mirror_repo(workdir: Path, sessions: int = 3, seed: int = 11) -> MirrorRepo:
    src, repo = workdir / "src", workdir / "repo"
    trees.build_tree(src, seed)
    times: list[int] = []
    scans: list[trees.Snapshot] = []
    for n in range(sessions):
        if n:
            trees.mutate_tree(src, seed * 100 + n)
        scans.append(trees.scan(src))
        when = T0 + n * STEP
        mirror.backup(src, repo, mirror.BackupOptions(current_time=when))
        times.append(when)
    return MirrorRepo(repo, src, times, scans)


@pytest.fixture(scope="session")
def mirror_repo_master(tmp_path_factory: pytest.TempPathFactory) -> MirrorRepo:
    return build_mirror_repo(tmp_path_factory.mktemp("mirror-repo"))


@pytest.fixture
def mirror_repo(mirror_repo_master: MirrorRepo, tmp_path: Path) -> MirrorRepo:
    """A private copy (tests may damage it)."""
    copy = tmp_path / "repo"
    subprocess.run(["cp", "-a", str(mirror_repo_master.path), str(copy)], check=True)
    return MirrorRepo(
        copy, mirror_repo_master.source, mirror_repo_master.times, mirror_repo_master.scans
    )


@dataclass
class Sentinel:
    """A directory outside every TARGET whose state must never change."""

    path: Path
    before: trees.Snapshot

    def assert_untouched(self) -> None:
        assert trees.scan(self.path) == self.before


@pytest.fixture
def sentinel(tmp_path: Path) -> Sentinel:
    path = tmp_path / "sentinel"
    path.mkdir()
    (path / "secret.txt").write_bytes(b"do not touch\n")
    (path / "sub").mkdir()
    os.utime(path / "secret.txt", (1_600_000_000, 1_600_000_000))
    return Sentinel(path, trees.scan(path))


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """[files given to rdb_fastio's RebuildPlan, of them not done there], as the restores (or
    verify) go."""
    counts = [0, 0]
    real = rebuild.RebuildPlan.rebuild

    def counting(plan: rebuild.RebuildPlan) -> rebuild.PlanRebuilt:
        done = real(plan)
        counts[0] += plan.count
        counts[1] += len(done.failed)
        return done

    monkeypatch.setattr(rebuild.RebuildPlan, "rebuild", counting)
    return counts
