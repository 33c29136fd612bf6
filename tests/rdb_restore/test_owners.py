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
