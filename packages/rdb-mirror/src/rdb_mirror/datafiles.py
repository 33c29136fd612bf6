"""Session files streamed while the backup runs: metadata, EAs, ACLs, file statistics, errors.

Each is written to a ``rdiff-backup.tmp.<N>`` file in ``rdiff-backup-data`` (ignored by every
reader, removed by regress) and renamed to its final name only when the session says so, so
a crash never leaves a half-written file under a real name. As rdiff-backup does, a file that
got no data is a 0-byte plain file, one that got data is gzipped (``.gz``) when compression
is on. Nothing is fsynced here: the session syncs once before its commit.

Compression runs on a thread of each file (zlib releases the GIL), so the thread that orders
the session's records never compresses: it hands over chunks of 256 KiB or more, at most
:data:`PENDING` per file in flight.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import secrets
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, cast

from rdb_format.atomic import TEMP_PREFIX
from rdb_format.eas_acls import ACLRecord, EARecord, format_acl_record, format_ea_record
from rdb_format.metadata import MetadataWriter, RawRecord, Record, path_key
from rdb_format.statistics import FILE_STATISTICS_HEADER, FileStatRow, file_stat_row

__all__ = ["AclFile", "BackupLog", "EaFile", "ErrorLog", "MetadataFile", "StreamedFile"]

#: gzip level for the session's own files (any level reads back; 9 costs a lot of CPU).
LEVEL = 6

#: Chunks handed to a file's compression thread and not yet written (memory bound).
PENDING = 4


_TEMP_BASE = secrets.randbelow(10**9)
_temp_numbers = itertools.count()


def temp_path(directory: Path) -> Path:
    """A fresh temp name in ``directory``: one random number per process, then a counter
    (a ``secrets`` call per file cost more than the file's write)."""
    return directory / f"{TEMP_PREFIX}{_TEMP_BASE}.{next(_temp_numbers)}"


class StreamedFile:
    """A data file written in pieces and put in place by :meth:`commit`.

    ``plain`` is the final name without ``.gz``.
    """

    def __init__(self, plain: Path, *, compress: bool = True, gzip_empty: bool = False) -> None:
        self.plain = plain
        self.compress = compress
        self._temp = temp_path(plain.parent)
        self._raw: BinaryIO | None = None
        self._out: BinaryIO | None = None
        self._gzip_empty = gzip_empty
        self.written = 0
        self._thread: ThreadPoolExecutor | None = None
        self._pending: deque[Future[None]] = deque()

    def _open(self) -> BinaryIO:
        if self._out is None:
            self._raw = open(self._temp, "xb")  # noqa: SIM115 - closed in commit/abort
            if self.compress:
                gz = gzip.GzipFile(
                    filename=self.plain.name, mode="wb", compresslevel=LEVEL, fileobj=self._raw
                )
                self._out = cast(BinaryIO, gz)
            else:
                self._out = self._raw
        return self._out

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.written += len(data)
        if not self.compress:
            self._open().write(data)
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="rdb-gzip")
        self._pending.append(self._thread.submit(self._write_now, data))
        if len(self._pending) > PENDING:
            self._pending.popleft().result()  # raises the thread's error, if any

    def _write_now(self, data: bytes) -> None:
        self._open().write(data)

    def _settle(self) -> None:
        """Wait for the compression thread; raise its first error."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            if self._thread is not None:
                self._thread.shutdown(wait=True, cancel_futures=True)
                self._thread = None

    def commit(self) -> Path:
        """Close and rename into place; returns the final path."""
        self._settle()
        if self._out is None:
            if not self._gzip_empty:
                with open(self._temp, "xb"):
                    pass
                os.replace(self._temp, self.plain)
                return self.plain
            self._open()
        assert self._out is not None and self._raw is not None
        self._out.close()
        if self._out is not self._raw:
            self._raw.close()
        target = self.plain.with_name(self.plain.name + ".gz") if self.compress else self.plain
        os.replace(self._temp, target)
        self._out = self._raw = None
        return target

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._settle()
        with contextlib.suppress(Exception):
            if self._out is not None:
                self._out.close()
            if self._raw is not None:
                self._raw.close()
        self._out = self._raw = None
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()


class MetadataFile(StreamedFile):
    """``mirror_metadata.<T>.snapshot`` (or, with ``diff``, a reverse diff) in record order."""

    def __init__(self, plain: Path, *, compress: bool = True, diff: bool = False) -> None:
        super().__init__(plain, compress=compress)
        self._writer = MetadataWriter(cast(BinaryIO, self), allow_missing=diff)
        self.count = 0

    def add(self, record: Record) -> None:
        self._writer.write(record)
        self.count += 1

    def add_raw(self, raw: RawRecord) -> None:
        """A record as read from the previous session: its stored text is copied."""
        self._writer.write_raw(raw)
        self.count += 1

    def commit(self) -> Path:
        self._writer.flush()
        return super().commit()


class _OrderedRecords(StreamedFile):
    def __init__(self, plain: Path, *, compress: bool = True) -> None:
        super().__init__(plain, compress=compress)
        self._last: tuple[bytes, ...] | None = None
        self._chunk: list[bytes] = []
        self._size = 0

    def _add(self, path: bytes, data: bytes) -> None:
        key = path_key(path)
        if self._last is not None and key <= self._last:
            raise ValueError(f"record {path!r} out of order")
        self._last = key
        self._chunk.append(data)
        self._size += len(data)
        if self._size >= 1 << 18:
            self._flush()

    def _flush(self) -> None:
        if self._chunk:
            self.write(b"".join(self._chunk))
            self._chunk, self._size = [], 0

    def commit(self) -> Path:
        self._flush()
        return super().commit()


class EaFile(_OrderedRecords):
    """``extended_attributes.<T>.snapshot``."""

    def add(self, record: EARecord) -> None:
        self._add(record.path, format_ea_record(record))


class AclFile(_OrderedRecords):
    """``access_control_lists.<T>.snapshot``."""

    def add(self, record: ACLRecord) -> None:
        self._add(record.path, format_acl_record(record))


class FileStatistics(StreamedFile):
    """``file_statistics.<T>.data``: the header, then one row per processed entry."""

    def __init__(self, plain: Path, *, compress: bool = True) -> None:
        super().__init__(plain, compress=compress, gzip_empty=True)
        self._chunk: list[bytes] = [b"\n".join(FILE_STATISTICS_HEADER) + b"\n"]

    def add(self, row: FileStatRow) -> None:
        self.add_row(row.path, row.changed, row.source_size, row.mirror_size, row.increment_size)

    def add_row(
        self,
        path: bytes,
        changed: bool,
        source_size: int | None,
        mirror_size: int | None,
        increment_size: int | None,
    ) -> None:
        """One row; ``path`` is a metadata path of this session (known to be safe)."""
        self._append(file_stat_row(path, changed, source_size, mirror_size, increment_size))

    def add_unchanged(self, path: bytes, size: int) -> None:
        """:meth:`add_row` for an entry found unchanged (``0 size size NA``), formatted
        in one operation: most rows of an incremental backup are these."""
        if b"\\" in path or b"\n" in path:  # quoted: the general way
            self.add_row(path, False, size, size, None)
        else:
            self._append(b"%s 0 %d %d NA\n" % (path, size, size))

    def _append(self, row: bytes) -> None:
        self._chunk.append(row)
        if len(self._chunk) >= 4096:
            self.write(b"".join(self._chunk))
            self._chunk = []

    def commit(self) -> Path:
        if self._chunk:
            self.write(b"".join(self._chunk))
            self._chunk = []
        return super().commit()


class ErrorLog:
    """``error_log.<T>.data``: ``<Type>: '<path>' <message>`` lines, kept until commit."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, kind: str, path: bytes, message: str) -> str:
        shown = path.decode("utf-8", "backslashreplace")
        line = f"{kind}: '{shown}' {message}".replace("\n", " ")
        self.lines.append(line)
        return line

    def write(self, plain: Path, *, compress: bool = True) -> Path:
        out = StreamedFile(plain, compress=compress)
        try:
            for line in self.lines:
                out.write(line.encode("utf-8", "backslashreplace") + b"\n")
            return out.commit()
        except BaseException:
            out.abort()
            raise


class BackupLog:
    """Appends human lines to ``rdiff-backup-data/backup.log`` (never read by the tools)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, *lines: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError), open(self.path, "ab") as out:
            for line in lines:
                out.write(f"* {stamp} {line}\n".encode("utf-8", "backslashreplace"))
