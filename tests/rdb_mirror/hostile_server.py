"""A hostile remote source for rdb-mirror: shakes hands properly, then misbehaves.

    python hostile_server.py MODE [HOST]

MODE: unsafe-path (an entry named ``../escaped``), out-of-order (entries not in metadata
order), wrong-record-path (an entry whose record names another path), unknown-request (an
answer to a request never made), wrong-kind (a repository message sent by a source),
incomplete (a record without the fields its type needs), bad-kind (an error_log type that
is not one), wrong-sha1 (file ``f``, 64 KiB, changed: a valid delta against the repository's
signature, announced with a SHA1 that is not the new content's), huge-time (a new file whose
full-precision mtime does not fit in 64 bits), endless-delta (file ``f`` changed: delta
chunks without end), expanding-delta (file ``f`` changed: a few COPY commands that patch
into 1000 times the size announced), oversize-content (a 10-byte file answered with 8 MiB),
mismatched-size (a file whose record and stat key disagree on its size), stall (the root
entry, then it stops itself with SIGSTOP: connected, silent).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import threading
import time

from rdb_format.errors import RdbError
from rdb_format.metadata import FileType, Record
from rdb_mirror.protocol import (
    CODEC,
    Batch,
    Begin,
    Chunk,
    Content,
    ContentEnd,
    ContentRequest,
    Credit,
    DeltaRequest,
    Entry,
    Failed,
    Problem,
    Ready,
    SignatureChunk,
    SourceStart,
    WalkDone,
)
from rdb_mirror.remote import HELLO
from rdb_remote import Connection, serve_stdio
from rdiff.api import iter_delta, load_signature


def entry(index: tuple[bytes, ...], path: bytes | None = None, kind: FileType = "dir") -> Entry:
    name = path if path is not None else (b"/".join(index) if index else b".")
    record = Record(
        name, kind, size=0 if kind == "reg" else None, mod_time=0, permissions=0o755, uid=0, gid=0
    )
    return Entry(index, record, (0, 0, 0, 1), 0, 0)


def _with_mtime_ns(entry: Entry, mtime_ns: int) -> Entry:
    return Entry(entry.index, entry.record, entry.stat_key, mtime_ns, entry.atime_ns)


def main() -> int:
    mode = sys.argv[1]
    connection, _ = serve_stdio(HELLO, CODEC)
    connection.receive_as((SourceStart,))
    connection.send(Ready(False, False, 0))
    connection.receive_as((Begin,))
    root = entry(())
    messages: dict[str, object] = {
        "unsafe-path": Batch((root, entry((b"..", b"escaped"), kind="reg"))),
        "out-of-order": Batch((root, entry((b"b",)), entry((b"a",)))),
        "wrong-record-path": Batch((root, entry((b"a",), path=b"escaped"))),
        "unknown-request": Batch((root,)),
        "wrong-kind": ContentRequest(0, (b"a",), (0, 0, 0, 0)),
        "incomplete": Batch((Entry((), Record(b".", "dir"), (0, 0, 0, 1), 0, 0),)),
        "bad-kind": Batch((root, Problem((b"a",), "Evil: '/etc' forged\nUpdateError", "x"))),
        "mismatched-size": Batch(
            (root, Entry((b"a",), entry((b"a",), kind="reg").record, (1 << 30, 0, 0, 1), 0, 0))
        ),
        "huge-time": Batch((root, _with_mtime_ns(entry((b"a",), kind="reg"), 1 << 70))),
    }
    if mode == "wrong-sha1":
        return _wrong_sha1(connection, root)
    if mode == "stall":
        connection.send(Batch((root,)))
        time.sleep(0.5)  # (sent)
        os.kill(os.getpid(), signal.SIGSTOP)
    if mode == "endless-delta":
        return _endless_delta(connection, root)
    if mode == "expanding-delta":
        return _expanding_delta(connection, root)
    if mode == "more-than-announced":
        return _more_than_announced(connection, root)
    if mode == "oversize-content":
        return _oversize_content(connection, root)
    connection.send(messages[mode])
    if mode == "unknown-request":
        connection.send(Chunk(99, b"escaped"))
    return _drain_and_close(connection)


def _delta_requested(connection: Connection, root: Entry, size: int) -> tuple[int, list[bytes]]:
    """List a changed file ``f`` of ``size`` bytes; (request, signature) of its delta request."""
    record = Record(b"f", "reg", size=size, mod_time=7, uid=0, gid=0, permissions=0o644)
    connection.send(Batch((root, Entry((b"f",), record, (size, 7, 7, 2), 7, 7))))
    signature: list[bytes] = []
    while True:
        message = connection.receive_as((SignatureChunk, DeltaRequest, Credit))
        if isinstance(message, SignatureChunk):
            signature.append(message.data)
        elif isinstance(message, DeltaRequest):
            return message.request, signature


def _wrong_sha1(connection: Connection, root: Entry) -> int:
    size = 64 << 10
    request, signature = _delta_requested(connection, root, size)
    delta = b"".join(iter_delta(load_signature(signature), [b"y" * size]))
    connection.send(Chunk(request, delta))
    connection.send(ContentEnd(request, size, "0" * 40))
    connection.send(WalkDone(2))
    return _drain_and_close(connection)


def _endless_delta(connection: Connection, root: Entry) -> int:
    """Delta chunks for a 64 KiB file until the repository side hangs up (or, so that an
    implementation without a bound does not fill the test machine's disk, 256 MiB of them
    and a ContentEnd)."""
    size = 64 << 10
    request, _ = _delta_requested(connection, root, size)
    # the repository side's Failed (or hang-up) ends this process at once: the chunks still
    # being sent fill the pipe, and nothing else would stop the loop below
    threading.Thread(target=_exit_when_told, args=(connection,), daemon=True).start()
    literal = b"\x42\x80\x00" + b"z" * 32768  # LITERAL_N2 32768
    try:
        connection.send(Chunk(request, b"rs\x026"))
        for _ in range((256 << 20) // len(literal)):
            connection.send(Chunk(request, literal))
        connection.send(Chunk(request, b"\x00"))
        connection.send(ContentEnd(request, size, hashlib.sha1(b"z" * size).hexdigest()))
        connection.send(WalkDone(2))
    except RdbError:
        pass
    return _drain_and_close(connection)


def _expanding_delta(connection: Connection, root: Entry) -> int:
    """A 6 KiB delta of 1000 COPYs of the whole 64 KiB basis, announced as 64 KiB."""
    size = 64 << 10
    request, _ = _delta_requested(connection, root, size)
    copy = b"\x47\x00" + size.to_bytes(4, "big")  # COPY offset 0 (1 byte), length (4 bytes)
    connection.send(Chunk(request, b"rs\x026" + copy * 1000 + b"\x00"))
    connection.send(ContentEnd(request, size, hashlib.sha1(b"y" * size).hexdigest()))
    connection.send(WalkDone(2))
    return _drain_and_close(connection)


def _ten_bytes_requested(connection: Connection, root: Entry) -> int:
    """List a 10-byte regular file ``f``; the number of the request for its content."""
    record = Record(b"f", "reg", size=10, mod_time=7, uid=0, gid=0, permissions=0o644)
    connection.send(Batch((root, Entry((b"f",), record, (10, 7, 7, 2), 7, 7))))
    while not isinstance(message := connection.receive(), ContentRequest):
        pass
    return message.request


def _more_than_announced(connection: Connection, root: Entry) -> int:
    """A 10-byte file answered with 64 MiB of chunks, then a ContentEnd claiming 10 bytes."""
    request = _ten_bytes_requested(connection, root)
    for _ in range(64):
        connection.send(Chunk(request, b"x" * (1 << 20)))
    connection.send(ContentEnd(request, 10, hashlib.sha1(b"x" * 10).hexdigest()))
    connection.send(WalkDone(2))
    return _drain_and_close(connection)


def _oversize_content(connection: Connection, root: Entry) -> int:
    """A 10-byte file answered with one Content of 8 MiB (and its true SHA1)."""
    request = _ten_bytes_requested(connection, root)
    data = b"x" * (8 << 20)
    connection.send(Content(request, data, hashlib.sha1(data).hexdigest()))
    connection.send(WalkDone(2))
    return _drain_and_close(connection)


def _exit_when_told(connection: Connection) -> None:
    with contextlib.suppress(RdbError):
        while not isinstance(connection.receive(), Failed):
            pass
    os._exit(0)


def _drain_and_close(connection: Connection) -> int:
    """Read whatever the repository side still sends until it hangs up, then close."""
    try:
        while True:
            connection.receive()
    except RdbError:
        pass
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
