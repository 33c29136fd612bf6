"""New small files written many at a time, each batch in one C call with the GIL released.

A first backup of many small files is mostly file creation: create the staged file, write it,
give it its owner, mode and times, close it, rename it into the mirror. Made from Python one
system call at a time on a pool thread, every call would hand CPython's GIL between that
thread and the session's (with two CPUs a cross-CPU wake-up each time: slower than doing it
all on one thread). :func:`write_new_files` does the whole sequence for a batch of files in C
(``rdb_mirror._stagefiles``, built with the package), so a pool thread creates files while
the session's thread goes on in Python, and both CPUs work.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from rdb_mirror._stagefiles import ffi, lib

__all__ = ["NewFile", "write_new_files"]

_STEPS = ("", "create", "write", "set the mode of", "set the times of", "close", "rename")


@dataclass(frozen=True, slots=True)
class NewFile:
    """One file to create at ``path`` (which must not exist) and then rename to ``target``."""

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
    failed; a failed file's ``path`` is removed again and its ``target`` is untouched."""
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
        c.atime_ns = file.atime_ns
        c.mtime_ns = file.mtime_ns
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
