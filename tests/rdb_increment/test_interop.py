"""Our increments read by rdiff-backup 2.2.7, and ours vs the ones it writes."""

from __future__ import annotations

import filecmp
import gzip
import io
import os
import random
import subprocess
from pathlib import Path

import pytest

from rdb_format.layout import Layout
from rdb_format.quoting import read_quoting
from rdb_increment import (
    IncrementOptions,
    IncrementWriter,
    find_increments,
    format_listing,
    list_increments,
    rebuild_at,
)
from rdiff.api import patch

pytestmark = pytest.mark.interop

T1, T2 = 1_700_000_000, 1_700_001_000


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """rdiff-backup runs with TZ=UTC; our listing text uses the local zone too."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def rb(exe: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C.UTF-8"}
    proc = subprocess.run([exe, *args], capture_output=True, env=env, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc


def copy_tree(src: Path, dst: Path) -> None:
    """cp -a: keeps fifos, symlinks, modes and times (shutil.copytree cannot copy fifos)."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def make_source(src: Path) -> None:
    rng = random.Random(7)
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"hello world\n")
    (src / "big.bin").write_bytes(rng.randbytes(300_000))
    (src / "archive.gz").write_bytes(rng.randbytes(20_000))
    (src / "gone.txt").write_bytes(b"to be deleted\n" * 50)
    (src / "sub" / "keep").write_bytes(b"keep\n")
    (src / "link").symlink_to("a.txt")
    os.mkfifo(src / "fifo")
    for path in (*src.rglob("*"), src):
        os.utime(path, (T1 - 500, T1 - 500), follow_symlinks=False)


def mutate(src: Path) -> None:
    (src / "a.txt").write_bytes(b"hello\n")
    big = bytearray((src / "big.bin").read_bytes())
    big[100_000:100_007] = b"CHANGED"
    big += b"appended"
    (src / "big.bin").write_bytes(bytes(big))
    arch = bytearray((src / "archive.gz").read_bytes())
    arch[5:9] = b"ZZZZ"
    (src / "archive.gz").write_bytes(bytes(arch))
    (src / "gone.txt").unlink()
    (src / "sub" / "new.txt").write_bytes(b"new\n")
    (src / "link").unlink()
    (src / "link").symlink_to("elsewhere")
    (src / "fifo").unlink()
    (src / "fifo").write_bytes(b"now a file\n")
    # rdiff-backup sees a change by size and whole-second mtime: make every change visible.
    for name in ("a.txt", "big.bin", "archive.gz", "sub/new.txt", "fifo", "sub", "."):
        os.utime(src / name, (T1 + 500, T1 + 500))


@pytest.fixture(scope="module")
def made(rdiff_backup: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(repository made by rdiff-backup with 2 sessions, copy of the source at T1)."""
    base = tmp_path_factory.mktemp("interop")
    src, repo, first = base / "src", base / "repo", base / "first"
    make_source(src)
    rb(rdiff_backup, "--current-time", str(T1), "backup", str(src), str(repo))
    copy_tree(src, first)
    mutate(src)
    rb(rdiff_backup, "--current-time", str(T2), "backup", str(src), str(repo))
    return repo, first


REGULAR_DIFFS = ["a.txt", "big.bin", "archive.gz"]


@pytest.mark.parametrize("name", REGULAR_DIFFS)
def test_our_diff_and_theirs_patch_to_the_same_old_bytes(
    made: tuple[Path, Path], tmp_path: Path, name: str
) -> None:
    repo, first = made
    layout = Layout(repo)
    theirs = find_increments(layout, (name.encode(),))
    assert [i.kind for i in theirs] == ["diff"]
    scratch = Layout(tmp_path / "scratch")
    (scratch.increments_dir).mkdir(parents=True)
    ours = IncrementWriter(scratch, T1, utc_offset=0).write(
        (name.encode(),), first / name, repo / name
    )
    assert ours.path.name == theirs[0].path.name  # same name, same compression choice
    old = (first / name).read_bytes()
    for inc in (theirs[0].path, ours.path):
        opener = gzip.open if inc.name.endswith(".gz") else open
        out = io.BytesIO()
        with open(repo / name, "rb") as basis, opener(inc, "rb") as delta:
            patch(basis, delta, out)  # type: ignore[arg-type]
        assert out.getvalue() == old

    # Same librsync parameters (MD4, 8-byte sums, rdiff-backup's block size): same delta.
    def body(p: Path) -> bytes:
        raw = p.read_bytes()
        return gzip.decompress(raw) if p.name.endswith(".gz") else raw

    assert body(ours.path) == body(theirs[0].path)


def test_rdiff_backup_restores_from_our_increments(
    made: tuple[Path, Path], rdiff_backup: str, tmp_path: Path
) -> None:
    original, first = made
    repo = tmp_path / "repo"
    copy_tree(original, repo)
    layout = Layout(repo)
    # Remove every increment rdiff-backup wrote for T1 and write ours in their place.
    removed = []
    for path in [*layout.increments_dir.rglob("*"), *layout.data_dir.glob("increments.*")]:
        if path.is_symlink() or path.is_file() or (path.exists() and not path.is_dir()):
            removed.append(path.relative_to(repo))
            path.unlink()
    writer = IncrementWriter(
        layout,
        T1,
        quoting=read_quoting(layout.data_dir),
        utc_offset=0,
        options=IncrementOptions(),
    )
    written = [
        writer.write((b"a.txt",), first / "a.txt", repo / "a.txt"),
        writer.write((b"big.bin",), first / "big.bin", repo / "big.bin"),
        writer.write((b"archive.gz",), first / "archive.gz", repo / "archive.gz"),
        writer.write((b"gone.txt",), first / "gone.txt", None),
        writer.write((b"link",), first / "link", repo / "link"),
        writer.write((b"fifo",), first / "fifo", repo / "fifo"),
        writer.write((b"sub",), first / "sub", repo / "sub"),
        writer.write((b"sub", b"new.txt"), None, repo / "sub" / "new.txt"),
        writer.write((), first, repo),
    ]
    writer.sync()
    assert sorted(str(w.path.relative_to(repo)) for w in written) == sorted(map(str, removed))

    out = tmp_path / "restored"
    rb(rdiff_backup, "restore", "--at", str(T1), str(repo), str(out))
    for name in ("a.txt", "big.bin", "archive.gz", "gone.txt", "sub/keep"):
        assert (out / name).read_bytes() == (first / name).read_bytes(), name
    assert os.readlink(out / "link") == "a.txt"
    assert not (out / "sub" / "new.txt").exists()
    assert filecmp.cmpfiles(first, out, ["a.txt", "big.bin"], shallow=False)[0] == [
        "a.txt",
        "big.bin",
    ]
    verify = rb(rdiff_backup, "verify", "--at", str(T1), str(repo))
    assert b"verified successfully" in verify.stdout + verify.stderr

    # rdiff-backup's list and ours agree, byte for byte.
    theirs = rb(rdiff_backup, "list", "increments", str(repo)).stdout.decode()
    assert format_listing(list_increments(repo)) == theirs
    theirs_a = rb(rdiff_backup, "list", "increments", str(repo / "a.txt")).stdout.decode()
    assert format_listing(list_increments(repo, "a.txt")) == theirs_a

    # And our rebuild reads rdiff-backup's own increments.
    buf = io.BytesIO()
    assert rebuild_at(Layout(original), (b"big.bin",), T1, buf) == "rebuilt"
    assert buf.getvalue() == (first / "big.bin").read_bytes()


def test_sizes_match_rdiff_backup(made: tuple[Path, Path], rdiff_backup: str) -> None:
    from rdb_increment import format_sizes, increment_sizes

    repo, _ = made
    theirs = rb(rdiff_backup, "list", "increments", "--size", str(repo)).stdout.decode()
    assert format_sizes(increment_sizes(repo)) == theirs
