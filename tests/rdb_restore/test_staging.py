"""A whole-tree restore into a new or empty TARGET is built in a staging directory next to it
and renamed at the end: no partial TARGET after a failure or a kill, leftovers cleaned."""

from __future__ import annotations

import gzip
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences
from tests.rdb_restore.conftest import MirrorRepo, Sentinel
from tests.rdb_restore.helpers import (
    metadata_snapshot,
    plan_class,
    rewrite_gzip,
    run_restore,
    take_way,
)
from tests.unprivileged import AS_A_USER

from rdb_fastio import Copied, CopyPlan, FileCopy, PlanCopied, copy_files
from rdb_mirror import session as mirror
from rdb_restore import RestoreOptions, restore

T = TypeVar("T")

PARTIAL = ".rdb-restore-partial."


def partials(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith(PARTIAL))


def temporaries(target: Path) -> list[Path]:
    return [p for p in target.rglob("*") if p.name.startswith(".rdb-restore.tmp")]


def test_new_and_empty_targets_are_staged(mirror_repo_master: MirrorRepo, tmp_path: Path) -> None:
    """The tree is right, no staging directory or temporary name is left anywhere, and an
    empty TARGET directory is replaced by the restored one (its recorded mode and mtime)."""
    outputs = tmp_path / "out"
    outputs.mkdir()
    empty = outputs / "empty"
    empty.mkdir(mode=0o755)
    for target in (outputs / "new", empty):
        restore(str(mirror_repo_master.path), str(target), at=str(mirror_repo_master.times[0]))
        assert differences(mirror_repo_master.scans[0], trees.scan(target)) == []
        assert temporaries(target) == []
    assert partials(outputs) == []
    assert sorted(os.listdir(outputs)) == ["empty", "new"]


def _many_files_repo(tmp_path: Path) -> Path:
    """A repository whose restore takes long enough to be killed half-way."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    for d in range(40):
        directory = src / f"d{d:02d}"
        directory.mkdir(parents=True)
        for f in range(100):
            (directory / f"f{f:03d}").write_bytes(os.urandom(32 << 10))
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    return repo


def test_a_killed_restore_leaves_no_target_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    repo = _many_files_repo(tmp_path)
    outputs = tmp_path / "out"
    outputs.mkdir()
    target = outputs / "t"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdb_restore", "--quiet", str(repo), str(target)],
        env={**os.environ, "TZ": "UTC"},
    )
    deadline = time.monotonic() + 60
    while not partials(outputs):  # wait until the staging directory is being filled
        assert proc.poll() is None, "the restore ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    assert partials(outputs) == [f"{PARTIAL}{proc.pid}.t"]
    again = run_restore(str(repo), str(target))
    assert again.returncode == 0, again.stderr
    assert f"removed '{PARTIAL}{proc.pid}.t'".encode() in again.stderr
    assert partials(outputs) == []
    assert differences(trees.scan(tmp_path / "src"), trees.scan(target)) == []


def test_leftover_names_planted_next_to_target_are_not_followed(
    mirror_repo_master: MirrorRepo, sentinel: Sentinel, tmp_path: Path
) -> None:
    """A symlink with a leftover's name is neither followed nor removed; a staging directory
    of a process that still runs is left alone; the sentinel outside is untouched."""
    outputs = tmp_path / "out"
    outputs.mkdir()
    dead = 2**22 + 12345  # above pid_max's default: no such process
    planted = outputs / f"{PARTIAL}{dead}.t"
    planted.symlink_to(sentinel.path)
    alive = outputs / f"{PARTIAL}{os.getpid()}.t"
    alive.mkdir()
    (alive / "keep").write_bytes(b"someone else's restore\n")
    proc = run_restore(mirror_repo_master.path, outputs / "t")
    assert proc.returncode == 0, proc.stderr
    assert differences(mirror_repo_master.scans[-1], trees.scan(outputs / "t")) == []
    assert planted.is_symlink() and os.readlink(planted) == str(sentinel.path)
    assert (alive / "keep").read_bytes() == b"someone else's restore\n"
    sentinel.assert_untouched()


def test_a_failed_restore_leaves_neither_target_nor_staging(
    mirror_repo: MirrorRepo, sentinel: Sentinel, tmp_path: Path
) -> None:
    """Hostile metadata found half-way through the walk: exit 13, and nothing is left."""
    snapshot = metadata_snapshot(mirror_repo.path)
    data = gzip.decompress(snapshot.read_bytes())
    cut = data.rindex(b"\nFile ")
    evil = b"\nFile ../sentinel/evil\n  Type reg\n  Size 0\n  ModTime 0\n  Permissions 420"
    rewrite_gzip(snapshot, data[:cut] + evil + data[cut:])
    outputs = tmp_path / "out"
    outputs.mkdir()
    proc = run_restore(mirror_repo.path, outputs / "t")
    assert proc.returncode == 13, proc.stderr
    assert "'..' component" in proc.stderr.decode()
    assert os.listdir(outputs) == []
    sentinel.assert_untouched()


@pytest.mark.parametrize("planted", ["directory", "symlink"])
def test_target_appearing_meanwhile_is_kept(
    mirror_repo_master: MirrorRepo,
    sentinel: Sentinel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    planted: str,
) -> None:
    """If TARGET appears while the restore runs (a directory with content, or a symlink to a
    directory outside), the final rename fails without following anything: TARGET is kept as
    it is, the staging directory is removed, exit 15 names TARGET."""
    from rdb_format.errors import SourceError
    from rdb_restore import writer as writer_module

    outputs = tmp_path / "out"
    outputs.mkdir()
    target = outputs / "t"
    original = writer_module.TreeWriter.pop

    def pop_and_interfere(self: writer_module.TreeWriter, frame: writer_module.Frame) -> None:
        if frame is self.top and not os.path.lexists(target):
            if planted == "directory":
                target.mkdir()
                (target / "theirs").write_bytes(b"x")
            else:
                target.symlink_to(sentinel.path)
        original(self, frame)

    monkeypatch.setattr(writer_module.TreeWriter, "pop", pop_and_interfere)
    with pytest.raises(SourceError) as raised:
        restore(str(mirror_repo_master.path), str(target))
    assert str(target) in str(raised.value)
    assert raised.value.exit_code == 15
    if planted == "directory":
        assert os.listdir(target) == ["theirs"]
    else:
        assert os.readlink(target) == str(sentinel.path)
    assert partials(outputs) == []
    sentinel.assert_untouched()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o777])
def test_permissions_whatever_the_umask(
    mirror_repo_master: MirrorRepo, tmp_path: Path, umask: int
) -> None:
    """Files are created with their recorded mode when the umask keeps it (no fchmod), and
    given it on the descriptor otherwise: the restored permissions are the same either way."""
    old = os.umask(umask)
    try:
        restore(str(mirror_repo_master.path), str(tmp_path / "t"))
    finally:
        os.umask(old)
    assert differences(mirror_repo_master.scans[-1], trees.scan(tmp_path / "t")) == []


def _restore_as_a_user(
    repo: Path, target: Path, parent: Path, mode: int
) -> subprocess.CompletedProcess[bytes]:
    """``rdb-restore REPO TARGET`` without the permission overrides, ``parent`` given ``mode``
    for the run."""
    parent.chmod(mode)
    try:
        return subprocess.run(
            [*AS_A_USER, sys.executable, "-m", "rdb_restore", "-q", str(repo), str(target)],
            capture_output=True,
            env={**os.environ, "TZ": "UTC"},
            timeout=300,
            check=False,
        )
    finally:
        parent.chmod(0o755)


def test_empty_target_in_a_read_only_parent_is_filled_in_place(tmp_path: Path) -> None:
    """An empty TARGET the user may write in, in a parent they may not (a mount point's
    directory under a root-owned /mnt): no staging directory can be made next to it, so the
    tree is written into TARGET itself, as before staging, instead of failing."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"restored\n")
    (src / "top").write_bytes(b"top\n")
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    parent = tmp_path / "locked"
    target = parent / "t"
    target.mkdir(parents=True)
    proc = _restore_as_a_user(repo, target, parent, 0o555)
    assert proc.returncode == 0, proc.stderr
    assert differences(trees.scan(src), trees.scan(target)) == []
    assert os.listdir(parent) == ["t"]
    # a new TARGET there cannot be made at all: one line naming it, exit 15, no traceback
    missing = _restore_as_a_user(repo, parent / "new", parent, 0o555)
    assert missing.returncode == 15, missing.stderr
    lines = missing.stderr.decode().splitlines()
    assert len(lines) == 1 and str(parent / "new") in lines[0], lines
    assert "Permission denied" in lines[0]
    # a parent that may be written but not listed: staged all the same
    unlisted = _restore_as_a_user(repo, parent / "new", parent, 0o311)
    assert unlisted.returncode == 0, unlisted.stderr
    assert differences(trees.scan(src), trees.scan(parent / "new")) == []
    assert sorted(os.listdir(parent)) == ["new", "t"]


def test_a_leftover_that_cannot_be_removed_is_left_and_said(tmp_path: Path) -> None:
    """Another user's leftover next to TARGET (a shared /tmp) that we may not remove is not in
    our way (our staging directory has our pid): the restore goes on and says it is left."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "f").write_bytes(b"restored\n")
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    outputs = tmp_path / "out"
    outputs.mkdir()
    theirs = outputs / f"{PARTIAL}{2**22 + 12345}.t"  # no such process
    theirs.mkdir()
    (theirs / "file").write_bytes(b"another user's\n")
    theirs.chmod(0o555)
    os.chown(theirs, 12345, 12345)
    no_override = "-dac_override,-dac_read_search,-fowner"
    as_another_user = (
        ["setpriv", f"--inh-caps={no_override}", f"--bounding-set={no_override}"]
        if os.geteuid() == 0
        else []
    )
    proc = subprocess.run(
        [*as_another_user, sys.executable, "-m", "rdb_restore", str(repo), str(outputs / "t")],
        capture_output=True,
        env={**os.environ, "TZ": "UTC"},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert differences(trees.scan(src), trees.scan(outputs / "t")) == []
    assert (theirs / "file").read_bytes() == b"another user's\n"
    assert f"{PARTIAL}{2**22 + 12345}.t" in proc.stderr.decode()
    assert "cannot remove" in proc.stderr.decode()


def test_an_empty_bind_mount_target_is_filled_in_place(
    mirror_repo_master: MirrorRepo, tmp_path: Path
) -> None:
    """An empty TARGET that is a mount point of the same file system (a bind mount: same
    st_dev as its parent) cannot be renamed over (EBUSY): it is filled in place, not staged
    and then refused at the very end."""
    outputs = tmp_path / "out"
    source, target = outputs / "volume", outputs / "t"
    source.mkdir(parents=True)
    target.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(source), str(target)], check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot bind-mount here (needs root and CAP_SYS_ADMIN)")
    try:
        proc = run_restore(mirror_repo_master.path, target)
        assert proc.returncode == 0, proc.stderr
        assert differences(mirror_repo_master.scans[-1], trees.scan(target)) == []
        assert partials(outputs) == []
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert os.listdir(source) != []  # written through the mount, into the volume


@pytest.mark.parametrize("way", ["copied", "rebuilt"])
def test_an_interrupt_while_the_last_batches_are_handed_over_waits_for_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """Ctrl-C while the writer hands over its last batch (or waits for the pool): no worker
    may still be writing when the descriptors of TARGET's directories are closed and the
    staging directory removed (a closed descriptor's number is soon another file's). Files
    copied as they are (rdb_fastio.copy_files) and files rebuilt (TreeWriter._write) alike."""
    from rdb_restore import writer as writer_module

    src, repo = tmp_path / "src", tmp_path / "repo"
    for d in range(4):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(40):
            (src / f"d{d}" / f"f{f:02d}").write_bytes(b"%d %d\n" % (d, f))
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    outputs = tmp_path / "out"
    outputs.mkdir()
    lock = __import__("threading").Lock()
    in_flight = [0]
    seen = {"copied": 0, "rebuilt": 0}  # the calls each way got
    real_write, real_exit = writer_module.TreeWriter._write, writer_module.TreeWriter.__exit__
    real_copy = copy_files

    def slowly(taken: str, work: Callable[[], T]) -> T:
        with lock:
            in_flight[0] += 1
            seen[taken] += 1
        try:
            time.sleep(0.05)
            return work()
        finally:
            with lock:
                in_flight[0] -= 1

    def slow_write(self: writer_module.TreeWriter, parent: object, item: object) -> int:
        return slowly("rebuilt", lambda: real_write(self, parent, item))  # type: ignore[arg-type]

    def slow_copy(src_dir: int, dst_dir: int, copies: Sequence[FileCopy]) -> list[Copied]:
        return slowly("copied", lambda: real_copy(src_dir, dst_dir, copies))

    def slow_plan_copy(plan: CopyPlan, jobs: object) -> PlanCopied:
        return slowly("copied", lambda: CopyPlan.copy(plan))

    def interrupted_exit(self: writer_module.TreeWriter, *args: object) -> None:
        def flush() -> None:
            raise KeyboardInterrupt

        self.flush = flush  # type: ignore[method-assign]
        real_exit(self, *args)

    take_way(monkeypatch, way)
    monkeypatch.setattr(writer_module.TreeWriter, "_write", slow_write)
    monkeypatch.setattr(writer_module, "copy_files", slow_copy)
    monkeypatch.setattr(writer_module, "CopyPlan", plan_class(slow_plan_copy))
    monkeypatch.setattr(writer_module.TreeWriter, "__exit__", interrupted_exit)
    with pytest.raises(KeyboardInterrupt):
        restore(str(repo), str(outputs / "t"), options=RestoreOptions(workers=2))
    other = "rebuilt" if way == "copied" else "copied"
    assert seen[way] > 0 and seen[other] == 0  # the way under test, and only it, was taken
    assert in_flight[0] == 0
    assert os.listdir(outputs) == []


@pytest.mark.parametrize("where", ["staged", "in place"])
def test_a_target_file_system_that_cannot_take_a_file_is_one_line_and_1(
    tmp_path: Path, where: str
) -> None:
    """A write error in TARGET (here EFBIG, from a 1 MB file size limit: the same way out as a
    full disk's ENOSPC) names the file (not the temporary name it is written under in
    place) and the error on one line, exit status 1, no traceback; staged, it leaves no
    TARGET and no staging directory; in place, no temporary file."""
    src, repo, out = tmp_path / "src", tmp_path / "repo", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "big.bin").write_bytes(os.urandom(2_000_000))
    (src / "small.txt").write_bytes(b"small\n")
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    args = [str(repo), str(out / "t")]
    if where == "in place":
        (out / "t").mkdir()
        (out / "t" / "old").write_bytes(b"")
        args.append("--force")

    def one_megabyte() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    proc = subprocess.run(
        [sys.executable, "-m", "rdb_restore", *args],
        capture_output=True,
        text=True,
        preexec_fn=one_megabyte,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == "rdb-restore: cannot write big.bin: File too large\n"
    if where == "staged":
        assert os.listdir(out) == []
    else:
        assert not [name for name in os.listdir(out / "t") if name.startswith(".rdb-restore")]
