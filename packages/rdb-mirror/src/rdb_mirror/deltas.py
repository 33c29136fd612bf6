"""Changed files as librsync deltas instead of whole content (over a remote channel).

For a regular file that changed and whose old mirror copy and new version are at least
:data:`DELTA_MIN` bytes, the repository side streams the librsync signature of its old copy
(:class:`SignatureChunk` messages, then a :class:`DeltaRequest`); the source side answers
with the delta from that signature to the new file (:class:`Chunk` messages) and the new
file's size and SHA1 (:class:`ContentEnd`); the repository side patches its old copy into the
staged new file and checks both. Small files travel whole: their signature and delta would
cost about as much as the file, and a round of signature work per file is slower than
sending it. Locally whole content is faster (no signature to compute), so deltas are used
only when the channel is remote (or when a test asks for them).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from rdb_format.errors import ProtocolError, RdbError
from rdb_mirror.protocol import (
    Chunk,
    ContentRequest,
    DeltaRequest,
    RepositoryMessage,
    Sender,
    SignatureChunk,
    SourceMessage,
    StatKey,
)
from rdiff.api import (
    CHUNK,
    iter_delta,
    iter_patch,
    load_signature,
    signature,
    signature_params,
)
from rdiff.errors import RdiffError
from rdiff.parallel import delta as parallel_delta
from rdiff.parallel import worth_splitting

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "DELTA_MIN",
    "MISMATCH",
    "SIGNATURES_HELD",
    "SIGNATURE_MAX",
    "OverSize",
    "delta_limit",
    "patch_into",
    "send_delta",
    "send_signature",
]

#: Old mirror copies smaller than this travel whole (64 KiB: below it a signature and a delta
#: save little and cost a pool job and a signature per file).
DELTA_MIN = 4 << 10
#: Signature parameters: blocks of at least 1 KiB (librsync recommends 256 bytes below 64 KiB,
#: which makes a signature 14% of the file) and 16-byte BLAKE2 sums (2^-128 per block pair:
#: no chance of a false match; the default 32 doubles the signature for nothing).
MIN_BLOCK = 1024
STRONG_LEN = 16
#: Messages of signature or delta data are sent in pieces of about this size.
PIECE = 256 << 10
#: The most signature bytes a source side accepts for one request (librsync's default block
#: size grows as the square root of the file: a 1 TiB file has a signature of about 36 MiB).
SIGNATURE_MAX = 256 << 20
#: The most signature bytes a source side holds for requests not yet made (a repository side
#: streams one signature per pool thread at a time: far less; a hostile one is stopped).
SIGNATURES_HELD = 1 << 30
#: How a patched copy that does not match the source's size or SHA1 is reported.
MISMATCH = "changed while being read; not updated"
_READ = 1 << 20

# The most bytes librsync's delta format spends on commands (/work/shared/reference/
# librsync.md §2): the magic and END; a COPY is an opcode and an offset and a length of up to
# 8 bytes each; a literal's header an opcode and a length of up to 8 bytes.
_DELTA_FRAME = 4 + 1
_COPY_MAX = 1 + 8 + 8
_LITERAL_HEAD_MAX = 1 + 8
#: The encoder flushes a literal run at 32768 bytes (librsync 2.3.0-2.3.2; 65533 since).
_LITERAL_SPLIT = 32768
#: The byte ranges a parallel encoder may cut a file into (rdiff.parallel: one per CPU).
_RANGES = 1024


def delta_limit(size: int) -> int:
    """The most bytes a librsync delta of a ``size``-byte file against one of our signatures
    (blocks of at least :data:`MIN_BLOCK`) can take.

    Every COPY covers a whole block, except the one that matches the basis's short last
    block at the end of each encoded range; every literal run ends at a COPY, at a split,
    or at the end of a range. About 2.5% over ``size``: a source cannot make us stage more.
    """
    copies = size // MIN_BLOCK + _RANGES
    literals = copies + size // _LITERAL_SPLIT + _RANGES
    return _DELTA_FRAME + size + copies * _COPY_MAX + literals * _LITERAL_HEAD_MAX


class OverSize(ProtocolError):
    """A delta whose patched result grows past the size the source announced."""


def _pieces(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Join small outputs into pieces of about :data:`PIECE` bytes."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        if len(buffer) >= PIECE:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


M = TypeVar("M")


class _PieceSender(io.RawIOBase, Generic[M]):
    """A write-only stream that sends what is written in pieces of about :data:`PIECE`
    bytes, each as the message ``make(request, data)``."""

    def __init__(
        self,
        request: int,
        make: Callable[[int, bytes], M],
        send: Callable[[M], None],
    ) -> None:
        super().__init__()
        self._request = request
        self._make = make
        self._send_message = send
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data)
        self._buffer += view
        if len(self._buffer) >= PIECE:
            self._send()
        return view.nbytes

    def _send(self) -> None:
        if self._buffer:
            self._send_message(self._make(self._request, bytes(self._buffer)))
            self._buffer.clear()

    def close(self) -> None:
        if not self.closed:
            self._send()
        super().close()


def send_signature(
    basis: Path,
    request: int,
    index: tuple[bytes, ...],
    stat_key: StatKey,
    out: Sender[RepositoryMessage],
) -> None:
    """Repository side (pool job): stream the signature of ``basis``, then ask for a delta.

    The signature of a large copy is hashed by every CPU (rdiff's parallel signature: the
    same bytes). If ``basis`` cannot be read, ask for the whole content instead (same
    request number).
    """
    try:
        handle = open(basis, "rb")  # noqa: SIM115 - closed below
    except OSError:
        out.send(ContentRequest(request, index, stat_key))
        return
    try:
        with handle, _PieceSender(request, SignatureChunk, out.send) as sender:
            size = os.fstat(handle.fileno()).st_size
            signature(
                handle,
                sender,  # type: ignore[arg-type]
                block_len=max(MIN_BLOCK, signature_params(size).block_len),
                strong_len=STRONG_LEN,
                basis_name=os.fsdecode(basis),
            )
    except (OSError, RdiffError):
        out.send(ContentRequest(request, index, stat_key))  # the source ignores the pieces
        return
    out.send(DeltaRequest(request, index, stat_key))


def send_delta(
    fd: int, size: int, request: int, signature: list[bytes], out: Sender[SourceMessage]
) -> tuple[int, str]:
    """Source side (pool job): send the delta of the first ``size`` bytes (the size listed)
    of the open file ``fd`` against ``signature``.

    No more than ``size`` bytes are encoded, so the delta stays within :func:`delta_limit`
    (which the repository side enforces); a file that grew is read one byte further and
    reported so. A large file is encoded by every CPU over byte ranges (rdiff's parallel
    delta) while another thread hashes it. Returns the file's size and SHA1 as read (the
    caller checks it did not change, then sends :class:`ContentEnd`). Raises RdiffError for
    a signature that is not one.
    """
    jobs = os.cpu_count() or 1
    if jobs > 1 and worth_splitting(size, None):
        loaded = load_signature(signature, name=f"request {request}", keep_raw=True)
        hashed: list[tuple[int, str]] = []
        hasher = threading.Thread(target=lambda: hashed.append(_sha1_of(fd)), daemon=True)
        hasher.start()
        try:
            with (
                open(fd, "rb", closefd=False) as new,
                _PieceSender(request, Chunk, out.send) as sender,
            ):
                parallel_delta(
                    loaded, new, sender, size, jobs, new_name=f"request {request}",  # type: ignore[arg-type]
                    in_size=CHUNK, out_size=0,
                )  # fmt: skip
        finally:
            hasher.join()
        if not hashed:
            raise OSError(errno.EIO, "the file could not be hashed")
        return hashed[0]
    loaded = load_signature(signature, name=f"request {request}")
    digest = hashlib.sha1()
    read = 0

    def counted() -> Iterator[bytes]:
        nonlocal read
        while read < size:
            data = os.read(fd, min(_READ, size - read))
            if not data:
                return
            digest.update(data)
            read += len(data)
            yield data

    for piece in _pieces(iter_delta(loaded, counted())):
        out.send(Chunk(request, piece))
    if read == size and os.read(fd, 1):
        read += 1  # it grew: not the size listed (the caller fails it)
    return read, digest.hexdigest()


def _sha1_of(fd: int) -> tuple[int, str]:
    """Size and SHA1 of the open file ``fd``, read with pread (its offset is left alone)."""
    digest = hashlib.sha1()
    offset = 0
    while True:
        data = os.pread(fd, _READ, offset)
        if not data:
            return offset, digest.hexdigest()
        digest.update(data)
        offset += len(data)


def patch_into(basis: Path, delta: Path, target: Path, size: int, sha1: str) -> None:
    """Repository side (pool job): write ``basis`` patched by ``delta`` into the new file
    ``target``; RdbError (:data:`MISMATCH`) unless it has ``size`` bytes with ``sha1``, and
    :class:`OverSize` as soon as it would grow past ``size`` (a few COPY commands can expand
    without limit: nothing past ``size`` is written)."""
    digest = hashlib.sha1()
    written = 0
    try:
        with (
            open(basis, "rb") as old,
            open(delta, "rb") as changes,
            open(target, "xb") as new,
        ):
            for piece in iter_patch(old, iter(lambda: changes.read(_READ), b"")):
                written += len(piece)
                if written > size:
                    raise OverSize(f"the delta patches into more than the {size} bytes announced")
                digest.update(piece)
                new.write(piece)
    except RdiffError as error:
        raise RdbError(f"{MISMATCH} (the delta does not apply: {error})") from None
    if written != size or digest.hexdigest() != sha1:
        raise RdbError(MISMATCH)
