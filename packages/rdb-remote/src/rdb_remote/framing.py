"""Frames on a byte stream: a 4-byte big-endian length, then that many bytes of payload.

A frame longer than :data:`MAX_FRAME` is refused before anything is allocated, so a hostile
or garbled peer cannot make us reserve memory; a stream that ends inside a frame is told
apart from one that ends between frames (a clean end).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from rdb_format.errors import ProtocolError

__all__ = ["HEADER", "MAX_FRAME", "TruncatedStream", "read_exactly", "read_frame", "write_frame"]

HEADER = struct.Struct(">I")
#: The largest payload accepted (content travels in 1 MiB chunks; 16 MiB leaves room).
MAX_FRAME = 16 << 20


class TruncatedStream(Exception):
    """The stream ended inside a frame (``got`` of ``wanted`` bytes were there)."""

    def __init__(self, got: int, wanted: int) -> None:
        super().__init__(f"the stream ended after {got} of {wanted} bytes")
        self.got = got
        self.wanted = wanted


def read_exactly(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes; b"" on a clean end before the first; TruncatedStream inside."""
    data = stream.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = stream.read(size - got)
        if not more:
            raise TruncatedStream(got, size)
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's payload, or None at a clean end of the stream."""
    header = read_exactly(stream, HEADER.size)
    if not header:
        return None
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"malformed frame: {length} bytes announced, more than {MAX_FRAME}")
    if length == 0:
        return b""
    payload = read_exactly(stream, length)
    if not payload:
        raise TruncatedStream(0, length)
    return payload


def write_frame(stream: BinaryIO, payload: bytes) -> int:
    """Write one frame (not flushed); returns the bytes written."""
    if len(payload) > MAX_FRAME:
        raise ValueError(f"a frame of {len(payload)} bytes is larger than {MAX_FRAME}")
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)
    return HEADER.size + len(payload)
