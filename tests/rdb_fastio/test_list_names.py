"""rdb_fastio.list_names: a directory's names in one C call, as os.listdir gives them."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdb_fastio import list_names

ODD = [b"plain", b"with space", b"new\nline", b"back\\slash", b"\xff\xfe not utf-8", b"x" * 255]


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield tmp_path, fd
    finally:
        os.close(fd)


def test_names_as_listdir_gives_them(directory: tuple[Path, int]) -> None:
    path, fd = directory
    for name in ODD:
        Path(os.fsdecode(os.fsencode(path) + b"/" + name)).write_bytes(b"")
    os.mkdir(path / "sub")
    os.symlink("nowhere", path / "dangling")
    many = [f"f{n:05d}".encode() for n in range(3000)]  # more than one getdents buffer
    for name in many:
        (path / os.fsdecode(name)).write_bytes(b"")
    expected = sorted([*ODD, b"sub", b"dangling", *many])
    assert sorted(list_names(fd)) == expected
    # its own descriptor: the caller's offset is not moved, a second listing is whole too
    assert sorted(map(os.fsencode, os.listdir(fd))) == expected
    assert sorted(list_names(fd)) == expected


def test_an_empty_directory(directory: tuple[Path, int]) -> None:
    assert list_names(directory[1]) == []


def test_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    fd = os.open(tmp_path / "file", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as raised:
            list_names(fd)
        assert raised.value.errno == errno.ENOTDIR
    finally:
        os.close(fd)


def test_a_closed_descriptor() -> None:
    fd = os.open("/", os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError) as raised:
        list_names(fd)
    assert raised.value.errno == errno.EBADF
