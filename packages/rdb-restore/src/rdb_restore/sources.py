"""Where a file's data comes from at a session: the mirror, snapshots and diffs (§3.6, §1.6).

:class:`SourceTree` follows the walk over the metadata records (pre-order) with open handles on
the matching mirror and increment directories, and opens the full copy and the reverse diffs
of each regular file without following symlinks.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rdb_format.errors import CorruptRepository
from rdb_format.layout import INCREMENTS, LONG_FILENAME_DATA
from rdb_format.metadata import Record
from rdb_format.timestamps import format_timestring
from rdb_restore import writer
from rdb_restore.content import Source
from rdb_restore.repo import (
    DirHandle,
    Index,
    Repo,
    close_quietly,
    open_dir_at,
    open_file_at,
    open_root,
    show,
)
from rdb_restore.writer import PlainCopy, Rebuild

if TYPE_CHECKING:  # rdb_increment is imported only when increments apply (not the newest session)
    from rdb_increment.rebuild import IncrementFile


@dataclass
class Place:
    """The repository directories of one restored directory."""

    mirror: DirHandle
    increments: DirHandle

    def close(self) -> None:
        self.mirror.close()
        self.increments.close()


@dataclass
class Sources:
    """The opened files a regular file is rebuilt from (close them with :meth:`close`)."""

    base: Source
    diffs: tuple[Source, ...]

    def close(self) -> None:
        close_quietly(self.base.fd)
        for diff in self.diffs:
            close_quietly(diff.fd)


class SourceTree:
    """The repository side of a walk at session ``when``."""

    def __init__(self, repo: Repo, when: int) -> None:
        self.repo = repo
        self.when = when
        self.from_mirror_only = when >= repo.current_time
        layout = repo.layout
        self._data = open_root(layout.data_dir)
        self._long: DirHandle | None = None
        self._lock = threading.Lock()
        self.root = Place(open_root(layout.root), open_dir_at(self._data, INCREMENTS.encode()))

    def close(self) -> None:
        self.root.close()
        self._data.close()
        if self._long is not None:
            self._long.close()

    def long_dir(self) -> DirHandle:
        with self._lock:  # sources() runs in worker threads
            if self._long is None:
                self._long = open_dir_at(self._data, LONG_FILENAME_DATA.encode())
                if not self.from_mirror_only:
                    self._long.increments(self.repo.quoting)
            return self._long

    def descend(self, parent: Place, name: bytes) -> Place:
        """The place of sub-directory ``name`` of ``parent`` (handles with fd None if absent).

        The increments directory is listed when a file in it first needs it, not here: by
        :meth:`plain_copy` (the walk's thread: whether an increment applies decides whether
        the file is copied as it is) or :meth:`sources` (a worker; two at once only list it
        twice). Listing every directory here, before its files were handed out, had made the
        walk wait for the GIL at every entry while the workers rebuilt files (py-spy: the
        workers then waited for files ~18% of the oldest session of django)."""
        quoted = self.repo.quoting.quote(name)
        if self.from_mirror_only:
            increments = DirHandle(None, parent=parent.increments, name=quoted)
        else:
            increments = open_dir_at(parent.increments, quoted)
        return Place(open_dir_at(parent.mirror, quoted), increments)

    def place_of(self, index: Index) -> Place:
        """Open the places down to directory ``index`` (closing the intermediate ones)."""
        place = Place(_dup(self.root.mirror), _dup(self.root.increments))
        for name in index:
            child = self.descend(place, name)
            place.close()
            place = child
        if not self.from_mirror_only:
            place.increments.increments(self.repo.quoting)
        return place

    def _increments(
        self, parent: Place, name: bytes, record: Record
    ) -> tuple[DirHandle, list[IncrementFile]]:
        quoting = self.repo.quoting
        alternate = record.alternate_mirror_name
        if alternate is None:
            alternate = record.alternate_increment_name
        if alternate is not None:
            long_dir = self.long_dir()
            return long_dir, list(long_dir.increments(quoting).get(b"%d" % alternate, []))
        return parent.increments, list(parent.increments.increments(quoting).get(name, []))

    def sources(self, parent: Place, index: Index, record: Record) -> Sources:
        """Open the full copy and the diffs that rebuild regular file ``record`` at ``when``."""
        diffs: list[Source] = []
        base: Source | None = None
        try:
            if not self.from_mirror_only:
                from rdb_increment.rebuild import plan_rebuild

                holder, increments = self._increments(parent, index[-1], record)
                plan = plan_rebuild(increments, self.when)
                if not plan.exists:
                    assert plan.base is not None
                    raise CorruptRepository(
                        f"the metadata says {show(index)!r} was a regular file at "
                        f"{format_timestring(self.when)}, but its increments end in a "
                        f"'{plan.base.kind}' marker (an increment is missing?)",
                        path=plan.base.path,
                    )
                for inc in plan.diffs_newest_first:
                    diffs.append(_open_increment(holder, inc))
                if plan.base is not None:
                    base = _open_increment(holder, plan.base)
            if base is None:
                base = self._open_mirror(parent, index, record)
        except BaseException:
            for diff in diffs:
                close_quietly(diff.fd)
            raise
        return Sources(base, tuple(diffs))

    def plain_copy(self, parent: Place, index: Index, record: Record) -> PlainCopy | Rebuild | None:
        """Where regular file ``record``'s bytes at ``when`` are as they are (its mirror copy,
        no increment applying to it), or the repository files a :class:`Rebuild` in C makes
        them from, or None: :meth:`sources` then says how to rebuild it the general way (a
        long name, a file bigger than :data:`writer.REBUILD_LIMIT`, a missing directory or an
        increment chain that does not end in a full copy: the general way says what is
        wrong)."""
        if record.alternate_mirror_name is not None or record.alternate_increment_name is not None:
            return None
        name = index[-1]
        mirror = parent.mirror.fd
        quoted = self.repo.quoting.quote(name)
        holder = parent.increments
        found = None if self.from_mirror_only else holder.increments(self.repo.quoting).get(name)
        if not found:  # no increment at all: most files of an older session
            return None if mirror is None else PlainCopy(mirror, quoted, parent.mirror)
        from rdb_increment.rebuild import plan_rebuild

        plan = plan_rebuild(found, self.when)
        if plan.base is None and not plan.diffs_newest_first:
            return None if mirror is None else PlainCopy(mirror, quoted, parent.mirror)
        if (
            not plan.exists
            or holder.fd is None
            or record.size is None
            or record.size > writer.REBUILD_LIMIT
        ):
            return None
        if plan.base is None:
            if mirror is None:
                return None
            base = (mirror, quoted, False)
        else:
            base = _repo_file(holder.fd, plan.base)
        return Rebuild(base, tuple(_repo_file(holder.fd, inc) for inc in plan.diffs_newest_first))

    def _open_mirror(self, parent: Place, index: Index, record: Record) -> Source:
        quoting = self.repo.quoting
        if record.alternate_mirror_name is not None:
            directory = self.long_dir()
            name = b"%d" % record.alternate_mirror_name
        else:
            directory = parent.mirror
            name = quoting.quote(index[-1])
        if directory.fd is None:
            raise CorruptRepository(
                f"no increment and no mirror copy of {show(index)!r} for "
                f"{format_timestring(self.when)} (an increment is missing?)",
                path=directory.path / os.fsdecode(name),
            )
        fd, size = open_file_at(directory, name, what="mirror copy")
        return Source(fd, False, directory.path, os.fsdecode(name), size)


def _repo_file(directory: int, inc: IncrementFile) -> tuple[int, bytes, bool]:
    return directory, inc.raw_name, inc.name.compressed


def _open_increment(holder: DirHandle, inc: IncrementFile) -> Source:
    fd, size = open_file_at(holder, inc.raw_name, what="increment")
    return Source(fd, inc.name.compressed, inc.path, "", size)


def _dup(handle: DirHandle) -> DirHandle:
    return DirHandle(None if handle.fd is None else os.dup(handle.fd), handle.path)
