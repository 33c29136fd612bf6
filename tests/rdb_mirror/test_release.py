"""Replacing and deleting mirror files with their storage freed on the pool (Releaser)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdb_mirror.release import Releaser
from rdb_mirror.workers import Workers


@pytest.fixture
def pool() -> Iterator[Workers]:
    workers = Workers(1, "test-release")
    yield workers
    workers.shutdown()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_replace_and_unlink_do_what_they_say(tmp_path: Path, pool: Workers) -> None:
    old, new, gone = tmp_path / "old", tmp_path / "new", tmp_path / "gone"
    old.write_bytes(b"old bytes")
    new.write_bytes(b"new bytes")
    gone.write_bytes(b"x")
    releaser = Releaser(pool)
    releaser.replace(new, old)
    releaser.unlink(gone)
    assert old.read_bytes() == b"new bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    releaser.replace(tmp_path / "old", tmp_path / "fresh")  # nothing there before: no hold
    assert (tmp_path / "fresh").read_bytes() == b"new bytes"
    with pytest.raises(FileNotFoundError):
        releaser.unlink(gone)


def test_every_held_descriptor_is_closed(tmp_path: Path, pool: Workers) -> None:
    before = _open_fds()
    releaser = Releaser(pool)
    for n in range(50):
        (tmp_path / f"a{n}").write_bytes(b"a")
        (tmp_path / f"b{n}").write_bytes(b"b")
        releaser.replace(tmp_path / f"b{n}", tmp_path / f"a{n}")
    pool.submit(lambda: None).result()  # after every queued close
    assert _open_fds() == before


def test_a_blocked_pool_holds_at_most_the_limit(tmp_path: Path, pool: Workers) -> None:
    """Past the limit the caller frees the file itself: descriptors stay bounded."""
    gate = threading.Event()
    pool.submit(gate.wait)
    before = _open_fds()
    releaser = Releaser(pool, limit=3)
    try:
        for n in range(20):
            (tmp_path / f"f{n}").write_bytes(b"x")
            releaser.unlink(tmp_path / f"f{n}")
        assert _open_fds() - before == 3
    finally:
        gate.set()
    pool.submit(lambda: None).result()
    assert _open_fds() == before


def test_special_files_are_never_opened(tmp_path: Path, pool: Workers) -> None:
    """A FIFO in the mirror is held without an open that would wait for a writer."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_bytes(b"kept")
    releaser = Releaser(pool)
    worker = threading.Thread(target=releaser.unlink, args=(fifo,), daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "unlinking a FIFO waited for a writer"
    releaser.unlink(link)  # the symlink, never what it points to
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]
    assert (tmp_path / "elsewhere").read_bytes() == b"kept"
