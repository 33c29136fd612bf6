"""A message connection over two byte streams: a reader thread and a writer thread.

Both directions flow at once and nothing waits for a reply: :meth:`Connection.send` encodes
the message in the caller's thread and queues it (bounded, so memory stays flat; it blocks
only when the link is that far behind); the writer thread writes frames and flushes whenever
its queue runs empty, so small messages share system calls and none is left unsent. The
reader thread decodes frames into a bounded queue that :meth:`Connection.receive` takes from.

A peer that vanishes (end of stream, broken pipe) or sends garbage turns into one
:class:`rdb_format.errors.ConnectionFailed` / :class:`ProtocolError` raised by ``send`` and
``receive`` (every later call raises it again), with the text ``describe_loss`` gives (the
remote process's exit status, for a spawned remote).

A peer that stays connected but stalls (stopped, its host or the network gone quiet) is
found by the inactivity timeout (rsync's ``--timeout``): nothing received and no message sent
for ``timeout`` seconds fails the connection. A live peer is never quiet that long, however
busy it is: the writer thread sends a keep-alive (an empty frame, skipped by the reader)
after :data:`KEEPALIVE` seconds with nothing to send; and while our own inbox is full (we
are the busy side), the peer's silence is ours and is not counted.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
import time
from collections.abc import Callable
from typing import BinaryIO, Final, TypeVar, overload

from rdb_format.errors import ConnectionFailed, ProtocolError, RdbError
from rdb_remote.counting import CountingReader, CountingWriter
from rdb_remote.framing import TruncatedStream, read_frame, write_frame
from rdb_remote.wire import Codec

__all__ = ["DEFAULT_TIMEOUT", "KEEPALIVE", "Connection"]

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")

#: Messages waiting in each direction (content chunks are up to 1 MiB each).
QUEUE = 64
#: Bytes of received frames waiting to be taken: the reader reads no further frame while
#: more are waiting, so a peer sending big frames nobody takes (each may be 16 MiB) cannot
#: make us hold more than this (and the frame being read).
INBOX_BYTES = 64 << 20
_CLOSE: Final = object()
_BUFFER = 256 << 10
#: Seconds with nothing to send after which the writer sends a keep-alive (an empty frame).
KEEPALIVE = 1.0
#: The default inactivity timeout of the rdb-* commands' remote runs, in seconds: long enough
#: for a network outage that recovers; a live peer, busy or not, is never quiet for more
#: than about :data:`KEEPALIVE`.
DEFAULT_TIMEOUT = 300


class _Failure:
    """Put in the inbox when reading stopped; the error is made when first raised (so that a
    clean end nobody reads past costs nothing, e.g. no wait for the remote's exit status)."""

    def __init__(self, make: Callable[[], RdbError]) -> None:
        self._make = make
        self._error: RdbError | None = None

    @property
    def error(self) -> RdbError:
        if self._error is None:
            self._error = self._make()
        return self._error


class _Received:
    """A message in the inbox, with the size of the frame it came in."""

    __slots__ = ("message", "size")

    def __init__(self, message: object, size: int) -> None:
        self.message = message
        self.size = size


class Connection:
    """Messages of ``codec`` over ``inbound`` / ``outbound`` (raw byte streams).

    ``peer`` names the other end in messages (``host`` or ``host:/path``).
    :attr:`bytes_sent` / :attr:`bytes_received` count every byte of the streams.
    ``timeout``: the inactivity timeout in seconds (None: none); when it expires,
    ``on_stall`` is called (e.g. to kill the ssh process, which frees threads blocked on
    its pipes).
    """

    def __init__(
        self,
        inbound: io.RawIOBase,
        outbound: io.RawIOBase,
        codec: Codec,
        *,
        peer: str,
        describe_loss: Callable[[], str] | None = None,
        timeout: float | None = None,
        on_stall: Callable[[], None] | None = None,
    ) -> None:
        self.codec = codec
        self.peer = peer
        self._describe_loss = describe_loss
        self.timeout = timeout
        self._on_stall = on_stall
        self._sent_at = time.monotonic()  # when the last message (not keep-alive) was written
        self._waiting_for_room = False  # the reader waits for our side to take messages
        self._closed = threading.Event()
        self._stalled = False  # the inactivity timeout expired
        self._in_count = CountingReader(inbound)
        self._out_count = CountingWriter(outbound)
        self._reader = io.BufferedReader(self._in_count, _BUFFER)
        self._writer = io.BufferedWriter(self._out_count, _BUFFER)
        self._inbox: queue.Queue[object] = queue.Queue(QUEUE)
        self._inbox_bytes = 0  # payload bytes of the messages in the inbox
        self._room = threading.Condition()
        self._outbox: queue.Queue[object] = queue.Queue(QUEUE)
        self._failure: RdbError | None = None
        self._lock = threading.Lock()
        self._send_closed = False
        self._threads: list[threading.Thread] = []

    # ---- counters --------------------------------------------------------------------------

    @property
    def bytes_sent(self) -> int:
        return self._out_count.count

    @property
    def bytes_received(self) -> int:
        return self._in_count.count

    # ---- raw access before the threads start (handshake) -----------------------------------

    @property
    def raw_reader(self) -> BinaryIO:
        return self._reader

    @property
    def raw_writer(self) -> BinaryIO:
        return self._writer

    def start(self) -> None:
        """Start the reader and writer threads (after the handshake), and the watchdog of
        the inactivity timeout if there is one."""
        for target, name in ((self._read_loop, "reader"), (self._write_loop, "writer")):
            thread = threading.Thread(target=target, name=f"rdb-remote-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.timeout:
            threading.Thread(target=self._watch, name="rdb-remote-watchdog", daemon=True).start()

    # ---- the inactivity timeout --------------------------------------------------------

    def _watch(self) -> None:
        timeout = self.timeout
        assert timeout
        while not self._closed.wait(min(1.0, timeout / 4)):
            if self._failure is not None:
                return
            if self._waiting_for_room:
                continue
            quiet = time.monotonic() - max(self._in_count.last, self._sent_at)
            if quiet >= timeout:
                self._stalled = True
                self.fail(self.stalled())
                self._wake_inbox()
                if self._on_stall is not None:
                    self._on_stall()
                return

    def stalled(self) -> ConnectionFailed:
        """The error of an inactivity timeout."""
        seconds = f"{self.timeout:g}"
        return ConnectionFailed(
            f"nothing received or sent for {seconds} s (--timeout {seconds}): the remote side "
            "or the network stalled; check them (is it stopped, is the host up?), or give a "
            "longer --timeout",
            path=self.peer,
        )

    # ---- failure -------------------------------------------------------------------------

    def fail(self, error: RdbError) -> RdbError:
        """Record the connection's first failure (later ones are consequences); return it."""
        with self._lock:
            if self._failure is None:
                self._failure = error
            return self._failure

    @property
    def failure(self) -> RdbError | None:
        return self._failure

    def lost(self, what: str) -> ConnectionFailed:
        """The error for a connection that ended (``what``: how it was noticed)."""
        reason = self._describe_loss() if self._describe_loss is not None else ""
        text = f"the connection was lost ({what}{'; ' + reason if reason else ''})"
        return ConnectionFailed(text, path=self.peer)

    # ---- sending -------------------------------------------------------------------------

    def send(self, message: object) -> None:
        """Queue ``message`` for the peer (raises the connection's failure, if any)."""
        payload = self.codec.encode(message)
        self._put(payload)

    def _put(self, item: object) -> None:
        while True:
            failure = self._failure
            if failure is not None and item is not _CLOSE:
                raise failure
            if item is _CLOSE and not any(t.is_alive() for t in self._threads[1:]):
                return
            try:
                self._outbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def close_send(self) -> None:
        """No more messages: flush, then end the outbound stream (the peer sees its end)."""
        if self._send_closed:
            return
        self._send_closed = True
        self._put(_CLOSE)

    def _write_loop(self) -> None:
        writer = self._writer
        item: object = None
        try:
            while True:
                try:
                    item = self._outbox.get(timeout=KEEPALIVE)
                except queue.Empty:
                    write_frame(writer, b"")  # a keep-alive: we are here, with nothing to say
                    writer.flush()
                    continue
                if item is _CLOSE:
                    writer.flush()
                    writer.close()
                    return
                assert isinstance(item, bytes)
                write_frame(writer, item)
                if self._outbox.empty():
                    writer.flush()
                self._sent_at = time.monotonic()
        except (OSError, ValueError):
            # not put in the inbox: what the peer sent before it left is still to be taken,
            # and its end follows (receive() raises this failure when nothing more comes)
            self.fail(self.lost("the peer stopped reading"))
            with contextlib.suppress(OSError, ValueError):
                writer.close()  # (a failed flush leaves the rest buffered: dropped here)
            # keep taking messages so no sender stays blocked on a full queue, up to the end
            while item is not _CLOSE:
                item = self._outbox.get()

    # ---- receiving -----------------------------------------------------------------------

    def receive(self) -> object:
        """The next message (blocks); raises the connection's failure when it has one."""
        while True:
            try:
                item = self._inbox.get(timeout=0.5)
                break
            except queue.Empty:
                failure = self._failure
                if failure is not None:  # (a stalled reader puts nothing in the inbox)
                    raise failure from None
        if isinstance(item, _Failure):
            self._inbox.put(item)  # every later receive raises it too
            raise item.error
        assert isinstance(item, _Received)
        with self._room:
            self._inbox_bytes -= item.size
            self._room.notify()
        return item.message

    @overload
    def receive_as(self, kinds: tuple[type[A]]) -> A: ...
    @overload
    def receive_as(self, kinds: tuple[type[A], type[B]]) -> A | B: ...
    @overload
    def receive_as(self, kinds: tuple[type[A], type[B], type[C]]) -> A | B | C: ...
    @overload
    def receive_as(self, kinds: tuple[type, ...]) -> object: ...
    def receive_as(self, kinds: tuple[type, ...]) -> object:
        """The next message, which must be one of ``kinds`` (else ProtocolError)."""
        message = self.receive()
        if not isinstance(message, kinds):
            raise self.fail(
                ProtocolError(
                    f"unexpected message {type(message).__name__} from the peer", path=self.peer
                )
            )
        return message

    def _read_loop(self) -> None:
        reader = self._reader
        decode = self.codec.decode
        try:
            while True:
                payload = read_frame(reader)
                if payload is None:  # a clean end: only an error if someone reads past it
                    self._inbox.put(_Failure(lambda: self._failure or self.lost("end of stream")))
                    return
                if not payload:
                    continue  # a keep-alive
                message = decode(payload)
                with self._room:
                    self._waiting_for_room = True
                    self._room.wait_for(lambda: self._inbox_bytes < INBOX_BYTES)
                    self._inbox_bytes += len(payload)
                self._inbox.put(_Received(message, len(payload)))
                self._waiting_for_room = False
                self._in_count.last = time.monotonic()  # the peer's silence was ours
        except TruncatedStream:
            lost = self.fail(self.lost("the stream ended inside a frame"))
            self._inbox.put(_Failure(lambda: lost))
        except ProtocolError as error:
            garbled = self.fail(ProtocolError(str(error), path=self.peer))
            self._inbox.put(_Failure(lambda: garbled))
        except (OSError, ValueError) as error:
            broken = self.fail(self.lost(f"read error: {error}"))
            self._inbox.put(_Failure(lambda: broken))
        finally:
            with contextlib.suppress(OSError, ValueError):
                reader.close()

    def _wake_inbox(self) -> None:
        with contextlib.suppress(queue.Full):
            failure = self._failure
            if failure is not None:
                self._inbox.put_nowait(_Failure(lambda: failure))

    # ---- the end -------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> None:
        """Flush and end the outbound stream (waits, bounded, for the writer to finish).

        The reader thread ends by itself at the peer's end of stream. After an inactivity
        timeout nothing is waited for (the writer may be stuck on the stalled peer).
        """
        self._closed.set()
        if self._stalled:
            return
        self.close_send()
        for thread in self._threads[1:]:
            thread.join(timeout)
