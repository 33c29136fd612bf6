"""Files rebuilt from a full copy and a chain of reverse deltas, many per C call with the GIL
released: what :class:`rdb_fastio.CopyPlan` is for files copied as they are, for the files an
older session's restore rebuilds.

For each file the C routine (``rdb_rebuild_packed``, in ``rdb_fastio._rebuild``, built against
librsync, zlib and libcrypto) opens the basis (a mirror copy or a ``.snapshot[.gz]``: directory
descriptor + name, no symlink followed, a regular file only), applies the reverse deltas newest
first (each a ``.diff.gz`` inflated by zlib, or a plain ``.diff``), every version held whole in
memory up to a limit; then checks the size and SHA1 against what is asked, creates the target
(``O_CREAT|O_EXCL|O_NOFOLLOW``), writes it and sets its owner, mode and times. Done in Python,
that was ~50-100 µs of Python per file holding the GIL, so two threads only traded it.

A file the repository cannot give as it should (a file missing or not regular, a read error, a
damaged gzip or delta, a version past the limit) is reported with its status and nothing is
left at its name: the caller rebuilds it its general way, which says exactly what is wrong (or,
past the limit, streams it).
"""

from __future__ import annotations

import enum
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rdb_fastio.batch_io import target_settings

try:
    from rdb_fastio._rebuild import ffi, lib
except ModuleNotFoundError as missing:  # an editable install from before this module
    raise ImportError(
        "rdb_fastio._rebuild is not built (an install of rdb-fastio older than it); rebuild "
        "it: './dev setup', or 'pip install -e packages/rdb-fastio'"
    ) from missing

# The packed forms read by rdb_rebuild_packed (RB_SPEC_SIZE, RB_DELTA_SIZE, RB_RESULT_SIZE
# there): native byte order, standard sizes, no padding. Spec: the basis's directory, name
# offset and whether it is gzipped; the target's directory and name offset; the first delta
# and the number of deltas; create_mode; size (-1: any); the SHA1 wanted; flags (1 check the
# SHA1, 2 set the owner, 4 set the mode, 8 set the times); uid, gid, mode; atime and mtime
# (seconds, nanoseconds). Delta: directory, name offset, gzipped. Result: status, errno, size,
# SHA1.
_SPEC = struct.Struct("=iIBiIIIIq20sBIIIqqqq")
_DELTA = struct.Struct("=iIB")
_RESULT = struct.Struct("=iiq20s")
_NO_SHA1 = bytes(20)
assert (_SPEC.size, _DELTA.size, _RESULT.size) == (
    lib.RB_SPEC_SIZE,
    lib.RB_DELTA_SIZE,
    lib.RB_RESULT_SIZE,
)

# librsync writes its error messages to stderr unless told otherwise, process-wide: quiet here,
# unless the rdiff package (which shares the library) already takes them for its own errors
# (if it is loaded later, it takes them then)
if "rdiff._binding" not in sys.modules:
    lib.rdb_rebuild_quiet()

# Every version of a file (and each delta, uncompressed) is held whole in memory up to this.
DEFAULT_LIMIT = 8 << 20


class RebuildStatus(enum.IntEnum):
    """How the rebuilding of one file ended (anything but DONE leaves no file behind)."""

    DONE = 0
    SOURCE_OPEN = 1  # a repository file could not be opened (errno: ELOOP for a symlink)
    SOURCE_NOT_REGULAR = 2
    READ = 3  # a repository file could not be read
    CREATE = 4
    WRITE = 5
    SIZE = 6  # not the size asked for
    SHA1 = 7  # not the SHA1 asked for
    OWNER = 8
    MODE = 9
    TIMES = 10
    CLOSE = 11
    DIGEST = 12  # libcrypto or zlib failed, or no memory
    GZIP = 13  # a .gz increment is not valid gzip data or ends early
    DELTA = 14  # a bad delta (one that ends early, or copies past its basis)
    TOO_BIG = 15  # a version or a delta passes the limit

    @property
    def from_repository(self) -> bool:
        """Whether the repository could not give the file as it should (the general way
        then says what is wrong): not a failure writing the target or of the checks."""
        return self in _FROM_REPOSITORY


_FROM_REPOSITORY = frozenset(
    {
        RebuildStatus.SOURCE_OPEN,
        RebuildStatus.SOURCE_NOT_REGULAR,
        RebuildStatus.READ,
        RebuildStatus.GZIP,
        RebuildStatus.DELTA,
        RebuildStatus.TOO_BIG,
    }
)


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What became of one file that was not done: the status, the errno of the step that
    failed (0 if none), and the size and SHA1 (hex) of the bytes rebuilt (for SIZE, SHA1 and
    the steps after them)."""

    status: RebuildStatus
    error: int
    size: int
    sha1: str


@dataclass(frozen=True, slots=True)
class PlanRebuilt:
    """What :meth:`RebuildPlan.rebuild` did: the bytes of the files written, and each file that
    was not as (its position in the plan, what happened to it)."""

    bytes: int
    failed: list[tuple[int, Rebuilt]]


# The target directory of a file only rebuilt and checked (RebuildPlan.add), never written.
CHECK_ONLY = -1

# A repository file: its directory's descriptor, its name there, and whether it is gzipped.
RepoFile = tuple[int, bytes, bool]


class RebuildPlan:
    """Files to rebuild, packed as they are added (no Python object per file, none made for a
    file done). One thread adds, then one (maybe another) calls :meth:`rebuild`, once."""

    __slots__ = ("_at", "_deltas", "_names", "_specs", "count", "limit")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._specs = bytearray()
        self._deltas = bytearray()
        self._names: list[bytes] = []  # joined by NULs when rebuilt
        self._at = 0  # where the next name starts in the joined names
        self.count = 0
        self.limit = limit

    def _name(self, name: bytes) -> int:
        if b"\0" in name:
            raise ValueError("a file name with a NUL byte")
        at = self._at
        self._at += len(name) + 1
        self._names.append(name)
        return at

    def add(
        self,
        base: RepoFile,
        deltas_newest_first: Sequence[RepoFile],
        dst_dir: int,
        name: bytes,
        create_mode: int,
        size: int | None = None,
        sha1: bytes | None = None,
        owner: tuple[int, int] | None = None,
        mode: int | None = None,
        times_ns: tuple[int, int] | None = None,
    ) -> None:
        """One file: ``base`` with ``deltas_newest_first`` applied, created as ``name`` in
        ``dst_dir`` (where it must not exist) with ``create_mode``; it must have ``size``
        bytes and the SHA1 ``sha1`` (20 bytes), and gets ``owner`` (uid, gid), then ``mode``
        (after the owner: set-ID bits survive) and ``times_ns`` (atime, mtime). ``dst_dir``
        :data:`CHECK_ONLY`: the file is rebuilt and checked, nothing is written (a verify;
        :meth:`rebuild` then counts the bytes checked)."""
        first_delta = len(self._deltas) // _DELTA.size
        for directory, delta, gzipped in deltas_newest_first:
            self._deltas += _DELTA.pack(directory, self._name(delta), gzipped)
        base_dir, base_name, base_gzipped = base
        flags, uid, gid, set_mode, atime, mtime = target_settings(sha1, owner, mode, times_ns)
        self._specs += _SPEC.pack(
            base_dir,
            self._name(base_name),
            base_gzipped,
            dst_dir,
            self._name(name),
            first_delta,
            len(deltas_newest_first),
            create_mode,
            -1 if size is None else size,
            sha1 or _NO_SHA1,
            flags,
            uid,
            gid,
            set_mode,
            *atime,
            *mtime,
        )
        self.count += 1

    def rebuild(self) -> PlanRebuilt:
        """Rebuild every file, in one C call with the GIL released."""
        count = self.count
        if count == 0:
            return PlanRebuilt(0, [])
        results = bytearray(_RESULT.size * count)
        failed = ffi.new("size_t *")
        names = b"\0".join(self._names) + b"\0"
        total = lib.rdb_rebuild_packed(
            ffi.from_buffer(self._specs),
            count,
            ffi.from_buffer(self._deltas or b"\0"),
            ffi.from_buffer(names),
            self.limit,
            ffi.from_buffer(results),
            failed,
        )
        if failed[0] == 0:
            return PlanRebuilt(total, [])
        out = []
        for n, (status, error, size, sha1) in enumerate(_RESULT.iter_unpack(results)):
            if status != 0:
                out.append((n, Rebuilt(RebuildStatus(status), error, size, sha1.hex())))
        return PlanRebuilt(total, out)
