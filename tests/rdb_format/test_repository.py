"""Repository state: markers, unfinished sessions, session times (reference §5.2, §3.6)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdb_format.errors import CorruptRepository, RepositoryNotFound, UnfinishedSession
from rdb_format.exitcodes import ExitCode
from rdb_format.layout import Layout
from rdb_format.quoting import NO_QUOTING, Quoting, write_quoting
from rdb_format.repository import (
    data_file_name,
    pid_alive,
    read_marker_pid,
    read_state,
    remove_marker,
    write_marker,
)

T1 = 1795303280  # 2026-11-22T00:21:20+01:00
T2 = T1 + 13
T3 = T1 + 100


def repo(tmp_path: Path, *, quoting: Quoting = NO_QUOTING) -> Layout:
    layout = Layout(tmp_path)
    layout.increments_dir.mkdir(parents=True)
    write_quoting(layout.data_dir, quoting)
    return layout


def touch(layout: Layout, name: bytes, content: bytes = b"") -> None:
    (layout.data_dir / os.fsdecode(name)).write_bytes(content)


def test_minimal_repository_from_reference(tmp_path: Path) -> None:
    """The §8 hand-built repository: Z times, no chars_to_quote."""
    layout = Layout(tmp_path)
    layout.increments_dir.mkdir(parents=True)
    (layout.increments_dir / "d.2026-11-21T23:21:20Z.dir").write_bytes(b"")
    touch(layout, b"current_mirror.2026-11-21T23:21:33Z.data", b"PID 1\n")
    touch(layout, b"mirror_metadata.2026-11-21T23:21:33Z.snapshot.gz")
    touch(layout, b"mirror_metadata.2026-11-21T23:21:20Z.diff.gz")
    touch(layout, b"increments.2026-11-21T23:21:20Z.dir")
    state = read_state(layout)
    assert state.quoting.missing == ("chars_to_quote", "special_escapes")
    assert [(m.time, m.pid) for m in state.markers] == [(T2, 1)]
    assert state.current_time == T2
    assert state.sessions == (T1, T2)
    assert state.root_increment_times == (T1,)
    assert not state.unfinished
    assert not state.is_new
    state.check_finished()


def test_sessions_without_root_marker_and_mixed_zones(tmp_path: Path) -> None:
    layout = repo(tmp_path)
    (layout.increments_dir / "x").mkdir()
    touch(layout, b"current_mirror.2026-11-22T00:23:00+01:00.data", b"PID 7\n")
    touch(layout, b"mirror_metadata.2026-11-22T00:23:00+01:00.snapshot.gz")
    touch(layout, b"mirror_metadata.2026-11-21T23:21:33Z.diff")  # no-change session, 0 bytes
    touch(layout, b"mirror_metadata.2026-11-22T00:21:20+01:00.diff.gz")
    touch(layout, b"increments.2026-11-22T00:21:20+01:00.dir")
    touch(layout, b"session_statistics.2026-11-22T00:21:20+01:00.data")
    touch(layout, b"rdiff-backup.tmp.3")
    touch(layout, b"backup.log")
    state = read_state(layout)
    assert state.sessions == (T1, T2, T3)
    assert state.root_increment_times == (T1,)  # what `list increments` shows
    assert [e.name.time for e in state.metadata] == [T1, T2, T3]


def test_quoted_data_dir(tmp_path: Path) -> None:
    layout = repo(tmp_path, quoting=Quoting(b"A-Z"))
    (layout.increments_dir / ";083ub").mkdir()
    touch(layout, b"current_mirror.2026-11-22;08400:21:33+01:00.data", b"PID 9335\n")
    touch(layout, b"mirror_metadata.2023-11-14;08422:13:20;090.snapshot.gz")
    touch(layout, b"increments.2026-11-22;08400:21:20+01:00.dir")
    state = read_state(layout)
    assert state.current_time == T2
    assert state.markers[0].pid == 9335
    assert state.sessions == (1700000000, T1, T2)


def test_compatible_names_when_colon_is_quoted(tmp_path: Path) -> None:
    layout = repo(tmp_path, quoting=Quoting(b":"))
    marker = write_marker(layout, read_state(layout).quoting, T2, pid=42, utc_offset=3600)
    assert marker.path.name == "current_mirror.2026-11-22T00-21-33+01-00.data"
    assert marker.path.read_bytes() == b"PID 42\n"
    assert read_state(layout).markers == (marker,)


def test_write_marker_defaults(tmp_path: Path) -> None:
    layout = repo(tmp_path)
    marker = write_marker(layout, NO_QUOTING, T1, utc_offset=0)
    assert marker.path.name == "current_mirror.2026-11-21T23:21:20Z.data"
    assert read_marker_pid(marker.path) == os.getpid()
    assert (
        data_file_name(
            Quoting(b"A-Z"), "mirror_metadata", T1, "snapshot", compressed=True, utc_offset=0
        )
        == b"mirror_metadata.2026-11-21;08423:21:20;090.snapshot.gz"
    )
    remove_marker(marker)
    assert read_state(layout).markers == ()


def test_unfinished_session(tmp_path: Path) -> None:
    layout = repo(tmp_path)
    (layout.increments_dir / "f.2026-11-22T00:21:20+01:00.diff.gz").write_bytes(b"")
    write_marker(layout, NO_QUOTING, T1, pid=11, utc_offset=3600)
    write_marker(layout, NO_QUOTING, T2, pid=12)
    state = read_state(layout)
    assert state.unfinished
    assert state.current_time == T1
    assert state.failed_time == T2
    assert state.sessions == (T1,)
    with pytest.raises(UnfinishedSession) as info:
        state.check_finished()
    message = str(info.value)
    assert message.startswith(f"{layout.data_dir}: ")
    assert "pid 12" in message
    assert "regress" in message
    assert "\n" not in message
    assert info.value.exit_code == ExitCode.UNFINISHED


def test_three_markers(tmp_path: Path) -> None:
    layout = repo(tmp_path)
    for t in (T1, T2, T3):
        write_marker(layout, NO_QUOTING, t, pid=1)
    with pytest.raises(CorruptRepository, match="3 current_mirror markers"):
        read_state(layout).check_finished()


def test_no_marker_with_increments(tmp_path: Path) -> None:
    layout = repo(tmp_path)
    (layout.increments_dir / "a.2026-11-22T00:21:20+01:00.missing").write_bytes(b"")
    state = read_state(layout)
    assert state.current_time is None
    assert state.sessions == ()
    with pytest.raises(CorruptRepository, match="no current_mirror marker"):
        state.check_finished()


def test_new_and_failed_initial(tmp_path: Path) -> None:
    layout = repo(tmp_path)
    touch(layout, b"mirror_metadata.2026-11-22T00:21:20+01:00.snapshot.gz")
    touch(layout, b"error_log.2026-11-22T00:21:20+01:00.data")
    state = read_state(layout)
    assert state.is_new
    assert state.failed_initial
    state.check_finished()  # a new repository is not "unfinished"
    write_marker(layout, NO_QUOTING, T1)
    assert not read_state(layout).failed_initial


def test_duplicate_timestamps(tmp_path: Path) -> None:
    layout = repo(tmp_path)
    touch(layout, b"mirror_metadata.2026-11-22T00:21:20+01:00.snapshot.gz")
    touch(layout, b"mirror_metadata.2026-11-21T23:21:20Z.diff.gz")
    with pytest.raises(CorruptRepository, match="duplicate timestamp") as info:
        read_state(layout)
    assert str(info.value).startswith(str(layout.data_dir / "mirror_metadata."))
    assert len(read_state(layout, allow_duplicate_timestamps=True).metadata) == 2


@pytest.mark.parametrize("content", [b"PID x\n", b"garbage", b"PID 1\nPID 2\n", b"x" * 5000])
def test_garbled_marker(tmp_path: Path, content: bytes) -> None:
    layout = repo(tmp_path)
    name = b"current_mirror.2026-11-22T00:21:20+01:00.data"
    touch(layout, name, content)
    with pytest.raises(CorruptRepository) as info:
        read_state(layout)
    assert str(info.value).startswith(str(layout.data_dir / os.fsdecode(name)) + ": ")


def test_empty_marker_has_no_pid(tmp_path: Path) -> None:
    layout = repo(tmp_path)
    touch(layout, b"current_mirror.2026-11-22T00:21:20+01:00.data")
    assert read_state(layout).markers[0].pid is None


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound):
        read_state(Layout(tmp_path))


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0)
    assert not pid_alive(2**22 + 12345)  # above pid_max
