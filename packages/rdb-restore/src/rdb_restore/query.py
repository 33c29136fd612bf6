"""The read-only questions: sessions, files at a time, what changed, compare, verify.

Nothing here writes. ``verify`` rebuilds and checks files of up to 8 MiB in C, many per call
on a thread pool; other files of 1 MiB or more are rebuilt in a thread pool for ``verify`` and
``compare --full`` (smaller ones on the calling thread);
the metadata is streamed, so memory stays flat in the number of files.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from rdb_clikit.protocol import NullProgress, Progress
from rdb_fastio import scan_directory
from rdb_format.eas_acls import ACLEntry
from rdb_format.errors import CorruptRepository, SourceError
from rdb_format.metadata import Record, file_type_of, path_key
from rdb_increment.fsextras import EAs, read_eas_and_acl
from rdb_increment.listing import increment_sizes
from rdb_restore.checks_in_c import CheckBatches
from rdb_restore.content import Digest, hash_source, produce
from rdb_restore.extras import same_acl
from rdb_restore.repo import FILE_FLAGS, Entry, Index, Repo, show
from rdb_restore.restore import default_workers
from rdb_restore.sources import Place, Sources, SourceTree

# ---- sessions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionInfo:
    """One restorable session: its time, the bytes of its increments, and what restoring it
    needs in total (the mirror plus every increment from it on)."""

    time: int
    size: int
    total_size: int
    current: bool


def list_sessions(repo: Repo) -> list[SessionInfo]:
    """Every restorable session, oldest first (no-change sessions included, size 0)."""
    sizes = increment_sizes(repo.layout)
    by_time = {s.time: s.size for s in sizes if not s.current}
    mirror = next((s.size for s in sizes if s.current), 0)
    current = repo.current_time
    out: list[SessionInfo] = []
    total = mirror
    for when in sorted(repo.sessions, reverse=True):
        if when == current:
            out.append(SessionInfo(when, mirror, mirror, True))
            continue
        size = by_time.get(when, 0)
        total += size
        out.append(SessionInfo(when, size, total, False))
    out.reverse()
    return out


# ---- files ----------------------------------------------------------------------------------


def list_files(repo: Repo, when: int) -> Iterator[Entry]:
    """The files under the repository's sub-path at session ``when``, in metadata order."""
    return repo.entries_at(when)


ChangeKind = Literal["new", "deleted", "changed"]

_COMPARED = (
    "type",
    "size",
    "sha1_digest",
    "sym_data",
    "device_num",
    "mod_time",
    "uid",
    "gid",
    "permissions",
    "uname",
    "gname",
)
# Compared only when the older record has them (rdiff-backup compares the keys of the old one).
_COMPARED_IF_OLD = ("num_hard_links", "inode", "device_loc", "sha1_digest")


def _differs(old: Entry, new: Entry) -> bool:
    """rdiff-backup's notion of a change: any recorded attribute, the link count, EAs, ACL."""
    a, b = old.record, new.record
    if any(getattr(a, f) != getattr(b, f) for f in _COMPARED):
        return True
    if any(getattr(a, f) not in (None, getattr(b, f)) for f in _COMPARED_IF_OLD):
        return True
    return old.eas != new.eas or old.acl != new.acl


def list_changed(repo: Repo, since: int) -> Iterator[tuple[ChangeKind, Record]]:
    """What changed between session ``since`` and the current mirror, under the sub-path:
    ``new`` (created since), ``deleted`` (gone since) or ``changed``, in metadata order."""
    old = ((e.index, e) for e in repo.entries_at(since))
    new = ((e.index, e) for e in repo.entries_at(repo.current_time))
    a, b = next(old, None), next(new, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield "deleted", a[1].record
            a = next(old, None)
        elif a is None or b[0] < a[0]:
            yield "new", b[1].record
            b = next(new, None)
        else:
            if _differs(a[1], b[1]):
                yield "changed", b[1].record
            a, b = next(old, None), next(new, None)


# ---- walking the repository side with open places -------------------------------------------


def _walk(repo: Repo, when: int, tree: SourceTree) -> Iterator[tuple[Entry, Place]]:
    """Each entry under the sub-path with the place of its parent directory (main thread)."""
    return walk_places(tree, repo.entries_at(when))


def walk_places(tree: SourceTree, entries: Iterable[Entry]) -> Iterator[tuple[Entry, Place]]:
    """Each of ``entries`` (metadata order) with the place of its parent directory, valid
    until the walk moves on (one thread)."""
    stack: list[tuple[Index, Place]] = []
    try:
        for entry in entries:
            key = entry.index
            while stack and not (
                len(key) > len(stack[-1][0]) and key[: len(stack[-1][0])] == stack[-1][0]
            ):
                stack.pop()[1].close()
            if not stack:
                parent = tree.place_of(key[:-1]) if key else tree.place_of(())
                stack.append((key[:-1], parent))
            yield entry, stack[-1][1]
            if entry.record.type == "dir" and key:
                stack.append((key, tree.descend(stack[-1][1], key[-1])))
            elif entry.record.type == "dir":
                stack.append((key, tree.place_of(())))
    finally:
        for _, place in stack:
            place.close()


#: A file smaller than this is checked on the walk's thread: handing it to the pool costs more
#: (with two threads busy, each short system call hands the GIL to the other, and with two
#: CPUs each hand-off is a cross-CPU wake-up; docs/benchmarks.md).
INLINE_FILE = 1 << 20


def _small(*sizes: int | None) -> bool:
    return all((size or 0) < INLINE_FILE for size in sizes)


def _pool_map(
    jobs: Iterator[tuple[Entry, Sources]],
    work: Callable[[Entry, Sources], None],
    workers: int | None,
    on_error: Callable[[Entry, CorruptRepository], None],
) -> None:
    """Run ``work`` over the jobs: small files here, the others in a thread pool (a bounded
    number in flight)."""
    count = workers or default_workers()
    slots = threading.BoundedSemaphore(count * 8)
    fatal: list[BaseException] = []

    def run(entry: Entry, sources: Sources) -> None:
        try:
            work(entry, sources)
        except CorruptRepository as error:
            on_error(entry, error)
        except BaseException as error:
            fatal.append(error)
        finally:
            sources.close()
            slots.release()

    with ThreadPoolExecutor(count, thread_name_prefix="rdb-restore") as pool:
        for entry, sources in jobs:
            if fatal:
                sources.close()
                break
            slots.acquire()
            if _small(entry.record.size):
                run(entry, sources)
            else:
                pool.submit(run, entry, sources)
    if fatal:
        raise fatal[0]


# ---- verify ---------------------------------------------------------------------------------


@dataclass
class VerifyResult:
    """``bad``: one line per file whose rebuilt content does not match its recorded SHA1 (or
    could not be rebuilt). ``unchecked``: regular files without a recorded SHA1."""

    time: int
    checked: int = 0
    bytes: int = 0
    bad: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad


def verify(
    repo: Repo, when: int, *, workers: int | None = None, progress: Progress | None = None
) -> VerifyResult:
    """Rebuild every regular file at ``when`` and check it against its recorded SHA1: in C,
    many per call on a thread pool (:mod:`rdb_restore.checks_in_c`), or the general way."""
    progress = progress or NullProgress()
    result = VerifyResult(when)
    lock = threading.Lock()
    tree = SourceTree(repo, when)
    # In a hard-link group only the first path carries the digest; the others are checked
    # against it.
    group_digest: dict[tuple[int, int], str] = {}

    def expected(record: Record) -> str | None:
        if record.sha1_digest is not None:
            if record.has_hard_link_triple:
                assert record.inode is not None and record.device_loc is not None
                group_digest[(record.inode, record.device_loc)] = record.sha1_digest
            return record.sha1_digest
        if record.has_hard_link_triple:
            assert record.inode is not None and record.device_loc is not None
            return group_digest.get((record.inode, record.device_loc))
        return None

    digests: dict[Index, str] = {}

    def jobs(batches: CheckBatches) -> Iterator[tuple[Entry, Sources]]:
        for entry, parent in _walk(repo, when, tree):
            if entry.record.type != "reg":
                continue
            want = expected(entry.record)
            if want is None:
                result.unchecked.append(show(entry.index))
                progress.warning(f"{show(entry.index)}: no SHA1 recorded; not checked")
                continue
            if batches.take(entry, parent, want):
                continue
            try:
                sources = tree.sources(parent, entry.index, entry.record)
            except CorruptRepository as error:
                bad(entry, error)
                continue
            digests[entry.index] = want
            yield entry, sources

    def bad(entry: Entry, error: CorruptRepository) -> None:
        message = f"{show(entry.index)}: cannot be rebuilt: {error}"
        with lock:
            result.bad.append(message)
        progress.warning(message)

    def matched(files: int, size: int) -> None:
        with lock:
            result.checked += files
            result.bytes += size
        progress.advance(files)

    def checked(entry: Entry, size: int, sha1: str, want: str) -> None:
        if sha1 == want:
            matched(1, size)
            return
        message = f"{show(entry.index)}: SHA1 {sha1} does not match the recorded {want}"
        with lock:
            result.checked += 1
            result.bytes += size
            result.bad.append(message)
        progress.warning(message)
        progress.advance(1)

    def work(entry: Entry, sources: Sources) -> None:
        digest = hash_source(sources.base, sources.diffs)
        with lock:
            want = digests.pop(entry.index)
        checked(entry, digest.size, digest.hexdigest(), want)

    def redo(entry: Entry, want: str) -> None:
        """A file C could not give: the general way (on the directory opened again, the
        walk having moved on) says what is wrong."""
        parent = tree.place_of(entry.index[:-1])
        try:
            sources = tree.sources(parent, entry.index, entry.record)
        except CorruptRepository as error:
            bad(entry, error)
            return
        finally:
            parent.close()
        with lock:
            digests[entry.index] = want
        try:
            work(entry, sources)
        except CorruptRepository as error:
            bad(entry, error)
        finally:
            sources.close()

    count = workers or default_workers()
    progress.start("verifying", None)
    try:
        with CheckBatches(tree, count, matched, checked, redo) as batches:
            _pool_map(jobs(batches), work, count, bad)
    finally:
        tree.close()
        progress.finish()
    result.bad.sort()
    return result


# ---- compare --------------------------------------------------------------------------------

Method = Literal["meta", "hash", "full"]


@dataclass(frozen=True)
class Difference:
    """One line of ``compare``: ``new`` (only in the source), ``deleted`` (only in the
    backup) or ``changed`` (with what differs)."""

    kind: ChangeKind
    path: str
    what: str = ""

    def line(self) -> str:
        suffix = f" ({self.what})" if self.what else ""
        return f"{self.kind}: {self.path}{suffix}"


_kind = file_type_of


def _walk_source(
    root: bytes, top_excluded: bool, xattrs: bool
) -> Iterator[tuple[Index, os.stat_result, int]]:
    """Every entry under ``root`` (itself first) in metadata order, lstat'ed, with the size of
    its extended attribute list when ``xattrs`` (0: it has none, so no EAs and no ACL; -1: not
    known). Each directory is listed and its entries stat'ed by one C call
    (:func:`rdb_fastio.scan_directory`; ``os.listdir`` and an ``os.lstat`` per entry were a
    fifth of a compare)."""

    def rec(
        index: Index, path: bytes, st: os.stat_result, xattr_size: int
    ) -> Iterator[tuple[Index, os.stat_result, int]]:
        yield index, st, xattr_size
        if not stat.S_ISDIR(st.st_mode):
            return
        try:
            entries = scan_directory(path, xattrs=xattrs)
        except OSError as error:
            raise SourceError(f"cannot list: {error.strerror}", path=path) from None
        for name, child_st, code, child_xattrs in entries:
            if top_excluded and not index and name == b"rdiff-backup-data":
                continue
            child = os.path.join(path, name)
            if child_st is None:
                if code == errno.ENOENT:  # gone since it was listed
                    continue
                raise SourceError(f"cannot read: {os.strerror(code)}", path=child)
            yield from rec((*index, name), child, child_st, child_xattrs)

    try:
        top = os.lstat(root)
    except OSError as error:
        raise SourceError(f"cannot read: {error.strerror}", path=root) from None
    yield from rec((), root, top, -1)


def _meta_differences(
    entry: Entry,
    st: os.stat_result,
    source: bytes,
    extras: tuple[bool, bool],
    xattr_size: int = -1,
) -> list[str]:
    """What differs between the recorded ``entry`` and the local file ``source`` (lstat'ed
    as ``st``), as rdiff-backup's metadata comparison sees it; ``extras``: whether the session
    records EAs and ACLs (only then are they compared); ``xattr_size``: the size of the file's
    extended attribute list (0: none, so neither is read; -1: not known)."""
    record = entry.record
    kind = _kind(st.st_mode)
    if kind != record.type:
        return [f"type {record.type} -> {kind}"]
    what: list[str] = []
    perms = stat.S_IMODE(st.st_mode)
    if kind != "sym" and record.permissions is not None and perms != record.permissions:
        what.append("permissions")
    if _IS_ROOT and (st.st_uid != record.uid or st.st_gid != record.gid):
        what.append("owner")
    mtime = st.st_mtime_ns // 1_000_000_000
    if kind not in ("sym", "dev") and record.mod_time not in (None, mtime):
        what.append("mtime")
    if kind == "reg" and st.st_size != record.size:
        what.append("size")
    if kind == "sym" and os.readlink(source) != record.sym_data:
        what.append("target")
    device = (os.major(st.st_rdev), os.minor(st.st_rdev))
    if kind == "dev" and record.device_num is not None and device != record.device_num[1:]:
        what.append("device")
    eas_recorded, acls_recorded = extras
    acls_recorded = acls_recorded and kind != "sym"
    if not (eas_recorded or acls_recorded):
        return what
    eas: EAs | None = ()
    acl: tuple[ACLEntry, ...] | None = ()
    if xattr_size != 0:
        eas, acl = read_eas_and_acl(source, kind == "dir", eas=eas_recorded, acls=acls_recorded)
    if eas_recorded and eas != entry.eas:
        what.append("extended attributes")
    if acls_recorded and not same_acl(acl or (), entry.acl):
        what.append("ACL")
    return what


#: Owners are compared only when run as root (rdiff-backup's rule: others cannot set them).
_IS_ROOT = os.geteuid() == 0


@dataclass
class CompareResult:
    time: int
    compared: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.differences


def compare(
    source: str | os.PathLike[str],
    repo: Repo,
    when: int,
    *,
    method: Method = "meta",
    workers: int | None = None,
    progress: Progress | None = None,
) -> CompareResult:
    """Compare the tree ``source`` with the backup of the repository's sub-path at ``when``:
    metadata always; with ``hash`` the SHA1 of each source file against the recorded one;
    with ``full`` each file's bytes against the file rebuilt from the repository (large files
    in a thread pool)."""
    progress = progress or NullProgress()
    root = os.fsencode(source)
    result = CompareResult(when)
    lock = threading.Lock()
    tree = SourceTree(repo, when)
    group_digest: dict[tuple[int, int], str] = {}
    count = workers or default_workers()
    slots = threading.BoundedSemaphore(count * 8)
    fatal: list[BaseException] = []

    def add(diff: Difference) -> None:
        with lock:
            result.differences.append(diff)

    def recorded(record: Record) -> str | None:
        want = record.sha1_digest
        if record.has_hard_link_triple:
            assert record.inode is not None and record.device_loc is not None
            gkey = (record.inode, record.device_loc)
            if want is not None:
                group_digest[gkey] = want
            else:
                want = group_digest.get(gkey)
        return want

    def job(
        index: Index,
        path: bytes,
        size: int,
        what: list[str],
        want: str | None,
        sources: Sources | None,
    ) -> None:
        try:
            if sources is None:
                if want is not None and _hash_file(path, size) != want:
                    what.append("data")
            elif not _same_content(path, sources):
                what.append("data")
        except CorruptRepository as error:
            what.append(f"cannot rebuild: {error}")
        except BaseException as error:
            fatal.append(error)
        finally:
            if sources is not None:
                sources.close()
            slots.release()
        if what:
            add(Difference("changed", show(index), ", ".join(what)))

    progress.start("comparing", None)
    extras = repo.recorded_extras(when)
    pool = ThreadPoolExecutor(count, thread_name_prefix="rdb-restore")
    try:
        source_iter = _walk_source(root, top_excluded=not repo.sub, xattrs=any(extras))
        # the repository's directories are opened only to rebuild files (not for metadata)
        repo_iter: Iterator[tuple[Entry, Place | None]] = (
            _walk(repo, when, tree)
            if method != "meta"
            else ((entry, None) for entry in repo.entries_at(when))
        )
        prefix = len(repo.sub)
        s = next(source_iter, None)
        r = next(repo_iter, None)
        while (s is not None or r is not None) and not fatal:
            r_key = r[0].index[prefix:] if r is not None else None
            if r_key is None or (s is not None and s[0] < r_key):
                assert s is not None
                add(Difference("new", show(s[0])))
                s = next(source_iter, None)
                continue
            if s is None or r_key < s[0]:
                add(Difference("deleted", show(r_key)))
                r = next(repo_iter, None)
                continue
            assert r is not None
            entry, parent = r
            index, st, xattr_size = s
            path = os.path.join(root, *index) if index else root
            what = _meta_differences(entry, st, path, extras, xattr_size)
            result.compared += 1
            progress.advance(1)
            if method != "meta" and entry.record.type == "reg" and stat.S_ISREG(st.st_mode):
                # the parent's place is only valid until the repository walk moves on
                assert parent is not None
                content = _content_job(tree, parent, entry, method == "full", recorded)
                if isinstance(content, CorruptRepository):
                    what.append(f"cannot rebuild: {content}")
                else:
                    slots.acquire()
                    if _small(entry.record.size, st.st_size):
                        job(index, path, st.st_size, what, *content)
                    else:
                        pool.submit(job, index, path, st.st_size, what, *content)
                    what = []
            if what:
                add(Difference("changed", show(index), ", ".join(what)))
            s, r = next(source_iter, None), next(repo_iter, None)
    finally:
        pool.shutdown(wait=True)
        tree.close()
        progress.finish()
    if fatal:
        raise fatal[0]
    result.differences.sort(key=lambda d: path_key(os.fsencode(d.path)))
    return result


def _content_job(
    tree: SourceTree,
    parent: Place,
    entry: Entry,
    full: bool,
    recorded: Callable[[Record], str | None],
) -> tuple[str | None, Sources | None] | CorruptRepository:
    """What the content check of ``entry`` needs: its recorded SHA1 (``--hash``) or its
    opened sources (``--full``); the error if they cannot be opened."""
    want = recorded(entry.record)
    if not full:
        return want, None
    try:
        return want, tree.sources(parent, entry.index, entry.record)
    except CorruptRepository as error:
        return error


def _open_source(path: bytes) -> int:
    try:
        fd = os.open(path, FILE_FLAGS)
    except OSError as error:
        raise SourceError(f"cannot read: {error.strerror}", path=path) from None
    os.set_blocking(fd, True)
    return fd


def _hash_file(path: bytes, size: int) -> str:
    """The SHA1 of the file at ``path``, read in one call if it still has ``size`` bytes (a
    1 MiB read of a small file costs a 1 MiB allocation, an mmap and its page faults)."""
    fd = _open_source(path)
    try:
        digest = Digest()
        chunk = min(size + 1, 1 << 20)
        while True:
            data = os.read(fd, chunk)
            digest(data)
            if len(data) < chunk:  # a short read of a regular file is its end (no EOF read)
                return digest.hexdigest()
            chunk = 1 << 20
    finally:
        os.close(fd)


def _same_content(path: bytes, sources: Sources) -> bool:
    fd = _open_source(path)
    try:
        offset = 0
        equal = True

        def check(data: bytes | memoryview) -> None:
            nonlocal offset, equal
            if equal and os.pread(fd, len(data), offset) != bytes(data):
                equal = False
            offset += len(data)

        produce(sources.base, sources.diffs, check)
        return equal and not os.pread(fd, 1, offset)
    finally:
        os.close(fd)


__all__ = [
    "CompareResult",
    "Difference",
    "SessionInfo",
    "VerifyResult",
    "compare",
    "list_changed",
    "list_files",
    "list_sessions",
    "verify",
]
