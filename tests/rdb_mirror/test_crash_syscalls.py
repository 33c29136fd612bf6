"""A backup, a regress and a removal SIGKILLed at each system call that changes the disk
(strace fault injection, see syscall_kill): what a user checks afterwards still holds.

1. an incremental backup killed: ``--regress`` (or directly the next backup) succeeds, and every
   earlier session restores bit-exact with its metadata;
2. a first backup killed: the next run starts clean and succeeds;
3. ``--regress`` killed: a second regress finishes the job;
4. ``rdb-increment remove --older-than`` killed: the kept sessions restore at once, and a
   second run finishes.

By default each case kills at a sample of points spread over the run (derandomized: evenly
spaced over the dry run's calls); ``RDB_CRASH_SWEEP=all`` kills at every point. Each test
collects every failing point and reports them together.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import need_tool
from tests.interop import trees
from tests.rdb_increment.removal import (
    HOUR,
    History,
    assert_sessions_restore,
    assert_tidy,
    build_history,
)
from tests.rdb_mirror.helpers import (
    differences,
    restore_with_rdiff_backup,
    restored,
    run_mirror,
    run_rdiff_backup,
    session_time,
)
from tests.rdb_mirror.syscall_kill import (
    LIBC,
    SWEEP_ALL,
    DryRun,
    kill_points,
    libc_points,
    module_command,
    run_killed,
    spread,
)

from rdb_format.layout import Layout
from rdb_format.repository import read_state
from rdb_mirror import BackupOptions, backup
from rdb_mirror.check import check
from rdb_mirror.repo_side import HELD_FILE


@pytest.fixture(autouse=True, scope="module")
def _strace() -> None:
    """strace is installed by ./dev setup: in CI its absence fails instead of skipping."""
    need_tool("strace", shutil.which("strace"))


Check = Callable[[Path, Path], None]


@dataclass
class Sweep:
    """One case: the state to start from, the command, its kill points."""

    start: Path  # a repository (or where the first one goes) copied before each kill
    command: Callable[[Path], list[str]]  # the command, given the copy
    dry: DryRun


def _copy(start: Path, target: Path) -> Path:
    if start.exists():
        subprocess.run(["cp", "-a", str(start), str(target)], check=True)
    return target


#: The two ways to kill: strace per thread and system call, the shim per C-library call.
WAYS = ["strace", LIBC]


def make_sweep(
    start: Path, command: Callable[[Path], list[str]], work: Path, way: str = "strace"
) -> Sweep:
    work.mkdir(parents=True, exist_ok=True)
    dry = _copy(start, work / "dry")
    if way == LIBC:
        return Sweep(start, command, libc_points(command(dry), work / "dry.count"))
    return Sweep(start, command, kill_points(command(dry), work / "dry.strace", dry))


def sample(way: str) -> int | None:
    """How many points a test kills at: every one with RDB_CRASH_SWEEP=all; else eight of
    strace's, three of the shim's (a check of the second way, not a second sweep)."""
    if SWEEP_ALL:
        return None
    return 8 if way == "strace" else 3


def run_sweep(sweep: Sweep, work: Path, after_kill: Check, count: int | None) -> None:
    """Kill at each chosen point, then run ``after_kill(repository, scratch)``; fail with
    every point whose check failed (and say how many points were not reached)."""
    failures: list[str] = []
    missed: list[str] = []
    aside: list[str] = []
    on_workers = 0
    chosen = spread(sweep.dry.points, count)
    for n, point in enumerate(chosen):
        # not str(point): a path in the name can make rdiff-backup take the repository for
        # an increment
        scratch = work / f"{n:04}-{point.syscall}-{point.nth}{'-path' if point.path else ''}"
        scratch.mkdir(parents=True)
        repo = _copy(sweep.start, scratch / "repo")
        killed = run_killed(sweep.command(repo), point, scratch / "strace.log", repo)
        if not killed.was_killed and not point.path and point.nth > 1:
            # a thread's Nth call of a kind: the pool shares its work among its threads as
            # their timing goes, so in this run no thread may have made N of them; the same
            # kind of call earlier in the run instead (a kill all the same, checked the same)
            point = dataclasses.replace(point, nth=point.nth // 2)
            shutil.rmtree(repo)
            repo = _copy(sweep.start, repo)
            killed = run_killed(sweep.command(repo), point, scratch / "strace.log", repo)
        if not killed.was_killed:
            # a worker's call targeted by path may go another way in this run: not counted
            (aside if point.path else missed).append(f"{point} (exit {killed.returncode})")
            continue
        on_workers += killed.on_worker
        try:
            after_kill(repo, scratch)
        except Exception as error:  # every point is reported, not only the first
            failures.append(f"{point} at {killed.call[:300]}: {error!r:.600}")
        else:
            shutil.rmtree(scratch)
    summary = (
        f"{len(chosen)} of {len(sweep.dry.points)} points, {len(missed)} not reached"
        f" (and {len(aside)} targeted by path),"
        f" {on_workers} killed a worker thread (the dry run's disk-changing calls: main thread"
        f" {sweep.dry.main_calls}, others {sweep.dry.worker_calls}, of which"
        f" {sweep.dry.untargeted} name only a temporary file)"
    )
    print(summary, *missed, *aside, sep="\n  ")
    assert not failures, summary + "\n" + "\n".join(failures)
    assert len(missed) <= len(chosen) // 10, (summary, missed)


# -- the tree and its two sessions -----------------------------------------------------------


@dataclass
class Base:
    source: Path
    repo: Path  # one session, at session_time(0)
    first: trees.Snapshot
    second: trees.Snapshot  # the source now


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """Every file type, hard links, xattrs, one file streamed (above HELD_FILE); changed,
    deleted and added entries in several directories for the second session."""
    root = tmp_path_factory.mktemp("syscalls")
    src, repo = root / "src", root / "repo"
    trees.build_tree(src, seed=41, options=trees.TreeOptions(big_file_size=HELD_FILE + 60_000))
    first = trees.scan(src)
    proc = run_mirror("--current-time", session_time(0), src, repo)
    assert proc.returncode == 0, proc.stderr
    trees.mutate_tree(src, seed=401)
    return Base(src, repo, first, trees.scan(src))


def backup_command(base: Base, when: int) -> Callable[[Path], list[str]]:
    return lambda repo: module_command("rdb_mirror", "--current-time", str(when), base.source, repo)


def assert_restores(repo: Path, expected: dict[int, trees.Snapshot], work: Path) -> None:
    """Exactly these sessions, one marker, a consistent mirror; each restores bit-exact."""
    state = read_state(Layout(repo))
    assert len(state.markers) == 1, state.markers
    assert state.sessions == tuple(sorted(expected)), state.sessions
    assert check(repo).problems == []
    for when, scan in expected.items():
        got = differences(scan, restored(repo, when, work / f"restored-{when}"))
        assert got == [], (when, got[:5])


# -- 1. an incremental backup killed ---------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_incremental_backup_killed_at_each_call(base: Base, tmp_path: Path, way: str) -> None:
    sweep = make_sweep(base.repo, backup_command(base, session_time(1)), tmp_path / "dry", way)
    regress_first = [True]

    def after_kill(repo: Path, scratch: Path) -> None:
        markers = read_state(Layout(repo), allow_duplicate_timestamps=True).markers
        committed = markers[-1].time == session_time(1) and len(markers) == 1
        # every other point: regress on demand first; the rest: the next backup does it
        regress_first[0] = not regress_first[0]
        if regress_first[0]:
            proc = run_mirror("--regress", repo)
            assert proc.returncode == 0, proc.stderr
            assert differences(base.second if committed else base.first, trees.scan(repo)) == []
        proc = run_mirror("--current-time", session_time(2), base.source, repo)
        assert proc.returncode == 0, proc.stderr
        assert differences(base.second, trees.scan(repo)) == []
        expected = {session_time(0): base.first, session_time(2): base.second}
        if committed:
            expected[session_time(1)] = base.second
        assert_restores(repo, expected, scratch)

    run_sweep(sweep, tmp_path / "kills", after_kill, sample(way))


@pytest.mark.interop
def test_rdiff_backup_takes_our_killed_repository(
    rdiff_backup: str, base: Base, tmp_path: Path
) -> None:
    """rdiff-backup 2.2.7 regresses a killed session of ours; then it lists, verifies and
    restores the previous session; and after our next backup it restores both sessions."""
    sweep = make_sweep(base.repo, backup_command(base, session_time(1)), tmp_path / "dry")

    def after_kill(repo: Path, scratch: Path) -> None:
        markers = read_state(Layout(repo), allow_duplicate_timestamps=True).markers
        proc = run_rdiff_backup(rdiff_backup, "--force", "regress", repo)
        assert proc.returncode in (0, 2), proc.stderr
        state = read_state(Layout(repo))
        assert len(state.markers) == 1
        current = state.markers[0].time
        assert current == markers[-1].time if len(markers) == 1 else markers[0].time
        for command in (["list", "increments"], ["verify"]):
            proc = run_rdiff_backup(rdiff_backup, *command, repo)
            assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        at_current = base.second if current == session_time(1) else base.first
        got = restore_with_rdiff_backup(rdiff_backup, repo, current, scratch / "r-current")
        assert differences(at_current, got) == []
        result = backup(base.source, repo, BackupOptions(current_time=session_time(2)))
        assert result.errors == []
        for when, scan in ((session_time(0), base.first), (session_time(2), base.second)):
            got = restore_with_rdiff_backup(rdiff_backup, repo, when, scratch / f"r{when}")
            assert differences(scan, got) == [], when

    run_sweep(sweep, tmp_path / "kills", after_kill, count=60 if SWEEP_ALL else 4)


# -- 2. a first backup killed ----------------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_first_backup_killed_at_each_call(base: Base, tmp_path: Path, way: str) -> None:
    source = tmp_path / "src"
    trees.build_tree(source, seed=41, options=trees.TreeOptions(big_file_size=HELD_FILE + 60_000))
    scan = trees.scan(source)
    command = lambda repo: module_command(  # noqa: E731
        "rdb_mirror", "--current-time", str(session_time(0)), source, repo
    )
    sweep = make_sweep(tmp_path / "no-repository", command, tmp_path / "dry", way)

    def after_kill(repo: Path, scratch: Path) -> None:
        proc = run_mirror("--current-time", session_time(1), source, repo)
        assert proc.returncode == 0, proc.stderr
        assert differences(scan, trees.scan(repo)) == []
        state = read_state(Layout(repo))
        sessions = dict.fromkeys(state.sessions, scan)
        assert set(sessions) in ({session_time(1)}, {session_time(0), session_time(1)})
        assert_restores(repo, sessions, scratch)

    run_sweep(sweep, tmp_path / "kills", after_kill, sample(way))


# -- 3. a regress killed ---------------------------------------------------------------------


def test_regress_killed_at_each_call(base: Base, tmp_path: Path) -> None:
    unfinished = tmp_path / "unfinished"
    _copy(base.repo, unfinished)
    proc = run_mirror(
        "--current-time",
        session_time(1),
        base.source,
        unfinished,
        env={"RDB_MIRROR_TEST_KILL_AFTER": "40"},
    )
    assert proc.returncode == -9, proc.stderr
    command = lambda repo: module_command("rdb_mirror", "--regress", repo)  # noqa: E731
    sweep = make_sweep(unfinished, command, tmp_path / "dry")

    def after_kill(repo: Path, scratch: Path) -> None:
        proc = run_mirror("--regress", repo)
        assert proc.returncode == 0, proc.stderr
        assert differences(base.first, trees.scan(repo)) == []
        assert_restores(repo, {session_time(0): base.first}, scratch)

    # regress runs on one thread: the shim would kill at the same points
    run_sweep(sweep, tmp_path / "kills", after_kill, sample("strace"))


# -- 4. a removal killed ---------------------------------------------------------------------

TIMES = [session_time(0) + n * HOUR for n in range(4)]


@pytest.mark.parametrize("way", WAYS)
def test_remove_older_than_killed_at_each_call(tmp_path: Path, way: str) -> None:
    history = build_history(tmp_path / "history", TIMES, seed=57)
    kept = TIMES[2:]
    older_than = str(TIMES[2])

    def command(repo: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "rdb_increment",
            "remove",
            str(repo),
            "--older-than",
            older_than,
            "--force",
        ]

    sweep = make_sweep(history.repo, command, tmp_path / "dry", way)

    def after_kill(repo: Path, scratch: Path) -> None:
        killed = History(history.source, repo, dict(history.scans), dict(history.metadata))
        assert_sessions_restore(killed, kept, scratch / "at-once")
        proc = subprocess.run(command(repo), capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        assert read_state(Layout(repo)).sessions == tuple(kept)
        assert_sessions_restore(killed, kept, scratch / "after-rerun")
        assert_tidy(repo)

    run_sweep(sweep, tmp_path / "kills", after_kill, sample(way))
