"""RebuildPlan: files rebuilt in C from a full copy (a plain file, or a gzipped snapshot) and a
chain of reverse deltas (``.diff.gz`` or plain ``.diff``), applied newest first. The deltas are
made by Debian's ``rdiff`` (librsync's own tool), so the versions each one gives back are known
exactly: every file must come out with those bytes and its mode, owner and times, and each
way a repository can be damaged must end in its own status with nothing left at the name."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rdb_fastio.rebuild import CHECK_ONLY, RebuildPlan, RebuildStatus, RepoFile

IS_ROOT = os.geteuid() == 0
RDIFF = "/usr/bin/rdiff"


def _rdiff(*args: str | Path) -> None:
    subprocess.run([RDIFF, *map(str, args)], check=True, capture_output=True)


def _delta(work: Path, newer: bytes, older: bytes) -> bytes:
    """The reverse delta that makes ``older`` from ``newer`` (as an increment holds it)."""
    (work / "newer").write_bytes(newer)
    (work / "older").write_bytes(older)
    _rdiff("--force", "signature", work / "newer", work / "sig")
    _rdiff("--force", "delta", work / "sig", work / "older", work / "delta")
    return (work / "delta").read_bytes()


def _versions(seed: int) -> list[bytes]:
    """Oldest first: a file that grows, shrinks, empties, comes back and changes in place."""
    rng = random.Random(seed)
    base = rng.randbytes(40_000)
    return [
        base,
        base[:10_000] + rng.randbytes(3_000) + base[10_000:] + rng.randbytes(9_000),
        base[5_000:20_000],
        b"",
        rng.randbytes(700) + base[:30_000],
        base[:30_000].replace(base[100:200], bytes(100)) + b"tail\n",
    ]


@dataclass
class History:
    """A directory holding the newest version (``mirror``) and a reverse delta from each
    version to the one before it (``d<n>``: makes version n from version n + 1; ``.gz`` for
    odd n), plus ``snap<n>.gz`` (version n gzipped) and ``plain<n>`` (version n)."""

    fd: int
    versions: list[bytes]

    def deltas_to(self, n: int) -> list[RepoFile]:
        """The deltas from the newest version back to version ``n``, newest first."""
        last = len(self.versions) - 1
        return [(self.fd, _delta_name(k).encode(), k % 2 == 1) for k in range(last - 1, n - 1, -1)]


def _delta_name(n: int) -> str:
    return f"d{n}.gz" if n % 2 == 1 else f"d{n}"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    repo = tmp_path_factory.mktemp("history")
    work = tmp_path_factory.mktemp("rdiff-work")
    versions = _versions(5)
    (repo / "mirror").write_bytes(versions[-1])
    for n in range(len(versions) - 1):
        delta = _delta(work, versions[n + 1], versions[n])
        if n % 2 == 1:
            (repo / _delta_name(n)).write_bytes(gzip.compress(delta))
        else:
            (repo / _delta_name(n)).write_bytes(delta)
        (repo / f"snap{n}.gz").write_bytes(gzip.compress(versions[n]))
        (repo / f"plain{n}").write_bytes(versions[n])
    fd = os.open(repo, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield History(fd, versions)
    finally:
        os.close(fd)


@pytest.fixture
def target(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path = tmp_path / "target"
    path.mkdir()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield path, fd
    finally:
        os.close(fd)


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def test_every_version_of_a_chain_is_rebuilt_exactly_with_its_attributes(
    history: History, target: tuple[Path, int]
) -> None:
    path, fd = target
    plan = RebuildPlan()
    owner = (1234, 5678) if IS_ROOT else None
    far_ns = (2**63 // 10**9 + 1000) * 10**9 + 7  # past 2262: no 64-bit nanoseconds
    for n, version in enumerate(history.versions[:-1]):
        plan.add(
            (history.fd, b"mirror", False),
            history.deltas_to(n),
            fd,
            b"v%d" % n,
            0o640,
            size=len(version),
            sha1=_sha1(version),
            owner=owner,
            times_ns=(1_600_000_000_123_456_789 + n, far_ns if n == 2 else 1_500_000_000 * 10**9),
        )
    done = plan.rebuild()
    assert done.failed == []
    assert done.bytes == sum(len(v) for v in history.versions[:-1])
    for n, version in enumerate(history.versions[:-1]):
        made = path / f"v{n}"
        st = made.lstat()  # before reading it changes the atime
        assert made.read_bytes() == version, n
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert st.st_atime_ns == 1_600_000_000_123_456_789 + n
        assert st.st_mtime_ns == (far_ns if n == 2 else 1_500_000_000 * 10**9)
        if IS_ROOT:
            assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_check_only_rebuilds_and_checks_every_version_and_writes_nothing(
    history: History, target: tuple[Path, int]
) -> None:
    """A CHECK_ONLY target (verify): each version is rebuilt and its SHA1 checked; a wrong
    one is SHA1 with the bytes' own digest; no file is made anywhere."""
    path, _ = target
    plan = RebuildPlan()
    last = len(history.versions) - 1
    for n, version in enumerate(history.versions):
        deltas = history.deltas_to(n) if n < last else []
        plan.add((history.fd, b"mirror", False), deltas, CHECK_ONLY, b"", 0, sha1=_sha1(version))
    plan.add((history.fd, b"mirror", False), [], CHECK_ONLY, b"", 0, sha1=_sha1(b"other"))
    listed = sorted(os.listdir(f"/proc/self/fd/{history.fd}"))
    done = plan.rebuild()
    assert done.bytes == sum(len(v) for v in history.versions)
    assert len(done.failed) == 1
    n, wrong = done.failed[0]
    assert (n, wrong.status, wrong.size) == (
        last + 1,
        RebuildStatus.SHA1,
        len(history.versions[-1]),
    )
    assert wrong.sha1 == _sha1(history.versions[-1]).hex()
    assert os.listdir(path) == []
    assert sorted(os.listdir(f"/proc/self/fd/{history.fd}")) == listed


def test_a_snapshot_basis_gzipped_or_plain_with_or_without_deltas(
    history: History, target: tuple[Path, int]
) -> None:
    """A .snapshot.gz (or .snapshot) as the full copy, alone or with the deltas before it;
    the mode set after the owner keeps set-ID bits."""
    path, fd = target
    versions = history.versions
    plan = RebuildPlan()
    plan.add((history.fd, b"snap3.gz", True), [], fd, b"alone.gz", 0o600, size=0, mode=0o6750)
    plan.add((history.fd, b"snap2.gz", True), [(history.fd, b"d1.gz", True)], fd, b"one", 0o600)
    plan.add(
        (history.fd, b"plain3", False),
        [(history.fd, b"d2", False), (history.fd, b"d1.gz", True), (history.fd, b"d0", False)],
        fd,
        b"three",
        0o644,
        size=len(versions[0]),
        sha1=_sha1(versions[0]),
    )
    plan.add((history.fd, b"plain4", False), [], fd, b"alone", 0o600, sha1=_sha1(versions[4]))
    assert plan.rebuild().failed == []
    assert (path / "alone.gz").read_bytes() == b""
    assert stat.S_IMODE((path / "alone.gz").stat().st_mode) == 0o6750
    assert (path / "one").read_bytes() == versions[1]
    assert (path / "three").read_bytes() == versions[0]
    assert (path / "alone").read_bytes() == versions[4]


def test_gzip_members_one_after_another_with_zero_padding(
    tmp_path: Path, target: tuple[Path, int]
) -> None:
    """As the general way reads a .gz: several members in a row, zero bytes between them."""
    path, fd = target
    (tmp_path / "members.gz").write_bytes(
        gzip.compress(b"one ") + bytes(7) + gzip.compress(b"two ") + gzip.compress(b"three")
    )
    src = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        plan = RebuildPlan()
        plan.add((src, b"members.gz", True), [], fd, b"out", 0o600, size=13)
        assert plan.rebuild().failed == []
    finally:
        os.close(src)
    assert (path / "out").read_bytes() == b"one two three"


@dataclass
class Damaged:
    """A repository directory with every kind of damage, next to a sound chain."""

    fd: int
    versions: list[bytes]


@pytest.fixture
def damaged(tmp_path: Path) -> Iterator[Damaged]:
    repo = tmp_path / "damaged"
    repo.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    rng = random.Random(9)
    older, newer = rng.randbytes(20_000), rng.randbytes(5_000)
    newer = older[:15_000] + newer
    delta = _delta(work, newer, older)
    (repo / "mirror").write_bytes(newer)
    (repo / "good.gz").write_bytes(gzip.compress(delta))
    (repo / "truncated.gz").write_bytes(gzip.compress(delta)[:-20])
    (repo / "not-gzip.gz").write_bytes(b"this is not gzip data at all")
    (repo / "bad-delta.gz").write_bytes(gzip.compress(b"rs\x026" + b"\xff" * 40))
    (repo / "garbage-after.gz").write_bytes(gzip.compress(delta) + b"trailing junk")
    # made against a basis far bigger than the mirror copy: it copies past its end
    (repo / "past-basis").write_bytes(_delta(work, newer * 3, newer * 2 + older))
    (repo / "short-basis").write_bytes(newer[:100])
    (repo / "link.gz").symlink_to("good.gz")
    os.mkfifo(repo / "fifo.gz")
    (repo / "big").write_bytes(bytes(3000))
    fd = os.open(repo, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield Damaged(fd, [older, newer])
    finally:
        os.close(fd)


def test_each_damage_has_its_status_and_leaves_nothing(
    damaged: Damaged, target: tuple[Path, int]
) -> None:
    path, fd = target
    (path / "taken").write_bytes(b"already here")
    (path / "planted").symlink_to("/etc/passwd-never-written")
    older = damaged.versions[0]
    good = (damaged.fd, b"good.gz", True)
    mirror = (damaged.fd, b"mirror", False)
    cases: list[tuple[bytes, RepoFile, list[RepoFile], RebuildStatus, int]] = [
        (b"truncated", mirror, [(damaged.fd, b"truncated.gz", True)], RebuildStatus.GZIP, 0),
        (b"not-gzip", mirror, [(damaged.fd, b"not-gzip.gz", True)], RebuildStatus.GZIP, 0),
        (b"garbage", mirror, [(damaged.fd, b"garbage-after.gz", True)], RebuildStatus.GZIP, 0),
        (b"bad-delta", mirror, [(damaged.fd, b"bad-delta.gz", True)], RebuildStatus.DELTA, 0),
        (b"past", mirror, [(damaged.fd, b"past-basis", False)], RebuildStatus.DELTA, 0),
        (b"short", (damaged.fd, b"short-basis", False), [good], RebuildStatus.DELTA, 0),
        (b"missing", mirror, [(damaged.fd, b"gone.gz", True)], RebuildStatus.SOURCE_OPEN, 2),
        (b"no-base", (damaged.fd, b"gone", False), [good], RebuildStatus.SOURCE_OPEN, 2),
        (b"link", mirror, [(damaged.fd, b"link.gz", True)], RebuildStatus.SOURCE_OPEN, 40),
        (b"fifo", mirror, [(damaged.fd, b"fifo.gz", True)], RebuildStatus.SOURCE_NOT_REGULAR, 0),
        (b"taken", mirror, [good], RebuildStatus.CREATE, 17),
        (b"planted", mirror, [good], RebuildStatus.CREATE, 17),
    ]
    plan = RebuildPlan()
    for name, base, deltas, _, _ in cases:
        plan.add(base, deltas, fd, name, 0o600, size=len(older), sha1=_sha1(older))
    plan.add(mirror, [good], fd, b"size", 0o600, size=len(older) - 1)
    plan.add(mirror, [good], fd, b"sha1", 0o600, size=len(older), sha1=_sha1(b"other"))
    plan.add(mirror, [good], fd, b"fine", 0o600, size=len(older), sha1=_sha1(older))
    done = plan.rebuild()
    assert done.bytes == len(older)
    got = {n: (result.status, result.error) for n, result in done.failed}
    want = {n: (status, error) for n, (_, _, _, status, error) in enumerate(cases)}
    assert {n: got[n] for n in want} == want
    size, sha1 = dict(done.failed)[len(cases)], dict(done.failed)[len(cases) + 1]
    assert (size.status, size.size, size.sha1) == (
        RebuildStatus.SIZE,
        len(older),
        hashlib.sha1(older).hexdigest(),
    )
    assert (sha1.status, sha1.size) == (RebuildStatus.SHA1, len(older))
    assert sorted(os.listdir(path)) == ["fine", "planted", "taken"]
    assert (path / "fine").read_bytes() == older
    assert (path / "taken").read_bytes() == b"already here"
    assert os.readlink(path / "planted") == "/etc/passwd-never-written"
    assert all(status.from_repository for status, _ in want.values() if status < 4 or status > 12)


def test_a_version_or_delta_past_the_limit_is_too_big_and_nothing_is_made(
    damaged: Damaged, target: tuple[Path, int]
) -> None:
    path, fd = target
    good = (damaged.fd, b"good.gz", True)
    mirror = (damaged.fd, b"mirror", False)
    plan = RebuildPlan(limit=19_999)  # the older version has 20,000 bytes
    plan.add(mirror, [good], fd, b"result", 0o600)
    plan.add((damaged.fd, b"big", False), [], fd, b"base", 0o600)
    plan.add((damaged.fd, b"short-basis", False), [], fd, b"small", 0o600, size=100)
    done = plan.rebuild()
    statuses = {n: result.status for n, result in done.failed}
    assert statuses == {0: RebuildStatus.TOO_BIG}
    assert sorted(os.listdir(path)) == ["base", "small"]
    plan = RebuildPlan(limit=2_999)
    plan.add((damaged.fd, b"big", False), [], fd, b"big", 0o600)
    plan.add((damaged.fd, b"snap", True), [], fd, b"gone", 0o600)
    done = plan.rebuild()
    assert [(n, r.status) for n, r in done.failed] == [
        (0, RebuildStatus.TOO_BIG),
        (1, RebuildStatus.SOURCE_OPEN),
    ]
    assert RebuildStatus.TOO_BIG.from_repository
    assert not os.path.exists(path / "big")


def test_a_nul_in_a_name_is_refused(history: History, target: tuple[Path, int]) -> None:
    with pytest.raises(ValueError, match="NUL"):
        RebuildPlan().add((history.fd, b"mirror", False), [], target[1], b"a\0b", 0o600)
