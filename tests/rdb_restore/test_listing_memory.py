"""A listed increments directory is freed as soon as it is dropped (no reference cycle):
a restore lists one per directory, and a cycle each would leave them all to the cycle
collector, memory growing with the directories restored until it ran."""

from __future__ import annotations

import gc
import os
from pathlib import Path

from rdb_format.quoting import NO_QUOTING
from rdb_mirror import session as mirror
from rdb_restore.repo import open_dir_at, open_root

T0 = 1_700_000_000


def test_a_listing_leaves_no_cycle(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    for n in range(2):  # two sessions: each file changed, so each has a diff increment
        for name in ("a", "b", "c"):
            (src / name).write_bytes(b"version %d of %s\n" % (n, name.encode()) * 100)
            os.utime(src / name, (T0 + n, T0 + n))
        mirror.backup(src, repo, mirror.BackupOptions(current_time=T0 + n * 3600))
    gc.collect()
    gc.disable()
    try:
        data = open_root(repo / "rdiff-backup-data")
        listed = open_dir_at(data, b"increments")
        listing = listed.increments(NO_QUOTING)
        assert sorted(listing) == [b"a", b"b", b"c"]
        here = repo / "rdiff-backup-data" / "increments"
        # the paths are still made when asked for, from where the directory is
        assert {inc.path.parent for incs in listing.values() for inc in incs} == {here}
        listed.close()
        data.close()
        del data, listed, listing
        assert gc.collect() == 0  # nothing was left for the cycle collector
    finally:
        gc.enable()
