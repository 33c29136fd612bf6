"""``session_statistics.<T>.data`` and ``file_statistics.<T>.data[.gz]`` (docs/format.md §8).

Session statistics are ``Name value`` lines in a fixed order, with a human-readable part in
parentheses after times and sizes; a reader takes the first two whitespace-separated tokens
of each line, so it accepts the file with or without the parenthesised parts.

File statistics are two header lines, then one row per processed entry::

    <quoted path> <changed 0|1> <SourceSize|NA> <MirrorSize|NA> <IncrementSize|NA>

The path is quoted as in metadata (newline and backslash only) and may contain spaces, so a
row is parsed from the right. Lines end in ``\\n``, or all in ``\\0`` (``--null-separator``).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO, Final, Literal, overload

from rdb_format._datafiles import STREAM_ERRORS, PathArg, opened_source, show_path, stream_error
from rdb_format.atomic import write_atomic
from rdb_format.errors import CorruptRepository, HostilePath
from rdb_format.metadata import (
    check_path,
    quote_path,
    unquote_path,
    write_data_file,
)
from rdb_format.units import format_bytes, format_seconds

__all__ = [
    "FILE_STATISTICS_HEADER",
    "SESSION_STATISTICS_FIELDS",
    "FileStatRow",
    "FileStatisticsReader",
    "PartialSessionStatistics",
    "RowTuple",
    "SessionStatistics",
    "file_stat_row",
    "format_bytes",
    "format_file_stat_row",
    "format_seconds",
    "format_session_statistics",
    "iter_file_statistics",
    "iter_lines",
    "parse_session_statistics",
    "read_session_statistics",
    "write_file_statistics",
    "write_session_statistics",
]

_READ_CHUNK: Final = 1 << 18


# ---------------------------------------------------------------------------------------------
# session_statistics


@dataclass(frozen=True, slots=True)
class SessionStatistics:
    """Every field of ``session_statistics.<T>.data``, in file order.

    ``total_destination_size_change`` is NewFileSize + ChangedSourceSize + IncrementFileSize
    - DeletedFileSize - ChangedMirrorSize (see :meth:`with_total`). ``errors`` is what
    rdiff-backup records; it stays 0 even with entries in the error log.
    """

    start_time: float = 0.0
    end_time: float = 0.0
    elapsed_time: float = 0.0
    source_files: int = 0
    source_file_size: int = 0
    mirror_files: int = 0
    mirror_file_size: int = 0
    new_files: int = 0
    new_file_size: int = 0
    deleted_files: int = 0
    deleted_file_size: int = 0
    changed_files: int = 0
    changed_source_size: int = 0
    changed_mirror_size: int = 0
    increment_files: int = 0
    increment_file_size: int = 0
    total_destination_size_change: int = 0
    errors: int = 0

    def with_total(self) -> SessionStatistics:
        """A copy with TotalDestinationSizeChange computed from the other sizes."""
        from dataclasses import replace

        total = (
            self.new_file_size
            + self.changed_source_size
            + self.increment_file_size
            - self.deleted_file_size
            - self.changed_mirror_size
        )
        return replace(self, total_destination_size_change=total)


def _camel(attr: str) -> str:
    return "".join(part.capitalize() for part in attr.split("_"))


# file name → (attribute, how the parenthesised part is formed)
_SESSION_FIELDS: Final[tuple[tuple[str, str, str], ...]] = tuple(
    (
        _camel(f.name),
        f.name,
        "time"
        if f.name in ("start_time", "end_time")
        else "seconds"
        if f.name == "elapsed_time"
        else "bytes"
        if f.name.endswith(("_size", "_size_change"))
        else "count",
    )
    for f in fields(SessionStatistics)
)
_BY_NAME: Final = {name: (attr, kind) for name, attr, kind in _SESSION_FIELDS}

#: The names of the session statistics as the file spells them (``SourceFiles``), in order.
SESSION_STATISTICS_FIELDS: Final[tuple[str, ...]] = tuple(name for name, _, _ in _SESSION_FIELDS)


def format_session_statistics(stats: SessionStatistics) -> str:
    """The text rdiff-backup writes (times in the local zone of the process, as it does)."""
    lines = []
    for name, attr, kind in _SESSION_FIELDS:
        value = getattr(stats, attr)
        if kind == "time":
            lines.append(f"{name} {value:.2f} ({time.asctime(time.localtime(value))})")
        elif kind == "seconds":
            lines.append(f"{name} {value:.2f} ({format_seconds(value)})")
        elif kind == "bytes":
            lines.append(f"{name} {value} ({format_bytes(value)})")
        else:
            lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PartialSessionStatistics:
    """What a damaged ``session_statistics`` file still says (tolerant parsing).

    ``values`` holds only the fields actually read, by attribute name of
    :class:`SessionStatistics` (``"source_files"``); a missing or unreadable field is absent,
    never 0. ``problems`` are one-line descriptions (line number, what is wrong), missing
    fields included.
    """

    values: Mapping[str, int | float]
    problems: tuple[str, ...] = ()

    @property
    def missing(self) -> tuple[str, ...]:
        """The file names (``EndTime``) of the fields not read, in file order."""
        return tuple(name for name, attr, _ in _SESSION_FIELDS if attr not in self.values)

    @property
    def complete(self) -> bool:
        """Every field read and no problem: :meth:`to_statistics` is then exact."""
        return not self.problems and not self.missing

    @property
    def named_values(self) -> dict[str, int | float]:
        """:attr:`values` keyed by the file's names (``SourceFiles``), in file order."""
        return {name: self.values[attr] for name, attr, _ in _SESSION_FIELDS if attr in self.values}

    @property
    def damage(self) -> tuple[str, ...]:
        """:attr:`problems` but the ``no <Field> line`` ones of :attr:`missing` (they come
        last): what was wrong with the lines that are there, or with reading the file."""
        return self.problems[: len(self.problems) - len(self.missing)]

    def get(self, attr: str) -> int | float | None:
        """One field by attribute name, or None if it was not read."""
        return self.values.get(attr)

    def to_statistics(self) -> SessionStatistics:
        """A SessionStatistics; ValueError naming the fields missing unless :attr:`complete`."""
        if self.missing:
            raise ValueError(f"fields missing: {', '.join(self.missing)}")
        return SessionStatistics(**self.values)  # type: ignore[arg-type]


def _statistic_lines(text: str) -> Iterator[tuple[int, str, str, float | int | None]]:
    """Per meaningful line: (number, name, problem or "", value or None)."""
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens or line.startswith("-"):
            continue  # blank, or a ----[ Session statistics ]---- banner
        name = tokens[0][:40]
        if number == len(lines):
            # no final newline: in a file, the write was cut (the value may be too)
            yield number, name, f"line {number}: {name!r} has no final newline (cut short?)", None
            continue
        if len(tokens) < 2:
            yield number, name, f"line {number}: no value for {name!r}", None
            continue
        field = _BY_NAME.get(tokens[0])
        if field is None:
            yield number, name, f"line {number}: unknown statistic {name!r}", None
            continue
        _, kind = field
        try:
            number_value = float(tokens[1])
            value: float | int
            if kind in ("count", "bytes"):
                if not number_value.is_integer():
                    raise ValueError("not an integer")
                value = int(tokens[1]) if tokens[1].lstrip("-").isdigit() else int(number_value)
            else:
                value = number_value
                if kind == "time":
                    value = _time_as_written(value, line)
        except (ValueError, OverflowError):
            yield number, name, f"line {number}: bad value {tokens[1][:40]!r} for {name}", None
            continue
        yield number, name, "", value


def _time_as_written(value: float, line: str) -> float:
    """A time whose ``%.2f`` rounded up to the next second (written ``N.00``, the time in
    parentheses still showing ``N - 1``): a value just below N, so that writing it again gives
    the same line. Otherwise (or when the parenthesised time is in another zone) ``value``."""
    if not value.is_integer() or not line.endswith(")"):
        return value
    shown = line[line.find("(") + 1 : -1]
    try:
        if shown == time.asctime(time.localtime(value - 1)) != time.asctime(time.localtime(value)):
            return value - 0.001
    except (OverflowError, OSError, ValueError):
        pass
    return value


@overload
def parse_session_statistics(
    text: str, *, name: str | None = None, tolerant: Literal[False] = False
) -> SessionStatistics: ...
@overload
def parse_session_statistics(
    text: str, *, name: str | None = None, tolerant: Literal[True]
) -> PartialSessionStatistics: ...
def parse_session_statistics(
    text: str, *, name: str | None = None, tolerant: bool = False
) -> SessionStatistics | PartialSessionStatistics:
    """Parse session statistics: per line, the first two tokens are name and value.

    The parenthesised parts are ignored, so both the file and ``--print-statistics``-style
    text without them are accepted.

    Strict (default): a missing field is 0; an unknown name or a bad value raises
    CorruptRepository naming ``name``. ``tolerant=True`` (damaged files) returns a
    :class:`PartialSessionStatistics`: every field that could be read, whatever comes
    before or after a garbled line, and a list of problems; nothing is invented. There a
    last line without its newline is a problem and its value is not used (a cut write).
    """
    if tolerant:
        values: dict[str, float | int] = {}
        problems: list[str] = []
        for number, field_name, problem, value in _statistic_lines(text):
            if problem:
                problems.append(problem)
                continue
            attr = _BY_NAME[field_name][0]
            if attr in values:
                problems.append(f"line {number}: {field_name} again (the first one is used)")
                continue
            assert value is not None
            values[attr] = value
        partial = PartialSessionStatistics(values, tuple(problems))
        missing = [f"no {field_name} line" for field_name in partial.missing]
        return PartialSessionStatistics(values, (*problems, *missing))
    strict: dict[str, float | int] = {}
    last = text.count("\n") + 1
    for number, field_name, problem, value in _statistic_lines(text):
        if number == last and value is None and "final newline" in problem:
            # strict mode accepts text without a final newline, as before
            problem, value = _strict_last(text, number)
        if problem:
            raise CorruptRepository(problem, path=name)
        assert value is not None
        strict[_BY_NAME[field_name][0]] = value
    return SessionStatistics(**strict)  # type: ignore[arg-type]


def _strict_last(text: str, number: int) -> tuple[str, float | int | None]:
    """The last line (no final newline) parsed as if it had one."""
    for _, _, problem, value in _statistic_lines(text.rsplit("\n", 1)[-1] + "\n"):
        return problem.replace("line 1:", f"line {number}:", 1), value
    return "", None


@overload
def read_session_statistics(
    path: PathArg, *, tolerant: Literal[False] = False
) -> SessionStatistics: ...
@overload
def read_session_statistics(
    path: PathArg, *, tolerant: Literal[True]
) -> PartialSessionStatistics: ...
def read_session_statistics(
    path: PathArg, *, tolerant: bool = False
) -> SessionStatistics | PartialSessionStatistics:
    """Read ``session_statistics.<T>.data`` (never gzipped, but a ``.gz`` name is honoured).

    ``tolerant``: see :func:`parse_session_statistics`; a read error (truncated gzip) is
    then a problem too, after the fields read before it.
    """
    label = str(path)
    with opened_source(path, label, buffered=not tolerant) as (stream, _):
        chunks: list[bytes] = []
        try:
            while chunk := stream.read(1 << 16 if not tolerant else 512):
                chunks.append(chunk)
        except STREAM_ERRORS as error:
            if not tolerant:
                raise stream_error(error, label) from None
            text = b"".join(chunks).decode("utf-8", "replace")
            partial = parse_session_statistics(text, name=label, tolerant=True)
            return PartialSessionStatistics(
                partial.values, (str(stream_error(error, label)), *partial.problems)
            )
    text = b"".join(chunks).decode("utf-8", "replace")
    if tolerant:
        return parse_session_statistics(text, name=label, tolerant=True)
    return parse_session_statistics(text, name=label)


def write_session_statistics(
    path: PathArg, stats: SessionStatistics, *, fsync: bool = True
) -> None:
    """Write ``session_statistics.<T>.data`` atomically (plain text, as rdiff-backup)."""
    write_atomic(path, format_session_statistics(stats).encode("ascii"), fsync=fsync)


# ---------------------------------------------------------------------------------------------
# file_statistics

FILE_STATISTICS_HEADER: Final = (
    b"# Format of each line in file statistics file:",
    b"# Filename Changed SourceSize MirrorSize IncrementSize",
)


@dataclass(frozen=True, slots=True)
class FileStatRow:
    """One row of ``file_statistics``: sizes are ``None`` for ``NA`` (absent / unknown)."""

    path: bytes
    changed: bool
    source_size: int | None
    mirror_size: int | None
    increment_size: int | None


def iter_lines(
    stream: BinaryIO,
    label: str,
    separator: bytes = b"\n",
    *,
    initial: bytes = b"",
    chunk_size: int = _READ_CHUNK,
) -> Iterator[tuple[bytes, bool]]:
    """Yield ``(line, complete)`` for each ``separator``-terminated line, streamed.

    ``initial`` is data already read from the stream's start. The last line is yielded with
    ``complete=False`` if the file does not end in the separator. Read errors (e.g.
    truncated gzip data) raise CorruptRepository naming ``label``.
    """
    pending = b""
    data = initial
    try:
        while True:
            if not data:
                data = stream.read(chunk_size)
            if not data:
                break
            pending = pending + data if pending else data
            lines = pending.split(separator)
            pending = lines.pop()
            for line in lines:
                yield line, True
            data = b""
    except STREAM_ERRORS as error:
        raise stream_error(error, label) from None
    if pending:
        yield pending, False


def _size_field(value: bytes) -> int | None:
    if value == b"NA":
        return None
    if not value.isdigit():
        raise ValueError("not a size or NA")
    return int(value)


def parse_file_stat_row(line: bytes) -> FileStatRow:
    """Parse one row (without its terminator); ValueError if malformed or hostile."""
    parts = line.rsplit(b" ", 4)
    if len(parts) != 5:
        raise ValueError("fewer than 5 fields")
    quoted, changed, source, mirror, increment = parts
    if changed not in (b"0", b"1"):
        raise ValueError(f"Changed is {changed[:20]!r}, not 0 or 1")
    path = unquote_path(quoted)
    return FileStatRow(
        path, changed == b"1", _size_field(source), _size_field(mirror), _size_field(increment)
    )


#: One well-formed row (checked per chunk at C speed; anything else takes the careful path).
_ROW: Final = re.compile(rb"^(.*) ([01]) ([0-9]+|NA) ([0-9]+|NA) ([0-9]+|NA)$", re.MULTILINE)
#: Substrings of "\n" + quoted paths joined by "\n" + "\n" that may make a path unsafe ('..'
#: or '.' components, empty components, absolute, empty). The root '.' alone is none of them.
#: A hit only sends the chunk to the careful per-row check.
_SUSPECTS: Final = (
    b"/../", b"\n../", b"/..\n", b"\n..\n", b"/./", b"\n./", b"/.\n",
    b"\n/", b"//", b"/\n", b"\n\n", b"\0",
)  # fmt: skip


#: A row's fields in :class:`FileStatRow` order: what :meth:`FileStatisticsReader.tuples`
#: gives, without the cost of building an object per row.
RowTuple = tuple[bytes, bool, int | None, int | None, int | None]


def _fast_rows(lines: list[bytes], separator: bytes) -> list[RowTuple] | None:
    """The rows of complete ``lines`` if all are well formed and safe, else None."""
    text = b"\n".join(lines)
    if separator == b"\0" and b"\n" in text:
        return None  # a raw newline in a NUL-separated file: let the careful path decide
    found = _ROW.findall(text)
    if len(found) != len(lines):
        return None
    quoted = b"\n" + b"\n".join([row[0] for row in found]) + b"\n"
    if any(suspect in quoted for suspect in _SUSPECTS):
        return None
    columns = list(zip(*found, strict=True))
    paths: Iterable[bytes] = columns[0]
    if b"\\" in quoted:
        try:
            paths = [unquote_path(path) for path in paths]
        except ValueError:
            return None
    na = b"NA"
    return list(
        zip(
            paths,
            [changed == b"1" for changed in columns[1]],
            [None if size == na else int(size) for size in columns[2]],
            [None if size == na else int(size) for size in columns[3]],
            [None if size == na else int(size) for size in columns[4]],
            strict=True,
        )
    )


class FileStatisticsReader(Iterator[FileStatRow]):
    """The rows of a ``file_statistics`` file: an iterator, or :meth:`batches` of lists, or
    :meth:`tuples` (the same batches, each row a plain tuple: the fastest way).

    Returned by :func:`iter_file_statistics`. With ``allow_truncated`` a file cut short (a
    crash, or truncated gzip data) ends the iteration early instead of raising; then
    :attr:`truncated` becomes True, :attr:`problem` says why, and ``on_truncated(problem)``
    is called once, before the iteration stops. With ``skip_bad_rows`` a malformed or hostile
    row is left out and counted in :attr:`bad_rows` instead of raising. Iterate it once (rows
    or batches or tuples, only one of them).
    """

    def __init__(
        self,
        source: BinaryIO | PathArg,
        *,
        name: str | None = None,
        allow_truncated: bool = False,
        on_truncated: Callable[[str], object] | None = None,
        skip_bad_rows: bool = False,
    ) -> None:
        self.source = source
        self.name = name
        self.allow_truncated = allow_truncated
        self.on_truncated = on_truncated
        self.skip_bad_rows = skip_bad_rows
        #: Rows left out as malformed or hostile (only with ``skip_bad_rows``).
        self.bad_rows = 0
        #: True once the end of a truncated file was reached (only with ``allow_truncated``).
        self.truncated = False
        #: Why the file was cut (one line), when :attr:`truncated`.
        self.problem: str | None = None
        self.rows_read = 0
        self._tuples = self._read()
        self._batches = (list(itertools.starmap(FileStatRow, batch)) for batch in self._tuples)
        self._rows: Iterator[FileStatRow] = itertools.chain.from_iterable(self._batches)

    def __iter__(self) -> FileStatisticsReader:
        return self

    def __next__(self) -> FileStatRow:
        return next(self._rows)

    def batches(self) -> Iterator[list[FileStatRow]]:
        """The rows in lists, one per chunk read (tens of thousands of rows): the fast way."""
        return self._batches

    def tuples(self) -> Iterator[list[RowTuple]]:
        """:meth:`batches` with each row a :data:`RowTuple` instead of a FileStatRow."""
        return self._tuples

    def close(self) -> None:
        """Stop reading and close the file (also done at the end of the iteration)."""
        self._tuples.close()

    def _cut(self, problem: str) -> None:
        self.truncated = True
        self.problem = problem
        if self.on_truncated is not None:
            self.on_truncated(problem)

    def _read(self) -> Generator[list[RowTuple], None, None]:
        allow = self.allow_truncated
        with opened_source(self.source, self.name, buffered=not allow) as (stream, label):
            # Tolerant: read1 (one gzip step a call), so a cut loses nothing read before it.
            read = getattr(stream, "read1", stream.read) if allow else stream.read
            try:
                head = stream.read(len(FILE_STATISTICS_HEADER[0]) + 1)
            except STREAM_ERRORS as error:
                if not allow:
                    raise stream_error(error, label) from None
                self._cut(str(stream_error(error, label)))
                return
            separator = b"\0" if head.endswith(b"\0") else b"\n"
            chunk = _READ_CHUNK
            pending = b""
            data = head
            number = 0  # lines so far
            while True:
                try:
                    more = read(chunk)
                except STREAM_ERRORS as error:
                    if not allow:
                        raise stream_error(error, label) from None
                    more = b""
                    cut: str | None = str(stream_error(error, label))
                else:
                    cut = None
                data = pending + data if pending else data
                lines = data.split(separator)
                pending = lines.pop()
                if number < 2:
                    while lines and number < 2 and lines[0] == FILE_STATISTICS_HEADER[number]:
                        del lines[0]
                        number += 1
                if lines:
                    batch = _fast_rows(lines, separator)
                    if batch is None:
                        careful = _careful_rows(lines, number, label, self.skip_bad_rows)
                        self.bad_rows += len(lines) - len(careful)
                        batch = [
                            (r.path, r.changed, r.source_size, r.mirror_size, r.increment_size)
                            for r in careful
                        ]
                    number += len(lines)
                    self.rows_read += len(batch)
                    yield batch
                if cut is not None:
                    self._cut(cut)
                    return
                if not more:
                    break
                data = more
            if pending:
                problem = f"line {number + 1}: truncated (no final line terminator)"
                if not allow:
                    raise CorruptRepository(problem, path=label)
                self._cut(f"{label}: {problem}")


def _careful_rows(
    lines: list[bytes], before: int, label: str, skip_bad: bool = False
) -> list[FileStatRow]:
    """Parse rows one by one, raising the precise error for the first bad one (or leaving
    the bad ones out, with ``skip_bad``)."""
    rows = []
    for number, line in enumerate(lines, before + 1):
        try:
            row = parse_file_stat_row(line)
        except ValueError as error:
            if skip_bad:
                continue
            raise CorruptRepository(
                f"line {number}: bad row {line[:60]!r}: {error}", path=label
            ) from None
        problem = check_path(row.path)
        if problem is not None:
            if skip_bad:
                continue
            raise HostilePath(f"line {number}: {problem}: {show_path(row.path)!r}", path=label)
        rows.append(row)
    return rows


def iter_file_statistics(
    source: BinaryIO | PathArg,
    *,
    name: str | None = None,
    allow_truncated: bool = False,
    on_truncated: Callable[[str], object] | None = None,
    skip_bad_rows: bool = False,
) -> FileStatisticsReader:
    """Stream the rows of a ``file_statistics`` file (path or binary stream).

    The separator (newline or NUL) is detected from the header. A crash can leave the file
    truncated: with ``allow_truncated`` the complete rows before the cut are returned and the
    iteration ends; the returned :class:`FileStatisticsReader` then has ``truncated`` set
    (and ``on_truncated(problem)`` is called). Otherwise that is CorruptRepository. Paths
    with '..', NUL or a leading '/' raise HostilePath; with ``skip_bad_rows`` such rows and
    malformed ones are left out and counted in ``bad_rows``. ``.batches()`` gives lists of
    rows (a million rows in about a second).
    """
    return FileStatisticsReader(
        source,
        name=name,
        allow_truncated=allow_truncated,
        on_truncated=on_truncated,
        skip_bad_rows=skip_bad_rows,
    )


def format_file_stat_row(row: FileStatRow, separator: bytes = b"\n") -> bytes:
    """One row as rdiff-backup writes it, with its terminator."""
    problem = check_path(row.path)
    if problem is not None:
        raise ValueError(f"{problem}: {show_path(row.path)!r}")
    return file_stat_row(
        row.path, row.changed, row.source_size, row.mirror_size, row.increment_size, separator
    )


def file_stat_row(
    path: bytes,
    changed: bool,
    source_size: int | None,
    mirror_size: int | None,
    increment_size: int | None,
    separator: bytes = b"\n",
) -> bytes:
    """:func:`format_file_stat_row` for a path the caller knows is safe (a metadata path it
    built from directory listings, or read with the metadata checks): no FileStatRow, no
    path check, one formatting operation. ValueError for a negative size."""
    if b"\\" in path or b"\n" in path:
        path = quote_path(path)
    return b"%s %s %s %s %s%s" % (
        path,
        b"1" if changed else b"0",
        _size_text(source_size, path),
        _size_text(mirror_size, path),
        _size_text(increment_size, path),
        separator,
    )


def _size_text(size: int | None, path: bytes) -> bytes:
    if size is None:
        return b"NA"
    if size < 0:
        raise ValueError(f"negative size in the row of {show_path(path)!r}")
    return b"%d" % size


def _file_stat_chunks(rows: Iterable[FileStatRow], separator: bytes) -> Iterator[bytes]:
    yield separator.join(FILE_STATISTICS_HEADER) + separator
    chunk: list[bytes] = []
    for row in rows:
        chunk.append(format_file_stat_row(row, separator))
        if len(chunk) >= 4096:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def write_file_statistics(
    path: PathArg,
    rows: Iterable[FileStatRow],
    *,
    compress: bool = True,
    null_separator: bool = False,
    fsync: bool = True,
) -> Path:
    """Write ``file_statistics.<T>.data`` (``path`` without ``.gz``); gzipped iff ``compress``.

    Streams ``rows`` (in index order, as the backup processes them). Returns the path.
    """
    separator = b"\0" if null_separator else b"\n"
    return write_data_file(path, _file_stat_chunks(rows, separator), compress=compress, fsync=fsync)
