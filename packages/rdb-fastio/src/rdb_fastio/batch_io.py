"""Small files read, written and copied many at a time, each batch in one C call with the GIL
released.

A first backup of many small files is mostly system calls: on the source side open, fstat,
read, fstat, close (and a SHA1); on the repository side create the staged file, write it, give
it its owner, mode and times, close it, rename it into the mirror. A restore copies each file
from the mirror the same way. Made from Python one call at a time on a pool thread, every call
would hand CPython's GIL between that thread and the caller's (with two CPUs a cross-CPU
wake-up each time: slower than doing it all on one thread). Here a pool job does a whole batch
in C (``rdb_fastio._batchio``, built with the package against OpenSSL's libcrypto for the
SHA1), so the second CPU reads, creates and copies files while the caller's thread goes on in
Python.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from rdb_fastio._batchio import ffi, lib

_STEPS = ("", "create", "write", "set the mode of", "set the times of", "close", "rename")


def _time(ns: int) -> tuple[int, int]:
    """A time in nanoseconds as a ``struct rdb_time`` (seconds, nanoseconds 0 to 999999999):
    64 bits of nanoseconds since 1970 end in 2262, a file system's times do not."""
    return divmod(ns, 1_000_000_000)


#: What a packed plan's C routine checks and sets on a file it made: the flags (1 check the
#: SHA1, 2 set the owner, 4 the mode, 8 the times), uid, gid, mode, atime and mtime (each a
#: ``struct rdb_time``).
TargetSettings = tuple[int, int, int, int, tuple[int, int], tuple[int, int]]


def target_settings(
    sha1: bytes | None,
    owner: tuple[int, int] | None,
    mode: int | None,
    times_ns: tuple[int, int] | None,
) -> TargetSettings:
    """The settings :class:`CopyPlan` and ``rdb_fastio.rebuild.RebuildPlan`` pack for a file."""
    flags = 0 if sha1 is None else 1
    uid = gid = 0
    if owner is not None:
        flags |= 2
        uid, gid = owner
    if mode is not None:
        flags |= 4
    atime = mtime = (0, 0)
    if times_ns is not None:
        flags |= 8
        mtime = _time(times_ns[1])
        atime = mtime if times_ns[0] == times_ns[1] else _time(times_ns[0])
    return flags, uid, gid, mode or 0, atime, mtime


@dataclass(slots=True)  # not frozen: one per file (frozen's __init__ costs 4x; never changed)
class NewFile:
    """One file to create at ``path`` (which must not exist) and then rename to ``target``
    (``target == path``: made under its final name, not renamed)."""

    path: bytes
    target: bytes
    data: bytes
    mode: int
    owner: tuple[int, int] | None  # (uid, gid), or None to leave the owner alone
    atime_ns: int
    mtime_ns: int


def write_new_files(files: Sequence[NewFile]) -> list[OSError | None]:
    """Write every file: create, fill, ``fchown`` (failures ignored, as without privileges),
    ``fchmod``, ``futimens``, close, rename. Per file, None or the error of the step that
    failed; a failed file's ``path`` is removed again (one that was there before is never
    touched: ``O_EXCL``) and its ``target`` is untouched."""
    count = len(files)
    if count == 0:
        return []
    batch = ffi.new("struct rdb_stage[]", count)
    keep: list[object] = []  # the buffers the C structs point into
    for n, file in enumerate(files):
        c = batch[n]
        path = ffi.new("char[]", file.path)
        target = ffi.new("char[]", file.target)
        data = ffi.from_buffer(file.data)
        keep += (path, target, data)
        c.path = path
        c.target = target
        c.data = data
        c.size = len(file.data)
        c.mode = file.mode
        if file.owner is not None:
            c.set_owner = 1
            c.uid, c.gid = file.owner
        c.atime = _time(file.atime_ns)
        c.mtime = _time(file.mtime_ns)
    lib.rdb_stage_files(batch, count)
    results: list[OSError | None] = []
    for n, file in enumerate(files):
        c = batch[n]
        if c.error == 0:
            results.append(None)
            continue
        step = _STEPS[c.step] if 0 < c.step < len(_STEPS) else "write"
        name = file.target if c.step == 6 else file.path
        error = OSError(c.error, f"cannot {step}: {os.strerror(c.error)}", os.fsdecode(name))
        results.append(error)
    return results


@dataclass(slots=True)  # not frozen: one per file (frozen's __init__ costs 3x; never changed)
class SmallRead:
    """What :func:`read_small_files` made of one file: its bytes and SHA1 (hex), or None
    when it could not be read whole and unchanged (the caller then reads it the general way,
    which says why)."""

    data: bytes | None
    sha1: str | None


def read_small_files(
    paths: Sequence[bytes], keys: Sequence[tuple[int, int, int, int]], *, noatime: bool
) -> list[SmallRead]:
    """Read each file at ``paths[n]`` if it still has the stat key ``keys[n]`` (size,
    mtime_ns, ctime_ns, inode) before and after the read and exactly its size in bytes,
    with its SHA1; no symlink is followed."""
    count = len(paths)
    if count == 0:
        return []
    total = sum(key[0] + 1 for key in keys)
    buffer = bytearray(total)
    base = ffi.from_buffer(buffer)
    batch = ffi.new("struct rdb_read[]", count)
    keep: list[object] = [base]
    offset = 0
    offsets = []
    for n, (path, key) in enumerate(zip(paths, keys, strict=True)):
        c = batch[n]
        name = ffi.new("char[]", path)
        keep.append(name)
        c.path = name
        c.buffer = base + offset
        c.size, mtime_ns, ctime_ns, c.ino = key
        c.mtime, c.ctime = _time(mtime_ns), _time(ctime_ns)
        c.noatime = 1 if noatime else 0
        offsets.append(offset)
        offset += key[0] + 1
    lib.rdb_read_files(batch, count)
    view = memoryview(buffer)
    results = []
    for n, key in enumerate(keys):
        c = batch[n]
        if c.status != 0:
            results.append(SmallRead(None, None))
            continue
        start = offsets[n]
        results.append(
            SmallRead(bytes(view[start : start + key[0]]), bytes(ffi.buffer(c.sha1)).hex())
        )
    return results


class CopyStatus(enum.IntEnum):
    """How :func:`copy_files` ended for one file (anything but DONE leaves no file behind)."""

    DONE = 0
    SOURCE_OPEN = 1  # the source could not be opened (errno: ELOOP for a symlink)
    SOURCE_NOT_REGULAR = 2
    READ = 3
    CREATE = 4
    WRITE = 5
    SIZE = 6  # not the size asked for
    SHA1 = 7  # not the SHA1 asked for
    OWNER = 8
    MODE = 9
    TIMES = 10
    CLOSE = 11
    DIGEST = 12  # libcrypto failed (or no memory)


@dataclass(frozen=True, slots=True)
class FileCopy:
    """One file to copy from ``source`` (in the source directory) to ``name`` (in the target
    directory, where it must not exist yet) and check; times are nanoseconds."""

    source: bytes
    name: bytes
    create_mode: int
    size: int | None = None  # the copy must have this many bytes
    sha1: bytes | None = None  # the copy must have this SHA1 (20 bytes)
    owner: tuple[int, int] | None = None  # (uid, gid) to give it
    mode: int | None = None  # permissions to set after the owner (set-ID bits survive)
    times_ns: tuple[int, int] | None = None  # (atime, mtime)


@dataclass(frozen=True, slots=True)
class Copied:
    """What :func:`copy_files` did with one file: the status, the errno of the step that
    failed (0 if none), and the size and SHA1 (hex) of the bytes it read."""

    status: CopyStatus
    error: int
    size: int
    sha1: str


def copy_files(src_dir: int, dst_dir: int, copies: Sequence[FileCopy]) -> list[Copied]:
    """Copy each file, no symlink followed on either side: open the source (a regular file),
    create the target with ``create_mode``, copy while hashing, check the size and SHA1, set
    the owner, mode and times, close. A file that fails at any step is removed again."""
    return _copy(src_dir, dst_dir, [(-1, -1, copy) for copy in copies])


def copy_files_between(copies: Sequence[tuple[int, int, FileCopy]]) -> list[Copied]:
    """:func:`copy_files` for files of many directories in one C call: each one given with
    its source and target directory descriptors."""
    return _copy(-1, -1, copies)


def _copy(src_dir: int, dst_dir: int, copies: Sequence[tuple[int, int, FileCopy]]) -> list[Copied]:
    count = len(copies)
    if count == 0:
        return []
    batch = ffi.new("struct rdb_copy[]", count)
    keep: list[object] = []  # the names the C structs point into
    for n, (source_dir, target_dir, copy) in enumerate(copies):
        c = batch[n]
        source = ffi.new("char[]", copy.source)
        name = ffi.new("char[]", copy.name)
        keep += (source, name)
        c.source = source
        c.name = name
        c.src_dir = source_dir
        c.dst_dir = target_dir
        c.create_mode = copy.create_mode
        c.size = -1 if copy.size is None else copy.size
        if copy.sha1 is not None:
            c.check_sha1 = 1
            c.sha1_want = copy.sha1
        if copy.owner is not None:
            c.set_owner = 1
            c.uid, c.gid = copy.owner
        if copy.mode is not None:
            c.set_mode = 1
            c.mode = copy.mode
        if copy.times_ns is not None:
            c.set_times = 1
            c.atime, c.mtime = map(_time, copy.times_ns)
    lib.rdb_copy_files(src_dir, dst_dir, batch, count)
    return [
        Copied(CopyStatus(c.status), c.error, c.copied, bytes(ffi.buffer(c.sha1)).hex())
        for c in (batch[n] for n in range(count))
    ]


# CopyPlan's packed form, read by rdb_copy_packed (RDB_SPEC_SIZE, RDB_RESULT_SIZE there): native
# byte order, standard sizes, no padding. Spec: source and target directory, offsets of the
# source name and the target name in the names buffer, create_mode, size (-1: any), flags
# (1 check the SHA1, 2 set the owner, 4 set the mode, 8 set the times), the SHA1 wanted, uid,
# gid, mode, atime and mtime (seconds, nanoseconds). Result: status, errno, bytes, SHA1.
_SPEC = struct.Struct("=iiIIIqB20sIIIqqqq")
_RESULT = struct.Struct("=iiq20s")
_NO_SHA1 = bytes(20)


@dataclass(frozen=True, slots=True)
class PlanCopied:
    """What :meth:`CopyPlan.copy` did: the bytes of the files copied, and each file that was
    not as (its position in the plan, what happened to it)."""

    bytes: int
    failed: list[tuple[int, Copied]]


class CopyPlan:
    """Files to copy as :func:`copy_files_between` copies them, packed as they are added (no
    Python object per file, none made for a file copied): for runs of many small files,
    where building and reading those objects had cost more than the copying's own Python.

    One thread adds, then one (maybe another) calls :meth:`copy`, once."""

    __slots__ = ("_at", "_names", "_specs", "count")

    def __init__(self) -> None:
        self._specs = bytearray()
        self._names: list[bytes] = []  # joined by NULs when copied
        self._at = 0  # where the next name starts in the joined names
        self.count = 0

    def add(
        self,
        src_dir: int,
        dst_dir: int,
        source: bytes,
        name: bytes,
        create_mode: int,
        size: int | None = None,
        sha1: bytes | None = None,
        owner: tuple[int, int] | None = None,
        mode: int | None = None,
        times_ns: tuple[int, int] | None = None,
    ) -> None:
        """One file: the fields of :class:`FileCopy` (in its order) after the directories."""
        if b"\0" in source or b"\0" in name:
            raise ValueError("a file name with a NUL byte")
        source_at = self._at
        name_at = source_at + len(source) + 1
        self._at = name_at + len(name) + 1
        self._names += (source, name)
        flags, uid, gid, set_mode, atime, mtime = target_settings(sha1, owner, mode, times_ns)
        self._specs += _SPEC.pack(
            src_dir,
            dst_dir,
            source_at,
            name_at,
            create_mode,
            -1 if size is None else size,
            flags,
            sha1 or _NO_SHA1,
            uid,
            gid,
            set_mode,
            *atime,
            *mtime,
        )
        self.count += 1

    def copy(self) -> PlanCopied:
        """Copy every file, in one C call with the GIL released (see :func:`copy_files`)."""
        count = self.count
        if count == 0:
            return PlanCopied(0, [])
        results = bytearray(_RESULT.size * count)
        failed = ffi.new("size_t *")
        names = b"\0".join(self._names) + b"\0"
        total = lib.rdb_copy_packed(
            ffi.from_buffer(self._specs),
            count,
            ffi.from_buffer(names),
            ffi.from_buffer(results),
            failed,
        )
        if failed[0] == 0:
            return PlanCopied(total, [])
        out = []
        for n, (status, error, size, sha1) in enumerate(_RESULT.iter_unpack(results)):
            if status != 0:
                out.append((n, Copied(CopyStatus(status), error, size, sha1.hex())))
        return PlanCopied(total, out)
