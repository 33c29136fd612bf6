"""rdb-mirror's message set crosses the wire unchanged (every message type, every field kind)."""

from __future__ import annotations

import pytest

from rdb_format.eas_acls import ACLEntry
from rdb_format.errors import ProtocolError
from rdb_format.metadata import Record

protocol = pytest.importorskip("rdb_mirror.protocol")  # rdb-remote alone has no rdb-mirror

RECORD = Record(b"d/f", "reg", size=3, mod_time=5, uid=0, gid=0, permissions=0o644)
MESSAGES = [
    protocol.Entry(
        (b"d", b"f"),
        RECORD,
        (3, 10**18, 10**18 + 1, 2**40),
        10**18,
        -5,
        ((b"user.x", b"\x00\xff"),),
        (ACLEntry("user", "nobody", "r--"), ACLEntry("mask", "", "rwx", default=True)),
        unlisted=True,
    ),
    protocol.Problem((b"x",), "ListError", "cannot list: Permission denied"),
    protocol.WalkDone(10, None),
    protocol.WalkDone(10, "gone"),
    protocol.Chunk(1, b"\x00" * 1000),
    protocol.Content(2, b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    protocol.ContentEnd(3, 1 << 40, "0" * 40),
    protocol.ContentFailed(4, "vanished"),
    protocol.ContentRequest(5, (b"a", b"\xff\n"), (1, 2, 3, 4)),
    protocol.Credit(256),
    protocol.Finish(),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: object) -> None:
    assert protocol.CODEC.decode(protocol.CODEC.encode(message)) == message


def test_a_batch_round_trips_and_refuses_foreign_members() -> None:
    batch = protocol.Batch((MESSAGES[0], MESSAGES[1]))
    assert protocol.CODEC.decode(protocol.CODEC.encode(batch)) == batch
    bad = protocol.CODEC.encode(protocol.Batch((MESSAGES[0],)))
    number = bytes([protocol.CODEC.encode(MESSAGES[9])[1]])  # Credit's type number
    with pytest.raises(ProtocolError, match=r"Batch\.messages"):
        protocol.CODEC.decode(bad[:4] + b"S" + number + b"i\x02")
