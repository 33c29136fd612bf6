"""A session's ``.diff[.gz]`` and ``.snapshot[.gz]`` increments written in C
(rdb_fastio.increment) must be the very files the Python path writes: same bytes, name, mode,
owner and times, same sizes reported; and every failure must end exactly as on the Python path
(same exception, same message)."""

from __future__ import annotations

import gzip
import os
import random
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import rdb_increment.writer as writer_module
from rdb_fastio.increment import DELTA_LIMIT, DeltaStatus, write_delta_increment
from rdb_format.errors import RdbError
from rdb_format.layout import Layout
from rdb_increment import IncrementExists, IncrementOptions, IncrementWriter, WrittenIncrement

T1 = 1_700_000_000
TIMES = (1_600_000_000_111_111_111, 1_650_000_000_222_222_222)


def _writer(root: Path, **options: Any) -> IncrementWriter:
    (root / "rdiff-backup-data" / "increments").mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {"in_place": True, "gzip_mtime": 1_234_567_890}
    settings.update(options)
    return IncrementWriter(Layout(root), T1, utc_offset=0, options=IncrementOptions(**settings))


@pytest.fixture
def c_calls(monkeypatch: pytest.MonkeyPatch) -> list[DeltaStatus]:
    """The statuses of the C routine's calls (to know which path wrote)."""
    calls: list[DeltaStatus] = []
    real = write_delta_increment

    def spy(job: Any) -> Any:
        done = real(job)
        calls.append(done.status)
        return done

    monkeypatch.setattr(writer_module, "write_delta_increment", spy)
    return calls


@contextmanager
def python_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(writer_module, "DELTA_LIMIT", -1)
        yield


def _versions(rng: random.Random) -> tuple[bytes, bytes]:
    size = rng.choice([0, 1, 64, 5000, 10_240, 70_000, 600_000, (1 << 20) + 3, 2_500_000])
    base = rng.randbytes(size)
    choice = rng.randrange(6)
    if choice == 0:
        return base, base + rng.randbytes(rng.randint(1, 9000))  # grown
    if choice == 1:
        return base, base[: rng.randint(0, size)]  # shrunk
    if choice == 2:
        return base, base  # identical (a metadata change seen as a content one)
    if choice == 3:
        return base, rng.randbytes(rng.randint(0, size + 10))  # unrelated
    if choice == 4:
        return base, b""
    edited = bytearray(base)
    for _ in range(rng.randint(1, 10)):
        if edited:
            edited[rng.randrange(len(edited))] ^= 0x5A
    return base, bytes(edited)


def _file(path: Path, content: bytes, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    if os.geteuid() == 0:
        os.chown(path, *owner)
    os.utime(path, ns=TIMES)
    return path


def _what(written: WrittenIncrement, root: Path) -> tuple[object, ...]:
    st = written.path.lstat()  # before it is read
    return (
        written.path.relative_to(root),
        written.name,
        written.index,
        written.size,
        written.source_bytes,
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        st.st_atime_ns,
        st.st_mtime_ns,
        st.st_size,
        written.path.read_bytes(),
    )


@pytest.mark.parametrize("seed", range(12))
def test_same_increments_as_the_python_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_calls: list[DeltaStatus], seed: int
) -> None:
    rng = random.Random(seed)
    options: dict[str, Any] = {}
    if seed % 4 == 3:
        options["compression"] = False
    names = [b"file%d.txt" % n for n in range(6)] + [b"photo.jpg"]  # .jpg: never gzipped
    fast, slow = _writer(tmp_path / "c", **options), _writer(tmp_path / "py", **options)
    for n, name in enumerate(names):
        older, newer = _versions(rng)
        mode = rng.choice([0o600, 0o644, 0o755, 0o4755])
        owner = (rng.randrange(2000), rng.randrange(2000))
        old = _file(tmp_path / f"old{n}", older, mode, owner)
        new = _file(tmp_path / f"new{n}", newer)
        made = fast.write((b"dir", name), old, new)
        os.utime(old, ns=TIMES)  # its atime, which reading it may have set (relatime)
        with python_path(monkeypatch):
            want = slow.write((b"dir", name), old, new)
        assert _what(made, tmp_path / "c") == _what(want, tmp_path / "py"), (seed, name)
    assert c_calls == [DeltaStatus.DONE] * len(names)


def _message(action: Callable[[], object]) -> tuple[type[BaseException], str]:
    with pytest.raises(RdbError) as caught:
        action()
    return type(caught.value), str(caught.value)


def _both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[IncrementWriter], object]
) -> tuple[type[BaseException], str]:
    """The error writing with ``write`` gives, the same on both paths (in their own
    repositories, named alike: the message holds the path)."""
    root = tmp_path / "repo"
    root.mkdir(exist_ok=True)
    before = sorted(root.rglob("*"))
    fast = _message(lambda: write(_writer(root)))
    made = set(root.rglob("*")) - set(before)  # nothing but the directories
    assert made <= {root / "rdiff-backup-data", root / "rdiff-backup-data" / "increments"}
    with python_path(monkeypatch):
        slow = _message(lambda: write(_writer(root)))
    assert fast == slow
    return fast


def test_an_existing_increment_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_calls: list[DeltaStatus]
) -> None:
    old = _file(tmp_path / "old", b"old\n" * 100)
    new = _file(tmp_path / "new", b"new\n" * 100)
    taken = (
        tmp_path
        / "repo"
        / "rdiff-backup-data"
        / "increments"
        / "taken.2023-11-14T22:13:20Z.diff.gz"
    )
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"earlier")
    kind, text = _both_ways(tmp_path, monkeypatch, lambda w: w.write((b"taken",), old, new))
    assert kind is IncrementExists and "already exists" in text
    assert taken.read_bytes() == b"earlier"
    assert c_calls == [DeltaStatus.CREATE]


def test_a_name_the_file_system_refuses_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_calls: list[DeltaStatus]
) -> None:
    old = _file(tmp_path / "old", b"old\n" * 100)
    new = _file(tmp_path / "new", b"new\n" * 100)
    name = b"n" * 240  # + ".<time>.diff.gz": past NAME_MAX
    _kind, text = _both_ways(tmp_path, monkeypatch, lambda w: w.write((name,), old, new))
    assert "cannot create the increment: File name too long" in text
    assert c_calls == [DeltaStatus.CREATE]


@pytest.mark.parametrize("gone", ["old", "new"])
def test_a_version_gone_after_its_stat_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_calls: list[DeltaStatus], gone: str
) -> None:
    """A version that vanishes between the writer's lstat and its open: the C routine fails
    to open it, and the Python path then names it as always ("cannot open")."""
    old = _file(tmp_path / "old", b"old\n" * 100)
    new = _file(tmp_path / "new", b"new\n" * 100)
    seen = {path: path.lstat() for path in (old, new)}
    monkeypatch.setattr(writer_module, "_stat", lambda path: None if path is None else seen[path])
    (tmp_path / gone).unlink()
    _kind, text = _both_ways(tmp_path, monkeypatch, lambda w: w.write((b"f",), old, new))
    assert text == f"{tmp_path / gone}: cannot open: No such file or directory"
    status = DeltaStatus.OPEN_OLD if gone == "old" else DeltaStatus.OPEN_NEW
    assert c_calls == [status]
    assert not list((tmp_path / "repo" / "rdiff-backup-data" / "increments").iterdir())


def test_a_version_changed_after_its_stat_takes_the_python_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_calls: list[DeltaStatus]
) -> None:
    old = _file(tmp_path / "old", b"old\n" * 100)
    new = _file(tmp_path / "new", b"new\n" * 100)
    seen = {path: path.lstat() for path in (old, new)}
    monkeypatch.setattr(writer_module, "_stat", lambda path: None if path is None else seen[path])
    with old.open("ab") as grown:
        grown.write(b"more\n")
    made = _writer(tmp_path / "c").write((b"f",), old, new)
    os.utime(old, ns=TIMES)
    with python_path(monkeypatch):
        want = _writer(tmp_path / "py").write((b"f",), old, new)
    assert c_calls == [DeltaStatus.CHANGED]
    assert _what(made, tmp_path / "c") == _what(want, tmp_path / "py")


def test_only_in_place_writers_and_files_within_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_calls: list[DeltaStatus]
) -> None:
    old = _file(tmp_path / "old", b"old\n" * 100)
    new = _file(tmp_path / "new", b"new\n" * 100)
    _writer(tmp_path / "a", in_place=False).write((b"f",), old, new)
    _writer(tmp_path / "b", replace=True).write((b"f",), old, new)
    monkeypatch.setattr(writer_module, "DELTA_LIMIT", 399)  # the files have 400 bytes
    _writer(tmp_path / "c").write((b"f",), old, new)
    assert c_calls == []


@pytest.mark.parametrize("size", [0, 1, 4095, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3_000_001])
@pytest.mark.parametrize("text", [False, True])
def test_same_snapshots_as_the_python_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    c_calls: list[DeltaStatus],
    size: int,
    text: bool,
) -> None:
    """A deleted file's .snapshot[.gz] (a .gz name stays uncompressed: rdiff-backup's default
    list) in C: the Python path's bytes, name, mode, times and sizes."""
    rng = random.Random(size)
    content = (
        b"".join(b"line %d\n" % rng.randrange(99) for _ in range(size // 4 + 1))[:size]
        if text
        else rng.randbytes(size)
    )
    old = tmp_path / "old"
    old.write_bytes(content)
    old.chmod(0o640)
    os.utime(old, ns=TIMES)
    seen = {}
    for in_c in (False, True):
        w = _writer(tmp_path / f"repo-{in_c}")
        for name in (b"f", b"f.gz"):
            if in_c:
                inc = w.write((name,), old, None)
            else:
                with python_path(monkeypatch):
                    inc = w.write((name,), old, None)
            st = inc.path.lstat()
            seen[in_c, name] = (
                inc.path.name,
                inc.path.read_bytes(),
                inc.size,
                inc.source_bytes,
                stat.S_IMODE(st.st_mode),
                st.st_mtime_ns,
            )
    assert c_calls == [DeltaStatus.DONE, DeltaStatus.DONE]  # the two made in C
    for name in (b"f", b"f.gz"):
        assert seen[True, name] == seen[False, name]
    assert seen[True, b"f"][0].endswith(".snapshot.gz")
    assert seen[True, b"f.gz"][1] == content


def _gzip_fields(data: bytes) -> tuple[object, ...]:
    """A gzip member's header fields (RFC 1952: CM, FLG, MTIME, XFL, OS, FNAME) and what it
    holds uncompressed."""
    assert data[:2] == b"\x1f\x8b"
    flags = data[3]
    name = data[10 : data.index(b"\0", 10)] if flags & 0x08 else None
    return data[2], flags, int.from_bytes(data[4:8], "little"), data[8], data[9], name


@pytest.mark.parametrize("at", ["limit", "limit+1"])
def test_snapshots_at_the_c_routines_size_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_calls: list[DeltaStatus], at: str
) -> None:
    """A version of DELTA_LIMIT bytes has its snapshot written in C, one of a byte more in
    Python: either way the Python path's bytes, the gzip header fields it writes (FNAME the
    name without .gz, MTIME the writer's, XFL for level 9, OS unknown) and the old bytes
    inside. (Incompressible content: the gzipped snapshot is larger than the limit.)"""
    size = DELTA_LIMIT + (at == "limit+1")
    content = random.Random(size).randbytes(size)
    old = _file(tmp_path / "old", content, 0o640)
    made = {}
    for path in ("default", "Python"):
        w = _writer(tmp_path / f"repo-{path}")
        for name in (b"f", b"f.gz"):  # gzipped, and not (a .gz name)
            if path == "default":
                inc = w.write((name,), old, None)
            else:
                with python_path(monkeypatch):
                    inc = w.write((name,), old, None)
            os.utime(old, ns=TIMES)
            made[path, name] = _what(inc, tmp_path / f"repo-{path}")
    assert c_calls == ([DeltaStatus.DONE] * 2 if at == "limit" else [])
    for name in (b"f", b"f.gz"):
        assert made["default", name] == made["Python", name]
    zipped, plain = made["default", b"f"][-1], made["default", b"f.gz"][-1]
    assert isinstance(zipped, bytes) and isinstance(plain, bytes)
    assert plain == content
    snapshot = "f.2023-11-14T22:13:20Z.snapshot"
    assert _gzip_fields(zipped) == (8, 0x08, 1_234_567_890, 2, 255, snapshot.encode())
    assert gzip.decompress(zipped) == content
