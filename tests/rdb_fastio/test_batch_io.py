"""Small files read and written in batches by one C call each (rdb_fastio): bytes,
SHA1, mode, owner and times as asked; a file not as the walk saw it is not read; failures
reported per file with nothing left behind."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from rdb_fastio import NewFile, read_small_files, write_new_files

IS_ROOT = os.geteuid() == 0


def _new(directory: Path, name: str, data: bytes, **changes: object) -> NewFile:
    fields: dict[str, object] = {
        "path": os.fsencode(directory / f".staged-{name}"),
        "target": os.fsencode(directory / name),
        "data": data,
        "mode": 0o640,
        "owner": None,
        "atime_ns": 1_500_000_000_123_456_789,
        "mtime_ns": 1_600_000_000_987_654_321,
    }
    fields.update(changes)
    return NewFile(**fields)  # type: ignore[arg-type]


def test_files_get_their_bytes_mode_and_times(tmp_path: Path) -> None:
    files = [
        _new(tmp_path, "empty", b""),
        _new(tmp_path, "text", b"hello\n", mode=0o4755),
        _new(tmp_path, "big", os.urandom(300_000), mode=0o600),
        _new(tmp_path, "old", b"before 1970", atime_ns=-1_500_000_001, mtime_ns=-1),
    ]
    assert write_new_files(files) == [None] * 4
    for file in files:
        target = Path(os.fsdecode(file.target))
        st = target.lstat()
        assert target.read_bytes() == file.data
        assert stat.S_IMODE(st.st_mode) == file.mode
        assert (st.st_atime_ns, st.st_mtime_ns) == (file.atime_ns, file.mtime_ns)
        assert not Path(os.fsdecode(file.path)).exists()


@pytest.mark.skipif(not IS_ROOT, reason="giving files away needs root")
def test_owner_is_set_and_setuid_kept(tmp_path: Path) -> None:
    file = _new(tmp_path, "owned", b"x", owner=(1234, 5678), mode=0o6755)
    assert write_new_files([file]) == [None]
    st = (tmp_path / "owned").lstat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert stat.S_IMODE(st.st_mode) == 0o6755  # chmod after chown: setuid survives


def test_a_failure_is_reported_for_that_file_only_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "exists").write_bytes(b"")
    files = [
        _new(tmp_path, "fine", b"1"),
        _new(tmp_path, "no-dir", b"2", target=os.fsencode(tmp_path / "missing" / "f")),
        _new(tmp_path, "taken", b"3", path=os.fsencode(tmp_path / "exists")),
        _new(tmp_path, "fine2", b"4"),
    ]
    results = write_new_files(files)
    assert results[0] is None and results[3] is None
    rename_error, create_error = results[1], results[2]
    assert isinstance(rename_error, FileNotFoundError)
    assert "cannot rename" in str(rename_error)
    assert isinstance(create_error, FileExistsError)
    assert "cannot create" in str(create_error)
    # the failed rename's staged file is gone, the pre-existing file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists", "fine", "fine2"]
    assert (tmp_path / "exists").read_bytes() == b""


def _key(path: Path) -> tuple[int, int, int, int]:
    st = path.lstat()
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def test_small_files_are_read_with_their_sha1(tmp_path: Path) -> None:
    contents = [b"", b"x", os.urandom(5000), os.urandom(300_000)]
    paths = []
    for n, data in enumerate(contents):
        path = tmp_path / f"f{n}"
        path.write_bytes(data)
        paths.append(path)
    reads = read_small_files(
        [os.fsencode(p) for p in paths], [_key(p) for p in paths], noatime=IS_ROOT
    )
    assert [r.data for r in reads] == contents
    assert [r.sha1 for r in reads] == [hashlib.sha1(data).hexdigest() for data in contents]


def test_a_file_not_as_the_walk_saw_it_is_not_read(tmp_path: Path) -> None:
    """Each of these must go the general way (which says why): changed since it was listed
    (size, mtime, inode), grown by the time it is read, vanished, a symlink, a directory."""
    names = ["same", "longer", "touched", "replaced", "grown", "gone", "link", "dir"]
    for name in names[:6]:
        (tmp_path / name).write_bytes(b"12345")
    (tmp_path / "target").write_bytes(b"12345")
    (tmp_path / "link").symlink_to("target")
    (tmp_path / "dir").mkdir()
    keys = {name: _key(tmp_path / name) for name in names}
    keys["link"] = _key(tmp_path / "target")  # as if the walk had seen a file there
    (tmp_path / "longer").write_bytes(b"123456")
    os.utime(tmp_path / "touched", ns=(0, 1))
    (tmp_path / "replaced").unlink()
    (tmp_path / "replaced").write_bytes(b"54321")
    keys["grown"] = (4, *keys["grown"][1:])  # the walk saw 4 bytes; there are 5 now
    (tmp_path / "gone").unlink()
    reads = read_small_files(
        [os.fsencode(tmp_path / name) for name in names],
        [keys[name] for name in names],
        noatime=False,
    )
    got = {name: read.data for name, read in zip(names, reads, strict=True)}
    assert got == {"same": b"12345"} | dict.fromkeys(names[1:])


def test_times_past_64_bits_of_nanoseconds_are_written(tmp_path: Path, far_future_ns: int) -> None:
    file = _new(tmp_path, "far", b"future", atime_ns=far_future_ns, mtime_ns=far_future_ns + 1)
    assert write_new_files([file]) == [None]
    st = (tmp_path / "far").lstat()
    assert (st.st_atime_ns, st.st_mtime_ns) == (far_future_ns, far_future_ns + 1)


def test_a_file_dated_past_64_bits_of_nanoseconds_is_read(
    tmp_path: Path, far_future_ns: int
) -> None:
    path = tmp_path / "far"
    path.write_bytes(b"future")
    os.utime(path, ns=(far_future_ns, far_future_ns))
    (read,) = read_small_files([os.fsencode(path)], [_key(path)], noatime=IS_ROOT)
    assert read.data == b"future"
    assert read.sha1 == hashlib.sha1(b"future").hexdigest()
