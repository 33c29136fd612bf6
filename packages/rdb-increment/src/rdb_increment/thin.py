"""Merge one path's increments across removed sessions, so that every kept session restores
exactly as before, and a SIGKILL at any instant leaves every kept session restorable.

Increments are reverse: ``X.S.*`` rebuilds X as of session S from X as of the next session.
When the sessions between two kept ones P and N go, the *window* of X's increments with
times in [P, N) must become one increment ``X.P.*`` that rebuilds X at P from X at N, of the
kind rdiff-backup would write for that pair (:func:`rdb_increment.writer.choose_kind`).

With one increment in the window it already is that: it is renamed to time P. With more, the
content is rebuilt and re-expressed. The danger is the instant in between: a reader follows
the chain of every increment at or after its time, so removing ``X.S`` before ``X.P`` is
rewritten (or the reverse) makes P, and every older session, rebuild garbage. Each step below
therefore keeps "the window applied over X at N gives X at P" true:

- a *literal* delta (a librsync delta against an empty basis: literal bytes only) of X at P
  is correct on any basis, so it may replace the oldest diff in place (same name, rename
  over) before the increments after it go;
- everything after the first full copy (``.snapshot``/``.missing``/``.dir``) of a chain is
  never read, so it may go at any time, and a staged file placed there is invisible;
- the increments between the oldest one and the chain's full copy go oldest first, so every
  remaining diff still gets the basis it was made for;
- renames (to time P, or over an old file of the same name) are atomic; nothing ever
  overwrites a different name, so no two increments of a path share a time.

New content is written by :class:`~rdb_increment.writer.IncrementWriter` (rdiff-backup's delta
parameters and gzip) into a scratch directory inside ``rdiff-backup-data`` (a temp name both
tools ignore), fsynced, then renamed into place.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rdb_format.atomic import fsync_dir
from rdb_format.errors import CorruptRepository
from rdb_format.increments import IncrementKind, parse_increment_name
from rdb_format.layout import Layout
from rdb_format.quoting import Quoting
from rdb_format.timestamps import format_timestring
from rdb_increment import testhooks
from rdb_increment.deltas import read_delta
from rdb_increment.listing import EntryType, entry_type
from rdb_increment.rebuild import IncrementFile, Source, plan_rebuild, rebuild
from rdb_increment.tree import PathIncrements
from rdb_increment.writer import IncrementOptions, IncrementWriter

__all__ = ["Changes", "PathMerger", "State", "time_stamp"]

State = EntryType  # "regular", "directory", "special" or "missing"

#: A regexp that matches nothing: the merger decides compression itself.
_NEVER = r"(?!)"


@dataclass
class Changes:
    """What a removal did to the repository so far (thread-safe counters)."""

    files_deleted: int = 0
    bytes_freed: int = 0
    renamed: int = 0
    rewritten: int = 0
    paths_merged: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def deleted(self, size: int) -> None:
        with self.lock:
            self.files_deleted += 1
            self.bytes_freed += size
        testhooks.changed()

    def note(self, what: Literal["renamed", "rewritten", "merged"]) -> None:
        with self.lock:
            if what == "renamed":
                self.renamed += 1
            elif what == "rewritten":
                self.rewritten += 1
            else:
                self.paths_merged += 1
        if what != "merged":
            testhooks.changed()


def time_stamp(name: bytes) -> bytes:
    """The time string of an unquoted increment-style name (``…Z`` or ``…+01:00`` form)."""
    parts = name.split(b".")
    if parts[-1] == b"gz":
        parts.pop()
    return parts[-2]


def _zone_of(stamp: bytes) -> tuple[bool, int]:
    """(compatible form?, UTC offset in seconds) of a time string."""
    text = stamp.decode("ascii")
    compatible = text[13] == "-"
    if text.endswith("Z"):
        return compatible, 0
    sign = -1 if text[-6] == "-" else 1
    return compatible, sign * (int(text[-5:-3]) * 3600 + int(text[-2:]) * 60)


def _state_of_increment(inc: IncrementFile) -> State:
    """What the path was at the increment's time (a snapshot is a copy or a special file)."""
    if inc.kind == "diff":
        return "regular"
    if inc.kind == "missing":
        return "missing"
    if inc.kind == "dir":
        return "directory"
    return entry_type(inc.path)


class PathMerger:
    """Merges windows of increments, one path at a time (calls for different paths may run in
    parallel threads).

    ``stamps`` gives the time string to name increments of each kept session with (taken from
    its metadata file, so names match the session's other files); ``mirror_of`` finds the
    mirror copy of a long-name group (None when it has none).
    """

    def __init__(
        self,
        layout: Layout,
        quoting: Quoting,
        stamps: dict[int, bytes],
        scratch: Path,
        changes: Changes,
        mirror_of: Callable[[PathIncrements], Path | None],
    ) -> None:
        self.layout = layout
        self.quoting = quoting
        self.stamps = stamps
        self.scratch = scratch
        self.changes = changes
        self.mirror_of = mirror_of
        self._jobs = itertools.count()

    # ---- the merge -------------------------------------------------------------------

    def merge(
        self, group: PathIncrements, previous: int, following: int, *, recheck: bool = False
    ) -> None:
        """Make ``group``'s increments in [previous, following) one increment at ``previous``
        (or none, when X is absent at both ends).

        ``recheck``: this window may hold the half-done work of a killed removal (a single
        increment at ``previous`` that is a literal delta, a snapshot where a diff belongs, a
        useless ``.missing``); bring it to its final form too.
        """
        window = [f for f in group.files if previous <= f.time < following]
        if not window:
            return
        if len(window) == 1:
            # It was written for the pair (its state, the state at `following`), which is
            # (the state at `previous`, the state at `following`): only its time changes.
            inc = window[0]
            if inc.time != previous:
                inc = self._rename(group, inc, previous)
            if recheck:
                self._recheck(group, inc, previous, following)
            return
        self.changes.note("merged")
        if window[0].kind == "diff":
            self._merge_from_diff(group, window, previous, following)
        else:
            self._merge_from_full(group, window, previous, following)

    def _merge_from_full(
        self, group: PathIncrements, window: list[IncrementFile], previous: int, following: int
    ) -> None:
        first = window[0]
        for inc in window[1:]:  # after the chain's full copy: never read
            self._unlink(group, inc)
        at_p = _state_of_increment(first)
        at_n = self._state_at(group, following)
        if at_p == "missing" and at_n == "missing":
            self._unlink(group, first)  # rdiff-backup writes nothing for absent -> absent
            return
        if at_p == "regular" and at_n == "regular" and first.time + 1 < following:
            # rdiff-backup keeps a diff here. Stage it in a free second after the snapshot
            # (never read while the snapshot is there), then drop the snapshot.
            with self._job() as job:
                old = self._rebuild(group, first.time, job / "old", like=first.path)
                new = self._rebuild(group, following, job / "new")
                staged = self._name_at(group, first, first.time + 1, "diff")
                self._write(job, group, old, new, staged, first.name.compressed)
            staged_inc = self._adopt(group, staged)
            self._unlink(group, first)
            self._rename(group, staged_inc, previous)
            return
        if first.time != previous:
            self._rename(group, first, previous)

    def _merge_from_diff(
        self, group: PathIncrements, window: list[IncrementFile], previous: int, following: int
    ) -> None:
        first, rest = window[0], window[1:]
        base_at = next((i for i, inc in enumerate(rest) if inc.kind != "diff"), None)
        between = rest if base_at is None else rest[:base_at]
        base = None if base_at is None else rest[base_at]
        beyond = [] if base_at is None else rest[base_at + 1 :]
        at_n = self._state_at(group, following)
        if at_n != "regular" and (base is None or _state_of_increment(base) != "regular"):
            raise CorruptRepository(
                "a diff is not followed by a full copy of a regular file", path=first.path
            )
        with self._job() as job:
            old = self._rebuild(group, first.time, job / "old", like=first.path)
            empty = job / "empty"
            empty.touch()
            # 1. the oldest diff becomes a literal copy of X at P: right on any basis
            self._write(job, group, old, empty, first.path, first.name.compressed)
            self.changes.note("rewritten")
            # 2. the diffs after it, oldest first (each keeps the basis it was made for),
            #    and whatever lies after the chain's full copy
            for inc in [*between, *beyond]:
                self._unlink(group, inc)
            if at_n == "regular":
                # 3. the full copy goes: the literal now sits on X at N, a regular file
                if base is not None:
                    self._unlink(group, base)
                new = self._rebuild(group, following, job / "new")
                # 4. the real delta from X at N, in place of the literal
                self._write(job, group, old, new, first.path, first.name.compressed)
                self.changes.note("rewritten")
                if first.time != previous:
                    self._rename(group, first, previous)
                return
            assert base is not None
            # 3'. X at N is not a regular file: a snapshot of X at P over the full copy
            #     (still under the literal), then the literal goes, then the name moves to P
            self._write(job, group, old, None, base.path, base.name.compressed)
            self.changes.note("rewritten")
        self._unlink(group, first)
        self._rename(group, base, previous)

    def _recheck(
        self, group: PathIncrements, inc: IncrementFile, previous: int, following: int
    ) -> None:
        """The last steps of an interrupted merge, for a window left with one increment."""
        if inc.kind == "diff":
            if read_delta(inc, stop_at_copy=True).copies:
                return  # a real delta: the merge that wrote it had finished
            if self._state_at(group, following) != "regular":
                raise CorruptRepository(
                    "a diff is not followed by a full copy of a regular file", path=inc.path
                )
            with self._job() as job:
                old = self._rebuild(group, previous, job / "old", like=inc.path)
                new = self._rebuild(group, following, job / "new")
                self._write(job, group, old, new, inc.path, inc.name.compressed)
            self.changes.note("rewritten")
            return
        if inc.kind in ("missing", "snapshot"):
            self._merge_from_full(group, [inc], previous, following)

    # ---- states and contents ---------------------------------------------------------

    def _mirror(self, group: PathIncrements) -> Path | None:
        return self.mirror_of(group)

    def _state_at(self, group: PathIncrements, when: int) -> State:
        plan = plan_rebuild(group.files, when)
        if plan.diffs_newest_first:
            return "regular"
        if plan.base is not None:
            return _state_of_increment(plan.base)
        mirror = self._mirror(group)
        return "missing" if mirror is None else entry_type(mirror)

    def _rebuild(
        self, group: PathIncrements, when: int, out: Path, *, like: Path | None = None
    ) -> Path:
        """X as of ``when`` into ``out`` (with the attributes of the increment ``like``)."""
        plan = plan_rebuild(group.files, when)
        source: Source
        if plan.base is not None:
            source = plan.base
        else:
            mirror = self._mirror(group)
            if mirror is None or entry_type(mirror) != "regular":
                raise CorruptRepository(
                    "the increments need a mirror copy that is not a regular file",
                    path=group.files[0].path,
                )
            source = mirror
        with open(out, "wb") as stream:
            rebuild(source, plan.diffs_newest_first, stream, tmpdir=out.parent)
        if like is not None:
            st = os.lstat(like)
            if os.geteuid() == 0:
                with contextlib.suppress(OSError):
                    os.chown(out, st.st_uid, st.st_gid)
            os.chmod(out, stat.S_IMODE(st.st_mode))
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        return out

    # ---- file operations (each one atomic) -------------------------------------------

    @contextlib.contextmanager
    def _job(self) -> Iterator[Path]:
        job = self.scratch / f"j{next(self._jobs)}"
        job.mkdir(mode=0o700)
        try:
            yield job
        finally:
            shutil.rmtree(job, ignore_errors=True)

    def _write(
        self,
        job: Path,
        group: PathIncrements,
        old: Path,
        new: Path | None,
        target: Path,
        compressed: bool,
    ) -> None:
        """Write the increment (old against new; a snapshot without new) and rename it to
        ``target``, replacing what is there."""
        raw = self.quoting.unquote(os.fsencode(target.name), path=target.parent)
        name = parse_increment_name(raw)
        assert name is not None
        compatible, offset = _zone_of(time_stamp(raw))
        writer = IncrementWriter(
            Layout(job),
            name.time,
            quoting=self.quoting,
            options=IncrementOptions(
                compression=compressed,
                no_compression_regexp=_NEVER,
                fsync_each=True,
                replace=True,
            ),
            compatible=compatible,
            utc_offset=offset,
        )
        written = writer.write((name.base,), old, new)
        assert written.name.kind == name.kind, (written.name, name)
        os.replace(written.path, target)
        fsync_dir(target.parent)

    def _name_at(
        self, group: PathIncrements, like: IncrementFile, when: int, kind: IncrementKind
    ) -> Path:
        """The on-disk path of ``group``'s increment of ``kind`` at ``when``, compressed like
        ``like``, in the time-string form of the session ``when`` (or of ``like``)."""
        stamp = self.stamps.get(when)
        if stamp is None:
            raw_like = self.quoting.unquote(os.fsencode(like.path.name), path=group.directory)
            compatible, offset = _zone_of(time_stamp(raw_like))
            stamp = format_timestring(when, compatible=compatible, utc_offset=offset).encode()
        raw = b"%s.%s.%s" % (group.base, stamp, kind.encode())
        if like.name.compressed:
            raw += b".gz"
        return group.directory / os.fsdecode(self.quoting.quote(raw))

    def _adopt(self, group: PathIncrements, path: Path) -> IncrementFile:
        parsed = parse_increment_name(self.quoting.unquote(os.fsencode(path.name)))
        assert parsed is not None
        inc = IncrementFile(parsed, path)
        group.files.append(inc)
        group.files.sort()
        return inc

    def _rename(self, group: PathIncrements, inc: IncrementFile, when: int) -> IncrementFile:
        target = self._name_at(group, inc, when, inc.name.kind)
        if os.path.lexists(target):
            raise CorruptRepository("cannot merge increments: the name is taken", path=target)
        os.rename(inc.path, target)
        group.files.remove(inc)
        moved = self._adopt(group, target)
        self.changes.note("renamed")
        return moved

    def _unlink(self, group: PathIncrements, inc: IncrementFile) -> None:
        size = os.lstat(inc.path).st_size
        os.unlink(inc.path)
        group.files.remove(inc)
        self.changes.deleted(size)
