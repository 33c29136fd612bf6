"""Applying reverse diffs (librsync deltas, §3.6 step 4) to a full copy: whole in memory by one
C call per delta when every version is small enough, else streamed through librsync's job
and unnamed temporary files (a restore's: in TARGET, see :func:`scratch_file`).

Apart from :mod:`rdb_restore.content` so that what only a diff needs (librsync, tempfile) is
loaded only when a diff applies: a restore of the newest session never imports it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, BinaryIO, cast

from rdb_format.errors import CorruptRepository
from rdb_restore.content import CHUNK, Sink, Source, chunks, fd_writer, write_all
from rdiff.api import PATCH_IN_MEMORY, patch, patch_in_memory
from rdiff.errors import RdiffError


class _FdBasis:
    """The seekable basis ``rdiff.api.patch`` wants, as just an fd (it reads with pread)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def seekable(self) -> bool:
        return True


class _DeltaReader:
    """The delta's bytes as the file object ``rdiff.api.patch`` reads (``read(n)``)."""

    def __init__(self, pieces: Iterator[bytes | memoryview]) -> None:
        self._pieces = pieces
        self._held = memoryview(b"")

    def read(self, size: int) -> bytes | memoryview:
        if not self._held:
            self._held = memoryview(next(self._pieces, b""))
        out, self._held = self._held[:size], self._held[size:]
        return out


class _SinkWriter:
    """``sink`` as the output file of ``rdiff.api.patch``, keeping its own write errors apart
    (patch reports any OSError as an rdiff error; a full target disk is not a bad delta)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self.error: OSError | None = None

    def write(self, data: bytes | memoryview) -> None:
        try:
            self._sink(data)
        except OSError as error:
            self.error = error
            raise


def _out_size(expected: int | None) -> int:
    """librsync's output buffer for one patch: about the file's size, 16 KiB to 1 MiB
    (the buffer is allocated and zeroed per job, so 1 MiB for every small file is costly)."""
    if expected is None:
        return CHUNK
    return max(16 << 10, min(CHUNK, expected + 1))


def _patch(basis_fd: int, delta: Source, sink: Sink, expected: int | None) -> None:
    out = _SinkWriter(sink)
    try:
        patch(
            cast(BinaryIO, _FdBasis(basis_fd)),
            cast(BinaryIO, _DeltaReader(iter(chunks(delta)))),
            cast(BinaryIO, out),
            in_size=64 << 10,
            out_size=_out_size(expected),
            basis_name=str(delta.label),
        )
    except RdiffError as error:
        if out.error is not None:
            raise out.error from None
        raise CorruptRepository(f"bad delta: {error}", path=delta.label) from None


# A file whose versions are all at most this big is patched whole in memory, in C.
IN_MEMORY_LIMIT = 8 << 20


def _whole(source: Source, limit: int) -> bytes | None:
    """All the (uncompressed) bytes of ``source``; None if there are more than ``limit``."""
    if not source.compressed and source.size is not None and source.size > limit:
        return None
    pieces = []
    total = 0
    for piece in chunks(source):
        total += len(piece)
        if total > limit:
            return None
        pieces.append(bytes(piece))
    return b"".join(pieces)


def _patched_in_memory(
    base: Source, diffs_newest_first: Sequence[Source], expected: int | None
) -> memoryview | bytes | None:
    """The rebuilt file, each delta applied whole by one C call (no Python per COPY command,
    the GIL released), intermediate versions in memory; None when a version or a delta is
    bigger than :data:`IN_MEMORY_LIMIT` (the caller then streams through temporary files)."""
    if not PATCH_IN_MEMORY or (expected is not None and expected > IN_MEMORY_LIMIT):
        return None
    basis: int | bytes | memoryview
    if base.compressed:
        whole = _whole(base, IN_MEMORY_LIMIT)
        if whole is None:
            return None
        basis = whole
    else:
        basis = base.fd
    last = len(diffs_newest_first) - 1
    for position, delta in enumerate(diffs_newest_first):
        data = _whole(delta, IN_MEMORY_LIMIT)
        if data is None:
            return None
        hint = base.size or 0
        if position == last and expected is not None:
            hint = expected + 1
        try:
            out = patch_in_memory(
                basis, data, size_hint=hint, limit=IN_MEMORY_LIMIT, delta_name=str(delta.label)
            )
        except RdiffError as error:
            raise CorruptRepository(f"bad delta: {error}", path=delta.label) from None
        if out is None:
            return None
        basis = out
    assert not isinstance(basis, int)
    return basis


# what open(O_TMPFILE) fails with where the file system cannot make unnamed files
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


def scratch_file(where: str | int | None) -> IO[bytes]:
    """An unnamed temporary file for an intermediate version, in ``where``: a directory open
    as a descriptor (a restore passes the directory of the file it writes, so a hostile
    chain of diffs whose versions grow without end fills only the disk the restore writes
    to anyway, and the restore fails and removes what it wrote; in the temporary directory
    such a chain filled ``/tmp``), a path, or None (tempfile's default)."""
    if not isinstance(where, int):
        return tempfile.TemporaryFile(dir=where)
    try:
        fd = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600, dir_fd=where)
    except OSError as error:
        if error.errno not in _NO_TMPFILE:
            raise
        fd = _named_then_unlinked(where)
    return os.fdopen(fd, "w+b")


def _named_then_unlinked(dir_fd: int) -> int:
    """A new file in ``dir_fd`` whose name is removed at once (no ``O_TMPFILE`` there)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        name = b".rdb-scratch-%d-%s" % (os.getpid(), os.urandom(6).hex().encode())
        try:
            fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        os.unlink(name, dir_fd=dir_fd)
        return fd


def apply_diffs(
    base: Source,
    diffs_newest_first: Sequence[Source],
    sink: Sink,
    tmp: str | int | None,
    size: int | None,
    label: str = "a file",
) -> None:
    """:func:`rdb_restore.content.produce` when at least one diff applies: ``tmp`` is where
    its temporary files go (:func:`scratch_file`), ``size`` the final size if known; a write
    error there (a full TARGET disk) names ``label``."""
    whole = _patched_in_memory(base, diffs_newest_first, size)
    if whole is not None:
        sink(whole)
        return
    opened: list[IO[bytes]] = []
    try:
        what = f"an intermediate version of {label}"
        if base.compressed:
            plain = scratch_file(tmp)
            opened.append(plain)
            for piece in chunks(base):
                write_all(plain.fileno(), piece, what)
            basis_fd = plain.fileno()
        else:
            basis_fd = base.fd
        last = len(diffs_newest_first) - 1
        for position, delta in enumerate(diffs_newest_first):
            if position == last:
                _patch(basis_fd, delta, sink, size)
                break
            out = scratch_file(tmp)
            opened.append(out)
            _patch(basis_fd, delta, fd_writer(out.fileno(), what), size)
            basis_fd = out.fileno()
    finally:
        for stream in opened:
            stream.close()
