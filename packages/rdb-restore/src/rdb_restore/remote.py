"""The client of ``rdb-restore --server``: restore, list, list files and verify a repository
on another host (``[user@]host::/path/repo[/sub]``).

The remote command is started through the remote schema (default ``ssh -C %s rdb-restore
--server``) and asked one question. For a restore it streams the entries of the session in
metadata order, with each regular file's bytes; they are written into TARGET by the same
:class:`TreeWriter`, with the same safety, as a local restore: nothing outside TARGET, every
file under a temporary name until it is complete and matches its recorded size and SHA1.
A connection that breaks leaves no temporary file behind and is one line naming the host.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import cast

from rdb_format.errors import (
    CorruptRepository,
    ProtocolError,
    RdbError,
    UsageError,
)
from rdb_format.exitcodes import ExitCode
from rdb_format.metadata import Record, check_path, path_key
from rdb_format.progress import NullProgress, Progress
from rdb_format.timestamps import format_timestring
from rdb_remote.connection import DEFAULT_TIMEOUT, Connection
from rdb_remote.spawn import RemoteLocation, RemoteProcess, connect, default_schema
from rdb_restore import __version__
from rdb_restore.content import Digest, fd_writer, write_all
from rdb_restore.protocol import (
    CODEC,
    PROGRAM,
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
    Sessions,
    SmallFile,
    VerifyReport,
    VerifyRequest,
    hello,
)
from rdb_restore.query import SessionInfo, VerifyResult
from rdb_restore.repo import Entry, Index, show
from rdb_restore.restore import (
    RestoreOptions,
    RestoreResult,
    summarize,
    write_entries,
)
from rdb_restore.writer import Streamed, TreeWriter, check_content

#: Chunks of a big file received ahead of the worker writing it.
QUEUED = 8

SCHEMA = default_schema(PROGRAM)


@dataclass
class _Link:
    """One conversation with a remote ``rdb-restore --server``."""

    remote: RemoteLocation
    process: RemoteProcess
    connection: Connection

    def receive(self, *kinds: type) -> object:
        message: object = self.connection.receive_as((*kinds, Failed))
        if isinstance(message, Failed):
            raise remote_error(message, self.remote.host)
        return message

    def close(self) -> None:
        with contextlib.suppress(RdbError):
            self.connection.close(timeout=5.0)
        self.process.close(timeout=10.0)


@contextlib.contextmanager
def _connected(
    remote: RemoteLocation, schema: str | None, timeout: float | None, request: object
) -> Iterator[_Link]:
    """Start the server, shake hands, send ``request``; the link, closed at the end (the
    remote process killed if we leave on an error). Our side stays open until then: its
    keep-alives tell the server we are still there (docs/protocol.md)."""
    process, connection, _ = connect(
        remote.host, schema or SCHEMA, hello(__version__), CODEC, peer=str(remote),
        timeout=timeout,
    )  # fmt: skip
    link = _Link(remote, process, connection)
    try:
        connection.send(request)
        yield link
    except BaseException:
        process.kill()
        raise
    finally:
        link.close()


def remote_error(message: Failed, host: str) -> RdbError:
    """The server's error raised here, with its exit status: ``host: <its one line>``."""
    error = RdbError(message.message, path=host)
    try:
        error.exit_code = ExitCode(message.exit_code)
    except ValueError:
        error.exit_code = ExitCode.FAILURE
    return error


# ---- restore ------------------------------------------------------------------------------


class _End:
    __slots__ = ("error",)

    def __init__(self, error: str | None) -> None:
        self.error = error


class _Incoming(Streamed):
    """A big file's chunks, handed from the receiving thread to the worker writing it.

    A worker that stops early (the file is bad, TARGET's disk is full) calls :meth:`abandon`:
    the chunks still arriving are then dropped, so the receiving thread never waits for it.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | _End | BaseException] = queue.Queue(QUEUED)
        self._abandoned = threading.Event()

    def put(self, piece: bytes | _End | BaseException) -> None:
        while not self._abandoned.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(piece, timeout=0.1)
                return

    def abort(self, error: BaseException) -> None:
        """The connection broke: make the worker stop (never blocks)."""
        while True:
            try:
                self._queue.put_nowait(error)
                return
            except queue.Full:  # drop a chunk the worker will never need
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()

    def abandon(self) -> None:
        """The worker reads no more: drop what is queued and what still comes."""
        self._abandoned.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    def pieces(self) -> Iterator[bytes]:
        while True:
            piece = self._queue.get()
            if isinstance(piece, BaseException):
                raise piece
            if isinstance(piece, _End):
                if piece.error is not None:
                    raise CorruptRepository(piece.error)
                return
            yield piece


Payload = bytes | str | _Incoming | None  # what _received yields with an entry


def _pieces(
    entry: Entry, payload: Payload, where: Callable[[], str]
) -> Generator[bytes, None, None]:
    """The bytes of a file as the server sent them: CorruptRepository if it could not, or
    as soon as they go past the size its record gives (a server cannot make us write more;
    a streamed file's remaining chunks are then dropped as they arrive)."""
    if isinstance(payload, str):  # the server could not rebuild it: its message
        raise CorruptRepository(payload)
    if payload is None:
        raise ProtocolError("the server sent this regular file without its content", path=where())
    limit = entry.record.size
    size = 0
    try:
        for piece in payload.pieces() if isinstance(payload, _Incoming) else (payload,):
            size += len(piece)
            if limit is not None and size > limit:
                raise CorruptRepository(
                    f"the server sent more than the {limit} bytes the metadata records "
                    "(an increment is missing or damaged)",
                    path=where(),
                )
            yield piece
    finally:
        if isinstance(payload, _Incoming):
            payload.abandon()


def _fill(
    label: Callable[[Index], str],
    entry: Entry,
    context: object,
    payload: object,
    out: int,
    out_label: str,
    scratch: int,
) -> tuple[int, str]:
    """Worker: write what the server sent for ``entry`` into ``out``; its size and SHA1."""
    del context, scratch
    sha1 = hashlib.sha1()
    size = 0
    with contextlib.closing(
        _pieces(entry, cast(Payload, payload), lambda: label(entry.index))
    ) as pieces:
        for piece in pieces:
            sha1.update(piece)
            write_all(out, piece, out_label)
            size += len(piece)
    return size, sha1.hexdigest()


def _entry(item: Item, peer: str) -> Entry:
    record = item.record
    problem = check_path(record.path)
    if problem is not None:
        shown = record.path.decode("utf-8", "backslashreplace")
        raise ProtocolError(f"the server sent an unsafe path {shown!r} ({problem})", path=peer)
    return Entry(record, path_key(record.path), item.eas, item.acl)


def _received(link: _Link) -> Iterator[tuple[Entry, Payload]]:
    """The entries the server streams, each with its payload: None (no content), the bytes
    of a small file, the message of a file it could not rebuild, or an :class:`_Incoming`
    that this generator fills while the caller goes on (call it again to move past it)."""
    peer = str(link.remote)
    while True:
        message = link.receive(Batch, FileStart, Done)
        if isinstance(message, Done):
            return
        if isinstance(message, Batch):
            for part in message.items:
                if isinstance(part, SmallFile):
                    yield _entry(part.item, peer), part.data
                elif isinstance(part, BadFile):
                    yield _entry(part.item, peer), part.message
                else:
                    yield _entry(part, peer), None
            continue
        assert isinstance(message, FileStart)
        incoming = _Incoming()
        yield _entry(message.item, peer), incoming
        try:
            while True:
                piece = link.receive(Chunk, FileEnd)
                if isinstance(piece, FileEnd):
                    incoming.put(_End(piece.error))
                    break
                assert isinstance(piece, Chunk)
                incoming.put(piece.data)
        except BaseException as error:
            incoming.abort(error)
            raise


def remote_restore(
    remote: RemoteLocation,
    target: str,
    *,
    at: str | None = None,
    options: RestoreOptions | None = None,
    progress: Progress | None = None,
    schema: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> RestoreResult:
    """Restore ``remote`` (``host::REPO[/PATH]`` or an increment file there) as of ``at``
    into the local ``target`` (``-``: one regular file to stdout)."""
    options = options or RestoreOptions()
    progress = progress or NullProgress()
    request = RestoreRequest(os.fsencode(remote.path), at, int(time.time()))
    with _connected(remote, schema, timeout, request) as link:
        session = link.receive(Session)
        assert isinstance(session, Session)
        root = os.fsdecode(session.repository)

        def label(index: Index) -> str:
            return f"{remote.host}::{os.path.join(root, show(index))}"

        result = RestoreResult(session.time, str(remote), target)
        received = _received(link)
        first = next(received, None)
        if first is None:
            raise ProtocolError("the server sent no entries", path=remote.host)
        progress.start(f"restoring {format_timestring(session.time)} from {remote.host}", None)
        try:
            if target == "-":
                # written on a thread while this one receives the file's chunks
                with ThreadPoolExecutor(1, thread_name_prefix="rdb-restore-stdout") as pool:
                    written = pool.submit(_to_stdout, first, label, result)
                    _single(received, remote.host)
                    written.result()
                return result  # (the finally below counts the bytes received)
            writer = TreeWriter(
                fill=partial(_fill, label),
                close_context=lambda context: None,
                label=label,
                progress=progress,
                options=options,
            )
            with writer:
                write_entries(
                    writer,
                    target,
                    first,
                    received,
                    context_of=lambda index: None,
                    descend=lambda context, name: None,
                    where=label(()),
                )
                if first[0].record.type != "dir":  # the pool writes it while this receives
                    _single(received, remote.host)
        finally:
            progress.finish()
            result.received = link.connection.bytes_received
    return summarize(result, writer.counts)


def _single(received: Iterator[tuple[Entry, Payload]], host: str) -> None:
    """Receive what follows a single file (its chunks, if streamed) up to the end."""
    for _ in received:
        raise ProtocolError("the server sent more than the one file asked for", path=host)


def _to_stdout(
    first: tuple[Entry, Payload], label: Callable[[Index], str], result: RestoreResult
) -> None:
    entry, payload = first
    if entry.record.type != "reg":
        raise UsageError(
            f"{show(entry.index)!r} is not a regular file; only a regular file can be "
            "written to stdout"
        )
    sys.stdout.flush()
    digest = Digest(fd_writer(sys.stdout.fileno(), "stdout"))
    with contextlib.closing(_pieces(entry, payload, lambda: label(entry.index))) as pieces:
        for piece in pieces:
            digest(piece)
    check_content(digest.size, digest.hexdigest(), entry, label)
    result.entries = result.files = 1
    result.bytes = digest.size


# ---- list, list files, verify ---------------------------------------------------------------


def remote_sessions(
    remote: RemoteLocation, *, schema: str | None = None, timeout: float | None = DEFAULT_TIMEOUT
) -> list[SessionInfo]:
    with _connected(remote, schema, timeout, ListRequest(os.fsencode(remote.path))) as link:
        answer = link.receive(Sessions)
        assert isinstance(answer, Sessions)
        link.receive(Done)
    return [SessionInfo(s.time, s.size, s.total_size, s.current) for s in answer.sessions]


@contextlib.contextmanager
def remote_files(
    remote: RemoteLocation,
    *,
    at: str | None = None,
    schema: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Iterator[tuple[int, Iterator[Record]]]:
    """The session time ``at`` means there, and the records under ``remote`` at that time,
    in order (streamed while the connection is open)."""
    request = ListFilesRequest(os.fsencode(remote.path), at, int(time.time()))
    with _connected(remote, schema, timeout, request) as link:
        session = link.receive(Session)
        assert isinstance(session, Session)

        def records() -> Iterator[Record]:
            while True:
                message = link.receive(Records, Done)
                if isinstance(message, Done):
                    return
                assert isinstance(message, Records)
                for record in message.records:
                    yield _entry(Item(record, (), ()), str(remote)).record

        yield session.time, records()


def remote_verify(
    remote: RemoteLocation,
    *,
    at: str | None = None,
    workers: int | None = None,
    schema: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> VerifyResult:
    """``verify`` run on the server (the files are rebuilt there; only the report crosses)."""
    request = VerifyRequest(os.fsencode(remote.path), at, int(time.time()), workers)
    with _connected(remote, schema, timeout, request) as link:
        link.receive(Session)
        report = link.receive(VerifyReport)
        assert isinstance(report, VerifyReport)
        link.receive(Done)
    return VerifyResult(
        report.time, report.checked, report.bytes, list(report.bad), list(report.unchecked)
    )


__all__ = [
    "SCHEMA",
    "remote_error",
    "remote_files",
    "remote_restore",
    "remote_sessions",
    "remote_verify",
]
