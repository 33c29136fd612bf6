"""A regular file's bytes as of a session, from already-opened repository files (§3.6 step 4).

The full copy (the mirror file or a ``.snapshot[.gz]``) and the reverse diffs are given as
open file descriptors, so nothing here resolves a path: the caller opened them without
following symlinks. Intermediate versions go to anonymous temporary files; the final version
is streamed to a sink. zlib, librsync and hashlib release the GIL, so several files are
rebuilt at once in threads.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

from rdb_format.errors import CorruptRepository
from rdiff.api import iter_patch
from rdiff.errors import RdiffError

CHUNK = 1 << 20
_local = threading.local()


def _buffer() -> memoryview:
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = memoryview(bytearray(CHUNK))
        _local.view = view
    return view


@dataclass(frozen=True)
class Source:
    """An open repository file: the mirror copy, a snapshot or a diff (owned by the caller)."""

    fd: int
    compressed: bool
    label: Path  # for messages


Sink = Callable[[bytes | memoryview], object]


def _read_plain(fd: int, label: Path) -> Iterator[memoryview]:
    view = _buffer()
    offset = 0
    while True:
        try:
            n = os.preadv(fd, [view], offset)
        except OSError as error:
            raise CorruptRepository(f"read error: {error.strerror}", path=label) from None
        if not n:
            return
        offset += n
        yield view[:n]


def _read_gzip(fd: int, label: Path) -> Iterator[bytes]:
    raw = os.fdopen(fd, "rb", closefd=False)
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            while True:
                try:
                    data = stream.read(CHUNK)
                except EOFError:
                    raise CorruptRepository(
                        "truncated (compressed data ends early)", path=label
                    ) from None
                except (zlib.error, gzip.BadGzipFile, OSError) as error:
                    raise CorruptRepository(f"not valid gzip data ({error})", path=label) from None
                if not data:
                    return
                yield data
    finally:
        raw.close()


def chunks(source: Source) -> Iterator[bytes | memoryview]:
    """The (uncompressed) bytes of ``source``; views are valid until the next one."""
    if source.compressed:
        yield from _read_gzip(source.fd, source.label)
    else:
        yield from _read_plain(source.fd, source.label)


def _patch(basis: BinaryIO, delta: Source, sink: Sink) -> None:
    try:
        for piece in iter_patch(basis, chunks(delta), basis_name=str(delta.label)):
            sink(piece)
    except RdiffError as error:
        raise CorruptRepository(f"bad delta: {error}", path=delta.label) from None


def produce(
    base: Source, diffs_newest_first: Sequence[Source], sink: Sink, *, tmpdir: str | None = None
) -> None:
    """Write ``base`` with the reverse diffs applied (newest first) to ``sink``."""
    if not diffs_newest_first:
        for piece in chunks(base):
            sink(piece)
        return
    opened: list[IO[bytes]] = []
    try:
        if base.compressed:
            plain = tempfile.TemporaryFile(dir=tmpdir)  # noqa: SIM115 (closed below)
            opened.append(plain)
            for piece in chunks(base):
                plain.write(piece)
            plain.flush()
            basis: BinaryIO = cast(BinaryIO, plain)
        else:
            basis = os.fdopen(base.fd, "rb", closefd=False)
            opened.append(basis)
        last = len(diffs_newest_first) - 1
        for position, delta in enumerate(diffs_newest_first):
            if position == last:
                _patch(basis, delta, sink)
                break
            out = tempfile.TemporaryFile(dir=tmpdir)  # noqa: SIM115 (closed below)
            opened.append(out)
            _patch(basis, delta, out.write)
            out.flush()
            basis = cast(BinaryIO, out)
    finally:
        for stream in opened:
            stream.close()


class Digest:
    """A sink wrapper that counts and SHA1-hashes what passes through."""

    def __init__(self, sink: Sink | None = None) -> None:
        self._sha1 = hashlib.sha1()
        self._sink = sink
        self.size = 0

    def __call__(self, data: bytes | memoryview) -> None:
        self._sha1.update(data)
        self.size += len(data)
        if self._sink is not None:
            self._sink(data)

    def hexdigest(self) -> str:
        return self._sha1.hexdigest()


def fd_writer(fd: int, label: str) -> Sink:
    """A sink writing everything to ``fd`` (short writes retried)."""

    def write(data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except OSError as error:
                raise OSError(error.errno, f"cannot write {label}: {error.strerror}") from None
            view = view[n:]

    return write


def hash_source(base: Source, diffs: Sequence[Source], *, tmpdir: str | None = None) -> Digest:
    """SHA1 and size of the rebuilt file (nothing written)."""
    digest = Digest()
    produce(base, diffs, digest, tmpdir=tmpdir)
    return digest


def hash_path_fd(fd: int) -> Digest:
    """SHA1 and size of an open local file."""
    digest = Digest()
    for piece in _read_plain(fd, Path("<source>")):
        digest(piece)
    return digest


def same_bytes(fd: int, base: Source, diffs: Sequence[Source]) -> bool:
    """Whether the open local file ``fd`` holds exactly the rebuilt bytes."""
    offset = 0
    equal = True

    def compare(data: bytes | memoryview) -> None:
        nonlocal offset, equal
        if not equal:
            return
        mine = os.pread(fd, len(data), offset)
        if mine != bytes(data):
            equal = False
        offset += len(data)

    produce(base, diffs, compare)
    if equal and os.pread(fd, 1, offset):
        equal = False
    return equal
