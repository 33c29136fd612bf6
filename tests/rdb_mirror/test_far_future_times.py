"""Times past 64 bits of nanoseconds since 1970 (after 2262-04-11; ext4, XFS and btrfs keep
them): a file dated so is backed up like any other. The batched C reader and writer
(rdb_fastio) took its time as a 64-bit count of nanoseconds: an OverflowError in a pool job,
and the backup waited forever for that job's answer."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from tests.rdb_mirror.helpers import run_mirror


def test_a_file_dated_after_2262_is_backed_up(tmp_path: Path, far_future_ns: int) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    far = src / "far.txt"
    far.write_bytes(b"future\n")
    os.utime(far, ns=(far_future_ns, far_future_ns))
    proc = run_mirror("--current-time", 1_700_000_000, src, repo, timeout=60)
    assert proc.returncode == 0, proc.stderr
    copy = repo / "far.txt"
    assert copy.read_bytes() == b"future\n"
    assert copy.lstat().st_mtime_ns == far_future_ns
    (metadata,) = (repo / "rdiff-backup-data").glob("mirror_metadata.*.snapshot.gz")
    seconds = far_future_ns // 1_000_000_000
    assert b"  ModTime %d\n" % seconds in gzip.decompress(metadata.read_bytes())
