"""A hostile remote source for rdb-mirror: shakes hands properly, then misbehaves.

    python hostile_server.py MODE [HOST]

MODE: unsafe-path (an entry named ``../escaped``), out-of-order (entries not in metadata
order), wrong-record-path (an entry whose record names another path), unknown-request (an
answer to a request never made), wrong-kind (a repository message sent by a source),
incomplete (a record without the fields its type needs), bad-kind (an error_log type that
is not one).
"""

from __future__ import annotations

import sys

from rdb_format.errors import RdbError
from rdb_format.metadata import Record
from rdb_mirror.protocol import (
    CODEC,
    Batch,
    Begin,
    Chunk,
    ContentRequest,
    Entry,
    Problem,
    Ready,
    SourceStart,
)
from rdb_mirror.remote import HELLO
from rdb_remote import serve_stdio


def entry(index: tuple[bytes, ...], path: bytes | None = None, kind: str = "dir") -> Entry:
    name = path if path is not None else (b"/".join(index) if index else b".")
    record = Record(
        name, kind, size=0 if kind == "reg" else None, mod_time=0, permissions=0o755, uid=0, gid=0
    )
    return Entry(index, record, (0, 0, 0, 1), 0, 0)


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
    }
    connection.send(messages[mode])
    if mode == "unknown-request":
        connection.send(Chunk(99, b"escaped"))
    try:
        while True:
            connection.receive()
    except RdbError:
        pass
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
