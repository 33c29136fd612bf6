"""Replacing and deleting mirror files with their storage freed by another thread (Releaser)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from rdb_mirror import release
from rdb_mirror.release import Releaser


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_replace_and_unlink_do_what_they_say(tmp_path: Path) -> None:
    old, new, gone = tmp_path / "old", tmp_path / "new", tmp_path / "gone"
    old.write_bytes(b"old bytes")
    new.write_bytes(b"new bytes")
    gone.write_bytes(b"x")
    releaser = Releaser(batch=4)
    releaser.replace(new, old)
    releaser.unlink(gone)
    assert old.read_bytes() == b"new bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    releaser.replace(tmp_path / "old", tmp_path / "fresh")  # nothing there before: no hold
    assert (tmp_path / "fresh").read_bytes() == b"new bytes"
    with pytest.raises(FileNotFoundError):
        releaser.unlink(gone)


def test_every_held_descriptor_is_closed(tmp_path: Path) -> None:
    before = _open_fds()
    releaser = Releaser(batch=4)
    for n in range(50):
        (tmp_path / f"a{n}").write_bytes(b"a")
        (tmp_path / f"b{n}").write_bytes(b"b")
        releaser.replace(tmp_path / f"b{n}", tmp_path / f"a{n}")
    releaser.close()
    assert _open_fds() == before


def test_a_stalled_release_thread_holds_at_most_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the limit the caller frees the file itself: descriptors stay bounded."""
    gate = threading.Event()
    real = release._close_all

    def stalled(fds: list[int]) -> None:
        if threading.current_thread().name.startswith("rdb-release"):
            gate.wait()
        real(fds)

    monkeypatch.setattr(release, "_close_all", stalled)
    before = _open_fds()
    releaser = Releaser(batch=2, limit=4)
    try:
        for n in range(20):
            (tmp_path / f"f{n}").write_bytes(b"x")
            releaser.unlink(tmp_path / f"f{n}")
        assert _open_fds() - before == 4
    finally:
        gate.set()
    releaser.close()
    assert _open_fds() == before


def test_special_files_are_never_opened(tmp_path: Path) -> None:
    """A FIFO in the mirror is held without an open that would wait for a writer."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_bytes(b"kept")
    releaser = Releaser(batch=4)
    worker = threading.Thread(target=releaser.unlink, args=(fifo,), daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "unlinking a FIFO waited for a writer"
    releaser.unlink(link)  # the symlink, never what it points to
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]
    assert (tmp_path / "elsewhere").read_bytes() == b"kept"
