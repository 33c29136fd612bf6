"""Restore of repositories written by rdb-mirror: every session, sub-paths, stdout, safety."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences
from tests.rdb_restore.conftest import MirrorRepo, Sentinel
from tests.rdb_restore.helpers import (
    increments,
    metadata_snapshot,
    rewrite_gzip,
    run_restore,
    take_way,
)

from rdb_format.errors import CorruptRepository, SourceError, UnfinishedSession
from rdb_format.increments import parse_increment_name
from rdb_mirror import session as mirror
from rdb_restore import RestoreOptions, restore


def test_every_session_restores_exactly(mirror_repo_master: MirrorRepo, tmp_path: Path) -> None:
    for n, when in enumerate(mirror_repo_master.times):
        target = tmp_path / f"at{n}"
        result = restore(str(mirror_repo_master.path), str(target), at=str(when))
        assert result.time == when
        assert differences(mirror_repo_master.scans[n], trees.scan(target)) == [], f"session {n}"


@pytest.mark.parametrize("inline_bytes", [0, 1 << 30])
def test_every_session_restores_exactly_on_the_pool_or_in_the_walk(
    mirror_repo_master: MirrorRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    inline_bytes: int,
) -> None:
    """Batches of small files are written on the walk's thread, larger ones by the pool:
    every session comes out the same when all go one way or the other (hard links whose
    first path is in another batch included)."""
    from rdb_restore import writer

    monkeypatch.setattr(writer, "INLINE_BYTES", inline_bytes)
    monkeypatch.setattr(writer, "BATCH_FILES", 3)  # many batches, links across them
    for n, when in enumerate(mirror_repo_master.times):
        target = tmp_path / f"at{n}"
        restore(str(mirror_repo_master.path), str(target), at=str(when))
        assert differences(mirror_repo_master.scans[n], trees.scan(target)) == [], f"session {n}"


@pytest.mark.parametrize("limit", [0, 300])
def test_every_session_restores_exactly_when_streamed(
    mirror_repo_master: MirrorRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """Files over the in-memory limit (8 MiB) stream through librsync's job and temporary
    files: with the limit lowered, every patched file takes that path (0), or some versions
    of a chain fit in memory and a later one does not (300 bytes). The rebuilding in C has
    the same limit: a file over it, or with a version over it, comes the general way."""
    from rdb_restore import patching, writer

    monkeypatch.setattr(patching, "IN_MEMORY_LIMIT", limit)
    monkeypatch.setattr(writer, "REBUILD_LIMIT", limit)
    for n, when in enumerate(mirror_repo_master.times[:-1]):
        target = tmp_path / f"at{n}"
        restore(str(mirror_repo_master.path), str(target), at=str(when))
        assert differences(mirror_repo_master.scans[n], trees.scan(target)) == [], f"session {n}"


def test_time_specs_round_down_to_sessions(mirror_repo_master: MirrorRepo, tmp_path: Path) -> None:
    times = mirror_repo_master.times
    repo = str(mirror_repo_master.path)
    assert restore(repo, str(tmp_path / "a"), at="1B").time == times[-2]
    assert restore(repo, str(tmp_path / "b"), at=str(times[1] + 5)).time == times[1]
    assert restore(repo, str(tmp_path / "c"), at="1990-01-01").time == times[0]
    assert restore(repo, str(tmp_path / "d"), at="now").time == times[-1]
    assert restore(repo, str(tmp_path / "e"), at="2023-11-14T22:13:20Z").time == times[0]


def test_sub_path_and_single_file(mirror_repo_master: MirrorRepo, tmp_path: Path) -> None:
    scan = mirror_repo_master.scans[0]
    sub = next(i for i, e in scan.items() if len(i) == 1 and e.type == "dir")
    target = tmp_path / "sub"
    restore(str(mirror_repo_master.path / os.fsdecode(sub[0])), str(target), at="0B")
    latest = mirror_repo_master.scans[-1]
    expected = {i[1:]: e for i, e in latest.items() if i[:1] == sub}
    got = trees.scan(target)
    assert differences(expected, got) == []
    name, entry = next(
        (i, e) for i, e in scan.items() if len(i) == 1 and e.type == "reg" and e.size
    )
    single = tmp_path / "single.bin"
    restore(
        str(mirror_repo_master.path / os.fsdecode(name[0])),
        str(single),
        at=str(mirror_repo_master.times[0]),
    )
    assert trees.stat_entry(single).sha1 == entry.sha1
    assert trees.stat_entry(single).mtime == entry.mtime
    assert trees.stat_entry(single).perms == entry.perms


def test_stdout_writes_one_file(mirror_repo_master: MirrorRepo) -> None:
    scan = mirror_repo_master.scans[0]
    name, entry = next(
        (i, e) for i, e in scan.items() if len(i) == 1 and e.type == "reg" and (e.size or 0) > 100
    )
    proc = run_restore(
        "--at", mirror_repo_master.times[0], mirror_repo_master.path / os.fsdecode(name[0]), "-"
    )
    assert proc.returncode == 0, proc.stderr
    import hashlib

    assert hashlib.sha1(proc.stdout).hexdigest() == entry.sha1
    directory = run_restore(mirror_repo_master.path, "-")
    assert directory.returncode == 2
    assert b"only a regular file can be written to stdout" in directory.stderr


def test_non_empty_target_refused(mirror_repo: MirrorRepo, tmp_path: Path) -> None:
    target = tmp_path / "full"
    target.mkdir()
    (target / "keep.txt").write_bytes(b"mine")
    proc = run_restore(mirror_repo.path, target)
    assert proc.returncode == 15
    assert f"{target}: is not empty".encode() in proc.stderr
    assert (target / "keep.txt").read_bytes() == b"mine"
    assert sorted(os.listdir(target)) == ["keep.txt"]
    with pytest.raises(SourceError):
        restore(str(mirror_repo.path), str(target))


def test_force_overwrites_and_removes_extras(mirror_repo: MirrorRepo, tmp_path: Path) -> None:
    target = tmp_path / "forced"
    target.mkdir()
    (target / "extra.txt").write_bytes(b"not in the backup")
    restore(str(mirror_repo.path), str(target), options=RestoreOptions(force=True))
    assert differences(mirror_repo.scans[-1], trees.scan(target)) == []


def test_unfinished_session_refused(mirror_repo: MirrorRepo, tmp_path: Path) -> None:
    data = mirror_repo.path / "rdiff-backup-data"
    (data / "current_mirror.2030-01-01T00:00:00Z.data").write_bytes(b"PID 999999\n")
    proc = run_restore(mirror_repo.path, tmp_path / "t")
    assert proc.returncode == 14
    message = proc.stderr.decode()
    assert message.count("\n") == 1
    assert f"rdb-mirror --regress {mirror_repo.path}" in message
    assert not (tmp_path / "t").exists()
    with pytest.raises(UnfinishedSession):
        restore(str(mirror_repo.path), str(tmp_path / "t"))


def test_restore_from_an_increment_file(mirror_repo_master: MirrorRepo, tmp_path: Path) -> None:
    base = mirror_repo_master.path / "rdiff-backup-data" / "increments"
    diff = next(p for p in increments(mirror_repo_master.path, ".diff.gz") if p.parent == base)
    proc = run_restore(diff, tmp_path / "from-inc")
    assert proc.returncode == 0, proc.stderr
    name = parse_increment_name(os.fsencode(diff.name))
    assert name is not None
    session = mirror_repo_master.times.index(name.time)
    expected = mirror_repo_master.scans[session][(name.base,)]
    restored = trees.stat_entry(tmp_path / "from-inc")
    assert (restored.sha1, restored.perms, restored.mtime) == (
        expected.sha1,
        expected.perms,
        expected.mtime,
    )
    with_at = run_restore("--at", "now", diff, tmp_path / "x")
    assert with_at.returncode == 2
    assert b"do not give --at" in with_at.stderr


def test_a_file_dated_after_2262_is_restored_with_its_time(
    tmp_path: Path, far_future_ns: int
) -> None:
    """A ModTime past 64 bits of nanoseconds since 1970 (2300-01-01: ext4, XFS and btrfs keep
    such times) is given to the restored file, as os.utime does on the general way (the C
    copy ended the restore with an OverflowError traceback)."""
    src, repo, target = tmp_path / "src", tmp_path / "repo", tmp_path / "t"
    src.mkdir()
    (src / "far.txt").write_bytes(b"future\n")
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    snapshot = metadata_snapshot(repo)
    far = far_future_ns // 1_000_000_000  # ModTime is in seconds
    text, count = re.subn(
        rb"(File far\.txt\n(?:  .*\n)*?  ModTime )-?\d+",
        rb"\g<1>%d" % far,
        gzip.decompress(snapshot.read_bytes()),
    )
    assert count == 1
    rewrite_gzip(snapshot, text)
    proc = run_restore(repo, target)
    assert proc.returncode == 0, proc.stderr
    assert (target / "far.txt").read_bytes() == b"future\n"
    assert (target / "far.txt").lstat().st_mtime_ns == far * 1_000_000_000


# ---- hostile repositories -------------------------------------------------------------------


def _plain(index: trees.Index) -> bool:
    return all(re.fullmatch(rb"[A-Za-z0-9_.-]+", part) for part in index)


def _mirror_file(repo: MirrorRepo) -> tuple[Path, trees.Entry]:
    scan = repo.scans[-1]
    index, entry = next(
        (i, e)
        for i, e in scan.items()
        if len(i) == 2 and e.type == "reg" and e.nlink == 1 and _plain(i)
    )
    return repo.path.joinpath(*map(os.fsdecode, index)), entry


def test_symlink_planted_in_the_mirror(
    mirror_repo: MirrorRepo, sentinel: Sentinel, tmp_path: Path
) -> None:
    victim, _ = _mirror_file(mirror_repo)
    victim.unlink()
    victim.symlink_to(sentinel.path / "secret.txt")
    target = tmp_path / "t"
    proc = run_restore(mirror_repo.path, target)
    assert proc.returncode == 13, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert os.fsdecode(victim) in lines[-1]
    assert "symbolic link; refusing to follow it" in lines[-1]
    sentinel.assert_untouched()
    for path in target.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert path.read_bytes() != b"do not touch\n"


@pytest.mark.parametrize("damage", ["truncated", "altered", "fifo"])
def test_a_damaged_mirror_copy_is_named_and_the_rest_restored(
    mirror_repo: MirrorRepo, tmp_path: Path, damage: str
) -> None:
    """The copy path (rdb_fastio.copy_files) checks what it copied as the rebuild path does:
    the bad file gets one line naming it and why, and is not left in TARGET; every other
    file is restored."""
    scan = mirror_repo.scans[-1]
    index = next(
        i
        for i, e in scan.items()
        if len(i) == 2 and e.type == "reg" and e.nlink == 1 and e.size and _plain(i)
    )
    victim = mirror_repo.path.joinpath(*map(os.fsdecode, index))
    data = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(data[:-1])
        why = f"restored {len(data) - 1} bytes but the metadata records {len(data)}"
    elif damage == "altered":
        victim.write_bytes(bytes([data[0] ^ 1]) + data[1:])
        why = "restored content has SHA1"
    else:
        victim.unlink()
        os.mkfifo(victim)
        why = "mirror copy is not a regular file"
    target = tmp_path / "t"
    proc = run_restore(mirror_repo.path, target, timeout=60)
    assert proc.returncode == 13, proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert f"{os.fsdecode(victim)}: {why}" in lines[0]  # the warning as it happens
    assert f"{os.fsdecode(victim)}: {why}" in lines[-1]  # and the summary's
    restored = target.joinpath(*map(os.fsdecode, index))
    assert not restored.exists()
    expected = {i: e for i, e in scan.items() if i != index}
    assert differences(expected, trees.scan(target)) == []


@pytest.mark.parametrize("way", ["copied", "rebuilt"])
def test_a_mirror_copy_far_bigger_than_recorded_is_not_copied_to_its_end(
    mirror_repo: MirrorRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """A damaged mirror copy larger than its record (here a 64 MiB sparse file) is rejected
    once more bytes came than recorded, not after copying all of it: one far bigger could
    fill the disk. It is named, left out of TARGET, and the rest restored."""
    victim, entry = _mirror_file(mirror_repo)
    with open(victim, "r+b") as grown:
        grown.truncate(64 << 20)
    take_way(monkeypatch, way)
    target = tmp_path / "t"
    with pytest.raises(CorruptRepository) as raised:
        restore(str(mirror_repo.path), str(target), options=RestoreOptions())
    assert (
        f"{victim}: restored more than the {entry.size} bytes the metadata records "
        "(an increment is missing or damaged)"
    ) in str(raised.value)
    restored = target / victim.relative_to(mirror_repo.path)
    assert not restored.exists()
    scan = mirror_repo.scans[-1]
    index = tuple(map(os.fsencode, victim.relative_to(mirror_repo.path).parts))
    expected = {i: e for i, e in scan.items() if i != index}
    assert differences(expected, trees.scan(target)) == []


@pytest.mark.parametrize("way", ["copied", "rebuilt"])
def test_a_special_file_planted_in_the_mirror_is_never_opened(
    mirror_repo: MirrorRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """What is at a mirror copy's name is looked at before it is opened: opening a device
    node can act even with O_NONBLOCK (a watchdog starts, a tape rewinds, a terminal becomes
    the controlling one). Seen here with a FIFO: a writer waiting to open it is woken by any
    open for reading. The file is named as not regular, the rest restored."""
    victim, _ = _mirror_file(mirror_repo)
    victim.unlink()
    os.mkfifo(victim)
    opened = threading.Event()

    def writer() -> None:
        os.close(os.open(victim, os.O_WRONLY))  # returns once somebody opens it to read
        opened.set()

    waiting = threading.Thread(target=writer, daemon=True)
    waiting.start()
    time.sleep(0.1)  # the writer is in its open
    take_way(monkeypatch, way)
    try:
        with pytest.raises(CorruptRepository) as raised:
            restore(str(mirror_repo.path), str(tmp_path / "t"), options=RestoreOptions())
        assert f"{victim}: mirror copy is not a regular file" in str(raised.value)
        assert not opened.wait(0.5)
    finally:
        os.close(os.open(victim, os.O_RDONLY | os.O_NONBLOCK))  # let the writer go
        waiting.join(5)


def test_directory_symlink_planted_in_the_mirror(
    mirror_repo: MirrorRepo, sentinel: Sentinel, tmp_path: Path
) -> None:
    victim, _ = _mirror_file(mirror_repo)
    directory = victim.parent
    subprocess.run(["rm", "-rf", str(directory)], check=True)
    directory.symlink_to(sentinel.path)
    proc = run_restore(mirror_repo.path, tmp_path / "t")
    assert proc.returncode == 13, proc.stderr
    assert os.fsdecode(directory).encode() in proc.stderr
    sentinel.assert_untouched()


def test_symlinks_already_in_the_target(
    mirror_repo: MirrorRepo, sentinel: Sentinel, tmp_path: Path
) -> None:
    scan = mirror_repo.scans[-1]
    target = tmp_path / "t"
    target.mkdir()
    top_dir = next(i for i, e in scan.items() if len(i) == 1 and e.type == "dir")
    top_file = next(i for i, e in scan.items() if len(i) == 1 and e.type == "reg")
    (target / os.fsdecode(top_dir[0])).symlink_to(sentinel.path)
    (target / os.fsdecode(top_file[0])).symlink_to(sentinel.path / "secret.txt")
    restore(str(mirror_repo.path), str(target), options=RestoreOptions(force=True))
    sentinel.assert_untouched()
    assert differences(scan, trees.scan(target)) == []


def test_dotdot_in_metadata(mirror_repo: MirrorRepo, sentinel: Sentinel, tmp_path: Path) -> None:
    snapshot = metadata_snapshot(mirror_repo.path)
    import gzip

    data = gzip.decompress(snapshot.read_bytes())
    head, sep, rest = data.partition(b"\nFile ")
    evil = (
        b"\nFile ../sentinel/evil\n  Type reg\n  Size 0\n  ModTime 0\n  Uid 0\n  Uname root\n"
        b"  Gid 0\n  Gname root\n  Permissions 420"
    )
    rewrite_gzip(snapshot, head + evil + sep + rest)
    target = tmp_path / "t"
    proc = run_restore(mirror_repo.path, target)
    assert proc.returncode == 13
    message = proc.stderr.decode()
    assert message.count("\n") == 1
    assert snapshot.name in message
    assert "'..' component" in message
    sentinel.assert_untouched()
    assert not (tmp_path / "sentinel" / "evil").exists()


def test_truncated_diff(mirror_repo: MirrorRepo, sentinel: Sentinel, tmp_path: Path) -> None:
    diff = max(increments(mirror_repo.path, ".diff.gz"), key=lambda p: p.stat().st_size)
    diff.write_bytes(diff.read_bytes()[: max(12, diff.stat().st_size // 2)])
    target = tmp_path / "t"
    proc = run_restore("--at", mirror_repo.times[0], mirror_repo.path, target)
    assert proc.returncode == 13, proc.stderr
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert str(diff) in last
    sentinel.assert_untouched()
    leftovers = [p for p in target.rglob("*") if p.name.startswith(".rdb-restore.tmp")]
    assert leftovers == []


def test_missing_increment(mirror_repo: MirrorRepo, sentinel: Sentinel, tmp_path: Path) -> None:
    first = mirror_repo.times[0]
    candidates = [
        p
        for p in increments(mirror_repo.path, ".diff.gz")
        if p.stat().st_size > 40 and "T22:13:20Z" in p.name
    ]
    assert candidates
    diff = candidates[0]
    diff.unlink()
    target = tmp_path / "t"
    with pytest.raises(CorruptRepository) as caught:
        restore(str(mirror_repo.path), str(target), at=str(first))
    rel = diff.relative_to(mirror_repo.path / "rdiff-backup-data" / "increments")
    name = rel.parent / rel.name.split(".2023-")[0]
    assert str(name) in str(caught.value)
    assert "missing or damaged" in str(caught.value)
    sentinel.assert_untouched()
    assert not (target / name).exists()


def test_an_increments_directory_listed_by_two_threads_at_once(tmp_path: Path) -> None:
    """Worker threads list an increments directory on first need; two at once must both see
    every entry (two os.listdir of one fd would share its offset and split the entries)."""
    import threading

    from rdb_format.quoting import NO_QUOTING
    from rdb_restore.repo import DirHandle

    names = [f"f{n:05d}.2023-11-14T22:13:20Z.diff.gz" for n in range(3000)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    for _ in range(5):
        handle = DirHandle(os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY), tmp_path)
        seen: list[int] = []
        start = threading.Barrier(2)

        def count(
            handle: DirHandle = handle, seen: list[int] = seen, start: threading.Barrier = start
        ) -> None:
            start.wait()
            seen.append(len(handle.increments(NO_QUOTING)))

        threads = [threading.Thread(target=count) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        handle.close()
        assert seen == [3000, 3000]


@pytest.mark.parametrize("what", ["tree", "file"])
def test_an_empty_target_is_refused_and_the_current_directory_kept(
    what: str, tmp_path: Path
) -> None:
    """TARGET '' (an unset shell variable) is not the current directory: with --force a
    single file used to replace the current directory, and everything in it was deleted."""
    src, repo, cwd = tmp_path / "src", tmp_path / "repo", tmp_path / "cwd"
    src.mkdir()
    (src / "f").write_bytes(b"restored\n")
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    cwd.mkdir()
    (cwd / "precious").write_bytes(b"keep me\n")
    location = repo / "f" if what == "file" else repo
    proc = subprocess.run(
        [sys.executable, "-m", "rdb_restore", "--force", str(location), ""],
        capture_output=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and "TARGET" in lines[0] and "empty" in lines[0], lines
    assert (cwd / "precious").read_bytes() == b"keep me\n"
    assert sorted(os.listdir(tmp_path)) == ["cwd", "repo", "src"]


@pytest.mark.parametrize(
    ("location", "target", "says"),
    [
        ("", "", "is inside the repository"),
        ("", "d", "is inside the repository"),
        ("f", "new-file", "is inside the repository"),
        ("", "..", "contains the repository"),
    ],
    ids=["repo-itself", "in-the-mirror", "a-file-into-it", "its-parent"],
)
def test_a_target_in_or_around_the_repository_is_refused(
    location: str, target: str, says: str, tmp_path: Path
) -> None:
    """--force into the repository (or a directory holding it) removed rdiff-backup-data as
    'not in the backup': every session was lost. Now: one line, exit 15, nothing touched."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "d").mkdir(parents=True)
    (src / "f").write_bytes(b"restored\n")
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    before = trees.scan(tmp_path)
    proc = run_restore("--force", repo / location, os.path.join(repo, target))
    assert proc.returncode == 15, proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert differences(before, trees.scan(tmp_path)) == []
