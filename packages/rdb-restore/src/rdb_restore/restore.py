"""Restore ``REPO[/PATH]`` as of a session into TARGET (reference §3.6).

The metadata at the session is walked in order (streaming: memory does not grow with the number
of files). Directories are made at once and get their permissions, owner, ACL, EAs and mtime
only after everything inside them is in place. Regular files are rebuilt in a thread pool, each
under a temporary name in its directory, checked against the recorded size and SHA1, given its
attributes, then renamed into place. Hard links are made to the first path of their group.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from rdb_clikit.protocol import NullProgress, Progress
from rdb_format.errors import CorruptRepository, RdbError, UsageError
from rdb_format.timestamps import format_timestring
from rdb_restore.content import Digest, fd_writer, produce
from rdb_restore.repo import (
    DIR_FLAGS,
    Entry,
    Index,
    Repo,
    close_quietly,
    open_repo,
    parse_increment_path,
    show,
)
from rdb_restore.sources import Place, Sources, SourceTree
from rdb_restore.target import (
    Owners,
    apply_at,
    apply_fd,
    apply_special_extras,
    make_dir,
    make_special,
    place,
    prepare_target_dir,
    prepare_target_file,
    remove_entry,
    temp_name,
)

SPECIAL_TYPES = ("sym", "fifo", "sock", "dev")


def default_workers() -> int:
    """Threads for rebuilding files: one per CPU, at least 2 (more only adds contention on the
    target directories and the GIL: measured on the django corpus)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cpus = os.cpu_count() or 1
    return max(2, min(16, cpus))


def limit_heap_growth() -> None:
    """Keep glibc from growing the heap with the 1 MiB buffers librsync, zlib and the reads
    use (its dynamic mmap threshold otherwise lets a restore's RSS climb to ~300 MiB): fix
    the threshold at 128 KiB so big buffers are mapped and returned on free. Process-wide;
    the command calls it, a library caller may. No effect off glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, 128 * 1024)


@dataclass(frozen=True)
class RestoreOptions:
    force: bool = False
    numeric_ids: bool = False
    workers: int | None = None


@dataclass
class RestoreResult:
    """What a restore did; ``bad`` holds one line per file that could not be restored."""

    time: int
    source: str
    target: str
    entries: int = 0
    files: int = 0
    bytes: int = 0
    bad: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Frame:
    """A directory being restored: its target fd and repository places, and pending work."""

    __slots__ = ("entry", "existed", "fd", "key", "names", "parent", "pending", "place", "popped")

    def __init__(
        self,
        key: Index,
        fd: int,
        place: Place,
        entry: Entry | None,
        parent: _Frame | None,
        existed: bool,
    ) -> None:
        self.key = key
        self.fd = fd
        self.place = place
        self.entry = entry  # None: the user's directory of a single-file restore (no attrs)
        self.parent = parent
        self.existed = existed
        self.names: set[bytes] | None = set() if existed else None
        self.pending = 0
        self.popped = False


@dataclass
class _Group:
    """A hard-link group: the first path restored, and when it is in place."""

    rel: Index
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


def _session_of(location: str, at: str | None) -> tuple[Repo, int]:
    ref = parse_increment_path(location) if "rdiff-backup-data" in location else None
    if ref is not None:
        if at is not None:
            raise UsageError("an increment file names its own time; do not give --at with it")
        repo = open_repo(ref.location)
        repo.sub = ref.index
        return repo, repo.resolve(str(ref.time))
    repo = open_repo(location)
    return repo, repo.resolve(at)


def restore(
    location: str,
    target: str,
    *,
    at: str | None = None,
    options: RestoreOptions | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore ``location`` (``REPO``, ``REPO/sub/path`` or an increment file) as of ``at``
    (a time spec; default now) into ``target`` (``-``: a regular file to stdout)."""
    repo, when = _session_of(location, at)
    with repo:
        runner = _Restorer(repo, when, location, target, options or RestoreOptions(), progress)
        return runner.run()


class _Restorer:
    def __init__(
        self,
        repo: Repo,
        when: int,
        location: str,
        target: str,
        options: RestoreOptions,
        progress: Progress | None,
    ) -> None:
        self.repo = repo
        self.when = when
        self.target = target
        self.options = options
        self.progress = progress or NullProgress()
        self.owners = Owners(numeric=options.numeric_ids)
        self.result = RestoreResult(when, location, target)
        self.lock = threading.RLock()
        self.fatal: BaseException | None = None
        self.frames: set[_Frame] = set()
        self.groups: dict[tuple[int, int], _Group] = {}
        self.workers = options.workers or default_workers()
        self.slots = threading.BoundedSemaphore(self.workers * 8)
        self.root: _Frame | None = None

    # ---- helpers ----------------------------------------------------------------------------

    def warn(self, message: str) -> None:
        with self.lock:
            self.result.warnings.append(message)
        self.progress.warning(message)

    def _label(self, index: Index) -> str:
        return os.path.join(os.fsdecode(self.repo.layout.root), show(index))

    def _first(self, entries: Iterator[Entry]) -> Entry:
        sub = self.repo.sub
        first = next(entries, None)
        if first is None or first.index != sub:
            raise UsageError(
                f"{show(sub)!r} is not in the backup of {format_timestring(self.when)} "
                f"({os.fsdecode(self.repo.layout.root)})"
            )
        return first

    # ---- the walk ---------------------------------------------------------------------------

    def run(self) -> RestoreResult:
        entries = self.repo.entries_at(self.when)
        first = self._first(entries)
        tree = SourceTree(self.repo, self.when)
        self.progress.start(f"restoring {format_timestring(self.when)}", None)
        try:
            if self.target == "-":
                self._to_stdout(tree, first)
                return self.result
            pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rdb-restore")
            try:
                if first.record.type == "dir":
                    self._tree(tree, first, entries, pool)
                else:
                    self._single(tree, first, pool)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                pool.shutdown(wait=True)
                for frame in list(self.frames):
                    self._close_frame(frame)
            if self.fatal is not None:
                raise self.fatal
        finally:
            tree.close()
            self.progress.finish()
        if self.result.bad:
            raise CorruptRepository(
                f"{len(self.result.bad)} file(s) could not be restored; the first: "
                f"{self.result.bad[0]}",
                path=None,
            )
        return self.result

    def _tree(
        self, tree: SourceTree, first: Entry, entries: Iterator[Entry], pool: ThreadPoolExecutor
    ) -> None:
        sub = self.repo.sub
        root_fd, existed = prepare_target_dir(self.target, force=self.options.force)
        root = _Frame(sub, root_fd, tree.place_of(sub), first, None, existed)
        self.root = root
        self.frames.add(root)
        self.result.entries += 1
        stack = [root]
        for entry in entries:
            if self.fatal is not None:
                break
            key = entry.index
            while stack and not (
                len(key) > len(stack[-1].key) and key[: len(stack[-1].key)] == stack[-1].key
            ):
                self._pop(stack.pop())
            if not stack or len(key) != len(stack[-1].key) + 1:
                raise CorruptRepository(
                    f"metadata record {show(key)!r} has no directory record above it",
                    path=self.repo.layout.data_dir,
                )
            parent = stack[-1]
            name = key[-1]
            if parent.names is not None:
                parent.names.add(name)
            self.result.entries += 1
            kind = entry.record.type
            if kind == "dir":
                stack.append(self._dir(tree, parent, name, entry))
            elif kind == "reg":
                self._submit_file(tree, pool, parent, name, entry)
            else:
                self._special(parent, name, entry)
        while stack:
            self._pop(stack.pop())

    def _single(self, tree: SourceTree, first: Entry, pool: ThreadPoolExecutor) -> None:
        parent_fd, name = prepare_target_file(self.target, force=self.options.force)
        sub = self.repo.sub
        holder = _Frame(sub[:-1], parent_fd, tree.place_of(sub[:-1]), None, None, False)
        self.frames.add(holder)
        self.result.entries += 1
        if first.record.type == "reg":
            self._submit_file(tree, pool, holder, name, first, rel_root=sub[:-1])
        else:
            self._special(holder, name, first)
        self._pop(holder)

    def _dir(self, tree: SourceTree, parent: _Frame, name: bytes, entry: Entry) -> _Frame:
        fd, existed = make_dir(parent.fd, name, force=self.options.force)
        try:
            frame = _Frame(
                entry.index, fd, tree.descend(parent.place, name), entry, parent, existed
            )
        except BaseException:
            os.close(fd)
            raise
        with self.lock:
            parent.pending += 1
            self.frames.add(frame)
        return frame

    def _special(self, parent: _Frame, name: bytes, entry: Entry) -> None:
        temp = temp_name()
        label = self._label(entry.index)
        make_special(parent.fd, temp, entry.record, self.warn, label)
        try:
            apply_at(parent.fd, temp, entry.record, self.owners)
            if entry.record.type != "sym" and (entry.acl or entry.eas):
                apply_special_extras(parent.fd, temp, entry, label, self.warn)
            place(parent.fd, temp, name, force=self.options.force)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent.fd)
            raise
        self.progress.advance(1)

    def _submit_file(
        self,
        tree: SourceTree,
        pool: ThreadPoolExecutor,
        parent: _Frame,
        name: bytes,
        entry: Entry,
        *,
        rel_root: Index | None = None,
    ) -> None:
        record = entry.record
        group: _Group | None = None
        first_of: _Group | None = None
        if record.has_hard_link_triple:
            assert record.inode is not None and record.device_loc is not None
            gkey = (record.inode, record.device_loc)
            found = self.groups.get(gkey)
            if found is None:
                base = self.repo.sub if rel_root is None else rel_root
                first_of = _Group(entry.index[len(base) :])
                self.groups[gkey] = first_of
            else:
                group = found
        sources: Sources | None = None
        if group is None:
            try:
                sources = tree.sources(parent.place, entry.index, record)
            except CorruptRepository as error:
                self._bad(str(error))
                if first_of is not None:
                    first_of.done.set()
                return
        self.slots.acquire()
        with self.lock:
            parent.pending += 1
        try:
            future: Future[None] = pool.submit(
                self._file_job, parent, name, entry, sources, group, first_of
            )
        except BaseException:
            if sources is not None:
                sources.close()
            self.slots.release()
            raise
        del future

    def _bad(self, message: str) -> None:
        with self.lock:
            self.result.bad.append(message)
        self.progress.warning(message)

    # ---- work in the pool -------------------------------------------------------------------

    def _file_job(
        self,
        parent: _Frame,
        name: bytes,
        entry: Entry,
        sources: Sources | None,
        group: _Group | None,
        first_of: _Group | None,
    ) -> None:
        try:
            if group is not None:
                self._link(parent, name, entry, group)
            else:
                assert sources is not None
                self._write(parent, name, entry, sources)
                if first_of is not None:
                    first_of.ok = True
        except CorruptRepository as error:
            self._bad(str(error))
        except BaseException as error:
            with self.lock:
                if self.fatal is None:
                    self.fatal = error
        finally:
            if first_of is not None:
                first_of.done.set()
            if sources is not None:
                sources.close()
            self.progress.advance(1)
            self._done(parent)
            self.slots.release()

    def _write(self, parent: _Frame, name: bytes, entry: Entry, sources: Sources) -> None:
        record = entry.record
        label = self._label(entry.index)
        temp = temp_name()
        out = os.open(
            temp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=parent.fd,
        )
        try:
            try:
                digest = Digest(fd_writer(out, os.fsdecode(temp)))
                produce(sources.base, sources.diffs, digest)
                _check(digest, entry, label)
                apply_fd(out, record, entry.eas, entry.acl, self.owners, label, self.warn)
            finally:
                os.close(out)
            place(parent.fd, temp, name, force=self.options.force)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent.fd)
            raise
        with self.lock:
            self.result.files += 1
            self.result.bytes += digest.size

    def _link(self, parent: _Frame, name: bytes, entry: Entry, group: _Group) -> None:
        group.done.wait()
        if not group.ok:
            raise CorruptRepository(
                "not restored: the first file of its hard-link group could not be restored",
                path=self._label(entry.index),
            )
        assert self.root is not None or parent.entry is None
        base_fd = self.root.fd if self.root is not None else parent.fd
        fds: list[int] = []
        try:
            at = base_fd
            for component in group.rel[:-1]:
                at = os.open(component, DIR_FLAGS, dir_fd=at)
                fds.append(at)
            temp = temp_name()
            os.link(group.rel[-1], temp, src_dir_fd=at, dst_dir_fd=parent.fd, follow_symlinks=False)
            try:
                place(parent.fd, temp, name, force=self.options.force)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=parent.fd)
                raise
        finally:
            for fd in fds:
                close_quietly(fd)

    # ---- directories are finished after their contents ---------------------------------------

    def _pop(self, frame: _Frame) -> None:
        with self.lock:
            frame.popped = True
            if frame.pending == 0:
                self._finish(frame)

    def _done(self, frame: _Frame) -> None:
        with self.lock:
            frame.pending -= 1
            if frame.popped and frame.pending == 0:
                self._finish(frame)

    def _finish(self, frame: _Frame) -> None:
        """Called with the lock held, once nothing is pending in ``frame``."""
        try:
            if self.fatal is None and frame.entry is not None:
                if frame.names is not None and self.options.force:
                    for existing in map(os.fsencode, os.listdir(frame.fd)):
                        if existing not in frame.names:
                            remove_entry(frame.fd, existing)
                entry = frame.entry
                apply_fd(
                    frame.fd,
                    entry.record,
                    entry.eas,
                    entry.acl,
                    self.owners,
                    self._label(entry.index),
                    self.warn,
                )
                self.progress.advance(1)
        except BaseException as error:
            if self.fatal is None:
                self.fatal = error
        finally:
            self._close_frame(frame)
            if frame.parent is not None:
                self._done(frame.parent)

    def _close_frame(self, frame: _Frame) -> None:
        if frame in self.frames:
            self.frames.discard(frame)
            close_quietly(frame.fd)
            frame.place.close()

    # ---- stdout ------------------------------------------------------------------------------

    def _to_stdout(self, tree: SourceTree, first: Entry) -> None:
        if first.record.type != "reg":
            raise UsageError(
                f"{show(first.index)!r} is a {_kind_name(first.record.type)} at "
                f"{format_timestring(self.when)}; only a regular file can be written to stdout"
            )
        sub = self.repo.sub
        parent = tree.place_of(sub[:-1])
        try:
            sources = tree.sources(parent, sub, first.record)
        finally:
            parent.close()
        try:
            sys.stdout.flush()
            digest = Digest(fd_writer(sys.stdout.fileno(), "stdout"))
            try:
                produce(sources.base, sources.diffs, digest)
            except OSError as error:
                if error.errno == errno.EPIPE:
                    raise BrokenPipeError(errno.EPIPE, "broken pipe") from None
                raise
            _check(digest, first, self._label(first.index))
        finally:
            sources.close()
        self.result.entries = self.result.files = 1
        self.result.bytes = digest.size


def _check(digest: Digest, entry: Entry, label: str) -> None:
    record = entry.record
    if record.size is not None and digest.size != record.size:
        raise CorruptRepository(
            f"restored {digest.size} bytes but the metadata records {record.size} "
            "(an increment is missing or damaged)",
            path=label,
        )
    if record.sha1_digest is not None and digest.hexdigest() != record.sha1_digest:
        raise CorruptRepository(
            f"restored content has SHA1 {digest.hexdigest()}, the metadata records "
            f"{record.sha1_digest} (an increment is missing or damaged)",
            path=label,
        )


def _kind_name(kind: str) -> str:
    return {
        "dir": "directory",
        "sym": "symbolic link",
        "fifo": "FIFO",
        "sock": "socket",
        "dev": "device",
    }.get(kind, kind)


__all__ = [
    "RdbError",
    "RestoreOptions",
    "RestoreResult",
    "default_workers",
    "limit_heap_growth",
    "restore",
]
