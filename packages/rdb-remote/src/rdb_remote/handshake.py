"""The version handshake: the first bytes each side writes, before any message.

Each side writes :data:`MAGIC`, then one frame holding a :class:`Hello` (its program, its
version, and the range of protocol versions it speaks), and reads the other's. Both write
first, so neither waits for the other. The connection then speaks the highest version both
know; if the ranges do not meet, the side that must change is named in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from rdb_format.errors import ConnectionFailed, ProtocolError
from rdb_remote.framing import TruncatedStream, read_exactly, read_frame, write_frame
from rdb_remote.wire import Codec

__all__ = ["MAGIC", "Hello", "negotiate", "read_hello", "write_hello"]

#: 8 bytes no text line starts with: a shell banner or "command not found" is told apart at
#: once, and a 7-bit or CR/LF-mangling channel breaks it visibly (as PNG's signature does).
MAGIC = b"\x89RDB\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class Hello:
    """Who speaks: ``program`` (``rdb-mirror``), its ``version``, and the protocol versions
    it speaks, ``oldest`` to ``protocol``."""

    program: str
    version: str
    protocol: int
    oldest: int


_CODEC = Codec([Hello])


def write_hello(stream: BinaryIO, hello: Hello) -> None:
    stream.write(MAGIC)
    write_frame(stream, _CODEC.encode(hello))
    stream.flush()


def read_hello(stream: BinaryIO, *, peer: str, command: str) -> Hello:
    """The peer's Hello. ConnectionFailed if it said nothing; ProtocolError if it is not us.

    ``command`` (what was run there) is named in the messages.
    """
    try:
        magic = read_exactly(stream, len(MAGIC))
    except TruncatedStream as short:
        magic = b"?" * short.got
    if not magic:
        raise ConnectionFailed(
            f"{command} gave no answer (it exited or could not be started)", path=peer
        )
    if magic != MAGIC:
        shown = magic.decode("ascii", "replace").strip() or repr(magic)
        raise ProtocolError(
            f"{command} did not answer as an rdb --server (it wrote {shown!r}...); "
            "check --remote-schema and that the program there is this toolkit's",
            path=peer,
        )
    try:
        payload = read_frame(stream)
    except TruncatedStream:
        payload = None
    if payload is None:
        raise ConnectionFailed(f"{command} stopped during the handshake", path=peer)
    try:
        hello = _CODEC.decode(payload)
    except ProtocolError as error:
        raise ProtocolError(f"bad handshake from {command}: {error}", path=peer) from None
    if not isinstance(hello, Hello):
        raise ProtocolError(f"bad handshake from {command}", path=peer)
    return hello


def negotiate(ours: Hello, theirs: Hello, *, peer: str, where: str) -> int:
    """The protocol version both speak; ProtocolError naming what to install or upgrade.

    ``where`` names the peer's host in the advice (``on backup.example.org``).
    """
    if theirs.program != ours.program:
        raise ProtocolError(
            f"the remote command is {theirs.program} {theirs.version}, not {ours.program}; "
            "check --remote-schema",
            path=peer,
        )
    version = min(ours.protocol, theirs.protocol)
    if theirs.protocol < ours.oldest:
        raise ProtocolError(
            f"{theirs.program} {theirs.version} {where} is too old (protocol {theirs.protocol}; "
            f"this {ours.program} {ours.version} needs {ours.oldest} to {ours.protocol}); "
            f"upgrade {ours.program} {where}",
            path=peer,
        )
    if ours.protocol < theirs.oldest:
        raise ProtocolError(
            f"{theirs.program} {theirs.version} {where} is too new (it needs protocol "
            f"{theirs.oldest} or later; this {ours.program} {ours.version} speaks up to "
            f"{ours.protocol}); upgrade {ours.program} here, or install {ours.version} {where}",
            path=peer,
        )
    return version
