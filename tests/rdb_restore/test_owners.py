"""Owners as root: by the recorded user and group name when it exists here (as rdiff-backup
does), else by the recorded number; ``--preserve-numerical-ids`` always by number."""

from __future__ import annotations

import grp
import gzip
import os
import pwd
from pathlib import Path

import pytest
from tests.rdb_mirror.helpers import run_mirror
from tests.rdb_restore.helpers import metadata_snapshot, rewrite_gzip, run_restore

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")


def _named_repo(tmp_path: Path) -> Path:
    """One session of ``named.txt`` (uid 4242, gid 4243, recorded as nobody/nogroup: the
    names another machine had for those numbers) and ``numbered.txt`` (uid 4244, gid 4245,
    no names)."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    for name, uid, gid in (("named.txt", 4242, 4243), ("numbered.txt", 4244, 4245)):
        (src / name).write_bytes(name.encode())
        os.chown(src / name, uid, gid)
    assert run_mirror("--current-time", "1700000000", src, repo).returncode == 0
    snapshot = metadata_snapshot(repo)
    text = gzip.decompress(snapshot.read_bytes())
    record = b"File named.txt\n"
    head, _, rest = text.partition(record)
    body, sep, tail = rest.partition(b"\nFile ")
    assert b"  Uname :\n" in body and b"  Gname :\n" in body
    body = body.replace(b"  Uname :\n", b"  Uname nobody\n").replace(
        b"  Gname :\n", b"  Gname nogroup\n"
    )
    rewrite_gzip(snapshot, head + record + body + sep + tail)
    return repo


def _owner(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


def test_owners_by_name_or_by_number(tmp_path: Path) -> None:
    repo = _named_repo(tmp_path)
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    by_name = tmp_path / "by-name"
    proc = run_restore(repo, by_name)
    assert proc.returncode == 0, proc.stderr
    assert _owner(by_name / "named.txt") == (nobody, nogroup)
    assert _owner(by_name / "numbered.txt") == (4244, 4245)
    by_number = tmp_path / "by-number"
    proc = run_restore("--preserve-numerical-ids", repo, by_number)
    assert proc.returncode == 0, proc.stderr
    assert _owner(by_number / "named.txt") == (4242, 4243)
    assert _owner(by_number / "numbered.txt") == (4244, 4245)
    assert (by_number / "named.txt").read_bytes() == b"named.txt"


def test_a_set_group_id_parent_does_not_leave_its_group_on_what_is_restored(
    tmp_path: Path,
) -> None:
    """TARGET's parent is set-group-ID with group 4246: every directory and file made below it
    first gets that group (the kernel's rule, which the writer counts on to skip a chown where
    the group is already the recorded one, and for directories made in directories made by
    it). Recorded as root's (uid 0, gid 0), all of them must end with gid 0, and files owned
    4244:4245 with that; nothing keeps 4246."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "a" / "b").mkdir(parents=True)
    for directory in (src, src / "a", src / "a" / "b"):
        (directory / "root.txt").write_bytes(b"root's\n")
        (directory / "other.txt").write_bytes(b"someone else's\n")
        os.chown(directory / "other.txt", 4244, 4245)
    os.chown(src, 0, 0)
    assert run_mirror("--current-time", "1700000000", src, repo).returncode == 0
    parent = tmp_path / "parent"
    parent.mkdir()
    os.chown(parent, 0, 4246)
    parent.chmod(0o2775)
    target = parent / "t"
    proc = run_restore("--preserve-numerical-ids", repo, target)
    assert proc.returncode == 0, proc.stderr
    for directory in (target, target / "a", target / "a" / "b"):
        assert _owner(directory) == (0, 0), directory
        assert _owner(directory / "root.txt") == (0, 0), directory
        assert _owner(directory / "other.txt") == (4244, 4245), directory
