"""The ``mirror_metadata`` of a session whose newer neighbours are being removed.

``mirror_metadata.P.diff`` is a reverse diff against the next session S. Before S's metadata can
go, P's file must stop depending on it, in one atomic step, under the same name (a second
``mirror_metadata.P.*`` would be a duplicate timestamp, fatal to rdiff-backup). So:

1. :func:`make_self_contained` rewrites P's diff with P's full records plus ``Type None`` for
   every path a newer state might hold that P does not. Applied over *any* newer state it
   gives P's tree, so S (and every dropped session up to the next kept one) can then be
   deleted in any order while P stays exact.
2. :func:`rediff` rewrites it, once S is gone, as the ordinary diff against the next session.

Both write a temp file and rename it over the old one (``rdb_format.atomic``), keeping the
name and its compression (``.gz`` or plain), so readers see the old file or the new one.
"""

from __future__ import annotations

import gzip
import heapq
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from rdb_format.atomic import atomic_writer
from rdb_format.metadata import MetadataWriter, Record, path_key
from rdb_format.metadata_diff import MetadataFile, diff_records, list_metadata_files, records_at
from rdb_format.quoting import Quoting

__all__ = ["make_self_contained", "metadata_at", "rediff", "rewrite_metadata"]

_Key = tuple[bytes, ...]


def metadata_at(data_dir: Path, time: int, quoting: Quoting) -> MetadataFile | None:
    """The ``mirror_metadata`` file of session ``time``, if any."""
    for entry in list_metadata_files(data_dir, quoting):
        if entry.time == time:
            return entry
    return None


def rewrite_metadata(target: Path, records: Iterable[Record]) -> None:
    """Atomically replace the metadata file ``target`` by ``records``, keeping its name:
    gzipped (level 9, FNAME the name without ``.gz``) iff the name ends in ``.gz``."""
    name = target.name
    with atomic_writer(target) as raw:
        if name.endswith(".gz"):
            gz = gzip.GzipFile(
                filename=name[: -len(".gz")], mode="wb", compresslevel=9, fileobj=raw
            )
            with gz, MetadataWriter(gz, allow_missing=True) as writer:  # type: ignore[arg-type]
                writer.write_all(records)
        else:
            with MetadataWriter(raw, allow_missing=True) as writer:
                writer.write_all(records)


def _paths(records: Iterable[Record]) -> Iterator[tuple[_Key, bytes]]:
    for record in records:
        yield path_key(record.path), record.path


def _with_absent(own: Iterable[Record], others: Sequence[Iterable[Record]]) -> Iterator[Record]:
    """``own`` records, plus ``Type None`` for every path of ``others`` not among them."""
    mentioned = heapq.merge(*(_paths(stream) for stream in others))
    pending = next(mentioned, None)
    last: _Key | None = None
    for record in own:
        key = path_key(record.path)
        while pending is not None and pending[0] <= key:
            if pending[0] < key and pending[0] != last:
                yield Record.missing(pending[1])
            last = pending[0]
            pending = next(mentioned, None)
        yield record
        last = key
    while pending is not None:
        if pending[0] != last:
            yield Record.missing(pending[1])
        last = pending[0]
        pending = next(mentioned, None)


def make_self_contained(
    data_dir: Path, quoting: Quoting, previous: int, dropped: Sequence[int], following: int
) -> bool:
    """Rewrite ``previous``'s metadata diff so it no longer depends on the ``dropped``
    sessions' metadata (see the module docstring). False if it is a snapshot (or missing):
    nothing to do."""
    entry = metadata_at(data_dir, previous, quoting)
    if entry is None or entry.kind == "snapshot":
        return False
    files = {f.time: f for f in list_metadata_files(data_dir, quoting)}
    others: list[Iterable[Record]] = [files[t].records() for t in dropped if t in files]
    others.append(records_at(data_dir, following, quoting=quoting))
    own = records_at(data_dir, previous, quoting=quoting)
    rewrite_metadata(entry.path, _with_absent(own, others))
    return True


def rediff(data_dir: Path, quoting: Quoting, previous: int) -> bool:
    """Rewrite ``previous``'s metadata diff as the plain reverse diff against the next
    session that has metadata. False when there is nothing to do (a snapshot, no diff, or
    no newer session)."""
    files = list_metadata_files(data_dir, quoting)
    entry = next((f for f in files if f.time == previous), None)
    if entry is None or entry.kind != "diff":
        return False
    following = next((f.time for f in files if f.time > previous), None)
    if following is None:
        return False
    newer = records_at(data_dir, following, quoting=quoting)
    older = records_at(data_dir, previous, quoting=quoting)
    rewrite_metadata(entry.path, diff_records(newer, older))
    return True
