"""Readers of the per-session statistics files (reference §4): a private adapter.

``rdb_format.statistics`` (session_statistics / file_statistics / error_log readers) had not
landed when this was written; these readers cover exactly what rdb-stats needs, tolerate
damage (they report problems instead of raising) and stream. Move to rdb_format's readers when
they exist and tolerate truncation the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rdb_format.metadata import STREAM_ERRORS, open_data_file

#: session_statistics fields, in the order rdiff-backup writes them (§4.1).
SESSION_FIELDS: tuple[str, ...] = (
    "StartTime",
    "EndTime",
    "ElapsedTime",
    "SourceFiles",
    "SourceFileSize",
    "MirrorFiles",
    "MirrorFileSize",
    "NewFiles",
    "NewFileSize",
    "DeletedFiles",
    "DeletedFileSize",
    "ChangedFiles",
    "ChangedSourceSize",
    "ChangedMirrorSize",
    "IncrementFiles",
    "IncrementFileSize",
    "TotalDestinationSizeChange",
    "Errors",
)
_KNOWN = frozenset(SESSION_FIELDS)
_INT = re.compile(r"[-+]?\d+", re.ASCII)

Report = Callable[[str], None]
_CHUNK = 1 << 20


@dataclass
class SessionFile:
    """The values read from one session_statistics file; ``problems`` says what was wrong."""

    values: dict[str, int | float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems and all(name in self.values for name in SESSION_FIELDS)


def _number(text: str) -> int | float:
    if _INT.fullmatch(text):
        return int(text)
    return float(text)  # ValueError if it is not a number


def read_session_statistics(path: os.PathLike[str] | str) -> SessionFile:
    """Parse ``session_statistics.T.data``: ``Name value [(human form)]`` per line.

    Unknown names, unparseable values and missing fields become problems; what parsed is kept.
    OSError propagates (the caller decides whether a missing file matters).
    """
    result = SessionFile()
    with open_data_file(path) as stream:
        try:
            content = stream.read()
        except STREAM_ERRORS as error:
            result.problems.append(f"unreadable ({error})")
            return result
    text = content.decode("utf-8", "replace")
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 2 or tokens[0] not in _KNOWN:
            result.problems.append(f"line {number} is garbled: {line[:60]!r}")
            continue
        try:
            result.values[tokens[0]] = _number(tokens[1])
        except ValueError:
            result.problems.append(f"line {number} has a bad value: {line[:60]!r}")
    missing = [name for name in SESSION_FIELDS if name not in result.values]
    if missing:
        result.problems.append(f"truncated: no {', '.join(missing)}")
    elif content and not content.endswith(b"\n"):
        result.problems.append("truncated: the last line has no newline")
    return result


def iter_batches(
    path: os.PathLike[str] | str, separator: bytes, report: Report
) -> Iterator[list[bytes]]:
    """The records of a ``file_statistics`` or ``error_log`` file, in batches, separators
    removed (batches keep the per-record work in C).

    The leading ``#`` header lines are skipped. A gzip stream that ends early, or a last
    record without its separator (a file cut while written), is reported once and the records
    before it are kept.
    """
    try:
        stream = open_data_file(path)
    except OSError as error:
        report(f"cannot open: {error.strerror}")
        return
    with stream:
        pending = b""
        header = True
        try:
            while chunk := stream.read(_CHUNK):
                records = (pending + chunk).split(separator)
                pending = records.pop()
                if header and records:
                    # the "# Format ..." lines come first (a later "#name" is a file)
                    skip = 0
                    while skip < len(records) and records[skip][:1] == b"#":
                        skip += 1
                    header = skip == len(records)
                    if skip:
                        del records[:skip]
                yield records
        except STREAM_ERRORS as error:
            report(f"truncated or damaged ({type(error).__name__}: {error})")
            return
        if pending:
            report("truncated: the last record is incomplete")


def iter_records(path: os.PathLike[str] | str, separator: bytes, report: Report) -> Iterator[bytes]:
    """Like :func:`iter_batches`, one record at a time."""
    for batch in iter_batches(path, separator, report):
        yield from batch
