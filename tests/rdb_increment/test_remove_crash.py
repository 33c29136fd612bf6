"""SIGKILL a removal or a thinning at many points: every kept session still restores bit-exact
at once, and running the command again finishes the job exactly as an uninterrupted run."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from tests.rdb_increment.removal import (
    HOUR,
    T0,
    History,
    assert_sessions_restore,
    assert_tidy,
    build_history,
    repository_files,
    run_increment,
)
from tests.rdb_increment.removal import utc_zone as utc_zone  # the fixture
from tests.rdb_increment.test_thin import increments_by_path
from tests.rdb_increment.test_thin import transitions as transitions  # the fixture

from rdb_format.layout import Layout
from rdb_increment import JOURNAL, RemoveOptions, RetentionPolicy, remove_sessions
from rdb_increment.testhooks import POINTS

TIMES = [T0 + n * HOUR for n in range(6)]


def stamp(when: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


#: (name, command-line arguments, the sessions that stay)
SCENARIOS = {
    "oldest": (["--older-than", stamp(TIMES[3])], TIMES[3:]),
    # the oldest session, and two between kept ones
    "thinning": (
        [f"--session={stamp(TIMES[i])}" for i in (0, 2, 3)],
        [TIMES[1], TIMES[4], TIMES[5]],
    ),
}


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> History:
    return build_history(tmp_path_factory.mktemp("crash"), TIMES, seed=57)


@pytest.fixture(scope="module")
def finished(
    master: History, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[int, History]]:
    """Each scenario run without interruption: how many changes it makes, and its result."""
    out = {}
    for name, (args, _) in SCENARIOS.items():
        history = master.copy(tmp_path_factory.mktemp(f"whole-{name}") / "repo")
        proc = run_increment("remove", "--json", history.repo, *args, "--force")
        assert proc.returncode == 0, proc.stderr
        document = __import__("json").loads(proc.stdout)
        changes = (
            document["files_deleted"] + document["increments_renamed"] + document["files_rewritten"]
        )
        out[name] = (changes, history)
    return out


def policy_of(args: list[str]) -> RetentionPolicy:
    """The policy the command-line ``args`` of a scenario stand for."""
    if args[0] == "--older-than":
        return RetentionPolicy(older_than=args[1])
    return RetentionPolicy(sessions=tuple(a.removeprefix("--session=") for a in args))


def kill_points(count: int) -> list[int]:
    """Every change of the first few, then a spread up to the last one."""
    return sorted({1, 2, 3, 4, 5, 7, *range(9, count + 1, max(1, count // 14)), count})


def check_killed_then_rerun(
    master: History,
    finished: History,
    args: list[str],
    kept: list[int],
    env: dict[str, str],
    work: Path,
    *,
    workers: int | None = None,
) -> None:
    """Kill the removal (``workers``=1: the same point every time; default: several threads,
    so the other groups' merges are caught at whatever step they reached)."""
    history = master.copy(work / "repo")
    threads = ["--workers", str(workers)] if workers else []
    proc = run_increment("remove", history.repo, *args, *threads, "--force", env=env)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    # killed: every kept session restores as it did, right now
    assert_sessions_restore(history, kept, work / "after-kill")
    # run again (in this process: quicker): the removal completes as an uninterrupted one
    again = remove_sessions(history.repo, policy_of(args), RemoveOptions(force=True))
    assert again.kept == tuple(kept)
    assert_sessions_restore(history, kept, work / "after-rerun")
    assert_tidy(history.repo)
    assert set(repository_files(history.repo)) == set(repository_files(finished.repo))
    assert increments_by_path(history.repo) == increments_by_path(finished.repo)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sigkill_after_any_change(
    scenario: str,
    master: History,
    finished: dict[str, tuple[int, History]],
    tmp_path: Path,
) -> None:
    args, kept = SCENARIOS[scenario]
    changes, whole = finished[scenario]
    assert changes > 20, "the scenario must give the kill points something to hit"
    for point in kill_points(changes - 1):
        check_killed_then_rerun(
            master,
            whole,
            args,
            kept,
            {"RDB_INCREMENT_TEST_KILL_AFTER": str(point)},
            tmp_path / f"after-{point}",
        )


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_named_point_of_a_thinning(
    point: str,
    master: History,
    finished: dict[str, tuple[int, History]],
    tmp_path: Path,
) -> None:
    args, kept = SCENARIOS["thinning"]
    check_killed_then_rerun(
        master, finished["thinning"][1], args, kept, {"RDB_INCREMENT_TEST_KILL_AT": point}, tmp_path
    )


def test_a_killed_removal_is_finished_by_any_later_removal(master: History, tmp_path: Path) -> None:
    """The journal makes the next removal finish the job, whatever it was asked to do."""
    args, kept = SCENARIOS["thinning"]
    history = master.copy(tmp_path / "repo")
    proc = run_increment(
        "remove",
        history.repo,
        *args,
        "--force",
        env={"RDB_INCREMENT_TEST_KILL_AT": "increments-done"},
    )
    assert proc.returncode == -signal.SIGKILL
    assert (Layout(history.repo).data_dir / JOURNAL).exists()
    proc = run_increment("remove", history.repo, "--older-than", stamp(TIMES[0]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("finished an interrupted removal\n")
    assert_tidy(history.repo)
    assert_sessions_restore(history, kept, tmp_path / "restored")


def test_sigkill_after_every_single_change_of_a_merge(
    transitions: tuple[History, list[int]], tmp_path: Path
) -> None:
    """Every kind of merge (literal first, staged snapshot or diff, renames), killed after
    each of its changes in turn."""
    master, times = transitions
    args = [f"--session={stamp(times[1])}", f"--session={stamp(times[2])}"]
    kept = [times[0], times[3]]
    whole = master.copy(tmp_path / "whole" / "repo")
    result = remove_sessions(
        whole.repo,
        RetentionPolicy(sessions=(str(times[1]), str(times[2]))),
        RemoveOptions(force=True),
    )
    assert result.files_rewritten >= 10 and result.increments_renamed >= 5, result
    for point in range(1, result.changes):
        env = {"RDB_INCREMENT_TEST_KILL_AFTER": str(point)}
        work = tmp_path / f"after-{point}"
        check_killed_then_rerun(master, whole, args, kept, env, work, workers=1)


def test_a_removal_deletes_temp_files_a_killed_writer_left(master: History, tmp_path: Path) -> None:
    """A writer killed while it wrote its lock file or the journal (found by the syscall kill
    sweep, tests/rdb_mirror/test_crash_syscalls.py) leaves an ``rdiff-backup.tmp.<N>`` in
    rdiff-backup-data: the next removal, holding the lock, deletes it with the rest."""
    args, kept = SCENARIOS["oldest"]
    history = master.copy(tmp_path / "repo")
    data_dir = Layout(history.repo).data_dir
    (data_dir / "rdiff-backup.tmp.123456789").write_text("host: vm\npid: 1\n")
    (data_dir / "rdiff-backup.tmp.987654321").write_bytes(b"")
    proc = run_increment("remove", history.repo, *args, "--force")
    assert proc.returncode == 0, proc.stderr
    assert_tidy(history.repo)
    assert_sessions_restore(history, kept, tmp_path / "restored")
