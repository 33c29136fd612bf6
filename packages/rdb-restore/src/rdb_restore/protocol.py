"""The messages between ``rdb-restore`` and ``rdb-restore --server`` (docs/protocol.md,
"rdb-restore messages").

The client sends one request; the server answers with a stream and ends it with
:class:`Done` (or :class:`Failed`). A restore streams the entries of the session in metadata
order, each regular file's bytes right after its entry: small files whole inside a
:class:`Batch`, big ones as :class:`FileStart`, :class:`Chunk`\\ s and :class:`FileEnd`. The
server rebuilds files ahead on its worker pool while it sends, so the link never waits for a
round trip per file; the client writes them on its own pool.

All fields are bytes, ints, strings, Records and tuples of them (rdb_remote's encoding: no
pickle, every field checked against these type hints when decoded).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdb_format.eas_acls import ACLEntry
from rdb_format.metadata import Record
from rdb_remote.handshake import Hello
from rdb_remote.wire import Codec

PROGRAM = "rdb-restore"
#: The protocol versions this rdb-restore speaks (docs/protocol.md, "Versioning rules").
PROTOCOL = 2
OLDEST = 2


def hello(version: str) -> Hello:
    return Hello(PROGRAM, version, PROTOCOL, OLDEST)


# ---- client → server: one request per connection ----------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreRequest:
    """Stream the tree of ``location`` (``REPO[/PATH]`` or an increment file, a path on the
    server) as of ``at`` (a time spec; None: the newest), relative to the client's ``now``."""

    location: bytes
    at: str | None
    now: int


@dataclass(frozen=True, slots=True)
class ListRequest:
    """The sessions of the repository at ``location``."""

    location: bytes


@dataclass(frozen=True, slots=True)
class ListFilesRequest:
    """The records under ``location`` (``REPO[/PATH]``) as of ``at``."""

    location: bytes
    at: str | None
    now: int


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    """Rebuild every regular file under ``location`` as of ``at`` on the server, check its
    SHA1, and report (``workers``: the server's thread count; None: its default)."""

    location: bytes
    at: str | None
    now: int
    workers: int | None


# ---- server → client ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    """The request's session ``time``, and the repository's root on the server (messages)."""

    time: int
    repository: bytes


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of the tree, as its metadata says; no content follows it (a directory, a
    special file, or a later member of a hard-link group)."""

    record: Record
    eas: tuple[tuple[bytes, bytes], ...]
    acl: tuple[ACLEntry, ...]


@dataclass(frozen=True, slots=True)
class SmallFile:
    """A regular file and all its bytes (up to :data:`SMALL` of them)."""

    item: Item
    data: bytes


@dataclass(frozen=True, slots=True)
class BadFile:
    """A regular file the server could not rebuild (the client leaves it out and names it)."""

    item: Item
    message: str


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive entries in metadata order, in one frame."""

    items: tuple[Item | SmallFile | BadFile, ...]


@dataclass(frozen=True, slots=True)
class FileStart:
    """A regular file whose bytes follow as :class:`Chunk` messages, then :class:`FileEnd`."""

    item: Item


@dataclass(frozen=True, slots=True)
class Chunk:
    """The next piece (at most :data:`CHUNK` bytes) of the file being sent."""

    data: bytes


@dataclass(frozen=True, slots=True)
class FileEnd:
    """The file being sent is complete; or, with ``error``, it could not be rebuilt to the
    end (the client drops what it got)."""

    error: str | None = None


@dataclass(frozen=True, slots=True)
class Records:
    """Metadata records, in order (``list files``)."""

    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session of ``list``: its time, its increments' bytes, the bytes needed to restore
    it, and whether it is the mirror's."""

    time: int
    size: int
    total_size: int
    current: bool


@dataclass(frozen=True, slots=True)
class Sessions:
    sessions: tuple[SessionRow, ...]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify`` found on the server (``bad`` and ``unchecked``: one line per file)."""

    time: int
    checked: int
    bytes: int
    bad: tuple[str, ...]
    unchecked: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Done:
    """The answer is complete: ``entries`` entries were sent."""

    entries: int


@dataclass(frozen=True, slots=True)
class Failed:
    """The request failed on the server: one line, and the exit status it means there."""

    exit_code: int
    message: str


Request = RestoreRequest | ListRequest | ListFilesRequest | VerifyRequest
REQUESTS = (RestoreRequest, ListRequest, ListFilesRequest, VerifyRequest)

#: Files up to this size travel whole inside a :class:`Batch`; larger ones in chunks.
SMALL = 256 << 10
CHUNK = 256 << 10

#: The wire encoding of protocol 1: a message's type number is its position here, so new
#: messages are appended (and the protocol version raised).
CODEC = Codec(
    [
        ACLEntry,
        RestoreRequest,
        ListRequest,
        ListFilesRequest,
        VerifyRequest,
        Session,
        Item,
        SmallFile,
        BadFile,
        Batch,
        FileStart,
        Chunk,
        FileEnd,
        Records,
        SessionRow,
        Sessions,
        VerifyReport,
        Done,
        Failed,
    ]
)
