"""Names too long for the destination once quoted (``long_filename_data``, format.md §1.6).

With ``--chars-to-quote A-Z`` a 250-byte name of many capitals becomes far more than 255 bytes:
its data is kept as ``rdiff-backup-data/long_filename_data/N`` (``AlternateMirrorName N``),
its increments as ``long_filename_data/N.T.*``; a name that fits but leaves no room for an
increment suffix gets ``AlternateIncrementName``. rdiff-backup 2.2.7 stores them the same way,
and each tool continues the other's repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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

from rdb_format.exitcodes import ExitCode
from rdb_format.increments import parse_increment_name
from rdb_format.metadata import Record, path_key
from rdb_format.metadata_diff import records_at
from rdb_format.quoting import read_quoting
from rdb_mirror import BackupOptions, backup
from rdb_mirror.check import check

INCREMENT = str(Path(sys.executable).parent / "rdb-increment")

#: 250 bytes, 60 of them quoted (``;076``): 430 bytes in the mirror
LONG = b"L" * 60 + b"n" * 190
#: 100 capitals, a symlink: 400 bytes quoted
LONG_LINK = b"S" * 100
#: fits quoted (240 bytes) but not with an increment's suffix: AlternateIncrementName
TIGHT = b"t" * 200 + b"T" * 10
#: a directory of 100 capitals: it and every entry below it get a number of their own
LONG_DIR = b"D" * 100


def _make_source(src: Path, *, long_dir: bool = True) -> None:
    (src / "dir").mkdir(parents=True, exist_ok=True)
    (src / os.fsdecode(LONG)).write_bytes(b"long name, first version\n" * 300)
    (src / "dir" / os.fsdecode(LONG)).write_bytes(b"another long one\n")
    os.symlink("dir", os.path.join(os.fsencode(src), LONG_LINK))
    (src / "dir" / os.fsdecode(TIGHT)).write_bytes(b"tight\n" * 50)
    (src / "Plain").write_bytes(b"plain\n")
    for path in (src / os.fsdecode(LONG), src / "dir" / os.fsdecode(TIGHT)):
        os.utime(path, (1_600_000_000, 1_600_000_000))
    if long_dir:
        directory = src / os.fsdecode(LONG_DIR)
        (directory / "sub").mkdir(parents=True, exist_ok=True)
        (directory / "f").write_bytes(b"in a long directory\n" * 20)
        (directory / "sub" / "y").write_bytes(b"deeper\n")
        os.utime(directory / "f", (1_600_000_000, 1_600_000_000))


def _mutate(src: Path, n: int) -> None:
    """1: the long file changed (and one in the long directory); 2: it is deleted (and the
    tight one changed, one below the long directory deleted); 3: it is back, the long
    directory gone."""
    long_file = src / os.fsdecode(LONG)
    long_dir_path = src / os.fsdecode(LONG_DIR)
    long_dir = long_dir_path if long_dir_path.exists() else None
    if n == 1:
        long_file.write_bytes(b"long name, second version\n" * 300 + b"more\n")
        os.utime(long_file, (1_600_000_100, 1_600_000_100))
        if long_dir is not None:
            (long_dir / "f").write_bytes(b"in a long directory, changed\n" * 20)
            os.utime(long_dir / "f", (1_600_000_100, 1_600_000_100))
    elif n == 2:
        long_file.unlink()
        (src / "dir" / os.fsdecode(TIGHT)).write_bytes(b"tight, changed\n" * 50)
        if long_dir is not None:
            (long_dir / "sub" / "y").unlink()
    elif n == 3:
        long_file.write_bytes(b"long name, third version\n")
        if long_dir is not None:
            shutil.rmtree(long_dir)


def _current(repo: Path) -> dict[tuple[bytes, ...], Record]:
    data = repo / "rdiff-backup-data"
    quoting = read_quoting(data)
    return {path_key(r.path): r for r in records_at(data, _newest(repo), quoting=quoting)}


def _newest(repo: Path) -> int:
    from rdb_format.layout import Layout
    from rdb_format.repository import read_state

    when = read_state(Layout(repo)).current_time
    assert when is not None
    return when


def _every_session_restores_with_both(
    scans: list[trees.Snapshot], repo: Path, rdiff_backup: str, tmp_path: Path
) -> None:
    """Each session of ``repo`` restores as ``scans`` says, by rdiff-backup and rdb-restore."""
    for n, scan in enumerate(scans):
        theirs = restore_with_rdiff_backup(rdiff_backup, repo, session_time(n), tmp_path / f"rb{n}")
        assert differences(scan, theirs) == [], f"rdiff-backup, session {n}"
        assert differences(scan, restored(repo, session_time(n), tmp_path / f"o{n}")) == [], (
            f"rdb-restore, session {n}"
        )


def test_a_long_quoted_name_goes_to_long_filename_data(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _make_source(src)
    scans = [trees.scan(src)]
    result = backup(src, repo, BackupOptions(current_time=session_time(0), chars_to_quote=b"A-Z"))
    assert result.errors == []
    data = repo / "rdiff-backup-data"
    assert (data / "chars_to_quote").read_bytes() == b"A-Z"
    records = _current(repo)
    number = records[(LONG,)].alternate_mirror_name
    assert number is not None
    assert (data / "long_filename_data" / str(number)).read_bytes() == (
        b"long name, first version\n" * 300
    )
    assert records[(LONG_LINK,)].alternate_mirror_name is not None
    assert records[(b"dir", TIGHT)].alternate_increment_name is not None
    long_dirs = [records[key].alternate_mirror_name for key in records if key[:1] == (LONG_DIR,)]
    assert len(long_dirs) == 4 and None not in long_dirs  # the directory and all below it
    assert (data / "long_filename_data" / str(records[(LONG_DIR,)].alternate_mirror_name)).is_dir()
    assert (repo / "dir" / (b"t" * 200 + b";084" * 10).decode()).exists()
    assert not any(len(name) > 255 for name in os.listdir(os.fsencode(repo)))
    for n in (1, 2, 3):
        _mutate(src, n)
        scans.append(trees.scan(src))
        result = backup(src, repo, BackupOptions(current_time=session_time(n)))
        assert result.errors == []
        assert differences(scans[-1], restored(repo, session_time(n), tmp_path / f"r{n}")) == []
        if n == 1:  # the reverse diff of the changed file lives beside its data
            names = os.listdir(data / "long_filename_data")
            assert any(
                name.startswith(f"{number}.") and name.endswith(".diff.gz") for name in names
            )
        if n == 2:  # deleted: the data is gone, its snapshot increment keeps it
            assert not (data / "long_filename_data" / str(number)).exists()
            assert (LONG,) not in _current(repo)
    assert _current(repo)[(LONG,)].alternate_mirror_name not in (None, number)  # a new number
    for n, scan in enumerate(scans):
        assert differences(scan, restored(repo, session_time(n), tmp_path / f"a{n}")) == []
    assert check(repo).problems == []
    listing = subprocess.run(
        [INCREMENT, "list", "--json", str(repo), os.fsdecode(LONG)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count('"time"') >= 4
    sizes = subprocess.run(
        [INCREMENT, "list", "--size", "--json", str(repo), os.fsdecode(LONG)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert sizes.returncode == 0, sizes.stderr
    rows = json.loads(sizes.stdout)["sessions"]
    assert [row["time"] for row in rows] == [session_time(n) for n in range(4)]
    assert rows[-1]["current_mirror"]
    assert rows[-1]["size"] == len(b"long name, third version\n")  # long_filename_data/N
    # T0: the diff, T1: the snapshot of the deleted file, T2: its .missing (0 bytes)
    assert rows[0]["size"] > 0 and rows[1]["size"] > 0 and rows[2]["size"] == 0


@pytest.mark.interop
@pytest.mark.parametrize("first", ["file", "dir"])
def test_a_long_name_that_changes_type_keeps_every_session(
    first: str, rdiff_backup: str, tmp_path: Path
) -> None:
    """A long-named file replaced by a directory of that name, and back: both live in
    long_filename_data/N (the same N); the old one's data must go to its increment before
    the new one takes the place, so every session restores (with rdiff-backup too)."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    long_path = src / os.fsdecode(LONG)

    def make(kind: str) -> None:
        if kind == "file":
            long_path.write_bytes(b"the file's only copy\n")
        else:
            long_path.mkdir()
            (long_path / "child").write_bytes(b"child\n")

    make(first)
    scans = [trees.scan(src)]
    options = BackupOptions(current_time=session_time(0), chars_to_quote=b"A-Z")
    assert backup(src, repo, options).errors == []
    for n, kind in enumerate(["dir", "file"] if first == "file" else ["file", "dir"], 1):
        if long_path.is_dir():
            (long_path / "child").unlink()
            long_path.rmdir()
        else:
            long_path.unlink()
        make(kind)
        scans.append(trees.scan(src))
        assert backup(src, repo, BackupOptions(current_time=session_time(n))).errors == []
        assert check(repo).problems == []
    _every_session_restores_with_both(scans, repo, rdiff_backup, tmp_path)


def test_regress_removes_a_long_name_the_failed_session_added(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "dir").mkdir(parents=True)
    (src / "Plain").write_bytes(b"plain\n")
    scan = trees.scan(src)
    proc = run_mirror("--chars-to-quote", "A-Z", "--current-time", session_time(0), src, repo)
    assert proc.returncode == 0, proc.stderr
    _make_source(src)  # adds the long names
    proc = run_mirror(
        "--current-time",
        session_time(1),
        src,
        repo,
        env={"RDB_MIRROR_TEST_KILL_AT": "before-commit"},
    )
    assert proc.returncode == -9
    long_dir = repo / "rdiff-backup-data" / "long_filename_data"
    assert [name for name in os.listdir(long_dir) if name.isdigit()]  # written, not committed
    proc = run_mirror("--regress", repo)
    assert proc.returncode == 0, proc.stderr
    assert [name for name in os.listdir(long_dir) if name.isdigit()] == []
    assert sorted(os.listdir(repo)) == [";080lain", "dir", "rdiff-backup-data"]
    assert os.listdir(repo / "dir") == []
    assert differences(scan, restored(repo, session_time(0), tmp_path / "r0")) == []
    proc = run_mirror("--current-time", session_time(2), src, repo)
    assert proc.returncode == 0, proc.stderr
    assert differences(trees.scan(src), restored(repo, session_time(2), tmp_path / "r")) == []


@pytest.mark.parametrize("point", ["metadata-written", "before-commit"])
def test_regress_finds_the_quoted_increments_of_long_names(point: str, tmp_path: Path) -> None:
    """With chars_to_quote, increment names in long_filename_data are quoted too (the time
    string's T and Z): regress must unquote them to find them. A killed session that deleted
    and changed long-named files: regress brings their previous versions back from those
    increments and removes them; the next session then writes its own, and every session
    restores (a regress that did not see them lost the deleted file's data and left
    increments that failed the next backup: "increment already exists")."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    _make_source(src)
    first = trees.scan(src)
    proc = run_mirror("--chars-to-quote", "A-Z", "--current-time", session_time(0), src, repo)
    assert proc.returncode == 0, proc.stderr
    (src / os.fsdecode(LONG)).unlink()
    (src / os.fsdecode(LONG_DIR) / "f").write_bytes(b"in a long directory, changed\n" * 20)
    env = {"RDB_MIRROR_TEST_KILL_AT": point}
    proc = run_mirror("--current-time", session_time(1), src, repo, env=env)
    assert proc.returncode == -9, proc.stderr
    long_dir = repo / "rdiff-backup-data" / "long_filename_data"
    quoted = [name for name in os.listdir(long_dir) if ";084" in name]
    assert quoted  # the failed session's increments, their time strings quoted
    proc = run_mirror("--regress", repo)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    assert [name for name in os.listdir(long_dir) if ";084" in name] == []
    assert check(repo).problems == []
    assert differences(first, restored(repo, session_time(0), tmp_path / "r0")) == []
    second = trees.scan(src)
    proc = run_mirror("--current-time", session_time(2), src, repo)
    assert proc.returncode == 0, proc.stderr
    assert differences(first, restored(repo, session_time(0), tmp_path / "r0b")) == []
    assert differences(second, restored(repo, session_time(2), tmp_path / "r2")) == []


def test_chars_to_quote_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    bad = run_mirror("--chars-to-quote", "z-a", src, repo)
    assert bad.returncode == ExitCode.USAGE
    assert "--chars-to-quote" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not repo.exists()
    high = run_mirror("--chars-to-quote", "\\200-\\377", src, repo)
    assert high.returncode == ExitCode.USAGE and not repo.exists()
    assert run_mirror("--current-time", session_time(0), src, repo).returncode == 0
    other = run_mirror("--chars-to-quote", "A-Z", "--current-time", session_time(1), src, repo)
    assert other.returncode == ExitCode.USAGE
    assert "cannot change" in other.stderr


@pytest.mark.interop
@pytest.mark.parametrize("first", ["rdb-mirror", "rdiff-backup"])
def test_both_tools_continue_each_other(first: str, rdiff_backup: str, tmp_path: Path) -> None:
    """Sessions alternate between the tools (the long file changed, deleted, back again);
    every session restores bit-exact with both restorers, and rdiff-backup verifies. (No long
    directory here: rdiff-backup 2.2.7 itself fails with ENAMETOOLONG when it continues a
    repository, its own included, in which an entry below a long-named directory changed.)"""
    src, repo = tmp_path / "src", tmp_path / "repo"
    _make_source(src, long_dir=False)
    scans = []
    for n in range(4):
        _mutate(src, n)
        scans.append(trees.scan(src))
        ours = (n % 2 == 0) == (first == "rdb-mirror")
        quote = ["--chars-to-quote", "A-Z"] if n == 0 else []
        when = str(session_time(n))
        if ours:
            proc = run_mirror(*quote, "--current-time", when, src, repo)
        else:
            proc = run_rdiff_backup(
                rdiff_backup, *quote, "--current-time", when, "backup", src, repo
            )
        assert proc.returncode == 0, proc.stderr
        if n == 0:
            assert _current(repo)[(LONG,)].alternate_mirror_name is not None
    verify = run_rdiff_backup(rdiff_backup, "verify", repo)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    _every_session_restores_with_both(scans, repo, rdiff_backup, tmp_path)
    assert check(repo).problems == []
    # rdb-increment remove drops the two oldest sessions, long names' increments included
    remove = subprocess.run(
        [INCREMENT, "remove", "--older-than", str(session_time(2)), "--force", str(repo)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert remove.returncode == 0, remove.stderr
    verify = run_rdiff_backup(rdiff_backup, "verify", repo)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    for n in (2, 3):
        theirs = restore_with_rdiff_backup(rdiff_backup, repo, session_time(n), tmp_path / f"x{n}")
        assert differences(scans[n], theirs) == [], f"rdiff-backup after remove, session {n}"
    assert check(repo).problems == []
    long_dir = repo / "rdiff-backup-data" / "long_filename_data"
    quoting = read_quoting(repo / "rdiff-backup-data")
    names = [parse_increment_name(quoting.unquote(n)) for n in os.listdir(os.fsencode(long_dir))]
    assert [n.time for n in names if n is not None and n.time < session_time(2)] == []


@pytest.mark.interop
@pytest.mark.parametrize("first", ["rdb-mirror", "rdiff-backup"])
def test_long_directories(first: str, rdiff_backup: str, tmp_path: Path) -> None:
    """A directory whose quoted name is too long, and every entry below it, stored flat in
    long_filename_data as rdiff-backup 2.2.7 stores them: rdb-mirror continues rdiff-backup's
    first session (or makes them all) over changes, deletions and the directory's removal;
    every session restores with both restorers."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    _make_source(src)
    scans = []
    for n in range(4):
        _mutate(src, n)
        scans.append(trees.scan(src))
        quote = ["--chars-to-quote", "A-Z"] if n == 0 else []
        when = str(session_time(n))
        if n == 0 and first == "rdiff-backup":
            proc = run_rdiff_backup(
                rdiff_backup, *quote, "--current-time", when, "backup", src, repo
            )
        else:
            proc = run_mirror(*quote, "--current-time", when, src, repo)
        assert proc.returncode == 0, proc.stderr
    verify = run_rdiff_backup(rdiff_backup, "verify", "--at", str(session_time(0)), repo)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    _every_session_restores_with_both(scans, repo, rdiff_backup, tmp_path)
    assert check(repo).problems == []
