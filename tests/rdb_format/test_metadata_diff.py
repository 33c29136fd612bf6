"""Reverse metadata diffs: compute, apply, choose files, rebuild any session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdb_format.errors import CorruptRepository
from rdb_format.metadata import (
    RawRecord,
    Record,
    format_record,
    iter_records,
    path_key,
    write_metadata_file,
)
from rdb_format.metadata_diff import (
    apply_diffs,
    apply_raw_diffs,
    convert_to_diff,
    diff_records,
    list_metadata_files,
    metadata_chain,
    raw_records_at,
    records_at,
)
from rdb_format.quoting import Quoting
from rdb_format.timestamps import format_timestring

T0 = 1795303200


def rec(path: bytes, mtime: int = 0, size: int = 1) -> Record:
    return Record(
        path, "reg", size=size, mod_time=mtime, uid=0, uname="root", gid=0, permissions=0o644
    )


def dir_rec(path: bytes) -> Record:
    return Record(path, "dir", mod_time=0, uid=0, gid=0, permissions=0o755)


def name(time: int, kind: str, *, gz: bool = True, compatible: bool = False) -> str:
    stamp = format_timestring(time, compatible=compatible, utc_offset=3600)
    return f"mirror_metadata.{stamp}.{kind}" + (".gz" if gz else "")


def test_diff_holds_old_records_and_type_none_for_new_paths() -> None:
    old = [dir_rec(b"."), rec(b"a"), rec(b"a/b"), rec(b"gone"), rec(b"same")]
    new = [dir_rec(b"."), rec(b"a", mtime=5), rec(b"a.b"), rec(b"same")]
    diff = list(diff_records(new, old))
    assert diff == [rec(b"a"), rec(b"a/b"), Record.missing(b"a.b"), rec(b"gone")]
    assert list(apply_diffs(new, [diff])) == old


def test_identical_states_give_an_empty_diff() -> None:
    state = [dir_rec(b"."), rec(b"x")]
    assert list(diff_records(state, state)) == []


def test_any_field_change_counts() -> None:
    old = [rec(b"f")._replace(sha1_digest="0" * 40)]
    new = [rec(b"f")._replace(sha1_digest="1" * 40)]
    assert list(diff_records(new, old)) == old


def test_unsorted_input_is_refused() -> None:
    with pytest.raises(ValueError, match="out of order"):
        list(diff_records([rec(b"b"), rec(b"a")], []))
    with pytest.raises(ValueError, match="out of order"):
        list(apply_diffs([rec(b"a")], [[rec(b"b"), rec(b"a")]]))


def test_oldest_layer_wins() -> None:
    snapshot = [rec(b"a", 3), rec(b"c", 3)]
    newer_diff = [rec(b"a", 2), Record.missing(b"c")]
    older_diff = [rec(b"a", 1), rec(b"b", 1)]
    assert list(apply_diffs(snapshot, [newer_diff, older_diff])) == [rec(b"a", 1), rec(b"b", 1)]
    assert list(apply_diffs(snapshot, [newer_diff])) == [rec(b"a", 2)]


# -- random histories ------------------------------------------------------------------------

component = st.sampled_from([b"a", b"b", b"a.b", b"a-b", b"new\nline", b"\xff"])
paths = st.lists(component, min_size=1, max_size=3).map(b"/".join)
states = st.dictionaries(paths, st.integers(0, 3), max_size=12).map(
    lambda d: [rec(p, m) for p, m in sorted(d.items(), key=lambda kv: path_key(kv[0]))]
)


@settings(max_examples=200)
@given(st.lists(states, min_size=1, max_size=6))
def test_diff_apply_roundtrip_in_memory(history: list[list[Record]]) -> None:
    # diffs[i] takes state i+1 back to state i
    diffs = [list(diff_records(history[i + 1], history[i])) for i in range(len(history) - 1)]
    newest = history[-1]
    for i, state in enumerate(history):
        chain = list(reversed(diffs[i:]))  # newest first
        assert list(apply_diffs(newest, chain)) == state


def _raw(records: list[Record]) -> list[RawRecord]:
    return [RawRecord(path_key(r.path), r, b"text of " + r.path) for r in records]


@settings(max_examples=300)
@given(st.lists(states, min_size=1, max_size=6))
def test_raw_merge_gives_what_apply_diffs_gives(history: list[list[Record]]) -> None:
    """apply_raw_diffs (the two-way merge for one diff, the heap for more) picks the same
    records as apply_diffs, each with the key and text of the stream it came from."""
    diffs = [list(diff_records(history[i + 1], history[i])) for i in range(len(history) - 1)]
    newest = history[-1]
    for i, state in enumerate(history):
        chain = list(reversed(diffs[i:]))
        merged = list(apply_raw_diffs(_raw(newest), [_raw(d) for d in chain]))
        assert [raw.record for raw in merged] == state == list(apply_diffs(newest, chain))
        assert all(raw.key == path_key(raw.record.path) for raw in merged)
        assert all(raw.text == b"text of " + raw.record.path for raw in merged)


def test_raw_merge_of_one_diff_keeps_the_tail_of_either_stream() -> None:
    snapshot = [rec(b"a", 3), rec(b"b", 3), rec(b"d", 3)]
    diff = [rec(b"b", 1), Record.missing(b"d"), rec(b"e", 1), rec(b"f", 1)]
    merged = [raw.record for raw in apply_raw_diffs(_raw(snapshot), [_raw(diff)])]
    assert merged == [rec(b"a", 3), rec(b"b", 1), rec(b"e", 1), rec(b"f", 1)]
    merged = [raw.record for raw in apply_raw_diffs(_raw(diff[:1]), [_raw([])])]
    assert merged == [rec(b"b", 1)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=st.lists(states, min_size=1, max_size=12), compatible=st.booleans())
def test_sessions_rebuilt_from_files(
    tmp_path_factory: pytest.TempPathFactory, history: list[list[Record]], compatible: bool
) -> None:
    """Write sessions as rdiff-backup does (newest snapshot, diffs, a snapshot every 9)."""
    data_dir = tmp_path_factory.mktemp("data")
    times = [T0 + 100 * i for i in range(len(history))]
    for i, state in enumerate(history):
        path = data_dir / name(times[i], "snapshot", gz=False, compatible=compatible)
        written = write_metadata_file(path, state, fsync=False)
        if i > 0 and i % 9 != 0:  # keep every 9th snapshot, as max_diff_chain does
            (previous,) = [f for f in list_metadata_files(data_dir) if f.time == times[i - 1]]
            convert_to_diff(previous, iter_records(written), fsync=False)
    files = list_metadata_files(data_dir)
    assert [f.time for f in files] == times
    assert files[-1].kind == "snapshot"
    for time, state in zip(times, history, strict=True):
        assert list(records_at(data_dir, time)) == state
        raws = list(raw_records_at(data_dir, time))
        assert [r.record for r in raws] == state
        assert [r.key for r in raws] == [path_key(r.path) for r in state]
        from_snapshot = time == times[-1] or (times.index(time) % 9 == 8)
        for raw in raws:  # the stored text of a snapshot; records rebuilt from diffs: none
            canonical = from_snapshot and b"\n" not in raw.record.path
            assert raw.text == (format_record(raw.record) if canonical else None)


def _stamp(time: int, compatible: bool) -> str:
    return format_timestring(time, compatible=compatible, utc_offset=3600)


# -- choosing files --------------------------------------------------------------------------


def _touch(data_dir: Path, *names: str) -> None:
    for n in names:
        (data_dir / n).write_bytes(b"")


def test_chain_selection(tmp_path: Path) -> None:
    t = [T0 + i for i in range(5)]
    _touch(
        tmp_path,
        name(t[0], "diff"),
        name(t[1], "diff", gz=False),
        name(t[2], "snapshot"),
        name(t[3], "diff"),
        name(t[4], "snapshot"),
        "mirror_metadata.garbage.snapshot.gz",
        "mirror_metadata.2150-01-01T00:00:00Z.snapshot.gz",  # year out of range: ignored
        "rdiff-backup.tmp.12",
        "file_statistics." + _stamp(t[0], False) + ".data",
        "current_mirror." + _stamp(t[4], False) + ".data",
    )
    files = list_metadata_files(tmp_path)
    assert [(f.time, f.kind, f.compressed) for f in files] == [
        (t[0], "diff", True),
        (t[1], "diff", False),
        (t[2], "snapshot", True),
        (t[3], "diff", True),
        (t[4], "snapshot", True),
    ]
    snapshot, diffs = metadata_chain(files, t[0])
    assert snapshot.time == t[2]
    assert [d.time for d in diffs] == [t[1], t[0]]
    snapshot, diffs = metadata_chain(files, t[3])
    assert (snapshot.time, [d.time for d in diffs]) == (t[4], [t[3]])
    snapshot, diffs = metadata_chain(files, t[2])
    assert (snapshot.time, diffs) == (t[2], [])
    with pytest.raises(CorruptRepository, match="no mirror_metadata file for session"):
        metadata_chain(files, t[0] + 1000)


def test_no_snapshot_is_fatal(tmp_path: Path) -> None:
    _touch(tmp_path, name(T0, "diff"), name(T0 + 1, "diff"))
    with pytest.raises(CorruptRepository, match="contains no snapshots") as error:
        list(records_at(tmp_path, T0))
    assert str(tmp_path) in str(error.value)


def test_duplicate_timestamps_are_fatal(tmp_path: Path) -> None:
    stamp_z = format_timestring(T0, utc_offset=0)
    _touch(tmp_path, name(T0, "diff"), f"mirror_metadata.{stamp_z}.snapshot.gz")
    with pytest.raises(CorruptRepository, match="duplicate timestamp") as error:
        list_metadata_files(tmp_path)
    assert "\n" not in str(error.value)


def test_quoted_names_are_unquoted(tmp_path: Path) -> None:
    quoting = Quoting(b"A-Z")
    stamp = _stamp(T0, False)
    plain = f"mirror_metadata.{stamp}.snapshot"
    quoted = plain.replace("T", ";084")
    write_metadata_file(tmp_path / quoted, [dir_rec(b"."), rec(b"Sub")], fsync=False)
    assert list_metadata_files(tmp_path) == []  # ';084' is not a time string
    (found,) = list_metadata_files(tmp_path, quoting)
    assert found.time == T0
    assert list(records_at(tmp_path, T0, quoting=quoting)) == [dir_rec(b"."), rec(b"Sub")]


def test_convert_to_diff(tmp_path: Path) -> None:
    old = [dir_rec(b"."), rec(b"a"), rec(b"gone")]
    new = [dir_rec(b"."), rec(b"a", 9), rec(b"new")]
    write_metadata_file(tmp_path / name(T0, "snapshot", gz=False), old, fsync=False)
    new_path = write_metadata_file(tmp_path / name(T0 + 1, "snapshot", gz=False), new, fsync=False)
    first = list_metadata_files(tmp_path)[0]
    diff_path = convert_to_diff(first, iter_records(new_path), fsync=False)
    assert diff_path.name == name(T0, "diff")
    assert not first.path.exists()
    assert list(iter_records(diff_path)) == [rec(b"a"), rec(b"gone"), Record.missing(b"new")]
    assert list(records_at(tmp_path, T0)) == old
    # no change: a 0-byte plain diff, as rdiff-backup leaves it
    write_metadata_file(tmp_path / name(T0 + 2, "snapshot", gz=False), new, fsync=False)
    second = list_metadata_files(tmp_path)[1]
    empty = convert_to_diff(second, iter_records(new_path.with_name(name(T0 + 2, "snapshot"))))
    assert empty.name == name(T0 + 1, "diff", gz=False)
    assert empty.read_bytes() == b""
    assert list(records_at(tmp_path, T0 + 1)) == new
    assert list(records_at(tmp_path, T0)) == old


def test_records_at_is_lazy(tmp_path: Path) -> None:
    write_metadata_file(tmp_path / name(T0, "snapshot", gz=False), [rec(b"a")], fsync=False)
    iterator = records_at(tmp_path, T0)
    (tmp_path / "rdiff-backup.tmp.1").write_bytes(b"")
    assert next(iterator) == rec(b"a")


# ---- per-session files from a pre-listed directory ---------------------------------------------


def _many_sessions(data_dir: Path, count: int) -> list[int]:
    from rdb_format.timestamps import format_timestring

    times = [1_700_000_000 + 1000 * i for i in range(count)]
    for t in times:
        ts = format_timestring(t, utc_offset=0)
        for name in (
            f"extended_attributes.{ts}.snapshot",
            f"access_control_lists.{ts}.snapshot.gz",
            f"session_statistics.{ts}.data",
            f"mirror_metadata.{ts}.snapshot.gz",
        ):
            (data_dir / name).write_bytes(b"")
    (data_dir / "rdiff-backup.tmp.7").write_bytes(b"")
    return times


def test_find_session_file_from_state_entries_lists_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the state's entries, 3,000 lookups neither list the directory nor rebuild the
    index (each is a dict lookup; the speed itself is for benchmarks, not tests)."""
    from rdb_format.layout import Layout
    from rdb_format.metadata_diff import SessionFileIndex, find_session_file
    from rdb_format.repository import read_state

    data_dir = tmp_path / "rdiff-backup-data"
    data_dir.mkdir()
    times = _many_sessions(data_dir, 1000)
    state = read_state(Layout(tmp_path))
    built: list[object] = []
    real_init = SessionFileIndex.__init__

    def counting_init(self: SessionFileIndex, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        real_init(self, *args, **kwargs)

    def no_listing(*_: object) -> list[bytes]:
        raise AssertionError("the directory was listed")

    monkeypatch.setattr(SessionFileIndex, "__init__", counting_init)
    monkeypatch.setattr("rdb_format.metadata_diff.os.listdir", no_listing)
    for t in times:
        for base in ("extended_attributes", "access_control_lists", "session_statistics"):
            found = find_session_file(data_dir, base, t, entries=state.entries)
            assert found is not None and found.name.startswith(base)
    assert len(built) == 1  # one index for 3,000 lookups
    monkeypatch.undo()
    index = SessionFileIndex.from_directory(data_dir)
    for t in times[:10]:
        assert index.find("access_control_lists", t) == find_session_file(
            data_dir, "access_control_lists", t
        )
        assert find_session_file(data_dir, "error_log", t, entries=index) is None
    assert find_session_file(data_dir, "mirror_metadata", times[0], entries=list(state.entries))


def test_find_session_file_duplicates_with_entries(tmp_path: Path) -> None:
    from rdb_format.layout import Layout
    from rdb_format.metadata_diff import find_session_file
    from rdb_format.repository import read_state

    data_dir = tmp_path / "rdiff-backup-data"
    data_dir.mkdir()
    (data_dir / "session_statistics.2023-11-14T22:13:20Z.data").write_bytes(b"")
    (data_dir / "session_statistics.2023-11-14T23:13:20+01:00.data").write_bytes(b"")
    state = read_state(Layout(tmp_path))
    with pytest.raises(CorruptRepository, match="duplicate timestamp"):
        find_session_file(data_dir, "session_statistics", 1700000000, entries=state.entries)
    with pytest.raises(CorruptRepository, match="duplicate timestamp"):
        find_session_file(data_dir, "session_statistics", 1700000000)
