"""Removal and thinning against rdiff-backup 2.2.7: our removal of the oldest sessions leaves
what ``rdiff-backup remove increments`` leaves, and after any removal, thinning or killed
removal rdiff-backup still lists, verifies, restores and continues the repository."""

from __future__ import annotations

import random
import shutil
import signal
import time
from pathlib import Path

import pytest
from tests.interop import conftest as interop
from tests.interop import trees
from tests.interop.conftest import Repo, copy_repo, run_rdiff_backup
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
from tests.rdb_increment.test_thin import assert_like_direct, random_session_times
from tests.rdb_mirror.helpers import differences

from rdb_format.layout import Layout
from rdb_format.repository import read_state
from rdb_increment import RemoveOptions, RetentionPolicy, remove_sessions

pytestmark = pytest.mark.interop

# the interop fixtures (built once per test session), shared with tests/interop
rdiff_backup_repos = interop.rdiff_backup_repos
repo = interop.repo


def rb(exe: str, *args: str | Path, tz: str = "UTC", check: bool = True) -> str:
    proc = run_rdiff_backup(exe, [str(a) for a in args], tz=tz, check=check)
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


def listed_sessions(exe: str, path: Path, api: tuple[str, ...] = ()) -> list[int]:
    """The times ``rdiff-backup list increments`` shows, the current mirror last."""
    out = run_rdiff_backup(exe, [*api, "--parsable-output", "list", "increments", str(path)])
    lines = out.stdout.decode().split("\n")
    if api:  # API 201 prints YAML: "- base: ...\n  time: N\n  type: ..."
        return [int(line.split(":")[1]) for line in lines if line.strip().startswith("time:")]
    return [int(line.split()[0]) for line in lines if line.strip()]


def assert_rdiff_backup_serves(
    exe: str,
    path: Path,
    scans: dict[int, trees.Snapshot],
    kept: list[int],
    work: Path,
    *,
    api: tuple[str, ...] = (),
    tz: str = "UTC",
    going: tuple[int, ...] = (),
) -> None:
    """rdiff-backup lists the repository, verifies and restores every kept session
    (``going``: sessions a killed removal had not removed yet, which may still be listed)."""
    work.mkdir(parents=True, exist_ok=True)
    listed = listed_sessions(exe, path, api)
    assert listed[-1] == kept[-1] and set(listed) <= {*kept, *going}, (listed, kept)
    for when in kept:
        rb(exe, *api, "verify", "--at", str(when), path, tz=tz)
        target = work / f"rb-{when}-{time.monotonic_ns()}"
        rb(exe, *api, "restore", "--at", str(when), path, target, tz=tz)
        problems = differences(scans[when], trees.scan(target))
        assert not problems, (when, problems[:5])
        shutil.rmtree(target)


# ---- repositories written by rdiff-backup ---------------------------------------------------


@pytest.mark.parametrize("cut", [2, 4])
def test_removing_the_oldest_leaves_what_rdiff_backup_leaves(
    repo: Repo, cut: int, tmp_path: Path
) -> None:
    theirs = copy_repo(repo.path, tmp_path / "theirs")
    ours = copy_repo(repo.path, tmp_path / "ours")
    when = repo.times[cut]
    repo.run("--force", "remove", "increments", "--older-than", str(when), repo=theirs)
    proc = run_increment("remove", ours, "--older-than", str(when), "--force")
    assert proc.returncode == 0, proc.stderr
    assert repository_files(ours) == repository_files(theirs)


def test_rdiff_backup_serves_repositories_we_thinned(repo: Repo, tmp_path: Path) -> None:
    """Sessions 0 (the oldest), 1 and 3 of rdiff-backup's five go; 2 and 4 stay."""
    path = copy_repo(repo.path, tmp_path / "repo")
    times = repo.times
    proc = run_increment(
        "remove",
        path,
        *(f"--session={times[i]}" for i in (0, 1, 3)),
        "--force",
        env={"TZ": repo.variant.tz},
    )
    assert proc.returncode == 0, proc.stderr
    kept = [times[2], times[4]]
    assert read_state(Layout(path)).sessions == tuple(kept)
    scans = {s.time: s.source for s in repo.sessions}
    assert_rdiff_backup_serves(
        repo.exe, path, scans, kept, tmp_path, api=repo.variant.api_opts, tz=repo.variant.tz
    )
    # and rdiff-backup goes on backing up into it
    later = times[-1] + 1000
    repo.run("--current-time", str(later), "backup", *repo.variant.backup_opts,
             str(repo.source), repo=path)  # fmt: skip
    scans[later] = trees.scan(repo.source)
    assert_rdiff_backup_serves(
        repo.exe, path, scans, [*kept, later], tmp_path,
        api=repo.variant.api_opts, tz=repo.variant.tz,
    )  # fmt: skip


def test_thinning_gives_the_increments_rdiff_backup_writes(
    rdiff_backup_repos: dict[str, Repo], tmp_path: Path
) -> None:
    """Merged increments equal those rdiff-backup writes backing up the kept sessions alone:
    same kinds, compression and bytes."""
    repo = rdiff_backup_repos["default"]
    kept = [repo.times[0], repo.times[4]]
    direct = tmp_path / "direct"
    for when in kept:
        tree = tmp_path / f"tree-{when}"
        rb(repo.exe, "restore", "--at", str(when), repo.path, tree)
        rb(repo.exe, "--current-time", str(when), "backup", tree, direct)
        shutil.rmtree(tree)
    ours = copy_repo(repo.path, tmp_path / "ours")
    remove_sessions(
        ours, RetentionPolicy(sessions=tuple(str(t) for t in repo.times[1:4])),
        RemoveOptions(force=True),
    )  # fmt: skip
    assert_like_direct(ours, direct)


# ---- repositories written by rdb-mirror -----------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_random_histories_stay_readable_by_rdiff_backup(
    seed: int, rdiff_backup: str, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    times = iter(random_session_times(rng))
    history = build_history(tmp_path / "h", [next(times) for _ in range(5)], seed=70 + seed)
    for step in range(4):
        sessions = history.sessions()
        if len(sessions) < 3:
            history.backup(next(times), mutate_seed=seed * 10 + step)
            history.backup(next(times), mutate_seed=seed * 10 + step + 5)
            sessions = history.sessions()
        if step % 2:
            doomed = rng.sample(sessions[:-1], rng.randint(1, len(sessions) - 2))
            policy = RetentionPolicy(sessions=tuple(str(t) for t in doomed))
        else:
            policy = RetentionPolicy(keep_daily=rng.randint(1, 3), keep_last=1)
        result = remove_sessions(history.repo, policy, RemoveOptions(force=True))
        assert_tidy(history.repo)
        assert_rdiff_backup_serves(
            rdiff_backup, history.repo, history.scans, list(result.kept), tmp_path / str(step)
        )
        history.backup(next(times), mutate_seed=seed * 10 + step + 50)


@pytest.fixture(scope="module")
def crash_master(tmp_path_factory: pytest.TempPathFactory) -> History:
    return build_history(tmp_path_factory.mktemp("crash"), [T0 + n * HOUR for n in range(5)], 91)


@pytest.mark.parametrize(
    "env",
    [
        {"RDB_INCREMENT_TEST_KILL_AFTER": "3"},
        {"RDB_INCREMENT_TEST_KILL_AT": "sessions-dropped"},
        {"RDB_INCREMENT_TEST_KILL_AFTER": "60"},
        {"RDB_INCREMENT_TEST_KILL_AT": "increments-done"},
    ],
    ids=["after-3", "sessions-dropped", "after-60", "increments-done"],
)
def test_rdiff_backup_serves_a_repository_whose_thinning_was_killed(
    env: dict[str, str], crash_master: History, rdiff_backup: str, tmp_path: Path
) -> None:
    history = crash_master.copy(tmp_path / "repo")
    times = history.times
    args = [f"--session={times[i]}" for i in (0, 2, 3)]
    proc = run_increment("remove", history.repo, *args, "--force", env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    kept = [times[1], times[4]]
    going = (times[0], times[2], times[3])
    assert_rdiff_backup_serves(
        rdiff_backup, history.repo, history.scans, kept, tmp_path, going=going
    )
    assert_sessions_restore(history, kept, tmp_path / "ours")
    before = repository_files(history.repo)
    assert before  # and rdiff-backup's own regress finds nothing to undo
    rb(rdiff_backup, "regress", history.repo)
    assert repository_files(history.repo) == before
