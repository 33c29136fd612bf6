"""Hard-link groups whose paths fall in batches written on the walk's thread and in batches
written by the pool (rdb_restore.writer.INLINE_BYTES): the later path waits for the first
wherever that is written, and every link comes out right."""

from __future__ import annotations

import os
from pathlib import Path

from tests.interop import trees
from tests.rdb_mirror.helpers import differences

import rdb_mirror as mirror
from rdb_restore import writer
from rdb_restore.restore import restore

BIG = writer.INLINE_BYTES + 4096  # its batch goes to the pool


def test_links_between_inline_and_pooled_batches(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    for name in ("a", "b", "c"):
        (src / name).mkdir(parents=True)
    # a/ holds a big file: its batch is pooled; b/ only small ones: written on the walk's
    # thread; c/ holds a big file (a link counts its recorded size): pooled
    (src / "a" / "big").write_bytes(os.urandom(BIG))
    (src / "a" / "small").write_bytes(b"small in a\n")
    (src / "b" / "small").write_bytes(b"small in b\n")
    os.link(src / "a" / "small", src / "b" / "to-a-small")  # first pooled, link inline
    os.link(src / "b" / "small", src / "c" / "to-b-small")  # first inline, link pooled
    os.link(src / "a" / "big", src / "c" / "to-big")  # both pooled
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    target = tmp_path / "target"
    restore(str(repo), str(target))
    assert differences(trees.scan(src), trees.scan(target)) == []
    assert os.stat(target / "a" / "small").st_ino == os.stat(target / "b" / "to-a-small").st_ino
    assert os.stat(target / "b" / "small").st_ino == os.stat(target / "c" / "to-b-small").st_ino
