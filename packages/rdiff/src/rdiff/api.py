"""The typed, streaming Python API: signature, delta and patch.

Two shapes of every operation:
- over binary file objects: ``signature(basis, out)``, ``delta(sig, new, out)``,
  ``patch(basis, delta, out)``; they return librsync's statistics;
- over iterators of bytes: ``iter_signature``, ``iter_delta``, ``iter_patch`` yield the output.

Memory stays constant whatever the file sizes: data flows through fixed buffers. Output bytes
equal Debian's rdiff 2.3.2 for the same parameters and input chunking.
"""

from __future__ import annotations

import os
import stat

from rdiff import _binding
from rdiff._binding import LoadedSignature, Stats
from rdiff.errors import RdiffIOError, WrongBasis
from rdiff.params import SignatureParams, magic_for

TYPE_CHECKING = False  # typing costs start-up time, and rdiff is called thousands of times
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import BinaryIO

    from rdiff._binding import Buffer
    from rdiff.params import HashName, RollsumName

__all__ = [
    "Signature",
    "SignatureParams",
    "Stats",
    "check_signature",
    "delta",
    "iter_delta",
    "iter_patch",
    "iter_signature",
    "load_signature",
    "patch",
    "patch_in_memory",
    "signature",
    "signature_params",
]

Signature = LoadedSignature
CHUNK = 1024 * 1024
PATCH_OUT = 1024 * 1024


def iter_file(f: BinaryIO, chunk_size: int = CHUNK, *, name: str = "input") -> Iterator[Buffer]:
    """Read ``f`` in chunks into one reused buffer (each view is valid until the next one)."""
    buf = bytearray(max(1, chunk_size))
    view = memoryview(buf)
    readinto = getattr(f, "readinto", None)
    while True:
        try:
            if readinto is not None:
                n = readinto(view)
            else:
                data = f.read(len(buf))
                n = len(data)
                view[:n] = data
        except OSError as error:
            raise RdiffIOError(f"Error reading {name}: {error.strerror or error}") from error
        if not n:
            return
        yield view[:n]


def known_size(f: BinaryIO) -> int | None:
    """The size rdiff uses to choose defaults: st_size of a regular file, else unknown."""
    try:
        st = os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def signature_params(
    size: int | None,
    *,
    block_len: int = 0,
    strong_len: int = 0,
    hash_name: HashName = "blake2",
    rollsum: RollsumName = "rabinkarp",
) -> SignatureParams:
    """Resolve rdiff's defaults: block 0 = recommended for ``size``; sum 0 = max, -1 = min."""
    magic, block, strong = _binding.sig_args(
        size, magic_for(hash_name, rollsum), block_len, strong_len
    )
    return SignatureParams(magic, block, strong)


def iter_signature(
    chunks: Iterable[Buffer], params: SignatureParams, *, what: str = "signature"
) -> Iterator[bytes]:
    """The signature of the bytes in ``chunks``, as it is produced."""
    job = _binding.signature_job(params.magic, params.block_len, params.strong_len, what)
    for piece in job.run(chunks):
        yield bytes(piece)


def signature(
    basis: BinaryIO,
    out: BinaryIO,
    *,
    block_len: int = 0,
    strong_len: int = 0,
    hash_name: HashName = "blake2",
    rollsum: RollsumName = "rabinkarp",
    jobs: int | None = None,
    in_size: int = 0,
    out_size: int = 0,
    basis_name: str = "basis",
    out_name: str = "output",
) -> Stats:
    """Write the signature of ``basis`` to ``out`` (``out_name`` names it in errors).

    A regular-file basis is hashed over block-aligned ranges by ``jobs`` threads (default: every
    CPU); the bytes are identical to the single-threaded result.
    """
    size = known_size(basis)
    params = signature_params(
        size, block_len=block_len, strong_len=strong_len, hash_name=hash_name, rollsum=rollsum
    )
    workers = _cpus() if jobs is None else max(1, jobs)
    if size is not None and workers > 1:
        from rdiff import parallel

        if parallel.worth_splitting(size, params):
            return parallel.signature(
                basis,
                out,
                params,
                size,
                workers,
                basis_name=basis_name,
                in_size=in_size or CHUNK,
                out_size=out_size,
            )
    job = _binding.signature_job(
        params.magic,
        params.block_len,
        params.strong_len,
        f"basis {basis_name}",
        out_size or _binding.DEFAULT_OUT_SIZE,
    )
    _write_all(job.run(iter_file(basis, in_size or CHUNK, name=basis_name)), out, out_name)
    return job.stats()


def load_signature(
    sig: BinaryIO | Iterable[Buffer], *, name: str = "signature", keep_raw: bool = False
) -> Signature:
    """Load a signature (file object or byte chunks) and build its hash table for delta.

    ``keep_raw`` keeps its bytes too, so that a parallel delta gives each thread its own copy.
    """
    if hasattr(sig, "read"):
        chunks: Iterable[Buffer] = iter_file(sig, 64 * 1024, name=name)  # type: ignore[arg-type]
    else:
        chunks = sig
    return LoadedSignature(chunks, f"signature {name}", keep_raw=keep_raw)


def _delta_chunk(sig: Signature, in_size: int) -> int:
    # Against an empty signature librsync emits one literal per input refill; rdiff 2.3.2
    # refills by -I or else by the signature's block length, so do the same for equal bytes.
    if sig.blocks == 0:
        return in_size or sig.block_len or 2048
    return in_size or CHUNK


def iter_delta(
    sig: Signature, chunks: Iterable[Buffer], *, what: str = "new file", out_size: int = 0
) -> Iterator[bytes]:
    """The delta from ``sig``'s basis to the bytes in ``chunks``.

    For an empty signature the output depends on the chunking (one literal per chunk); it
    never depends on ``out_size``, the output buffer (allocated and zeroed per call).
    """
    job = sig.delta_job(what, out_size or _binding.DEFAULT_OUT_SIZE)
    for piece in job.run(chunks):
        yield bytes(piece)


def delta(
    sig: Signature | BinaryIO,
    new: BinaryIO,
    out: BinaryIO,
    *,
    jobs: int = 1,
    in_size: int = 0,
    out_size: int = 0,
    new_name: str = "new file",
    out_name: str = "output",
) -> Stats:
    """Write the delta that turns the signature's basis into ``new``.

    With ``jobs`` > 1 and a regular-file ``new``, ranges of it are encoded in parallel: the
    result is a valid delta that patches to the same output, though its bytes may differ.
    """
    loaded = sig if isinstance(sig, LoadedSignature) else load_signature(sig, keep_raw=jobs > 1)
    size = known_size(new)
    if jobs > 1 and size is not None:
        from rdiff import parallel

        if parallel.worth_splitting(size, None):
            return parallel.delta(
                loaded,
                new,
                out,
                size,
                jobs,
                new_name=new_name,
                in_size=in_size or CHUNK,
                out_size=out_size,
            )
    job = loaded.delta_job(f"new file {new_name}", out_size or _binding.DEFAULT_OUT_SIZE)
    _write_all(job.run(iter_file(new, _delta_chunk(loaded, in_size), name=new_name)), out, out_name)
    return job.stats()


def iter_patch(
    basis: BinaryIO, chunks: Iterable[Buffer], *, basis_name: str = "basis"
) -> Iterator[bytes]:
    """Apply the delta in ``chunks`` to the seekable ``basis``; yield the new file's bytes."""
    job = _patch_job(basis, basis_name, PATCH_OUT)
    for piece in job.run(chunks):
        yield bytes(piece)


def _patch_job(basis: BinaryIO, basis_name: str, out_size: int) -> _binding.Job:
    try:
        seekable = basis.seekable()
    except (AttributeError, OSError, ValueError):
        seekable = False
    if not seekable:
        raise RdiffIOError(
            f"Basis {basis_name} is not seekable (a pipe?): patch reads the basis at random "
            "offsets, so give it a regular file."
        )
    return _binding.patch_job(
        _binding.read_at_for(basis), basis_name, f"delta for {basis_name}", out_size
    )


def patch(
    basis: BinaryIO,
    delta_in: BinaryIO,
    out: BinaryIO,
    *,
    in_size: int = 0,
    out_size: int = 0,
    basis_name: str = "basis",
    delta_name: str = "delta",
    out_name: str = "output",
) -> Stats:
    """Write to ``out`` the file that ``delta_in`` makes from ``basis`` (which must seek)."""
    job = _patch_job(basis, basis_name, out_size or PATCH_OUT)
    job.what = f"delta {delta_name}"
    try:
        _write_all(job.run(iter_file(delta_in, in_size or CHUNK, name=delta_name)), out, out_name)
    except OSError as error:
        raise RdiffIOError(
            f"Error reading basis {basis_name}: {error.strerror or error}"
        ) from error
    return job.stats()


#: Whether :func:`patch_in_memory` is in this build of the C module (an editable install
#: built before it existed is not rebuilt by itself).
PATCH_IN_MEMORY = _binding.HAS_PATCH_WHOLE


def patch_in_memory(
    basis: int | Buffer,
    delta: Buffer,
    *,
    size_hint: int = 0,
    limit: int = 64 << 20,
    delta_name: str = "delta",
) -> memoryview | None:
    """The file that the whole delta ``delta`` makes from ``basis``: an open file descriptor
    (read with ``pread`` at absolute offsets, its position untouched) or the basis's bytes.

    One C call, the GIL released, no Python per COPY command: for the many small files of a
    restore. The output is held in memory: ``size_hint`` sizes its first buffer (the expected
    size, if known), and None is returned when it would pass ``limit`` bytes (then stream with
    :func:`patch`). Raises :class:`~rdiff.errors.CorruptInput` for a bad delta or one that
    copies past the end of the basis, :class:`~rdiff.errors.RdiffIOError` when the basis
    cannot be read.
    """
    if isinstance(basis, int):
        if basis < 0:
            raise ValueError(f"not a file descriptor: {basis}")
        return _binding.patch_whole(basis, None, delta, size_hint, limit, f"delta {delta_name}")
    return _binding.patch_whole(-1, basis, delta, size_hint, limit, f"delta {delta_name}")


def check_signature(
    basis: BinaryIO, sig: BinaryIO, *, basis_name: str = "basis", sig_name: str = "signature"
) -> None:
    """Raise WrongBasis unless ``basis`` has exactly the signature ``sig`` (streamed)."""
    from rdiff import parallel

    header = sig.read(12)
    try:
        params = SignatureParams.from_header(header)
    except ValueError as error:
        from rdiff.errors import CorruptInput

        raise CorruptInput(f"Failed, {error} in signature {sig_name}.") from error
    expected = iter_file(sig, CHUNK, name=sig_name)
    if not parallel.matches(basis, params, expected, basis_name=basis_name):
        raise WrongBasis(
            f"Basis {basis_name} does not match signature {sig_name}: this delta was made "
            "for another file; nothing was written."
        )


def _write_all(pieces: Iterable[memoryview], out: BinaryIO, out_name: str = "output") -> None:
    write = out.write
    for piece in pieces:
        try:
            write(piece)
        except OSError as error:
            raise RdiffIOError(f"Error writing {out_name}: {error.strerror or error}") from error


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
