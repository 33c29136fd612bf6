"""Changed files as librsync deltas instead of whole content (over a remote channel).

For a regular file that changed and whose old mirror copy is at least :data:`DELTA_MIN`
bytes, the repository side streams the librsync signature of its old copy
(:class:`SignatureChunk` messages, then a :class:`DeltaRequest`); the source side answers
with the delta from that signature to the new file (:class:`Chunk` messages) and the new
file's size and SHA1 (:class:`ContentEnd`); the repository side patches its old copy into the
staged new file and checks both. Small files travel whole: their signature and delta would
cost about as much as the file, and a round of signature work per file is slower than
sending it. Locally whole content is faster (no signature to compute), so deltas are used
only when the channel is remote (or when a test asks for them).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from rdb_format.errors import RdbError
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
from rdiff.api import iter_delta, iter_patch, iter_signature, load_signature, signature_params
from rdiff.errors import RdiffError

__all__ = [
    "DELTA_MIN",
    "MISMATCH",
    "SIGNATURE_MAX",
    "patch_into",
    "send_delta",
    "send_signature",
]

#: Old mirror copies smaller than this travel whole (64 KiB: below it a signature and a delta
#: save little and cost a pool job and a signature per file).
DELTA_MIN = 64 << 10
#: Messages of signature or delta data are sent in pieces of about this size.
PIECE = 256 << 10
#: The most signature bytes a source side accepts for one request (librsync's default block
#: size grows as the square root of the file: a 1 TiB file has a signature of about 36 MiB).
SIGNATURE_MAX = 256 << 20
#: How a patched copy that does not match the source's size or SHA1 is reported.
MISMATCH = "changed while being read; not updated"
_READ = 1 << 20


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


def _read_file(fd: int, observe: hashlib._Hash | None = None) -> Iterator[bytes]:
    while True:
        data = os.read(fd, _READ)
        if not data:
            return
        if observe is not None:
            observe.update(data)
        yield data


def send_signature(
    basis: Path,
    request: int,
    index: tuple[bytes, ...],
    stat_key: StatKey,
    out: Sender[RepositoryMessage],
) -> None:
    """Repository side (pool job): stream the signature of ``basis``, then ask for a delta.

    If ``basis`` cannot be read, ask for the whole content instead (same request number).
    """
    try:
        fd = os.open(basis, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        out.send(ContentRequest(request, index, stat_key))
        return
    try:
        size = os.fstat(fd).st_size
        params = signature_params(size)
        for piece in _pieces(iter_signature(_read_file(fd), params, what=os.fsdecode(basis))):
            out.send(SignatureChunk(request, piece))
    except (OSError, RdiffError):
        os.close(fd)
        out.send(ContentRequest(request, index, stat_key))  # the source ignores the pieces
        return
    os.close(fd)
    out.send(DeltaRequest(request, index, stat_key))


def send_delta(
    fd: int, request: int, signature: list[bytes], out: Sender[SourceMessage]
) -> tuple[int, str]:
    """Source side (pool job): send the delta of the open file ``fd`` against ``signature``.

    Returns the file's size and SHA1 as read (the caller checks it did not change, then
    sends :class:`ContentEnd`). Raises RdiffError for a signature that is not one.
    """
    loaded = load_signature(signature, name=f"request {request}")
    digest = hashlib.sha1()
    size = 0

    def counted() -> Iterator[bytes]:
        nonlocal size
        for data in _read_file(fd, digest):
            size += len(data)
            yield data

    for piece in _pieces(iter_delta(loaded, counted())):
        out.send(Chunk(request, piece))
    return size, digest.hexdigest()


def patch_into(basis: Path, delta: Path, target: Path, size: int, sha1: str) -> None:
    """Repository side (pool job): write ``basis`` patched by ``delta`` into the new file
    ``target``; RdbError (:data:`MISMATCH`) unless it has ``size`` bytes with ``sha1``."""
    digest = hashlib.sha1()
    written = 0
    try:
        with (
            open(basis, "rb") as old,
            open(delta, "rb") as changes,
            open(target, "xb") as new,
        ):
            for piece in iter_patch(old, iter(lambda: changes.read(_READ), b"")):
                digest.update(piece)
                written += len(piece)
                new.write(piece)
    except RdiffError as error:
        raise RdbError(f"{MISMATCH} (the delta does not apply: {error})") from None
    if written != size or digest.hexdigest() != sha1:
        raise RdbError(MISMATCH)
