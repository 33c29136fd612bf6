"""The repository side of a backup: compare, increment, mirror, and record the session.

:class:`RepositorySide` consumes the source side's messages (:mod:`rdb_mirror.protocol`) in
metadata order, merges them with the previous session's metadata (and EA/ACL records), and
for every entry decides:

- unchanged (same record by stat, same EAs/ACL): nothing is read or written; the record
  (with its stored SHA1) goes to the new snapshot;
- a regular file that is new or whose data changed (type, size, mtime, hard-link identity):
  its content is *requested* at once (no waiting), staged under a temp name as it arrives,
  and, when the entry's turn comes, a pool job writes the reverse increment, then gives the
  staged file its attributes and renames it over the mirror copy;
- anything else (deleted, type changed, special files, directories, attribute-only
  changes): handled in order on this thread, always increment first, mirror second.

Entries are processed in order, with up to a window of them waiting for their content, so
reading (source pool), delta/compression (increment pool) and walking overlap. Directory
attributes are set last, deepest first. A failure on one file is logged (``error_log``) and
that file keeps its previous state, increment and record included.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, Generic, NamedTuple, TypeVar

from rdb_clikit.protocol import Progress
from rdb_fastio import NewFile, write_new_files
from rdb_fastio.increment import DeltaBatch, DeltaStatus, set_times
from rdb_format.atomic import sync_filesystems
from rdb_format.eas_acls import ACLEntry, ACLRecord, EARecord
from rdb_format.errors import ProtocolError, RdbError
from rdb_format.layout import Layout
from rdb_format.metadata import RawRecord, Record, path_key
from rdb_format.quoting import LONG_NAME_MARGIN, Quoting, allocate_long_name, name_max
from rdb_increment.writer import (
    PARALLEL_DELTA,
    IncrementWriter,
    PlannedDelta,
    PlannedMarker,
    WrittenIncrement,
    creation_error,
)
from rdb_mirror import testhooks
from rdb_mirror.datafiles import AclFile, EaFile, ErrorLog, FileStatistics, MetadataFile, temp_path
from rdb_mirror.deltas import DELTA_MIN, OverSize, delta_limit, patch_into, send_signature
from rdb_mirror.durable import DurableOrder, link_descriptor
from rdb_mirror.fsmeta import (
    Capabilities,
    EAs,
    Index,
    apply_acl,
    apply_attributes,
    apply_eas,
    has_default_acl,
    render,
)
from rdb_mirror.protocol import (
    Batch,
    Chunk,
    Content,
    ContentEnd,
    ContentFailed,
    ContentRequest,
    Credit,
    Entry,
    Finish,
    LocalFile,
    Problem,
    Receiver,
    RepositoryMessage,
    Sender,
    SourceMessage,
    StatKey,
    WalkDone,
    stat_key,
)
from rdb_mirror.release import Releaser
from rdb_mirror.workers import Cancelled, Job, Workers

__all__ = ["Counters", "OldState", "RepositorySide"]

T = TypeVar("T")

#: Small contents are kept in memory until their pool job writes the staged copy (so the
#: creation and write of the temp file happen on the pool, not on the ordering thread), up to
#: this many bytes in all; beyond it they are staged at once, as large files are.
HELD_BYTES = 16 << 20
HELD_FILE = 256 << 10
#: New files written by one pool job (rdb_fastio).
STAGE_BATCH = 64
#: Small changed files held in memory written by one pool job: their staged copies in one C
#: call, then their increments in another (rdb_fastio.increment), with the GIL released.
DELTA_BATCH = 32
#: ``.dir`` markers created per pool job (one C call): a release's incremental changes the
#: mtime of nearly every directory (django: 3,232 markers, five system calls each)
MARKER_BATCH = 64
#: Attribute-only changes whose times alone are set, per pool job (one C call): a release
#: unpacked again changes the mtime of nearly every file (django: 5,500 of them)
TIMES_BATCH = 128
#: A batch at the head of the outputs is handed over unfilled once this many outputs wait
#: behind it (few changed files among many unchanged: it would fill only near the end).
EARLY_HAND_OVER = 1024
_STAGE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
CHANGED_WHILE_READ = "changed while being read; not updated"
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP})


# a large file is copied this much at a time, each part counted as written (early writeback)
KERNEL_COPY_PART = 64 << 20


def _copy_in_kernel(source: int, target: int, progress: Callable[[int], None]) -> int:
    """Copy the open file ``source`` to ``target`` with ``copy_file_range`` (through user
    space where the kernel cannot, e.g. across file systems on old kernels); bytes copied.
    ``progress`` is told of each part copied in the kernel."""
    copied = 0
    try:
        while done := os.copy_file_range(source, target, KERNEL_COPY_PART, copied):
            copied += done
            progress(done)
    except OSError as error:
        if error.errno not in _NO_KERNEL_COPY:
            raise
        while data := os.pread(source, 1 << 20, copied):
            view = memoryview(data)
            while view:
                written = os.pwrite(target, view, copied)
                copied += written
                view = view[written:]
    return copied


class _KernelCopy:
    """A large requested file copied into its staged file on the pool (:class:`LocalFile`):
    the job owns both descriptors and closes them. The source side's SHA1 is of the bytes it
    read; the copy may end later, so the file must still have ``expected`` (its stat key)
    when the copy is done, else the copy may hold other bytes than those hashed."""

    __slots__ = ("_expected", "_fds", "_progress", "job")

    def __init__(
        self,
        pool: Workers,
        source: int,
        target: int,
        expected: StatKey,
        progress: Callable[[int], None],
    ) -> None:
        self._fds = [source, target]
        self._expected = expected
        self._progress = progress
        self.job = pool.submit(self._run)

    def _run(self) -> int:
        try:
            copied = _copy_in_kernel(self._fds[0], self._fds[1], self._progress)
            if stat_key(os.fstat(self._fds[0])) != self._expected:
                raise OSError(errno.ESTALE, CHANGED_WHILE_READ)
            return copied
        finally:
            self._close()

    def _close(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def wait(self) -> int:
        """The bytes copied, once done (OSError if the copy failed)."""
        try:
            return self.job.result()
        except Cancelled:
            self._close()  # the job never ran
            raise OSError(errno.ECANCELED, "the copy was cancelled") from None

    def drop(self) -> None:
        """Not needed any more: a copy still running closes its descriptors when it ends."""
        if self.job.done():
            with contextlib.suppress(OSError):
                self.wait()


class _Peek(Generic[T]):
    """A sorted iterator read up to a key; the next item's key is computed once."""

    def __init__(self, items: Iterator[T] | None, key: Callable[[T], Index]) -> None:
        self._items = items
        self._key = key
        self._next: T | None = None
        self.next_key: Index | None = None  # the next item's (None: no more items)
        self._advance()

    def _advance(self) -> None:
        items = self._items
        item = None if items is None else next(items, None)
        self._next = item
        if item is None:
            self._items = None
            self.next_key = None
        else:
            self.next_key = self._key(item)

    def before(self, key: Index | None) -> Iterator[T]:
        """Items with a key below ``key`` (all remaining ones for None)."""
        while self.next_key is not None and (key is None or self.next_key < key):
            item = self._next
            assert item is not None
            self._advance()
            yield item

    def take(self, key: Index) -> T | None:
        """The item at exactly ``key`` (skipping smaller ones), if any."""
        found = self.next_key
        if found is None:  # done (an old session without EAs or ACLs: every entry)
            return None
        if found < key:  # rare: skip what is below (entries gone from the source)
            for _ in self.before(key):
                pass
            found = self.next_key
        if found == key:
            item = self._next
            self._advance()
            return item
        return None


@dataclass
class OldState:
    """The previous session: its time and streams of its records (None: a first backup).

    ``records`` are read with their stored text (:func:`rdb_format.metadata.iter_raw_records`)
    so that an unchanged entry's record is copied, not formatted again."""

    time: int
    records: Iterator[RawRecord]
    eas: Iterator[EARecord] | None = None
    acls: Iterator[ACLRecord] | None = None


@dataclass
class Counters:
    """The numbers of session_statistics (filled as entries are processed)."""

    source_files: int = 0
    source_file_size: int = 0
    mirror_files: int = 0
    mirror_file_size: int = 0
    new_files: int = 0
    new_file_size: int = 0
    deleted_files: int = 0
    deleted_file_size: int = 0
    changed_files: int = 0
    changed_source_size: int = 0
    changed_mirror_size: int = 0
    increment_files: int = 0
    increment_file_size: int = 0
    errors: int = 0
    bytes_read: int = 0
    # bytes large files have been copied in the kernel so far, counted as the copies go, for
    # the early writeback (pool threads: an update lost between two only delays an early sync)
    kernel_copied: int = 0


@dataclass
class _Item:
    index: Index
    entry: Entry | None
    old: Record | None
    old_eas: EAs = ()
    old_acl: tuple[ACLEntry, ...] = ()
    keep: bool = False
    request: int | None = None
    staged: Path | None = None
    data: bytes | None = None  # small content held in memory until its pool job stages it
    stream: BinaryIO | None = None
    state: str = "none"  # none, waiting, ready, failed
    sha1: str | None = None
    failure: str | None = None
    secondary: bool = False  # a hard link to an earlier entry of this session
    old_raw: RawRecord | None = None  # ``old`` as read, with its stored text
    delta: bool = False  # the staged file is a delta against the old mirror copy
    copy: _KernelCopy | None = None  # a local file being copied into ``staged`` (LocalFile)
    size: int = 0  # the new content's size (as the source read it)
    received: int = 0  # the bytes of Chunks received for it


class _Same:
    """An entry found unchanged on arrival (not a directory, not hard-linked): its previous
    record, EAs and ACL go to the new session's files as they are; nothing else is done."""

    __slots__ = ("acl", "eas", "index", "raw")
    state = "ready"

    def __init__(self, index: Index, raw: RawRecord, eas: EAs, acl: tuple[ACLEntry, ...]):
        self.index = index
        self.raw = raw
        self.eas = eas
        self.acl = acl


@dataclass
class _Group:
    """A hard-link group of this session: its first entry's mirror copy."""

    primary: Index
    mirror: Path | None = None
    job: Job[_Emit] | None = None
    ok: bool = True
    seen: int = 0
    nlink: int = 0


@dataclass
class _Emit:
    """What an entry contributes to the session's files, in order."""

    index: Index
    record: Record | None
    eas: EAs = ()
    acl: tuple[ACLEntry, ...] = ()
    changed: bool = False
    source_size: int | None = None
    mirror_size: int | None = None
    increments: list[WrittenIncrement] = field(default_factory=list)
    kind: str = "unchanged"  # unchanged, new, deleted, changed, failed, kept
    error: tuple[str, str] | None = None  # (error_log type, message)


class _StageBatch:
    """Files held in memory, written together by one pool job, ``write`` (``job``, None until
    the batch is handed over); ``deltas``: their increments, for a batch of changed files."""

    __slots__ = ("deltas", "files", "job", "write")

    def __init__(
        self, write: Callable[[_StageBatch], None], deltas: DeltaBatch | None = None
    ) -> None:
        self.files: list[_Staged] = []
        self.job: Job[None] | None = None
        self.write = write
        self.deltas = deltas


class _Staged:
    """An output slot for one file of a :class:`_StageBatch`: its :class:`_Emit` once the
    batch is written (``done`` and ``result`` as a :class:`Job`'s)."""

    __slots__ = (
        "acl",
        "batch",
        "eas",
        "emit",
        "item",
        "marks",
        "missing",
        "planned",
        "record",
        "staged",
    )

    def __init__(
        self,
        batch: _StageBatch,
        item: _Item,
        record: Record,
        eas: EAs,
        acl: tuple[ACLEntry, ...],
        marks: list[WrittenIncrement],
    ) -> None:
        self.batch = batch
        self.item = item
        self.record = record
        self.eas = eas
        self.acl = acl
        self.marks = marks
        self.emit: _Emit | None = None
        self.planned: PlannedDelta | None = None  # a changed file's increment
        self.missing: PlannedMarker | None = None  # a new file's increment (not a first backup)
        self.staged: bytes = b""  # where a changed file is staged

    def done(self) -> bool:
        job = self.batch.job
        return job is not None and job.done()

    def result(self) -> _Emit:
        job = self.batch.job
        assert job is not None, "a batch is handed over before its results are awaited"
        job.result()
        assert self.emit is not None
        return self.emit


def _increment_jobs(new: Record, old: Record | None) -> int | None:
    """Threads for one increment's signature and delta: every CPU (None) for a large file,
    one for the many small ones (which run side by side on the pool)."""
    size = max(new.size or 0, old.size or 0 if old is not None else 0)
    return None if size >= PARALLEL_DELTA else 1


def _raw_key(raw: RawRecord) -> Index:
    return raw.key


def _size_of(record: Record | None) -> int | None:
    if record is None:
        return None
    return record.size or 0 if record.type == "reg" else 0


def _drop_own_increment(item: _Item, increments: list[WrittenIncrement]) -> None:
    """After a failed update: remove the increment just written for ``item`` itself (its
    parents' ``.dir`` marks stay: they are true whatever happens to the entry)."""
    if increments and increments[-1].index == item.index:
        with contextlib.suppress(OSError):
            increments.pop().path.unlink()


def _taken_back(target: bytes, marker: PlannedMarker, failure: OSError) -> OSError:
    """``failure``, after removing the new file ``target`` again from the mirror: its
    ``.missing`` ``marker`` could not be made, and a restore of the previous session would
    show the file without it. Raises (the session ends) if the file cannot be removed."""
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise creation_error(marker.increment.path, failure) from error
    return failure


def _named(index: Index) -> str:
    """``index`` quoted for a one-line message (``'dir/file'``)."""
    return repr(os.fsdecode(render(index)))


def _failure_text(failure: OSError | RdbError) -> str:
    return str(failure) if isinstance(failure, RdbError) else f"{failure.strerror}"


def _updated(
    item: _Item,
    record: Record,
    eas: EAs,
    acl: tuple[ACLEntry, ...],
    increments: list[WrittenIncrement],
    error: tuple[str, str] | None = None,
) -> _Emit:
    """A new or changed entry, written to the mirror."""
    return _Emit(
        item.index,
        record,
        eas,
        acl,
        changed=True,
        source_size=_size_of(record),
        mirror_size=_size_of(item.old),
        increments=increments,
        kind="new" if item.old is None else "changed",
        error=error,
    )


def _old_kept(item: _Item, kind: str, error: tuple[str, str] | None = None) -> _Emit:
    """``item``'s old record, kept as it was (unchanged, kept, or after a failure)."""
    return _Emit(
        item.index,
        item.old,
        item.old_eas,
        item.old_acl,
        changed=False,
        source_size=_size_of(item.old),
        mirror_size=_size_of(item.old),
        kind=kind,
        error=error,
    )


def _deleted(old: Record, index: Index, increments: list[WrittenIncrement]) -> _Emit:
    """An entry deleted from the mirror (``old``: its record), its increments written."""
    return _Emit(
        index, None, changed=True, mirror_size=_size_of(old), increments=increments, kind="deleted"
    )


def _kept_after_failure(
    item: _Item, record: Record, message: str, increments: list[WrittenIncrement]
) -> _Emit:
    """An update that failed: the old record (if any) stays, and error_log says why."""
    old = item.old
    if old is None:
        return _Emit(
            item.index,
            None,
            source_size=_size_of(record),
            increments=increments,
            kind="failed",
            error=("UpdateError", message),
        )
    return _Emit(
        item.index,
        old,
        item.old_eas,
        item.old_acl,
        source_size=_size_of(record),
        mirror_size=_size_of(old),
        increments=increments,
        kind="failed",
        error=("UpdateError", message),
    )


def _identity(record: Record) -> tuple[int | None, int | None, int | None]:
    if record.has_hard_link_triple:
        return (record.num_hard_links, record.inode, record.device_loc)
    return (None, None, None)


def _same_content(old: Record | None, new: Record, sha1: str | None) -> bool:
    """Whether content just read (``sha1``) is the old mirror copy's, in the same hard-link
    identity: then the change was to the metadata only."""
    return (
        old is not None
        and old.type == "reg"
        and sha1 is not None
        and old.sha1_digest == sha1
        and old.size == new.size
        and _identity(old) == _identity(new)
    )


def _data_changed(old: Record, new: Record) -> bool:
    """Whether the mirror copy's data must be replaced (stat only)."""
    if old.type != new.type:
        return True
    if new.type == "reg":
        return (
            old.size != new.size or old.mod_time != new.mod_time or _identity(old) != _identity(new)
        )
    if new.type == "sym":
        return old.sym_data != new.sym_data
    if new.type == "dev":
        return old.device_num != new.device_num
    return False


class RepositorySide:
    """One session's repository half. Use :meth:`run` once."""

    def __init__(
        self,
        layout: Layout,
        quoting: Quoting,
        *,
        old: OldState | None,
        writer: IncrementWriter | None,
        metadata: MetadataFile,
        diff_file: MetadataFile | None = None,
        ea_file: EaFile | None,
        acl_file: AclFile | None,
        file_stats: FileStatistics | None,
        errors: ErrorLog,
        capabilities: Capabilities,
        progress: Progress,
        workers: int = 4,
        window: int = 4096,
        deltas: bool = False,
        counters: Counters | None = None,
        sync: Callable[..., object] = sync_filesystems,
    ) -> None:
        self.layout = layout
        self._root = os.fsencode(layout.root)
        self.deltas = deltas  # changed files as deltas against the old copy (remote channels)
        self.quoting = quoting
        self.old = old
        self.writer = writer
        self.metadata = metadata
        self.diff_file = diff_file
        self.ea_file = ea_file
        self.acl_file = acl_file
        self.file_stats = file_stats
        self.errors = errors
        self.caps = capabilities
        self.progress = progress
        self.window = window
        self.counters = Counters() if counters is None else counters
        self._old_records = _Peek(old.records if old else None, _raw_key)
        self._old_eas = _Peek(old.eas if old else None, lambda r: path_key(r.path))
        self._old_acls = _Peek(old.acls if old else None, lambda r: path_key(r.path))
        # The previous session kept no EAs (--no-eas) or no ACLs and this one does: a mirror
        # copy may still carry one the source has dropped since, and the old records cannot
        # tell, so every unchanged entry's are set again, this once (docs/rdb-mirror.md).
        self._resync_eas = old is not None and old.eas is None and ea_file is not None
        self._resync_acls = old is not None and old.acls is None and acl_file is not None
        self._pending: deque[_Item | _Same] = deque()
        self._requests: dict[int, _Item] = {}
        self._next_request = 0
        self._outputs: deque[_Emit | Job[_Emit] | _Same | _Staged] = deque()
        self._stage_batch: _StageBatch | None = None
        self._delta_batch: _StageBatch | None = None
        self._times_batch: _StageBatch | None = None
        self._olds: deque[RawRecord | None] = deque()  # each output's previous record
        self._pool = Workers(workers, "rdb-mirror")
        self._release = Releaser()
        # mirror files with data are replaced or removed only after a sync (power loss)
        self._durable = DurableOrder((layout.root, layout.data_dir), self._release, sync)
        self._markers: list[PlannedMarker] = []  # planned, for the next marker job
        self._marker_jobs: deque[Job[None]] = deque()
        self._groups: dict[tuple[int, int], _Group] = {}
        self._unlisted: list[Index] = []
        self._old_dirs: list[Index] = []  # directories at the previous session on the path
        self._long_dirs: dict[Index, Record] = {}  # old directories with a long name (rare)
        self._long_parent: tuple[Index | None, bool] = (None, False)  # _under_long_name's last
        self._marked: set[Index] = set()
        # old directories whose mode denies their owner writing or searching (0555, 0500...):
        # opened (u+rwx) before anything in them changes, their mode set back at the end
        self._closed: dict[Index, Record] = {}
        self._opened: set[Index] = set()
        self._deferred: list[tuple[Index, Callable[[], None]]] = []
        self._deleting: deque[Job[_Emit]] = deque()  # deleted files' jobs (see _end_subtrees)
        self._dirs: dict[Index, _DirState] = {}
        self._touched: set[Index] = set()
        self._dirs_changed: set[Index] = set()
        self._credit = 0
        self._name_max: int | None = None
        self._short_name: int | None = None  # names up to this length never need a long name
        self._held = 0
        self._held_lock = threading.Lock()
        self._staging_acl: bool | None = None  # rdiff-backup-data has a default ACL
        self.walk_error: str | None = None

    @property
    def mirror_untouched(self) -> bool:
        """After :meth:`run`: nothing in the mirror or the increments was written or removed
        (every entry unchanged, or kept after a failure that cleaned up after itself)."""
        c = self.counters
        return not (
            self._touched
            or self._dirs_changed
            or c.new_files
            or c.changed_files
            or c.deleted_files
            or c.increment_files
        )

    # ---- paths ---------------------------------------------------------------------------

    def mirror_path(self, index: Index, record: Record | None = None) -> Path:
        if record is not None and record.alternate_mirror_name is not None:
            return self.layout.long_filename_dir / str(record.alternate_mirror_name)
        parts = [os.fsdecode(p) for p in self.quoting.quote_path(index)]
        return self.layout.root.joinpath(*parts)

    def _bpath(self, index: Index, record: Record | None = None) -> bytes:
        """:meth:`mirror_path` as bytes, joined without pathlib (a few µs less per file)."""
        if record is not None and record.alternate_mirror_name is not None:
            return os.fsencode(self.mirror_path(index, record))
        if not index:
            return self._root
        return os.path.join(self._root, *self.quoting.quote_path(index))

    # ---- the main loop -------------------------------------------------------------------

    def run(self, inbox: Receiver[SourceMessage], out: Sender[RepositoryMessage]) -> None:
        """Consume the source side's messages until the walk is done and all is written."""
        walk_done = False
        try:
            while not (walk_done and not self._pending):
                message = inbox.receive()
                if isinstance(message, Batch):
                    for each in message.messages:
                        if isinstance(each, Entry):
                            self._arrive(each, out)
                        else:
                            self._log(each.kind, each.index, each.message)
                elif isinstance(message, Entry):
                    self._arrive(message, out)
                elif isinstance(message, Content):
                    self._content(message)
                elif isinstance(message, Chunk):
                    self._chunk(message)
                elif isinstance(message, LocalFile):
                    self._local_file(message)
                elif isinstance(message, ContentEnd):
                    self._content_end(message)
                elif isinstance(message, ContentFailed):
                    self._content_failed(message)
                elif isinstance(message, Problem):
                    self._log(message.kind, message.index, message.message)
                elif isinstance(message, WalkDone):
                    walk_done = True
                    if message.error is not None:
                        self.walk_error = message.error
                        raise RdbError(f"the walk of the source failed: {message.error}")
                    self._old_only(None)
                self._advance(out)
            out.send(Finish())
            self._end_subtrees(None)
            self._submit_markers()  # made on the pool while the rest is written
            self._drain(block=True)
            self._finish_markers()
            self._durable.flush()  # before the directories' times: it writes in them
            # every held old file freed before them too: on NFS the last close of a file
            # renamed over or unlinked while open removes its ".nfsXXXX" name only then
            self._release.close()
            self._fix_directories()
        finally:
            self._pool.shutdown(cancel=True)
            try:
                self._durable.close()  # after the pool, whose jobs queue steps
            finally:
                self._release.close()  # after both: they replace files too
            for item in self._requests.values():
                self._discard(item)

    def _kernel_copied(self, size: int) -> None:
        self.counters.kernel_copied += size

    def _advance(self, out: Sender[RepositoryMessage]) -> None:
        while self._pending and self._pending[0].state != "waiting":
            item = self._pending.popleft()
            if type(item) is _Same:
                self._credit += 1
                self._process_same(item)
            else:
                assert isinstance(item, _Item)
                if item.entry is not None:
                    self._credit += 1
                self._process(item)
            self.progress.advance(1)
            testhooks.file_done()
        if self._credit >= 256:
            out.send(Credit(self._credit))
            self._credit = 0
        self._durable.flush_if_due()
        self._drain(block=len(self._outputs) > 4 * self.window)

    # ---- arrival: merge with the old state, ask for content ----------------------------

    def _old_only(self, key: Index | None) -> None:
        for raw in self._old_records.before(key):
            index = raw.key
            record = raw.record
            keep = any(index[: len(p)] == p for p in self._unlisted)
            eas = self._old_eas.take(index)
            acls = self._old_acls.take(index)
            self._pending.append(
                _Item(
                    index,
                    None,
                    record,
                    eas.attributes if eas else (),
                    acls.entries if acls else (),
                    keep=keep,
                    old_raw=raw,
                )
            )

    def _arrive(self, entry: Entry, out: Sender[RepositoryMessage]) -> None:
        index = entry.index
        below = self._old_records.next_key
        if below is not None and below < index:  # old entries gone from the source
            self._old_only(index)
        old_raw = self._old_records.take(index)
        old_eas = self._old_eas.take(index)
        old_acl = self._old_acls.take(index)
        eas = old_eas.attributes if old_eas else ()
        acl = old_acl.entries if old_acl else ()
        if old_raw is not None and self._unchanged(entry, old_raw.record, eas, acl):
            if self._resync_eas or self._resync_acls:
                self._resync_extras(entry, old_raw.record)
            self._pending.append(_Same(index, old_raw, eas, acl))
            return
        old = old_raw.record if old_raw is not None else None
        item = _Item(index, entry, old, eas, acl, old_raw=old_raw)
        if entry.unlisted:
            self._unlisted.append(index)
        new = entry.record
        if new.type == "reg":
            need = old is None or _data_changed(old, new) or old.sha1_digest is None
            if new.has_hard_link_triple:
                assert new.device_loc is not None and new.inode is not None
                key = (new.device_loc, new.inode)
                group = self._groups.get(key)
                if group is not None:
                    item.secondary = True
                    need = False
                else:
                    group = self._groups[key] = _Group(index, nlink=new.num_hard_links or 0)
            if need:
                self._request(item, out)
        self._pending.append(item)

    def _unchanged(self, entry: Entry, old: Record, eas: EAs, acl: tuple[ACLEntry, ...]) -> bool:
        """Whether ``entry`` is the same as ``old`` with nothing to do: the common case, decided
        here in a few comparisons. False sends it the general way (which may still find it
        unchanged: directories, hard links, long names are decided there)."""
        new = entry.record
        kind = new.type
        if kind == "dir" or entry.unlisted:
            return False
        if kind == "reg":
            # the stat fields before and after the SHA1 (which only the old record has)
            if (
                new.num_hard_links is not None
                or old.sha1_digest is None
                or new[1:8] != old[1:8]
                or new[9:] != old[9:]
            ):
                return False
        elif new[1:] != old[1:]:
            return False
        if (entry.eas is not None and entry.eas != eas) or (
            entry.acl is not None and entry.acl != acl
        ):
            return False
        short = self._short_name
        if short is None:
            if self._name_max is None:
                self._name_max = name_max(self.layout.increments_dir)
            # a quoted byte takes 4 (";065"), plus a possible escaped trailing character
            short = self._short_name = (self._name_max - LONG_NAME_MARGIN) // 4 - 1
        return len(entry.index[-1]) <= short

    def _request(self, item: _Item, out: Sender[RepositoryMessage]) -> None:
        entry = item.entry
        assert entry is not None
        number = self._next_request
        self._next_request += 1
        item.request = number
        item.state = "waiting"
        self._requests[number] = item
        old = item.old
        if (
            self.deltas
            and old is not None
            and old.type == "reg"
            and (old.size or 0) >= DELTA_MIN
            and (entry.record.size or 0) >= DELTA_MIN
        ):
            item.delta = True
            basis = self.mirror_path(item.index, old)
            self._pool.submit(send_signature, basis, number, item.index, entry.stat_key, out)
            return
        out.send(ContentRequest(number, item.index, entry.stat_key))

    def _answered(self, request: int, *, last: bool) -> _Item:
        """The item waiting for ``request`` (ProtocolError for a number never issued)."""
        item = self._requests.pop(request) if last else self._requests.get(request)
        if item is None:
            raise ProtocolError(f"an answer to request {request}, which is not pending")
        return item

    def _chunk(self, message: Chunk) -> None:
        item = self._answered(message.request, last=False)
        item.received += len(message.data)
        if item.delta and item.entry is not None:
            size = item.entry.stat_key[0]
            if item.received > delta_limit(size):
                # a source encodes at most the announced size (a file that grows is failed
                # there): a longer delta is endless or broken; nothing past it is staged
                raise ProtocolError(
                    f"{_named(item.index)}: a delta of more than {delta_limit(size)} bytes "
                    f"for a file of {size} bytes"
                )
        elif item.entry is not None and item.received > item.entry.stat_key[0]:
            # the file grew while read (ContentFailed follows; a hostile source's ContentEnd
            # is refused): nothing more is staged, so a source cannot fill the disk
            item.failure = item.failure or CHANGED_WHILE_READ
        if item.failure is not None:
            return
        if item.stream is None:
            item.staged = temp_path(self.layout.data_dir)
            item.stream = open(item.staged, "xb")  # noqa: SIM115 - closed at ContentEnd
        try:
            item.stream.write(message.data)
        except OSError as error:
            item.failure = f"cannot stage: {error.strerror}"

    def _local_file(self, message: LocalFile) -> None:
        """A local source's large file: copy it into a staged file on the pool, in the
        kernel, while the source side hashes it (ContentEnd follows)."""
        try:
            item = self._answered(message.request, last=False)
            item.staged = temp_path(self.layout.data_dir)
            target = os.open(item.staged, _STAGE_FLAGS, 0o600)
        except OSError as error:
            os.close(message.fd)
            item.staged = None
            item.failure = f"cannot stage: {error.strerror}"
            return
        except BaseException:
            os.close(message.fd)
            raise
        assert item.entry is not None
        item.copy = _KernelCopy(
            self._pool, message.fd, target, item.entry.stat_key, self._kernel_copied
        )

    def _content_end(self, message: ContentEnd) -> None:
        item = self._answered(message.request, last=True)
        if item.delta and item.entry is not None and message.size != item.entry.stat_key[0]:
            # a source ends a delta only for a file of the size listed (else ContentFailed)
            raise ProtocolError(
                f"{_named(item.index)}: a delta for {message.size} bytes, "
                f"listed with {item.entry.stat_key[0]}"
            )
        if not item.delta and item.copy is None and item.received != message.size:
            raise ProtocolError(
                f"request {message.request} answered with {item.received} bytes, "
                f"its end says {message.size}"
            )
        item.size = message.size
        if item.stream is None and item.copy is None and item.failure is None:
            item.staged = temp_path(self.layout.data_dir)
            item.stream = open(item.staged, "xb")  # noqa: SIM115
        if item.stream is not None:
            item.stream.close()
            item.stream = None
        self.counters.bytes_read += message.size
        if item.failure is not None:
            self._discard(item)
            item.state = "failed"
            return
        item.sha1 = message.sha1
        item.state = "ready"

    def _content(self, message: Content) -> None:
        item = self._answered(message.request, last=True)
        item.delta = False  # whole content is an answer to a delta request too
        data = message.data
        if item.entry is not None and len(data) != item.entry.stat_key[0]:
            # a source sends one Content only for a file of the size listed (else it fails)
            raise ProtocolError(
                f"{_named(item.index)}: {len(data)} bytes of content for a file listed "
                f"with {item.entry.stat_key[0]}"
            )
        self.counters.bytes_read += len(data)
        item.sha1 = message.sha1
        size = len(data)
        held = False
        if size <= HELD_FILE:
            with self._held_lock:
                if self._held + size <= HELD_BYTES:
                    self._held += size
                    held = True
        if held:
            item.data = data
        else:
            try:
                item.staged = self._stage_bytes(data)
            except OSError as error:
                item.failure = f"cannot stage: {error.strerror}"
                item.state = "failed"
                return
        item.state = "ready"

    def _stage_bytes(self, data: bytes, finish: Callable[[int], None] | None = None) -> Path:
        """Write ``data`` to a new temp file in rdiff-backup-data; ``finish`` gets its
        descriptor after the data (to set attributes before it is closed)."""
        path = temp_path(self.layout.data_dir)
        fd = os.open(path, _STAGE_FLAGS, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if finish is not None:
                finish(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        os.close(fd)
        return path

    def _materialise(self, item: _Item, finish: Callable[[int], None] | None = None) -> Path:
        """The staged copy of ``item`` on disk (written now if its content is held, patched
        now if a delta was staged, once copied if a local copy runs; ``finish`` as for
        :meth:`_stage_bytes`)."""
        if item.copy is not None:
            copy, item.copy = item.copy, None
            if copy.wait() != item.size:
                raise OSError(errno.ESTALE, CHANGED_WHILE_READ)
        if item.delta:
            assert item.staged is not None and item.sha1 is not None
            delta, target = item.staged, temp_path(self.layout.data_dir)
            item.staged, item.delta = None, False
            try:
                patch_into(
                    self.mirror_path(item.index, item.old), delta, target, item.size, item.sha1
                )
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
                raise
            finally:
                delta.unlink()
            item.staged = target
        if item.staged is None:
            data = item.data
            assert data is not None
            item.data = None
            try:
                item.staged = self._stage_bytes(data, finish)
            finally:
                with self._held_lock:
                    self._held -= len(data)
        return item.staged

    def _content_failed(self, message: ContentFailed) -> None:
        item = self._answered(message.request, last=True)
        self._discard(item)
        item.failure = message.message
        item.state = "failed"

    def _discard(self, item: _Item) -> None:
        if item.copy is not None:
            item.copy.drop()
            item.copy = None
        if item.data is not None:
            with self._held_lock:
                self._held -= len(item.data)
            item.data = None
        if item.stream is not None:
            with contextlib.suppress(OSError):
                item.stream.close()
            item.stream = None
        if item.staged is not None:
            with contextlib.suppress(FileNotFoundError):
                item.staged.unlink()
            item.staged = None

    # ---- output, in order --------------------------------------------------------------

    def _drain(self, *, block: bool) -> None:
        while self._marker_jobs and self._marker_jobs[0].done():
            self._marker_jobs.popleft().result()  # a marker that cannot be made ends the session
        while self._outputs:
            head = self._outputs[0]
            if type(head) is _Same:
                self._outputs.popleft()
                self._olds.popleft()
                self._write_same(head)
                continue
            if isinstance(head, Job | _Staged):
                if not block and not head.done() and len(self._outputs) <= 4 * self.window:
                    if (
                        type(head) is _Staged
                        and head.batch.job is None
                        and len(self._outputs) > EARLY_HAND_OVER
                    ):
                        # a batch still filling holds back what came after it: written now,
                        # on the pool, not in one go at the end of the walk
                        self._hand_over(head.batch)
                    return
                if type(head) is _Staged and head.batch.job is None:
                    self._hand_over(head.batch)
                emit = head.result()
            else:
                assert isinstance(head, _Emit)
                emit = head
            self._outputs.popleft()
            self._write(emit, self._olds.popleft())

    def _write_same(self, same: _Same) -> None:
        """:meth:`_write` for an entry unchanged on arrival: the old text is copied."""
        raw = same.raw
        record = raw.record
        self.metadata.add_raw(raw)
        if same.eas and self.ea_file is not None:
            self.ea_file.add(EARecord(record.path, same.eas))
        if same.acl and self.acl_file is not None and record.type != "sym":
            self.acl_file.add(ACLRecord(record.path, same.acl))
        size = record.size or 0 if record.type == "reg" else 0
        c = self.counters
        c.source_files += 1
        c.source_file_size += size
        c.mirror_files += 1
        c.mirror_file_size += size
        if self.file_stats is not None:
            self.file_stats.add_unchanged(record.path, size)

    def _write(self, emit: _Emit, old_raw: RawRecord | None) -> None:
        c = self.counters
        record = emit.record
        old = old_raw.record if old_raw is not None else None
        if self.diff_file is not None:
            if old_raw is None:
                if record is not None:
                    self.diff_file.add(Record.missing(record.path))
            elif record != old:
                self.diff_file.add_raw(old_raw)  # as stored: not formatted again
        if record is not None:
            if old_raw is not None and record is old:
                self.metadata.add_raw(old_raw)  # the stored text, not formatted again
            else:
                self.metadata.add(record)
            path = record.path
            if self.ea_file is not None and emit.eas:
                self.ea_file.add(EARecord(path, emit.eas))
            if self.acl_file is not None and emit.acl and record.type != "sym":
                self.acl_file.add(ACLRecord(path, emit.acl))
            if emit.kind != "deleted":
                c.source_files += 1
                c.source_file_size += record.size or 0 if record.type == "reg" else 0
        if emit.kind in ("unchanged", "changed", "deleted", "failed", "kept") and (
            emit.mirror_size is not None
        ):
            c.mirror_files += 1
            c.mirror_file_size += emit.mirror_size
        if emit.kind == "new":
            c.new_files += 1
            c.new_file_size += emit.source_size or 0
        elif emit.kind == "deleted":
            c.deleted_files += 1
            c.deleted_file_size += emit.mirror_size or 0
        elif emit.kind == "changed":
            c.changed_files += 1
            c.changed_source_size += emit.source_size or 0
            c.changed_mirror_size += emit.mirror_size or 0
        inc_size: int | None = None
        for inc in emit.increments:
            c.increment_files += 1
            c.increment_file_size += inc.size
            inc_size = (inc_size or 0) + inc.size
        if emit.error is not None:
            self._log(emit.error[0], emit.index, emit.error[1])
        if self.file_stats is not None:
            self.file_stats.add_row(
                render(emit.index), emit.changed, emit.source_size, emit.mirror_size, inc_size
            )

    def _log(self, kind: str, index: Index, message: str) -> None:
        line = self.errors.add(kind, render(index), message)
        self.counters.errors += 1
        self.progress.warning(line)

    # ---- processing, in order ------------------------------------------------------------

    def _end_subtrees(self, index: Index | None) -> None:
        while self._deferred:
            top, action = self._deferred[-1]
            if index is not None and index[: len(top)] == top and index != top:
                return
            self._deferred.pop()
            self._await_deletions()
            action()

    def _process(self, item: _Item) -> None:
        index = item.index
        self._end_subtrees(index)
        while self._old_dirs and not (
            index[: len(self._old_dirs[-1])] == self._old_dirs[-1] and index != self._old_dirs[-1]
        ):
            self._old_dirs.pop()
        self._olds.append(item.old_raw)
        try:
            if item.keep:
                self._emit_old(item, "kept")
            elif item.entry is None:
                self._delete(item)
            else:
                self._update(item)
        finally:
            old = item.old
            if old is not None and old.type == "dir":
                self._old_dirs.append(index)
                if self._long(old) is not None:
                    self._long_dirs[index] = old
                if (old.permissions or 0) & _OWNER_ALL != _OWNER_ALL:
                    self._closed[index] = old

    def _process_same(self, same: _Same) -> None:
        """:meth:`_process` for an entry unchanged on arrival (never a directory)."""
        index = same.index
        if self._deferred:
            self._end_subtrees(index)
        old_dirs = self._old_dirs
        while old_dirs and index[: len(old_dirs[-1])] != old_dirs[-1]:
            old_dirs.pop()
        self._olds.append(same.raw)
        self._outputs.append(same)

    def _resync_extras(self, entry: Entry, record: Record) -> None:
        """Set the EAs / ACL of unchanged ``entry`` on its mirror copy (``record``'s) again,
        in a session after one that kept none; a failure is logged, the entry stays as is."""
        if record.type == "sym":  # symlinks have neither here
            return
        path = self._bpath(entry.index, record)
        try:
            if self._resync_eas and entry.eas is not None:
                apply_eas(path, entry.eas)
            if self._resync_acls and entry.acl is not None:
                apply_acl(path, entry.acl, record.permissions or 0, record.type == "dir")
        except OSError as error:
            why = error.strerror or str(error)
            self._log("UpdateError", entry.index, f"cannot set EAs or ACL again: {why}")

    def _emit_old(self, item: _Item, kind: str, error: tuple[str, str] | None = None) -> None:
        resync = self._resync_eas or self._resync_acls
        if resync and kind == "unchanged" and item.entry is not None and item.old is not None:
            self._resync_extras(item.entry, item.old)
        self._outputs.append(_old_kept(item, kind, error))

    def _touch(self, index: Index) -> None:
        if index:
            self._touched.add(index[:-1])

    def _mark(self, index: Index) -> list[WrittenIncrement]:
        """``.dir`` markers on the directories above ``index`` (and on ``index`` itself when
        it was a directory and is being changed: pass it in ``self._old_dirs`` order)."""
        written: list[WrittenIncrement] = []
        if self.writer is None:
            return written
        if self._closed:
            self._open_ancestors(index)
        for directory in self._old_dirs:
            if index[: len(directory)] != directory or index == directory:
                continue
            if directory in self._marked:
                continue
            self._marked.add(directory)
            old = self._long_dirs.get(directory)
            written.append(self._dir_marker(directory, self._bpath(directory, old), old))
        return written

    def _open_ancestors(self, index: Index) -> None:
        """Give the owner write and search permission on the old directories above
        ``index`` that deny it (as a user, not root, nothing could be created, replaced or
        removed in them otherwise); :meth:`_fix_directories`
        sets their modes back."""
        for directory in self._old_dirs:
            if index[: len(directory)] != directory or index == directory:
                continue
            old = self._closed.pop(directory, None)
            if old is None:
                continue
            try:
                os.chmod(
                    self.mirror_path(directory, self._long_dirs.get(directory)),
                    0o700 | ((old.permissions or 0) & 0o7777),
                )
            except OSError as error:
                self._log("UpdateError", directory, f"cannot open for writing: {error.strerror}")
                continue
            self._opened.add(directory)

    def _mark_self_dir(self, item: _Item) -> list[WrittenIncrement]:
        assert self.writer is not None
        if item.index in self._marked:
            return []
        self._marked.add(item.index)
        return [self._dir_marker(item.index, self._bpath(item.index, item.old), item.old)]

    def _dir_marker(self, index: Index, path: bytes, old: Record | None) -> WrittenIncrement:
        """The ``.dir`` increment of the old directory at ``path``: planned here (its old
        attributes read now), created with others by a pool job (:data:`MARKER_BATCH`)."""
        assert self.writer is not None
        long_name = self._long(old)
        planned = self.writer.plan_dir_marker(index, path, long_name=long_name)
        if planned is None:  # not a directory after all: whatever write makes of it
            mirror = Path(os.fsdecode(path))
            return self.writer.write(index, mirror, mirror, long_name=long_name)
        self._markers.append(planned)
        if len(self._markers) >= MARKER_BATCH:
            self._submit_markers()
        return planned.increment

    def _submit_markers(self) -> None:
        if self._markers:
            self._marker_jobs.append(self._pool.submit(self._make_markers, self._markers))
            self._markers = []

    def _make_markers(self, markers: list[PlannedMarker]) -> None:
        """Pool job: create planned markers; raises for the first that could not be made."""
        for marker, error in zip(markers, self._create_markers(markers), strict=True):
            if error is not None:
                raise creation_error(marker.increment.path, error)

    def _create_markers(self, markers: list[PlannedMarker]) -> list[OSError | None]:
        """Create planned markers in one C call, noting those made with the writer; each
        one's error (None: made)."""
        assert self.writer is not None
        paths = [os.fsencode(m.increment.path) for m in markers]
        # under its final name (O_EXCL), "renamed" onto itself: nothing
        files = [
            NewFile(path, path, b"", m.mode, m.owner, m.atime_ns, m.mtime_ns)
            for path, m in zip(paths, markers, strict=True)
        ]
        errors = write_new_files(files)
        self.writer.markers_made(
            m for m, error in zip(markers, errors, strict=True) if error is None
        )
        return errors

    def _finish_markers(self) -> None:
        """Every planned marker made (before the session's data is synced and committed)."""
        self._submit_markers()
        while self._marker_jobs:
            self._marker_jobs.popleft().result()

    @staticmethod
    def _long(record: Record | None) -> int | None:
        if record is None:
            return None
        if record.alternate_mirror_name is not None:
            return record.alternate_mirror_name
        return record.alternate_increment_name

    def _new_record(self, item: _Item, sha1: str | None) -> Record:
        assert item.entry is not None
        record = item.entry.record
        if record.type == "reg" and not item.secondary:
            record = record._replace(sha1_digest=sha1)
        old = item.old
        if old is not None and (
            old.alternate_increment_name is not None or old.alternate_mirror_name is not None
        ):
            return record._replace(
                alternate_increment_name=old.alternate_increment_name,
                alternate_mirror_name=old.alternate_mirror_name,
            )
        if item.index:
            quoted = self.quoting.quote(item.index[-1])
            if self._name_max is None:
                self._name_max = name_max(self.layout.increments_dir)
            if len(quoted) > self._name_max or self._under_long_name(item.index):
                # the quoted name does not fit in the mirror (or a directory above it does
                # not): its data (and increments) live under long_filename_data/N, as
                # rdiff-backup stores them (format.md §1.6; a long directory's entries get
                # numbers of their own, side by side there)
                number = allocate_long_name(self.layout.data_dir)
                return record._replace(alternate_mirror_name=number)
            if len(quoted) + LONG_NAME_MARGIN > self._name_max:
                number = allocate_long_name(self.layout.data_dir)
                return record._replace(alternate_increment_name=number)
        return record

    def _under_long_name(self, index: Index) -> bool:
        """Whether a directory above ``index`` has a quoted name longer than the limit (a
        quoted byte takes at most 4, so only names over a quarter of it are quoted to see)."""
        parent = index[:-1]
        if parent == self._long_parent[0]:  # siblings come together: one answer per directory
            return self._long_parent[1]
        limit = self._name_max
        assert limit is not None
        quote = self.quoting.quote
        answer = any(len(part) * 4 > limit and len(quote(part)) > limit for part in parent)
        self._long_parent = (parent, answer)
        return answer

    def _update(self, item: _Item) -> None:
        entry = item.entry
        assert entry is not None
        new = entry.record
        old = item.old
        eas = entry.eas if entry.eas is not None else item.old_eas
        acl = entry.acl if entry.acl is not None else item.old_acl
        if item.state == "failed":
            kind = "UpdateError"
            if old is not None:
                self._emit_old(item, "failed", (kind, item.failure or "not updated"))
            else:
                self._outputs.append(
                    _Emit(
                        item.index,
                        None,
                        changed=True,
                        source_size=_size_of(new),
                        kind="failed",
                        error=(kind, item.failure or "not backed up"),
                    )
                )
            if new.has_hard_link_triple and not item.secondary:
                assert new.device_loc is not None and new.inode is not None
                self._groups[(new.device_loc, new.inode)].ok = False
            return
        if new.type == "reg":
            self._update_regular(item, eas, acl)
            return
        if new.type == "dir":
            self._update_dir(item, eas, acl)
            return
        # symlinks and special files
        record = self._new_record(item, None)
        if old is not None and record == old and eas == item.old_eas and acl == item.old_acl:
            self._emit_old(item, "unchanged")
            return
        if old is not None and old.type == "dir":
            self._defer_replacement(item, record, eas, acl)
            return
        self._replace_now(item, record, eas, acl)

    # -- regular files

    def _update_regular(self, item: _Item, eas: EAs, acl: tuple[ACLEntry, ...]) -> None:
        entry = item.entry
        assert entry is not None
        new = entry.record
        old = item.old
        group: _Group | None = None
        if new.has_hard_link_triple:
            assert new.device_loc is not None and new.inode is not None
            group = self._groups[(new.device_loc, new.inode)]
            group.seen += 1
        if item.secondary:
            assert group is not None
            record = self._new_record(item, None)
            if (
                old is not None
                and record == old
                and eas == item.old_eas
                and acl == item.old_acl
                and group.job is None
            ):
                self._emit_old(item, "unchanged")
            elif (
                old is not None
                and old.type == "reg"
                and group.job is None
                and _identity(old) == _identity(record)
            ):
                # still linked to the group's mirror copy, which was not rewritten
                self._update_attributes(item, record, eas, acl)
            else:
                self._link_secondary(item, record, group, eas, acl)
            self._forget(group, new)
            return
        if item.state == "ready" and _same_content(old, new, item.sha1):
            # read because its mtime (or ctime) changed, but the bytes are the mirror's: a
            # metadata-only change, as below (rdiff-backup's API 201 writes no increment
            # either); the mirror copy stays, only its attributes change
            self._discard(item)
            item.state = "none"
        if item.state == "ready":
            record = self._new_record(item, item.sha1)
            if old is not None and old.type == "dir":
                try:
                    self._materialise(item)
                except OSError as stage_error:
                    item.state = "failed"
                    item.failure = f"cannot stage: {stage_error.strerror}"
                    self._update(item)
                    return
                self._defer_replacement(item, record, eas, acl)
                if group is not None:
                    group.mirror = self.mirror_path(item.index, record)
                return
            marks = self._mark(item.index)
            if group is None and self._batchable(item, record, eas, acl):
                missing = None
                planned = True
                if self.writer is not None:
                    try:
                        missing = self.writer.plan_missing_marker(
                            item.index, long_name=self._long(record)
                        )
                    except (OSError, RdbError):  # the general path meets it again, and says so
                        planned = False
                if self.writer is None or (planned and missing is not None):
                    new_slot = self._stage_later(item, record, eas, acl, marks, missing)
                    self._outputs.append(new_slot)
                    self._touch(item.index)
                    return
            if group is None and self._delta_batchable(item, record, eas, acl):
                slot = self._delta_later(item, record, eas, acl, marks)
                if slot is not None:
                    self._outputs.append(slot)
                    self._touch(item.index)
                    return
            # a small file held in memory is written here: handing it to the pool costs more
            # than writing it (two thread wake-ups, each a cross-CPU one with two CPUs)
            small = item.data is not None and (old is None or (old.size or 0) <= HELD_FILE)
            run = self._pool.run_here if small else self._pool.submit
            job = run(self._write_regular, item, record, eas, acl, marks)
            self._outputs.append(job)
            self._touch(item.index)
            if group is not None:
                group.mirror = self.mirror_path(item.index, record)
                group.job = job
            self._forget(group, new)
            return
        # data unchanged by stat: attributes only (or nothing)
        assert old is not None
        record = self._new_record(item, old.sha1_digest)
        if group is not None:
            group.mirror = self.mirror_path(item.index, record)
        if record == old and eas == item.old_eas and acl == item.old_acl:
            self._emit_old(item, "unchanged")
        else:
            self._update_attributes(item, record, eas, acl)
        self._forget(group, new)

    def _update_attributes(
        self, item: _Item, record: Record, eas: EAs, acl: tuple[ACLEntry, ...]
    ) -> None:
        """A metadata-only change of a regular file: attributes set on the mirror copy in
        place, no increment (rdiff-backup's API 201; restores take them from the metadata)."""
        assert item.entry is not None and item.old is not None
        increments = self._mark(item.index)
        if self._times_only(item, record, eas, acl):
            # only utimensat to call (a release unpacked again: thousands of files), so in a
            # batch on the pool: the session's thread made one system call per file, and
            # with the pool busy each one handed the GIL away
            slot, self._times_batch = self._join(
                self._times_batch,
                self._set_times_batch,
                TIMES_BATCH,
                item,
                record,
                eas,
                acl,
                increments,
            )
            self._outputs.append(slot)
            return
        path = self._bpath(item.index, record)
        error = self._apply(path, record, item.entry, eas, acl, had=item)
        self._outputs.append(_updated(item, record, eas, acl, increments, error))

    def _times_only(self, item: _Item, record: Record, eas: EAs, acl: tuple[ACLEntry, ...]) -> bool:
        """Whether :meth:`_set_attributes` would only set ``item``'s times: a regular file
        whose owner, permissions, EAs and ACL are its old record's (see :meth:`_apply`)."""
        entry, old = item.entry, item.old
        assert entry is not None and old is not None
        return (
            record.type == "reg"
            and old.type == "reg"
            and record.permissions == old.permissions
            and (not self.caps.ownership or (record.uid, record.gid) == (old.uid, old.gid))
            and (not self.caps.eas or entry.eas is None or eas == item.old_eas)
            and (not self.caps.acls or entry.acl is None or acl == item.old_acl)
        )

    def _set_times_batch(self, batch: _StageBatch) -> None:
        """Pool job: the batch's files' times in one C call (as :meth:`_apply` sets them)."""
        files = []
        for slot in batch.files:
            entry = slot.item.entry
            assert entry is not None
            mtime = entry.mtime_ns
            atime = entry.atime_ns if entry.atime_ns is not None else mtime
            files.append((self._bpath(slot.item.index, slot.record), atime, mtime))
        for slot, failed in zip(batch.files, set_times(files), strict=True):
            error = None
            if failed is not None:
                error = ("UpdateError", f"cannot set attributes: {failed.strerror}")
            slot.emit = _updated(slot.item, slot.record, slot.eas, slot.acl, slot.marks, error)

    def _flush_now(self) -> None:
        """Run the waiting destructive steps now (after their sync), once every entry before
        this one has queued its own: what this flush covers, and so whether the last one
        syncs at all, then never depends on the pool's timing (the syscall kill sweep counts
        a run's calls and kills the same run at each of them)."""
        self._drain(block=True)
        self._durable.flush()

    def _keeps_data(self, old: Record | None) -> bool:
        """Whether replacing or removing the mirror copy of ``old`` must wait for a sync:
        a regular file whose increment (in a session that writes them) holds its data."""
        return self.writer is not None and old is not None and old.type == "reg"

    def _forget(self, group: _Group | None, record: Record) -> None:
        if group is not None and group.seen >= group.nlink and group.job is None:
            assert record.device_loc is not None and record.inode is not None
            self._groups.pop((record.device_loc, record.inode), None)

    def _apply(
        self,
        path: bytes,
        record: Record,
        entry: Entry,
        eas: EAs,
        acl: tuple[ACLEntry, ...],
        *,
        had: _Item | None = None,
    ) -> tuple[str, str] | None:
        """Set attributes, EAs and ACL on a mirror entry; the error to log, if any. ``had``: an
        entry whose mirror copy has its old record's attributes, EAs and ACL (the metadata
        describes the mirror): only what differs from those is set (an attribute-only
        change of a release unpacked again: the mtime)."""
        try:
            self._set_attributes(
                path,
                record,
                entry.mtime_ns if record.type != "sym" else None,
                entry.atime_ns,
                eas if entry.eas is not None else None,
                acl if entry.acl is not None else None,
                (had.old, had.old_eas, had.old_acl)
                if had is not None and had.old is not None
                else None,
            )
        except OSError as error:
            return ("UpdateError", f"cannot set attributes: {error.strerror or error}")
        return None

    def _set_attributes(
        self,
        path: bytes,
        record: Record,
        mtime_ns: int | None,
        atime_ns: int | None,
        eas: EAs | None,
        acl: tuple[ACLEntry, ...] | None,
        had: _OldState | None,
    ) -> None:
        """Owner, permissions, times, EAs (None: not kept) and ACL (None: not kept) of
        ``record`` on ``path``; ``had``: the old state the mirror entry has, whose equal parts
        are not set again (a new owner is set, and then the permissions: ``chown`` clears
        set-ID bits, and the EAs: it drops ``security.capability``; a new mode sets the ACL
        again: its mask)."""
        old, old_eas, old_acl = had if had is not None else (None, (), ())
        owner_set = apply_attributes(
            path,
            record,
            ownership=self.caps.ownership,
            mtime_ns=mtime_ns,
            atime_ns=atime_ns,
            had=old,
        )
        if record.type == "sym":
            return
        if self.caps.eas and eas is not None and (old is None or owner_set or eas != old_eas):
            apply_eas(path, eas)
        if (
            self.caps.acls
            and acl is not None
            and (old is None or acl != old_acl or record.permissions != old.permissions)
        ):
            apply_acl(path, acl, record.permissions or 0, record.type == "dir")

    def _apply_new(
        self,
        fd: int,
        record: Record,
        entry: Entry,
        eas: EAs,
        acl: tuple[ACLEntry, ...],
    ) -> tuple[str, str] | None:
        """:meth:`_apply` for a file this session just created in rdiff-backup-data, open as
        ``fd``: no path lookups, no EAs to remove, and no ACL to reset unless that directory
        passes one down (a default ACL)."""
        try:
            apply_attributes(
                fd,
                record,
                ownership=self.caps.ownership,
                mtime_ns=entry.mtime_ns,
                atime_ns=entry.atime_ns,
            )
            if self.caps.eas and entry.eas is not None:
                for name, value in eas:  # a new file has none to remove
                    os.setxattr(fd, name, value)
            if self.caps.acls and entry.acl is not None and (acl or self._inherits_acl()):
                apply_acl(fd, acl, record.permissions or 0, False)
        except OSError as error:
            return ("UpdateError", f"cannot set attributes: {error.strerror or error}")
        return None

    def _inherits_acl(self) -> bool:
        """Whether new files in rdiff-backup-data get an ACL from it (asked once)."""
        if self._staging_acl is None:
            self._staging_acl = has_default_acl(os.fsencode(self.layout.data_dir))
        return self._staging_acl

    def _increment_of(
        self, item: _Item, record: Record, new: Path | None, *, jobs: int | None = None
    ) -> WrittenIncrement:
        """The increment that keeps ``item``'s old version (``.missing`` if it had none)."""
        assert self.writer is not None
        old = item.old
        return self.writer.write(
            item.index,
            self.mirror_path(item.index, old) if old is not None else None,
            new,
            long_name=self._long(old) if old is not None else self._long(record),
            jobs=jobs,
        )

    def _batchable(self, item: _Item, record: Record, eas: EAs, acl: tuple[ACLEntry, ...]) -> bool:
        """Whether ``item`` can be written by :mod:`rdb_fastio`: a new file held in memory
        (its increment, after a first backup, a ``.missing`` marker made after it), with no
        EAs or ACL to set and plain permissions (the general path handles the rest)."""
        return item.old is None and self._plain(item, record, eas, acl)

    def _delta_batchable(
        self, item: _Item, record: Record, eas: EAs, acl: tuple[ACLEntry, ...]
    ) -> bool:
        """Whether ``item`` and its increment can be written by :mod:`rdb_fastio`: a small
        changed regular file held in memory (its increment a ``.diff[.gz]``) and as
        :meth:`_plain` says."""
        old = item.old
        return (
            self.writer is not None
            and old is not None
            and old.type == "reg"
            and (old.size or 0) <= HELD_FILE
            and item.copy is None
            and not item.delta
            and item.staged is None
            and self._plain(item, record, eas, acl)
        )

    def _plain(self, item: _Item, record: Record, eas: EAs, acl: tuple[ACLEntry, ...]) -> bool:
        """A file held in memory with no EAs or ACL to set and plain permissions."""
        entry = item.entry
        return (
            item.data is not None
            and entry is not None
            and not eas
            and not acl
            and record.permissions is not None
            and not (self.caps.acls and entry.acl is not None and self._inherits_acl())
        )

    def _stage_later(
        self,
        item: _Item,
        record: Record,
        eas: EAs,
        acl: tuple[ACLEntry, ...],
        marks: list[WrittenIncrement],
        missing: PlannedMarker | None,
    ) -> _Staged:
        slot, self._stage_batch = self._join(
            self._stage_batch,
            self._write_batch,
            STAGE_BATCH,
            item,
            record,
            eas,
            acl,
            marks,
            missing,
        )
        return slot

    def _join(
        self,
        batch: _StageBatch | None,
        write: Callable[[_StageBatch], None],
        limit: int,
        item: _Item,
        record: Record,
        eas: EAs,
        acl: tuple[ACLEntry, ...],
        marks: list[WrittenIncrement],
        missing: PlannedMarker | None = None,
    ) -> tuple[_Staged, _StageBatch | None]:
        """A slot for ``item`` in ``batch`` (a new one written by ``write`` if None), and the
        batch still open: None once it has ``limit`` files and is handed to the pool. The slot
        is complete (``marks``, ``missing``) before that: the pool's job may run at once."""
        if batch is None:
            batch = _StageBatch(write)
        slot = _Staged(batch, item, record, eas, acl, marks)
        slot.missing = missing
        batch.files.append(slot)
        if len(batch.files) < limit:
            return slot, batch
        batch.job = self._pool.submit(batch.write, batch)
        return slot, None

    def _delta_later(
        self,
        item: _Item,
        record: Record,
        eas: EAs,
        acl: tuple[ACLEntry, ...],
        marks: list[WrittenIncrement],
    ) -> _Staged | None:
        """A slot of the next batch of changed files for ``item``, or None if its increment
        is not for the C routine (the general path then writes it)."""
        old, data = item.old, item.data
        assert self.writer is not None and old is not None and data is not None
        staged = temp_path(self.layout.data_dir)
        try:
            planned = self.writer.plan_delta(
                item.index,
                self.mirror_path(item.index, old),
                staged,
                len(data),
                long_name=self._long(old),
            )
        except (OSError, RdbError):  # the general path's pool job meets it again, and says so
            return None
        if planned is None:
            return None
        batch = self._delta_batch
        if batch is None:
            batch = self._delta_batch = _StageBatch(self._write_delta_batch, DeltaBatch())
        assert batch.deltas is not None
        batch.deltas.add(planned.job)  # made into its C form here, not on the pool
        slot = _Staged(batch, item, record, eas, acl, marks)
        slot.planned = planned
        slot.staged = os.fsencode(staged)
        batch.files.append(slot)
        if len(batch.files) >= DELTA_BATCH:
            self._hand_over(batch)
        return slot

    def _hand_over(self, batch: _StageBatch) -> None:
        if batch is self._stage_batch:
            self._stage_batch = None
        elif batch is self._delta_batch:
            self._delta_batch = None
        elif batch is self._times_batch:
            self._times_batch = None
        batch.job = self._pool.submit(batch.write, batch)

    def _new_file(self, slot: _Staged, path: bytes, target: bytes) -> NewFile:
        """``slot``'s file for :func:`rdb_fastio.write_new_files`: created at ``path``,
        renamed to ``target``, with the record's permissions, owner and times."""
        item, record = slot.item, slot.record
        entry = item.entry
        assert entry is not None and item.data is not None and record.permissions is not None
        owner = None
        if self.caps.ownership and record.uid is not None and record.gid is not None:
            owner = (record.uid, record.gid)
        return NewFile(
            path, target, item.data, record.permissions, owner, entry.atime_ns, entry.mtime_ns
        )

    def _written_from_memory(self, item: _Item) -> None:
        data = item.data
        assert data is not None
        item.data = None
        with self._held_lock:
            self._held -= len(data)

    def _write_delta_batch(self, batch: _StageBatch) -> None:
        """Pool job: the batch's changed files staged in one C call, their increments written
        in another, then each staged copy queued to replace its mirror copy after the next
        sync; a file that failed either way goes the general way (:meth:`_write_regular`),
        which fails the same way and says so as usual."""
        assert batch.deltas is not None and self.writer is not None
        slots = batch.files
        staged = write_new_files([self._new_file(slot, slot.staged, slot.staged) for slot in slots])
        batch.deltas.run()  # a file not staged fails to open, leaving nothing
        for n, (slot, error) in enumerate(zip(slots, staged, strict=True)):
            item, record = slot.item, slot.record
            written = batch.deltas.result(n)
            assert slot.planned is not None
            if error is None and written.status == DeltaStatus.DONE:
                self._written_from_memory(item)
                increments = [*slot.marks, self.writer.delta_made(slot.planned, written)]
                self._durable.replace(
                    slot.staged, self._bpath(item.index, record), record.size or 0
                )
                slot.emit = _updated(item, record, slot.eas, slot.acl, increments)
                continue
            if error is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(slot.staged)
            slot.emit = self._write_regular(item, record, slot.eas, slot.acl, slot.marks)

    def _write_batch(self, batch: _StageBatch) -> None:
        """Pool job: the batch's files in one C call, then the ``.missing`` markers of those
        written in another; a file that failed either way (taken out of the mirror again if
        its marker did) goes the general way (:meth:`_write_regular`), which fails the same
        way and says so as usual (and makes its own marker first)."""
        files = []
        for slot in batch.files:
            target = self._bpath(slot.item.index, slot.record)
            files.append(self._new_file(slot, os.fsencode(temp_path(self.layout.data_dir)), target))
        written = write_new_files(files)
        marked = [
            (n, slot.missing)
            for n, (slot, error) in enumerate(zip(batch.files, written, strict=True))
            if error is None and slot.missing is not None
        ]
        if marked:
            made = self._create_markers([marker for _, marker in marked])
            for (n, marker), failure in zip(marked, made, strict=True):
                if failure is not None:
                    written[n] = _taken_back(files[n].target, marker, failure)
        for slot, error in zip(batch.files, written, strict=True):
            item = slot.item
            if error is None:
                self._written_from_memory(item)
                increments = list(slot.marks)
                if slot.missing is not None:
                    increments.append(slot.missing.increment)
                slot.emit = _updated(item, slot.record, slot.eas, slot.acl, increments)
            else:
                slot.emit = self._write_regular(item, slot.record, slot.eas, slot.acl, slot.marks)

    def _write_regular(
        self,
        item: _Item,
        record: Record,
        eas: EAs,
        acl: tuple[ACLEntry, ...],
        marks: list[WrittenIncrement],
    ) -> _Emit:
        """Pool job: increment, then attributes on the staged copy, then rename it in place."""
        entry = item.entry
        assert entry is not None and (item.staged is not None or item.data is not None)
        old = item.old
        staged: Path | None = item.staged
        target = self._bpath(item.index, record)
        increments: list[WrittenIncrement] = list(marks)
        error: tuple[str, str] | None = None
        try:
            applied: list[tuple[str, str] | None] = []
            if old is None and item.staged is None:
                # a new file held in memory: its attributes are set on the open file as it is
                # staged; nothing reads it before the rename (its increment is a .missing).
                # (Staged in rdiff-backup-data, not next to its target: measured faster on
                # ext4, whose inode allocation then stays in one directory's group.)

                def finish(fd: int) -> None:
                    applied.append(self._apply_new(fd, record, entry, eas, acl))

                staged = self._materialise(item, finish)
            staged = self._materialise(item)
            if self.writer is not None:
                increments.append(
                    self._increment_of(item, record, staged, jobs=_increment_jobs(record, old))
                )
            error = (
                applied[0] if applied else self._apply(os.fsencode(staged), record, entry, eas, acl)
            )
            if self._keeps_data(old):
                self._durable.replace(staged, target, record.size or 0)
            else:
                self._release.replace(staged, target)
            item.staged = None  # renamed, or the durable order's to rename
        except (OSError, RdbError) as failure:
            if staged is not None:
                with contextlib.suppress(FileNotFoundError):
                    staged.unlink()
            _drop_own_increment(item, increments)
            if isinstance(failure, OverSize):  # not a changed file: a broken or hostile source
                raise ProtocolError(f"{_named(item.index)}: {failure}") from None
            return _kept_after_failure(item, record, _failure_text(failure), increments)
        return _updated(item, record, eas, acl, increments, error)

    def _link_secondary(
        self, item: _Item, record: Record, group: _Group, eas: EAs, acl: tuple[ACLEntry, ...]
    ) -> None:
        job = group.job
        marks = self._mark(item.index)

        def link() -> _Emit:
            if job is not None:
                done = job.result()
                ok = done.kind in ("new", "changed")
            else:
                ok = group.ok and group.mirror is not None
            old = item.old
            if not ok or group.mirror is None:
                message = "its hard-link group's first file could not be backed up"
                if old is not None:
                    return _kept_after_failure(item, record, message, [])
                return _Emit(item.index, None, kind="failed", error=("UpdateError", message))
            target = self.mirror_path(item.index, record)
            increments: list[WrittenIncrement] = list(marks)
            temp = temp_path(target.parent)
            try:
                # the group's new content (also while its rename waits for a sync) linked
                # under this entry's temp name first: a name no flush renames, whose content
                # the increment is the reverse delta against (a regular file, as the primary's
                # staged copy is for its own; a /proc/self/fd link would make it a snapshot)
                source = self._durable.open_current(group.mirror)
                try:
                    link_descriptor(source, temp)
                finally:
                    os.close(source)
                if self.writer is not None:
                    increments.append(
                        self._increment_of(item, record, temp, jobs=_increment_jobs(record, old))
                    )
                if self._keeps_data(old):
                    self._durable.replace(temp, target)
                else:
                    os.replace(temp, target)
            except (OSError, RdbError) as error:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
                _drop_own_increment(item, increments)
                return _kept_after_failure(item, record, _failure_text(error), increments)
            return _updated(item, record, eas, acl, increments)

        self._touch(item.index)
        self._outputs.append(self._pool.submit(link))

    # -- directories

    def _update_dir(self, item: _Item, eas: EAs, acl: tuple[ACLEntry, ...]) -> None:
        entry = item.entry
        assert entry is not None
        old = item.old
        record = self._new_record(item, None)
        kept = old is not None and old.type == "dir"  # the mirror keeps the old directory
        self._dirs[item.index] = _DirState(
            record,
            entry.mtime_ns,
            entry.atime_ns,
            entry.eas if entry.eas is not None else None,
            entry.acl if entry.acl is not None else None,
            (old, item.old_eas, item.old_acl) if kept and old is not None else None,
        )
        if old is not None and old.type == "dir":
            if record == old and eas == item.old_eas and acl == item.old_acl:
                self._emit_old(item, "unchanged")
                return
            self._dirs_changed.add(item.index)
            increments: list[WrittenIncrement] = []
            if self.writer is not None:
                increments = self._mark(item.index) + self._mark_self_dir(item)
            self._touched.add(item.index)
            self._outputs.append(
                _Emit(
                    item.index,
                    record,
                    eas,
                    acl,
                    changed=True,
                    source_size=0,
                    mirror_size=0,
                    increments=increments,
                    kind="changed",
                )
            )
            return
        self._dirs_changed.add(item.index)
        self._replace_now(item, record, eas, acl)

    # -- replacing a non-directory (or creating anything) now

    def _replace_now(
        self, item: _Item, record: Record, eas: EAs, acl: tuple[ACLEntry, ...]
    ) -> None:
        entry = item.entry
        assert entry is not None
        old = item.old
        target = self.mirror_path(item.index, record)
        increments: list[WrittenIncrement] = []
        try:
            if self.writer is not None:
                increments += self._mark(item.index)
                increments.append(self._increment_of(item, record, None))
            if record.type == "dir" and self._keeps_data(old):
                self._flush_now()  # its entries are written next, into the new directory
            error = self._create(target, record, entry, eas, acl, item)
        except (OSError, RdbError) as failure:
            _drop_own_increment(item, increments)
            message = _failure_text(failure)
            if old is not None:
                self._emit_old(item, "failed", ("UpdateError", message))
            else:
                self._outputs.append(
                    _Emit(item.index, None, kind="failed", error=("UpdateError", message))
                )
            return
        self._touch(item.index)
        self._outputs.append(_updated(item, record, eas, acl, increments, error))

    def _create(
        self,
        target: Path,
        record: Record,
        entry: Entry,
        eas: EAs,
        acl: tuple[ACLEntry, ...],
        item: _Item,
    ) -> tuple[str, str] | None:
        """Make ``target`` the entry ``record`` describes (replacing a non-directory)."""
        kind = record.type
        if kind == "dir":
            try:
                # nothing there, usually (a new directory): one mkdir, not three stats first
                os.mkdir(target, 0o700)
            except FileExistsError:
                if not target.is_dir() or target.is_symlink():
                    target.unlink()
                    target.mkdir(mode=0o700)
            if record.alternate_mirror_name is not None:
                return None  # a long name's increments are in long_filename_data
            if self.writer is not None and item.index:
                self.writer.ensure_increment_dir(item.index)
            elif item.index:
                (
                    self.layout.increments_dir.joinpath(
                        *[os.fsdecode(p) for p in self.quoting.quote_path(item.index)]
                    )
                ).mkdir(mode=0o700, parents=True, exist_ok=True)
            return None
        if kind == "reg":  # only for a deferred directory → file replacement
            assert item.staged is not None
            self._apply(os.fsencode(item.staged), record, entry, eas, acl)
            os.replace(item.staged, target)
            item.staged = None
            return None
        temp = temp_path(target.parent)
        error: tuple[str, str] | None = None
        if kind == "sym":
            assert record.sym_data is not None
            os.symlink(record.sym_data, os.fsencode(temp))
        elif kind == "fifo":
            os.mkfifo(temp, 0o600)
        else:
            mode = stat.S_IFSOCK
            device = 0
            if kind == "dev":
                assert record.device_num is not None
                letter, major, minor = record.device_num
                mode = stat.S_IFCHR if letter == "c" else stat.S_IFBLK
                device = os.makedev(major, minor)
            try:
                os.mknod(temp, mode | 0o600, device)
            except OSError as failure:
                with open(temp, "xb"):
                    pass
                error = ("SpecialFileError", f"cannot create: {failure.strerror}")
        self._apply(os.fsencode(temp), record, entry, eas, acl)
        if self._keeps_data(item.old):
            self._durable.replace(temp, target)
            return error
        try:
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        return error

    def _defer_replacement(
        self, item: _Item, record: Record, eas: EAs, acl: tuple[ACLEntry, ...]
    ) -> None:
        """A directory becomes something else: mark it now, replace it after its contents."""
        increments = self._mark(item.index) + self._mark_self_dir(item)
        entry = item.entry
        assert entry is not None and item.old is not None and item.old.type == "dir"
        emit = _updated(item, record, eas, acl, increments)  # a directory's mirror size is 0
        self._outputs.append(emit)
        target = self.mirror_path(item.index, item.old)
        self._touch(item.index)

        def replace() -> None:
            try:
                if self.writer is not None:
                    self._flush_now()  # the entries it held: their steps first
                _remove_tree(target)
                error = self._create(
                    self.mirror_path(item.index, record), record, entry, eas, acl, item
                )
            except (OSError, RdbError) as failure:
                # its record (the new type) may be in the metadata already: the session
                # cannot go on as if it were in the mirror; uncommitted, it is regressed
                self._discard(item)
                if isinstance(failure, RdbError):
                    raise
                raise RdbError(
                    f"{os.fsdecode(target)}: cannot replace the directory with what the "
                    f"source has now: {failure.strerror or failure}"
                ) from None
            if error is not None:
                emit.error = error

        self._deferred.append((item.index, replace))

    # -- deletions

    def _delete(self, item: _Item) -> None:
        old = item.old
        assert old is not None
        target = self.mirror_path(item.index, old)
        increments: list[WrittenIncrement] = []
        try:
            if self.writer is not None:
                increments += self._mark(item.index)
                if old.type == "reg":
                    # its snapshot (read, gzipped: C with the GIL released) on the pool
                    job = self._pool.submit(self._delete_regular, item, target, increments)
                    deleting = self._deleting
                    while deleting and deleting[0].done():  # (only those still running kept)
                        deleting.popleft()
                    deleting.append(job)
                    self._outputs.append(job)
                    self._touch(item.index)
                    return
                if old.type == "dir":
                    increments += self._mark_self_dir(item)
                else:
                    increments.append(
                        self.writer.write(item.index, target, None, long_name=self._long(old))
                    )
            if old.type == "dir":
                remove = partial(_remove_tree, target)
                if self.writer is not None:  # after its entries' steps, in their order
                    remove = partial(self._durable.later, target, remove)
                self._deferred.append((item.index, remove))
            elif self._keeps_data(old):
                self._durable.unlink(target)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self._release.unlink(target)
        except (OSError, RdbError) as failure:
            message = str(failure) if isinstance(failure, RdbError) else f"{failure.strerror}"
            self._emit_old(item, "failed", ("UpdateError", message))
            return
        self._touch(item.index)
        self._outputs.append(_deleted(old, item.index, increments))

    def _delete_regular(
        self, item: _Item, target: Path, increments: list[WrittenIncrement]
    ) -> _Emit:
        """Pool job: the snapshot increment of a deleted regular file, then its mirror copy
        queued for removal after the next sync (:meth:`_delete`'s steps for one)."""
        old = item.old
        assert self.writer is not None and old is not None
        try:
            increments.append(
                self.writer.write(item.index, target, None, long_name=self._long(old))
            )
            self._durable.unlink(target)
        except (OSError, RdbError) as failure:
            return _old_kept(item, "failed", ("UpdateError", _failure_text(failure)))
        return _deleted(old, item.index, increments)

    def _await_deletions(self) -> None:
        """Every deleted file's snapshot written and its removal queued: before a deferred
        step that removes or replaces their directory (which must not run before them)."""
        while self._deleting:
            self._deleting.popleft().result()

    # -- the end

    def _fix_directories(self) -> None:
        """Attributes of new, changed and touched directories, deepest first (a kept one has
        its old record's: only what differs is set; most are only touched, their mtime changed
        by writing inside them)."""
        for index in sorted(self._touched | self._dirs_changed | self._opened, reverse=True):
            info = self._dirs.get(index)
            if info is None:
                continue
            path = self._bpath(index, info.record)
            had = info.had if index not in self._opened else None  # its mode was changed
            try:
                self._set_attributes(
                    path, info.record, info.mtime_ns, info.atime_ns, info.eas, info.acl, had
                )
            except OSError as error:
                self._log("UpdateError", index, f"cannot set attributes: {error.strerror}")


#: What a mirror entry already has: the old record, EAs and ACL.
_OldState = tuple[Record, EAs, tuple[ACLEntry, ...]]


class _DirState(NamedTuple):
    """What a directory's attributes are set to at the end (deepest first)."""

    record: Record
    mtime_ns: int | None
    atime_ns: int | None
    eas: EAs | None
    acl: tuple[ACLEntry, ...] | None
    had: _OldState | None  # a kept old directory's


#: Owner read, write and search: what the session needs on a mirror directory it changes.
_OWNER_ALL = stat.S_IRWXU


def _remove_tree(path: Path) -> None:
    """Remove a mirror directory (whose contents were already incremented)."""
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    shutil.rmtree(path)
