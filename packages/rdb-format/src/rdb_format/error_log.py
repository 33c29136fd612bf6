"""``error_log.<T>.data[.gz]``: one line per recoverable error (docs/format.md §8).

Each entry is ``<Type>: '<path>' <message>``; ``<Type>`` is ``ListError``, ``UpdateError``
or ``SpecialFileError``. Entries end in ``\\n`` (newlines inside become spaces) or, with
``--null-separator``, in ``\\0`` (newlines kept). Characters that cannot be encoded are
backslash-escaped. The file always exists: a 0-byte plain ``.data`` when nothing was
logged, ``.data.gz`` from the first entry on when compression is on.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from rdb_format.errors import CorruptRepository
from rdb_format.metadata import PathArg, _opened
from rdb_format.statistics import iter_lines

__all__ = ["ERROR_TYPES", "ErrorEntry", "ErrorLogWriter", "format_error_entry", "iter_error_log"]

#: The entry types rdiff-backup 2.2.7 writes.
ERROR_TYPES: Final = ("ListError", "UpdateError", "SpecialFileError")


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """One logged error: its type, the file (as displayed text) and the message."""

    kind: str
    path: str
    message: str


def format_error_entry(entry: ErrorEntry, *, null_separator: bool = False) -> bytes:
    """The entry's bytes with their terminator, as rdiff-backup writes them."""
    if not entry.kind or not entry.kind.isidentifier():
        raise ValueError(f"bad error type {entry.kind!r}")
    text = f"{entry.kind}: '{entry.path}' {entry.message}"
    if null_separator:
        text = text.replace("\0", " ")
        terminator = b"\0"
    else:
        text = text.replace("\n", " ")
        terminator = b"\n"
    return text.encode("utf-8", "backslashreplace") + terminator


def parse_error_entry(line: bytes) -> ErrorEntry:
    """Parse one entry without its terminator; ValueError if it is not ``T: 'path' msg``."""
    text = line.decode("utf-8", "surrogateescape")
    kind, sep, rest = text.partition(": '")
    if not sep or not kind.isidentifier():
        raise ValueError("not '<Type>: '<path>' <message>'")
    path, sep, message = rest.partition("' ")
    if not sep:
        if not rest.endswith("'"):
            raise ValueError("no closing quote after the path")
        path, message = rest[:-1], ""
    return ErrorEntry(kind, path, message)


def iter_error_log(
    source: BinaryIO | PathArg, *, name: str | None = None, null_separator: bool | None = None
) -> Iterator[ErrorEntry]:
    """Stream the entries of an error log (path or binary stream).

    The separator is ``\\0`` if ``null_separator`` (default: detected, NUL if the first
    chunk holds one). A final entry without its terminator (a crash) is still returned.
    """
    with _opened(source, name) as (stream, label):
        head = stream.read(1 << 16)
        if null_separator is None:
            null_separator = b"\0" in head
        separator = b"\0" if null_separator else b"\n"
        for number, (line, _complete) in enumerate(
            iter_lines(stream, label, separator, initial=head), 1
        ):
            if not line.strip():
                continue
            try:
                yield parse_error_entry(line)
            except ValueError as error:
                raise CorruptRepository(
                    f"entry {number}: {error}: {line[:60]!r}", path=label
                ) from None


class ErrorLogWriter:
    """Append entries to ``error_log.<T>.data`` during a session, as rdiff-backup does.

    ``path`` is the name without ``.gz``. With ``compress``, the file becomes
    ``<path>.gz`` at the first entry; :meth:`close` leaves a 0-byte plain ``<path>`` if there
    was none. Entries are flushed as they come (a log is for reading after a crash too).
    """

    def __init__(
        self, path: PathArg, *, compress: bool = True, null_separator: bool = False
    ) -> None:
        self.plain = Path(path)
        self.compress = compress
        self.null_separator = null_separator
        self.count = 0
        self.path = self.plain
        self._raw: BinaryIO | None = None
        self._gzip: gzip.GzipFile | None = None
        if not compress:
            self._raw = open(self.plain, "wb")  # noqa: SIM115 - closed in close()

    def write(self, entry: ErrorEntry) -> None:
        """Log one entry."""
        data = format_error_entry(entry, null_separator=self.null_separator)
        if self._raw is None:
            self.path = self.plain.with_name(self.plain.name + ".gz")
            self._raw = open(self.path, "wb")  # noqa: SIM115 - closed in close()
            self._gzip = gzip.GzipFile(
                filename=self.plain.name, mode="wb", compresslevel=9, fileobj=self._raw
            )
        if self._gzip is not None:
            self._gzip.write(data)
            self._gzip.flush()
        else:
            self._raw.write(data)
            self._raw.flush()
        self.count += 1

    def close(self) -> Path:
        """Finish the log; returns the path of the file written."""
        if self._gzip is not None:
            self._gzip.close()
            self._gzip = None
        if self._raw is not None:
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            self._raw = None
        elif self.count == 0 and not self.plain.exists():
            self.plain.write_bytes(b"")
        return self.path

    def __enter__(self) -> ErrorLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
