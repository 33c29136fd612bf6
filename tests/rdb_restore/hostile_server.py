"""A hostile ``rdb-restore --server``: shakes hands properly, then sends what it should not.

    python hostile_server.py MODE

MODE: unsafe-path (a file named ``../escaped``), absolute-path (``/tmp/...``), orphan (a
file whose directory was never sent), through-symlink (a symlink, then a file "inside" it),
no-content (a regular file without its bytes), wrong-size (bytes that do not match the
record), endless (a file recorded as 10 bytes followed by 64 MiB of chunks: the client must
stop writing it at its recorded size, not fill the disk; ``/r``: in a tree, else alone),
stall (the session, then it stops itself with SIGSTOP: connected, silent).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from rdb_format.errors import RdbError
from rdb_format.metadata import Record
from rdb_remote import serve_stdio
from rdb_restore.protocol import (
    CODEC,
    REQUESTS,
    Batch,
    Chunk,
    Done,
    FileEnd,
    FileStart,
    Item,
    Session,
    SmallFile,
    hello,
)

PAYLOAD = b"written by a hostile server\n"


def item(path: bytes, kind: str = "dir", **fields: object) -> Item:
    record = Record(path, kind, mod_time=0, permissions=0o755, uid=0, gid=0, **fields)  # type: ignore[arg-type]
    return Item(record, (), ())


def file(path: bytes, size: int = len(PAYLOAD)) -> SmallFile:
    return SmallFile(item(path, "reg", size=size), PAYLOAD)


def main() -> int:
    mode = sys.argv[1]
    connection, _ = serve_stdio(hello("9.9"), CODEC)
    request = connection.receive_as(REQUESTS)
    connection.send(Session(1_700_000_000, b"/hostile"))
    root = item(b".")
    if mode == "stall":
        time.sleep(0.5)  # (the session sent)
        os.kill(os.getpid(), signal.SIGSTOP)
    answers: dict[str, Batch] = {
        "unsafe-path": Batch((root, file(b"../escaped"))),
        "absolute-path": Batch((root, file(sys.argv[2].encode() if len(sys.argv) > 2 else b"/x"))),
        "orphan": Batch((root, file(b"missing/escaped"))),
        "through-symlink": Batch(
            (root, item(b"link", "sym", sym_data=b"/"), file(b"link/escaped"))
        ),
        "no-content": Batch((root, item(b"escaped", "reg", size=len(PAYLOAD)))),
        "wrong-size": Batch((root, file(b"escaped", size=3))),
    }
    if mode == "endless":
        if getattr(request, "location", None) == b"/r":  # the tree, else the one file
            connection.send(Batch((root,)))
        connection.send(FileStart(item(b"big", "reg", size=10)))
        for _ in range(256):  # 64 MiB
            connection.send(Chunk(b"x" * (256 << 10)))
        connection.send(FileEnd(None))
        connection.send(Done(2))
        connection.close()
        return 0
    connection.send(answers[mode])
    connection.send(Done(2))
    try:
        connection.close()
    except RdbError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
