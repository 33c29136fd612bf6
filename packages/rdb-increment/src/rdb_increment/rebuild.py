"""Read increments back: find a path's increments and rebuild its content as of a time (§3.6).

A regular file X as of session time t is the newest full copy at or after t (the mirror, or a
``.snapshot[.gz]``) with the reverse diffs between them applied newest first. librsync's patch
reads its basis at random offsets, so intermediate versions go to temporary files (two, reused
alternately); the final version is streamed. Memory stays a few MiB whatever the sizes.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from rdb_format.errors import CorruptRepository
from rdb_format.increments import IncrementName, parse_increment_name
from rdb_format.layout import INCREMENTS, Layout
from rdb_format.quoting import NO_QUOTING, Quoting
from rdiff.api import iter_patch
from rdiff.errors import RdiffError

#: Read and write unit for streaming (memory per worker stays a few of these); the writer's
#: too. Defined here so that listing increments (which imports this module) does not load
#: the writer.
CHUNK = 1024 * 1024

__all__ = [
    "IncrementFile",
    "RebuildPlan",
    "find_increments",
    "iter_rebuild",
    "plan_rebuild",
    "rebuild",
    "rebuild_at",
]


class _HasPath(Protocol):
    @property
    def path(self) -> Path: ...


@functools.total_ordering
class IncrementFile:
    """One increment on disk: its parsed (unquoted) name and its path.

    Made from a directory's listing (``directory`` and ``raw_name``), the path is made only
    when first asked for: a restore of an older session lists thousands of increments and
    rebuilds most of them in C from the directory's descriptor and the raw name alone (a
    ``Path`` each had cost its walk more than the listing). Compared, ordered and hashed by
    (name, path), as the frozen dataclass it was."""

    __slots__ = ("_directory", "_path", "_raw_name", "name")

    def __init__(
        self,
        name: IncrementName,
        path: Path | None = None,
        *,
        directory: _HasPath | None = None,
        raw_name: bytes | None = None,
    ) -> None:
        if path is None and (directory is None or raw_name is None):
            raise TypeError("IncrementFile needs a path, or a directory and a raw name")
        self.name = name
        self._path = path
        self._directory = directory
        self._raw_name = raw_name

    @property
    def path(self) -> Path:
        path = self._path
        if path is None:
            assert self._directory is not None and self._raw_name is not None
            path = self._path = self._directory.path / os.fsdecode(self._raw_name)
        return path

    @property
    def raw_name(self) -> bytes:
        """The file's name on disk (quoted), as bytes."""
        raw = self._raw_name
        return os.fsencode(self.path.name) if raw is None else raw

    @property
    def time(self) -> int:
        return self.name.time

    @property
    def kind(self) -> str:
        return self.name.kind

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IncrementFile):
            return NotImplemented
        return self.name == other.name and self.path == other.path

    def __lt__(self, other: IncrementFile) -> bool:
        """By name, then path (made only when the names are equal)."""
        if not isinstance(other, IncrementFile):
            return NotImplemented
        if self.name != other.name:
            return self.name < other.name
        return self.path < other.path

    def __hash__(self) -> int:
        return hash((self.name, self.path))

    def __repr__(self) -> str:
        return f"IncrementFile(name={self.name!r}, path={self.path!r})"


def _listdir(directory: Path) -> list[bytes]:
    try:
        return os.listdir(os.fsencode(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []


def find_increments(
    layout: Layout,
    index: tuple[bytes, ...],
    *,
    quoting: Quoting = NO_QUOTING,
    long_dir: Path | None = None,
) -> list[IncrementFile]:
    """The increments of mirror path ``index`` (unquoted; () is the root), oldest first.

    Only names of the increment grammar with this exact base count; ``data`` entries are
    ignored as rdiff-backup does in the increment tree. With ``long_dir``, ``index`` is
    ``(N,)`` of ``long_filename_data/N.T.*`` in that directory.
    """
    if long_dir is not None:
        directory, base = long_dir, index[-1]
    elif index:
        parents = [os.fsdecode(p) for p in quoting.quote_path(index[:-1])]
        directory = layout.increments_dir.joinpath(*parents)
        base = index[-1]
    else:
        directory = layout.data_dir
        base = INCREMENTS.encode()
    found: list[IncrementFile] = []
    for raw in _listdir(directory):
        try:
            name = parse_increment_name(quoting.unquote(raw, path=directory))
        except CorruptRepository:
            continue
        if name is None or name.base != base or name.kind == "data":
            continue
        found.append(IncrementFile(name, directory / os.fsdecode(raw)))
    found.sort()
    return found


@dataclass(frozen=True)
class RebuildPlan:
    """How to rebuild a file as of a time: a full copy, then diffs applied newest first.

    ``base`` is None for the mirror copy, else a ``.snapshot``, or a ``.missing``/``.dir``
    (then the file did not exist as a regular file: ``exists`` is False).
    """

    base: IncrementFile | None
    diffs_newest_first: tuple[IncrementFile, ...]

    @property
    def exists(self) -> bool:
        return self.base is None or self.base.kind == "snapshot"


def plan_rebuild(increments: Sequence[IncrementFile], time: int) -> RebuildPlan:
    """rdiff-backup's chain rule (§3.6 step 4) over a path's increments (any order)."""
    later = sorted(inc for inc in increments if inc.time >= time)
    diffs: list[IncrementFile] = []
    base: IncrementFile | None = None
    for inc in later:
        if inc.kind == "diff":
            diffs.append(inc)
            continue
        base = inc
        break
    return RebuildPlan(base, tuple(reversed(diffs)))


Source = Path | IncrementFile


def _path_of(source: Source) -> tuple[Path, bool]:
    if isinstance(source, IncrementFile):
        return source.path, source.name.compressed
    return source, source.name.endswith(".gz")


def _base_of(source: Source) -> tuple[Path, bool]:
    """A full copy: an increment is gunzipped by its name; a plain path is a mirror copy, never
    compressed, whatever its name (a mirror file may well be called ``x.gz``)."""
    if isinstance(source, IncrementFile):
        return source.path, source.name.compressed
    return source, False


@contextlib.contextmanager
def _open_data(source: Source, *, base: bool = False) -> Iterator[BinaryIO]:
    path, compressed = _base_of(source) if base else _path_of(source)
    try:
        raw = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as error:
        from rdb_increment.writer import IncrementError  # an error path: loaded when needed

        raise IncrementError(f"cannot open: {error.strerror}", path=path) from error
    with raw:
        if compressed:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz  # type: ignore[misc]
        else:
            yield raw


def _chunks(stream: BinaryIO, path: Path) -> Iterator[bytes]:
    while True:
        try:
            data = stream.read(CHUNK)
        except (OSError, EOFError, zlib.error) as error:
            raise CorruptRepository(f"unreadable increment data: {error}", path=path) from error
        if not data:
            return
        yield data


def _patch_pieces(basis_path: Path, delta: Source) -> Iterator[bytes]:
    delta_path, _ = _path_of(delta)
    with open(basis_path, "rb") as basis, _open_data(delta) as stream:
        try:
            yield from iter_patch(
                basis, _chunks(stream, delta_path), basis_name=os.fsdecode(basis_path)
            )
        except RdiffError as error:
            raise CorruptRepository(f"bad delta: {error}", path=delta_path) from error


def iter_rebuild(
    base: Source, diffs_newest_first: Sequence[Source], *, tmpdir: str | Path | None = None
) -> Iterator[bytes]:
    """The bytes of ``base`` (a full copy) with the reverse diffs applied, newest first.

    ``base`` is a snapshot increment (gunzipped by its name) or a mirror copy (a plain path,
    read as is). A diff given as a plain path is gunzipped if its name ends in ``.gz``.
    """
    base_path, base_compressed = _base_of(base)
    if not diffs_newest_first:
        with _open_data(base, base=True) as stream:
            yield from _chunks(stream, base_path)
        return
    with tempfile.TemporaryDirectory(prefix="rdb-rebuild-", dir=tmpdir) as scratch:
        spare = [Path(scratch) / "a", Path(scratch) / "b"]
        basis = base_path
        if base_compressed:
            basis = spare.pop(0)
            with _open_data(base, base=True) as stream, open(basis, "wb") as out:
                for data in _chunks(stream, base_path):
                    out.write(data)
        last = len(diffs_newest_first) - 1
        for position, delta in enumerate(diffs_newest_first):
            if position == last:
                yield from _patch_pieces(basis, delta)
                return
            target = spare.pop(0)
            with open(target, "wb") as out:
                for piece in _patch_pieces(basis, delta):
                    out.write(piece)
            if basis.parent == target.parent:
                spare.append(basis)  # a scratch file: reuse it for the next output
            basis = target


def rebuild(
    base: Source,
    diffs_newest_first: Sequence[Source],
    out: BinaryIO,
    *,
    tmpdir: str | Path | None = None,
) -> int:
    """Write :func:`iter_rebuild`'s bytes to ``out``; returns the byte count."""
    total = 0
    for piece in iter_rebuild(base, diffs_newest_first, tmpdir=tmpdir):
        out.write(piece)
        total += len(piece)
    return total


def rebuild_at(
    layout: Layout,
    index: tuple[bytes, ...],
    time: int,
    out: BinaryIO,
    *,
    quoting: Quoting = NO_QUOTING,
    tmpdir: str | Path | None = None,
) -> Literal["rebuilt", "absent"]:
    """Write regular file ``index`` as it was at session ``time`` to ``out``.

    Returns "absent" (writing nothing) when the chain ends in a ``.missing`` or ``.dir``.
    """
    plan = plan_rebuild(find_increments(layout, index, quoting=quoting), time)
    if not plan.exists:
        return "absent"
    if plan.base is None:
        parts = [os.fsdecode(p) for p in quoting.quote_path(index)]
        mirror = layout.root.joinpath(*parts)
        if not os.path.lexists(mirror):
            from rdb_increment.writer import IncrementError

            raise IncrementError("mirror copy is missing", path=mirror)
        base: Source = mirror
    else:
        base = plan.base
    rebuild(base, plan.diffs_newest_first, out, tmpdir=tmpdir)
    return "rebuilt"
