"""Metadata snapshots and reverse diffs: compute, apply, and rebuild the tree of any session.

rdiff-backup keeps the newest session's metadata as ``mirror_metadata.<T>.snapshot.gz`` and
turns older snapshots into reverse diffs ``mirror_metadata.<T>.diff.gz`` (docs/format.md §6):
a diff holds, for each path that differs between its session O and the next newer state N,
the full O record (changed or deleted in N) or ``Type None`` (created in N).

Everything here is a streaming merge of sorted record streams: memory does not grow with the
number of records, only with the number of files merged.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rdb_format.atomic import is_temp_name, remove_durable
from rdb_format.errors import CorruptRepository
from rdb_format.increments import parse_increment_name
from rdb_format.metadata import (
    RawRecord,
    Record,
    iter_raw_records,
    iter_records,
    path_key,
    write_metadata_file,
)
from rdb_format.quoting import Quoting
from rdb_format.repository import DataEntry
from rdb_format.timestamps import format_timestring

__all__ = [
    "MIRROR_METADATA",
    "MetadataFile",
    "SessionFileIndex",
    "apply_diffs",
    "apply_raw_diffs",
    "convert_to_diff",
    "diff_records",
    "find_session_file",
    "list_metadata_files",
    "metadata_chain",
    "raw_records_at",
    "records_at",
]

MIRROR_METADATA = b"mirror_metadata"

_Key = tuple[bytes, ...]


def _keyed(records: Iterable[Record], what: str) -> Iterator[tuple[_Key, Record]]:
    """Pair each record with its sort key, checking the stream is strictly increasing."""
    last: _Key | None = None
    for record in records:
        key = path_key(record.path)
        if last is not None and key <= last:
            raise ValueError(f"{what} records out of order at {record.path!r}")
        last = key
        yield key, record


def diff_records(new: Iterable[Record], old: Iterable[Record]) -> Iterator[Record]:
    """The reverse diff that takes state ``new`` back to the older state ``old``.

    Both streams must be sorted (:func:`~rdb_format.metadata.path_key`). Yields, in order:
    the old record of every path deleted or changed in ``new`` (any field differs), and
    ``Type None`` for every path created in ``new``; nothing for identical records.
    """
    new_items = _keyed(new, "new")
    old_items = _keyed(old, "old")
    new_item = next(new_items, None)
    old_item = next(old_items, None)
    while new_item is not None or old_item is not None:
        if old_item is None or (new_item is not None and new_item[0] < old_item[0]):
            assert new_item is not None
            yield Record.missing(new_item[1].path)
            new_item = next(new_items, None)
        elif new_item is None or old_item[0] < new_item[0]:
            if old_item[1].exists:
                yield old_item[1]
            old_item = next(old_items, None)
        else:
            new_record, old_record = new_item[1], old_item[1]
            if not old_record.exists:
                if new_record.exists:
                    yield old_record
            elif new_record != old_record:
                yield old_record
            new_item = next(new_items, None)
            old_item = next(old_items, None)


def _ranked(stream: Iterable[Record], rank: int, what: str) -> Iterator[tuple[_Key, int, Record]]:
    for key, record in _keyed(stream, what):
        yield key, rank, record


def apply_diffs(snapshot: Iterable[Record], diffs: Sequence[Iterable[Record]]) -> Iterator[Record]:
    """Rebuild an older state from a snapshot and the reverse diffs leading back to it.

    ``diffs`` come newest first: the diff of the session just before the snapshot, then the
    one before that, down to the wanted session. For each path the record of the *oldest*
    stream mentioning it wins; ``Type None`` winners (absent at that time) are dropped.
    """
    layers: list[Iterator[tuple[_Key, int, Record]]] = []
    for age, stream in enumerate([snapshot, *diffs]):
        # rank: the oldest stream (the last diff) sorts first among equal keys
        rank = len(diffs) - age
        what = "snapshot" if age == 0 else f"diff #{age}"
        layers.append(_ranked(stream, rank, what))
    last: _Key | None = None
    for key, _rank, record in heapq.merge(*layers):
        if key == last:
            continue  # a newer stream's record for a path already decided
        last = key
        if record.exists:
            yield record


def apply_raw_diffs(
    snapshot: Iterable[RawRecord], diffs: Sequence[Iterable[RawRecord]]
) -> Iterator[RawRecord]:
    """:func:`apply_diffs` over parsed streams (:func:`~rdb_format.metadata.iter_raw_records`),
    whose keys the parser has made and checked to increase strictly: no key is made again
    per record, and the commonest case, one diff, is a plain two-way merge (restoring the
    session before the newest, and every backup's previous state after a first one)."""
    if len(diffs) == 1:
        yield from _merge_two(iter(snapshot), iter(diffs[0]))
        return
    layers = [
        _raw_ranked(stream, len(diffs) - age) for age, stream in enumerate([snapshot, *diffs])
    ]
    last: _Key | None = None
    for key, _rank, raw in heapq.merge(*layers):
        if key == last:
            continue  # a newer stream's record for a path already decided
        last = key
        if raw.record.type != "None":
            yield raw


def _raw_ranked(stream: Iterable[RawRecord], rank: int) -> Iterator[tuple[_Key, int, RawRecord]]:
    for raw in stream:
        yield raw.key, rank, raw


def _merge_two(newer: Iterator[RawRecord], older: Iterator[RawRecord]) -> Iterator[RawRecord]:
    """The records of ``newer`` (a snapshot) with ``older`` (its reverse diff) applied: the
    diff's record wins where both have the path; ``Type None`` winners are dropped."""
    new = next(newer, None)
    old = next(older, None)
    while new is not None and old is not None:
        if new.key < old.key:
            if new.record.type != "None":
                yield new
            new = next(newer, None)
        else:
            if old.record.type != "None":
                yield old
            if old.key == new.key:
                new = next(newer, None)
            old = next(older, None)
    for rest, first in ((newer, new), (older, old)):
        if first is not None:
            yield from (raw for raw in _chain_first(first, rest) if raw.record.type != "None")


def _chain_first(first: RawRecord, rest: Iterator[RawRecord]) -> Iterator[RawRecord]:
    yield first
    yield from rest


# ---------------------------------------------------------------------------------------------
# Files in rdiff-backup-data


@dataclass(frozen=True, order=True)
class MetadataFile:
    """A ``mirror_metadata.<time>.<kind>[.gz]`` file (name parsed after unquoting)."""

    time: int
    kind: Literal["snapshot", "diff"]
    compressed: bool
    path: Path

    def records(self) -> Iterator[Record]:
        """Stream this file's records."""
        return iter_records(self.path)

    def raw_records(self) -> Iterator[RawRecord]:
        """Stream this file's records with their keys and stored text."""
        return iter_raw_records(self.path)


def list_metadata_files(
    data_dir: str | os.PathLike[str], quoting: Quoting | None = None
) -> list[MetadataFile]:
    """The metadata files in ``data_dir``, oldest first.

    Names are unquoted with ``quoting`` (default: none). Temp files and names whose time
    does not parse are ignored, as rdiff-backup does. Two files with the same time (in any
    zone notation or kind) are fatal, as in rdiff-backup: CorruptRepository.
    """
    base = Path(data_dir)
    found: dict[int, MetadataFile] = {}
    for raw in os.listdir(os.fsencode(base)):
        if is_temp_name(raw):
            continue
        name = quoting.unquote(raw, path=base) if quoting is not None else raw
        parsed = parse_increment_name(name)
        if parsed is None or parsed.base != MIRROR_METADATA:
            continue
        if parsed.kind not in ("snapshot", "diff"):
            continue
        entry = MetadataFile(
            parsed.time,
            "snapshot" if parsed.kind == "snapshot" else "diff",
            parsed.compressed,
            base / os.fsdecode(raw),
        )
        other = found.get(parsed.time)
        if other is not None:
            raise CorruptRepository(
                f"duplicate timestamp: {other.path.name} and {entry.path.name}", path=base
            )
        found[parsed.time] = entry
    return sorted(found.values())


class SessionFileIndex:
    """The per-session files of ``rdiff-backup-data`` by (base, time), from one listing.

    Build it once (from a directory listing, or from ``RepositoryState.entries``) and ask it
    for any number of sessions: each :meth:`find` is a dict lookup.
    """

    def __init__(
        self, entries: Iterable[DataEntry], *, where: str | os.PathLike[str] | None = None
    ):
        self.where = where
        self._by_key: dict[tuple[bytes, int], list[DataEntry]] = {}
        for entry in entries:
            self._by_key.setdefault((entry.name.base, entry.name.time), []).append(entry)

    @classmethod
    def from_directory(
        cls, data_dir: str | os.PathLike[str], quoting: Quoting | None = None
    ) -> SessionFileIndex:
        """List ``data_dir`` once (names unquoted with ``quoting``; temp files ignored)."""
        root = Path(data_dir)
        entries = []
        for raw in os.listdir(os.fsencode(root)):
            if is_temp_name(raw):
                continue
            name = quoting.unquote(raw, path=root) if quoting is not None else raw
            parsed = parse_increment_name(name)
            if parsed is not None:
                entries.append(DataEntry(root / os.fsdecode(raw), parsed))
        return cls(entries, where=root)

    def find(
        self,
        base: str,
        time: int,
        *,
        kinds: tuple[str, ...] = ("snapshot", "data"),
        where: str | os.PathLike[str] | None = None,
    ) -> Path | None:
        """The file ``<base>.<time>.<kind>[.gz]``; None if none; two: CorruptRepository
        (naming ``where``, default the indexed directory)."""
        where = where if where is not None else self.where
        found: Path | None = None
        for entry in self._by_key.get((base.encode("ascii"), time), ()):
            if entry.name.kind not in kinds:
                continue
            if found is not None:
                raise CorruptRepository(
                    f"duplicate timestamp: {found.name} and {entry.path.name}",
                    path=where if where is not None else entry.path.parent,
                )
            found = entry.path
        return found


# The index of the last few entry tuples passed to find_session_file (by identity, kept alive
# with the tuple so an id is never reused while cached).
_INDEXES: dict[int, tuple[object, SessionFileIndex]] = {}


def _index_of(entries: Sequence[DataEntry]) -> SessionFileIndex:
    cached = _INDEXES.get(id(entries))
    if cached is not None and cached[0] is entries:
        return cached[1]
    index = SessionFileIndex(entries)
    if isinstance(entries, tuple):  # immutable: safe to reuse for the next calls
        if len(_INDEXES) >= 8:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[id(entries)] = (entries, index)
    return index


def find_session_file(
    data_dir: str | os.PathLike[str],
    base: str,
    time: int,
    *,
    kinds: tuple[str, ...] = ("snapshot", "data"),
    quoting: Quoting | None = None,
    entries: Sequence[DataEntry] | SessionFileIndex | None = None,
) -> Path | None:
    """The file ``<base>.<time>.<kind>[.gz]`` in ``data_dir`` for exactly session ``time``.

    For the per-session files (``extended_attributes``, ``access_control_lists``,
    ``session_statistics``, ``file_statistics``, ``error_log``). ``None`` if there is none:
    rdiff-backup then only warns. Two candidates: CorruptRepository.

    ``entries`` avoids listing the directory on every call: pass ``RepositoryState.entries``
    (a tuple; its index is built once and reused while the same tuple is passed) or a
    :class:`SessionFileIndex`. Without it the directory is listed each time.
    """
    if isinstance(entries, SessionFileIndex):
        index = entries
    elif entries is not None:
        index = _index_of(entries)
    else:
        index = SessionFileIndex.from_directory(data_dir, quoting)
    return index.find(base, time, kinds=kinds, where=data_dir)


def metadata_chain(
    files: Sequence[MetadataFile], time: int, *, where: str | os.PathLike[str] | None = None
) -> tuple[MetadataFile, list[MetadataFile]]:
    """The snapshot and the diffs (newest first) that rebuild the metadata at ``time``.

    ``time`` must be a metadata time; the snapshot is the oldest one at or after it, the
    diffs are those from ``time`` up to the snapshot. CorruptRepository otherwise.
    """
    ordered = sorted(files)
    if not any(f.time == time for f in ordered):
        raise CorruptRepository(
            f"no mirror_metadata file for session {format_timestring(time, utc_offset=0)}",
            path=where,
        )
    later = [f for f in ordered if f.time >= time]
    snapshot = next((f for f in later if f.kind == "snapshot"), None)
    if snapshot is None:
        raise CorruptRepository(
            f"metadata from {format_timestring(time, utc_offset=0)} on contains no snapshots",
            path=where,
        )
    diffs = [f for f in later if f.time < snapshot.time]
    diffs.reverse()
    return snapshot, diffs


def records_at(
    data_dir: str | os.PathLike[str], time: int, *, quoting: Quoting | None = None
) -> Iterator[Record]:
    """Stream the metadata records describing the backup tree as of session ``time``.

    Picks ``mirror_metadata`` files in ``data_dir`` (the repository's ``rdiff-backup-data``)
    by name, then merges the oldest snapshot at or after ``time`` with the diffs back to it.
    Memory stays constant in the number of records.
    """
    files = list_metadata_files(data_dir, quoting)
    snapshot, diffs = metadata_chain(files, time, where=data_dir)
    if not diffs:
        yield from (r for r in snapshot.records() if r.exists)
        return
    for raw in apply_raw_diffs(snapshot.raw_records(), [d.raw_records() for d in diffs]):
        yield raw.record


def raw_records_at(
    data_dir: str | os.PathLike[str], time: int, *, quoting: Quoting | None = None
) -> Iterator[RawRecord]:
    """:func:`records_at` with each record's key and stored text (``text`` None for records
    rebuilt from diffs, or not stored in the canonical form). For a session whose metadata
    is a snapshot (the newest always is), the text can be copied to a new snapshot as is."""
    files = list_metadata_files(data_dir, quoting)
    snapshot, diffs = metadata_chain(files, time, where=data_dir)
    if not diffs:
        yield from (r for r in iter_raw_records(snapshot.path) if r.record.type != "None")
        return
    for raw in apply_raw_diffs(snapshot.raw_records(), [d.raw_records() for d in diffs]):
        yield raw if raw.text is None else RawRecord(raw.key, raw.record, None)


def convert_to_diff(
    old_snapshot: MetadataFile,
    new_records: Iterable[Record],
    *,
    compress: bool = True,
    fsync: bool = True,
) -> Path:
    """Replace ``old_snapshot`` by its reverse diff against the next newer state.

    ``new_records`` is that newer state (usually the new snapshot's records). The diff is
    written atomically next to the old snapshot as ``mirror_metadata.<T>.diff[.gz]`` (0-byte
    plain if nothing changed), then the snapshot is removed. Returns the diff's path.
    The diff's name reuses the snapshot's time string, so any quoting stays valid.
    """
    if old_snapshot.kind != "snapshot":
        raise ValueError(f"{old_snapshot.path.name} is not a snapshot")
    name = old_snapshot.path.name
    if old_snapshot.compressed:
        name = name[: -len(".gz")]
    stem = name[: -len("snapshot")]
    if not name.endswith("snapshot"):
        raise ValueError(f"{old_snapshot.path.name}: kind is quoted; cannot derive the diff name")
    target = old_snapshot.path.with_name(stem + "diff")
    written = write_metadata_file(
        target,
        diff_records(new_records, old_snapshot.records()),
        compress=compress,
        allow_missing=True,
        fsync=fsync,
    )
    if fsync:
        remove_durable(old_snapshot.path)
    else:
        old_snapshot.path.unlink()
    return written
