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
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from rdb_format._datafiles import STREAM_ERRORS, PathArg, opened_source, stream_error
from rdb_format.errors import CorruptRepository
from rdb_format.statistics import iter_lines

__all__ = [
    "ERROR_TYPES",
    "MESSAGE_STARTS",
    "ErrorEntry",
    "ErrorLogWriter",
    "count_error_log",
    "format_error_entry",
    "iter_error_log",
    "parse_error_entry",
]

_CHUNK: Final = 1 << 18

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


#: How the messages rdiff-backup 2.2.7 logs begin: an OSError's ``str()`` (``[Errno 13] …``,
#: also its own ``[Errno n/a] …``), and its two fixed UpdateError texts. Used to find where a
#: path that itself contains ``' `` ends (see :func:`parse_error_entry`).
MESSAGE_STARTS: Final = (
    "[Errno ",
    "File changed from regular file before signature",
    "Updated mirror temp file '",
)


def parse_error_entry(line: bytes, *, known_paths: Container[str] | None = None) -> ErrorEntry:
    """Parse one entry without its terminator; ValueError if it is not ``T: 'path' msg``.

    rdiff-backup writes ``f"{type}: '{path}' {message}"`` without escaping the path, so a path
    containing ``' `` makes the line ambiguous. The path ends at the first ``' `` that
    (1) leaves a path in ``known_paths``, if given; else (2) is followed by a message start
    rdiff-backup uses (:data:`MESSAGE_STARTS`); else (3) the first ``' `` (or a final ``'``).
    """
    text = line.decode("utf-8", "surrogateescape")
    kind, sep, rest = text.partition(": '")
    if not sep or not kind.isidentifier():
        raise ValueError("not '<Type>: '<path>' <message>'")
    cuts = _cuts(rest)
    if not cuts:
        raise ValueError("no closing quote after the path")
    chosen = cuts[0]
    if len(cuts) > 1:
        if known_paths is not None:
            known = [cut for cut in cuts if rest[:cut] in known_paths]
        else:
            known = []
        if not known:
            known = [cut for cut in cuts if rest.startswith(MESSAGE_STARTS, cut + 2)]
        if known:
            chosen = known[0]
    return ErrorEntry(kind, rest[:chosen], rest[chosen + 2 :])


def _cuts(rest: str) -> list[int]:
    """Positions of each ``'`` that may close the path: before a space, or at the end."""
    cuts = []
    start = 0
    while (pos := rest.find("' ", start)) >= 0:
        cuts.append(pos)
        start = pos + 1
    if rest.endswith("'") and (not cuts or cuts[-1] != len(rest) - 1):
        cuts.append(len(rest) - 1)
    return cuts


def iter_error_log(
    source: BinaryIO | PathArg,
    *,
    name: str | None = None,
    null_separator: bool | None = None,
    known_paths: Container[str] | None = None,
    on_damage: Callable[[str], object] | None = None,
) -> Iterator[ErrorEntry]:
    """Stream the entries of an error log (path or binary stream).

    The separator is ``\\0`` if ``null_separator`` (default: detected, NUL if the first
    chunk holds one). A final entry without its terminator (a crash) is still returned.
    ``known_paths`` (e.g. the session's paths as ``list files`` prints them) settles paths
    that contain ``' `` (see :func:`parse_error_entry`). A malformed entry or a read error
    (truncated gzip data) is CorruptRepository; with ``on_damage`` it is passed there as
    one line instead: the malformed entry is left out, a read error ends the iteration.
    """

    def damaged(problem: CorruptRepository) -> None:
        if on_damage is None:
            raise problem
        on_damage(str(problem))

    with opened_source(source, name, buffered=on_damage is None) as (stream, label):
        try:
            head = stream.read(1 << 16)
        except STREAM_ERRORS as error:
            damaged(stream_error(error, label))
            return
        if null_separator is None:
            null_separator = b"\0" in head
        separator = b"\0" if null_separator else b"\n"
        lines = enumerate(iter_lines(stream, label, separator, initial=head), 1)
        while True:
            try:
                number, (line, _complete) = next(lines)
            except StopIteration:
                return
            except CorruptRepository as error:  # a read error: the rest is lost
                damaged(error)
                return
            if not line.strip():
                continue
            try:
                entry = parse_error_entry(line, known_paths=known_paths)
            except ValueError as error:
                damaged(CorruptRepository(f"entry {number}: {error}: {line[:60]!r}", path=label))
                continue
            yield entry


def count_error_log(
    source: BinaryIO | PathArg, *, name: str | None = None, null_separator: bool | None = None
) -> int:
    """The number of entries :func:`iter_error_log` would yield, without parsing them.

    Counts the non-blank separator-terminated lines (and a final unterminated one) chunk by
    chunk at C speed; malformed entries are counted too. Read errors: CorruptRepository.
    """
    count = 0
    with opened_source(source, name) as (stream, label):
        try:
            head = stream.read(1 << 16)
        except STREAM_ERRORS as error:
            raise stream_error(error, label) from None
        if null_separator is None:
            null_separator = b"\0" in head
        separator = b"\0" if null_separator else b"\n"
        pending = b""
        data = head
        try:
            while data:
                lines = (pending + data).split(separator)
                pending = lines.pop()
                # empty and whitespace-only lines are not entries (C-level counting)
                count += len(lines) - lines.count(b"") - sum(map(bytes.isspace, lines))
                data = stream.read(_CHUNK)
        except STREAM_ERRORS as error:
            raise stream_error(error, label) from None
        if pending.strip():
            count += 1
    return count


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
