"""Early writeback: syncs while a session writes, and none of its errors lost."""

from __future__ import annotations

import errno
import os
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences, session_time

from rdb_format.atomic import PathArg
from rdb_format.layout import Layout
from rdb_format.repository import read_state
from rdb_mirror import BackupOptions, backup, session, testhooks
from rdb_mirror.durable import SyncFailed
from rdb_mirror.writeback import EarlyWriteback


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _wait_for(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def _record(synced: list[int], fd: int) -> bool:
    synced.append(os.fstat(fd).st_dev)
    return True


def _unavailable(calls: list[int], fd: int) -> bool:
    calls.append(fd)
    return False


def test_a_sync_each_step_written(tmp_path: Path) -> None:
    synced: list[int] = []
    written = [0]
    before = _open_fds()
    writeback = EarlyWriteback(
        (tmp_path, tmp_path / "."),
        lambda: written[0],
        step=1000,
        poll=0.005,
        syncfs=partial(_record, synced),
    )
    time.sleep(0.05)
    assert synced == []  # nothing written yet
    written[0] = 999
    time.sleep(0.05)
    assert synced == []  # less than a step
    written[0] = 1000
    _wait_for(lambda: writeback.syncs == 1)
    assert synced == [os.stat(tmp_path).st_dev]  # one file system, synced once
    written[0] = 5000
    _wait_for(lambda: writeback.syncs == 2)
    writeback.stop()
    writeback.check()
    assert writeback.syncs == 2
    assert _open_fds() == before  # its descriptors closed, its thread gone
    assert not any(t.name == "rdb-writeback" for t in threading.enumerate())


def test_an_early_sync_error_is_raised_by_check(tmp_path: Path) -> None:
    def failing(fd: int) -> bool:
        raise OSError(errno.EIO, "syncfs failed: Input/output error")

    writeback = EarlyWriteback((tmp_path,), lambda: 10**9, step=1, poll=0.001, syncfs=failing)
    _wait_for(lambda: not writeback._thread.is_alive())
    writeback.stop()
    with pytest.raises(OSError, match="Input/output error"):
        writeback.check()


def test_no_syncfs_means_no_early_syncs(tmp_path: Path) -> None:
    calls: list[int] = []
    writeback = EarlyWriteback(
        (tmp_path,), lambda: 10**9, step=1, poll=0.001, syncfs=partial(_unavailable, calls)
    )
    _wait_for(lambda: not writeback._thread.is_alive())
    writeback.stop()
    writeback.check()
    assert len(calls) == 1 and writeback.syncs == 0


def _recording_writeback(
    repo: Path, events: list[tuple[str, int]], fail: bool = False
) -> type[EarlyWriteback]:
    """EarlyWriteback as the session makes it, with a 64 KiB step and a syncfs that records
    the thread and the number of session markers at each call (or fails with EIO)."""

    def syncfs(fd: int) -> bool:
        markers = len(read_state(Layout(repo)).markers)
        events.append((threading.current_thread().name, markers))
        if fail:
            raise OSError(errno.EIO, "syncfs failed: Input/output error")
        return True

    kind = _FailedFirst if fail else EarlyWriteback
    return partial(kind, step=64 * 1024, poll=0.001, syncfs=syncfs)  # type: ignore[return-value]


class _FailedFirst(EarlyWriteback):
    """An EarlyWriteback whose sync for DurableOrder comes after the early sync that fails
    (the thread ends then), whatever the machine's load."""

    def sync(self, *paths: PathArg) -> str:
        _wait_for(lambda: not self._thread.is_alive())
        return super().sync(*paths)


def _write_data(src: Path, mtime: int) -> None:
    for n in range(8):
        path = src / f"data{n}.bin"
        path.write_bytes(os.urandom(256 * 1024))
        os.utime(path, (mtime, mtime))


def _source(tmp_path: Path) -> tuple[Path, Path]:
    """A source tree with 2 MiB of data files, and where its repository goes."""
    src = tmp_path / "src"
    trees.build_tree(src, seed=47)
    _write_data(src, 1_600_000_000)
    return src, tmp_path / "repo"


def _watch(
    monkeypatch: pytest.MonkeyPatch, repo: Path, *, fail: bool = False
) -> list[tuple[str, int]]:
    """Record the early syncs of the next session (see _recording_writeback). Once every
    entry is written, the session waits (up to 10 s) for a first early sync before it stops
    the early writeback, so that one is seen whatever the machine's load."""
    events: list[tuple[str, int]] = []
    point = testhooks.point

    def wait_for_a_sync(name: str) -> None:
        if name == "walked":
            _wait_for(lambda: events, 10.0)
        point(name)

    monkeypatch.setattr(testhooks, "point", wait_for_a_sync)
    monkeypatch.setattr(session, "EarlyWriteback", _recording_writeback(repo, events, fail))
    return events


def test_a_backup_syncs_early_before_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, repo = _source(tmp_path)
    events = _watch(monkeypatch, repo)
    result = backup(src, repo, BackupOptions(current_time=session_time(0)))
    assert result.errors == []
    assert events, "2 MiB written with a 64 KiB step: no early sync"
    # all on the writeback thread, before the first session's marker was written
    assert {name for name, _ in events} == {"rdb-writeback"}
    assert {markers for _, markers in events} == {0}
    assert differences(trees.scan(src), trees.scan(repo)) == []


def test_an_early_sync_error_means_no_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The increments written before an early sync met EIO may have lost their data: no
    commit, and no mirror copy they keep the previous version of is replaced (DurableOrder's
    sync fails too), so the previous session stays whole for the regress."""
    src, repo = _source(tmp_path)
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    before = {n: (repo / f"data{n}.bin").read_bytes() for n in range(8)}
    _write_data(src, 1_600_000_100)  # 2 MiB changed: 8 mirror copies to replace
    events = _watch(monkeypatch, repo, fail=True)
    with pytest.raises(SyncFailed, match="Input/output error"):  # DurableOrder's flush
        backup(src, repo, BackupOptions(current_time=session_time(1)))
    assert events
    assert {n: (repo / f"data{n}.bin").read_bytes() for n in range(8)} == before
    assert len(read_state(Layout(repo)).markers) == 2  # unfinished: the next run regresses
    monkeypatch.undo()
    result = backup(src, repo, BackupOptions(current_time=session_time(2)))
    assert result.regressed is not None
    assert differences(trees.scan(src), trees.scan(repo)) == []


def test_the_session_syncs_fail_after_an_early_sync_error(tmp_path: Path) -> None:
    """The kernel reports a writeback error once: once an early sync was told, a sync
    through a new descriptor (DurableOrder's, before it replaces mirror files) is not, so
    :meth:`EarlyWriteback.sync` raises the early sync's error itself."""

    def failing(fd: int) -> bool:
        raise OSError(errno.EIO, "syncfs failed: Input/output error")

    writeback = EarlyWriteback((tmp_path,), lambda: 10**9, step=1, poll=0.001, syncfs=failing)
    _wait_for(lambda: not writeback._thread.is_alive())
    with pytest.raises(OSError, match="Input/output error"):
        writeback.sync(tmp_path)
    writeback.stop()
    with pytest.raises(OSError, match="Input/output error"):
        writeback.sync(tmp_path)
