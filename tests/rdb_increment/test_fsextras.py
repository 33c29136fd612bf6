"""A local file's EAs and ACL as a backup records them (rdb-mirror's backup and regress, and
rdb-restore's compare, read them with rdb_increment.fsextras); one listxattr answers both EAs
and whether an ACL is set."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rdb_format.eas_acls import ACLEntry
from rdb_increment.fsextras import read_acl, read_eas, read_eas_and_acl


def test_one_listxattr_gives_the_eas_and_the_acl(tmp_path: Path) -> None:
    if shutil.which("setfacl") is None:
        pytest.fail("setfacl is needed (./dev setup installs acl)")
    plain, with_ea, with_acl, directory = (tmp_path / n for n in ("plain", "ea", "acl", "dir"))
    for path in (plain, with_ea, with_acl):
        path.write_bytes(b"x")
    directory.mkdir()
    os.setxattr(with_ea, "user.note", b"kept")
    subprocess.run(["setfacl", "-m", "u:nobody:r", str(with_acl)], check=True)
    subprocess.run(["setfacl", "-d", "-m", "u:nobody:rx", str(directory)], check=True)
    for path, is_dir in ((plain, False), (with_ea, False), (with_acl, False), (directory, True)):
        raw = os.fsencode(path)
        expected = (read_eas(raw), read_acl(raw, is_dir))
        assert read_eas_and_acl(raw, is_dir, eas=True, acls=True) == expected
        assert read_eas_and_acl(raw, is_dir, eas=False, acls=True) == (None, expected[1])
        assert read_eas_and_acl(raw, is_dir, eas=True, acls=False) == (expected[0], None)
    assert read_eas_and_acl(os.fsencode(with_acl), False, eas=True, acls=True)[1] != ()
    assert read_eas_and_acl(os.fsencode(directory), True, eas=True, acls=True)[1] != ()
    assert read_eas_and_acl(os.fsencode(with_ea), False, eas=True, acls=True)[0] == (
        (b"user.note", b"kept"),
    )


def test_what_a_backup_records(tmp_path: Path) -> None:
    """user.* EAs sorted by name, never system.* ones (an ACL is one); an ACL only when it
    says more than the mode bits, with a directory's default entries after its access ones."""
    if shutil.which("setfacl") is None:
        pytest.fail("setfacl is needed (./dev setup installs acl)")
    path, directory = tmp_path / "f", tmp_path / "d"
    path.write_bytes(b"x")
    directory.mkdir()
    raw, raw_dir = os.fsencode(path), os.fsencode(directory)
    os.setxattr(path, "user.b", b"2")
    os.setxattr(path, "user.a", b"1")
    subprocess.run(["setfacl", "-m", "u::rwx,g::r-x,o::---", str(path)], check=True)
    assert read_acl(raw, False) == ()  # the mode bits alone: no ACL
    subprocess.run(["setfacl", "-m", "u:nobody:r", str(path)], check=True)
    assert read_eas(raw) == ((b"user.a", b"1"), (b"user.b", b"2"))
    assert os.listxattr(path).count("system.posix_acl_access") == 1
    acl = read_acl(raw, False)
    assert ACLEntry("user", "nobody", "r--", False) in acl
    assert not any(e.default for e in acl)
    subprocess.run(["setfacl", "-m", "u:nobody:rx", str(directory)], check=True)
    subprocess.run(["setfacl", "-d", "-m", "u:nobody:rx", str(directory)], check=True)
    dir_acl = read_acl(raw_dir, True)
    flags = [e.default for e in dir_acl]
    assert flags == sorted(flags) and True in flags and False in flags
    assert ACLEntry("user", "nobody", "r-x", True) in dir_acl
    assert read_acl(raw_dir, False) == tuple(e for e in dir_acl if not e.default)
