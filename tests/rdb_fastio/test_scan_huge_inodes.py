"""Inode numbers of 2**63 and more (NFS file ids, FUSE file systems that hash them): the scan
gives them as ``os.lstat`` does, and a backup of such files works. ``hugeino.c`` (an
LD_PRELOAD shim) sets bit 63 of every inode number the process sees, whichever stat call."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HIGH = 1 << 63


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> str:
    library = tmp_path_factory.mktemp("hugeino") / "hugeino.so"
    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    source = Path(__file__).with_name("hugeino.c")
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
        check=True,
    )
    return str(library)


def _run(shim: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "LD_PRELOAD": shim},
        timeout=120,
        check=False,
    )


def test_the_scan_gives_inode_numbers_past_63_bits_as_lstat(shim: str, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "dir").mkdir()
    os.link(tmp_path / "file", tmp_path / "link")
    done = _run(
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


def test_a_backup_of_files_with_such_inode_numbers(shim: str, tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "a").write_bytes(b"hard-linked\n")
    os.link(src / "a", src / "b")
    (src / "plain").write_bytes(b"plain\n")
    done = _run(shim, "-m", "rdb_mirror", str(src), str(repo))
    assert done.returncode == 0, done.stderr
    for name in ("a", "b", "plain"):
        assert (repo / name).read_bytes() == (src / name).read_bytes()
    assert os.path.samefile(repo / "a", repo / "b")
