"""Both cores: signature over block-aligned ranges, delta over byte ranges.

A signature is a header followed by one fixed-size record per block, so ranges that start on
block boundaries hash independently and their records concatenate to exactly the bytes of the
single-threaded run. A delta is a magic, self-delimiting commands, then END; deltas of
consecutive ranges of the new file, each made against the same signature, concatenate (inner
magics and ENDs dropped) into a valid delta of the whole file. Matches that straddle a range
boundary become literals, so the bytes may differ from a single-threaded delta.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, BinaryIO

from rdiff import _binding
from rdiff._binding import LoadedSignature, Stats
from rdiff.errors import InternalError, RdiffIOError
from rdiff.params import DELTA_END, HEADER, SignatureParams

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rdiff._binding import Buffer

MIN_SPLIT = 8 * 1024 * 1024  # below this, thread start-up costs more than it saves
DELTA_MAGIC_LEN = 4


def worth_splitting(size: int, params: SignatureParams | None) -> bool:
    return size >= MIN_SPLIT


def _pread_chunks(fd: int, start: int, end: int, chunk: int, name: str) -> Iterator[Buffer]:
    buf = memoryview(bytearray(max(1, min(chunk, end - start or 1))))
    pos = start
    while pos < end:
        want = min(len(buf), end - pos)
        try:
            got = os.preadv(fd, [buf[:want]], pos)
        except OSError as error:
            raise RdiffIOError(f"Error reading {name}: {error.strerror or error}") from error
        if got == 0:
            raise RdiffIOError(f"Error reading {name}: it shrank while being read")
        yield buf[:got]
        pos += got


def _skip(pieces: Iterable[memoryview], count: int) -> Iterator[memoryview]:
    """Drop the first ``count`` bytes of a stream of views."""
    for piece in pieces:
        if count >= len(piece):
            count -= len(piece)
            continue
        yield piece[count:]
        count = 0


def _split(length: int, parts: int, align: int) -> list[tuple[int, int]]:
    units = -(-length // align)
    per = -(-units // parts)
    ranges = []
    for i in range(parts):
        start, end = i * per * align, min(length, (i + 1) * per * align)
        if start < end:
            ranges.append((start, end))
    return ranges


def _direct_fd(out: BinaryIO) -> int | None:
    """The descriptor that ``out.write`` itself writes to, flushed, or None.

    Only a plain file object qualifies (``io.FileIO``, or a buffered reader/writer over one):
    wrappers such as ``gzip.GzipFile`` also answer ``fileno()``, but with the descriptor under
    their own encoding, so bytes written there directly would bypass it.
    """
    raw: object = out
    if isinstance(raw, (io.BufferedWriter, io.BufferedRandom)):
        raw = raw.raw
    if type(raw) is not io.FileIO:
        return None
    try:
        out.flush()
        return out.fileno()
    except (OSError, ValueError):
        return None


def _regular_fd(out: BinaryIO) -> int | None:
    """:func:`_direct_fd` of ``out`` when it is a regular file (positional writes work)."""
    fd = _direct_fd(out)
    try:
        return fd if fd is not None and stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None


def signature(
    basis: BinaryIO,
    out: BinaryIO,
    params: SignatureParams,
    size: int,
    workers: int,
    *,
    basis_name: str,
    in_size: int,
    out_size: int,
) -> Stats:
    """The signature of a regular-file basis, hashed by ``workers`` threads."""
    fd = basis.fileno()
    base = os.lseek(fd, 0, os.SEEK_CUR)
    length = max(0, size - base)
    ranges = _split(length, workers, params.block_len)
    what = f"basis {basis_name}"
    out_fd = _regular_fd(out)
    if out_fd is not None:
        out_base = os.lseek(out_fd, 0, os.SEEK_CUR)

    def work(index: int, start: int, end: int, sink: Callable[[memoryview], object]) -> Stats:
        job = _binding.signature_job(
            params.magic,
            params.block_len,
            params.strong_len,
            what,
            out_size or _binding.DEFAULT_OUT_SIZE,
        )
        pieces = job.run(_pread_chunks(fd, base + start, base + end, in_size, basis_name))
        for piece in pieces if index == 0 else _skip(pieces, HEADER.size):
            sink(piece)
        return job.stats()

    def positional(offset: int) -> Callable[[memoryview], object]:
        assert out_fd is not None
        state = [offset]

        def write(piece: memoryview) -> None:
            while piece:
                n = os.pwrite(out_fd, piece, state[0])
                state[0] += n
                piece = piece[n:]

        return write

    spools: list[IO[bytes]] = []
    try:
        with (
            contextlib.ExitStack() as cleanup,
            ThreadPoolExecutor(max_workers=len(ranges) or 1) as pool,
        ):
            futures = []
            for i, (start, end) in enumerate(ranges):
                if out_fd is not None:
                    offset = out_base + (HEADER.size if i else 0)
                    offset += (start // params.block_len) * params.record_len
                    sink: Callable[[memoryview], object] = positional(offset)
                elif i == 0:
                    sink = out.write
                else:
                    spool = cleanup.enter_context(tempfile.TemporaryFile())
                    spools.append(spool)
                    sink = spool.write
                futures.append(pool.submit(work, i, start, end, sink))
            if not ranges:
                futures.append(
                    pool.submit(
                        work, 0, 0, 0, positional(out_base) if out_fd is not None else out.write
                    )
                )
            results = [f.result() for f in futures]
            for part in spools:
                part.seek(0)
                while block := part.read(1024 * 1024):
                    out.write(block)
        if out_fd is not None:
            out.seek(out_base + params.size_for(length))
    except OSError as error:
        raise RdiffIOError(f"Error writing signature: {error.strerror or error}") from error
    total = results[0]
    for other in results[1:]:
        total = total.merge(other)
    # The inner ranges' headers were dropped: count what was written.
    return total.replace(out_bytes=params.size_for(length))


def _append(spool: IO[bytes], out: BinaryIO, count: int) -> None:
    """Copy the first ``count`` bytes of ``spool`` to ``out``: in the kernel when ``out`` is
    a plain file (see :func:`_direct_fd`), else through ``out.write``."""
    spool.seek(0)
    out_fd = _direct_fd(out)
    offset = 0
    if out_fd is not None:
        in_fd = spool.fileno()
        try:
            while offset < count:
                sent = os.sendfile(out_fd, in_fd, offset, count - offset)
                if sent == 0:
                    break
                offset += sent
        except OSError:
            pass  # e.g. an output sendfile cannot write to: copy through Python below
    spool.seek(offset)
    while offset < count:
        block = spool.read(min(count - offset, 1024 * 1024))
        if not block:
            raise InternalError("Failed, a partial delta was shorter than written.")
        out.write(block)
        offset += len(block)


class _HoldLast:
    """Writes a stream through, holding back its final byte (the END of a partial delta)."""

    def __init__(self, write: Callable[[memoryview], object]) -> None:
        self._write = write
        self.last: int | None = None

    def __call__(self, piece: memoryview) -> None:
        if not piece:
            return
        if self.last is not None:
            self._write(memoryview(bytes([self.last])))
        self._write(piece[:-1])
        self.last = piece[-1]


def delta(
    sig: LoadedSignature,
    new: BinaryIO,
    out: BinaryIO,
    size: int,
    workers: int,
    *,
    new_name: str,
    in_size: int,
    out_size: int,
) -> Stats:
    """A delta of a regular file encoded by ``workers`` threads over byte ranges."""
    fd = new.fileno()
    base = os.lseek(fd, 0, os.SEEK_CUR)
    ranges = _split(max(0, size - base), workers, 1)
    what = f"new file {new_name}"
    cleanup = contextlib.ExitStack()  # closed in the finally below
    spools: list[IO[bytes]] = [
        cleanup.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        for _ in ranges[1:]
    ]

    # One signature per thread when its bytes were kept (see LoadedSignature.raw).
    sigs = [sig] + [sig.copy() if sig.raw is not None else sig for _ in ranges[1:]]

    def work(index: int, start: int, end: int) -> tuple[Stats, int | None]:
        job = sigs[index].delta_job(what, out_size or _binding.DEFAULT_OUT_SIZE)
        pieces = job.run(_pread_chunks(fd, base + start, base + end, in_size, new_name))
        if index == 0:
            hold = _HoldLast(out.write)
            for piece in pieces:
                hold(piece)
            return job.stats(), hold.last
        spool = spools[index - 1]
        for piece in _skip(pieces, DELTA_MAGIC_LEN):
            spool.write(piece)
        return job.stats(), None

    try:
        with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
            futures = [pool.submit(work, i, s, e) for i, (s, e) in enumerate(ranges)]
            results = [f.result() for f in futures]
        if results[0][1] != DELTA_END:
            raise InternalError("Failed, a partial delta did not end with END.")
        for i, spool in enumerate(spools):
            length = spool.tell()
            last = i == len(spools) - 1
            _append(spool, out, length - (0 if last else 1))
            spool.seek(length - 1)
            if not last and spool.read(1) != bytes([DELTA_END]):
                raise InternalError("Failed, a partial delta did not end with END.")
        if not spools:
            out.write(bytes([DELTA_END]))
    except OSError as error:
        raise RdiffIOError(f"Error writing delta: {error.strerror or error}") from error
    finally:
        cleanup.close()
    total = results[0][0]
    for stats, _ in results[1:]:
        total = total.merge(stats)
    # Each inner range's magic and each range's END but the last were dropped.
    dropped = (len(ranges) - 1) * (DELTA_MAGIC_LEN + 1)
    return total.replace(out_bytes=total.out_bytes - dropped)


def matches(
    basis: BinaryIO, params: SignatureParams, expected: Iterable[Buffer], *, basis_name: str
) -> bool:
    """Whether the signature of ``basis`` (header excluded) equals the ``expected`` stream."""
    from rdiff.api import CHUNK, iter_file

    job = _binding.signature_job(
        params.magic, params.block_len, params.strong_len, f"basis {basis_name}"
    )
    ours = _skip(job.run(iter_file(basis, CHUNK, name=basis_name)), HEADER.size)
    theirs = iter(expected)
    pending = memoryview(b"")
    for piece in ours:
        while piece:
            if not pending:
                more = next(theirs, None)
                if more is None:
                    return False
                pending = memoryview(bytes(more))
            n = min(len(piece), len(pending))
            if pending[:n] != piece[:n]:
                return False
            pending, piece = pending[n:], piece[n:]
    return not pending and next(theirs, None) is None
