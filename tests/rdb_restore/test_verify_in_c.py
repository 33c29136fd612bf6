"""``verify`` checks files in C (rdb_restore.checks_in_c: RebuildPlan batches that rebuild and
hash, writing nothing) and says exactly what the general way says: the same files checked and
bytes, the same lines for a damaged mirror copy, a damaged or missing increment, at every
session; files past the in-memory limit go the general way; no descriptor is left open."""

from __future__ import annotations

import gzip
import os
import random
import resource
import time
from pathlib import Path

import pytest
from tests.rdb_restore.helpers import increments

from rdb_fastio import rebuild
from rdb_mirror import session as mirror
from rdb_restore import checks_in_c
from rdb_restore.query import VerifyResult, verify
from rdb_restore.repo import open_repo

T0 = 1_700_000_000
STEP = 3600
SESSIONS = 4


def _write(path: Path, data: bytes, when: int) -> None:
    path.write_bytes(data)
    os.utime(path, (when, when))


def _history(work: Path) -> tuple[Path, list[int]]:
    """A repository of SESSIONS sessions whose files grow, shrink, empty and change in place,
    in directories of a few files each (batches across many directories)."""
    src, repo = work / "src", work / "repo"
    rng = random.Random(3)
    base = random.Random(1).randbytes(40_000)
    times = []
    for n in range(SESSIONS):
        when = T0 - 1000 * (n + 1)
        for d in range(40):
            sub = src / f"d{d:02d}" / "inner"
            sub.mkdir(parents=True, exist_ok=True)
            _write(sub / "grows", base[: 500 * (n + 1) + d] + b"%d" % n, when)
            _write(sub / "edited", base[:3_000] + rng.randbytes(n * 5 + d) + base[:9_000], when)
            _write(sub.parent / "same", b"never changes %d\n" % d, T0 - 5)
            _write(sub.parent / "empties", b"" if n % 2 else rng.randbytes(100 + d), when)
        _write(src / "big", base + rng.randbytes(300) + base, when)  # 80 KB: past a low limit
        mirror.backup(src, repo, mirror.BackupOptions(current_time=T0 + n * STEP))
        times.append(T0 + n * STEP)
    return repo, times


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    return _history(tmp_path_factory.mktemp("verify-in-c"))


def _both_ways(
    repo: Path, when: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[VerifyResult, VerifyResult]:
    """verify at ``when`` with the C batches, then without them."""
    with open_repo(repo) as opened:
        ours = verify(opened, when, workers=2)
    with monkeypatch.context() as patch:
        patch.setattr(checks_in_c.CheckBatches, "take", lambda *_: False)
        with open_repo(repo) as opened:
            general = verify(opened, when, workers=2)
    return ours, general


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_every_session_verifies_the_same_in_c_and_the_general_way(
    history: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch, counted: list[int]
) -> None:
    repo, times = history
    before = _open_fds()
    for when in times:
        ours, general = _both_ways(repo, when, monkeypatch)
        assert ours == general
        assert ours.ok and ours.checked == 40 * 4 + 1
    assert counted[0] >= len(times) * 40 * 4  # every small file, at every session, in C
    assert counted[1] == 0
    assert _open_fds() == before


def test_files_past_the_limit_are_verified_the_general_way(
    history: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch, counted: list[int]
) -> None:
    monkeypatch.setattr(checks_in_c, "DEFAULT_LIMIT", 50_000)
    repo, times = history
    with open_repo(repo) as opened:
        result = verify(opened, times[0])
    assert result.ok and result.checked == 40 * 4 + 1
    assert counted[0] == 40 * 4  # "big" (80 KB) was not given to C


def _copy(history: tuple[Path, list[int]], tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "repo"
    shutil.copytree(history[0], target, symlinks=True)
    return target


def _flip_a_byte(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(12, path.stat().st_size // 2)])


def _corrupt_delta(path: Path) -> None:
    path.write_bytes(gzip.compress(b"rs\x026" + b"\xff" * 64))


def _wrong_literal(path: Path) -> None:
    """A valid delta that makes other bytes: one literal, then the end."""
    path.write_bytes(gzip.compress(b"rs\x026" + b"\x05wrong" + b"\x00"))


@pytest.mark.parametrize(
    "damage", [_truncate, _corrupt_delta, _wrong_literal, Path.unlink], ids=lambda f: f.__name__
)
def test_a_damaged_increment_reads_the_same_either_way(
    history: tuple[Path, list[int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    counted: list[int],
    damage: object,
) -> None:
    repo = _copy(history, tmp_path)
    diff = next(p for p in increments(repo, ".diff.gz") if "edited" in p.name)
    damage(diff)  # type: ignore[operator]
    before = _open_fds()
    ours, general = _both_ways(repo, history[1][0], monkeypatch)
    assert not ours.ok
    assert ours == general
    assert len(ours.bad) == 1 and "edited" in ours.bad[0]
    assert counted[1] == 1  # the damaged file was checked in C first, and not found good there
    assert _open_fds() == before


def test_a_damaged_mirror_copy_reads_the_same_either_way(
    history: tuple[Path, list[int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _copy(history, tmp_path)
    _flip_a_byte(repo / "d07" / "inner" / "edited")
    for when in history[1][-2:]:  # the newest (a copy) and the one before (copy + a diff)
        ours, general = _both_ways(repo, when, monkeypatch)
        assert ours == general
        assert len(ours.bad) == 1
        assert ours.bad[0].startswith("d07/inner/edited: ")


class _InterruptedAcquire:
    """A batch slot whose ``nth`` wait is interrupted (Ctrl-C while the pool is busy)."""

    def __init__(self, slots: object, nth: int) -> None:
        self._slots = slots
        self._left = nth

    def acquire(self) -> bool:
        self._left -= 1
        if self._left == 0:
            raise KeyboardInterrupt
        return self._slots.acquire()  # type: ignore[attr-defined, no-any-return]

    def release(self) -> None:
        self._slots.release()  # type: ignore[attr-defined]


@pytest.mark.parametrize("nth", [1, 2, 3])  # 3: the last batch, handed over on leaving
def test_ctrl_c_while_waiting_for_a_batch_slot_leaves_no_descriptor(
    history: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch, nth: int
) -> None:
    """Interrupted while it waits to hand a full batch to the pool, verify stops with the
    KeyboardInterrupt and closes that batch's duplicated descriptors too."""
    real_init = checks_in_c.CheckBatches.__init__

    def init(self: checks_in_c.CheckBatches, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        self._slots = _InterruptedAcquire(self._slots, nth)  # type: ignore[assignment]

    monkeypatch.setattr(checks_in_c.CheckBatches, "__init__", init)
    repo, times = history
    before = _open_fds()
    with open_repo(repo) as opened, pytest.raises(KeyboardInterrupt):
        verify(opened, times[0], workers=2)
    assert _open_fds() == before


class _Counting:
    """A verify progress that counts what it is told."""

    def __init__(self) -> None:
        self.advanced = 0
        self.warnings: list[str] = []

    def start(self, task: str, total: int | None = None) -> None:
        return None

    def advance(self, amount: int = 1) -> None:
        self.advanced += amount

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def finish(self) -> None:
        return None


def _linked_history(work: Path) -> tuple[Path, list[int]]:
    """Sessions of directories each holding a file and a pair of hard links that change."""
    src, repo = work / "src", work / "repo"
    rng = random.Random(5)
    times = []
    for n in range(3):
        when = T0 - 100 * n
        for d in range(5):
            sub = src / f"d{d}"
            sub.mkdir(parents=True, exist_ok=True)
            _write(sub / "f", rng.randbytes(3000 + n * 10), when)
            for name in ("h1", "h2"):
                (sub / name).unlink(missing_ok=True)
            _write(sub / "h1", b"hard %d %d\n" % (d, n) * 50, when)
            os.link(sub / "h1", sub / "h2")
        mirror.backup(src, repo, mirror.BackupOptions(current_time=T0 + n * STEP))
        times.append(T0 + n * STEP)
    return repo, times


def test_hard_links_and_sub_paths_verify_the_same_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted: list[int]
) -> None:
    """A hard-link group (its later member checked against the first one's digest), a
    damaged group, sub-directories and single files (``REPO/sub``): the same results and
    progress in C as the general way."""
    repo, times = _linked_history(tmp_path)
    _flip_a_byte(repo / "d3" / "h1")  # both names of the group are this one file
    for when in times:
        for where in (repo, repo / "d1", repo / "d3", repo / "d1" / "h1", repo / "d2" / "f"):
            seen = []
            for take in (checks_in_c.CheckBatches.take, lambda *_: False):
                progress = _Counting()
                with monkeypatch.context() as patch:
                    patch.setattr(checks_in_c.CheckBatches, "take", take)
                    with open_repo(where) as opened:
                        result = verify(opened, when, workers=2, progress=progress)
                seen.append((result, progress.advanced, sorted(progress.warnings)))
            assert seen[0] == seen[1], (where, when)
    assert counted[0] > 0
    with open_repo(repo) as opened:
        newest = verify(opened, times[-1], workers=2)
    assert newest.checked == 15
    assert [line.split(":")[0] for line in newest.bad] == ["d3/h1", "d3/h2"]


@pytest.mark.parametrize("workers", [16, 300])
def test_many_workers_stay_under_the_usual_open_file_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """16 workers (the default on a machine of 16 CPUs), or 300 (--workers 300), a tree of
    many directories of one file each, and checks slower than the walk (the batches in flight
    all wait): verify still passes under the usual limit of 1024 open files. Each batch in
    flight holds duplicates of its directories' descriptors; 33 batches of 32 directories had
    held 2112, and with 300 workers 601 batches of one directory would hold 1202."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    for n in range(2):  # the older session: a mirror copy and a diff in every directory
        for d in range(1100):
            (src / f"d{d:04d}").mkdir(parents=True, exist_ok=True)
            _write(src / f"d{d:04d}" / "f", b"x" * 3000 + b"version %d of %d\n" % (n, d), T0 - n)
        mirror.backup(src, repo, mirror.BackupOptions(current_time=T0 + n * STEP))
    real = rebuild.RebuildPlan.rebuild

    def slow(plan: rebuild.RebuildPlan) -> rebuild.PlanRebuilt:
        time.sleep(0.2)
        return real(plan)

    monkeypatch.setattr(rebuild.RebuildPlan, "rebuild", slow)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        with open_repo(repo) as opened:
            result = verify(opened, T0, workers=workers)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert result.ok and result.checked == 1100
