"""Reading a source entry's metadata: one listxattr answers both EAs and whether an ACL is set."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rdb_mirror.fsmeta import read_acl, read_eas, read_eas_and_acl


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
