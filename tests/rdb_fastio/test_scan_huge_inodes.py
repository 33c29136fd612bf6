"""Inode numbers of 2**63 and more (NFS file ids, FUSE file systems that hash them): the scan
gives them as ``os.lstat`` does (tests/rdb_fastio/hugeino.c makes them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.rdb_fastio.huge_inodes import HIGH, build_shim, run_with_shim


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_shim(tmp_path_factory.mktemp("hugeino"))


def test_the_scan_gives_inode_numbers_past_63_bits_as_lstat(shim: str, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "dir").mkdir()
    os.link(tmp_path / "file", tmp_path / "link")
    done = run_with_shim(
        shim,
        "-c",
        "import json, sys\nfrom rdb_fastio.scan import scan_directory\n"
        "print(json.dumps({n.decode(): [st.st_ino, st.st_dev, st.st_nlink, st.st_mode]"
        " for n, st, _, _ in scan_directory(sys.argv[1].encode(), xattrs=True)}))",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    want = {}
    for name in ("file", "dir", "link"):
        st = os.lstat(tmp_path / name)
        want[name] = [st.st_ino | HIGH, st.st_dev, st.st_nlink, st.st_mode]
    assert got == want
