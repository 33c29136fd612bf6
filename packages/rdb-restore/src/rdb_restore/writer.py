"""Writing a restored tree into TARGET: directories, regular files in a thread pool, special
files, hard links; where the bytes come from is the caller's (a :data:`Fill`).

The caller walks the entries in metadata order (pre-order, one thread) and tells the writer
about each one. Directories are made at once (``0700``) and get their permissions, owner, ACL,
EAs and mtime only after everything inside them is in place. Regular files are collected in
batches of consecutive files of one directory and each batch is written by one worker thread:
few hand-offs, and two workers seldom create files in the same directory at once (they would
spin on its lock in the kernel). Each file is created, filled, checked against the recorded
size and SHA1 and given its attributes: in a staging directory (a new or empty TARGET,
:mod:`rdb_restore.staging`) under its own name, elsewhere under a temporary name then renamed
into place. The target-side safety (no symlink followed, nothing outside TARGET) is
:mod:`rdb_restore.target`.

A file whose bytes are a repository file as they are (a :class:`PlainCopy`: the mirror copy,
in a newest-session restore nearly every file) is copied by :mod:`rdb_fastio`, many per C
call with the GIL released, when it goes into a staging directory and has no EAs or ACL: such
files are gathered across directories into runs, each copied by one pool job, so the copying
runs on the second CPU while the walk goes on in Python. A file an older session rebuilds from
a full copy and reverse diffs (a :class:`Rebuild`) goes into the same runs under the same
conditions, rebuilt in C too (:mod:`rdb_fastio.rebuild`); one the repository cannot give that
way is then rebuilt by the Fill, which says what is wrong.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from rdb_fastio import Copied, CopyPlan, CopyStatus, FileCopy, copy_files
from rdb_format.errors import CorruptRepository
from rdb_format.progress import Progress
from rdb_restore.repo import (
    DIR_FLAGS,
    DirHandle,
    Entry,
    Index,
    cannot_open,
    close_quietly,
    not_regular,
)
from rdb_restore.staging import Staging
from rdb_restore.target import (
    IS_ROOT,
    Owners,
    apply_at,
    apply_fd,
    apply_special_extras,
    creation_mode,
    current_umask,
    make_dir,
    make_special,
    new_file_owner,
    place,
    prepare_target_dir,
    prepare_target_file,
    remove_entry,
    temp_name,
    umask_applies,
)

if TYPE_CHECKING:  # imported by the first file rebuilt in C (librsync)
    from rdb_fastio.rebuild import RebuildPlan, Rebuilt

# A batch ends at this many files or this many recorded bytes, whichever comes first.
BATCH_FILES = 128
BATCH_BYTES = 8 << 20
# A batch of fewer recorded bytes is written on the caller's thread: handing it to a worker
# costs more than it gains (with two CPUs, each of the worker's system calls hands the GIL
# across CPUs; docs/benchmarks.md, "One thread for the many-file work").
INLINE_BYTES = 2 << 20
# A batch with at least this many files for copy_files goes to the pool whatever its size: the
# pool job holds the GIL only to set up and check the C call.
POOL_COPIES = 16
# Files copied from the mirror are gathered across directories into runs of this many, each
# copied by one pool job in one C call: a tree of small directories (a source tree: two or
# three files each) then costs one hand-off per run, not a C call on the walk's thread per
# directory.
RUN_FILES = 128
# ... and of at most this many directories: each holds its descriptors (TARGET's and the
# repository's, up to three) until its run is done, and with the runs in flight they must stay
# well under the usual limit of 1024 open files: fewer directories with many workers, so that
# all the runs in flight (3 per worker, and the one being gathered) hold at most
# RUN_DESCRIPTORS (16 workers: 49 runs of 16 directories had held 2352).
RUN_DIRS = 16
RUN_DESCRIPTORS = 384
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# Writes a regular file's bytes into the open descriptor (worker thread); returns the size and
# SHA1 (hex) of what it wrote. Arguments: the entry, the source context of its directory, the
# payload the caller gave with the file, the descriptor, a name for write errors, and the
# descriptor of the TARGET directory it is in (for unnamed temporary files). Raises
# CorruptRepository when the bytes cannot be produced.
Fill = Callable[[Entry, object, object, int, str, int], tuple[int, str]]
# Releases a directory's source context once nothing in it is pending.
CloseContext = Callable[[object], None]


class PlainCopy(NamedTuple):
    """A repository file holding a regular file's bytes as they are: the open directory, the
    name in it, and the directory's handle (its path, for messages)."""

    dir_fd: int
    name: bytes
    where: DirHandle


# What a file copied or rebuilt in C is made as: its name, create mode, size, SHA1, owner,
# mode and times (the fields of rdb_fastio.FileCopy after the source's name).
_TargetFields = tuple[
    bytes,
    int,
    int | None,
    bytes | None,
    tuple[int, int] | None,
    int | None,
    tuple[int, int] | None,
]
# A repository file a Rebuild reads: its directory's descriptor, its name there, and whether
# it is gzipped.
RepoFile = tuple[int, bytes, bool]
# A file rebuilt in C is held whole in memory, each version and each delta, up to this many
# bytes (as rdb_restore.patching.IN_MEMORY_LIMIT in the general way); a bigger one, or one
# with a bigger version, is rebuilt the general way (streamed).
REBUILD_LIMIT = 8 << 20


class Rebuild(NamedTuple):
    """A regular file's bytes rebuilt in C (rdb_fastio.rebuild): the full copy (the mirror
    copy or a snapshot) with the reverse deltas applied newest first. A file the repository
    cannot give that way is rebuilt the general way (the Fill), which says what is wrong."""

    base: RepoFile
    deltas: tuple[RepoFile, ...]


# Where an entry's bytes are as they are, or how C rebuilds them (its parent directory's
# source context given), or None when they must be produced by the Fill (walk thread).
FindCopy = Callable[[Entry, object], PlainCopy | Rebuild | None]


def default_workers() -> int:
    """Threads for rebuilding files: one per CPU, at least 2 (more only adds contention on the
    target directories and the GIL: measured on the django corpus)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cpus = os.cpu_count() or 1
    return max(2, min(16, cpus))


@dataclass(frozen=True)
class RestoreOptions:
    force: bool = False
    numeric_ids: bool = False
    workers: int | None = None


class Streamed:
    """Base of a payload whose bytes arrive while the walk goes on (the walk's thread feeds
    them): its batch goes to the pool at once, since the walk only feeds it after handing it
    over (a remote restore's big files)."""


class Frame:
    """A directory being written: its TARGET fd, the caller's source context, pending work."""

    __slots__ = (
        "context",
        "created_owner",
        "direct",
        "entry",
        "existed",
        "fd",
        "key",
        "names",
        "new_owner",
        "parent",
        "pending",
        "popped",
        "umask_applies",
    )

    def __init__(
        self,
        key: Index,
        fd: int,
        context: object,
        entry: Entry | None,
        parent: Frame | None,
        existed: bool,
        direct: bool = False,
    ) -> None:
        self.key = key
        self.fd = fd
        self.context = context
        self.entry = entry  # None: the user's directory of a single-file restore (no attrs)
        self.parent = parent
        self.existed = existed
        self.names: set[bytes] | None = set() if existed else None
        self.pending = 0
        self.popped = False
        # in a staging directory nobody else sees: entries are made under their real names
        self.direct = direct
        #: its owner when made (None: unknown), and the owner new files in it get
        self.created_owner: tuple[int, int] | None = None
        self.new_owner: tuple[int, int] | None
        #: whether new files get their mode through the umask: not under a default ACL
        #: (inherited from above TARGET, or an existing directory's with --force), whose
        #: permissions they get instead; they get their mode by fchmod then
        self.umask_applies: bool
        if parent is not None and not existed:
            # made by us in ``parent`` (mkdir): it has the owner parent's new files get, and
            # parent's default ACL, if any, as its own (Linux: a new directory inherits both
            # the set-group-ID bit with the group, and the default ACL). No fstat and no
            # fgetxattr per directory then (two of its ~10 system calls; 3,247 on django)
            self.created_owner = self.new_owner = parent.new_owner
            self.umask_applies = parent.umask_applies
        else:
            self.new_owner = new_file_owner(fd) if IS_ROOT else None
            self.umask_applies = umask_applies(fd)


@dataclass
class _Group:
    """A hard-link group: the first path written (relative to the restore's top), and when it
    is in place."""

    rel: Index
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


class _Item:
    __slots__ = ("copy", "entry", "first_of", "group", "name", "payload")

    def __init__(
        self,
        name: bytes,
        entry: Entry,
        payload: object,
        group: _Group | None,
        first_of: _Group | None,
        copy: PlainCopy | None,
    ) -> None:
        self.name = name
        self.entry = entry
        self.payload = payload
        self.group = group  # a later member of this group: linked, not written
        self.first_of = first_of  # the first member of this group: others wait for it
        self.copy = copy  # copied by copy_files from here


def _nothing() -> None:
    pass


class _CopyRun:
    """Files of any directories, each copied as it is from the repository (copy_files) or
    rebuilt in C from a full copy and reverse deltas (rdb_fastio.rebuild): every directory in
    it counts the run once in its pending work. Each file is packed into ``plan`` or
    ``rebuilds`` as it is added (on the walk's thread), so the pool job only makes the C
    calls: building one FileCopy and reading one Copied per file there had held the GIL ~20 µs
    a file, while the walk waited for it at each of its system calls."""

    __slots__ = ("frames", "items", "plan", "rebuilds", "rebuilt", "size")

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.frames: dict[Frame, None] = {}
        self.plan = CopyPlan()
        self.rebuilds: RebuildPlan | None = None  # made by the first file rebuilt
        self.rebuilt: list[tuple[Frame, _Item]] = []
        self.size = 0

    @property
    def count(self) -> int:
        return len(self.items) + len(self.rebuilt)


class _Batch:
    __slots__ = ("copies", "items", "parent", "size")

    def __init__(self, parent: Frame) -> None:
        self.parent = parent
        self.items: list[_Item] = []
        self.size = 0
        self.copies = 0


@dataclass
class WriteCounts:
    """What was written, and what could not be (one line per bad file)."""

    entries: int = 0
    files: int = 0
    bytes: int = 0
    bad: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class TreeWriter:
    """Writes one restored tree (or one file) into TARGET; use as a context manager: leaving
    it waits for the pool, finishes the directories and re-raises the first fatal error."""

    def __init__(
        self,
        *,
        fill: Fill,
        find_copy: FindCopy | None = None,
        close_context: CloseContext,
        label: Callable[[Index], str],
        progress: Progress,
        options: RestoreOptions,
    ) -> None:
        self.fill = fill
        self.find_copy = find_copy
        self.close_context = close_context
        self.label = label
        self.progress = progress
        self.force = options.force
        self.owners = Owners(numeric=options.numeric_ids)
        self.umask = current_umask()
        workers = options.workers or default_workers()
        self.counts = WriteCounts()
        self.lock = threading.RLock()
        self.fatal: BaseException | None = None
        self.frames: set[Frame] = set()
        self.groups: dict[tuple[int, int], _Group] = {}
        self.top: Frame | None = None
        self.link_base: Index = ()
        self.batch: _Batch | None = None
        self.run: _CopyRun | None = None
        self.staging: Staging | None = None
        self.run_dirs = max(1, min(RUN_DIRS, RUN_DESCRIPTORS // (3 * (workers * 3 + 1))))
        # with very many workers even a directory a run is too many: fewer runs in flight
        in_flight = min(workers * 3, max(1, RUN_DESCRIPTORS // (3 * self.run_dirs) - 1))
        self.slots = threading.BoundedSemaphore(in_flight)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="rdb-restore")

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        cancel = error is not None
        interrupted: BaseException | None = None
        try:
            try:
                if error is None:
                    try:
                        self.flush()
                        self._flush_run()
                    except BaseException:
                        cancel = True
                        raise
            finally:
                interrupted = self._wait_for_workers(cancel=cancel)
                for frame in list(self.frames):
                    self._close_frame(frame)
            if interrupted is not None:
                raise interrupted
            if error is None and self.fatal is not None:
                raise self.fatal
            if error is None and self.staging is not None:
                self.staging.commit()
                self.staging.close()
                self.staging = None
        finally:
            if self.staging is not None:  # a failure: no partial TARGET is left
                self.staging.discard()
                self.staging.close()

    def _wait_for_workers(self, *, cancel: bool) -> BaseException | None:
        """Wait until no worker runs (they use the frames' descriptors, closed next), even
        through a Ctrl-C, which cancels the batches not started; that interrupt, if any."""
        interrupted = None
        while True:
            try:
                self.pool.shutdown(wait=True, cancel_futures=cancel)
                return interrupted
            except KeyboardInterrupt as error:
                interrupted, cancel = error, True

    # ---- what the walk calls (one thread) ---------------------------------------------------

    def root(self, target: str, key: Index, entry: Entry, context: object) -> Frame:
        """TARGET itself, as the directory ``entry`` (made or, with --force, reused)."""
        opened = prepare_target_dir(target, force=self.force)
        self.staging = opened.staging
        for name, kept in opened.leftovers:
            left = f"{os.fsdecode(name)!r}, left next to TARGET by an interrupted restore"
            if kept is None:
                self.progress.warning(f"removed {left}")
            else:
                self.progress.warning(f"cannot remove {left} ({kept}); it stays as it is")
        staged = self.staging is not None
        frame = Frame(key, opened.fd, context, entry, None, opened.existed, staged)
        self.top = frame
        self.link_base = key
        self.frames.add(frame)
        self.counts.entries += 1
        return frame

    def single(self, target: str, key: Index, context: object) -> tuple[Frame, bytes]:
        """The directory TARGET is to be written in, for a one-file restore of ``key``."""
        fd, name = prepare_target_file(target, force=self.force)
        frame = Frame(key[:-1], fd, context, None, None, False)
        self.link_base = key[:-1]
        self.frames.add(frame)
        return frame, name

    def directory(self, parent: Frame, name: bytes, entry: Entry, context: object) -> Frame:
        """Make sub-directory ``name`` now; its attributes come when :meth:`pop` and its
        pending files are done (``context`` is closed if this fails: a batch written by
        :meth:`flush` here may raise the walk's first fatal error)."""
        try:
            self.flush()
            self._note(parent, name)
            fd, existed = make_dir(parent.fd, name, force=self.force)
        except BaseException:
            self.close_context(context)
            raise
        frame = Frame(entry.index, fd, context, entry, parent, existed, parent.direct)
        with self.lock:
            parent.pending += 1
            self.frames.add(frame)
        return frame

    def special(self, parent: Frame, name: bytes, entry: Entry) -> None:
        """A symlink, FIFO, socket or device node, made at once."""
        self._note(parent, name)
        temp = name if parent.direct else temp_name()
        make_special(parent.fd, temp, entry.record, self.warn, self.label(entry.index))
        try:
            apply_at(parent.fd, temp, entry.record, self.owners)
            if entry.record.type != "sym" and (entry.acl or entry.eas):
                apply_special_extras(parent.fd, temp, entry, self.label(entry.index), self.warn)
            if temp is not name:
                place(parent.fd, temp, name, force=self.force)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent.fd)
            raise
        self.progress.advance(1)

    def is_link(self, entry: Entry) -> bool:
        """Whether ``entry`` is a later member of a hard-link group (linked, not filled): the
        caller then needs no payload for it."""
        record = entry.record
        if not record.has_hard_link_triple:
            return False
        assert record.inode is not None and record.device_loc is not None
        return (record.inode, record.device_loc) in self.groups

    def file(self, parent: Frame, name: bytes, entry: Entry, payload: object = None) -> None:
        """A regular file: written by the pool with ``fill(entry, parent.context, payload,
        fd, label)``, or linked to the first path of its hard-link group."""
        self._note(parent, name)
        record = entry.record
        group = first_of = None
        if record.has_hard_link_triple:
            assert record.inode is not None and record.device_loc is not None
            gkey = (record.inode, record.device_loc)
            group = self.groups.get(gkey)
            if group is None:
                first_of = _Group(entry.index[len(self.link_base) :])
                self.groups[gkey] = first_of
        copy = None
        if (
            self.find_copy is not None
            and parent.direct
            and group is None
            and not entry.eas
            and not entry.acl
            and not isinstance(payload, Streamed)
        ):
            found = self.find_copy(entry, parent.context)
            if isinstance(found, Rebuild):
                if first_of is None:
                    self._add_rebuild(parent, _Item(name, entry, payload, None, None, None), found)
                    return
            elif found is not None:
                copy = found
                if first_of is None:
                    self._add_to_run(parent, _Item(name, entry, payload, None, None, copy))
                    return
        batch = self.batch
        if batch is not None and batch.parent is not parent:
            self.flush()
            batch = None
        if batch is None:
            batch = self.batch = _Batch(parent)
        batch.items.append(_Item(name, entry, payload, group, first_of, copy))
        batch.size += record.size or 0
        if copy is not None:
            batch.copies += 1
        if (
            len(batch.items) >= BATCH_FILES
            or batch.size >= BATCH_BYTES
            or isinstance(payload, Streamed)
        ):
            self.flush()

    def flush(self) -> None:
        """Write the collected batch: small ones here, the rest on the pool (blocks while
        enough batches are in flight)."""
        batch = self.batch
        if batch is None:
            return
        self.batch = None
        self.slots.acquire()
        with self.lock:
            batch.parent.pending += 1
        inline = (
            batch.size < INLINE_BYTES
            and batch.copies < POOL_COPIES
            and not isinstance(batch.items[-1].payload, Streamed)
        )
        self._hand_over(
            lambda: self._run(batch), inline=inline, undo=lambda: self._release_groups(batch)
        )

    def _hand_over(
        self, job: Callable[[], None], *, inline: bool = False, undo: Callable[[], None] = _nothing
    ) -> None:
        """Run ``job`` (which releases its slot and whatever it holds, whatever happens) here,
        then stop the walk if anything failed (e.g. Ctrl-C), or on the pool; if the pool
        cannot take it, release the slot and ``undo``."""
        if inline:
            job()
            if self.fatal is not None:
                raise self.fatal
            return
        try:
            self.pool.submit(job)
        except BaseException:
            self.slots.release()
            undo()
            raise

    def _run_for(self, parent: Frame) -> _CopyRun:
        """The run being gathered, counted once in ``parent``'s pending work."""
        run = self.run
        if run is None:
            run = self.run = _CopyRun()
        if parent not in run.frames:
            run.frames[parent] = None
            with self.lock:
                parent.pending += 1
        return run

    def _add_to_run(self, parent: Frame, item: _Item) -> None:
        run = self._run_for(parent)
        copy = item.copy
        assert copy is not None
        run.plan.add(copy.dir_fd, parent.fd, *self._copy_fields(parent, item))
        run.items.append(item)
        self._grown(run, item)

    def _add_rebuild(self, parent: Frame, item: _Item, rebuild: Rebuild) -> None:
        run = self._run_for(parent)
        if run.rebuilds is None:
            # loaded by the first file rebuilt: librsync (and OpenMP's runtime) never in a
            # restore of the newest session
            from rdb_fastio.rebuild import RebuildPlan

            run.rebuilds = RebuildPlan(REBUILD_LIMIT)
        run.rebuilds.add(
            rebuild.base, rebuild.deltas, parent.fd, *self._target_fields(parent, item)
        )
        run.rebuilt.append((parent, item))
        self._grown(run, item)

    def _grown(self, run: _CopyRun, item: _Item) -> None:
        run.size += item.entry.record.size or 0
        if run.count >= RUN_FILES or len(run.frames) >= self.run_dirs or run.size >= BATCH_BYTES:
            self._flush_run()

    def _flush_run(self) -> None:
        """Copy the gathered run: a short one (the last) here, the rest on the pool."""
        run = self.run
        if run is None:
            return
        self.run = None
        self.slots.acquire()
        self._hand_over(lambda: self._copy_run(run), inline=run.count < POOL_COPIES)

    def pop(self, frame: Frame) -> None:
        """Nothing more will be added to ``frame``; it is finished when its work is done."""
        self.flush()
        with self.lock:
            frame.popped = True
            if frame.pending == 0:
                self._finish(frame)

    def warn(self, message: str) -> None:
        with self.lock:
            self.counts.warnings.append(message)
        self.progress.warning(message)

    def bad(self, message: str) -> None:
        with self.lock:
            self.counts.bad.append(message)
        self.progress.warning(message)

    def _note(self, parent: Frame, name: bytes) -> None:
        self.counts.entries += 1
        if parent.names is not None:
            parent.names.add(name)

    # ---- in the pool ------------------------------------------------------------------------

    def _run(self, batch: _Batch) -> None:
        files = nbytes = 0
        parent = batch.parent
        copies: list[_Item] = []  # consecutive items for one copy_files call, from copies_from
        copies_from = -1
        try:
            for item in batch.items:
                if self.fatal is not None:
                    break
                if item.copy is not None:
                    if copies and copies_from != item.copy.dir_fd:
                        done, size = self._copy(parent, copies)
                        files, nbytes, copies = files + done, nbytes + size, []
                    copies.append(item)
                    copies_from = item.copy.dir_fd
                    continue
                if copies:
                    done, size = self._copy(parent, copies)
                    files, nbytes, copies = files + done, nbytes + size, []
                try:
                    if item.group is not None:
                        self._link(parent, item)
                    else:
                        nbytes += self._write(parent, item)
                        files += 1
                        if item.first_of is not None:
                            item.first_of.ok = True
                except CorruptRepository as error:
                    self.bad(str(error))
                finally:
                    if item.first_of is not None:
                        item.first_of.done.set()
            if copies and self.fatal is None:
                done, size = self._copy(parent, copies)
                files, nbytes = files + done, nbytes + size
        except BaseException as error:
            with self.lock:
                if self.fatal is None:
                    self.fatal = error
        finally:
            self._release_groups(batch)
            with self.lock:
                self.counts.files += files
                self.counts.bytes += nbytes
            self.progress.advance(len(batch.items))
            self._done(parent)
            self.slots.release()

    @staticmethod
    def _release_groups(batch: _Batch) -> None:
        """Wake whoever waits for a group whose first member will not be written."""
        for item in batch.items:
            if item.first_of is not None:
                item.first_of.done.set()

    def _write(self, parent: Frame, item: _Item) -> int:
        entry = item.entry
        temp = item.name if parent.direct else temp_name()
        mode = creation_mode(entry.record.permissions, self._umask(parent))
        out = os.open(temp, CREATE_FLAGS, 0o600 if mode is None else mode, dir_fd=parent.fd)
        try:
            try:
                # errors name the file, not the temporary name it is written under
                size, sha1 = self.fill(
                    entry, parent.context, item.payload, out, os.fsdecode(item.name), parent.fd
                )
                check_content(size, sha1, entry, self.label)
                self._attributes(out, entry, parent.new_owner, mode is not None)
            finally:
                os.close(out)
            if temp is not item.name:
                place(parent.fd, temp, item.name, force=self.force)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent.fd)
            raise
        return size

    def _copy(self, parent: Frame, items: list[_Item]) -> tuple[int, int]:
        """Copy ``items`` (all from one directory) in one C call; the files and bytes done.
        A file the repository cannot give is reported bad; an error writing TARGET is raised
        once the others are accounted for."""
        first = items[0].copy
        assert first is not None
        jobs = [FileCopy(*self._copy_fields(parent, item)) for item in items]
        return self._check_copies(items, copy_files(first.dir_fd, parent.fd, jobs))

    def _copy_run(self, run: _CopyRun) -> None:
        files = nbytes = 0
        try:
            if self.fatal is None:
                done = run.plan.copy()
                files = run.plan.count - len(done.failed)
                nbytes = done.bytes
                self._check_failed([(run.items[n], result) for n, result in done.failed])
                if run.rebuilds is not None and self.fatal is None:
                    rebuilt = run.rebuilds.rebuild()
                    files += run.rebuilds.count - len(rebuilt.failed)
                    nbytes += rebuilt.bytes
                    more, size = self._check_rebuilds(
                        [(*run.rebuilt[n], result) for n, result in rebuilt.failed]
                    )
                    files, nbytes = files + more, nbytes + size
        except BaseException as error:
            with self.lock:
                if self.fatal is None:
                    self.fatal = error
        finally:
            with self.lock:
                self.counts.files += files
                self.counts.bytes += nbytes
            self.progress.advance(run.count)
            for parent in run.frames:
                self._done(parent)
            self.slots.release()

    def _check_copies(self, items: list[_Item], results: list[Copied]) -> tuple[int, int]:
        """The files and bytes copied (of ``items``, whose copy_files ``results`` these are);
        a file the repository could not give is reported bad, and the first error writing
        TARGET is raised once the others are accounted for."""
        files = nbytes = 0
        failed: list[tuple[_Item, Copied]] = []
        for item, result in zip(items, results, strict=True):
            if result.status == CopyStatus.DONE:
                files += 1
                nbytes += result.size
                if item.first_of is not None:
                    item.first_of.ok = True
                    item.first_of.done.set()
                continue
            failed.append((item, result))
        self._check_failed(failed)
        return files, nbytes

    def _check_failed(self, failed: list[tuple[_Item, Copied]]) -> None:
        """Report each file copy_files could not copy: bad if the repository could not give
        it; the first error writing TARGET is raised once all are accounted for."""

        def report(item: _Item, result: Copied) -> None:
            if item.first_of is not None:
                item.first_of.done.set()
            self._copy_failed(item, result)

        self._each_accounted_for(partial(report, item, result) for item, result in failed)

    def _each_accounted_for(self, steps: Iterable[Callable[[], None]]) -> None:
        """Run every step: one that finds the repository wrong (CorruptRepository) reports its
        file bad; the first error writing TARGET (OSError) is raised once all have run."""
        failure: OSError | None = None
        for step in steps:
            try:
                step()
            except CorruptRepository as error:
                self.bad(str(error))
            except OSError as error:
                failure = failure or error
        if failure is not None:
            raise failure

    def _check_rebuilds(self, failed: list[tuple[Frame, _Item, Rebuilt]]) -> tuple[int, int]:
        """Each file a run could not rebuild in C: one the repository could not give as it
        should is rebuilt the general way (which says what is wrong, or streams one past the
        limit), the others are reported as copies are; the files and bytes done that way.
        The first error writing TARGET is raised once all are accounted for."""
        written: list[int] = []  # the size of each file rebuilt the general way

        def redo(parent: Frame, item: _Item, result: Rebuilt) -> None:
            if result.status.from_repository:
                written.append(self._write(parent, item))
            else:
                self._not_written(item, result.status, result.error, result.size, result.sha1)

        self._each_accounted_for(partial(redo, *failure) for failure in failed)
        return len(written), sum(written)

    def _copy_fields(self, parent: Frame, item: _Item) -> tuple[bytes, *_TargetFields]:
        """The :class:`FileCopy` of ``item`` (into ``parent``), as its fields in order."""
        assert item.copy is not None
        return (item.copy.name, *self._target_fields(parent, item))

    def _target_fields(self, parent: Frame, item: _Item) -> _TargetFields:
        """What a file copied or rebuilt in C is made as (into ``parent``): the fields of
        :class:`FileCopy` after the source's name, in order."""
        record = item.entry.record
        mode = creation_mode(record.permissions, self._umask(parent))
        owner = None
        if IS_ROOT:
            ids = self.owners.ids(record)
            owner = None if ids == parent.new_owner else ids
        mtime = None if record.mod_time is None else record.mod_time * 1_000_000_000
        return (
            item.name,
            0o600 if mode is None else mode,
            record.size,
            None if record.sha1_digest is None else bytes.fromhex(record.sha1_digest),
            owner,
            record.permissions if mode is None else None,
            None if mtime is None else (mtime, mtime),
        )

    def _umask(self, parent: Frame) -> int | None:
        """The umask files created in ``parent`` get their mode through, or None: a default
        ACL there decides instead."""
        return self.umask if parent.umask_applies else None

    def _copy_failed(self, item: _Item, result: Copied) -> None:
        """Raise what the general way would have for the step of ``result`` that failed."""
        copy = item.copy
        assert copy is not None
        source = copy.where.path / os.fsdecode(copy.name)
        status, code = result.status, result.error
        if status == CopyStatus.SOURCE_OPEN:
            raise cannot_open("mirror copy", source, code)
        if status == CopyStatus.SOURCE_NOT_REGULAR:
            raise not_regular("mirror copy", source)
        if status == CopyStatus.READ:
            raise CorruptRepository(f"read error: {os.strerror(code)}", path=source)
        self._not_written(item, status, code, result.size, result.sha1)

    def _not_written(self, item: _Item, status: int, code: int, size: int, sha1: str) -> None:
        """Raise what the general way would have for a file copied or rebuilt in C that
        failed its checks (``size`` and ``sha1``: of its bytes) or writing TARGET."""
        if status in (CopyStatus.SIZE, CopyStatus.SHA1):
            check_content(size, sha1, item.entry, self.label)
        name = os.fsdecode(item.name)
        if status == CopyStatus.WRITE:
            raise OSError(code, f"cannot write {name}: {os.strerror(code)}")
        code = code or errno.EIO
        raise OSError(code, os.strerror(code), name)

    def _attributes(
        self,
        fd: int,
        entry: Entry,
        owned_by: tuple[int, int] | None = None,
        mode_set: bool = False,
    ) -> None:
        apply_fd(
            fd,
            entry.record,
            entry.eas,
            entry.acl,
            self.owners,
            lambda: self.label(entry.index),
            self.warn,
            owned_by,
            mode_set,
        )

    def _link(self, parent: Frame, item: _Item) -> None:
        group = item.group
        assert group is not None
        group.done.wait()
        if not group.ok:
            raise CorruptRepository(
                "not restored: the first file of its hard-link group could not be restored",
                path=self.label(item.entry.index),
            )
        base_fd = self.top.fd if self.top is not None else parent.fd
        fds: list[int] = []
        try:
            at = base_fd
            for component in group.rel[:-1]:
                at = os.open(component, DIR_FLAGS, dir_fd=at)
                fds.append(at)
            temp = item.name if parent.direct else temp_name()
            os.link(group.rel[-1], temp, src_dir_fd=at, dst_dir_fd=parent.fd, follow_symlinks=False)
            if temp is item.name:
                return
            try:
                place(parent.fd, temp, item.name, force=self.force)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=parent.fd)
                raise
        finally:
            for fd in fds:
                close_quietly(fd)

    # ---- directories are finished after their contents ---------------------------------------

    def _done(self, frame: Frame) -> None:
        with self.lock:
            frame.pending -= 1
            if frame.popped and frame.pending == 0:
                self._finish(frame)

    def _finish(self, frame: Frame) -> None:
        """Called with the lock held, once nothing is pending in ``frame``."""
        try:
            if self.fatal is None and frame.entry is not None:
                if frame.names is not None and self.force:
                    for existing in map(os.fsencode, os.listdir(frame.fd)):
                        if existing not in frame.names:
                            remove_entry(frame.fd, existing)
                self._attributes(frame.fd, frame.entry, frame.created_owner)
                self.progress.advance(1)
        except BaseException as error:
            if self.fatal is None:
                self.fatal = error
        finally:
            self._close_frame(frame)
            if frame.parent is not None:
                self._done(frame.parent)

    def _close_frame(self, frame: Frame) -> None:
        if frame in self.frames:
            self.frames.discard(frame)
            close_quietly(frame.fd)
            self.close_context(frame.context)


def check_content(size: int, sha1: str, entry: Entry, label: Callable[[Index], str]) -> None:
    """Raise CorruptRepository unless the bytes written match the recorded size and SHA1."""
    record = entry.record
    if record.size is not None and size > record.size:
        # the writing stopped there: ``size`` is only what came before it did
        raise CorruptRepository(
            f"restored more than the {record.size} bytes the metadata records "
            "(an increment is missing or damaged)",
            path=label(entry.index),
        )
    if record.size is not None and size != record.size:
        raise CorruptRepository(
            f"restored {size} bytes but the metadata records {record.size} "
            "(an increment is missing or damaged)",
            path=label(entry.index),
        )
    if record.sha1_digest is not None and sha1 != record.sha1_digest:
        raise CorruptRepository(
            f"restored content has SHA1 {sha1}, the metadata records "
            f"{record.sha1_digest} (an increment is missing or damaged)",
            path=label(entry.index),
        )
