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
