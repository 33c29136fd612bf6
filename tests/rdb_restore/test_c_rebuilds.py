"""Files rebuilt from reverse diffs in C (rdb_fastio.RebuildPlan, in the writer's runs) come out
exactly as the general way (Python) rebuilds them: bytes and metadata at every session, files
that grow, shrink, empty, vanish and come back, full copies from snapshots, files past the
in-memory limit falling back; and every damaged repository gives the same message and exit
status whichever way the file went."""

from __future__ import annotations

import gzip
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences
from tests.rdb_restore.conftest import MirrorRepo
from tests.rdb_restore.helpers import increments, run_restore, take_way

from rdb_fastio.rebuild import PlanRebuilt, RebuildPlan
from rdb_format.errors import CorruptRepository
from rdb_mirror import session as mirror
from rdb_restore import RestoreOptions, restore, writer

T0 = 1_700_000_000
STEP = 3600
SESSIONS = 5


def _write(path: Path, data: bytes, when: int) -> None:
    path.write_bytes(data)
    os.utime(path, (when, when))


def _session_tree(src: Path, n: int, rng: random.Random) -> None:
    """Session ``n`` of a tree whose files change in every way a chain of diffs meets."""
    when = T0 - 1000 * (n + 1)
    base = random.Random(1).randbytes(60_000)
    _write(src / "grows", base[: 5_000 * (n + 1)] + b"%d" % n, when)
    _write(src / "shrinks", base[: 50_000 // (n + 1)], when)
    _write(src / "empties", b"" if n % 2 else base[:3_000] + rng.randbytes(50), when)
    _write(src / "same", b"never changes\n", T0 - 5)
    _write(src / "big", base + rng.randbytes(200) + base[:20_000], when)  # past the limit below
    (src / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
    _write(src / "sub" / "deeper" / "edited", base[:9_000] + rng.randbytes(n * 7) + base, when)
    os.chmod(src / "sub" / "deeper" / "edited", 0o600 if n % 2 else 0o644)
    comes_and_goes = src / "sub" / "comes-and-goes"
    if n % 2 == 0:
        _write(comes_and_goes, base[: 1_000 + n], when)
    elif comes_and_goes.exists():
        comes_and_goes.unlink()
    for k in range(30):  # many small files changed in place: several runs
        _write(src / "sub" / f"small{k:02d}", b"line %d of %d\n" % (k, n) * (k + 3), when)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> MirrorRepo:
    work = tmp_path_factory.mktemp("c-rebuilds")
    src, repo = work / "src", work / "repo"
    src.mkdir()
    rng = random.Random(7)
    times, scans = [], []
    for n in range(SESSIONS):
        _session_tree(src, n, rng)
        scans.append(trees.scan(src))
        when = T0 + n * STEP
        mirror.backup(src, repo, mirror.BackupOptions(current_time=when))
        times.append(when)
    return MirrorRepo(repo, src, times, scans)


@pytest.mark.parametrize("limit", [8 << 20, 70_000])
def test_every_session_comes_out_exactly_in_c_and_the_general_way(
    history: MirrorRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    counted: list[int],
    limit: int,
) -> None:
    """With the limit lowered, "big" (>70,000 bytes) goes the general way, and files with a
    version past the limit are started in C, then fall back."""
    monkeypatch.setattr(writer, "REBUILD_LIMIT", limit)
    for n, when in enumerate(history.times):
        target = tmp_path / f"c{n}"
        restore(str(history.path), str(target), at=str(when))
        assert differences(history.scans[n], trees.scan(target)) == [], f"session {n}"
    in_c, fell_back = counted
    assert in_c > 30 * (SESSIONS - 1)  # every small file of each older session, at least
    assert fell_back == 0
    take_way(monkeypatch, "rebuilt")
    for n, when in enumerate(history.times[:-1]):
        target = tmp_path / f"py{n}"
        restore(str(history.path), str(target), at=str(when))
        assert differences(history.scans[n], trees.scan(target)) == [], f"session {n}"
    assert counted[0] == in_c  # the general way, none in C


def test_a_version_past_the_limit_falls_back_to_the_general_way(
    history: MirrorRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted: list[int]
) -> None:
    """ "shrinks" is 10,000 bytes at the newest session and 50,000 at the oldest: its versions
    in between pass a limit of 20,000 that the file's own size does not."""
    monkeypatch.setattr(writer, "REBUILD_LIMIT", 20_000)
    target = tmp_path / "t"
    restore(str(history.path), str(target), at=str(history.times[2]))  # shrinks: 16,666 bytes
    assert differences(history.scans[2], trees.scan(target)) == []
    assert counted[1] >= 1


# ---- damaged repositories: the same message and exit status either way ----------------------


def _damage_truncated(diff: Path) -> None:
    diff.write_bytes(diff.read_bytes()[: max(12, diff.stat().st_size // 2)])


def _damage_corrupt(diff: Path) -> None:
    diff.write_bytes(gzip.compress(b"rs\x026" + b"\xff" * 64))


def _damage_not_gzip(diff: Path) -> None:
    diff.write_bytes(b"not gzip at all")


def _damage_past_basis(diff: Path) -> None:
    """A valid delta made for a far bigger basis: it copies past the end of the real one."""
    work = diff.parent / "work"
    work.mkdir()
    (work / "basis").write_bytes(random.Random(3).randbytes(500_000))
    (work / "new").write_bytes((work / "basis").read_bytes()[400_000:])
    subprocess.run(["rdiff", "signature", work / "basis", work / "sig"], check=True)
    subprocess.run(["rdiff", "delta", work / "sig", work / "new", work / "delta"], check=True)
    diff.write_bytes(gzip.compress((work / "delta").read_bytes()))
    shutil.rmtree(work)


def _damage_missing(diff: Path) -> None:
    diff.unlink()


def _damage_symlink(diff: Path) -> None:
    diff.unlink()
    diff.symlink_to("/etc/hostname")


def _damage_fifo(diff: Path) -> None:
    diff.unlink()
    os.mkfifo(diff)


DAMAGES = {
    "truncated": _damage_truncated,
    "corrupt": _damage_corrupt,
    "not-gzip": _damage_not_gzip,
    "past-basis": _damage_past_basis,
    "missing": _damage_missing,
    "symlink": _damage_symlink,
    "fifo": _damage_fifo,
}


def _failure(repo: Path, target: Path, when: int) -> tuple[str, int, list[str]]:
    """The error of a restore that must fail: its message, exit status and what it left (the
    files it could restore; none of a file it could not, no temporary name)."""
    with pytest.raises(CorruptRepository) as caught:
        restore(str(repo), str(target), at=str(when))
    left = sorted(str(p.relative_to(target)) for p in target.rglob("*")) if target.exists() else []
    return str(caught.value), int(caught.value.exit_code), left


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_diff_gives_the_same_error_in_c_and_the_general_way(
    history: MirrorRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    counted: list[int],
    damage: str,
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(history.path, repo, symlinks=True)
    diff = next(p for p in increments(repo, ".diff.gz") if p.name.startswith("edited."))
    DAMAGES[damage](diff)
    oldest = history.times[0]
    in_c = _failure(repo, tmp_path / "c", oldest)
    assert counted[0] > 0
    take_way(monkeypatch, "rebuilt")
    general = _failure(repo, tmp_path / "py", oldest)
    assert in_c == general
    message, status, left = in_c
    assert status == 13
    assert "edited" in message
    assert "sub/deeper/edited" not in left
    assert "sub/small00" in left


def test_a_mirror_copy_changed_behind_the_metadata_is_a_sha1_mismatch_either_way(
    history: MirrorRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(history.path, repo, symlinks=True)
    mirror_copy = repo / "sub" / "deeper" / "edited"
    data = bytearray(mirror_copy.read_bytes())
    data[100] ^= 0xFF  # same size, other bytes: the rebuilt file's SHA1 is off
    mirror_copy.write_bytes(bytes(data))
    in_c = _failure(repo, tmp_path / "c", history.times[1])
    take_way(monkeypatch, "rebuilt")
    assert _failure(repo, tmp_path / "py", history.times[1]) == in_c
    assert "SHA1" in in_c[0] or "bytes" in in_c[0]


def test_the_command_names_a_damaged_diff_and_prints_no_librsync_noise(
    history: MirrorRepo, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(history.path, repo, symlinks=True)
    diff = next(p for p in increments(repo, ".diff.gz") if p.name.startswith("small07."))
    _damage_corrupt(diff)
    proc = run_restore("--at", history.times[0], repo, tmp_path / "t")
    assert proc.returncode == 13, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert str(diff) in lines[-1]
    assert not [line for line in lines if line.startswith("librsync")]


# ---- runs across directories keep the descriptors bounded --------------------------------------

DIRS = 700  # x 3 descriptors each would be far over the limit below if all were held


def _limit_open_files() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))


def _one_file_directories(src: Path, repo: Path) -> list[trees.Snapshot]:
    """Two sessions of DIRS directories of one file, each file rebuilt from a diff at the
    first; the scans of both."""
    scans = []
    for session in range(2):
        for n in range(DIRS):
            directory = src / f"d{n:04d}"
            directory.mkdir(parents=True, exist_ok=True)
            data = b"directory %d\n" % n * 300 + b"session %d\n" % session
            _write(directory / "f", data, T0 - n + session)
            os.utime(directory, (T0 - n, T0 - n))
        scans.append(trees.scan(src))
        mirror.backup(src, repo, mirror.BackupOptions(current_time=T0 + session * STEP))
    assert len(increments(repo, ".diff.gz")) == DIRS  # each file rebuilt from a diff
    return scans


def test_many_one_file_directories_rebuilt_in_c_under_512_open_files(tmp_path: Path) -> None:
    """Each file rebuilt in C is read through its directories' descriptors (mirror and
    increments), held until its run is done: the runs' bound on directories keeps a restore
    of an older session of 700 one-file directories under 512 open files."""
    src, repo, target = tmp_path / "src", tmp_path / "repo", tmp_path / "target"
    scans = _one_file_directories(src, repo)
    proc = subprocess.run(
        [sys.executable, "-m", "rdb_restore", "-q", "--at", str(T0), str(repo), str(target)],
        capture_output=True,
        preexec_fn=_limit_open_files,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert differences(scans[0], trees.scan(target)) == []


def test_many_workers_restore_under_the_usual_open_file_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 workers (the default on a machine of 16 CPUs) and rebuilds slower than the walk
    (every run in flight waits): the restore still works under the usual limit of 1024 open
    files. Each run in flight holds three descriptors per directory; 44 runs of 16 held 2112."""
    src, repo, target = tmp_path / "src", tmp_path / "repo", tmp_path / "target"
    scans = _one_file_directories(src, repo)
    real = RebuildPlan.rebuild

    def slow(plan: RebuildPlan) -> PlanRebuilt:
        time.sleep(0.2)
        return real(plan)

    monkeypatch.setattr(RebuildPlan, "rebuild", slow)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        restore(str(repo), str(target), at=str(T0), options=RestoreOptions(workers=16))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert differences(scans[0], trees.scan(target)) == []
