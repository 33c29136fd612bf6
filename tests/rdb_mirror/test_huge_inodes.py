"""A backup of files whose inode numbers pass 2**63 (NFS file ids, FUSE file systems that hash
them; tests/rdb_fastio/hugeino.c makes them): every file and its hard links are kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.rdb_fastio.huge_inodes import build_shim, run_with_shim


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_shim(tmp_path_factory.mktemp("hugeino"))


def test_a_backup_of_files_with_inode_numbers_past_63_bits(shim: str, tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "a").write_bytes(b"hard-linked\n")
    os.link(src / "a", src / "b")
    (src / "plain").write_bytes(b"plain\n")
    done = run_with_shim(shim, "-m", "rdb_mirror", str(src), str(repo))
    assert done.returncode == 0, done.stderr
    for name in ("a", "b", "plain"):
        assert (repo / name).read_bytes() == (src / name).read_bytes()
    assert os.path.samefile(repo / "a", repo / "b")
