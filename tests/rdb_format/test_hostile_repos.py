"""Hand-made hostile and damaged repositories: rdb_format refuses each one properly.

A refusal is right when it is the right exception (HostilePath for a stored path that would
escape the tree, CorruptRepository for truncated, garbled or out-of-range data), carries exit
status 13, and its message is one line naming the offending file. All repositories here are
written by this file's own helpers, byte by byte.
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rdb_format.errors import CorruptRepository, HostilePath
from rdb_format.exitcodes import ExitCode
from rdb_format.layout import open_repository
from rdb_format.metadata import Record, iter_records
from rdb_format.metadata_diff import records_at
from rdb_format.repository import read_state

T1 = 1_700_000_000
T2 = 1_700_003_600


def timestring(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def record(path: bytes, kind: bytes = b"reg") -> bytes:
    """One metadata record as rdiff-backup writes it (reference §2.1), path already quoted."""
    fields = [b"Type " + kind]
    if kind == b"reg":
        fields += [b"Size 3", b"ModTime 1700000000"]
    elif kind == b"dir":
        fields += [b"ModTime 1700000000"]
    fields += [b"Uid 0", b"Uname root", b"Gid 0", b"Gname root", b"Permissions 420"]
    return b"File " + path + b"\n" + b"".join(b"  " + f + b"\n" for f in fields)


def metadata(*paths: bytes) -> bytes:
    return record(b".", b"dir") + b"".join(record(p) for p in paths)


def make_repo(
    root: Path,
    snapshot: bytes,
    *,
    compressed: bool = True,
    marker_time: str | None = None,
    marker: bytes = b"PID 1\n",
    chars_to_quote: bytes = b"",
) -> Path:
    """A one-session repository: mirror file, marker, snapshot metadata, a non-empty increments/.

    Returns the metadata file's path.
    """
    data = root / "rdiff-backup-data"
    (data / "increments").mkdir(parents=True)
    (data / "increments" / f"gone.{timestring(T1 - 100)}.missing").write_bytes(b"")
    (data / "chars_to_quote").write_bytes(chars_to_quote)
    (data / "special_escapes").write_bytes(b"")
    (root / "a").write_bytes(b"abc")
    stamp = marker_time or timestring(T1)
    (data / f"current_mirror.{stamp}.data").write_bytes(marker)
    name = f"mirror_metadata.{timestring(T1)}.snapshot"
    if compressed:
        meta = data / (name + ".gz")
        meta.write_bytes(gzip.compress(snapshot, mtime=0))
    else:
        meta = data / name
        meta.write_bytes(snapshot)
    return meta


def refusal(kind: type[Exception], action: Callable[[], object]) -> CorruptRepository:
    """Run action, expecting exactly ``kind``; return the exception after the common checks."""
    with pytest.raises(CorruptRepository) as caught:
        action()
    error = caught.value
    assert type(error) is kind, f"{type(error).__name__}: {error}"
    assert error.exit_code == ExitCode.CORRUPT and int(ExitCode.CORRUPT) == 13
    message = str(error)
    assert "\n" not in message and message.strip() == message
    return error


def read_all(path: Path) -> list[object]:
    return list(iter_records(path))


# --------------------------------------------------------------------------------------------
# hostile paths in metadata


HOSTILE_PATHS = {
    "dotdot": b"..",
    "dotdot-inside": b"a/../../etc/passwd",
    "dotdot-last": b"a/..",
    "absolute": b"/etc/passwd",
    "nul": b"a\0b",
}


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("hostile", list(HOSTILE_PATHS.values()), ids=list(HOSTILE_PATHS))
def test_hostile_metadata_path_is_refused(tmp_path: Path, hostile: bytes, compressed: bool) -> None:
    # sorted so that only the hostile path, never the order, can be the reason for refusing
    paths = sorted([b"a", hostile], key=lambda p: p.split(b"/"))
    meta = make_repo(tmp_path, metadata(*paths), compressed=compressed)
    error = refusal(HostilePath, lambda: read_all(meta))
    assert meta.name in str(error)


def test_hostile_path_after_many_good_records(tmp_path: Path) -> None:
    """The refusal comes however deep in the stream the record is."""
    good = [b"f%05d" % i for i in range(5000)]
    meta = make_repo(tmp_path, metadata(*good, b"g/../../x"))
    error = refusal(HostilePath, lambda: read_all(meta))
    assert meta.name in str(error)


def test_symlink_target_may_be_absolute(tmp_path: Path) -> None:
    """Not hostile: a symlink's target is data, restored as is (rdiff-backup stores /etc/x)."""
    link = (
        b"File l\n  Type sym\n  SymData /etc/../x\n  Uid 0\n  Uname root\n"
        b"  Gid 0\n  Gname root\n  Permissions 511\n"
    )
    meta = make_repo(tmp_path, record(b".", b"dir") + link)
    (records,) = [r for r in iter_records(meta) if r.type == "sym"]
    assert records.sym_data == b"/etc/../x"


# --------------------------------------------------------------------------------------------
# damaged metadata files


def test_truncated_metadata_gzip_is_refused(tmp_path: Path) -> None:
    meta = make_repo(tmp_path, metadata(*[b"f%04d" % i for i in range(2000)]))
    whole = meta.read_bytes()
    meta.write_bytes(whole[: len(whole) // 2])
    error = refusal(CorruptRepository, lambda: read_all(meta))
    assert meta.name in str(error)


def test_metadata_gzip_without_its_trailer_is_refused(tmp_path: Path) -> None:
    meta = make_repo(tmp_path, metadata(b"a", b"b"))
    meta.write_bytes(meta.read_bytes()[:-8])  # CRC32 and size gone
    error = refusal(CorruptRepository, lambda: read_all(meta))
    assert meta.name in str(error)


def test_garbled_metadata_gzip_is_refused(tmp_path: Path) -> None:
    meta = make_repo(tmp_path, metadata(*[b"f%04d" % i for i in range(2000)]))
    data = bytearray(meta.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xA5 for b in data[middle : middle + 64])
    meta.write_bytes(bytes(data))
    error = refusal(CorruptRepository, lambda: read_all(meta))
    assert meta.name in str(error)


def test_gz_name_on_plain_text_is_refused(tmp_path: Path) -> None:
    meta = make_repo(tmp_path, b"")
    meta.write_bytes(metadata(b"a"))  # plain text under a .gz name
    error = refusal(CorruptRepository, lambda: read_all(meta))
    assert meta.name in str(error)


def test_truncated_plain_metadata_is_refused(tmp_path: Path) -> None:
    meta = make_repo(tmp_path, metadata(b"a", b"b")[:-5], compressed=False)
    error = refusal(CorruptRepository, lambda: read_all(meta))
    assert meta.name in str(error)


@pytest.mark.parametrize(
    "bad",
    [
        b"File a\n  Type nonsense\n  Uid 0\n  Gid 0\n  Permissions 420\n",
        b"File a\n  Type reg\n  Size many\n  ModTime 1\n  Uid 0\n  Gid 0\n  Permissions 420\n",
        b"File a\n  Type reg\n  Size 3\n  ModTime 1\n  Uid -5\n  Gid 0\n  Permissions 420\n",
        b"File a\n  Type reg\n  Size 3\n  ModTime 1\n  Uid 0\n  Gid 0\n  Permissions 420\n"
        b"  SHA1Digest xyz\n",
        b"File a\n  Type reg\n  Size 3\n  ModTime 1\n  Uid 0\n  Gid 0\n  Permissions 420\n"
        b"File a\n  Type reg\n  Size 3\n  ModTime 1\n  Uid 0\n  Gid 0\n  Permissions 420\n",
        b"File b\\q\n  Type reg\n  Size 3\n  ModTime 1\n  Uid 0\n  Gid 0\n  Permissions 420\n",
    ],
    ids=["unknown-type", "bad-size", "negative-uid", "bad-sha1", "duplicate", "bad-escape"],
)
def test_garbled_record_is_refused(tmp_path: Path, bad: bytes) -> None:
    meta = make_repo(tmp_path, record(b".", b"dir") + bad)
    error = refusal(CorruptRepository, lambda: read_all(meta))
    assert meta.name in str(error)


# --------------------------------------------------------------------------------------------
# time strings and markers


@pytest.mark.parametrize(
    "stamp",
    [
        "2150-01-01T00:00:00Z",
        "1850-06-01T00:00:00Z",
        "2023-13-01T00:00:00Z",
        "2023-11-14T22:13:20+1:00",
    ],
    ids=["year-2150", "year-1850", "month-13", "bad-zone"],
)
def test_marker_with_out_of_range_time_is_refused(tmp_path: Path, stamp: str) -> None:
    """rdiff-backup does not see such a marker at all; with increments present and no other
    marker, the repository has no current session and is refused."""
    make_repo(tmp_path, metadata(b"a"), marker_time=stamp)
    data_dir = tmp_path / "rdiff-backup-data"

    def check() -> None:
        read_state(open_repository(tmp_path)).check_finished()

    error = refusal(CorruptRepository, check)
    assert os.fsdecode(data_dir) in str(error)


def test_out_of_range_time_does_not_count_as_a_session(tmp_path: Path) -> None:
    """A metadata file whose name holds an impossible time is not a session (rdiff-backup's
    rule: not an increment), and does not disturb the real one."""
    make_repo(tmp_path, metadata(b"a"))
    data_dir = tmp_path / "rdiff-backup-data"
    (data_dir / "mirror_metadata.2150-01-01T00:00:00Z.snapshot").write_bytes(metadata(b"x"))
    (data_dir / "increments.1800-01-01T00:00:00Z.dir").write_bytes(b"")
    state = read_state(open_repository(tmp_path))
    state.check_finished()
    assert list(state.sessions) == [T1]
    assert [e.name.time for e in state.metadata] == [T1]


@pytest.mark.parametrize("content", [b"PID x\n", b"garbage", b"PID 12 13\n", b"\0" * 10])
def test_garbled_marker_content_is_refused(tmp_path: Path, content: bytes) -> None:
    make_repo(tmp_path, metadata(b"a"), marker=content)
    marker = tmp_path / "rdiff-backup-data" / f"current_mirror.{timestring(T1)}.data"
    error = refusal(CorruptRepository, lambda: read_state(open_repository(tmp_path)))
    assert marker.name in str(error)


def test_three_markers_are_refused(tmp_path: Path) -> None:
    make_repo(tmp_path, metadata(b"a"))
    data_dir = tmp_path / "rdiff-backup-data"
    for t in (T2, T2 + 1):
        (data_dir / f"current_mirror.{timestring(t)}.data").write_bytes(b"PID 1\n")

    def check() -> None:
        read_state(open_repository(tmp_path)).check_finished()

    error = refusal(CorruptRepository, check)
    assert os.fsdecode(data_dir) in str(error)


def test_same_session_written_twice_is_refused(tmp_path: Path) -> None:
    """Two mirror_metadata files for one epoch second (two zones): rdiff-backup's "duplicate
    timestamp", fatal by default."""
    make_repo(tmp_path, metadata(b"a"))
    data_dir = tmp_path / "rdiff-backup-data"
    local = time.strftime("%Y-%m-%dT%H:%M:%S+01:00", time.gmtime(T1 + 3600))
    (data_dir / f"mirror_metadata.{local}.diff").write_bytes(b"")
    error = refusal(CorruptRepository, lambda: read_state(open_repository(tmp_path)))
    assert "mirror_metadata" in str(error)


# --------------------------------------------------------------------------------------------
# hostile quoted names on disk


@pytest.mark.parametrize(
    "name", [b";046;046", b"x;047y", b"nul;000"], ids=["dotdot", "slash", "nul"]
)
def test_quoted_name_unquoting_to_a_hostile_name_is_refused(tmp_path: Path, name: bytes) -> None:
    make_repo(tmp_path, metadata(b"a"), chars_to_quote=b":")
    data_dir = tmp_path / "rdiff-backup-data"
    stamp = timestring(T1).replace(":", "-")
    for old in data_dir.glob("current_mirror.*"):
        old.rename(data_dir / f"current_mirror.{stamp}.data")
    for old in data_dir.glob("mirror_metadata.*"):
        old.rename(data_dir / f"mirror_metadata.{stamp}.snapshot.gz")
    fd = os.open(os.fsencode(data_dir) + b"/" + name, os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    error = refusal(HostilePath, lambda: read_state(open_repository(tmp_path)))
    assert os.fsdecode(data_dir) in str(error)


# --------------------------------------------------------------------------------------------
# the same refusals through the session-level reader (snapshot + reverse diffs)


def make_chain(root: Path, older_diff: bytes, *, compressed: bool = True) -> Path:
    """Two sessions: a good snapshot at T2 and the given reverse diff at T1. Returns the diff."""
    make_repo(root, metadata(b"a"))
    data = root / "rdiff-backup-data"
    for old in data.glob("current_mirror.*"):
        old.rename(data / f"current_mirror.{timestring(T2)}.data")
    for old in data.glob("mirror_metadata.*"):
        old.rename(data / f"mirror_metadata.{timestring(T2)}.snapshot.gz")
    (data / f"increments.{timestring(T1)}.dir").write_bytes(b"")
    name = f"mirror_metadata.{timestring(T1)}.diff"
    if compressed:
        diff = data / (name + ".gz")
        diff.write_bytes(gzip.compress(older_diff, mtime=0))
    else:
        diff = data / name
        diff.write_bytes(older_diff)
    return diff


def session_records(root: Path, when: int) -> list[Record]:
    state = read_state(open_repository(root))
    return list(records_at(state.layout.data_dir, when, quoting=state.quoting))


def test_good_chain_reads(tmp_path: Path) -> None:
    """The hand-made chain itself is sound: at T1 there was 'old' and no 'a'."""
    make_chain(tmp_path, b"File a\n  Type None\n" + record(b"old"))
    assert [r.path for r in session_records(tmp_path, T2)] == [b".", b"a"]
    assert [r.path for r in session_records(tmp_path, T1)] == [b".", b"old"]


@pytest.mark.parametrize("hostile", list(HOSTILE_PATHS.values()), ids=list(HOSTILE_PATHS))
def test_hostile_path_in_an_older_diff_is_refused(tmp_path: Path, hostile: bytes) -> None:
    diff = make_chain(tmp_path, record(hostile))
    assert len(session_records(tmp_path, T2)) == 2  # the newer session never reads the diff
    error = refusal(HostilePath, lambda: session_records(tmp_path, T1))
    assert diff.name in str(error)


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_damaged_diff_gzip_is_refused(tmp_path: Path, damage: str) -> None:
    diff = make_chain(tmp_path, b"".join(record(b"f%04d" % i) for i in range(2000)))
    data = bytearray(diff.read_bytes())
    middle = len(data) // 2
    if damage == "truncated":
        del data[middle:]
    else:
        data[middle : middle + 64] = bytes(b ^ 0x5A for b in data[middle : middle + 64])
    diff.write_bytes(bytes(data))
    error = refusal(CorruptRepository, lambda: session_records(tmp_path, T1))
    assert diff.name in str(error)


def test_session_without_metadata_is_refused(tmp_path: Path) -> None:
    """A session time (root increment marker) with no mirror_metadata file at all."""
    make_chain(tmp_path, record(b"old"))
    data = tmp_path / "rdiff-backup-data"
    (data / f"increments.{timestring(T1 - 50)}.dir").write_bytes(b"")
    error = refusal(CorruptRepository, lambda: session_records(tmp_path, T1 - 50))
    assert os.fsdecode(data) in str(error)
