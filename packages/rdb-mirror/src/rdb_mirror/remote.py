"""Backups with one half on another host: the client's and the server's ends of a session.

``rdb-mirror SRC host::/repo``: the source side runs here (:func:`backup_to_remote`), the
repository side in ``rdb-mirror --server`` there. ``rdb-mirror host::/src DEST``: the
repository side runs here (:func:`backup`, with a :class:`RemoteSource` endpoint), the source
side there. Both sides' messages are those of the local session (:mod:`rdb_mirror.protocol`)
plus the session control messages, over an :class:`rdb_remote.Connection`
(docs/protocol.md). Each direction streams independently: nothing waits for a reply per file.

What a peer sends is checked before it is used: message kinds per direction, every index a
path below the root (no ``..``, ``/``, NUL or empty component), entries in strictly increasing
order with a complete record whose path matches the index, answers only to requests that are
pending
(:class:`rdb_format.errors.ProtocolError` otherwise).
"""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rdb_clikit.protocol import NullProgress, Progress
from rdb_format.errors import ProtocolError, RdbError
from rdb_format.exitcodes import ExitCode
from rdb_format.metadata import format_record
from rdb_mirror import __version__
from rdb_mirror.fsmeta import Capabilities, Index, probe, render
from rdb_mirror.protocol import (
    CODEC,
    OLDEST_PROTOCOL,
    PROTOCOL_VERSION,
    Batch,
    Begin,
    Chunk,
    Content,
    ContentEnd,
    ContentFailed,
    ContentRequest,
    Credit,
    DeltaRequest,
    Done,
    Entry,
    Failed,
    Finish,
    Problem,
    ProgressEvent,
    Ready,
    RepositoryMessage,
    RepositoryStart,
    SignatureChunk,
    SourceMessage,
    SourceStart,
    WalkDone,
)
from rdb_mirror.regress import RegressResult
from rdb_mirror.repo_side import RepositorySide
from rdb_mirror.selection import Selection, read_file_lists
from rdb_mirror.session import (
    BackupOptions,
    BackupResult,
    _check_source,
    backup,
    default_workers,
)
from rdb_mirror.source import IncludeAll, SourceOptions, run_source
from rdb_mirror.source import Selection as SourceSelection
from rdb_remote import Connection, Hello, RemoteLocation, RemoteProcess, connect
from rdb_remote.connection import DEFAULT_TIMEOUT

__all__ = [
    "HELLO",
    "RemoteFailure",
    "RemoteSource",
    "backup_to_remote",
    "serve_session",
]

HELLO = Hello("rdb-mirror", __version__, PROTOCOL_VERSION, OLDEST_PROTOCOL)

_SOURCE_KINDS = (Entry, Problem, Batch, WalkDone, Chunk, Content, ContentEnd, ContentFailed)
_REPOSITORY_KINDS = (ContentRequest, Credit, Finish, SignatureChunk, DeltaRequest)
#: the error_log types a source reports for entries it cannot read
_PROBLEM_KINDS = frozenset({"ListError", "UpdateError", "SpecialFileError"})
#: how often a remote repository side reports progress (seconds)
_PROGRESS_EVERY = 0.2


class RemoteFailure(RdbError):
    """The other side's half failed: its one-line message, with its exit status."""

    def __init__(self, message: str, exit_code: int, *, peer: str) -> None:
        super().__init__(message, path=peer)
        try:
            self.exit_code = ExitCode(exit_code)
        except ValueError:
            self.exit_code = ExitCode.FAILURE


def _failure(message: Failed, peer: str) -> RemoteFailure:
    """The remote's error, prefixed with its host (its message names the path there)."""
    return RemoteFailure(message.message, message.exit_code, peer=peer.split("::", 1)[0])


# ---- checking what a peer sends ------------------------------------------------------------


def _check_index(index: Index, peer: str) -> None:
    for name in index:
        if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
            raise ProtocolError(f"unsafe path {render(index)!r} from the peer", path=peer)


_TIME_NS_MIN, _TIME_NS_MAX = -(1 << 63), (1 << 63) - 1


def _times(entry: Entry) -> tuple[int, ...]:
    return (entry.mtime_ns, entry.atime_ns, entry.stat_key[1], entry.stat_key[2])


class _FromSource:
    """What a repository side receives from a remote source, checked."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._last: Index | None = None

    def receive(self) -> SourceMessage:
        message = self._connection.receive_as((*_SOURCE_KINDS, Failed))
        if isinstance(message, Failed):
            raise _failure(message, self._connection.peer)
        if isinstance(message, Batch):
            for each in message.messages:
                self._check(each)
        elif isinstance(message, Entry | Problem):
            self._check(message)
        return message  # type: ignore[return-value]  # one of _SOURCE_KINDS: checked above

    def _check(self, message: Entry | Problem) -> None:
        peer = self._connection.peer
        index = message.index
        _check_index(index, peer)
        if isinstance(message, Problem) and message.kind not in _PROBLEM_KINDS:
            raise ProtocolError(f"unknown error_log type {message.kind!r}", path=peer)
        if isinstance(message, Entry):
            if self._last is not None and index <= self._last:
                raise ProtocolError(f"entry {render(index)!r} out of order", path=peer)
            record = message.record
            if record.path != render(index):
                raise ProtocolError(f"entry {render(index)!r} with another path", path=peer)
            try:  # every field its type needs, in range (what the metadata writer will need)
                if record.type == "None":
                    raise ValueError("a record of type None")
                if record.type == "reg" and record.size != message.stat_key[0]:
                    raise ValueError("a size other than its stat key's")
                if not all(_TIME_NS_MIN <= t <= _TIME_NS_MAX for t in _times(message)):
                    raise ValueError("a time that does not fit in 64 bits of nanoseconds")
                format_record(record)
            except ValueError as error:
                raise ProtocolError(f"bad entry {render(index)!r}: {error}", path=peer) from None
            self._last = index


class _FromRepository:
    """What a source side receives from a remote repository side, checked. The session's
    end (Done, Failed) or a broken connection stops the source side like a Finish and is
    kept in :attr:`outcome` / :attr:`error`; progress events go to ``progress``."""

    def __init__(self, connection: Connection, progress: Progress) -> None:
        self._connection = connection
        self._progress = progress
        self.outcome: Done | Failed | None = None
        self.error: RdbError | None = None

    def receive(self) -> RepositoryMessage:
        while True:
            try:
                message = self._connection.receive_as(
                    (*_REPOSITORY_KINDS, ProgressEvent, Done, Failed)
                )
            except RdbError as error:
                self.error = error
                return Finish()
            if isinstance(message, ProgressEvent):
                _replay(message, self._progress)
                continue
            if isinstance(message, Done | Failed):
                self.outcome = message
                return Finish()
            if isinstance(message, ContentRequest | DeltaRequest):
                _check_index(message.index, self._connection.peer)
            return message  # type: ignore[return-value]  # one of _REPOSITORY_KINDS


def _replay(event: ProgressEvent, progress: Progress) -> None:
    if event.kind == "start":
        progress.start(event.text or "backup", event.number)
    elif event.kind == "advance":
        progress.advance(event.number or 0)
    elif event.kind == "warning":
        progress.warning(event.text or "")


class _ForwardedProgress:
    """A remote repository side's progress, sent to the client (advances every 0.2 s)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._pending = 0
        self._sent_at = 0.0
        self._lock = threading.Lock()

    def start(self, task: str, total: int | None = None) -> None:
        self._connection.send(ProgressEvent("start", task, total))

    def advance(self, amount: int = 1) -> None:
        with self._lock:
            self._pending += amount
            now = time.monotonic()
            if now - self._sent_at < _PROGRESS_EVERY:
                return
            pending, self._pending, self._sent_at = self._pending, 0, now
        self._connection.send(ProgressEvent("advance", None, pending))

    def warning(self, message: str) -> None:
        self._connection.send(ProgressEvent("warning", message, None))

    def finish(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, 0
        if pending and self._connection.failure is None:  # (called after failures too)
            self._connection.send(ProgressEvent("advance", None, pending))


# ---- the repository side here, the source there ----------------------------------------------


class RemoteSource:
    """A source side on another host, as a :class:`rdb_mirror.session.SourceEndpoint`.

    Starting it connects and has the remote check its source (errors arrive before the
    repository is locked); :meth:`close` ends the connection and reaps the remote.
    """

    remote = True

    def __init__(
        self,
        location: RemoteLocation,
        schema: str,
        selection: tuple[tuple[str, str | None], ...] = (),
        workers: int | None = None,
        stdin: IO[bytes] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        lists, stdin_data = read_file_lists(selection, stdin)  # here, before connecting
        self.name = str(location)
        self.process: RemoteProcess
        self.process, self.connection, _ = connect(
            location.host, schema, HELLO, CODEC, peer=self.name, timeout=timeout
        )
        try:
            self.connection.send(
                SourceStart(
                    os.fsencode(location.path),
                    selection,
                    workers,
                    tuple(lists.items()),
                    stdin_data,
                )
            )
            ready = self.connection.receive_as((Ready, Failed))
            if isinstance(ready, Failed):
                raise _failure(ready, self.name)
        except BaseException:
            self.close()
            raise
        self._caps = Capabilities(eas=ready.eas, acls=ready.acls)

    def capabilities(self) -> Capabilities:
        return self._caps

    def run(self, repo: RepositorySide, caps: Capabilities, workers: int) -> None:
        self.connection.send(Begin(caps.eas, caps.acls, repo.window))
        try:
            repo.run(_FromSource(self.connection), self.connection)
        except ProtocolError as error:
            if error.path is not None:
                raise
            # what the repository side found wrong in the source's answers: name the source
            raise ProtocolError(str(error), path=self.name) from None

    def close(self, error: BaseException | None = None) -> int | None:
        """End the session; ``error``: the local side failed (the remote is told so)."""
        if error is not None and self.connection.failure is None:
            code = error.exit_code if isinstance(error, RdbError) else ExitCode.FAILURE
            try:
                self.connection.send(Failed(str(error), int(code)))
            except RdbError:
                pass
        self.connection.close()
        return self.process.close()


# ---- the source side here, the repository side there -----------------------------------------


def backup_to_remote(
    source: str | os.PathLike[str],
    location: RemoteLocation,
    schema: str,
    options: BackupOptions | None = None,
    progress: Progress | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> BackupResult:
    """Back up the local directory ``source`` into the repository at ``location``
    (``timeout``: the inactivity timeout, seconds)."""
    opts = options or BackupOptions()
    report = progress or NullProgress()
    src = Path(source)
    _check_source(src)
    caps = probe(os.fsencode(src))
    name = str(location)
    process, connection, _ = connect(
        location.host, schema, HELLO, CODEC, peer=name, timeout=timeout
    )
    try:
        connection.send(
            RepositoryStart(
                path=os.fsencode(location.path),
                source=f"{os.uname().nodename}:{os.fsdecode(src.absolute())}",
                current_time=opts.current_time,
                compression=opts.compression,
                no_compression_regexp=opts.no_compression_regexp,
                file_statistics=opts.file_statistics,
                eas=opts.eas,
                acls=opts.acls,
                workers=opts.workers,
                force=opts.force,
                deltas=True if opts.deltas is None else opts.deltas,
                source_eas=caps.eas,
                source_acls=caps.acls,
            )
        )
        inbox = _FromRepository(connection, report)
        while True:
            ready = connection.receive_as((Ready, Failed, ProgressEvent))
            if isinstance(ready, Failed):
                raise _failure(ready, name)
            if isinstance(ready, Ready):
                break
            _replay(ready, report)
        outcome = _run_source(
            connection,
            inbox,
            os.fsencode(src),
            opts.selection or IncludeAll(),
            ready,
            opts.workers,
        )
        while outcome is None:
            message = connection.receive_as((Done, Failed, ProgressEvent))
            if isinstance(message, ProgressEvent):
                _replay(message, report)
            else:
                outcome = message
        if isinstance(outcome, Failed):
            raise _failure(outcome, name)
    finally:
        connection.close()
        process.close()
        report.finish()
    regressed = None
    if outcome.regressed is not None:
        regressed = RegressResult(outcome.regressed[0], outcome.regressed[1])
    return BackupResult(
        source=src,
        destination=Path(name),
        time=outcome.time,
        previous_time=outcome.previous_time,
        statistics=outcome.statistics,
        errors=list(outcome.errors),
        regressed=regressed,
        new_repository=outcome.new_repository,
        bytes_read=outcome.bytes_read,
        bytes_sent=connection.bytes_sent,
        bytes_received=connection.bytes_received,
    )


def _run_source(
    connection: Connection,
    inbox: _FromRepository,
    root: bytes,
    selection: SourceSelection,
    grant: Ready | Begin,
    workers: int | None,
) -> Done | Failed | None:
    """The source side of a session over ``connection``, with what the repository side
    granted (capabilities, window); the session's end if the repository side sent it."""
    options = SourceOptions(
        root=root,
        selection=selection,
        capabilities=Capabilities(eas=grant.eas, acls=grant.acls),
        workers=workers or default_workers(),
        window=grant.window,
    )
    run_source(options, inbox, connection)
    if inbox.error is not None:
        raise inbox.error
    return inbox.outcome


# ---- the server ---------------------------------------------------------------------------


@dataclass
class _PeerSource:
    """On the server: the client's source side, as a SourceEndpoint."""

    connection: Connection
    name: str
    caps: Capabilities
    remote: bool = True

    def capabilities(self) -> Capabilities:
        return self.caps

    def run(self, repo: RepositorySide, caps: Capabilities, workers: int) -> None:
        self.connection.send(Ready(caps.eas, caps.acls, repo.window))
        repo.run(_FromSource(self.connection), self.connection)


def serve_session(connection: Connection) -> None:
    """The server's half of one session, after the handshake (raises what fails; the caller
    reports it to the client in a :class:`Failed` message)."""
    start = connection.receive_as((RepositoryStart, SourceStart))
    if isinstance(start, RepositoryStart):
        _serve_repository(connection, start)
    else:
        _serve_source(connection, start)


def _serve_repository(connection: Connection, start: RepositoryStart) -> None:
    options = BackupOptions(
        current_time=start.current_time,
        compression=start.compression,
        no_compression_regexp=start.no_compression_regexp,
        file_statistics=start.file_statistics,
        eas=start.eas,
        acls=start.acls,
        workers=start.workers,
        force=start.force,
        deltas=start.deltas,
    )
    endpoint = _PeerSource(
        connection, start.source, Capabilities(eas=start.source_eas, acls=start.source_acls)
    )
    result = backup(endpoint, os.fsdecode(start.path), options, _ForwardedProgress(connection))
    regressed = result.regressed
    connection.send(
        Done(
            time=result.time,
            previous_time=result.previous_time,
            statistics=result.statistics,
            errors=tuple(result.errors),
            new_repository=result.new_repository,
            regressed=(regressed.failed_time, regressed.restored_time) if regressed else None,
            bytes_read=result.bytes_read,
        )
    )


def _serve_source(connection: Connection, start: SourceStart) -> None:
    root = os.fsdecode(start.path)
    _check_source(Path(root))
    selection = (
        Selection.from_options(
            start.selection,
            root=root,
            lists=dict(start.lists),
            stdin=io.BytesIO(start.stdin) if start.stdin is not None else None,
        )
        if start.selection
        else IncludeAll()
    )
    caps = probe(start.path)
    connection.send(Ready(caps.eas, caps.acls, 0))
    begin = connection.receive_as((Begin, Failed))
    if isinstance(begin, Failed):
        raise _failure(begin, connection.peer)
    inbox = _FromRepository(connection, NullProgress())
    outcome = _run_source(connection, inbox, start.path, selection, begin, start.workers)
    if isinstance(outcome, Failed):
        raise _failure(outcome, connection.peer)
