"""write_delta_increment: one changed file's reverse increment written in C. Its bytes must be
those of the reference tools with rdiff-backup's parameters (Debian's ``rdiff``: an MD4 +
rollsum signature of the new version with 8-byte strong sums, the delta of the old version
against it read 1 MiB at a time; then Python's ``gzip.GzipFile`` at level 9 with the name and
mtime in the header), and patching the new version with it must give the old one back. Each
failure must leave nothing at the target (and never touch a file already there), and no
descriptor open."""

from __future__ import annotations

import dataclasses
import errno
import gzip
import io
import os
import random
import resource
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from rdb_fastio.increment import (
    DELTA_LIMIT,
    DeltaBatch,
    DeltaJob,
    DeltaStatus,
    write_delta_increment,
)

RDIFF = "/usr/bin/rdiff"
SIGNATURE = [RDIFF, "--force", "-H", "md4", "-R", "rollsum", "-b"]
MD4_ROLLSUM = 0x72730136  # librsync's RS_MD4_SIG_MAGIC: MD4 strong sums, the old rollsum
MTIME = 1_700_000_000
TIMES = (1_600_000_000_123_456_789, 1_650_000_000_987_654_321)


def _block_len(size: int) -> int:
    """rdiff-backup's block length for a basis of size bytes (format reference §3.5)."""
    if size < 10240:
        return 64
    return (size >> (size.bit_length() // 2 + 4)) << 4


def _reference(work: Path, old: Path, new: Path, name: bytes | None) -> bytes:
    """The increment as the reference tools make it (gzipped with ``name``, if given)."""
    size = new.stat().st_size
    sig, delta = work / "ref.sig", work / "ref.delta"
    subprocess.run(
        [*SIGNATURE, str(_block_len(size)), "-S", "8", "signature", str(new), str(sig)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [RDIFF, "--force", "-I", str(1 << 20), "delta", str(sig), str(old), str(delta)],
        check=True,
        capture_output=True,
    )
    raw = delta.read_bytes()
    if name is None:
        return raw
    out = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", compresslevel=9, fileobj=out, mtime=MTIME) as gz:
        gz.write(raw)
    return out.getvalue()


def _job(old: Path, new: Path, target: Path, gzipped: bool, **changes: object) -> DeltaJob:
    new_size = new.stat().st_size if new.exists() else 0
    fields: dict[str, object] = {
        "old": os.fsencode(old),
        "new": os.fsencode(new),
        "target": os.fsencode(target),
        "old_size": old.stat().st_size if old.exists() else 0,
        "new_size": new_size,
        "block_len": _block_len(new_size),
        "strong_len": 8,
        "magic": MD4_ROLLSUM,
        "mode": 0o640,
        "times_ns": TIMES,
        "gzip_name": target.name.removesuffix(".gz").encode() if gzipped else None,
        "gzip_mtime": MTIME,
    }
    fields.update(changes)
    return DeltaJob(**fields)  # type: ignore[arg-type]


def _pair(rng: random.Random, case: str, size: int) -> tuple[bytes, bytes]:
    """(old, new) versions of one file."""
    if rng.random() < 0.5:
        base = rng.randbytes(size)
    else:  # text: compressible, with repeats
        base = b"".join(b"line %d of the file\n" % rng.randrange(50) for _ in range(size // 8))
        base = base[:size]
    if case == "grown":  # the new version is bigger: old = a prefix
        return base[: rng.randint(0, size)], base
    if case == "shrunk":
        return base + rng.randbytes(rng.randint(1, 20_000)), base
    if case == "identical":
        return base, base
    if case == "unrelated":
        return rng.randbytes(rng.randint(0, size + 100)), base
    if case == "new empty":
        return base, b""
    if case == "old empty":
        return b"", base
    edited = bytearray(base)
    for _ in range(rng.randint(1, 30)):
        at = rng.randrange(len(edited) + 1)
        edited[at:at] = rng.randbytes(rng.randint(0, 300))
        del edited[at + rng.randint(0, 300) : at + rng.randint(300, 600)]
    return bytes(edited), base


CASES = ["grown", "shrunk", "identical", "unrelated", "new empty", "old empty", "edited"]
SIZES = [0, 1, 63, 64, 65, 4095, 10_239, 10_240, 100_000, (1 << 20) - 1, 1 << 20, 3_000_001]


@pytest.mark.parametrize("seed", range(40))
def test_same_bytes_as_the_reference_tools(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    case = CASES[seed % len(CASES)]
    older, newer = _pair(rng, case, rng.choice(SIZES))
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_bytes(older)
    new.write_bytes(newer)
    for gzipped in (False, True):
        target = tmp_path / ("file.2024-01-01T00:00:00Z.diff" + (".gz" if gzipped else ""))
        done = write_delta_increment(_job(old, new, target, gzipped))
        assert (done.status, done.error) == (DeltaStatus.DONE, 0)
        st = target.stat()  # before it is read (which may set its atime)
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert (st.st_atime_ns, st.st_mtime_ns) == TIMES
        want = _reference(tmp_path, old, new, target.name[:-3].encode() if gzipped else None)
        assert target.read_bytes() == want, (case, len(older), len(newer), gzipped)
        assert (done.size, done.read) == (len(want), len(older))
        # and it is what it is for: the new version patched with it is the old one
        delta = gzip.decompress(want) if gzipped else want
        (tmp_path / "delta").write_bytes(delta)
        subprocess.run(
            [RDIFF, "--force", "patch", str(new), str(tmp_path / "delta"), str(tmp_path / "back")],
            check=True,
        )
        assert (tmp_path / "back").read_bytes() == older


def test_at_the_limit(tmp_path: Path) -> None:
    rng = random.Random(7)
    newer = rng.randbytes(DELTA_LIMIT)
    older = newer[:3_000_000] + rng.randbytes(5000) + newer[3_000_000 : DELTA_LIMIT - 5000]
    old, new, target = tmp_path / "old", tmp_path / "new", tmp_path / "big.diff.gz"
    old.write_bytes(older)
    new.write_bytes(newer)
    done = write_delta_increment(_job(old, new, target, True))
    assert done.status == DeltaStatus.DONE
    assert target.read_bytes() == _reference(tmp_path, old, new, b"big.diff")


@pytest.mark.skipif(os.geteuid() != 0, reason="sets another owner: root only")
def test_owner_set_and_then_the_mode(tmp_path: Path) -> None:
    old, new, target = tmp_path / "old", tmp_path / "new", tmp_path / "t.diff"
    old.write_bytes(b"old bytes\n" * 100)
    new.write_bytes(b"new bytes\n" * 100)
    done = write_delta_increment(_job(old, new, target, False, owner=(1234, 5678), mode=0o6755))
    assert done.status == DeltaStatus.DONE
    st = target.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o6755)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_each_failure_leaves_nothing_and_no_descriptor(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_bytes(b"old version\n" * 500)
    new.write_bytes(b"new version\n" * 400)
    link = tmp_path / "link"
    link.symlink_to(old)
    taken = tmp_path / "taken.diff"
    taken.write_bytes(b"an earlier increment")
    target = tmp_path / "t.diff.gz"
    cases: list[tuple[DeltaJob, DeltaStatus, int]] = [
        (_job(old, new, taken, False), DeltaStatus.CREATE, 17),  # EEXIST
        (_job(old, new, tmp_path / "no" / "t.diff", False), DeltaStatus.CREATE, 2),
        (_job(old, tmp_path / "gone", target, True), DeltaStatus.OPEN_NEW, 2),
        (_job(tmp_path / "gone", new, target, True), DeltaStatus.OPEN_OLD, 2),
        (_job(link, new, target, True), DeltaStatus.OPEN_OLD, 40),  # ELOOP: no symlink followed
        (_job(old, new, target, True, old_size=5), DeltaStatus.CHANGED, 0),
        (_job(old, new, target, True, new_size=7), DeltaStatus.CHANGED, 0),
        (_job(old, tmp_path, target, True), DeltaStatus.CHANGED, 0),  # a directory
        (_job(old, new, target, True, strong_len=100), DeltaStatus.RSYNC, 0),  # > MD4
    ]
    before = _open_fds()
    for _ in range(3):
        for job, status, error in cases:
            done = write_delta_increment(job)
            assert (done.status, done.error) == (status, error), job
            assert not target.exists()
    assert taken.read_bytes() == b"an earlier increment"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "new", "old", "taken.diff"]
    for _ in range(20):
        assert write_delta_increment(_job(old, new, target, True)).status == DeltaStatus.DONE
        target.unlink()
    assert _open_fds() == before


def test_a_snapshot_is_the_old_version_or_nothing(tmp_path: Path) -> None:
    """``snapshot=True``: the old version whole, gzipped as Python's gzip.GzipFile writes it or
    not, with the old file's attributes; a version missing, a symlink, another size or a
    directory leave nothing and no descriptor."""
    old = tmp_path / "old"
    old.write_bytes(b"the old version\n" * 3000)
    link = tmp_path / "link"
    link.symlink_to(old)
    none = tmp_path / "none"  # (never read: a snapshot reads no new version)
    target = tmp_path / "t.snapshot.gz"
    before = _open_fds()
    for gzipped in (True, False):
        done = write_delta_increment(_job(old, none, target, gzipped, snapshot=True))
        assert (done.status, done.error) == (DeltaStatus.DONE, 0)
        st = target.stat()
        assert stat.S_IMODE(st.st_mode) == 0o640 and (st.st_atime_ns, st.st_mtime_ns) == TIMES
        want = old.read_bytes()
        if gzipped:
            out = io.BytesIO()
            with gzip.GzipFile(
                filename=b"t.snapshot", mode="wb", compresslevel=9, fileobj=out, mtime=MTIME
            ) as gz:
                gz.write(want)
            want = out.getvalue()
        assert target.read_bytes() == want
        assert (done.size, done.read) == (len(want), old.stat().st_size)
        target.unlink()
    cases: list[tuple[DeltaJob, DeltaStatus, int]] = [
        (_job(tmp_path / "gone", none, target, True, snapshot=True), DeltaStatus.OPEN_OLD, 2),
        (_job(link, none, target, True, snapshot=True), DeltaStatus.OPEN_OLD, 40),
        (_job(old, none, target, True, snapshot=True, old_size=5), DeltaStatus.CHANGED, 0),
        (_job(old, none, target, False, snapshot=True, old_size=10**6), DeltaStatus.CHANGED, 0),
        (_job(tmp_path, none, target, True, snapshot=True), DeltaStatus.CHANGED, 0),
    ]
    for job, status, error in cases:
        done = write_delta_increment(job)
        assert (done.status, done.error) == (status, error), job
        assert not target.exists()
    assert _open_fds() == before


def test_a_write_that_fails_midway_leaves_nothing(tmp_path: Path) -> None:
    """The increment's file system refusing more bytes mid-write (as a full disk: here the
    file size limit, EFBIG, after a first part was written): status WRITE with its errno,
    nothing at the target, no descriptor left."""
    rng = random.Random(11)
    old, new, target = tmp_path / "old", tmp_path / "new", tmp_path / "t.diff"
    old.write_bytes(rng.randbytes(300_000))  # unrelated versions: a delta of ~300 KB
    new.write_bytes(rng.randbytes(300_000))
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN  # (Python's): write fails
    before = _open_fds()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        done = write_delta_increment(_job(old, new, target, False))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert (done.status, done.error) == (DeltaStatus.WRITE, errno.EFBIG)
    assert not target.exists()
    assert _open_fds() == before
    assert write_delta_increment(_job(old, new, target, False)).status == DeltaStatus.DONE


def test_a_batch_writes_each_as_alone(tmp_path: Path) -> None:
    """DeltaBatch: many increments in one call, each the bytes it has written alone, and a
    failed one in the middle fails alone."""
    rng = random.Random(11)
    batch = DeltaBatch()
    alone = []
    for n in range(12):
        older, newer = _pair(rng, CASES[n % len(CASES)], rng.choice(SIZES[:9]))
        old, new = tmp_path / f"old{n}", tmp_path / f"new{n}"
        old.write_bytes(older)
        new.write_bytes(newer)
        job = _job(old, new, tmp_path / f"t{n}.diff.gz", n % 2 == 0)
        if n == 5:
            job = _job(tmp_path / "gone", new, tmp_path / f"t{n}.diff.gz", True)
        assert batch.add(job) == n
        solo = tmp_path / f"solo{n}.diff.gz"
        alone.append(write_delta_increment(dataclasses.replace(job, target=os.fsencode(solo))))
    before = _open_fds()
    batch.run()
    assert _open_fds() == before
    for n in range(12):
        done = batch.result(n)
        assert done == alone[n]
        if n == 5:
            assert done.status == DeltaStatus.OPEN_OLD and not (tmp_path / "t5.diff.gz").exists()
        else:
            made = (tmp_path / f"t{n}.diff.gz").read_bytes()
            assert (
                done.status == DeltaStatus.DONE
                and made == (tmp_path / f"solo{n}.diff.gz").read_bytes()
            )
