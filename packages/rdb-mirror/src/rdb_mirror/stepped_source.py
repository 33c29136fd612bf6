"""The source half of a local backup, run in steps on the repository side's own thread.

The two halves talk through the channels of :mod:`rdb_mirror.protocol` as over ssh, but in
process a thread per half costs more than it gains: each half makes several system calls per
file, every one of them hands CPython's GIL to the other thread, and with two CPUs every
hand-off is a cross-CPU wake-up (measured in docs/benchmarks.md: a 20,000-file backup spent
more time waking threads than running Python, and ran 2.5x faster pinned to one CPU).

So the repository side's inbox is a :class:`SteppedSource`: when it has no message ready,
``receive`` runs the source half one step on the calling thread (hand the requests sent since
the last step to the pool, or walk the next batch of entries), and only blocks when the
answers it waits for are still being made on the pool. Small files are read there in batches,
each by one C call that also hashes them (:mod:`rdb_fastio`), and answered together;
a large file is hashed there while the kernel copies it; deltas are made there. The walk and
the requests stay on one thread, and the pool only does work that releases the GIL for long.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Generator

from rdb_fastio import read_small_files
from rdb_mirror.fsmeta import IS_ROOT
from rdb_mirror.protocol import (
    Content,
    ContentRequest,
    Entry,
    LocalFile,
    RepositoryMessage,
    SourceMessage,
    WalkDone,
)
from rdb_mirror.source import (
    Batcher,
    RequestHandler,
    SourceOptions,
    internal_failure,
    serve,
    source_path,
    walk,
    walk_failure,
)
from rdb_mirror.workers import Workers

__all__ = ["SteppedSource"]

#: Entries walked in one step (one :class:`~rdb_mirror.protocol.Batch`).
WALK_STEP = 128
#: Small files (under one chunk) read by one pool job, at most this many and this many bytes.
READ_BATCH_FILES = 64
READ_BATCH_BYTES = 2 << 20
#: Messages the pool's jobs may have waiting in the inbox: their memory bound when the
#: repository side writes slower than they read (1 MiB chunks)...
POOLED_MESSAGES = 16
#: ... and batches of small files' answers (each up to READ_BATCH_BYTES plus one file).
POOLED_BATCHES = 4


class _Pooled:
    """A message from a pool job: its token goes back to the pool's budget on receipt."""

    __slots__ = ("message",)

    def __init__(self, message: SourceMessage) -> None:
        self.message = message


class _PooledMany:
    """A batch's answers from a pool job, under one token."""

    __slots__ = ("messages",)

    def __init__(self, messages: list[SourceMessage]) -> None:
        self.messages = messages


class _Wake:
    """Put in the inbox when another thread sends the source half a message."""


_WAKE = _Wake()
_InboxItem = SourceMessage | _Pooled | _PooledMany | _Wake


class _InboxSender:
    """The source half's sender for answers made on the calling thread (never blocks)."""

    def __init__(self, inbox: queue.SimpleQueue[_InboxItem]) -> None:
        self.send = inbox.put


class _PoolSender:
    """The source half's sender for the pool's jobs (blocks when the budget is used)."""

    def __init__(self, inbox: queue.SimpleQueue[_InboxItem]) -> None:
        self._inbox = inbox
        self.tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(POOLED_MESSAGES):
            self.tokens.put(None)
        self.batch_tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(POOLED_BATCHES):
            self.batch_tokens.put(None)

    def send(self, message: SourceMessage) -> None:
        self.tokens.get()
        self._inbox.put(_Pooled(message))

    def send_many(self, messages: list[SourceMessage]) -> None:
        if messages:
            self.batch_tokens.get()
            self._inbox.put(_PooledMany(messages))


class SteppedSource:
    """The repository side's inbox (a Receiver of source messages) and outbox (a Sender of
    repository messages) for a local source, running the source half as it is needed.

    ``receive`` must be called on the thread that made the object; ``send`` may be called
    from any thread (the repository side's pool sends signatures)."""

    def __init__(self, options: SourceOptions) -> None:
        self._owner = threading.get_ident()
        self._inbox: queue.SimpleQueue[_InboxItem] = queue.SimpleQueue()
        self._requests: queue.SimpleQueue[RepositoryMessage] = queue.SimpleQueue()
        self._waiting: deque[RepositoryMessage] = deque()
        self._here = _InboxSender(self._inbox)
        self._pooled = _PoolSender(self._inbox)
        self.pool = Workers(options.workers, "rdb-source")
        self._options = options
        self._handler = RequestHandler(
            options, self.pool, self._give_credit, self._pooled, serve_small=self._read_later
        )
        self._to_read: list[ContentRequest] = []
        self._to_read_bytes = 0
        self._ready: deque[SourceMessage] = deque()
        self._credits = options.window
        self._batcher = Batcher(self._here)
        self._entries: Generator[Entry, None, None] | None = walk(options, self._batcher)
        self._walked = 0
        self.failure: BaseException | None = None
        self.finished = False

    # ---- the repository side's outbox ---------------------------------------------------

    def send(self, message: RepositoryMessage) -> None:
        self._requests.put(message)
        if threading.get_ident() != self._owner:
            self._inbox.put(_WAKE)

    # ---- the repository side's inbox ----------------------------------------------------

    def receive(self) -> SourceMessage:
        ready = self._ready
        if ready:
            return ready.popleft()
        inbox = self._inbox
        while True:
            try:
                message = inbox.get_nowait()
            except queue.Empty:
                if self._step():
                    continue
                message = inbox.get()
            if type(message) is _PooledMany:
                self._pooled.batch_tokens.put(None)
                ready.extend(message.messages)
                return ready.popleft()
            if type(message) is _Pooled:
                self._pooled.tokens.put(None)
                return message.message
            if type(message) is not _Wake:
                return message  # type: ignore[return-value]

    def close(self, *, failed: bool = False) -> None:
        """Wait for the pool's jobs, after the repository side is done or ``failed`` (then
        the jobs not started are dropped). Answers nobody will receive are discarded
        meanwhile: a job waiting for room in the inbox must not wait forever."""
        if self._entries is not None:  # the walk was left early: its scans ahead stop now
            self._entries.close()
            self._entries = None
        if failed or self.failure is not None:
            self.pool.cancel()
        stopped = threading.Event()

        def stop() -> None:
            self.pool.shutdown()
            stopped.set()

        threading.Thread(target=stop, name="rdb-source-stop", daemon=True).start()
        while not stopped.wait(0.02):
            self._discard_inbox()
        self._discard_inbox()

    def _discard_inbox(self) -> None:
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return
            if type(message) is _PooledMany:
                self._pooled.batch_tokens.put(None)
                continue  # small files' contents: nothing to close
            if type(message) is _Pooled:
                self._pooled.tokens.put(None)
                message = message.message
            if isinstance(message, LocalFile):
                os.close(message.fd)

    # ---- one step of the source half ----------------------------------------------------

    def _give_credit(self, entries: int) -> None:
        self._credits += entries

    def _step(self) -> bool:
        """Answer what was asked since the last step, else walk a batch; False when there is
        nothing to do here (the answers awaited are being made on the pool)."""
        requests = self._requests
        waiting = self._waiting
        while True:
            try:
                waiting.append(requests.get_nowait())
            except queue.Empty:
                break
        if waiting:
            self._answer(waiting)
            return True
        if self._entries is not None and self._credits > 0 and not self.finished:
            self._walk_some()
            return True
        return False

    def _answer(self, waiting: deque[RepositoryMessage]) -> None:
        """Hand every waiting request to the pool (small files in batches)."""
        handle = self._handler.handle
        while waiting:
            if not handle(waiting.popleft()):
                self.finished = True
                waiting.clear()
                break
        self._hand_over_reads()

    def _read_later(self, request: ContentRequest) -> None:
        self._to_read.append(request)
        self._to_read_bytes += request.stat_key[0]
        if len(self._to_read) >= READ_BATCH_FILES or self._to_read_bytes >= READ_BATCH_BYTES:
            self._hand_over_reads()

    def _hand_over_reads(self) -> None:
        if self._to_read:
            batch, self._to_read, self._to_read_bytes = self._to_read, [], 0
            self.pool.submit(self._read_batch, batch)

    def _read_batch(self, requests: list[ContentRequest]) -> None:
        """Pool job: the batch's files in one C call, answered under one token; a file it
        could not read whole and unchanged goes the general way, which says why. Should
        anything fail unexpectedly (a bug), the requests not yet answered are answered
        failed: the repository side must not wait forever for them."""
        root = self._options.root
        answers: list[SourceMessage] = []
        answered = 0  # requests whose answers are in ``answers`` or sent
        try:
            paths = [source_path(root, request.index) for request in requests]
            keys = [request.stat_key for request in requests]
            for request, read in zip(
                requests, read_small_files(paths, keys, noatime=IS_ROOT), strict=True
            ):
                if read.data is not None:
                    assert read.sha1 is not None
                    answers.append(Content(request.request, read.data, read.sha1))
                else:  # (a message per chunk, under its own token: it may have grown large)
                    self._pooled.send_many(answers)
                    answers = []
                    serve(self._options, request, self._pooled)
                answered += 1
        except Exception as error:
            answers += [internal_failure(r.request, error) for r in requests[answered:]]
        self._pooled.send_many(answers)

    def _walk_some(self) -> None:
        entries = self._entries
        assert entries is not None
        batcher = self._batcher
        take = min(self._credits, WALK_STEP)
        done = False
        try:
            for _ in range(take):
                entry = next(entries, None)
                if entry is None:
                    done = True
                    break
                batcher.send(entry)
                self._walked += 1
                self._credits -= 1
        except Exception as error:  # reported to the repository side as the end of the walk
            self.failure = error
            done = True
        batcher.flush()
        if done:
            self._entries = None
            reason = walk_failure(self.failure) if self.failure is not None else None
            self._here.send(WalkDone(self._walked, reason))
