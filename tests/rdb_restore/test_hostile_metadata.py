"""Metadata naming a path that would leave TARGET: an absolute path, or a NUL byte (``..``
is in test_restore.py). One line naming the metadata file, exit 13, nothing written outside
TARGET (nor, for the absolute path, at the path itself)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from tests.rdb_restore.conftest import MirrorRepo, Sentinel
from tests.rdb_restore.helpers import metadata_snapshot, rewrite_gzip, run_restore

RECORD = b"  Type reg\n  Size 0\n  ModTime 0\n  Uid 0\n  Uname root\n  Gid 0\n  Gname root\n"


@pytest.mark.parametrize("kind", ["absolute", "nul"])
def test_hostile_path_in_metadata(
    mirror_repo: MirrorRepo, sentinel: Sentinel, tmp_path: Path, kind: str
) -> None:
    evil = sentinel.path / "evil"
    name = bytes(evil) if kind == "absolute" else b"a\0../../sentinel/evil"
    snapshot = metadata_snapshot(mirror_repo.path)
    head, sep, rest = gzip.decompress(snapshot.read_bytes()).partition(b"\nFile ")
    rewrite_gzip(
        snapshot, head + b"\nFile " + name + b"\n" + RECORD + b"  Permissions 420" + sep + rest
    )
    target = tmp_path / "t"
    proc = run_restore(mirror_repo.path, target)
    assert proc.returncode == 13, proc.stderr
    message = proc.stderr.decode()
    assert message.count("\n") == 1, message
    assert snapshot.name in message
    assert ("absolute" if kind == "absolute" else "NUL") in message
    assert not evil.exists()
    sentinel.assert_untouched()
