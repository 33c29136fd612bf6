"""A regular file's bytes as of a session, from already-opened repository files (§3.6 step 4).

The full copy (the mirror file or a ``.snapshot[.gz]``) and the reverse diffs are given as
open file descriptors, so nothing here resolves a path: the caller opened them without
following symlinks. The reverse diffs are applied by :mod:`rdb_restore.patching` (imported
only when one applies); the final version is streamed to a sink. zlib, librsync and hashlib
release the GIL, so several files are rebuilt at once in threads.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rdb_format.errors import CorruptRepository

if TYPE_CHECKING:
    import hashlib

CHUNK = 1 << 20
_local = threading.local()


def _buffer() -> memoryview:
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = memoryview(bytearray(CHUNK))
        _local.view = view
    return view


class Source:
    """An open repository file: the mirror copy, a snapshot or a diff (owned by the caller).

    Its path is only needed in messages, so it is kept as directory + name and joined on demand.
    """

    __slots__ = ("compressed", "fd", "name", "size", "where")

    def __init__(
        self, fd: int, compressed: bool, where: Path, name: str = "", size: int | None = None
    ) -> None:
        self.fd = fd
        self.compressed = compressed
        self.where = where
        self.name = name
        self.size = size  # from fstat when opened: lets a plain copy skip the EOF read

    @property
    def label(self) -> Path:
        return self.where / self.name if self.name else self.where


Sink = Callable[[bytes | memoryview], object]


def _sha1() -> hashlib._Hash:
    """A new SHA1; hashlib (OpenSSL's, ~3 ms to import) is loaded by the first file hashed in
    Python: a restore of the newest session copies and hashes its files in C (rdb_fastio)."""
    import hashlib

    return hashlib.sha1()


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


GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib parses the gzip header and trailer itself
GZIP_IN = 256 << 10


def _pread(fd: int, size: int, offset: int, label: Path) -> bytes:
    try:
        return os.pread(fd, size, offset)
    except OSError as error:
        raise CorruptRepository(f"read error: {error.strerror}", path=label) from None


def _read_gzip(fd: int, label: Path, size: int | None = None) -> Iterator[bytes]:
    """The uncompressed bytes of a gzip file (``size`` bytes long, if known from ``fstat``), in
    pieces of at most CHUNK bytes.

    zlib does the header, data and trailer (CRC and length) in C: the ``gzip`` module parses
    the header in Python, byte by byte, which costs more than the data of a small delta.
    Several members are read one after another, zero padding between them is skipped (as
    ``gzip`` does), and input that ends inside a member is an error. With the size known,
    each read asks for no more than what is left (``os.pread`` allocates what it is asked for:
    256 KiB for a delta of a few hundred bytes is an ``mmap`` and page faults), and the end
    costs no read.
    """
    decompressor = zlib.decompressobj(GZIP_WBITS)
    in_member = False
    offset = 0
    data = b""
    while True:
        if not data:
            if size is None:
                data = _pread(fd, GZIP_IN, offset, label)
            elif offset < size:
                data = _pread(fd, min(GZIP_IN, size - offset), offset, label)
            offset += len(data)
            if not data:
                if not in_member:
                    return
                # end of input: take what zlib still holds, then it must be at the trailer
                while not decompressor.eof:
                    out = _inflate(decompressor, b"", label)
                    if not out:
                        raise CorruptRepository(
                            "truncated (compressed data ends early)", path=label
                        )
                    yield out
                return
        if not in_member:
            data = data.lstrip(b"\0")
            if not data:
                continue
            in_member = True
        out = _inflate(decompressor, data, label)
        if out:
            yield out
        if decompressor.eof:
            data = decompressor.unused_data
            decompressor = zlib.decompressobj(GZIP_WBITS)
            in_member = False
        else:
            data = decompressor.unconsumed_tail


def _inflate(decompressor: zlib._Decompress, data: bytes, label: Path) -> bytes:
    try:
        return decompressor.decompress(data, CHUNK)
    except zlib.error as error:
        raise CorruptRepository(f"not valid gzip data ({error})", path=label) from None


def chunks(source: Source) -> Iterator[bytes | memoryview]:
    """The (uncompressed) bytes of ``source``; views are valid until the next one."""
    if source.compressed:
        yield from _read_gzip(source.fd, source.label, source.size)
    else:
        yield from _read_plain(source.fd, source.label)


def produce(
    base: Source,
    diffs_newest_first: Sequence[Source],
    sink: Sink,
    *,
    tmpdir: str | int | None = None,
    expected: int | None = None,
    label: str = "a file",
) -> None:
    """Write ``base`` with the reverse diffs applied (newest first) to ``sink``. ``tmpdir``:
    where intermediate versions too big for memory go (a directory's path or descriptor;
    None: the temporary directory). ``expected``: the final size if known (it sizes the
    patch buffers). ``label`` names the file in an error writing an intermediate version."""
    if not diffs_newest_first:
        for piece in chunks(base):
            sink(piece)
        return
    # librsync and the patching are loaded only when a diff applies: never in a restore of
    # the newest session
    from rdb_restore.patching import apply_diffs

    apply_diffs(base, diffs_newest_first, sink, tmpdir, expected, label)


def write_all(fd: int, data: bytes | memoryview, label: str) -> None:
    """Write all of ``data`` to ``fd`` (short writes retried)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError as error:
            raise OSError(error.errno, f"cannot write {label}: {error.strerror}") from None
        view = view[n:]


def _copy_plain(
    base: Source, out: int, out_label: str, limit: int | None = None
) -> tuple[int, str]:
    """Copy an uncompressed full copy to ``out`` through one reused buffer, hashing it.

    With the size known from ``fstat`` a small file costs one ``pread`` and one ``write``: a
    short read at or past that size is the end of the file (a file that grew still reads on).
    Past ``limit`` bytes (the recorded size) it stops: the size returned is then over it.
    """
    view = _buffer()
    sha1 = _sha1()
    expected = base.size
    want = CHUNK if expected is None else min(CHUNK, expected + 1)
    offset = 0
    while True:
        try:
            n = os.preadv(base.fd, [view[:want]], offset)
        except OSError as error:
            raise CorruptRepository(f"read error: {error.strerror}", path=base.label) from None
        if n:
            piece = view[:n]
            sha1.update(piece)
            offset += n
            if limit is not None and offset > limit:
                return offset, sha1.hexdigest()
            write_all(out, piece, out_label)
        if n == 0 or (n < want and expected is not None and offset >= expected):
            return offset, sha1.hexdigest()
        want = CHUNK


def rebuild_into(
    base: Source,
    diffs_newest_first: Sequence[Source],
    out: int,
    out_label: str,
    expected: int | None = None,
    scratch: int | None = None,
) -> tuple[int, str]:
    """Write the rebuilt file to the open descriptor ``out``; its size and SHA1 (hex).
    ``expected``: the recorded size, if any; the writing stops soon after more than that
    came (the size returned is then over it), so that a damaged repository never fills the
    disk. ``scratch``: the directory (descriptor) for intermediate versions, ``out``'s own."""
    if not diffs_newest_first and not base.compressed:
        return _copy_plain(base, out, out_label, expected)
    digest = Digest(fd_writer(out, out_label), limit=expected)
    try:
        produce(
            base, diffs_newest_first, digest, tmpdir=scratch, expected=expected, label=out_label
        )
    except _TooLong:
        pass
    return digest.size, digest.hexdigest()


class _TooLong(Exception):
    """More bytes came than the recorded size: the rebuilding stops."""


class Digest:
    """A sink wrapper that counts and SHA1-hashes what passes through; with a ``limit``, the
    bytes past it are counted and hashed but not passed on (_TooLong is raised instead)."""

    def __init__(self, sink: Sink | None = None, *, limit: int | None = None) -> None:
        self._sha1 = _sha1()
        self._sink = sink
        self._limit = limit
        self.size = 0

    def __call__(self, data: bytes | memoryview) -> None:
        self._sha1.update(data)
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise _TooLong
        if self._sink is not None:
            self._sink(data)

    def hexdigest(self) -> str:
        return self._sha1.hexdigest()


def fd_writer(fd: int, label: str) -> Sink:
    """A sink writing everything to ``fd`` (short writes retried)."""

    def write(data: bytes | memoryview) -> None:
        write_all(fd, data, label)

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
