"""The source half of a local backup, run in steps on the repository side's own thread.

The two halves talk through the channels of :mod:`rdb_mirror.protocol` as over ssh, but in
process a thread per half costs more than it gains: each half makes several system calls per
file, every one of them hands CPython's GIL to the other thread, and with two CPUs every
hand-off is a cross-CPU wake-up (measured in docs/benchmarks.md: a 20,000-file backup spent
more time waking threads than running Python, and ran 2.5x faster pinned to one CPU).

So the repository side's inbox is a :class:`SteppedSource`: when it has no message ready,
``receive`` runs the source half one step on the calling thread (answer the requests sent
since the last step, or walk the next batch of entries), and only blocks when the answers it
waits for are being made on the pool: a large file (hashed on the pool while the kernel
copies it), or a delta. Small files are read where they are asked for, so the many-file case
runs on one thread and the pool only does the work that releases the GIL for long.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Iterator

from rdb_mirror.protocol import Entry, LocalFile, RepositoryMessage, SourceMessage, WalkDone
from rdb_mirror.source import CHUNK, Batcher, RequestHandler, SourceOptions, walk, walk_failure
from rdb_mirror.workers import Workers

__all__ = ["SteppedSource"]

#: Entries walked in one step (one :class:`~rdb_mirror.protocol.Batch`).
WALK_STEP = 128
#: Bytes of small-file content one step may read before the repository side takes them: the
#: bound on what waits in the inbox (requests beyond it wait for the next step).
STEP_BYTES = 8 << 20
#: Messages the pool's jobs (large files, deltas) may have waiting in the inbox: their memory
#: bound when the repository side writes slower than they read (1 MiB chunks).
POOLED_MESSAGES = 16


class _Pooled:
    """A message from a pool job: its token goes back to the pool's budget on receipt."""

    __slots__ = ("message",)

    def __init__(self, message: SourceMessage) -> None:
        self.message = message


class _Wake:
    """Put in the inbox when another thread sends the source half a message."""


_WAKE = _Wake()


class _InboxSender:
    """The source half's sender for answers made on the calling thread (never blocks)."""

    def __init__(self, inbox: queue.SimpleQueue[SourceMessage | _Pooled | _Wake]) -> None:
        self.send = inbox.put
        self.sent_bytes = 0


class _PoolSender:
    """The source half's sender for the pool's jobs (blocks when the budget is used)."""

    def __init__(self, inbox: queue.SimpleQueue[SourceMessage | _Pooled | _Wake]) -> None:
        self._inbox = inbox
        self.tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(POOLED_MESSAGES):
            self.tokens.put(None)

    def send(self, message: SourceMessage) -> None:
        self.tokens.get()
        self._inbox.put(_Pooled(message))


class SteppedSource:
    """The repository side's inbox (a Receiver of source messages) and outbox (a Sender of
    repository messages) for a local source, running the source half as it is needed.

    ``receive`` must be called on the thread that made the object; ``send`` may be called
    from any thread (the repository side's pool sends signatures)."""

    def __init__(self, options: SourceOptions) -> None:
        self._owner = threading.get_ident()
        self._inbox: queue.SimpleQueue[SourceMessage | _Pooled | _Wake] = queue.SimpleQueue()
        self._requests: queue.SimpleQueue[RepositoryMessage] = queue.SimpleQueue()
        self._waiting: deque[RepositoryMessage] = deque()
        self._here = _InboxSender(self._inbox)
        self._pooled = _PoolSender(self._inbox)
        self.pool = Workers(options.workers, "rdb-source")
        self._handler = RequestHandler(
            options, self.pool, self._give_credit, self._pooled, small_out=self._here
        )
        self._credits = options.window
        self._batcher = Batcher(self._here)
        self._entries: Iterator[Entry] | None = walk(options, self._batcher)
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
        inbox = self._inbox
        while True:
            try:
                message = inbox.get_nowait()
            except queue.Empty:
                if self._step():
                    continue
                message = inbox.get()
            if type(message) is _Pooled:
                self._pooled.tokens.put(None)
                return message.message
            if type(message) is not _Wake:
                return message  # type: ignore[return-value]

    def close(self, *, failed: bool = False) -> None:
        """Wait for the pool's jobs, after the repository side is done or ``failed`` (then
        the jobs not started are dropped). Answers nobody will receive are discarded
        meanwhile: a job waiting for room in the inbox must not wait forever."""
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
        """Handle waiting requests until a step's worth of content has been read."""
        here = self._here
        before = here.sent_bytes
        handle = self._handler.handle
        while waiting and here.sent_bytes - before < STEP_BYTES:
            message = waiting.popleft()
            size = getattr(message, "stat_key", (CHUNK,))[0]
            if not handle(message):
                self.finished = True
                waiting.clear()
                return
            if size < CHUNK:  # read here (larger files are the pool's, bounded by tokens)
                here.sent_bytes += size

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
