"""Opening a repository for reading: state checks, session times, the tree as of a session.

Everything here only reads. Mirror and increment files are opened through directory file
descriptors with ``O_NOFOLLOW`` (:class:`RepoReader`), so a symlink planted in the repository is
reported, never followed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rdb_format.eas_acls import ACLEntry, iter_acl_records, iter_ea_records
from rdb_format.errors import (
    CorruptRepository,
    RepositoryLocked,
    RepositoryNotFound,
    UnfinishedSession,
    UsageError,
)
from rdb_format.increments import parse_increment_name
from rdb_format.layout import (
    ACCESS_CONTROL_LISTS,
    DATA_DIR,
    EXTENDED_ATTRIBUTES,
    INCREMENTS,
    RDIFF_BACKUP_LOCK,
    Layout,
    split_repository_path,
)
from rdb_format.metadata import Record, path_key
from rdb_format.metadata_diff import find_session_file, raw_records_at
from rdb_format.quoting import Quoting
from rdb_format.repository import RepositoryState, read_state
from rdb_format.timestamps import resolve_time_spec, session_at_or_before

if TYPE_CHECKING:  # imported where increments are listed: a newest-session restore lists none
    from rdb_increment.rebuild import IncrementFile

Index = tuple[bytes, ...]
EAs = tuple[tuple[bytes, bytes], ...]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK, O_NOCTTY: should a FIFO or a terminal be put at a name between its lstat and its
# open, the open neither waits for a writer nor takes the terminal
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def show(index: Index) -> str:
    """An index as a readable relative path (``.`` for the root)."""
    raw = b"/".join(index) if index else b"."
    return raw.decode("utf-8", "backslashreplace").replace("\n", "\\n")


@dataclass(slots=True)
class Entry:
    """One file of the tree at a session: its metadata record, EAs and ACL (possibly empty).
    (Not frozen: one is built per file, and a frozen dataclass's ``__init__`` costs several
    times more.)"""

    record: Record
    index: Index
    eas: EAs = ()
    acl: tuple[ACLEntry, ...] = ()


@dataclass
class Repo:
    """An opened, finished repository and the sub-path a command was given."""

    layout: Layout
    state: RepositoryState
    sub: Index
    lock_fd: int | None = field(default=None, repr=False)

    @property
    def quoting(self) -> Quoting:
        return self.state.quoting

    @property
    def sessions(self) -> tuple[int, ...]:
        return self.state.sessions

    @property
    def current_time(self) -> int:
        current = self.state.current_time
        assert current is not None
        return current

    def resolve(self, spec: str | None, *, now: int | None = None) -> int:
        """A user time spec (None = now) rounded down to a session time (§3.6, §6.4)."""
        sessions = self.sessions
        when = resolve_time_spec(
            spec or "now", now=int(time.time()) if now is None else now, sessions=sessions
        )
        return session_at_or_before(when, sessions)

    def close(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the tree at a session ------------------------------------------------------------

    def recorded_extras(self, when: int) -> tuple[bool, bool]:
        """Whether session ``when`` recorded extended attributes, and ACLs (their snapshot
        files exist; a backup made without EA or ACL support writes none)."""
        data_dir, quoting = self.layout.data_dir, self.quoting
        return (
            _recorded(data_dir, EXTENDED_ATTRIBUTES, when, quoting) is not None,
            _recorded(data_dir, ACCESS_CONTROL_LISTS, when, quoting) is not None,
        )

    def entries_at(self, when: int, sub: Index | None = None) -> Iterator[Entry]:
        """The files under ``sub`` (default: the command's sub-path) at session ``when``,
        in metadata order, with their EAs and ACLs (§2.4, §2.7). Streaming."""
        prefix = self.sub if sub is None else sub
        data_dir = self.layout.data_dir
        # with the keys the parser made, merged with the diffs without making them again
        # (the walk thread's CPU restoring django's oldest session: 0.58 -> 0.55 s)
        records = raw_records_at(data_dir, when, quoting=self.quoting)
        eas = _ea_stream(data_dir, when, self.quoting)
        acls = _acl_stream(data_dir, when, self.quoting)
        ea_next = next(eas, None)
        acl_next = next(acls, None)
        depth = len(prefix)
        for key, record, _text in records:
            if key[:depth] != prefix:
                if key > prefix:
                    return  # sorted: nothing more under the prefix
                continue
            while ea_next is not None and ea_next[0] < key:
                ea_next = next(eas, None)
            while acl_next is not None and acl_next[0] < key:
                acl_next = next(acls, None)
            found_eas: EAs = ea_next[1] if ea_next is not None and ea_next[0] == key else ()
            found_acl: tuple[ACLEntry, ...] = (
                acl_next[1] if acl_next is not None and acl_next[0] == key else ()
            )
            yield Entry(record, key, found_eas, found_acl)


def _recorded(data_dir: Path, base: str, when: int, quoting: Quoting) -> Path | None:
    return find_session_file(data_dir, base, when, kinds=("snapshot",), quoting=quoting)


def _ea_stream(data_dir: Path, when: int, quoting: Quoting) -> Iterator[tuple[Index, EAs]]:
    path = _recorded(data_dir, EXTENDED_ATTRIBUTES, when, quoting)
    if path is None:
        return
    for record in iter_ea_records(path):
        yield path_key(record.path), record.attributes


def _acl_stream(
    data_dir: Path, when: int, quoting: Quoting
) -> Iterator[tuple[Index, tuple[ACLEntry, ...]]]:
    path = _recorded(data_dir, ACCESS_CONTROL_LISTS, when, quoting)
    if path is None:
        return
    for record in iter_acl_records(path):
        yield path_key(record.path), record.entries


def open_repo(location: str | os.PathLike[str], *, allow_sub: bool = True) -> Repo:
    """Open ``REPO[/PATH]`` for reading: it must hold a finished session (§5.2).

    Takes rdiff-backup API 201's shared lock on ``lock.yml`` when that file exists, so a
    backup running under API 201 is not read half-way.
    """
    layout, relative = split_repository_path(location)
    sub: Index = tuple(os.fsencode(p) for p in relative.parts if p not in ("", "."))
    if sub and not allow_sub:
        raise UsageError(f"give the repository itself, not a path inside it ({location})")
    state = read_state(layout)
    try:
        state.check_finished()
    except UnfinishedSession:
        failed = state.markers[-1]
        who = f" (pid {failed.pid})" if failed.pid is not None else ""
        raise UnfinishedSession(
            f"the last backup session{who} did not finish; roll it back first with "
            f"'rdb-mirror --regress {os.fsdecode(layout.root)}' "
            f"(or 'rdiff-backup regress {os.fsdecode(layout.root)}')",
            path=layout.data_dir,
        ) from None
    if state.current_time is None:
        raise RepositoryNotFound(
            "has no finished backup session yet (no current_mirror marker)", path=layout.data_dir
        )
    return Repo(layout, state, sub, _shared_lock(layout))


def _shared_lock(layout: Layout) -> int | None:
    path = layout.data_dir / RDIFF_BACKUP_LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CorruptRepository(f"cannot open: {error.strerror}", path=path) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise RepositoryLocked(
                "a backup is writing the repository (rdiff-backup holds this lock); "
                "wait for it to finish",
                path=path,
            ) from None
        return None  # a file system without flock: rdiff-backup goes on too
    return fd


@dataclass(frozen=True)
class IncrementRef:
    """Where an increment file named in the repository lives, parsed (``restore INCFILE``)."""

    location: Path  # the repository
    index: Index
    time: int
    kind: str


def parse_increment_path(path: str | os.PathLike[str]) -> IncrementRef | None:
    """If ``path`` is an increment file inside ``REPO/rdiff-backup-data/increments`` (or the
    root's ``increments.T.dir``), the repository, unquoted index and time; else None."""
    given = Path(os.path.normpath(Path(path).absolute()))
    parts = given.parts
    if DATA_DIR not in parts:
        return None
    at = len(parts) - 1 - parts[::-1].index(DATA_DIR)
    repo = Path(*parts[:at])
    rest = parts[at + 1 :]
    if not rest:
        return None
    data_dir = repo / DATA_DIR
    state_quoting = read_state_quoting(data_dir)
    if len(rest) == 1:
        name = parse_increment_name(state_quoting.unquote(os.fsencode(rest[0]), path=data_dir))
        if name is None or name.base != INCREMENTS.encode() or name.kind == "data":
            return None
        return IncrementRef(repo, (), name.time, name.kind)
    if rest[0] != INCREMENTS:
        if rest[0] == "long_filename_data":
            raise UsageError(
                f"{path}: increments of over-long names cannot be restored by file name; "
                "restore the path with --at"
            )
        return None
    dirs = tuple(state_quoting.unquote(os.fsencode(p), path=data_dir) for p in rest[1:-1])
    name = parse_increment_name(state_quoting.unquote(os.fsencode(rest[-1]), path=data_dir))
    if name is None or name.kind == "data":
        return None
    return IncrementRef(repo, (*dirs, name.base), name.time, name.kind)


def read_state_quoting(data_dir: Path) -> Quoting:
    from rdb_format.quoting import read_quoting

    return read_quoting(data_dir)


# ---- safe reading of mirror and increment files ---------------------------------------------


_LISTING = threading.Lock()


class DirHandle:
    """An open directory of the repository (mirror or increments), or None when absent.

    Its path (for messages, mostly) is made when first asked for, from the parent's and its
    name: a ``Path`` per directory had cost the walk's thread more than the directory's
    ``open``."""

    __slots__ = ("_listing", "_where", "fd")

    def __init__(
        self,
        fd: int | None,
        path: Path | None = None,
        *,
        parent: DirHandle | None = None,
        name: bytes = b"",
    ) -> None:
        assert path is not None or parent is not None
        self.fd = fd
        self._where = _Where(path, parent, name)
        self._listing: dict[bytes, list[IncrementFile]] | None = None

    @property
    def path(self) -> Path:
        return self._where.path

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def increments(self, quoting: Quoting) -> dict[bytes, list[IncrementFile]]:
        """Increment files in this increments directory, by unquoted base name (listed once;
        worker threads may ask at the same time)."""
        listing = self._listing
        if listing is None:
            # listed once, though worker threads may ask at the same time
            with _LISTING:
                listing = self._listing
                if listing is None:
                    listing = self._listing = self._list(quoting)
        return listing

    def _list(self, quoting: Quoting) -> dict[bytes, list[IncrementFile]]:
        from rdb_fastio.scan import list_names  # one C call (os.listdir: a GIL hand-off a name)
        from rdb_increment.rebuild import IncrementFile

        listing: dict[bytes, list[IncrementFile]] = {}
        if self.fd is not None:
            for raw in list_names(self.fd):
                try:  # a name that cannot be unquoted is not an increment's (no path needed)
                    name = parse_increment_name(quoting.unquote(raw))
                except CorruptRepository:
                    continue
                if name is None or name.kind == "data":
                    continue
                # its path made only if asked for (a message, or the general way)
                listing.setdefault(name.base, []).append(
                    IncrementFile(name, directory=self._where, raw_name=raw)
                )
        return listing


class _Where:
    """Where a repository directory is, its path made when first asked for. Listed
    increments refer to it, not to their DirHandle, whose listing holds them (that cycle
    left each directory's listing to the cycle collector, memory growing with the
    directories restored until it ran)."""

    __slots__ = ("_name", "_parent", "_path")

    def __init__(self, path: Path | None, parent: DirHandle | None, name: bytes) -> None:
        self._path = path
        self._parent = parent
        self._name = name

    @property
    def path(self) -> Path:
        path = self._path
        if path is None:
            assert self._parent is not None
            path = self._path = self._parent.path / os.fsdecode(self._name)
        return path


def open_dir_at(parent: DirHandle | None, name: bytes) -> DirHandle:
    """Open a sub-directory without following symlinks; a handle with fd None if absent."""
    if parent is None or parent.fd is None:
        return DirHandle(None, Path("/nonexistent"))
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent.fd)
    except OSError as error:
        # ENAMETOOLONG: a long name's directory; its entries are in long_filename_data
        if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG):
            return DirHandle(None, parent=parent, name=name)
        path = parent.path / os.fsdecode(name)
        raise CorruptRepository(f"cannot open directory: {error.strerror}", path=path) from None
    return DirHandle(fd, parent=parent, name=name)


def open_root(path: Path) -> DirHandle:
    try:
        return DirHandle(os.open(path, DIR_FLAGS), path)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return DirHandle(None, path)
        raise CorruptRepository(f"cannot open directory: {error.strerror}", path=path) from None


def open_file_at(directory: DirHandle, name: bytes, *, what: str) -> tuple[int, int]:
    """Open a regular repository file without following a symlink (CorruptRepository else);
    its descriptor and size."""
    if directory.fd is None:
        raise CorruptRepository(
            f"{what} is missing (its directory is not there)",
            path=directory.path / os.fsdecode(name),
        )
    # What is at the name first: opening a device node planted there can act even with
    # O_NONBLOCK (a watchdog starts, a tape rewinds), so only a regular file is opened.
    try:
        seen = os.stat(name, dir_fd=directory.fd, follow_symlinks=False)
        if stat.S_ISLNK(seen.st_mode):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        if not stat.S_ISREG(seen.st_mode):
            raise not_regular(what, directory.path / os.fsdecode(name))
        fd = os.open(name, FILE_FLAGS, dir_fd=directory.fd)
    except OSError as error:
        path = directory.path / os.fsdecode(name)
        raise cannot_open(what, path, error.errno or errno.EIO) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_ino, st.st_dev) != (seen.st_ino, seen.st_dev):
            raise not_regular(what, directory.path / os.fsdecode(name))
        # O_NONBLOCK (which kept a planted FIFO from blocking the open) is left on: Linux
        # ignores it for reads of regular files, so no second system call to clear it.
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def cannot_open(what: str, path: Path, code: int) -> CorruptRepository:
    """The error for a repository file that failed to open with errno ``code``."""
    if code == errno.ELOOP:
        return CorruptRepository(f"{what} is a symbolic link; refusing to follow it", path=path)
    if code == errno.ENOENT:
        return CorruptRepository(f"{what} is missing", path=path)
    return CorruptRepository(f"cannot open {what}: {os.strerror(code)}", path=path)


def not_regular(what: str, path: Path) -> CorruptRepository:
    return CorruptRepository(f"{what} is not a regular file", path=path)


def close_quietly(fd: int | None) -> None:
    if fd is not None:
        try:  # not contextlib.suppress: this runs for every file restored
            os.close(fd)
        except OSError:
            pass
