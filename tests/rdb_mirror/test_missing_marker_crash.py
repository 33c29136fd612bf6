"""A backup killed (SIGKILL) in the middle of taking a new file back out of the mirror after
its ``.missing`` could not be made: just before the file is removed again, or just after.
Either way the next run (or ``--regress``, or rdiff-backup 2.2.7's own regress) rolls the
session back and every earlier session restores exactly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import (
    differences,
    restore_with_rdiff_backup,
    restored,
    run_mirror,
    run_rdiff_backup,
    session_time,
)
from tests.rdb_mirror.test_missing_marker_failures import (
    NEW,
    VICTIM,
    _add_new_files,
    _first_backup,
    _time_string,
)

# The session, in a child: the C call fails VICTIM's marker (ENOSPC), and the child kills
# itself when VICTIM, taken back, is about to be removed ("before") or has just been ("after").
_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import pytest
    from rdb_mirror import BackupOptions, backup
    from tests.rdb_mirror.test_missing_marker_failures import _no_space_in_c

    src, repo, when, name, marker, when_kill = sys.argv[1:]
    victim = os.fsencode(os.path.join(repo, name))
    _no_space_in_c(pytest.MonkeyPatch(), marker)
    real_unlink = os.unlink

    def unlink(path, *, dir_fd=None):
        if os.fsencode(path) == victim and when_kill == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_unlink(path, dir_fd=dir_fd)
        if os.fsencode(path) == victim:
            os.kill(os.getpid(), signal.SIGKILL)

    os.unlink = unlink
    backup(src, repo, BackupOptions(current_time=int(when)))
    """
)
ROOT = Path(__file__).resolve().parents[2]


def _killed_session(tmp_path: Path, when_kill: str) -> tuple[Path, Path, trees.Snapshot]:
    src, repo, before = _first_backup(tmp_path)
    t0 = _time_string(repo, session_time(0))
    _add_new_files(src)
    marker = f"{VICTIM}.{t0}.missing"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, src, repo, str(session_time(1)), VICTIM, marker, when_kill],
        cwd=ROOT,  # for tests.rdb_mirror
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert len(list((repo / "rdiff-backup-data").glob("current_mirror.*.data"))) == 2
    assert (repo / VICTIM).exists() == (when_kill == "before")
    return src, repo, before


@pytest.mark.parametrize("when_kill", ["before", "after"])
def test_killed_while_taking_a_new_file_back(tmp_path: Path, when_kill: str) -> None:
    src, repo, before = _killed_session(tmp_path, when_kill)
    regress = run_mirror("--regress", repo)
    assert regress.returncode == 0, regress.stderr
    assert differences(before, trees.scan(repo)) == []
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0")) == []
    again = run_mirror("--current-time", session_time(2), src, repo)
    assert again.returncode == 0, again.stderr
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0b")) == []
    for name in NEW:
        assert (repo / name).exists()


@pytest.mark.interop
@pytest.mark.parametrize("when_kill", ["before", "after"])
def test_rdiff_backup_regresses_a_session_killed_taking_a_file_back(
    tmp_path: Path, when_kill: str, rdiff_backup: str
) -> None:
    src, repo, before = _killed_session(tmp_path, when_kill)
    theirs = run_rdiff_backup(rdiff_backup, "regress", str(repo))
    assert theirs.returncode in (0, 2), theirs.stderr  # 2: "emitted warnings" (the regress)
    # rdiff-backup's regress restores contents and attributes but not the mirror's hard links
    assert differences(before, trees.scan(repo), links=False) == []
    theirs_r0 = restore_with_rdiff_backup(rdiff_backup, repo, session_time(0), tmp_path / "t0")
    assert differences(before, theirs_r0) == []
    # and rdb-mirror goes on from rdiff-backup's regress
    again = run_mirror("--current-time", session_time(2), src, repo)
    assert again.returncode == 0, again.stderr
    assert differences(trees.scan(src), trees.scan(repo)) == []
    theirs_r0 = restore_with_rdiff_backup(rdiff_backup, repo, session_time(0), tmp_path / "t0b")
    assert differences(before, theirs_r0) == []
