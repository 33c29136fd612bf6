"""Increment-style names: ``<base>.<time>.<type>[.gz]`` (reference §1.4).

Names are the *unquoted* directory entries (bytes). The same grammar is used for the
increment tree and for the files directly in ``rdiff-backup-data`` (markers, metadata,
statistics).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from rdb_format.timestamps import format_timestring, try_parse_timestring

IncrementKind = Literal["snapshot", "diff", "dir", "missing", "data"]
INCREMENT_KINDS: tuple[IncrementKind, ...] = get_args(IncrementKind)
_KINDS = {kind.encode(): kind for kind in INCREMENT_KINDS}


@functools.total_ordering
@dataclass(frozen=True)
class IncrementName:
    """One parsed increment name. Ordered by time, then base, kind and compression."""

    base: bytes
    time: int
    kind: IncrementKind
    compressed: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS.values():
            raise ValueError(f"unknown increment type {self.kind!r}")
        if b"/" in self.base or b"\0" in self.base:
            raise ValueError(f"increment base {self.base!r} is not a single path component")

    def _key(self) -> tuple[int, bytes, str, bool]:
        return (self.time, self.base, self.kind, self.compressed)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, IncrementName):
            return NotImplemented
        return self._key() < other._key()

    def format(self, *, compatible: bool = False, utc_offset: int | None = None) -> bytes:
        """The unquoted file name (quote it before use when chars_to_quote is set)."""
        stamp = format_timestring(self.time, compatible=compatible, utc_offset=utc_offset)
        name = b"%s.%s.%s" % (self.base, stamp.encode("ascii"), self.kind.encode("ascii"))
        return name + b".gz" if self.compressed else name


def parse_increment_name(name: bytes) -> IncrementName | None:
    """Parse an unquoted name; None if it is not increment-style (rdiff-backup's rule).

    ``.gz`` means compressed, whatever the type; a name whose time string does not parse
    (bad zone, year outside 1901-2099) is silently not an increment.
    """
    parts = name.split(b".")
    compressed = parts[-1] == b"gz"
    if compressed:
        parts.pop()
    if len(parts) < 3:
        return None
    kind = _KINDS.get(parts[-1])
    if kind is None:
        return None
    epoch = _epoch_of(parts[-2])
    if epoch is None:
        return None
    base = b".".join(parts[:-2])
    if b"/" in base or b"\0" in base:
        return None
    return IncrementName(base, epoch, kind, compressed)


@functools.lru_cache(maxsize=1024)
def _epoch_of(stamp: bytes) -> int | None:
    """:func:`try_parse_timestring`, remembered: a directory's increments share a few sessions'
    time strings, and parsing one costs more than the rest of the name (listing the 9,700
    increments of the django benchmark's repository: ~20% of its CPU time)."""
    return try_parse_timestring(stamp)


def format_increment_name(
    base: bytes,
    time: int,
    kind: IncrementKind,
    *,
    compressed: bool = False,
    compatible: bool = False,
    utc_offset: int | None = None,
) -> bytes:
    """``<base>.<time string>.<kind>[.gz]``, unquoted."""
    return IncrementName(base, time, kind, compressed).format(
        compatible=compatible, utc_offset=utc_offset
    )


def increments_of(names: Iterable[bytes], base: bytes) -> list[IncrementName]:
    """The increments for ``base`` among a directory's (unquoted) names, oldest first."""
    found = (parse_increment_name(name) for name in names)
    return sorted(inc for inc in found if inc is not None and inc.base == base)


def sort_increments(increments: Iterable[IncrementName]) -> list[IncrementName]:
    """Oldest first (by epoch second, so zones written differently compare correctly)."""
    return sorted(increments)
