"""A repository whose increments tree has a plain file where a directory's increments
directory must be (never made so by a backup: increments are named NAME.TIME.KIND): the backup
stops with exit 1 and one line naming that path and what to do, and commits nothing; once the
file is moved aside, the next run rolls the unfinished session back and backs up, and every
session restores exactly."""

from __future__ import annotations

from pathlib import Path

from tests.interop import trees
from tests.rdb_mirror.helpers import differences, restored, run_mirror, session_time


def test_a_file_in_the_way_of_an_increments_directory_stops_the_backup_with_a_clear_line(
    tmp_path: Path,
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "b").write_bytes(b"first\n")
    first = run_mirror("--current-time", session_time(0), src, repo)
    assert first.returncode == 0, first.stderr
    before = trees.scan(src)
    in_the_way = repo / "rdiff-backup-data" / "increments" / "sub"
    if in_the_way.exists():
        in_the_way.rmdir()
    in_the_way.write_bytes(b"not a directory\n")
    (src / "sub" / "c").write_bytes(b"new\n")  # sub changes: its .dir marker goes in increments/

    second = run_mirror("--current-time", session_time(1), src, repo)

    assert second.returncode == 1, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert str(in_the_way) in lines[0]
    assert "not a directory is in its way" in lines[0]
    assert "move it aside and run the backup again" in lines[0]
    markers = list((repo / "rdiff-backup-data").glob("current_mirror.*"))
    assert len(markers) == 2  # the session is unfinished: not committed

    in_the_way.unlink()  # as the message says
    third = run_mirror("--current-time", session_time(2), src, repo)
    assert third.returncode == 0, third.stderr
    assert "regressing" in third.stderr
    assert differences(before, restored(repo, session_time(0), tmp_path / "t0b")) == []
    assert differences(trees.scan(src), restored(repo, session_time(2), tmp_path / "t2")) == []
