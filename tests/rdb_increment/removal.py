"""Helpers of the removal and thinning tests: histories written by rdb-mirror, and the checks
a user would make afterwards (every kept session restores bit-exact, metadata unchanged).

rdb-mirror and rdb-restore are not dependencies of rdb-increment: in the isolated run of this
package (nox -s isolated) the tests that need them are skipped; everywhere else they run.
"""

from __future__ import annotations

import dataclasses
import os
import random
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences

from rdb_format.layout import Layout
from rdb_format.metadata import Record
from rdb_format.metadata_diff import records_at
from rdb_format.repository import read_state
from rdb_increment.remove import JOURNAL

T0 = 1_700_000_000
HOUR = 3_600
DAY = 86_400


@pytest.fixture(autouse=True)
def utc_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Time strings in Z form and calendar rules in UTC, whatever the machine's zone
    (subprocesses inherit it). Import it into a test module to use it there."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def mirror_module() -> ModuleType:
    module: ModuleType = pytest.importorskip("rdb_mirror.session")
    return module


def restore_module() -> ModuleType:
    module: ModuleType = pytest.importorskip("rdb_restore.restore")
    return module


@dataclasses.dataclass
class History:
    """A source tree and a repository holding one rdb-mirror session per entry of ``scans``."""

    source: Path
    repo: Path
    scans: dict[int, trees.Snapshot] = dataclasses.field(default_factory=dict)
    metadata: dict[int, list[Record]] = dataclasses.field(default_factory=dict)

    @property
    def times(self) -> list[int]:
        return sorted(self.scans)

    def backup(self, when: int, *, mutate_seed: int | None = None) -> None:
        """Change the source (unless it is the first session), scan it, back it up."""
        mirror = mirror_module()
        if mutate_seed is not None:
            trees.mutate_tree(self.source, mutate_seed)
            _change_long_name(self.source, mutate_seed)
        self.scans[when] = trees.scan(self.source)
        mirror.backup(self.source, self.repo, mirror.BackupOptions(current_time=when))
        self.metadata[when] = session_records(self.repo, when)

    def sessions(self) -> tuple[int, ...]:
        return read_state(Layout(self.repo)).sessions

    def copy(self, target: Path) -> History:
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(self.repo), str(target)], check=True)
        return History(self.source, target, dict(self.scans), dict(self.metadata))


#: The tree's over-long name (its increments live in long_filename_data).
LONG_NAME = b"l" * 255


def _change_long_name(source: Path, seed: int) -> None:
    """mutate_tree leaves the long name alone: rewrite, delete or re-create it."""
    rng = random.Random(seed)
    path = os.path.join(os.fsencode(source), LONG_NAME)
    choice = rng.random()
    if os.path.lexists(path) and not os.path.isfile(path):
        return  # mutate_tree made it something else this time
    if os.path.lexists(path) and choice < 0.15:
        os.unlink(path)
        return
    with open(path, "ab" if choice < 0.6 else "wb") as stream:
        stream.write(rng.randbytes(rng.randint(1, 3000)))


def build_history(workdir: Path, times: list[int], seed: int) -> History:
    """Back up a generated tree at each of ``times``, mutating it between sessions."""
    workdir.mkdir(parents=True, exist_ok=True)
    history = History(workdir / "src", workdir / "repo")
    trees.build_tree(history.source, seed)
    for n, when in enumerate(times):
        history.backup(when, mutate_seed=None if n == 0 else seed * 1000 + n)
    return history


def session_records(repo: Path, when: int) -> list[Record]:
    layout = Layout(repo)
    return list(records_at(layout.data_dir, when, quoting=read_state(layout).quoting))


def assert_sessions_restore(
    history: History, times: list[int] | tuple[int, ...], work: Path
) -> None:
    """Every session in ``times`` restores (rdb-restore) to exactly what it backed up, and
    its metadata is record for record what it was before any removal."""
    restore = restore_module()
    work.mkdir(parents=True, exist_ok=True)
    for when in times:
        target = work / f"at-{when}-{time.monotonic_ns()}"
        result = restore.restore(str(history.repo), str(target), at=str(when))
        assert not result.bad, (when, result.bad)
        problems = differences(history.scans[when], trees.scan(target))
        assert not problems, (when, problems[:5])
        assert session_records(history.repo, when) == history.metadata[when], when


def increment_times(repo: Path) -> dict[tuple[str, bytes], list[int]]:
    """Every increment of the repository: (directory, base) -> its times, oldest first."""
    from rdb_increment.tree import root_increments, walk_increments

    layout = Layout(repo)
    quoting = read_state(layout).quoting
    found: dict[tuple[str, bytes], list[int]] = {}
    groups = [root_increments(layout, quoting)]
    for directory in walk_increments(layout):
        groups += directory.groups(quoting)
    for group in groups:
        key = (os.fsdecode(group.directory), group.base)
        found[key] = sorted(f.time for f in group.files)
    return found


def assert_tidy(repo: Path) -> None:
    """After a completed removal: every increment carries a session's time, at most one per
    path and session; no journal, no scratch directory, no data file of a gone session; and
    ``rdb-mirror --check`` finds the repository consistent."""
    layout = Layout(repo)
    state = read_state(layout)
    sessions = set(state.sessions)
    for key, times in increment_times(repo).items():
        assert set(times) <= sessions, (key, sorted(set(times) - sessions))
        assert len(times) == len(set(times)), key
    assert not (layout.data_dir / JOURNAL).exists()
    leftovers = [n for n in os.listdir(layout.data_dir) if n.startswith("rdiff-backup.tmp.")]
    assert not leftovers
    for entry in state.entries:
        assert entry.name.time in sessions, entry.path.name
    checker = pytest.importorskip("rdb_mirror.check")
    assert checker.check(repo).problems == []


def repository_files(repo: Path) -> dict[str, bytes]:
    """Relative path -> content of everything in a repository (a symlink's target, a special
    file's type and device); locks and human logs left out."""
    out: dict[str, bytes] = {}
    skip = {"lock.yml", "rdb-writer.lock", "backup.log", "remove.log", "regress.log", "restore.log"}
    for dirpath, dirnames, filenames in os.walk(repo):
        for name in dirnames:
            path = Path(dirpath) / name
            rel = os.path.relpath(path, repo)
            if path.is_symlink():
                out[rel] = _content(path)
            else:
                out[rel + "/"] = b""
        for name in filenames:
            if name not in skip:
                path = Path(dirpath) / name
                out[os.path.relpath(path, repo)] = _content(path)
    return out


def _content(path: Path) -> bytes:
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        return path.read_bytes()
    if stat.S_ISLNK(st.st_mode):
        return b"-> " + os.readlink(os.fsencode(path))
    return b"<%o %d>" % (stat.S_IFMT(st.st_mode), st.st_rdev)


def run_increment(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m rdb_increment ARGS`` in a subprocess (text output, TZ=UTC)."""
    return subprocess.run(
        [sys.executable, "-m", "rdb_increment", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "UTC", **(env or {})},
        timeout=timeout,
        check=False,
    )


def random_times(rng: random.Random, count: int, start: int = T0) -> Iterator[int]:
    """Increasing session times an hour to ten days apart (so day/week/month rules bite)."""
    when = start
    for _ in range(count):
        yield when
        when += rng.choice([HOUR, 5 * HOUR, DAY, DAY + 7, 3 * DAY, 10 * DAY])
