"""Internal: opening repository data files for the readers, and showing paths in messages.

Shared by the readers of every data file (metadata, EA/ACL, statistics, error log). Not a
public API: its names are re-exported where they are public (``rdb_format.metadata``).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import zlib
from collections.abc import Iterator
from typing import BinaryIO, Final, cast

from rdb_format.errors import CorruptRepository

PathArg = str | os.PathLike[str]

#: Read size and gzip read buffer of the streaming readers.
READ_BUFFER: Final = 1 << 18

#: Errors a truncated or garbled (gzip) stream raises while being read.
STREAM_ERRORS: Final = (EOFError, zlib.error, gzip.BadGzipFile, OSError)


def show_path(path: bytes) -> str:
    """A path for a one-line message: UTF-8 with escapes, ``\\n`` for newlines, 200 chars."""
    text = path.decode("utf-8", "backslashreplace").replace("\n", "\\n")
    return text if len(text) <= 200 else text[:200] + "…"


def open_data_file(path: PathArg, *, buffered: bool = True) -> BinaryIO:
    """Open a repository data file for reading; gunzip it iff its name ends in ``.gz``.

    ``buffered`` adds a large read buffer over the gzip stream (fast line iteration); without
    it, small reads return everything before a truncation point (for crash-tolerant readers).
    """
    if not os.fspath(path).endswith(".gz"):
        return open(path, "rb")
    gz = gzip.GzipFile(path, mode="rb")
    if not buffered:
        return cast(BinaryIO, gz)
    # A C-level line iterator over the gzip stream (GzipFile.readline is a Python call).
    return cast(BinaryIO, io.BufferedReader(gz, READ_BUFFER))


@contextlib.contextmanager
def opened_source(
    source: BinaryIO | PathArg, name: str | None, *, buffered: bool = True
) -> Iterator[tuple[BinaryIO, str]]:
    """``(stream, label)`` for a path (opened here, closed after) or an open binary stream.

    The label names the file in errors: ``name``, else the path or the stream's name. A path
    that cannot be opened is CorruptRepository.
    """
    if isinstance(source, (str, os.PathLike)):
        label = name or os.fspath(source)
        try:
            stream = open_data_file(source, buffered=buffered)
        except OSError as error:
            raise CorruptRepository(f"cannot open: {error.strerror}", path=label) from None
        try:
            yield stream, label
        finally:
            stream.close()
    else:
        yield source, name or str(getattr(source, "name", "<stream>"))


def stream_error(error: BaseException, name: str) -> CorruptRepository:
    """The one-line CorruptRepository for a read failure of the file ``name``."""
    if isinstance(error, EOFError):
        what = "truncated (compressed data ends early)"
    elif isinstance(error, (zlib.error, gzip.BadGzipFile)):
        what = f"not valid gzip data ({error})"
    else:
        what = f"read error ({getattr(error, 'strerror', None) or error})"
    return CorruptRepository(what, path=name)
