"""rdiff-backup 2.2.7 reads what rdb-mirror writes, and rdb-mirror continues its repositories."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import (
    differences,
    restore_with_rdiff_backup,
    run_mirror,
    run_rdiff_backup,
    session_time,
)

from rdb_mirror import BackupOptions, backup

pytestmark = pytest.mark.interop

SESSIONS = 4


def _restore_all(exe: str, repo: Path, scans: list[trees.Snapshot], workdir: Path) -> None:
    for n, scan in enumerate(scans):
        restored = restore_with_rdiff_backup(exe, repo, session_time(n), workdir / f"at{n}")
        assert differences(scan, restored) == [], f"session {n}"


def test_rdiff_backup_restores_every_session(rdiff_backup: str, tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=21)
    scans = []
    for n in range(SESSIONS):
        if n:
            trees.mutate_tree(src, seed=200 + n)
        scans.append(trees.scan(src))
        proc = run_mirror("--current-time", session_time(n), src, repo)
        assert proc.returncode == 0, proc.stderr
    listing = run_rdiff_backup(rdiff_backup, "--parsable-output", "list", "increments", repo)
    assert listing.returncode == 0, listing.stderr
    times = [int(line.split()[0]) for line in listing.stdout.splitlines() if line.strip()]
    assert times == [session_time(n) for n in range(SESSIONS)]
    for n in range(SESSIONS):
        verify = run_rdiff_backup(rdiff_backup, "verify", "--at", str(session_time(n)), repo)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    _restore_all(rdiff_backup, repo, scans, tmp_path)


def test_continue_a_repository_rdiff_backup_made(rdiff_backup: str, tmp_path: Path) -> None:
    """Two sessions by rdiff-backup, two by rdb-mirror, one more by rdiff-backup: all restore."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=31)
    scans = []
    for n in range(5):
        if n:
            trees.mutate_tree(src, seed=300 + n)
        scans.append(trees.scan(src))
        if n in (0, 1, 4):
            proc = run_rdiff_backup(
                rdiff_backup, "--current-time", str(session_time(n)), "backup", src, repo
            )
            assert proc.returncode == 0, proc.stderr
        else:
            result = backup(src, repo, BackupOptions(current_time=session_time(n)))
            assert result.errors == []
            assert differences(scans[-1], trees.scan(repo)) == []
    verify = run_rdiff_backup(rdiff_backup, "verify", repo)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    _restore_all(rdiff_backup, repo, scans, tmp_path)


def test_touched_files_get_no_increment(rdiff_backup: str, tmp_path: Path) -> None:
    """A file whose mtime changed but whose bytes did not is a metadata-only change (as
    rdiff-backup's API 201): no increment, the mirror copy stays; every session restores."""
    import os

    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "touched").write_bytes(b"same bytes\n" * 100)
    (src / "edited").write_bytes(b"old bytes\n" * 100)
    (src / "linked").write_bytes(b"a hard link\n")
    os.link(src / "linked", src / "linked2")
    for name in ("touched", "edited", "linked"):
        os.utime(src / name, (1_600_000_000, 1_600_000_000))
    scans = [trees.scan(src)]
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    mirror_inode = os.stat(repo / "touched").st_ino
    os.utime(src / "touched", (1_650_000_000, 1_650_000_000))
    os.utime(src / "linked", (1_650_000_000, 1_650_000_000))
    (src / "edited").write_bytes(b"new bytes\n" * 100)
    os.utime(src / "edited", (1_650_000_000, 1_650_000_000))
    scans.append(trees.scan(src))
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert result.errors == []
    assert result.statistics.changed_files == 4  # touched, edited, linked, linked2
    increments = sorted(p.name for p in (repo / "rdiff-backup-data" / "increments").iterdir())
    assert [name.split(".")[0] for name in increments] == ["edited"]
    assert increments[0].endswith(".diff.gz")
    assert os.stat(repo / "touched").st_ino == mirror_inode  # not replaced
    assert os.stat(repo / "linked").st_ino == os.stat(repo / "linked2").st_ino
    assert os.stat(repo / "touched").st_mtime == 1_650_000_000
    assert differences(scans[-1], trees.scan(repo)) == []
    verify = run_rdiff_backup(rdiff_backup, "verify", "--at", str(session_time(0)), repo)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    _restore_all(rdiff_backup, repo, scans, tmp_path)


def test_a_case_insensitive_destination_gets_quoting(
    rdiff_backup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new repository on a destination that folds case (probe injected: no such file system
    here) quotes A-Z as rdiff-backup 2.2.7 would; rdiff-backup lists, verifies and restores
    it, and later sessions keep the quoting."""
    from rdb_mirror import session
    from rdb_mirror.fsnames import NameSupport

    monkeypatch.setattr(session, "probe_names", lambda directory: NameSupport(case_sensitive=False))
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "Sub" / "lower").mkdir(parents=True)
    (src / "Sub" / "X").write_bytes(b"capitals\n")
    (src / "Sub" / "lower" / "Mixed.TXT").write_bytes(b"mixed\n" * 500)
    (src / "semi;colon").write_bytes(b"quoted too\n")
    os.symlink("Sub/X", src / "Link")
    os.link(src / "Sub" / "X", src / "Hard")
    scans = [trees.scan(src)]
    result = backup(src, repo, BackupOptions(current_time=session_time(0)))
    assert result.errors == []
    assert (repo / "rdiff-backup-data" / "chars_to_quote").read_bytes() == b"A-Z;"
    assert (repo / ";083ub" / ";088").read_bytes() == b"capitals\n"
    assert (repo / "semi;059colon").exists()
    assert not (repo / "Sub").exists()
    (src / "Sub" / "X").write_bytes(b"capitals, changed\n")
    os.utime(src / "Sub" / "X", (1_650_000_000, 1_650_000_000))
    (src / "Sub" / "lower" / "Mixed.TXT").unlink()
    (src / "New").write_bytes(b"new\n")
    scans.append(trees.scan(src))
    result = backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert result.errors == []
    data = repo / "rdiff-backup-data"
    assert any(p.name.startswith(";088.") for p in (data / "increments" / ";083ub").iterdir())
    assert any(";084" in p.name for p in data.glob("current_mirror.*"))  # the time's T quoted
    listing = run_rdiff_backup(rdiff_backup, "--parsable-output", "list", "increments", repo)
    assert listing.returncode == 0, listing.stderr
    assert [int(line.split()[0]) for line in listing.stdout.splitlines() if line.strip()] == [
        session_time(0),
        session_time(1),
    ]
    for n in range(2):
        verify = run_rdiff_backup(rdiff_backup, "verify", "--at", str(session_time(n)), repo)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    _restore_all(rdiff_backup, repo, scans, tmp_path)


def _without_extras(scan: trees.Snapshot) -> trees.Snapshot:
    """What a restore of a session that recorded no EAs and no ACLs gives: neither."""
    return {
        index: dataclasses.replace(entry, xattrs=(), acl_access=None, acl_default=None)
        for index, entry in scan.items()
    }


def test_a_session_that_kept_no_eas_or_acls(rdiff_backup: str, tmp_path: Path) -> None:
    """A session run with --no-eas --no-acls writes no EA or ACL file, as rdiff-backup's own
    do: rdiff-backup verifies and restores every session (that one without EAs and ACLs) and
    continues the repository; the next rdb-mirror session leaves the mirror equal to the
    source, EAs and ACLs included."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=41)
    scans = []
    for n in range(3):
        if n:
            trees.mutate_tree(src, seed=400 + n)
        scans.append(trees.scan(src))
        extra = ("--no-eas", "--no-acls") if n == 1 else ()
        proc = run_mirror("--current-time", session_time(n), *extra, src, repo)
        assert proc.returncode == 0, proc.stderr
        if n != 1:  # (after --no-eas the mirror copies keep the EAs they had)
            assert differences(scans[-1], trees.scan(repo)) == [], f"session {n}"
    data = repo / "rdiff-backup-data"
    # sessions 0 and 2 only
    assert len(list(data.glob("extended_attributes.*"))) == 2
    assert len(list(data.glob("access_control_lists.*"))) == 2
    for n in range(3):
        verify = run_rdiff_backup(rdiff_backup, "verify", "--at", str(session_time(n)), repo)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        got = restore_with_rdiff_backup(rdiff_backup, repo, session_time(n), tmp_path / f"at{n}")
        want = _without_extras(scans[n]) if n == 1 else scans[n]
        assert differences(want, got) == [], f"session {n}"
    trees.mutate_tree(src, seed=403)
    proc = run_rdiff_backup(
        rdiff_backup, "--current-time", str(session_time(3)), "backup", src, repo
    )
    assert proc.returncode == 0, proc.stderr
    assert differences(trees.scan(src), trees.scan(repo)) == []
