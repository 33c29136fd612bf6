"""A directory scanned in one C call (rdb_fastio.scan_directory), as rdb-mirror's walk does:
the same names and lstat fields as os.listdir and os.lstat, sorted; the size of each
entry's extended attribute list when asked; a clear OSError for a directory it cannot read."""

from __future__ import annotations

import errno
import os
import random
import socket
from pathlib import Path

import pytest

from rdb_fastio import scan_directory

FIELDS = (
    "st_mode",
    "st_ino",
    "st_dev",
    "st_nlink",
    "st_uid",
    "st_gid",
    "st_size",
    "st_atime_ns",
    "st_mtime_ns",
    "st_ctime_ns",
    "st_atime",
    "st_mtime",
    "st_ctime",
    "st_blksize",
    "st_blocks",
    "st_rdev",
)


def _xattrs_work(path: Path) -> bool:
    try:
        os.setxattr(path, "user.probe", b"1")
        os.removexattr(path, "user.probe")
        return True
    except OSError:
        return False


def test_names_and_lstat_as_python_sees_them(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"12345")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("nowhere")
    os.mkfifo(tmp_path / "fifo")
    os.link(tmp_path / "file", tmp_path / "hard")
    os.utime(tmp_path / "file", ns=(-1_500_000_001, 1_600_000_000_123_456_789))
    name = bytes(range(1, 47)).replace(b"/", b"_") + b"\xff\n"
    (tmp_path / os.fsdecode(name)).write_bytes(b"")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        scanned = scan_directory(os.fsencode(tmp_path), xattrs=False)
        assert [e[0] for e in scanned] == sorted(os.listdir(os.fsencode(tmp_path)))
        for got_name, st, error, xattr_bytes in scanned:
            want = os.lstat(os.path.join(os.fsencode(tmp_path), got_name))
            assert st is not None and error == 0 and xattr_bytes == -1
            assert {f: getattr(st, f) for f in FIELDS} == {f: getattr(want, f) for f in FIELDS}


def test_extended_attribute_list_sizes(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"")
    (tmp_path / "tagged").write_bytes(b"")
    (tmp_path / "link").symlink_to("plain")
    if not _xattrs_work(tmp_path / "tagged"):
        pytest.skip("this file system keeps no user extended attributes")
    os.setxattr(tmp_path / "tagged", "user.colour", b"blue")
    sizes = {e[0]: e[3] for e in scan_directory(os.fsencode(tmp_path), xattrs=True)}
    assert sizes[b"plain"] == len(
        b"".join(n.encode() + b"\0" for n in os.listxattr(tmp_path / "plain"))
    )
    assert sizes[b"tagged"] == len(b"user.colour\0") + sizes[b"plain"]
    assert sizes[b"link"] == -1  # a symlink's attributes are not kept: not asked


def test_a_directory_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_directory(os.fsencode(tmp_path / "missing"), xattrs=False)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError) as raised:
        scan_directory(os.fsencode(tmp_path / "file"), xattrs=False)
    assert raised.value.errno == errno.ENOTDIR
    assert raised.value.filename == os.fsdecode(tmp_path / "file")


def test_an_empty_directory(tmp_path: Path) -> None:
    assert scan_directory(os.fsencode(tmp_path), xattrs=True) == []


def test_times_past_64_bits_of_nanoseconds(tmp_path: Path, far_future_ns: int) -> None:
    """2300-01-01 (ext4, XFS and btrfs keep it; nanoseconds since 1970 overflow 64 bits after
    2262-04-11): the times os.lstat gives, not a wrapped-around count (the walk then saw
    another key than the reader, and the file was never backed up)."""
    (tmp_path / "far").write_bytes(b"future")
    os.utime(tmp_path / "far", ns=(far_future_ns + 1, far_future_ns))
    want = os.lstat(tmp_path / "far")
    ((name, st, error, _),) = scan_directory(os.fsencode(tmp_path), xattrs=False)
    assert (name, error) == (b"far", 0) and st is not None
    ns_fields = ("st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_atime", "st_mtime")
    assert {f: getattr(st, f) for f in ns_fields} == {f: getattr(want, f) for f in ns_fields}


def test_a_directory_over_the_limit_is_stat_ed_one_entry_at_a_time(tmp_path: Path) -> None:
    """Over ``limit`` entries the stats are not all held at once (memory bounded by the
    names, as os.listdir's), and the entries are the same, in the same order."""
    for n in range(7):
        (tmp_path / f"f{n}").write_bytes(b"x" * n)
    (tmp_path / "link").symlink_to("f0")
    whole = scan_directory(os.fsencode(tmp_path), xattrs=False)
    lazy = scan_directory(os.fsencode(tmp_path), xattrs=False, limit=3)
    assert not isinstance(lazy, list)  # a generator: one lstat per entry as it is used
    got = list(lazy)
    assert [e[0] for e in got] == [e[0] for e in whole]
    for (_, st, error, size), (_, want, _, _) in zip(got, whole, strict=True):
        assert st is not None and want is not None and (error, size) == (0, -1)
        assert {f: getattr(st, f) for f in FIELDS} == {f: getattr(want, f) for f in FIELDS}
    assert list(scan_directory(os.fsencode(tmp_path), xattrs=False, limit=8)) == whole


def test_float_times_are_those_of_lstat_to_the_last_bit(tmp_path: Path) -> None:
    """The packed rows carry the float times made in C: the same double as os.lstat's."""
    rng = random.Random(7)
    for n in range(300):
        path = tmp_path / f"f{n}"
        path.write_bytes(b"")
        ns = rng.randrange(-(2**40), 2**62)
        os.utime(path, ns=(ns, rng.randrange(0, 2**62)))
    for name, st, _error, _size in scan_directory(os.fsencode(tmp_path), xattrs=False):
        want = os.lstat(tmp_path / os.fsdecode(name))
        assert st is not None
        got = (st.st_atime, st.st_mtime, st.st_ctime, st.st_atime_ns, st.st_mtime_ns)
        assert got == (
            want.st_atime,
            want.st_mtime,
            want.st_ctime,
            want.st_atime_ns,
            want.st_mtime_ns,
        )
