"""Read a ``.diff`` increment's librsync delta without applying it: is it well formed, and does
it copy anything from its basis?

A delta is the magic ``rs\\x026`` then commands, each an opcode byte and parameters
(/work/shared/reference/librsync.md §2): ``0x00`` END; ``0x01``-``0x40`` a literal of that
many bytes; ``0x41``-``0x44`` a literal whose length follows in 1, 2, 4 or 8 bytes;
``0x45``-``0x54`` a COPY of (offset, length) from the basis. Reading is streaming (1 MiB at a
time), gunzipping ``.gz`` increments on the way, so the gzip CRC is checked too.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from rdb_format.errors import CorruptRepository
from rdb_increment.rebuild import IncrementFile

__all__ = ["DELTA_MAGIC", "DeltaSummary", "read_delta"]

DELTA_MAGIC = b"rs\x026"
_LITERAL_WIDTHS = {0x41: 1, 0x42: 2, 0x43: 4, 0x44: 8}
_COPY_WIDTHS = (1, 2, 4, 8)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DeltaSummary:
    """What a delta holds: how many COPY commands and how many literal bytes."""

    copies: int
    literal_bytes: int


class _Reader:
    def __init__(self, stream: BinaryIO, inc: IncrementFile) -> None:
        self.stream = stream
        self.inc = inc

    def exact(self, count: int) -> bytes:
        data = self.stream.read(count)
        if len(data) != count:
            raise CorruptRepository("delta ends early (truncated)", path=self.inc.path)
        return data

    def skip(self, count: int) -> None:
        while count:
            count -= len(self.exact(min(count, _CHUNK)))

    def number(self, width: int) -> int:
        return int.from_bytes(self.exact(width), "big")


def _scan(reader: _Reader, *, stop_at_copy: bool) -> DeltaSummary:
    if reader.stream.read(len(DELTA_MAGIC)) != DELTA_MAGIC:
        raise CorruptRepository("not a librsync delta (bad magic)", path=reader.inc.path)
    copies = literal = 0
    while True:
        opcode = reader.exact(1)[0]
        if opcode == 0:
            if reader.stream.read(1):
                raise CorruptRepository("data after the delta's end", path=reader.inc.path)
            return DeltaSummary(copies, literal)
        if opcode <= 0x40:
            length = opcode
        elif opcode in _LITERAL_WIDTHS:
            length = reader.number(_LITERAL_WIDTHS[opcode])
        elif opcode <= 0x54:
            copies += 1
            if stop_at_copy:
                return DeltaSummary(copies, literal)
            code = opcode - 0x45
            reader.skip(_COPY_WIDTHS[code // 4] + _COPY_WIDTHS[code % 4])
            continue
        else:
            raise CorruptRepository(
                f"bad delta command {opcode:#04x} (not a librsync delta)", path=reader.inc.path
            )
        literal += length
        reader.skip(length)


def read_delta(inc: IncrementFile, *, stop_at_copy: bool = False) -> DeltaSummary:
    """Read the delta of a ``.diff[.gz]`` increment to its end, checking its structure (and
    the gzip CRC); CorruptRepository naming the file if it is not a whole delta.
    ``stop_at_copy``: return at the first COPY (enough to tell a literal-only delta)."""
    try:
        with open(inc.path, "rb") as raw:
            if inc.name.compressed:
                with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
                    return _scan(_Reader(unpacked, inc), stop_at_copy=stop_at_copy)  # type: ignore[arg-type]
            return _scan(_Reader(raw, inc), stop_at_copy=stop_at_copy)
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptRepository(f"unreadable delta: {error}", path=inc.path) from error
