"""Files copied many per C call (rdb_fastio.copy_files), as a restore copies mirror files:
bytes, SHA1, mode, owner and times as asked; no symlink followed, no FIFO waited on; every
failure reported for its file alone, with nothing left behind in the target directory."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.rdb_fastio.helpers import FAILING, plant_failures, three_dir_pairs

from rdb_fastio import CopyStatus, FileCopy, copy_files, copy_files_between

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path, int, int]]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    src_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    dst_fd = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield src, dst, src_fd, dst_fd
    finally:
        os.close(src_fd)
        os.close(dst_fd)


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def test_files_get_their_bytes_mode_and_times(dirs: tuple[Path, Path, int, int]) -> None:
    src, dst, src_fd, dst_fd = dirs
    contents = {"empty": b"", "one": b"x", "mid": os.urandom(70_000), "big": os.urandom(900_000)}
    for name, data in contents.items():
        (src / name).write_bytes(data)
    jobs = [
        FileCopy(b"empty", b"empty", 0o600),
        FileCopy(b"one", b"one", 0o644, size=1, sha1=_sha1(b"x")),
        FileCopy(b"mid", b"mid-copy", 0o600, mode=0o4751, times_ns=(-1, 1_600_000_000_5)),
        FileCopy(
            b"big",
            b"big",
            0o640,
            size=900_000,
            sha1=_sha1(contents["big"]),
            times_ns=(1_500_000_000_000_000_001, 1_600_000_000_000_000_002),
        ),
    ]
    results = copy_files(src_fd, dst_fd, jobs)
    assert [r.status for r in results] == [CopyStatus.DONE] * 4
    assert [r.size for r in results] == [0, 1, 70_000, 900_000]
    assert [r.sha1 for r in results] == [
        hashlib.sha1(contents[n]).hexdigest() for n in ("empty", "one", "mid", "big")
    ]
    mid, big = (dst / "mid-copy").lstat(), (dst / "big").lstat()  # before a read moves atime
    assert (dst / "empty").read_bytes() == b""
    assert (dst / "mid-copy").read_bytes() == contents["mid"]
    assert (dst / "big").read_bytes() == contents["big"]
    assert stat.S_IMODE(mid.st_mode) == 0o4751
    assert (mid.st_atime_ns, mid.st_mtime_ns) == (-1, 1_600_000_000_5)
    assert stat.S_IMODE(big.st_mode) == 0o640 & ~_umask()
    assert big.st_mtime_ns == 1_600_000_000_000_000_002


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.skipif(not IS_ROOT, reason="giving files away needs root")
def test_owner_then_mode_keeps_set_id_bits(dirs: tuple[Path, Path, int, int]) -> None:
    src, dst, src_fd, dst_fd = dirs
    (src / "f").write_bytes(b"data")
    job = FileCopy(b"f", b"f", 0o600, owner=(1234, 5678), mode=0o6755)
    assert copy_files(src_fd, dst_fd, [job])[0].status == CopyStatus.DONE
    st = (dst / "f").lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o6755)


def test_each_failure_is_reported_for_its_file_and_leaves_nothing(
    dirs: tuple[Path, Path, int, int],
) -> None:
    src, dst, src_fd, dst_fd = dirs
    for name in ("fine", "fine2"):
        (src / name).write_bytes(b"12345")
    plant_failures(src)
    (dst / "taken").write_bytes(b"already here")
    jobs = [
        FileCopy(b"fine", b"fine", 0o600, size=5, sha1=_sha1(b"12345")),
        *FAILING,
        FileCopy(b"fine2", b"fine2", 0o600),
    ]
    results = copy_files(src_fd, dst_fd, jobs)
    got = {job.name.decode(): (r.status, r.error) for job, r in zip(jobs, results, strict=True)}
    assert got == {
        "fine": (CopyStatus.DONE, 0),
        "gone": (CopyStatus.SOURCE_OPEN, errno.ENOENT),
        "link": (CopyStatus.SOURCE_OPEN, errno.ELOOP),
        "fifo": (CopyStatus.SOURCE_NOT_REGULAR, 0),
        "dir": (CopyStatus.SOURCE_NOT_REGULAR, 0),
        "short": (CopyStatus.SIZE, 0),
        "altered": (CopyStatus.SHA1, 0),
        "taken": (CopyStatus.CREATE, errno.EEXIST),
        "fine2": (CopyStatus.DONE, 0),
    }
    assert results[5].size == 5  # what was read, for the message
    assert results[6].sha1 == hashlib.sha1(b"12345").hexdigest()
    assert sorted(p.name for p in dst.iterdir()) == ["fine", "fine2", "taken"]
    assert (dst / "taken").read_bytes() == b"already here"


def test_no_symlink_is_followed_in_the_target(dirs: tuple[Path, Path, int, int]) -> None:
    src, dst, src_fd, dst_fd = dirs
    (src / "f").write_bytes(b"new")
    outside = dst.parent / "outside"
    outside.write_bytes(b"keep")
    (dst / "f").symlink_to(outside)
    result = copy_files(src_fd, dst_fd, [FileCopy(b"f", b"f", 0o600)])[0]
    assert (result.status, result.error) == (CopyStatus.CREATE, errno.EEXIST)
    assert outside.read_bytes() == b"keep"
    assert (dst / "f").is_symlink()


def test_nothing_to_copy() -> None:
    assert copy_files(-1, -1, []) == []


def test_the_source_keeps_its_access_time(dirs: tuple[Path, Path, int, int]) -> None:
    """A restore reads the repository without touching its inodes (O_NOATIME): with
    relatime, reading a file whose atime is over a day old would otherwise update it."""
    src, _, src_fd, dst_fd = dirs
    (src / "f").write_bytes(b"old backup")
    os.utime(src / "f", ns=(1_000_000_000, 2_000_000_000))
    assert copy_files(src_fd, dst_fd, [FileCopy(b"f", b"f", 0o600)])[0].status == CopyStatus.DONE
    assert (src / "f").stat().st_atime_ns == 1_000_000_000


def test_times_past_64_bits_of_nanoseconds_are_set(
    dirs: tuple[Path, Path, int, int], far_future_ns: int
) -> None:
    """2300-01-01 (after 2262-04-11 nanoseconds since 1970 no longer fit in 64 bits): a
    restore gives such a file its recorded time, as os.utime does on the general way."""
    src, dst, src_fd, dst_fd = dirs
    (src / "far").write_bytes(b"future")
    far = far_future_ns
    job = FileCopy(b"far", b"far", 0o600, times_ns=(far + 1, far))
    assert copy_files(src_fd, dst_fd, [job])[0].status == CopyStatus.DONE
    st = (dst / "far").lstat()
    assert (st.st_atime_ns, st.st_mtime_ns) == (far + 1, far)


def test_files_of_many_directories_in_one_call(tmp_path: Path) -> None:
    """copy_files_between: each file from and to its own pair of directories, in order, a
    failure reported for its file alone."""
    with three_dir_pairs(tmp_path) as pairs:
        jobs = []
        for n, (src, dst) in enumerate(pairs):
            wanted = _sha1(b"%d" % n) if n != 1 else _sha1(b"not it")
            jobs.append((src, dst, FileCopy(b"f", b"g", 0o600, size=1, sha1=wanted)))
        results = copy_files_between(jobs)
    assert [r.status for r in results] == [CopyStatus.DONE, CopyStatus.SHA1, CopyStatus.DONE]
    assert (tmp_path / "dst0" / "g").read_bytes() == b"0"
    assert not (tmp_path / "dst1" / "g").exists()
    assert (tmp_path / "dst2" / "g").read_bytes() == b"2"
    assert not (tmp_path / "dst0" / "f").exists()
