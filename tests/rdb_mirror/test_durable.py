"""DurableOrder: destructive mirror steps run only after a sync, in the order they came."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from rdb_mirror.durable import DurableOrder, SyncFailed, link_descriptor
from rdb_mirror.release import Releaser


class _Journal:
    """A sync that records what the directory held when it ran (and can fail)."""

    def __init__(self, root: Path, *, fail: bool = False) -> None:
        self.root = root
        self.fail = fail
        self.seen: list[list[str]] = []

    def __call__(self, *paths: object) -> None:
        if self.fail:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.seen.append(sorted(p.name for p in self.root.iterdir()))


def _order(tmp_path: Path, **limits: int) -> tuple[DurableOrder, _Journal, Releaser]:
    journal = _Journal(tmp_path, fail=False)
    release = Releaser()
    return DurableOrder((tmp_path,), release, journal, **limits), journal, release


def test_steps_wait_for_the_sync_then_run_in_order(tmp_path: Path) -> None:
    order, journal, release = _order(tmp_path)
    (tmp_path / "old").write_bytes(b"old version")
    (tmp_path / "new").write_bytes(b"new version")
    (tmp_path / "deleted").write_bytes(b"gone later")
    ran: list[str] = []
    order.replace(tmp_path / "new", tmp_path / "old", 11)
    order.unlink(tmp_path / "deleted")
    order.later(tmp_path / "x", lambda: ran.append(sorted(p.name for p in tmp_path.iterdir())[0]))
    # nothing happened yet: the old copy and the deleted file are still there
    assert (tmp_path / "old").read_bytes() == b"old version"
    assert (tmp_path / "deleted").exists()
    order.flush()
    release.close()
    assert journal.seen == [["deleted", "new", "old"]]  # synced before any step ran
    assert (tmp_path / "old").read_bytes() == b"new version"
    assert not (tmp_path / "deleted").exists() and not (tmp_path / "new").exists()
    assert ran == ["old"]  # the queued call came after the replace and the unlink
    order.flush()  # nothing queued: no second sync
    assert len(journal.seen) == 1
    order.close()


def test_a_hard_link_made_while_the_replace_waits_gets_the_new_content(tmp_path: Path) -> None:
    order, _, release = _order(tmp_path)
    (tmp_path / "primary").write_bytes(b"old")
    (tmp_path / "staged").write_bytes(b"new")
    order.replace(tmp_path / "staged", tmp_path / "primary")
    fd = order.open_current(tmp_path / "primary")
    try:
        link_descriptor(fd, tmp_path / "secondary")
    finally:
        os.close(fd)
    assert (tmp_path / "secondary").read_bytes() == b"new"
    order.flush()
    release.close()
    assert os.path.samefile(tmp_path / "primary", tmp_path / "secondary")
    fd = order.open_current(tmp_path / "primary")  # replaced now: the target itself
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(tmp_path / "primary"))
    finally:
        os.close(fd)
    order.close()


def test_enough_steps_start_a_flush_on_its_own(tmp_path: Path) -> None:
    order, journal, release = _order(tmp_path, steps=3)
    for n in range(3):
        (tmp_path / f"f{n}").write_bytes(b"x")
    order.unlink(tmp_path / "f0")
    order.unlink(tmp_path / "f1")
    order.flush_if_due()  # two steps: not yet
    order.flush()  # (waits for nothing; runs the two)
    assert len(journal.seen) == 1
    order.unlink(tmp_path / "f2")
    order.flush_if_due()
    assert (tmp_path / "f2").exists()  # one step: still waiting
    for n in range(3, 6):
        (tmp_path / f"f{n}").write_bytes(b"x")
        order.unlink(tmp_path / f"f{n}")
    order.flush_if_due()  # four steps: a flush starts on the order's thread
    order.close()  # waits for it
    release.close()
    assert len(journal.seen) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_big_staged_files_start_a_flush_too(tmp_path: Path) -> None:
    order, journal, release = _order(tmp_path, data=1000)
    (tmp_path / "old").write_bytes(b"o")
    (tmp_path / "new").write_bytes(b"n" * 2000)
    order.replace(tmp_path / "new", tmp_path / "old", 2000)
    order.flush_if_due()
    order.close()
    release.close()
    assert len(journal.seen) == 1 and (tmp_path / "old").stat().st_size == 2000


def test_a_failed_sync_runs_no_step_and_close_removes_the_new_files(tmp_path: Path) -> None:
    order, journal, release = _order(tmp_path)
    journal.fail = True
    (tmp_path / "old").write_bytes(b"old version")
    (tmp_path / "rdiff-backup.tmp.1").write_bytes(b"new version")
    (tmp_path / "deleted").write_bytes(b"kept")
    order.replace(tmp_path / "rdiff-backup.tmp.1", tmp_path / "old")
    order.unlink(tmp_path / "deleted")
    with pytest.raises(SyncFailed, match=r"cannot sync the increments .*Input/output error"):
        order.flush()
    assert SyncFailed.exit_code != 0
    order.close()
    release.close()
    assert (tmp_path / "old").read_bytes() == b"old version"
    assert (tmp_path / "deleted").read_bytes() == b"kept"
    assert not (tmp_path / "rdiff-backup.tmp.1").exists()


def test_a_step_that_fails_names_the_mirror_file(tmp_path: Path) -> None:
    order, _, release = _order(tmp_path)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inside").write_bytes(b"x")
    (tmp_path / "file").write_bytes(b"new")
    order.replace(tmp_path / "file", tmp_path / "dir")  # a file over a non-empty directory
    with pytest.raises(SyncFailed, match=r"/dir: cannot replace or remove the mirror copy"):
        order.flush()
    order.close()
    release.close()
