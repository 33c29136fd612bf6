"""Directories scanned ahead on a C thread (rdb_fastio.ScanAhead), as rdb-mirror's walk uses
them: a listing taken is scan_directory's (names, every lstat field, extended attribute list
sizes, errors, a huge directory's lazy listing); the queue and the results held stay within
their bounds; closing stops the thread and frees what was not taken; a forked child scans
nothing ahead and does not hang."""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from tests.rdb_fastio.test_scan import FIELDS

from rdb_fastio import ScanAhead, scan_ahead_threads, scan_directory


def _walk_order(root: Path) -> list[bytes]:
    """Every directory below ``root`` as a depth-first walk of sorted listings reaches it."""
    found: list[bytes] = []

    def rec(path: bytes) -> None:
        for name in sorted(os.listdir(path)):
            child = path + b"/" + name
            if os.path.isdir(child) and not os.path.islink(child):
                found.append(child)
                rec(child)

    rec(os.fsencode(root))
    return found


def _until(ahead: ScanAhead, done: str, count: int) -> dict[str, int]:
    """Its stats once ``done`` reaches ``count`` (a wait for the thread, not a timing: the
    deadline only keeps a broken build from hanging the suite)."""
    deadline = time.monotonic() + 60
    while (stats := ahead.stats())[done] < count and time.monotonic() < deadline:
        time.sleep(0.005)
    return stats


def _taken(ahead: ScanAhead, path: bytes) -> Any:
    """``ahead.take(path)`` of a scan known ready: take never waits for the thread's lock,
    and the thread (SCHED_IDLE, on a busy machine) may be off the CPU holding it, so take
    returns None then and leaves the scan there; asked again until the lock is free."""
    deadline = time.monotonic() + 60
    while (got := ahead.take(path)) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return got


def _same(got: object, want: object) -> None:
    got_list = list(got)  # type: ignore[call-overload]
    want_list = list(want)  # type: ignore[call-overload]
    assert [e[0] for e in got_list] == [e[0] for e in want_list]
    for (_, st, error, size), (_, want_st, want_error, want_size) in zip(
        got_list, want_list, strict=True
    ):
        assert (error, size) == (want_error, want_size)
        if want_st is None:
            assert st is None
        else:
            assert st is not None
            assert {f: getattr(st, f) for f in FIELDS} == {f: getattr(want_st, f) for f in FIELDS}


def _tree(root: Path) -> None:
    """Directories of every kind of entry, at several depths, names of any bytes."""
    odd = os.fsdecode(bytes(range(1, 40)).replace(b"/", b"_") + b"\xff")
    for n, where in enumerate(["a", "a/b", "a/b/c", "a-c", "a.d", "a b", odd, f"{odd}/x", "z"]):
        d = root / where
        d.mkdir(parents=True)
        (d / "file").write_bytes(b"x" * n)
        (d / "link").symlink_to("file")
        os.link(d / "file", d / "hard")
        os.mkfifo(d / "fifo")
        os.utime(d / "file", ns=(n * 1_000_000_007, 1_600_000_000_123_456_789 + n))
        try:
            os.setxattr(d / "file", "user.n", b"%d" % n)
        except OSError:
            pass


def test_a_listing_taken_is_scan_directory_s(tmp_path: Path) -> None:
    _tree(tmp_path)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "a" / "sock"))
        dirs = _walk_order(tmp_path)
        for xattrs in (False, True):
            with ScanAhead(xattrs=xattrs) as ahead:
                assert ahead.submit(dirs) == len(dirs)
                _until(ahead, "scans", len(dirs))
                for path in dirs:
                    got = ahead.take(path)
                    assert got is not None
                    _same(got, scan_directory(path, xattrs=xattrs))
                stats = ahead.stats()
            assert (stats["ready"], stats["missing"], stats["skipped"]) == (len(dirs), 0, 0)


def test_errors_are_scan_directory_s(tmp_path: Path) -> None:
    """A directory gone since it was submitted, or never one, raises as scan_directory does."""
    (tmp_path / "file").write_bytes(b"")
    (tmp_path / "gone").mkdir()
    gone, file = os.fsencode(tmp_path / "gone"), os.fsencode(tmp_path / "file")
    os.rmdir(tmp_path / "gone")
    with ScanAhead(xattrs=True) as ahead:
        ahead.submit([file, gone])
        _until(ahead, "scans", 2)
        for path, kind, number in (
            (file, NotADirectoryError, errno.ENOTDIR),
            (gone, FileNotFoundError, errno.ENOENT),
        ):
            with pytest.raises(kind) as ahead_raised:
                ahead.take(path)
            with pytest.raises(kind) as raised:
                scan_directory(path, xattrs=True)
            assert ahead_raised.value.errno == raised.value.errno == number
            assert ahead_raised.value.filename == raised.value.filename


def test_a_directory_over_the_limit_is_listed_lazily(tmp_path: Path) -> None:
    for n in range(7):
        (tmp_path / "big" / f"f{n}").parent.mkdir(exist_ok=True)
        (tmp_path / "big" / f"f{n}").write_bytes(b"x" * n)
    big = os.fsencode(tmp_path / "big")
    with ScanAhead(xattrs=False, limit=3) as ahead:
        ahead.submit([big])
        _until(ahead, "scans", 1)
        lazy = _taken(ahead, big)
        assert lazy is not None and not isinstance(lazy, list)
        _same(lazy, scan_directory(big, xattrs=False))
        assert ahead.stats()["most_entries"] == 0  # none held: the stats are made as used


def test_passed_and_unready_directories_are_listed_by_the_caller(tmp_path: Path) -> None:
    """A directory the walk passes is dropped; one not scanned (or never queued) is None."""
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    a, b, c = (os.fsencode(tmp_path / n) for n in ("a", "b", "c"))
    with ScanAhead(xattrs=False) as ahead:
        assert ahead.take(a) is None  # nothing submitted yet
        ahead.submit([a, b, c])
        _until(ahead, "scans", 3)
        assert _taken(ahead, b) is not None  # a passed: dropped
        assert ahead.take(a) is None
        stats = ahead.stats()
        assert (stats["skipped"], stats["queued"], stats["held"]) == (1, 1, 1)
        assert ahead.take(c) is not None
        assert ahead.stats()["held"] == 0


def test_memory_is_bounded(tmp_path: Path) -> None:
    """A root of many subdirectories: only ``queue`` of them are queued, only ``results``
    scans are held, and none starts while ready ones hold ``entries`` entries."""
    for n in range(300):
        d = tmp_path / f"d{n:03}"
        d.mkdir()
        for m in range(10):
            (d / f"f{m}").write_bytes(b"")
    dirs = _walk_order(tmp_path)
    with ScanAhead(xattrs=False, queue=16, results=4, entries=25) as ahead:
        assert ahead.submit(dirs) == 16
        stats = _until(ahead, "held", 3)
        time.sleep(0.05)  # were it unbounded, it would go on meanwhile
        stats = ahead.stats()
        assert stats["queued"] == 16
        assert stats["most_held"] <= 4
        assert stats["most_entries"] < 25 + 10  # the last scan started under the bound
        taken = 0
        for path in dirs:
            taken += ahead.take(path) is not None
        stats = ahead.stats()
        assert stats["most_held"] <= 4 and stats["most_entries"] < 25 + 10
        assert taken >= 2  # (one found the thread holding the lock would be listed here)


def test_subdirectories_explored_but_the_one_to_skip(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "a" / "skip" / "below").mkdir(parents=True)
    dirs = _walk_order(tmp_path)
    skip = os.fsencode(tmp_path / "a" / "skip")
    top = [d for d in dirs if b"/" not in d[len(os.fsencode(tmp_path)) + 1 :]]
    with ScanAhead(xattrs=False, explore=skip) as ahead:
        ahead.submit(top)
        _until(ahead, "scans", len(dirs) - 2)
        for path in dirs:
            if path == skip or path.startswith(skip + b"/"):
                assert ahead.take(path) is None  # never queued, never read
            else:
                got = _taken(ahead, path)
                assert got is not None
                _same(got, scan_directory(path, xattrs=False))
        stats = ahead.stats()
    assert stats["explored"] == len(dirs) - len(top) - 2
    assert stats["scans"] == len(dirs) - 2 and stats["missing"] == 2


def test_close_stops_the_thread_and_frees_what_was_not_taken(tmp_path: Path) -> None:
    for n in range(50):
        (tmp_path / f"d{n:02}").mkdir()
    dirs = _walk_order(tmp_path)
    before = scan_ahead_threads()
    tasks = len(os.listdir("/proc/self/task"))
    ahead = ScanAhead(xattrs=False)
    assert scan_ahead_threads() == before  # not started until something is submitted
    ahead.submit(dirs)
    assert scan_ahead_threads() == before + 1
    assert len(os.listdir("/proc/self/task")) == tasks + 1
    ahead.take(dirs[0])
    ahead.close()
    assert scan_ahead_threads() == before
    assert len(os.listdir("/proc/self/task")) == tasks
    assert ahead.take(dirs[1]) is None and ahead.submit(dirs) == 0
    ahead.close()  # again: nothing


def test_a_forked_child_scans_nothing_ahead_and_does_not_hang(tmp_path: Path) -> None:
    for n in range(20):
        (tmp_path / f"d{n:02}").mkdir()
    dirs = _walk_order(tmp_path)
    with ScanAhead(xattrs=False) as ahead:
        ahead.submit(dirs[:10])
        pid = os.fork()
        if pid == 0:  # the child: no thread here, its copy is left alone
            ok = ahead.take(dirs[0]) is None and ahead.submit(dirs[10:]) == 0
            ahead.close()
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        _until(ahead, "scans", 10)
        assert all(_taken(ahead, d) is not None for d in dirs[:10])


def test_listing_takes_or_scans_now(tmp_path: Path) -> None:
    """``listing``: the scan made ahead if ready (True), else one made now (False), the same
    either way; after close, scan_directory's."""
    _tree(tmp_path)
    dirs = _walk_order(tmp_path)
    with ScanAhead(xattrs=True) as ahead:
        got, ahead_of_walk = ahead.listing(dirs[0])  # nothing submitted: scanned now
        assert not ahead_of_walk
        _same(got, scan_directory(dirs[0], xattrs=True))
        ahead.submit(dirs[1:])
        _until(ahead, "scans", len(dirs) - 1)
        for path in dirs[1:]:
            got, ahead_of_walk = ahead.listing(path)
            assert ahead_of_walk
            _same(got, scan_directory(path, xattrs=True))
        with pytest.raises(FileNotFoundError):
            ahead.listing(os.fsencode(tmp_path / "missing"))
    got, ahead_of_walk = ahead.listing(dirs[0])
    assert not ahead_of_walk
    _same(got, scan_directory(dirs[0], xattrs=True))


def test_exploring_a_listing_made_now_queues_its_subdirectories(tmp_path: Path) -> None:
    """With ``explore`` the walk submits nothing: a directory it lists itself has its
    subdirectories queued by that same call (the thread starting then), but the one to skip."""
    _tree(tmp_path)
    root = os.fsencode(tmp_path)
    skip = os.fsencode(tmp_path / "z")
    dirs = [d for d in _walk_order(tmp_path) if d != skip]
    before = scan_ahead_threads()
    with ScanAhead(xattrs=False, explore=skip) as ahead:
        _, ahead_of_walk = ahead.listing(root)
        assert not ahead_of_walk and scan_ahead_threads() == before + 1
        _until(ahead, "scans", len(dirs))
        for path in dirs:
            got, ahead_of_walk = ahead.listing(path)
            assert ahead_of_walk
            _same(got, scan_directory(path, xattrs=False))
        assert ahead.take(skip) is None
        stats = ahead.stats()
    assert stats["scans"] == len(dirs) and stats["missing"] == 1
