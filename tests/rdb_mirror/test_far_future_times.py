"""Times past 64 bits of nanoseconds since 1970 (after 2262-04-11; ext4, XFS and btrfs keep
them): a file dated so is backed up like any other. The batched C reader and writer
(rdb_fastio) took its time as a 64-bit count of nanoseconds: an OverflowError in a pool job,
and the backup waited forever for that job's answer."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from tests.rdb_mirror.helpers import run_mirror

FAR_NS = 10_413_792_000 * 1_000_000_000 + 123_456_789  # 2300-01-01T00:00:00.123456789Z


def test_a_file_dated_after_2262_is_backed_up(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    far = src / "far.txt"
    far.write_bytes(b"future\n")
    os.utime(far, ns=(FAR_NS, FAR_NS))
    assert far.lstat().st_mtime_ns == FAR_NS  # the file system keeps it
    proc = run_mirror("--current-time", 1_700_000_000, src, repo, timeout=60)
    assert proc.returncode == 0, proc.stderr
    copy = repo / "far.txt"
    assert copy.read_bytes() == b"future\n"
    assert copy.lstat().st_mtime_ns == FAR_NS
    (metadata,) = (repo / "rdiff-backup-data").glob("mirror_metadata.*.snapshot.gz")
    assert b"  ModTime 10413792000\n" in gzip.decompress(metadata.read_bytes())
