"""``rdb-restore --server``: the repository's side of a remote restore, list or verify.

It reads one request, answers it with a stream of messages (:mod:`rdb_restore.protocol`)
and ends with :class:`Done` or :class:`Failed`. A restore walks the session's metadata with
the matching repository directories (as a local restore does), opens each regular file's
sources in the walk and rebuilds the file on a worker pool, up to :data:`WINDOW` files ahead
of the one being sent: the stream stays in metadata order and the link stays busy. Memory is
bounded: each file in the window holds at most :data:`QUEUED` chunks.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from rdb_format.errors import CorruptRepository, RdbError
from rdb_format.metadata import Record
from rdb_remote.connection import Connection
from rdb_restore.content import produce
from rdb_restore.protocol import (
    CHUNK,
    REQUESTS,
    SMALL,
    BadFile,
    Batch,
    Chunk,
    Done,
    Failed,
    FileEnd,
    FileStart,
    Item,
    ListFilesRequest,
    ListRequest,
    Records,
    RestoreRequest,
    Session,
    SessionRow,
    Sessions,
    SmallFile,
    VerifyReport,
    VerifyRequest,
)
from rdb_restore.query import list_sessions, verify, walk_places
from rdb_restore.repo import Entry, open_repo
from rdb_restore.restore import default_workers, first_entry, session_of
from rdb_restore.sources import Place, Sources, SourceTree

#: Regular files rebuilt ahead of the one being sent.
WINDOW = 32
#: Chunks a file being rebuilt may hold before it waits for the sender.
QUEUED = 4
#: A batch is sent at this many entries or this many bytes of small files.
BATCH_ITEMS = 128
BATCH_BYTES = 1 << 20


def serve(connection: Connection) -> int:
    """Answer the one request on ``connection``; the exit status of the answer."""
    request = connection.receive_as(REQUESTS)
    try:
        if isinstance(request, RestoreRequest):
            _serve_restore(connection, request)
        elif isinstance(request, ListRequest):
            _serve_list(connection, request)
        elif isinstance(request, ListFilesRequest):
            _serve_list_files(connection, request)
        elif isinstance(request, VerifyRequest):
            _serve_verify(connection, request)
    except RdbError as error:
        if connection.failure is not None:
            raise  # the connection itself broke: nobody to tell
        connection.send(Failed(int(error.exit_code), str(error)))
        return int(error.exit_code)
    return 0


def _location(raw: bytes) -> str:
    return os.fsdecode(raw)


def _item(entry: Entry) -> Item:
    return Item(entry.record, entry.eas, entry.acl)


# ---- list, list files, verify -------------------------------------------------------------


def _serve_list(connection: Connection, request: ListRequest) -> None:
    with open_repo(_location(request.location)) as repo:
        rows = tuple(
            SessionRow(s.time, s.size, s.total_size, s.current) for s in list_sessions(repo)
        )
    connection.send(Sessions(rows))
    connection.send(Done(len(rows)))


def _serve_list_files(connection: Connection, request: ListFilesRequest) -> None:
    with open_repo(_location(request.location)) as repo:
        when = repo.resolve(request.at, now=request.now)
        connection.send(Session(when, os.fsencode(repo.layout.root)))
        batch: list[Record] = []
        count = 0
        for entry in repo.entries_at(when):
            batch.append(entry.record)
            count += 1
            if len(batch) >= BATCH_ITEMS:
                connection.send(Records(tuple(batch)))
                batch = []
        if batch:
            connection.send(Records(tuple(batch)))
    connection.send(Done(count))


def _serve_verify(connection: Connection, request: VerifyRequest) -> None:
    with open_repo(_location(request.location)) as repo:
        when = repo.resolve(request.at, now=request.now)
        connection.send(Session(when, os.fsencode(repo.layout.root)))
        result = verify(repo, when, workers=request.workers)
    connection.send(
        VerifyReport(when, result.checked, result.bytes, tuple(result.bad), tuple(result.unchecked))
    )
    connection.send(Done(result.checked))


# ---- restore --------------------------------------------------------------------------------


class _End:
    """The end of a file's bytes; ``error``: it could not be rebuilt to the end."""

    __slots__ = ("error",)

    def __init__(self, error: str | None = None) -> None:
        self.error = error


class _Rebuilt:
    """A file being rebuilt by a worker: its bytes as chunks, then an :class:`_End`."""

    def __init__(self, stop: threading.Event) -> None:
        self._queue: queue.Queue[bytes | _End] = queue.Queue(QUEUED)
        self._stop = stop

    def put(self, piece: bytes | _End) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(piece, timeout=0.5)
                return
        raise _Stopped

    def get(self) -> bytes | _End:
        return self._queue.get()


class _Stopped(Exception):
    """The sender gave up (the connection broke): the worker stops too."""


def _rebuild(sources: Sources, out: _Rebuilt) -> None:
    """Worker: the file's bytes into ``out`` in chunks of :data:`CHUNK` (no SHA1: the client
    checks what it writes against the record)."""
    try:
        base = sources.base
        if not sources.diffs and not base.compressed:
            offset = 0
            while True:
                try:
                    piece = os.pread(base.fd, CHUNK, offset)
                except OSError as error:
                    raise CorruptRepository(
                        f"read error: {error.strerror}", path=base.label
                    ) from None
                if not piece:
                    break
                out.put(piece)
                offset += len(piece)
        else:
            pending = bytearray()

            def sink(data: bytes | memoryview) -> None:
                pending.extend(data)
                while len(pending) >= CHUNK:
                    out.put(bytes(pending[:CHUNK]))
                    del pending[:CHUNK]

            produce(base, sources.diffs, sink)
            if pending:
                out.put(bytes(pending))
        out.put(_End())
    except CorruptRepository as error:
        out.put(_End(str(error)))
    except _Stopped:
        pass
    except BaseException as error:  # a bug or an I/O error: the sender reports it
        with contextlib.suppress(_Stopped):
            out.put(_End(f"cannot rebuild: {error}"))
    finally:
        sources.close()


class _Sender:
    """Sends the walk's entries in order, small files inside batches."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.items: list[Item | SmallFile | BadFile] = []
        self.size = 0
        self.entries = 0

    def add(self, item: Item | SmallFile | BadFile, size: int = 0) -> None:
        self.items.append(item)
        self.entries += 1
        self.size += size
        if len(self.items) >= BATCH_ITEMS or self.size >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.items:
            self.connection.send(Batch(tuple(self.items)))
            self.items, self.size = [], 0

    def file(self, item: Item, rebuilt: _Rebuilt) -> None:
        first = rebuilt.get()
        if isinstance(first, _End):
            self.add(BadFile(item, first.error) if first.error else SmallFile(item, b""))
            return
        second = rebuilt.get()
        if isinstance(second, _End) and second.error is None and len(first) <= SMALL:
            self.add(SmallFile(item, first), len(first))
            return
        self.flush()
        self.entries += 1
        send = self.connection.send
        send(FileStart(item))
        send(Chunk(first))
        piece = second
        while not isinstance(piece, _End):
            send(Chunk(piece))
            piece = rebuilt.get()
        send(FileEnd(piece.error))


def _serve_restore(connection: Connection, request: RestoreRequest) -> None:
    repo, when = session_of(_location(request.location), request.at, now=request.now)
    with repo:
        connection.send(Session(when, os.fsencode(repo.layout.root)))
        entries = repo.entries_at(when)
        first = first_entry(repo, when, entries)
        tree = SourceTree(repo, when)
        try:
            sender = _stream(connection, tree, first, entries)
        finally:
            tree.close()
    connection.send(Done(sender.entries))


def _stream(
    connection: Connection, tree: SourceTree, first: Entry, entries: Iterator[Entry]
) -> _Sender:
    sender = _Sender(connection)
    stop = threading.Event()
    window: deque[tuple[Item, Pending]] = deque()
    linked: set[tuple[int, int]] = set()  # hard-link groups whose first member was sent
    pool = ThreadPoolExecutor(default_workers(), thread_name_prefix="rdb-restore-server")
    try:
        for entry, parent in walk_places(tree, itertools.chain((first,), entries)):
            payload: Pending = None
            if entry.record.type == "reg" and not _later_link(entry.record, linked):
                payload = _start(tree, parent, entry, pool, stop)
            window.append((_item(entry), payload))
            while len(window) > WINDOW:
                _send_one(sender, window.popleft())
        while window:
            _send_one(sender, window.popleft())
        sender.flush()
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    return sender


def _later_link(record: Record, linked: set[tuple[int, int]]) -> bool:
    """Whether ``record`` is a later member of a hard-link group (sent without its bytes:
    the client links it to the first, which the same rule picks on both sides)."""
    if not record.has_hard_link_triple:
        return False
    assert record.inode is not None and record.device_loc is not None
    group = (record.inode, record.device_loc)
    if group in linked:
        return True
    linked.add(group)
    return False


def _start(
    tree: SourceTree, parent: Place, entry: Entry, pool: ThreadPoolExecutor, stop: threading.Event
) -> Pending:
    """Get a regular file's bytes going: read now (a small mirror copy), or rebuilt on the
    pool; the error line if its sources cannot be opened."""
    try:
        sources = tree.sources(parent, entry.index, entry.record)
    except CorruptRepository as error:
        return str(error)
    if _plain_and_small(sources):
        return _read_small(sources)
    rebuilt = _Rebuilt(stop)
    pool.submit(_rebuild, sources, rebuilt)
    return rebuilt


def _plain_and_small(sources: Sources) -> bool:
    base = sources.base
    return not sources.diffs and not base.compressed and base.size is not None and base.size < SMALL


def _read_small(sources: Sources) -> bytes | str:
    """A small mirror copy read at once, in the walk (one ``pread``: handing it to the pool
    would cost more than reading it); its bytes, or the error line."""
    base = sources.base
    assert base.size is not None
    try:
        return os.pread(base.fd, base.size + 1, 0)
    except OSError as error:
        return str(CorruptRepository(f"read error: {error.strerror}", path=base.label))
    finally:
        sources.close()


Pending = _Rebuilt | bytes | str | None  # a file's bytes to come, its bytes, its error line


def _send_one(sender: _Sender, pending: tuple[Item, Pending]) -> None:
    item, payload = pending
    if payload is None:
        sender.add(item)
    elif isinstance(payload, bytes):
        sender.add(SmallFile(item, payload), len(payload))
    elif isinstance(payload, str):
        sender.add(BadFile(item, payload))
    else:
        sender.file(item, payload)


__all__ = ["serve"]
