"""Writing increments: every kind, names, quoting, compression, attributes, crash safety."""

from __future__ import annotations

import gzip
import io
import os
import random
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rdb_format.layout import Layout
from rdb_format.quoting import Quoting
from rdb_increment import (
    IncrementExists,
    IncrementJob,
    IncrementOptions,
    IncrementWriter,
    block_size_for,
    choose_kind,
    find_increments,
    iter_rebuild,
    plan_rebuild,
    rebuild,
)
from rdiff.api import patch

T1 = 1_700_000_000  # 2023-11-14T22:13:20Z
STAMP = "2023-11-14T22:13:20Z"


@pytest.fixture
def repo(tmp_path: Path) -> Layout:
    root = tmp_path / "repo"
    (root / "rdiff-backup-data" / "increments").mkdir(parents=True)
    return Layout(root)


def writer(layout: Layout, **kwargs: object) -> IncrementWriter:
    return IncrementWriter(layout, T1, utc_offset=0, **kwargs)  # type: ignore[arg-type]


def data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def gunzip_patch(basis: Path, delta_gz: Path) -> bytes:
    out = io.BytesIO()
    with open(basis, "rb") as b, gzip.open(delta_gz, "rb") as d:
        patch(b, d, out)  # type: ignore[arg-type]
    return out.getvalue()


def test_block_size_follows_rdiff_backup() -> None:
    assert block_size_for(0) == 64
    assert block_size_for(10239) == 64
    assert block_size_for(200_000) == 384
    assert block_size_for(512 << 20) == 16384


def test_choose_kind_order(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    d = tmp_path / "d"
    d.mkdir()
    s = tmp_path / "s"
    s.symlink_to("f")
    fs, ds, ss = os.lstat(f), os.lstat(d), os.lstat(s)
    assert choose_kind(None, fs) == "missing"
    assert choose_kind(ds, fs) == "dir"
    assert choose_kind(fs, fs) == "diff"
    assert choose_kind(fs, None) == "snapshot"
    assert choose_kind(fs, ds) == "snapshot"
    assert choose_kind(ss, fs) == "special"


def test_diff_round_trip_and_name(repo: Layout, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    base = data(300_000)
    old.write_bytes(base)
    new.write_bytes(base[:1000] + b"changed" + base[1007:] + b"tail")
    os.utime(old, (1_600_000_000, 1_600_000_000))
    old.chmod(0o640)
    w = writer(repo)
    inc = w.write((b"dir", b"file.txt"), old, new)
    expected = repo.increments_dir / "dir" / f"file.txt.{STAMP}.diff.gz"
    assert inc.path == expected
    assert inc.name.kind == "diff" and inc.name.compressed
    assert inc.source_bytes == 300_000
    assert gunzip_patch(new, inc.path) == base
    st = os.lstat(inc.path)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime == 1_600_000_000
    assert inc.size == st.st_size < 20_000  # a real delta, not a copy
    # gzip header: FNAME is the final name without .gz, level 9 (XFL 2), as rdiff-backup's
    head = inc.path.read_bytes()
    assert head[3] & 0x08 and head[8] == 2
    assert head[10:].split(b"\0", 1)[0] == f"file.txt.{STAMP}.diff".encode()
    assert not [p for p in inc.path.parent.iterdir() if p.name.startswith("rdiff-backup.tmp")]


@pytest.mark.golden
def test_large_diff_encoded_by_several_threads(repo: Layout, tmp_path: Path) -> None:
    """An old file of PARALLEL_DELTA bytes or more: its delta is encoded over byte ranges by
    ``jobs`` threads, and Debian's rdiff (librsync) patches it back to the old bytes."""
    import shutil
    import subprocess

    from rdb_increment.writer import PARALLEL_DELTA

    rdiff = shutil.which("rdiff")
    if rdiff is None:
        pytest.fail("Debian's rdiff is needed (./dev setup installs it)")
    old, new = tmp_path / "old", tmp_path / "new"
    base = bytearray(data(PARALLEL_DELTA + 123_457))
    old.write_bytes(base)
    for at in range(0, len(base), 3_000_000):
        base[at : at + 100] = data(100, seed=at)
    new.write_bytes(base)
    inc = writer(repo).write((b"big",), old, new, jobs=2)
    assert inc.size < len(base) // 20  # a real delta: copies of the unchanged blocks
    delta = tmp_path / "delta"
    delta.write_bytes(gzip.decompress(inc.path.read_bytes()))
    restored = tmp_path / "restored"
    subprocess.run([rdiff, "patch", str(new), str(delta), str(restored)], check=True)
    assert restored.read_bytes() == old.read_bytes()


def test_diff_is_delta_new_to_old_small(repo: Layout, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_bytes(b"hello\n")
    new.write_bytes(b"hello world\n")
    inc = writer(repo).write((b"a.txt",), old, new)
    assert gzip.decompress(inc.path.read_bytes()) == b"rs\x026\x06hello\n\x00"


def test_empty_old_and_new(repo: Layout, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_bytes(b"")
    new.write_bytes(b"")
    inc = writer(repo).write((b"empty",), old, new)
    assert gzip.decompress(inc.path.read_bytes()) == b"rs\x026\x00"


def test_snapshot_compressed_and_regexp(repo: Layout, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_bytes(b"old content\n" * 100)
    w = writer(repo)
    gz = w.write((b"gone.txt",), old, None)
    assert gz.path.name == f"gone.txt.{STAMP}.snapshot.gz"
    assert gzip.decompress(gz.path.read_bytes()) == old.read_bytes()
    plain = w.write((b"photo.JPG",), old, None)  # default regexp is case-insensitive
    assert plain.path.name == f"photo.JPG.{STAMP}.snapshot"
    assert plain.path.read_bytes() == old.read_bytes()
    new = tmp_path / "new"
    new.write_bytes(b"x")
    diff = w.write((b"archive.tar.gz",), old, new)
    assert diff.path.name == f"archive.tar.gz.{STAMP}.diff"


def test_no_compression_and_custom_regexp(repo: Layout, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_bytes(b"abc")
    off = writer(repo, options=IncrementOptions(compression=False))
    assert off.write((b"a.txt",), old, None).path.name == f"a.txt.{STAMP}.snapshot"
    custom = writer(repo, options=IncrementOptions(no_compression_regexp=r".*\.txt$"))
    assert custom.write((b"b.txt",), old, None).path.name == f"b.txt.{STAMP}.snapshot"
    assert custom.write((b"c.jpg",), old, None).path.name == f"c.jpg.{STAMP}.snapshot.gz"


def test_snapshot_when_regular_becomes_directory(repo: Layout, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_bytes(b"was a file")
    new = tmp_path / "newdir"
    new.mkdir()
    inc = writer(repo).write((b"x",), old, new)
    assert inc.path.name == f"x.{STAMP}.snapshot.gz"
    assert (repo.increments_dir / "x").is_dir()  # rdiff-backup makes increments/x for dirs


def test_missing_and_dir_markers(repo: Layout, tmp_path: Path) -> None:
    w = writer(repo)
    missing = w.write((b"sub", b"new.txt"), None, None)
    assert missing.path == repo.increments_dir / "sub" / f"new.txt.{STAMP}.missing"
    assert missing.path.read_bytes() == b""
    assert stat.S_IMODE(os.lstat(missing.path).st_mode) == 0o600
    old_dir = tmp_path / "olddir"
    old_dir.mkdir()
    old_dir.chmod(0o2755)
    os.utime(old_dir, (1_500_000_000, 1_500_000_000))
    marker = w.write((b"sub",), old_dir, old_dir)
    assert marker.path == repo.increments_dir / f"sub.{STAMP}.dir"
    st = os.lstat(marker.path)
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_mtime == 1_500_000_000
    root = w.write((), old_dir, old_dir)
    assert root.path == repo.data_dir / f"increments.{STAMP}.dir"


def test_special_file_snapshots(repo: Layout, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to("some/target")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    w = writer(repo)
    inc = w.write((b"link",), link, None)
    assert inc.path.name == f"link.{STAMP}.snapshot" and not inc.name.compressed
    assert os.readlink(inc.path) == "some/target"
    fifo_inc = w.write((b"fifo",), fifo, None)
    assert stat.S_ISFIFO(os.lstat(fifo_inc.path).st_mode)
    w.sync()  # must not block on the fifo or follow the symlink


def test_quoted_names_and_compatible_time(repo: Layout, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_bytes(b"x")
    w = writer(repo, quoting=Quoting(b"A-Z"))
    inc = w.write((b"Sub", b"X;y"), None, old)
    assert (
        inc.path == repo.increments_dir / ";083ub" / ";088;059y.2023-11-14;08422:13:20;090.missing"
    )
    colon = writer(repo, quoting=Quoting(b":"))
    inc2 = colon.write((b"co:lon",), old, None)
    assert inc2.path.name == "co;058lon.2023-11-14T22-13-20Z.snapshot.gz"
    found = find_increments(repo, (b"Sub", b"X;y"), quoting=Quoting(b"A-Z"))
    assert [f.path for f in found] == [inc.path]


def test_long_name_goes_to_long_filename_data(repo: Layout, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_bytes(b"x")
    w = writer(repo)
    name = b"L" * 240
    assert w.needs_long_name((name,))
    assert not w.needs_long_name((b"short",))
    inc = w.write((name,), old, None, long_name=1)
    assert inc.path == repo.long_filename_dir / f"1.{STAMP}.snapshot.gz"


@pytest.mark.parametrize("in_place", [False, True])
def test_existing_increment_is_refused(repo: Layout, tmp_path: Path, in_place: bool) -> None:
    old = tmp_path / "old"
    old.write_bytes(b"x")
    w = writer(repo, options=IncrementOptions(in_place=in_place))
    first = w.write((b"a",), old, None)
    with pytest.raises(IncrementExists, match="already exists"):
        w.write((b"a",), old, None)
    w.write((b"b",), None, None)
    with pytest.raises(IncrementExists, match="already exists"):
        w.write((b"b",), None, None)  # nor an empty marker
    assert gzip.decompress(first.path.read_bytes()) == b"x"
    replacing = writer(repo, options=IncrementOptions(replace=True))
    old.write_bytes(b"y")
    replacing.write((b"a",), old, None)
    assert gzip.decompress(first.path.read_bytes()) == b"y"


class Boom(Exception):
    pass


@pytest.mark.parametrize("in_place", [False, True])
def test_no_partial_file_after_exception_mid_write(
    repo: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_place: bool
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_bytes(data(3 << 20))
    new.write_bytes(data(3 << 20, seed=2))
    import rdb_increment.writer as writer_module
    from rdiff.api import iter_delta as real  # what rdb_increment.writer calls

    calls = 0
    final = repo.increments_dir / f"big.{STAMP}.diff.gz"
    seen: list[str] = []

    def failing(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        nonlocal calls
        for piece in real(*args, **kwargs):
            calls += 1
            seen.extend(p.name for p in repo.increments_dir.iterdir())
            yield piece
            raise Boom("disk on fire")

    monkeypatch.setattr(writer_module, "iter_delta", failing)
    monkeypatch.setattr(writer_module, "DELTA_LIMIT", -1)  # the Python path, not the C one
    w = writer(repo, options=IncrementOptions(in_place=in_place))
    with pytest.raises(Boom):
        w.write((b"big",), old, new)
    assert calls == 1
    # while it was written: under its final name in a session (whose regress removes a
    # killed session's), under a temporary name otherwise (a killed write leaves no
    # partial increment that a reader would take)
    if in_place:
        assert seen == [final.name]
    else:
        assert len(seen) == 1 and seen[0].startswith("rdiff-backup.tmp.")
    assert list(repo.increments_dir.iterdir()) == []  # no increment, no temp file
    monkeypatch.setattr(writer_module, "_copy", lambda *_: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):
        w.write((b"gone",), old, None)
    assert list(repo.increments_dir.iterdir()) == []


def test_unreadable_old_is_a_source_error(repo: Layout, tmp_path: Path) -> None:
    from rdb_format.errors import SourceError

    not_dir = tmp_path / "plain"
    not_dir.write_bytes(b"")
    new = tmp_path / "new"
    new.write_bytes(b"n")
    with pytest.raises(SourceError, match=r"plain/x: cannot stat"):
        writer(repo).write((b"x",), not_dir / "x", new)
    assert list(repo.increments_dir.iterdir()) == []


def test_write_many_in_order_with_errors(repo: Layout, tmp_path: Path) -> None:
    jobs = []
    expected = {}
    for i in range(60):
        old, new = tmp_path / f"old{i}", tmp_path / f"new{i}"
        content = data(5000 + i * 97, seed=i)
        old.write_bytes(content)
        new.write_bytes(content[::-1] if i % 3 else content + b"!")
        expected[i] = content
        jobs.append(IncrementJob((b"d", b"f%d" % i), old, new))
    jobs.append(jobs[0])  # the same increment again: its name is taken, an error
    outcomes = list(writer(repo).write_many(jobs, workers=4, window=5))
    assert [o.job for o in outcomes] == jobs
    assert all(o.increment is not None for o in outcomes[:-1])
    assert isinstance(outcomes[-1].error, IncrementExists)
    for i, outcome in enumerate(outcomes[:-1]):
        assert outcome.increment is not None
        assert gunzip_patch(tmp_path / f"new{i}", outcome.increment.path) == expected[i]


def test_sync_after_batch(repo: Layout, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_bytes(b"x")
    w = writer(repo)
    w.write((b"a", b"b", b"c"), old, None)
    w.sync()
    w.sync()  # nothing pending: a no-op


def test_rebuild_chain_of_many(repo: Layout, tmp_path: Path) -> None:
    rng = random.Random(5)
    versions = [data(50_000, seed=99)]
    for _ in range(25):
        cur = bytearray(versions[-1])
        for _ in range(5):
            at = rng.randrange(len(cur))
            cur[at : at + 10] = rng.randbytes(rng.randrange(0, 30))
        versions.append(bytes(cur))
    # sessions T1, T1+1 ... ; version i is the file at time T1+i; the mirror holds the last
    mirror = repo.root / "f"
    mirror.write_bytes(versions[-1])
    for i in range(len(versions) - 1):
        old, new = tmp_path / "old", tmp_path / "new"
        old.write_bytes(versions[i])
        new.write_bytes(versions[i + 1])
        opts = IncrementOptions(compression=i % 2 == 0)
        IncrementWriter(repo, T1 + i, utc_offset=0, options=opts).write((b"f",), old, new)
    incs = find_increments(repo, (b"f",))
    assert len(incs) == 25
    for i in (0, 1, 12, 24):
        plan = plan_rebuild(incs, T1 + i)
        assert plan.base is None and len(plan.diffs_newest_first) == 25 - i
        out = io.BytesIO()
        rebuild(mirror, plan.diffs_newest_first, out, tmpdir=tmp_path)
        assert out.getvalue() == versions[i]
    assert b"".join(iter_rebuild(mirror, [])) == versions[-1]


def test_rebuild_from_snapshot_base(repo: Layout, tmp_path: Path) -> None:
    v1, v2 = b"version one\n" * 1000, b"version two\n" * 1000
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(v1)
    b.write_bytes(v2)
    IncrementWriter(repo, T1, utc_offset=0).write((b"f",), a, b)  # diff at T1
    IncrementWriter(repo, T1 + 10, utc_offset=0).write((b"f",), b, None)  # deleted at T1+20
    IncrementWriter(repo, T1 - 10, utc_offset=0).write((b"f",), None, a)  # new at T1
    incs = find_increments(repo, (b"f",))
    plan = plan_rebuild(incs, T1)
    assert plan.base is not None and plan.base.kind == "snapshot"
    assert b"".join(iter_rebuild(plan.base, plan.diffs_newest_first)) == v1
    assert not plan_rebuild(incs, T1 - 10).exists


def test_streaming_memory_is_flat(
    repo: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No whole-file reads: every read of the old and new file is at most one CHUNK."""
    import rdb_increment.writer as writer_module

    size = 24 << 20
    old, new = tmp_path / "old", tmp_path / "new"
    block = data(1 << 20)
    with open(old, "wb") as f:
        for i in range(size >> 20):
            f.write(block if i % 5 else data(1 << 20, seed=i))
    with open(new, "wb") as f:
        for _ in range(size >> 20):
            f.write(block)
    biggest = 0
    real_chunks = writer_module._chunks

    def tracking(stream, path, size):  # type: ignore[no-untyped-def]
        nonlocal biggest
        for piece in real_chunks(stream, path, size):
            biggest = max(biggest, len(piece))
            yield piece

    monkeypatch.setattr(writer_module, "_chunks", tracking)
    inc = writer(repo).write((b"big",), old, new, jobs=1)  # jobs > 1: rdiff's parallel delta
    assert biggest == writer_module.CHUNK
    out = tmp_path / "rebuilt"
    with open(out, "wb") as f:
        rebuild(new, [inc.path], f)
    assert out.read_bytes() == old.read_bytes()


@pytest.mark.parametrize("compatible", [False, True])
def test_planned_dir_markers_are_named_as_written_ones(
    repo: Layout, tmp_path: Path, compatible: bool
) -> None:
    """A planned marker's path (built without pathlib) is the one :meth:`write` gives the
    same directory, quoted and nested, the root's included; its increments directories exist;
    the old directory may be given as bytes."""
    old_dir = tmp_path / "olddir"
    old_dir.mkdir()
    quoting = Quoting(b"A-Z")
    planner = writer(
        repo, quoting=quoting, compatible=compatible, options=IncrementOptions(in_place=True)
    )
    reference = writer(repo, quoting=quoting, compatible=compatible)
    for index in [(), (b"Sub",), (b"Sub", b"In;ner"), (b"Sub", b"In;ner", b"DEEP")]:
        planned = planner.plan_dir_marker(index, os.fsencode(old_dir))
        assert planned is not None
        assert planned.increment.path == reference.increment_path(index, "dir")
        assert planned.increment.path.parent.is_dir()
        if index:
            assert (planned.increment.path.parent / os.fsdecode(quoting.quote(index[-1]))).is_dir()
        assert planned.increment.name == reference.increment_name(index, "dir", False)
    assert repo.increments_dir / ";083ub" / ";073n;059ner" / ";068;069;069;080" in {
        p for p in repo.increments_dir.rglob("*") if p.is_dir()
    }


def test_a_writer_told_not_to_remember_keeps_no_paths(repo: Layout, tmp_path: Path) -> None:
    """A backup session syncs the file system itself: its writer keeps no set of every
    increment written (it would grow with each), and sync() has nothing to do."""
    old = tmp_path / "old"
    old.write_bytes(b"x" * 100)
    new = tmp_path / "new"
    new.write_bytes(b"y" * 100)
    options = IncrementOptions(in_place=True, remember_written=False)
    w = writer(repo, options=options)
    for n in range(20):
        w.write((b"d%d" % n, b"f"), old, new)
    assert not w._pending.files and not w._pending.dirs
    remembering = IncrementWriter(repo, T1 + 1, options=IncrementOptions(in_place=True))
    remembering.write((b"d0", b"f"), old, new)
    assert remembering._pending.files


def test_planned_dir_marker(repo: Layout, tmp_path: Path) -> None:
    """What a caller creating .dir markers itself is told: path, attributes; the directory's
    own increments directory exists at once; only for an in-place writer and a directory."""
    old_dir = tmp_path / "olddir"
    old_dir.mkdir()
    old_dir.chmod(0o2750)
    os.utime(old_dir, ns=(1_400_000_000_000_000_001, 1_500_000_000_000_000_002))
    assert writer(repo).plan_dir_marker((b"sub",), old_dir) is None  # not in place
    w = writer(repo, options=IncrementOptions(in_place=True))
    assert w.plan_dir_marker((b"f",), tmp_path) is not None
    (tmp_path / "plain").write_bytes(b"")
    assert w.plan_dir_marker((b"f",), tmp_path / "plain") is None
    planned = w.plan_dir_marker((b"sub",), old_dir)
    assert planned is not None
    assert planned.increment.path == repo.increments_dir / f"sub.{STAMP}.dir"
    assert (repo.increments_dir / "sub").is_dir()
    assert not planned.increment.path.exists()  # the caller makes it
    assert planned.mode == 0o750
    assert (planned.atime_ns, planned.mtime_ns) == (
        1_400_000_000_000_000_001,
        1_500_000_000_000_000_002,
    )
    assert planned.owner == ((os.getuid(), os.getgid()) if os.geteuid() == 0 else None)
