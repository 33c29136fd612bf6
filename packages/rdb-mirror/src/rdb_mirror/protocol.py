"""The messages between the two halves of a backup, and the channel that carries them.

The *source side* walks the source tree, stats every entry and reads (and hashes) the files
the repository side asks for. The *repository side* owns the repository: it compares each
entry with the stored metadata, writes increments and the mirror, and the session's files.
They share nothing but two streams of these plain dataclasses:

source → repository (:data:`SourceMessage`)
    :class:`Entry` for every selected entry, in metadata order (depth first, siblings sorted
    bytewise); :class:`Problem` for an entry the walk could not read; :class:`Chunk` ...
    :class:`ContentEnd` (or one :class:`Content` for a small file, or :class:`ContentFailed`)
    answering a :class:`ContentRequest` (in process, a large file's :class:`LocalFile`
    descriptor instead of its chunks); and
    one :class:`WalkDone` after the last entry.

repository → source (:data:`RepositoryMessage`)
    :class:`ContentRequest` for every regular file whose content it needs (new or changed
    by stat), or, over a remote channel, for a changed file with an old mirror copy,
    :class:`SignatureChunk` s of that copy's signature then a :class:`DeltaRequest`
    (answered by the delta as :class:`Chunk` s and a :class:`ContentEnd`);
    :class:`Credit` granting the walk room for more entries (flow control: the walk never
    runs more than a window ahead); :class:`Finish` when it needs nothing more.

Over ssh, session control messages frame the two streams (docs/protocol.md): the client
starts the remote half with :class:`RepositoryStart` or :class:`SourceStart`, the remote
answers :class:`Ready` (or :class:`Failed`); a remote source gets :class:`Begin`; a remote
repository side reports :class:`ProgressEvent` s and ends with :class:`Done` (or
:class:`Failed`).

Nothing waits for a reply per file: requests are sent as entries arrive, the source side
answers them on a worker pool while its walk goes on, and answers carry the request number.
In process both ends are a :class:`rdb_mirror.stepped_source.SteppedSource`, which runs the
source half on the repository side's thread; over ssh they are an
:class:`rdb_remote.Connection` carrying these dataclasses in :data:`CODEC`'s encoding
(docs/protocol.md: all fields are bytes, ints, strings and tuples of them, plus
:class:`rdb_format.metadata.Record`; no pickle).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from rdb_format.eas_acls import ACLEntry
from rdb_format.metadata import Record
from rdb_format.statistics import SessionStatistics

if TYPE_CHECKING:
    from rdb_remote.wire import Codec

__all__ = [
    "CODEC",
    "Batch",
    "Begin",
    "Chunk",
    "Content",
    "ContentEnd",
    "ContentFailed",
    "ContentRequest",
    "Credit",
    "DeltaRequest",
    "Done",
    "Entry",
    "Failed",
    "Finish",
    "Index",
    "LocalFile",
    "Problem",
    "ProgressEvent",
    "Ready",
    "RepositoryMessage",
    "RepositoryStart",
    "SignatureChunk",
    "SourceMessage",
    "SourceStart",
    "StatKey",
    "WalkDone",
]

Index = tuple[bytes, ...]

#: (size, mtime_ns, ctime_ns, inode): what must not change while a file is read.
StatKey = tuple[int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass(slots=True)  # not frozen: made once per entry, and frozen's __init__ costs 5x
class Entry:
    """One selected source entry, as its metadata record says (without the SHA1); never
    changed once made (as if frozen: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, 0.68 µs an entry against 0.14).

    ``eas`` and ``acl`` are None when the source does not support (or the session does not
    keep) extended attributes / ACLs; ``()`` when the entry has none (or a trivial ACL).
    ``unlisted`` marks a directory whose contents could not be listed: the repository keeps
    what it had below it. ``mtime_ns``/``atime_ns`` give full precision for the mirror copy.
    """

    index: Index
    record: Record
    stat_key: StatKey
    mtime_ns: int
    atime_ns: int
    eas: tuple[tuple[bytes, bytes], ...] | None = None
    acl: tuple[ACLEntry, ...] | None = None
    unlisted: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """An entry the walk could not stat or list; ``kind`` is the error_log type."""

    index: Index
    kind: str  # ListError, UpdateError, SpecialFileError
    message: str


@dataclass(frozen=True, slots=True)
class WalkDone:
    """The walk is over; ``entries`` were sent. ``error`` says why it stopped early (then the
    repository side must not commit the session: unsent entries would look deleted)."""

    entries: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Several walk messages (:class:`Entry`, :class:`Problem`) in their order: one channel
    message per many entries (a queue hand-off or a pipe frame per entry costs more than the
    entry's own work when nothing changed)."""

    messages: tuple[Entry | Problem, ...]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of the content answering request ``request`` (in order)."""

    request: int
    data: bytes


@dataclass(slots=True)  # not frozen, as Entry: one per file asked for
class Content:
    """The whole content of request ``request`` in one message (small files): the same as
    one :class:`Chunk` then :class:`ContentEnd`, half the messages."""

    request: int
    data: bytes
    sha1: str


@dataclass(frozen=True, slots=True)
class ContentEnd:
    """The content of request ``request`` is complete: ``size`` bytes with this SHA1."""

    request: int
    size: int
    sha1: str


@dataclass(frozen=True, slots=True)
class LocalFile:
    """In process only (never encoded: not in :data:`CODEC`): the source side's own open
    descriptor ``fd`` of requested file ``request`` (1 MiB or more), handed over so the
    repository side copies it in the kernel (``copy_file_range``) while the source side reads
    it for its SHA1; the receiver closes ``fd``. A :class:`ContentEnd` (size, SHA1, checked
    unchanged) or :class:`ContentFailed` follows as for :class:`Chunk` s."""

    request: int
    fd: int


@dataclass(frozen=True, slots=True)
class ContentFailed:
    """Request ``request`` cannot be answered (vanished, unreadable, changed while read)."""

    request: int
    message: str


@dataclass(slots=True)  # not frozen, as Entry: one per file asked for
class ContentRequest:
    """Send the content of ``index`` if it still has ``stat_key`` (else fail the request)."""

    request: int
    index: Index
    stat_key: StatKey


@dataclass(frozen=True, slots=True)
class Credit:
    """The repository side has processed ``entries`` more entries: the walk may go on."""

    entries: int


@dataclass(frozen=True, slots=True)
class Finish:
    """The repository side needs nothing more: the source side may stop."""


@dataclass(frozen=True, slots=True)
class SignatureChunk:
    """A piece of the signature of the old mirror copy for request ``request`` (in order)."""

    request: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DeltaRequest:
    """The signature of request ``request`` is complete: send the delta from it to the
    content of ``index`` (if it still has ``stat_key``) as :class:`Chunk` s, then a
    :class:`ContentEnd` with the new file's size and SHA1 (or :class:`ContentFailed`)."""

    request: int
    index: Index
    stat_key: StatKey


# ---- session control (remote sessions only; docs/protocol.md) ------------------------------


@dataclass(frozen=True, slots=True)
class RepositoryStart:
    """Client → server: run the repository side of a backup into ``path`` (the client runs
    the source side). Options as :class:`rdb_mirror.session.BackupOptions`; ``source_eas`` /
    ``source_acls`` say what the source file system keeps; ``source`` names it (backup.log)."""

    path: bytes
    source: str
    current_time: int | None
    compression: bool
    no_compression_regexp: str | None
    file_statistics: bool
    eas: bool
    acls: bool
    workers: int | None
    force: bool
    deltas: bool
    source_eas: bool
    source_acls: bool


@dataclass(frozen=True, slots=True)
class SourceStart:
    """Client → server: run the source side of a backup of ``path`` with these selection
    options (``(option, value)`` in command-line order; the client runs the repository).
    The file lists they name were read on the client: ``lists`` (name, content), and
    ``stdin`` what a ``-stdin`` option reads."""

    path: bytes
    selection: tuple[tuple[str, str | None], ...]
    workers: int | None
    lists: tuple[tuple[str, bytes], ...] = ()
    stdin: bytes | None = None


@dataclass(frozen=True, slots=True)
class Ready:
    """Server → client: the remote half is ready. From a repository side: the session's
    capabilities and the walk's window; from a source side: what its file system keeps."""

    eas: bool
    acls: bool
    window: int


@dataclass(frozen=True, slots=True)
class Begin:
    """Client (repository side) → remote source: walk now, with these capabilities."""

    eas: bool
    acls: bool
    window: int


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """A remote repository side's progress: ``kind`` start (``text`` the task, ``number``
    the total or None), advance (``number`` done since the last), or warning (``text``)."""

    kind: str
    text: str | None
    number: int | None


@dataclass(frozen=True, slots=True)
class Done:
    """Server (repository side) → client: the session is committed."""

    time: int
    previous_time: int | None
    statistics: SessionStatistics
    errors: tuple[str, ...]
    new_repository: bool
    regressed: tuple[int, int] | None  # (the unfinished session's time, the restored time)
    bytes_read: int


@dataclass(frozen=True, slots=True)
class Failed:
    """Either way: the sender's half failed with this one-line message and exit status."""

    message: str
    exit_code: int


SourceMessage = (
    Entry | Problem | Batch | WalkDone | Chunk | Content | ContentEnd | ContentFailed | LocalFile
)
RepositoryMessage = ContentRequest | Credit | Finish | SignatureChunk | DeltaRequest

#: The protocol versions this rdb-mirror speaks over ssh (docs/protocol.md, "Versioning").
PROTOCOL_VERSION = 2
OLDEST_PROTOCOL = 2

#: The wire encoding of protocol 1 (docs/protocol.md): a message's type number is its
#: position here, so new messages are appended (and the protocol version raised).
#: Built on first use (``from rdb_mirror.protocol import CODEC``): only a remote session needs
#: it, and building it (type hints of every message, rdb_remote) costs every local run.
CODEC: Codec


def _codec() -> Codec:
    from rdb_remote.wire import Codec

    return Codec(
        [
            ACLEntry,
            Entry,
            Problem,
            Batch,
            WalkDone,
            Chunk,
            Content,
            ContentEnd,
            ContentFailed,
            ContentRequest,
            Credit,
            Finish,
            SignatureChunk,
            DeltaRequest,
            RepositoryStart,
            SourceStart,
            Ready,
            Begin,
            ProgressEvent,
            SessionStatistics,
            Done,
            Failed,
        ]
    )


if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:  # PEP 562: CODEC is made the first time it is asked
        if name == "CODEC":
            codec = globals()["CODEC"] = _codec()
            return codec
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


T_contra = TypeVar("T_contra", contravariant=True)
T_co = TypeVar("T_co", covariant=True)


class Sender(Protocol[T_contra]):
    def send(self, message: T_contra) -> None: ...


class Receiver(Protocol[T_co]):
    def receive(self) -> T_co: ...
