"""The source side of a backup: walk, stat, and read + hash the files the repository asks for.

:func:`run_source` is everything the source machine does. It talks to the repository side only
through the two channels of :mod:`rdb_mirror.protocol`: it sends entries (metadata order) as
fast as the repository grants credit, and answers content requests on a thread pool while the
walk goes on (SHA1 computed as the file is read, on the pool).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from rdb_fastio import ScanAhead, ScanEntry
from rdb_format.eas_acls import ACLEntry
from rdb_format.errors import ProtocolError
from rdb_format.layout import DATA_DIR
from rdb_increment.fsextras import EAs
from rdb_mirror.deltas import MISMATCH, SIGNATURE_MAX, SIGNATURES_HELD, send_delta
from rdb_mirror.fsmeta import (
    IS_ROOT,
    Capabilities,
    Index,
    Names,
    read_eas_and_acl,
    record_from_stat,
)
from rdb_mirror.protocol import (
    Batch,
    Chunk,
    Content,
    ContentEnd,
    ContentFailed,
    ContentRequest,
    Credit,
    DeltaRequest,
    Entry,
    Finish,
    LocalFile,
    Problem,
    Receiver,
    RepositoryMessage,
    Sender,
    SignatureChunk,
    SourceMessage,
    WalkDone,
    stat_key,
)
from rdb_mirror.workers import Workers
from rdiff.errors import RdiffError

__all__ = [
    "CHUNK",
    "Batcher",
    "IncludeAll",
    "RequestHandler",
    "Selection",
    "SourceOptions",
    "run_source",
    "serve",
    "source_path",
    "stat_key",
    "walk",
    "walk_failure",
]

CHUNK = 1 << 20
_DATA_DIR = DATA_DIR.encode()
_O_NOATIME = getattr(os, "O_NOATIME", 0) if IS_ROOT else 0


class Selection(Protocol):
    """What the walk asks about every entry below the source root (the root is always in).

    ``decide`` gets the index (path components from the source root), the full path and the
    ``lstat`` result, and answers True (include; a directory is descended), False (exclude; a
    directory with everything below it), or None: a directory that is included only if
    something below it is (rdiff-backup's "scanned" parents); for any other entry None is
    an exclusion.
    """

    def decide(self, index: Index, path: bytes, st: os.stat_result) -> bool | None: ...


class IncludeAll:
    """The default selection: everything."""

    def decide(self, index: Index, path: bytes, st: os.stat_result) -> bool | None:
        return True


@dataclass(frozen=True)
class SourceOptions:
    root: bytes
    selection: Selection
    capabilities: Capabilities
    workers: int = 4
    window: int = 4096  # entries the walk may run ahead of the repository side
    #: in process: hand a large file's descriptor over (LocalFile) instead of its chunks
    local_copy: bool = False


class _Credits:
    def __init__(self, initial: int) -> None:
        self._available = initial
        self._cond = threading.Condition()
        self.closed = False

    def try_take(self) -> bool:
        """Take a credit if one is available now."""
        with self._cond:
            if self._available > 0 and not self.closed:
                self._available -= 1
                return True
            return False

    def take(self) -> bool:
        with self._cond:
            while self._available <= 0 and not self.closed:
                self._cond.wait()
            if self.closed:
                return False
            self._available -= 1
            return True

    def give(self, count: int) -> None:
        with self._cond:
            self._available += count
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Batcher:
    """Collects the walk's messages and sends them as :class:`Batch` es (in order)."""

    def __init__(self, out: Sender[SourceMessage], size: int = 128) -> None:
        self._out = out
        self._size = size
        self._buffer: list[Entry | Problem] = []

    def send(self, message: Entry | Problem) -> None:
        self._buffer.append(message)
        if len(self._buffer) >= self._size:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            buffer, self._buffer = self._buffer, []
            self._out.send(buffer[0] if len(buffer) == 1 else Batch(tuple(buffer)))


def source_path(root: bytes, index: Index) -> bytes:
    return os.path.join(root, *index) if index else root


def walk(options: SourceOptions, out: Batcher) -> Generator[Entry, None, None]:
    """Entries in metadata order; problems are sent to ``out`` directly."""
    root = options.root
    names = Names()
    caps = options.capabilities
    selection = options.selection

    no_eas: EAs | None = () if caps.eas else None  # what an entry without xattrs has
    no_acl: tuple[ACLEntry, ...] | None = () if caps.acls else None
    want_xattrs = caps.eas or caps.acls

    def describe(
        index: Index, path: bytes, st: os.stat_result, xattr_bytes: int = -1
    ) -> Entry | None:
        """``xattr_bytes``: the size of its extended attribute list if known (0: none, so no
        call is needed to read its EAs or ACL)."""
        target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
        record = record_from_stat(index, st, names, target)
        if record is None:
            out.send(Problem(index, "ListError", "unknown file type, skipped"))
            return None
        eas = acl = None
        if record.type != "sym":
            if xattr_bytes == 0:
                eas, acl = no_eas, no_acl
            else:
                is_dir = record.type == "dir"
                eas, acl = read_eas_and_acl(path, is_dir, eas=caps.eas, acls=caps.acls)
        return Entry(index, record, stat_key(st), st.st_mtime_ns, st.st_atime_ns, eas, acl)

    decide = selection.decide
    is_dir_mode = stat.S_ISDIR
    # the directories the walk will list are scanned ahead on a C thread (rdb_fastio.scan:
    # the walk's thread is the busy one): those it submits, the subdirectories of each one it
    # lists, once decided; when everything is included, rdb_fastio queues the subdirectories
    # of every directory listed itself (not the repository's directory), and nothing is
    # submitted. A directory is read a little before its turn: a backup is not a snapshot
    everything = type(selection) is IncludeAll
    root_prefix = root if root.endswith(b"/") else root + b"/"
    ahead = ScanAhead(xattrs=want_xattrs, explore=root_prefix + _DATA_DIR if everything else None)
    room = ahead.capacity

    def listing_of(path: bytes) -> tuple[Iterable[ScanEntry], bool]:
        """The listing of ``path`` (names and lstat in one C call, rdb_fastio.scan: no GIL
        hand-off per file; scanned ahead or now), and whether its subdirectories are queued
        already."""
        listing, _ = ahead.listing(path)
        return listing, everything  # (then the thread queued them, or the listing's call did)

    def rec(
        index: Index,
        path: bytes,
        st: os.stat_result,
        held: list[Entry],
        scanned: tuple[Iterable[ScanEntry], bool] | None = None,
    ) -> Iterator[Entry]:
        """Walk one directory ``index`` (its entry is already decided or held; ``scanned``:
        its listing, if already read, as :func:`listing_of` gives it)."""
        if scanned is None:
            try:
                scanned = listing_of(path)
            except OSError as error:
                out.send(Problem(index, "ListError", f"cannot list: {error.strerror}"))
                if held:
                    yield from held
                    held.clear()
                return
        listing, queued = scanned
        prefix = path if path.endswith(b"/") else path + b"/"  # os.path.join's, once
        # its subdirectories, decided now (selection is a pure function of the entry) so
        # that those the walk will list are submitted to be scanned ahead
        decided: dict[bytes, bool | None] = {}
        if not queued and type(listing) is list:  # (not a huge directory's lazy listing)
            wanted: list[bytes] = []
            for name, child_st, _, _ in listing:
                if child_st is None or not is_dir_mode(child_st.st_mode):
                    continue
                if not index and name == _DATA_DIR:
                    continue
                child_path = prefix + name
                verdict = decide((*index, name), child_path, child_st)
                decided[name] = verdict
                if verdict is not False and len(wanted) < room:
                    wanted.append(child_path)
            if wanted:
                ahead.submit(wanted)
        for name, child_st, stat_error, xattr_bytes in listing:
            if not index and name == _DATA_DIR:
                continue
            child = (*index, name)
            child_path = prefix + name
            if child_st is None:
                if stat_error != errno.ENOENT:  # else it vanished since it was listed
                    why = os.strerror(stat_error)
                    out.send(Problem(child, "ListError", f"cannot stat: {why}"))
                continue
            is_dir = is_dir_mode(child_st.st_mode)
            verdict = decided[name] if is_dir and decided else decide(child, child_path, child_st)
            if verdict is False or (verdict is None and not is_dir):
                continue
            try:
                entry = describe(child, child_path, child_st, xattr_bytes)
            except OSError as error:
                if error.errno == errno.ENOENT:
                    continue
                out.send(Problem(child, "ListError", f"cannot read: {error.strerror}"))
                continue
            if entry is None:
                continue
            if verdict is True:
                if held:
                    yield from held
                    held.clear()
                below = None
                if is_dir:
                    # listed before its entry goes out: an unlistable directory is sent as
                    # such (its old contents are kept); the listing is then walked below
                    try:
                        below = listing_of(child_path)
                    except OSError as error:
                        why = error.strerror or str(error)
                        out.send(Problem(child, "ListError", f"cannot list: {why}"))
                        yield Entry(
                            entry.index,
                            entry.record,
                            entry.stat_key,
                            entry.mtime_ns,
                            entry.atime_ns,
                            entry.eas,
                            entry.acl,
                            unlisted=True,
                        )
                        continue
                yield entry
                if below is not None:
                    yield from rec(child, child_path, child_st, held, below)
            else:  # a directory included only if something below it is
                held.append(entry)
                yield from rec(child, child_path, child_st, held)
                if held and held[-1] is entry:
                    held.pop()

    try:
        root_st = os.lstat(root)
        first = describe((), root, root_st)
        if first is None:
            return
        yield first
        yield from rec((), root, root_st, [])
    finally:  # also when the walk is left early (closed, or failed): no thread left behind
        ahead.close()


def _open_checked(
    options: SourceOptions, request: ContentRequest | DeltaRequest, out: Sender[SourceMessage]
) -> tuple[int, os.stat_result] | None:
    """The requested file, opened, if it still has the request's stat key (else the request
    is failed here and None returned)."""
    path = source_path(options.root, request.index)
    # O_NONBLOCK: a FIFO put at the path since the walk would wait for a writer (maybe
    # forever); it fails the check below, and a regular file is read without the flag
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags | _O_NOATIME)
    except OSError as error:
        if error.errno == errno.EPERM and _O_NOATIME:
            try:
                fd = os.open(path, flags)
            except OSError as again:
                out.send(ContentFailed(request.request, _why(again)))
                return None
        else:
            out.send(ContentFailed(request.request, _why(error)))
            return None
    try:
        before = os.fstat(fd)
        if stat.S_ISREG(before.st_mode) and stat_key(before) == request.stat_key:
            os.set_blocking(fd, True)
            return fd, before
    except OSError as error:
        os.close(fd)
        out.send(ContentFailed(request.request, _why(error)))
        return None
    os.close(fd)
    out.send(ContentFailed(request.request, "changed since it was listed; not updated"))
    return None


def serve(options: SourceOptions, request: ContentRequest, out: Sender[SourceMessage]) -> None:
    """Read one requested file, sending chunks then its SHA1 (or a failure)."""
    opened = _open_checked(options, request, out)
    if opened is None:
        return
    fd, before = opened
    try:
        expected = before.st_size
        if expected < CHUNK:
            # a small file: one read (a short read of a regular file is its end), one message.
            # Another size than listed fails as _end would, without reading the rest: a file
            # that grew may be of any size, and still growing faster than it is read
            data = os.read(fd, expected + 1)
            if len(data) != expected or stat_key(os.fstat(fd)) != request.stat_key:
                out.send(ContentFailed(request.request, MISMATCH))
                return
            out.send(Content(request.request, data, hashlib.sha1(data).hexdigest()))
            return
        if options.local_copy:
            _hand_over(request, fd, before, out)
            return
        digest = hashlib.sha1()
        size = 0
        while True:
            data = os.read(fd, CHUNK)
            if not data:
                break
            digest.update(data)
            size += len(data)
            out.send(Chunk(request.request, data))
        _end(request, fd, size, digest.hexdigest(), before, out)
    except OSError as error:
        out.send(ContentFailed(request.request, _why(error)))
    finally:
        os.close(fd)


def _hand_over(
    request: ContentRequest, fd: int, before: os.stat_result, out: Sender[SourceMessage]
) -> None:
    """In process: the repository side copies the file from a duplicate of ``fd`` in the
    kernel while this thread reads it for the SHA1 (measured: benchmarks/
    bench_copy_file_range.py; faster than sending chunks to be written for large files only)."""
    copy = os.dup(fd)
    try:
        out.send(LocalFile(request.request, copy))
    except BaseException:
        os.close(copy)
        raise
    digest = hashlib.sha1()
    size = 0
    while data := os.read(fd, CHUNK):
        digest.update(data)
        size += len(data)
    _end(request, fd, size, digest.hexdigest(), before, out)


def _end(
    request: ContentRequest | DeltaRequest,
    fd: int,
    size: int,
    sha1: str,
    before: os.stat_result,
    out: Sender[SourceMessage],
) -> None:
    """ContentEnd if the file did not change while it was read, else ContentFailed."""
    after = os.fstat(fd)
    if stat_key(after) != request.stat_key or size != before.st_size:
        out.send(ContentFailed(request.request, MISMATCH))
        return
    out.send(ContentEnd(request.request, size, sha1))


def _serve_delta(
    options: SourceOptions,
    request: DeltaRequest,
    signature: list[bytes],
    out: Sender[SourceMessage],
) -> None:
    """Send the delta of one requested file against the repository's signature."""
    opened = _open_checked(options, request, out)
    if opened is None:
        return
    fd, before = opened
    try:
        size, sha1 = send_delta(fd, before.st_size, request.request, signature, out)
        _end(request, fd, size, sha1, before, out)
    except OSError as error:
        out.send(ContentFailed(request.request, _why(error)))
    except RdiffError as error:
        out.send(ContentFailed(request.request, f"cannot make a delta: {error}"))
    finally:
        os.close(fd)


def _why(error: OSError) -> str:
    if error.errno == errno.ENOENT:
        return "vanished before it could be read; not backed up"
    if error.errno == errno.ELOOP:
        return "changed into a symlink since it was listed; not updated"
    return f"cannot read: {error.strerror or error}"


class RequestHandler:
    """What the source side does with each of the repository side's messages: credits for
    the walk, signatures kept for their delta request, and content and delta requests served
    on ``pool``, whose jobs answer through ``out`` (or, given ``serve_small``, a request for
    a file smaller than one chunk is handed to it)."""

    def __init__(
        self,
        options: SourceOptions,
        pool: Workers,
        give_credit: Callable[[int], None],
        out: Sender[SourceMessage],
        *,
        serve_small: Callable[[ContentRequest], None] | None = None,
    ) -> None:
        self._serve = partial(serve, options)
        self._serve_delta = partial(_serve_delta, options)
        self._pool = pool
        self._give_credit = give_credit
        self._out = out
        self._serve_small = serve_small
        self._signatures: dict[int, list[bytes]] = {}
        self._signature_bytes: dict[int, int] = {}

    def handle(self, message: RepositoryMessage) -> bool:
        """Act on ``message``; False once it is :class:`Finish`."""
        if isinstance(message, Finish):
            return False
        if isinstance(message, Credit):
            self._give_credit(message.entries)
        elif isinstance(message, SignatureChunk):
            number = message.request
            self._signatures.setdefault(number, []).append(message.data)
            held = self._signature_bytes
            held[number] = held.get(number, 0) + len(message.data)
            if held[number] > SIGNATURE_MAX:
                raise ProtocolError(f"a signature of more than {SIGNATURE_MAX} bytes")
            if sum(held.values()) > SIGNATURES_HELD:
                raise ProtocolError(
                    f"more than {SIGNATURES_HELD} bytes of signatures without requests"
                )
        elif isinstance(message, DeltaRequest):
            self._signature_bytes.pop(message.request, None)
            chunks = self._signatures.pop(message.request, [])
            self._pool.submit(answered_anyway, self._out, self._serve_delta, message, chunks)
        else:
            self._signatures.pop(message.request, None)  # a delta that fell back to content
            self._signature_bytes.pop(message.request, None)
            if self._serve_small is not None and message.stat_key[0] < CHUNK:
                self._serve_small(message)
            else:
                self._pool.submit(answered_anyway, self._out, self._serve, message)
        return True


def internal_failure(request: int, error: Exception) -> ContentFailed:
    """The answer to a request whose job failed unexpectedly (a bug): the file is reported
    and not updated, and the repository side does not wait forever for an answer."""
    return ContentFailed(request, f"cannot read: internal error ({type(error).__name__}: {error})")


def answered_anyway(
    out: Sender[SourceMessage],
    job: Callable[..., None],
    request: ContentRequest | DeltaRequest,
    *rest: object,
) -> None:
    """Pool job: ``job(request, *rest, out)``, which answers ``request`` on ``out``; should it
    fail unexpectedly, ``request`` is answered failed instead."""
    try:
        job(request, *rest, out)
    except Exception as error:
        out.send(internal_failure(request.request, error))


def walk_failure(problem: BaseException) -> str:
    """How :class:`WalkDone` tells the repository side why the walk stopped."""
    if not isinstance(problem, OSError):
        return str(problem)
    if problem.filename is not None:
        return f"{os.fsdecode(problem.filename)}: {problem.strerror or problem}"
    return _why(problem)


def run_source(
    options: SourceOptions, inbox: Receiver[RepositoryMessage], out: Sender[SourceMessage]
) -> None:
    """The whole source side: walk and send entries; serve content requests until Finish."""
    credits = _Credits(options.window)
    pool = Workers(options.workers, "rdb-source")
    failure: list[BaseException] = []
    handler = RequestHandler(options, pool, credits.give, out)

    def requests() -> None:
        try:
            while handler.handle(inbox.receive()):
                pass
        except BaseException as error:
            failure.append(error)
        finally:
            credits.close()

    server = threading.Thread(target=requests, name="rdb-source-requests", daemon=True)
    server.start()
    count = 0
    batcher = Batcher(out)
    entries = walk(options, batcher)
    try:
        for entry in entries:
            if not credits.try_take():
                batcher.flush()  # the repository side must see them before it grants more
                if not credits.take():
                    break
            batcher.send(entry)
            count += 1
    except BaseException as error:  # reported to the repository side as the end of the walk
        failure.append(error)
    finally:
        entries.close()  # a walk left early stops scanning ahead now
        batcher.flush()
        out.send(WalkDone(count, walk_failure(failure[0]) if failure else None))
    server.join()
    pool.shutdown()
    if failure:
        raise failure[0]
