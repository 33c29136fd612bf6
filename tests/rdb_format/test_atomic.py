"""Atomic replace, exclusive create and durable removal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdb_format.atomic import (
    atomic_writer,
    create_exclusive,
    fsync_dir,
    is_temp_name,
    remove_durable,
    write_atomic,
)


def test_write_atomic_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "current_mirror.2026-11-22T00:21:20+01:00.data"
    write_atomic(target, b"PID 1\n")
    assert target.read_bytes() == b"PID 1\n"
    assert target.stat().st_mode & 0o777 == 0o600
    write_atomic(target, b"PID 2\n", mode=0o644)
    assert target.read_bytes() == b"PID 2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_streaming_writer(tmp_path: Path) -> None:
    target = tmp_path / "big"
    with atomic_writer(target) as stream:
        for i in range(1000):
            stream.write(b"%d\n" % i)
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_bytes().count(b"\n") == 1000


def test_failure_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    class BoomError(Exception):
        pass

    with pytest.raises(BoomError), atomic_writer(target) as stream:
        stream.write(b"new partial")
        raise BoomError
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_temp_names_are_rdiff_backups(tmp_path: Path) -> None:
    seen: list[str] = []
    with atomic_writer(tmp_path / "x") as stream:
        seen.extend(sorted(p.name for p in tmp_path.iterdir()))
        stream.write(b"1")
    assert len(seen) == 1
    assert is_temp_name(seen[0])
    assert is_temp_name(seen[0].encode())
    assert not is_temp_name("x")


def test_create_exclusive(tmp_path: Path) -> None:
    target = tmp_path / "lock"
    create_exclusive(target, b"one")
    with pytest.raises(FileExistsError):
        create_exclusive(target, b"two")
    assert target.read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]


def test_remove_durable(tmp_path: Path) -> None:
    target = tmp_path / "gone"
    target.write_bytes(b"")
    remove_durable(target)
    assert not target.exists()
    remove_durable(target, missing_ok=True)
    with pytest.raises(FileNotFoundError):
        remove_durable(target)
    fsync_dir(tmp_path)


def test_non_utf8_name(tmp_path: Path) -> None:
    target = tmp_path / os.fsdecode(b"bad\xffname")
    write_atomic(target, b"data")
    assert os.fsencode(tmp_path) + b"/bad\xffname" in [os.fsencode(p) for p in tmp_path.iterdir()]


# ---- create, never overwrite; batch sync -----------------------------------------------------


def test_exclusive_writer_creates_and_never_overwrites(tmp_path: Path) -> None:
    from rdb_format.atomic import exclusive_writer, is_temp_name

    target = tmp_path / "marker"
    with exclusive_writer(target) as stream:
        stream.write(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(FileExistsError), exclusive_writer(target, fsync=False) as stream:
        stream.write(b"second")
    assert target.read_bytes() == b"first"
    with pytest.raises(RuntimeError), exclusive_writer(tmp_path / "other") as stream:
        stream.write(b"half")
        raise RuntimeError("boom")
    assert not (tmp_path / "other").exists()
    assert not [p for p in tmp_path.iterdir() if is_temp_name(p.name)]


def test_exclusive_writer_does_not_follow_or_replace_a_symlink(tmp_path: Path) -> None:
    from rdb_format.atomic import create_exclusive

    (tmp_path / "real").write_bytes(b"keep")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(FileExistsError):
        create_exclusive(tmp_path / "link", b"x")
    assert (tmp_path / "real").read_bytes() == b"keep"


def test_open_temp_is_public(tmp_path: Path) -> None:
    import os

    from rdb_format.atomic import _open_temp, is_temp_name, open_temp

    fd, path = open_temp(tmp_path)
    os.close(fd)
    assert is_temp_name(path.name) and path.parent == tmp_path
    assert _open_temp is open_temp


def test_sync_batch_syncs_each_path_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from rdb_format import atomic
    from rdb_format.atomic import SyncBatch, write_atomic

    synced: list[int] = []
    real_fsync = os.fsync

    def counted_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counted_fsync)
    sub = tmp_path / "sub"
    sub.mkdir()
    batch = SyncBatch()
    for name in ("a", "b", "a"):
        write_atomic(sub / name, b"x", fsync=False)
        batch.add(sub / name)
    batch.add(tmp_path / "gone")  # renamed away since: skipped
    batch.add_dir(sub)
    batch.add_dir(tmp_path)
    assert not synced
    assert batch.sync() == 4  # a, b, sub/, tmp_path/
    assert len(synced) == 4 and len(batch) == 0
    assert batch.sync() == 0
    assert atomic.SyncBatch is SyncBatch


# ---- sync_filesystems: one syncfs per file system, sync() where there is none ----------------


def test_sync_filesystems_syncs_each_file_system_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdb_format import atomic

    calls: list[int] = []
    real = atomic._libc_syncfs()
    assert real is not None  # Linux has syncfs(2)

    def recording(fd: int) -> int:
        calls.append(os.fstat(fd).st_dev)
        return real(fd)

    monkeypatch.setattr(atomic, "_libc_syncfs", lambda: recording)
    (tmp_path / "sub").mkdir()
    assert atomic.sync_filesystems(tmp_path, tmp_path / "sub", tmp_path) == "syncfs"
    assert calls == [os.stat(tmp_path).st_dev]


def test_sync_filesystems_falls_back_to_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdb_format import atomic

    synced: list[bool] = []
    monkeypatch.setattr(atomic, "_libc_syncfs", lambda: None)
    monkeypatch.setattr(os, "sync", lambda: synced.append(True))
    assert atomic.sync_filesystems(tmp_path) == "sync"
    assert synced == [True]


def test_sync_filesystems_failure_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from rdb_format import atomic

    monkeypatch.setattr(atomic, "_libc_syncfs", lambda: lambda fd: -1)
    monkeypatch.setattr(atomic, "_errno", lambda: errno.EIO)
    with pytest.raises(OSError, match="syncfs failed") as raised:
        atomic.sync_filesystems(tmp_path)
    assert raised.value.errno == errno.EIO
