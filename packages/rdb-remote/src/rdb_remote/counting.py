"""Byte counting around the transport's raw streams (tests, ``--json`` summaries)."""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["CountingReader", "CountingWriter"]


class CountingReader(io.RawIOBase):
    """A raw reader that counts the bytes read through it in :attr:`count`; :attr:`last` is
    when the last of them came (``time.monotonic``)."""

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__()
        self._raw = raw
        self.count = 0
        self.last = time.monotonic()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        size = self._raw.readinto(buffer) or 0
        self.count += size
        if size:
            self.last = time.monotonic()
        return size

    def close(self) -> None:
        super().close()
        self._raw.close()


class CountingWriter(io.RawIOBase):
    """A raw writer that counts the bytes written through it in :attr:`count`."""

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__()
        self._raw = raw
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        written = self._raw.write(data)
        if written is None:  # a raw non-blocking stream with no room: nothing was written
            return 0
        self.count += written
        return written

    def flush(self) -> None:
        if not self._raw.closed:
            self._raw.flush()

    def close(self) -> None:
        super().close()
        self._raw.close()
