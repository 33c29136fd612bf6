"""``rdb-increment remove``: removing the oldest sessions, its command line and bad input."""

from __future__ import annotations

import json
import os
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
    increment_times,
    repository_files,
    run_increment,
)
from tests.rdb_increment.removal import utc_zone as utc_zone  # the fixture

from rdb_format.layout import Layout
from rdb_format.locking import WriterLock
from rdb_format.repository import read_state
from rdb_increment import RemoveOptions, RetentionPolicy, remove_sessions

TIMES = [T0 + n * HOUR for n in range(6)]


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> History:
    return build_history(tmp_path_factory.mktemp("remove"), TIMES, seed=21)


@pytest.fixture
def history(master: History, tmp_path: Path) -> History:
    """A private copy of the six-session repository."""
    return master.copy(tmp_path / "repo")


def stamp(when: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def test_older_than_removes_the_old_sessions_and_the_rest_restores(
    history: History, tmp_path: Path
) -> None:
    proc = run_increment("remove", history.repo, "--older-than", stamp(TIMES[3]), "--force")
    assert proc.returncode == 0, proc.stderr
    assert history.sessions() == tuple(TIMES[3:])
    assert proc.stdout.splitlines()[0] == "removed 3 sessions:"
    assert stamp(TIMES[0]) in proc.stdout and stamp(TIMES[3]) not in proc.stdout.split("kept")[0]
    assert_sessions_restore(history, TIMES[3:], tmp_path / "restored")
    assert_tidy(history.repo)
    # nothing of the removed sessions is left: no increment, no data file, no long name
    for times in increment_times(history.repo).values():
        assert min(times) >= TIMES[3]
    data = os.listdir(Layout(history.repo).data_dir)
    assert not [n for n in data if any(stamp(t) in n for t in TIMES[:3])]


def test_long_name_increments_of_removed_sessions_go_too(history: History) -> None:
    long_dir = Layout(history.repo).long_filename_dir
    before = [n for n in os.listdir(long_dir) if stamp(TIMES[0]) in n]
    assert before, "the tree's 255-byte name must have increments in long_filename_data"
    remove_sessions(history.repo, RetentionPolicy(older_than=TIMES[1]))
    assert not [n for n in os.listdir(long_dir) if stamp(TIMES[0]) in n]


def test_removing_one_session_needs_no_force_but_more_do(history: History) -> None:
    before = repository_files(history.repo)
    proc = run_increment("remove", history.repo, "--older-than", stamp(TIMES[2]))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "would remove 2 sessions" in proc.stderr and "--force" in proc.stderr
    assert repository_files(history.repo) == before
    proc = run_increment("remove", history.repo, "--older-than", stamp(TIMES[1]))
    assert proc.returncode == 0, proc.stderr
    assert history.sessions() == tuple(TIMES[1:])


def test_dry_run_lists_what_would_go_and_changes_nothing(history: History) -> None:
    before = repository_files(history.repo)
    proc = run_increment("remove", history.repo, "--keep", "2", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "would remove 4 sessions:"
    assert [line.split()[0] for line in lines[1:5]] == [stamp(t) for t in TIMES[:4]]
    assert repository_files(history.repo) == before


def test_json_document(history: History) -> None:
    proc = run_increment("remove", "--json", history.repo, "--older-than", "4B", "--force")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert [s["time"] for s in document["removed"]] == [TIMES[0]]
    assert [s["time"] for s in document["kept"]] == TIMES[1:]
    assert document["kept"][0]["time_string"] == stamp(TIMES[1])
    assert document["files_deleted"] > 0 and document["bytes_freed"] > 0
    assert document["dry_run"] is False and document["resumed"] is False


def test_time_older_than_every_session_removes_nothing(history: History) -> None:
    before = repository_files(history.repo)
    proc = run_increment("remove", history.repo, "--older-than", str(TIMES[0] - 1))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"nothing to remove: no session is older than {stamp(TIMES[0] - 1)}\n"
    assert repository_files(history.repo) == before


def test_time_newer_than_every_session_keeps_the_current_one(
    history: History, tmp_path: Path
) -> None:
    proc = run_increment("remove", history.repo, "--older-than", "now")
    assert proc.returncode == 2
    assert "would remove 5 sessions" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_increment("remove", history.repo, "--older-than", "now", "--force")
    assert proc.returncode == 0, proc.stderr
    assert history.sessions() == (TIMES[-1],)
    assert_sessions_restore(history, [TIMES[-1]], tmp_path / "restored")
    # as rdiff-backup's removal does, the emptied increment tree goes entirely
    assert not Layout(history.repo).increments_dir.exists()


def test_not_a_repository(tmp_path: Path) -> None:
    proc = run_increment("remove", tmp_path, "--keep", "1")
    assert proc.returncode == 10
    assert proc.stderr.startswith(f"rdb-increment: {tmp_path}: is not a backup repository")
    assert proc.stderr.count("\n") == 1


def test_unfinished_repository_is_refused_with_the_regress_command(history: History) -> None:
    layout = Layout(history.repo)
    failed = TIMES[-1] + HOUR
    (layout.data_dir / f"current_mirror.{stamp(failed)}.data").write_bytes(b"PID 999999\n")
    before = repository_files(history.repo)
    proc = run_increment("remove", history.repo, "--older-than", "now", "--force")
    assert proc.returncode == 14
    assert f"run 'rdb-mirror --regress {history.repo}' first" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert repository_files(history.repo) == before


def test_a_locked_repository_is_refused(history: History) -> None:
    with WriterLock(Layout(history.repo), command="rdb-mirror"):
        proc = run_increment("remove", history.repo, "--keep", "1", "--force")
    assert proc.returncode == 11
    assert "rdb-mirror pid" in proc.stderr and proc.stderr.count("\n") == 1
    assert history.sessions() == tuple(TIMES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep", "2", "--older-than", "1D"], "--older-than cannot be combined with --keep"),
        ([], "say what to remove"),
        (["--older-than", "yesterday"], "cannot understand time 'yesterday'"),
        (["--session", "2001-01-01"], "no session at"),
    ],
)
def test_bad_options_are_one_line_usage_errors(
    history: History, args: list[str], message: str
) -> None:
    proc = run_increment("remove", history.repo, *args)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1


def test_removal_of_a_new_repository_does_nothing(tmp_path: Path) -> None:
    (tmp_path / "rdiff-backup-data").mkdir()
    result = remove_sessions(tmp_path, RetentionPolicy(keep_last=1))
    assert result.removed == () and result.files_deleted == 0


def test_a_second_identical_removal_finds_nothing(history: History) -> None:
    first = remove_sessions(history.repo, RetentionPolicy(keep_last=3), RemoveOptions(force=True))
    assert first.removed == tuple(TIMES[:3])
    again = remove_sessions(history.repo, RetentionPolicy(keep_last=3), RemoveOptions(force=True))
    assert again.removed == () and again.changes == 0
    assert read_state(Layout(history.repo)).sessions == tuple(TIMES[3:])
