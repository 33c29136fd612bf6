"""A directory with a default ACL gives the files made in it that ACL's permissions, not the
umask's: a file created with its recorded mode (and no fchmod afterwards, the fast way) then
had other permissions than recorded. Above a staged TARGET (the staging directory inherits
the ACL) and in a TARGET written in place with --force, copied and rebuilt alike."""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path

import pytest
from tests.rdb_restore.helpers import take_way

from rdb_mirror import session as mirror
from rdb_restore import RestoreOptions, restore

MODES = (0o644, 0o755, 0o640, 0o600, 0o444)
_UNDEFINED_ID = 0xFFFFFFFF


def _owner_only_default_acl(directory: Path) -> None:
    """Give ``directory`` the default ACL ``u::rwx,g::---,o::---`` (the kernel's xattr form:
    version 2, then tag, permissions and id per entry), or skip the test."""
    entries = ((0x01, 7), (0x04, 0), (0x20, 0))  # USER_OBJ, GROUP_OBJ, OTHER
    value = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, _UNDEFINED_ID) for tag, perm in entries
    )
    try:
        os.setxattr(directory, "system.posix_acl_default", value)
    except OSError as error:
        if error.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip("this file system keeps no ACLs")
        raise


@pytest.mark.parametrize(
    ("where", "way"),
    [("staged", "copied"), ("staged", "rebuilt"), ("in place", "rebuilt")],  # in place: no copy
)
def test_files_keep_their_recorded_mode_under_a_default_acl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, way: str
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "sub").mkdir(parents=True)
    for mode in MODES:
        for directory in (src, src / "sub"):
            path = directory / f"f{mode:o}"
            path.write_bytes(b"%o\n" % mode)
            path.chmod(mode)
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    parent = tmp_path / "parent"
    parent.mkdir()
    _owner_only_default_acl(parent)
    target = parent / "t"
    if where == "in place":
        target.mkdir()
        (target / "old").write_bytes(b"")  # not empty: written in place, not staged
    take_way(monkeypatch, way)
    old = os.umask(0o022)  # keeps every recorded bit: files are created with their mode
    try:
        restore(str(repo), str(target), options=RestoreOptions(force=where == "in place"))
    finally:
        os.umask(old)
    got = {str(p.relative_to(target)): stat.S_IMODE(p.lstat().st_mode) for p in target.rglob("f*")}
    want = {str(p.relative_to(src)): stat.S_IMODE(p.lstat().st_mode) for p in src.rglob("f*")}
    assert got == want
