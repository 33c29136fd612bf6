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

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO, Final

from rdb_format.atomic import write_atomic
from rdb_format.errors import CorruptRepository, HostilePath
from rdb_format.metadata import (
    STREAM_ERRORS,
    PathArg,
    _opened,
    _show,
    check_path,
    quote_path,
    stream_error,
    unquote_path,
    write_data_file,
)

__all__ = [
    "FILE_STATISTICS_HEADER",
    "FileStatRow",
    "SessionStatistics",
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


def format_bytes(count: int) -> str:
    """rdiff-backup's human size: ``1 byte``, ``18 bytes``, ``1.29 KB``, ``196 KB``, ``-3.5 MB``.

    1024-based units, three significant figures (two, one or no decimals).
    """
    sign = "-" if count < 0 else ""
    count = abs(count)
    for unit, name in ((1 << 40, "TB"), (1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")):
        if count >= unit:
            scaled = count / unit
            decimals = 0 if scaled >= 100 else 1 if scaled >= 10 else 2
            return f"{sign}{scaled:.{decimals}f} {name}"
    return f"{sign}1 byte" if count == 1 else f"{sign}{count} bytes"


def format_seconds(seconds: float) -> str:
    """rdiff-backup's human duration: ``0.75 seconds``, ``1 hour 2 minutes 3.40 seconds``.

    Hours and minutes are whole and singular when 1; the seconds part is ``1 second``, or
    ``%.2f seconds`` when more than one (or when it is the only part).
    """
    parts: list[str] = []
    hours, rest = divmod(seconds, 3600)
    if hours >= 1:
        parts.append("1 hour" if hours == 1 else f"{int(hours)} hours")
    minutes, rest = divmod(rest, 60)
    if minutes >= 1:
        parts.append("1 minute" if minutes == 1 else f"{int(minutes)} minutes")
    if rest == 1:
        parts.append("1 second")
    elif not parts or rest > 1:
        parts.append(f"{rest:.2f} seconds")
    return " ".join(parts)


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


def parse_session_statistics(text: str, *, name: str | None = None) -> SessionStatistics:
    """Parse session statistics: per line, the first two tokens are name and value.

    The parenthesised parts are ignored, so both the file and ``--print-statistics``-style
    text without them are accepted. A missing field is 0; an unknown name or a bad value
    raises CorruptRepository naming ``name``.
    """
    values: dict[str, float | int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens or line.startswith("-"):
            continue  # blank, or a ----[ Session statistics ]---- banner
        if len(tokens) < 2:
            raise CorruptRepository(f"line {number}: no value for {tokens[0][:40]!r}", path=name)
        field = _BY_NAME.get(tokens[0])
        if field is None:
            raise CorruptRepository(
                f"line {number}: unknown statistic {tokens[0][:40]!r}", path=name
            )
        attr, kind = field
        try:
            number_value = float(tokens[1])
            if kind in ("count", "bytes"):
                if not number_value.is_integer():
                    raise ValueError("not an integer")
                values[attr] = (
                    int(tokens[1]) if tokens[1].lstrip("-").isdigit() else int(number_value)
                )
            else:
                values[attr] = number_value
        except (ValueError, OverflowError):
            raise CorruptRepository(
                f"line {number}: bad value {tokens[1][:40]!r} for {tokens[0]}", path=name
            ) from None
    return SessionStatistics(**values)  # type: ignore[arg-type]


def read_session_statistics(path: PathArg) -> SessionStatistics:
    """Read ``session_statistics.<T>.data`` (never gzipped, but a ``.gz`` name is honoured)."""
    label = str(path)
    with _opened(path, label) as (stream, _):
        try:
            data = stream.read()
        except STREAM_ERRORS as error:
            raise stream_error(error, label) from None
    return parse_session_statistics(data.decode("utf-8", "replace"), name=label)


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


def iter_file_statistics(
    source: BinaryIO | PathArg, *, name: str | None = None, allow_truncated: bool = False
) -> Iterator[FileStatRow]:
    """Stream the rows of a ``file_statistics`` file (path or binary stream).

    The separator (newline or NUL) is detected from the header. A crash can leave the file
    truncated: with ``allow_truncated`` the rows read so far are yielded and the rest is
    ignored; otherwise that is CorruptRepository. Paths with '..', NUL or a leading '/' raise
    HostilePath.
    """
    with _opened(source, name, buffered=not allow_truncated) as (stream, label):
        try:
            head = stream.read(len(FILE_STATISTICS_HEADER[0]) + 1)
        except STREAM_ERRORS as error:
            if allow_truncated:
                return
            raise stream_error(error, label) from None
        separator = b"\0" if head.endswith(b"\0") else b"\n"
        chunk = 1 << 13 if allow_truncated else _READ_CHUNK
        lines = iter_lines(stream, label, separator, initial=head, chunk_size=chunk)
        try:
            for number, (line, complete) in enumerate(lines, 1):
                if not complete:
                    if allow_truncated:
                        return
                    raise CorruptRepository(
                        f"line {number}: truncated (no final line terminator)", path=label
                    )
                if number <= 2 and line == FILE_STATISTICS_HEADER[number - 1]:
                    continue
                try:
                    row = parse_file_stat_row(line)
                except ValueError as error:
                    raise CorruptRepository(
                        f"line {number}: bad row {line[:60]!r}: {error}", path=label
                    ) from None
                problem = check_path(row.path)
                if problem is not None:
                    raise HostilePath(f"line {number}: {problem}: {_show(row.path)!r}", path=label)
                yield row
        except CorruptRepository as error:
            if allow_truncated and "truncated" in str(error) and not isinstance(error, HostilePath):
                return
            raise


def format_file_stat_row(row: FileStatRow, separator: bytes = b"\n") -> bytes:
    """One row as rdiff-backup writes it, with its terminator."""
    problem = check_path(row.path)
    if problem is not None:
        raise ValueError(f"{problem}: {_show(row.path)!r}")
    sizes = []
    for size in (row.source_size, row.mirror_size, row.increment_size):
        if size is not None and size < 0:
            raise ValueError(f"negative size in the row of {_show(row.path)!r}")
        sizes.append(b"NA" if size is None else b"%d" % size)
    changed = b"1" if row.changed else b"0"
    return b" ".join([quote_path(row.path), changed, *sizes]) + separator


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
