"""CopyPlan: files packed as they are added and copied by one C call, as a restore's runs copy
mirror files. It must do exactly what copy_files_between does with the same files (that
function's own tests say what that is): the same files made with the same bytes, mode, owner
and times, the same failures with the same errno, size and SHA1, nothing left of a failed file;
only the files copied are not reported one by one (their bytes are summed)."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.rdb_fastio.helpers import FAILING, plant_failures, three_dir_pairs

from rdb_fastio import Copied, CopyPlan, CopyStatus, FileCopy, copy_files_between

IS_ROOT = os.geteuid() == 0


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


@pytest.fixture
def source(tmp_path: Path) -> Iterator[int]:
    """A directory of every kind of source a copy meets, opened."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "fine").write_bytes(b"12345")
    (src / "empty").write_bytes(b"")
    (src / "big").write_bytes(b"\x07" * 900_000)
    (src / "set-id").write_bytes(b"run me")
    plant_failures(src)
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def _jobs(far_future_ns: int) -> list[FileCopy]:
    owner = (1234, 5678) if IS_ROOT else None
    return [
        FileCopy(b"fine", b"fine", 0o644, size=5, sha1=_sha1(b"12345")),
        FileCopy(b"empty", b"empty", 0o600, size=0, times_ns=(-1, 1_600_000_000_5)),
        FileCopy(b"big", b"big-copy", 0o640, 900_000, _sha1(b"\x07" * 900_000), owner),
        FileCopy(b"set-id", b"set-id", 0o600, owner=owner, mode=0o6751),
        FileCopy(b"fine", b"far", 0o600, times_ns=(far_future_ns + 1, far_future_ns)),
        *FAILING,
    ]


def _target(path: Path) -> int:
    path.mkdir()
    (path / "taken").write_bytes(b"already here")
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def _tree(path: Path) -> dict[str, tuple[bytes, int, int, int, tuple[int, int] | None]]:
    """Each file's bytes, mode, owner, and its times where a job set them (the others have
    the time they were made)."""
    out = {}
    for entry in sorted(path.iterdir()):
        st = entry.lstat()
        times = (st.st_atime_ns, st.st_mtime_ns) if entry.name in ("empty", "far") else None
        out[entry.name] = (
            entry.read_bytes(),
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            times,
        )
    return out


def test_a_plan_copies_as_copy_files_between_does(
    tmp_path: Path, source: int, far_future_ns: int
) -> None:
    jobs = _jobs(far_future_ns)
    one_by_one, packed = tmp_path / "one-by-one", tmp_path / "packed"
    first, second = _target(one_by_one), _target(packed)
    try:
        expected = copy_files_between([(source, first, job) for job in jobs])
        plan = CopyPlan()
        for job in jobs:
            plan.add(
                source,
                second,
                job.source,
                job.name,
                job.create_mode,
                job.size,
                job.sha1,
                job.owner,
                job.mode,
                job.times_ns,
            )
        assert plan.count == len(jobs)
        done = plan.copy()
    finally:
        os.close(first)
        os.close(second)
    copied = [r for r in expected if r.status == CopyStatus.DONE]
    assert len(copied) == 5  # the cases above: five copied, seven not
    assert done.bytes == sum(r.size for r in copied) == 10 + 900_000 + 6
    assert done.failed == [(n, r) for n, r in enumerate(expected) if r.status != CopyStatus.DONE]
    assert [r.status for _, r in done.failed] == [
        CopyStatus.SOURCE_OPEN,
        CopyStatus.SOURCE_OPEN,
        CopyStatus.SOURCE_NOT_REGULAR,
        CopyStatus.SOURCE_NOT_REGULAR,
        CopyStatus.SIZE,
        CopyStatus.SHA1,
        CopyStatus.CREATE,
    ]
    made = _tree(packed)  # before anything reads them (relatime moves atimes)
    assert made == _tree(one_by_one)
    assert made["far"][4] == (far_future_ns + 1, far_future_ns)
    assert made["empty"][4] == (-1, 1_600_000_000_5)
    assert sorted(p.name for p in packed.iterdir()) == [
        "big-copy",
        "empty",
        "far",
        "fine",
        "set-id",
        "taken",
    ]
    assert stat.S_IMODE((packed / "set-id").lstat().st_mode) == 0o6751


def test_files_of_many_directories_in_one_plan(tmp_path: Path) -> None:
    plan = CopyPlan()
    with three_dir_pairs(tmp_path) as pairs:
        for n, (src, dst) in enumerate(pairs):
            wanted = _sha1(b"%d" % n) if n != 1 else _sha1(b"not it")
            plan.add(src, dst, b"f", b"g", 0o600, 1, wanted)
        done = plan.copy()
    assert done.bytes == 2
    assert done.failed == [(1, Copied(CopyStatus.SHA1, 0, 1, hashlib.sha1(b"1").hexdigest()))]
    assert [(tmp_path / f"dst{n}" / "g").exists() for n in range(3)] == [True, False, True]


def test_an_empty_plan_copies_nothing() -> None:
    assert CopyPlan().copy().failed == []


def test_a_name_with_a_nul_byte_is_refused(tmp_path: Path) -> None:
    """It would end the name early in C: another file would be copied or made."""
    plan = CopyPlan()
    with pytest.raises(ValueError, match="NUL"):
        plan.add(3, 4, b"a\0b", b"a", 0o600)
    with pytest.raises(ValueError, match="NUL"):
        plan.add(3, 4, b"a", b"a\0../x", 0o600)
    assert plan.count == 0
