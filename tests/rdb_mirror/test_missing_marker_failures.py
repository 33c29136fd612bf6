"""A later session's new small file whose ``.missing`` increment cannot be made (its name taken,
no space left, its increments directory cannot be made) fails alone, as on the general path:
a line in error_log naming it, exit status 3, the session committed without it, the other
files backed up, the previous session restoring exactly, and the next backup taking it."""

from __future__ import annotations

import errno
import gzip
import os
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import (
    differences,
    restore_with_rdiff_backup,
    restored,
    run_mirror,
    session_time,
)

from rdb_clikit.run import run
from rdb_fastio import NewFile, write_new_files
from rdb_format.timestamps import parse_timestring
from rdb_increment import writer as increment_writer
from rdb_mirror import BackupOptions, backup, repo_side
from rdb_mirror.cli import app

NEW = [f"new-{n:03}" for n in range(40)]  # one batch of new small files
VICTIM = "new-017"


def _first_backup(tmp_path: Path) -> tuple[Path, Path, trees.Snapshot]:
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=31)
    first = run_mirror("--current-time", session_time(0), src, repo)
    assert first.returncode == 0, first.stderr
    return src, repo, trees.scan(src)


def _add_new_files(src: Path) -> None:
    for n, name in enumerate(NEW):
        (src / name).write_bytes(os.urandom(n * 3 + 1))
    (src / "nd").mkdir()  # a new directory: its files' increments go to a new directory
    for n in range(5):
        (src / "nd" / f"f{n}").write_bytes(b"in a new directory %d\n" % n)


def _time_string(repo: Path, when: int) -> str:
    data = repo / "rdiff-backup-data"
    (marker,) = data.glob("current_mirror.*.data")
    text = marker.name.removeprefix("current_mirror.").removesuffix(".data")
    assert parse_timestring(text) == when
    return text


def _error_log(repo: Path, when: str) -> str:
    (log,) = (repo / "rdiff-backup-data").glob(f"error_log.{when}.data*")
    data = log.read_bytes()
    return (gzip.decompress(data) if log.suffix == ".gz" else data).decode()


def _without(snapshot: trees.Snapshot, *names: str) -> trees.Snapshot:
    gone = {tuple(os.fsencode(name).split(b"/")) for name in names}
    return {index: entry for index, entry in snapshot.items() if index not in gone}


def _increment_files(repo: Path) -> int:
    """The increments on disk: under increments/, and the root's increments.T.dir."""
    data = repo / "rdiff-backup-data"
    inside = sum(1 for path in (data / "increments").rglob("*") if path.is_file())
    return inside + len(list(data.glob("increments.*")))


def _no_space_in_c(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make the batches' C calls fail the file named ``name`` (a marker) with ENOSPC."""
    real = write_new_files

    def no_space(files: list[NewFile]) -> list[OSError | None]:
        results: list[OSError | None] = []
        for file in files:
            if os.path.basename(file.target) == os.fsencode(name):
                results.append(OSError(errno.ENOSPC, "No space left on device"))
            else:
                results.extend(real([file]))
        return results

    monkeypatch.setattr(repo_side, "write_new_files", no_space)


@pytest.mark.parametrize("obstacle", ["marker", "increments-dir"])
def test_a_new_file_whose_missing_marker_cannot_be_made_fails_alone(
    tmp_path: Path, obstacle: str
) -> None:
    """``marker``: a directory already has the name of VICTIM's ``.missing`` (made in C after
    the file is in the mirror); ``increments-dir``: a file is where the increments directory
    of the new directory ``nd`` would be made (planned on the session thread)."""
    src, repo, before = _first_backup(tmp_path)
    t0 = _time_string(repo, session_time(0))
    _add_new_files(src)
    increments = repo / "rdiff-backup-data" / "increments"
    if obstacle == "marker":
        in_the_way = increments / f"{VICTIM}.{t0}.missing"
        in_the_way.mkdir()
        failed = [VICTIM]
    else:
        in_the_way = increments / "nd"
        in_the_way.write_bytes(b"not a directory\n")
        # nd itself fails (the general path for directories), and each of its files
        failed = ["nd", *(f"nd/f{n}" for n in range(5))]
    second = run_mirror("--current-time", session_time(1), src, repo)
    assert second.returncode == 3, second.stderr
    assert "Traceback" not in second.stderr
    t1 = _time_string(repo, session_time(1))  # committed: the only current_mirror marker
    logged = [line.split("'")[1] for line in _error_log(repo, t1).splitlines()]
    assert logged == failed
    for name in failed:
        assert f"UpdateError: {name!r} " in second.stderr
    # the mirror, and the session's metadata, have everything but the failed files (the
    # general path for a new directory leaves it, empty, in the mirror, not in the metadata)
    now = trees.scan(src)
    expected = _without(now, *failed)
    mirror = trees.scan(repo)
    if obstacle == "increments-dir":
        assert list((repo / "nd").iterdir()) == []
        mirror = _without(mirror, "nd")
    assert differences(expected, mirror) == []
    assert differences(expected, restored(repo, session_time(1), tmp_path / "r1")) == []
    for name in NEW:
        if name not in failed:
            (marker,) = increments.glob(f"{name}.*")
            assert marker.name == f"{name}.{t0}.missing"
    # the previous session restores as it was (no file of this session in it)
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0")) == []
    # the next backup takes the failed files (their increments now named after T1)
    if in_the_way.is_dir():
        in_the_way.rmdir()
    else:
        in_the_way.unlink()
    third = run_mirror("--current-time", session_time(2), src, repo)
    assert third.returncode == 0, third.stderr
    assert differences(now, trees.scan(repo)) == []
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0b")) == []
    r1 = restored(repo, session_time(1), tmp_path / "r1b")
    assert differences(expected, r1) == []


def test_no_space_for_a_missing_marker_fails_that_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC for VICTIM's ``.missing`` only, in C and in Python (the CLI in this process):
    exit status 3, error_log names it and says why, the session's statistics count the
    increments really made."""
    src, repo, before = _first_backup(tmp_path)
    t0 = _time_string(repo, session_time(0))
    _add_new_files(src)
    victim = f"{VICTIM}.{t0}.missing"
    _no_space_in_c(monkeypatch, victim)
    real_create = increment_writer.IncrementWriter._create_final

    def create_final(target: Path) -> int:
        if target.name == victim:
            raise increment_writer.creation_error(
                target, OSError(errno.ENOSPC, "No space left on device")
            )
        return real_create(target)

    monkeypatch.setattr(
        increment_writer.IncrementWriter, "_create_final", staticmethod(create_final)
    )
    argv = ["--current-time", str(session_time(1)), str(src), str(repo)]
    assert run(app, prog="rdb-mirror", argv=argv) == 3
    t1 = _time_string(repo, session_time(1))
    (line,) = _error_log(repo, t1).splitlines()
    assert line.startswith(f"UpdateError: {VICTIM!r} ") and "No space left on device" in line
    expected = _without(trees.scan(src), VICTIM)
    assert differences(expected, trees.scan(repo)) == []
    assert not (repo / "rdiff-backup-data" / "increments" / victim).exists()
    stats = (repo / "rdiff-backup-data" / f"session_statistics.{t1}.data").read_text()
    counted = dict(line.split(" ", 1) for line in stats.splitlines())
    assert int(counted["IncrementFiles"].split()[0]) == _increment_files(repo)
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0")) == []
    monkeypatch.undo()
    third = run_mirror("--current-time", session_time(2), src, repo)
    assert third.returncode == 0, third.stderr
    assert differences(trees.scan(src), trees.scan(repo)) == []


def test_a_new_file_that_cannot_be_taken_back_ends_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VICTIM's ``.missing`` fails in C and VICTIM cannot be removed from the mirror again:
    the session ends uncommitted (exit status 1), and the next run rolls it back."""
    src, repo, before = _first_backup(tmp_path)
    t0 = _time_string(repo, session_time(0))
    _add_new_files(src)
    _no_space_in_c(monkeypatch, f"{VICTIM}.{t0}.missing")
    real_unlink = os.unlink
    stuck = os.fsencode(repo / VICTIM)

    def unlink(path: str | bytes | os.PathLike[str], *, dir_fd: int | None = None) -> None:
        if os.fsencode(path) == stuck:
            raise OSError(errno.EIO, "Input/output error")
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    argv = ["--current-time", str(session_time(1)), str(src), str(repo)]
    assert run(app, prog="rdb-mirror", argv=argv) == 1
    monkeypatch.undo()
    assert len(list((repo / "rdiff-backup-data").glob("current_mirror.*.data"))) == 2
    # (--force: the session's pid, in the marker, is this process's, still running)
    again = run_mirror("--force", "--current-time", session_time(2), src, repo)
    assert again.returncode == 0, again.stderr
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0")) == []


def test_a_marker_the_batch_could_not_make_is_made_by_the_general_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C call fails VICTIM's ``.missing`` once (a passing ENOSPC): the general path makes
    it, and the session ends as if nothing had happened."""
    src, repo, before = _first_backup(tmp_path)
    t0 = _time_string(repo, session_time(0))
    _add_new_files(src)
    victim = f"{VICTIM}.{t0}.missing"
    _no_space_in_c(monkeypatch, victim)
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert result.errors == []
    assert differences(trees.scan(src), trees.scan(repo)) == []
    marker = repo / "rdiff-backup-data" / "increments" / victim
    assert marker.stat().st_size == 0
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0")) == []


def test_a_marker_that_cannot_be_planned_sends_its_file_the_general_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning VICTIM's ``.missing`` fails once (on the session thread, as when its
    increments directory cannot be made): the general path writes the file and its marker."""
    src, repo, before = _first_backup(tmp_path)
    t0 = _time_string(repo, session_time(0))
    _add_new_files(src)
    real_plan = increment_writer.IncrementWriter.plan_missing_marker
    planned: list[bytes] = []

    def plan_missing_marker(
        self: increment_writer.IncrementWriter, index: tuple[bytes, ...], **kwargs: int | None
    ) -> increment_writer.PlannedMarker | None:
        planned.append(b"/".join(index))
        if index == (VICTIM.encode(),):
            raise increment_writer.IncrementError("cannot create increments directory: EIO")
        return real_plan(self, index, **kwargs)

    monkeypatch.setattr(
        increment_writer.IncrementWriter, "plan_missing_marker", plan_missing_marker
    )
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert VICTIM.encode() in planned
    assert result.errors == []
    assert differences(trees.scan(src), trees.scan(repo)) == []
    marker = repo / "rdiff-backup-data" / "increments" / f"{VICTIM}.{t0}.missing"
    assert marker.stat().st_size == 0
    assert differences(before, restored(repo, session_time(0), tmp_path / "r0")) == []


@pytest.mark.interop
def test_rdiff_backup_restores_the_session_before_a_failed_marker(
    tmp_path: Path, rdiff_backup: str
) -> None:
    src, repo, before = _first_backup(tmp_path)
    t0 = _time_string(repo, session_time(0))
    _add_new_files(src)
    increments = repo / "rdiff-backup-data" / "increments"
    (increments / f"{VICTIM}.{t0}.missing").mkdir()
    (increments / "nd").write_bytes(b"not a directory\n")
    second = run_mirror("--current-time", session_time(1), src, repo)
    assert second.returncode == 3, second.stderr
    (increments / f"{VICTIM}.{t0}.missing").rmdir()
    (increments / "nd").unlink()
    theirs = restore_with_rdiff_backup(rdiff_backup, repo, session_time(0), tmp_path / "theirs")
    assert differences(before, theirs) == []
    third = run_mirror("--current-time", session_time(2), src, repo)
    assert third.returncode == 0, third.stderr
    theirs = restore_with_rdiff_backup(rdiff_backup, repo, session_time(0), tmp_path / "again")
    assert differences(before, theirs) == []
