"""Write reverse increments exactly as rdiff-backup 2.2.7 does (format reference §3).

One :class:`IncrementWriter` serves one repository and one *previous* session time ``T`` (the
time of the state the increments preserve). For each changed path it writes one of:

- ``X.T.missing``   X did not exist at T (empty file, mode 0600, current time);
- ``X.T.dir``       X was a directory at T (empty file with the old dir's mode & 0o777,
  owner and mtime); the root's marker is ``rdiff-backup-data/increments.T.dir``;
- ``X.T.diff[.gz]`` X was a regular file at T and is a regular file now: the librsync delta
  that turns the new content back into the old one (MD4 signature of the new file, 8-byte
  strong sums, rdiff-backup's block size; gzip level 9 with the name in the header);
- ``X.T.snapshot[.gz]`` X was a regular file and is gone or no longer regular: the old bytes;
- ``X.T.snapshot``  X was a symlink, fifo, socket or device: a special file of the same kind
  (an empty regular file if it cannot be created).

Every file is written under a temporary ``rdiff-backup.tmp.<N>`` name in its final directory
and renamed into place, so a crash or an exception never leaves a partial increment. Files are
not fsynced one by one: call :meth:`IncrementWriter.sync` once before committing the session
(the issue's "durability comes from syncing before the marker is committed").

The core never prints or exits; failures raise :class:`IncrementError` subclasses that carry an
exit code and a one-line message naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import os
import re
import secrets
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from rdb_fastio.increment import (
    DELTA_LIMIT,
    DeltaJob,
    DeltaStatus,
    DeltaWritten,
    write_delta_increment,
)
from rdb_format.atomic import TEMP_PREFIX, fsync_dir
from rdb_format.errors import RdbError, SourceError
from rdb_format.exitcodes import ExitCode
from rdb_format.increments import IncrementKind, IncrementName
from rdb_format.layout import INCREMENTS, Layout
from rdb_format.quoting import LONG_NAME_MARGIN, NO_QUOTING, Quoting, long_name_base, name_fits
from rdb_format.timestamps import format_timestring
from rdb_increment.rebuild import CHUNK  # read and write unit (a few per worker in memory)
from rdiff.api import delta, iter_delta, load_signature, signature
from rdiff.errors import RdiffError
from rdiff.params import magic_for

__all__ = [
    "CHUNK",
    "DEFAULT_NO_COMPRESSION_REGEXP",
    "IncrementError",
    "IncrementExists",
    "IncrementJob",
    "IncrementOptions",
    "IncrementOutcome",
    "IncrementProgress",
    "IncrementWriter",
    "NullProgress",
    "Plan",
    "PlannedDelta",
    "PlannedMarker",
    "WrittenIncrement",
    "block_size_for",
    "choose_kind",
    "creation_error",
]

#: The largest librsync output buffer a delta or signature of one file gets (its default).
OUT_BUFFER = 256 * 1024

#: rdiff-backup 2.2.7's default ``--not-compressed-regexp`` (matched case-insensitively with
#: ``re.match`` against the full mirror path, as bytes).
DEFAULT_NO_COMPRESSION_REGEXP = (
    r"(?i).*\.(7z|aac|arj|asc|avi|bik|bz|bz2|deb|docx|flac|flv|gif|gpg|gz|jp2|jpeg|jpg|"
    r"jsonlz4|lharc|lz4|lzh|lzma|lzo|m4a|m4v|mdf|mkv|mov|mozlz4|mp3|mp4|mpeg|mpg|oga|ogg|ogm|"
    r"ogv|opus|pgp|pk3|png|rar|rm|rpm|rz|shn|tgz|tzst|vob|webm|webp|wma|wmv|xlsx|xz|z|zip|zoo|"
    r"zst)$"
)

#: Old files at least this large get their delta encoded by several threads (``jobs``).
PARALLEL_DELTA = 16 * 1024 * 1024

#: Strong-sum length of the signatures rdiff-backup makes (MD4, rollsum).
STRONG_LEN = 8
SIGNATURE_MAGIC = magic_for("md4", "rollsum")
GZIP_LEVEL = 9

Plan = Literal["missing", "dir", "diff", "snapshot", "special"]


class IncrementError(RdbError):
    """An increment could not be written or read; the message names the file."""

    exit_code = ExitCode.FAILURE


class IncrementExists(IncrementError):
    """The increment's name is taken (rdiff-backup treats this as fatal too)."""


def block_size_for(size: int) -> int:
    """rdiff-backup's signature block length for a basis of ``size`` bytes (reference §3.5)."""
    if size < 10240:
        return 64
    return (size >> (size.bit_length() // 2 + 4)) << 4


def choose_kind(old: os.stat_result | None, new: os.stat_result | None) -> Plan:
    """Which increment rdiff-backup writes for a path whose state was ``old`` (lstat at T, None
    if absent) and is now ``new`` (None if deleted), checked in rdiff-backup's order (§3.2).

    ``special`` is a ``.snapshot`` holding a special file of the old kind (never compressed).
    """
    if old is None:
        return "missing"
    if stat.S_ISDIR(old.st_mode):
        return "dir"
    if stat.S_ISREG(old.st_mode):
        if new is not None and stat.S_ISREG(new.st_mode):
            return "diff"
        return "snapshot"
    return "special"


@dataclass(frozen=True)
class IncrementOptions:
    """How increments are written.

    ``compression``: gzip regular-file diffs and snapshots (rdiff-backup's ``--compression``).
    ``no_compression_regexp``: paths it matches (``re.match`` on the full mirror path as
    bytes) stay uncompressed; ``None`` means rdiff-backup's default list of extensions.
    ``fsync_each``: fsync every file as it is written (off: call ``IncrementWriter.sync``).
    ``replace``: overwrite an existing increment of the same name instead of failing.
    ``in_place``: create increments under their final names (``O_EXCL``), no temporary name:
    for a backup session, whose regress removes whatever a killed session left half-written
    (ignored with ``replace``).
    ``gzip_mtime``: the gzip header's MTIME (None: the write time, as rdiff-backup).
    ``preserve_owner``: chown increments to the old file's owner (default: when root).
    ``remember_written``: keep the path of each file and directory written, for
    :meth:`IncrementWriter.sync`; off for a caller that syncs the whole file system instead
    (a backup session), for which that set would only grow with every increment.
    """

    compression: bool = True
    no_compression_regexp: str | bytes | None = None
    fsync_each: bool = False
    replace: bool = False
    in_place: bool = False
    gzip_mtime: int | None = None
    preserve_owner: bool | None = None
    remember_written: bool = True

    def compiled_regexp(self) -> re.Pattern[bytes]:
        raw = self.no_compression_regexp
        if raw is None:
            raw = DEFAULT_NO_COMPRESSION_REGEXP
        pattern = os.fsencode(raw) if isinstance(raw, str) else raw
        try:
            return re.compile(pattern)
        except re.error as error:
            raise IncrementError(f"bad --no-compression-regexp {raw!r}: {error}") from None


def _cannot_make_dir(path: str, error: OSError) -> IncrementError:
    why = error.strerror
    if error.errno in (errno.EEXIST, errno.ENOTDIR):
        # never made so by a backup: increments are named NAME.TIME.KIND
        why = (
            f"something that is not a directory is in its way ({why}); the repository is "
            "damaged: move it aside and run the backup again"
        )
    return IncrementError(f"cannot create increments directory: {why}", path=path)


@dataclass(frozen=True)
class WrittenIncrement:
    """One increment file now in the repository."""

    path: Path  # on-disk path (quoted names)
    name: IncrementName  # unquoted base, time, kind, compressed
    index: tuple[bytes, ...]  # the mirror path it belongs to (unquoted); () is the root
    size: int  # bytes on disk (lstat)
    source_bytes: int = 0  # bytes of old content read (diff/snapshot)


@dataclass(frozen=True)
class IncrementJob:
    """What to increment: mirror path ``index`` whose version at T is the file ``old``.

    ``old``: the old version (usually the mirror copy); None or a missing path means the index
    did not exist at T. ``new``: the version that replaces it (None: deleted); only its type
    and, for a diff, its content matter. ``long_name``: the ``AlternateIncrementName`` /
    ``AlternateMirrorName`` number when the name is too long (increments then go to
    ``long_filename_data/N.T.*``; see :meth:`IncrementWriter.needs_long_name`).
    """

    index: tuple[bytes, ...]
    old: Path | None
    new: Path | None = None
    long_name: int | None = None


@dataclass(frozen=True)
class IncrementOutcome:
    """The result of one job of :meth:`IncrementWriter.write_many`: an increment or an error."""

    job: IncrementJob
    increment: WrittenIncrement | None = None
    error: RdbError | None = None


class IncrementProgress(Protocol):
    """What the writer reports; every method must be cheap and thread-safe."""

    def increment_written(self, increment: WrittenIncrement) -> None: ...


@dataclass(frozen=True, slots=True)
class PlannedMarker:
    """A ``.dir`` marker for the caller to create (:meth:`IncrementWriter.plan_dir_marker`):
    an empty file at ``increment.path`` (never over an existing one) with ``mode``, the
    ``owner`` (uid, gid; None: leave it) and the times (ns) of the old directory."""

    increment: WrittenIncrement
    mode: int
    owner: tuple[int, int] | None
    atime_ns: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class PlannedDelta:
    """A ``.diff[.gz]`` increment for the caller to write (:meth:`IncrementWriter.plan_delta`):
    the C routine's ``job``, and the increment it makes (its size and bytes read once made:
    :meth:`IncrementWriter.delta_made`)."""

    job: DeltaJob
    increment: WrittenIncrement


class NullProgress:
    """The default progress: reports nowhere."""

    def increment_written(self, increment: WrittenIncrement) -> None:
        return None


def _stat(path: Path | bytes | None) -> os.stat_result | None:
    if path is None:
        return None
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SourceError(f"cannot stat: {error.strerror}", path=path) from error


def _temp_path(directory: Path) -> Path:
    return directory / f"{TEMP_PREFIX}{secrets.randbelow(10**12)}"


@dataclass
class _Pending:
    """Paths written since the last sync."""

    files: set[Path] = field(default_factory=set)
    dirs: set[Path] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class IncrementWriter:
    """Writes the increments of one previous session time ``time`` into one repository.

    ``quoting`` is the repository's (``rdb_format.quoting.read_quoting``); time strings use
    the compatible ``-`` form when ``:`` is quoted or ``compatible`` is set, and the local UTC
    offset at ``time`` unless ``utc_offset`` is given. Thread-safe: ``write`` may be called
    from several threads, ``write_many`` runs a pool itself.
    """

    def __init__(
        self,
        layout: Layout,
        time: int,
        *,
        quoting: Quoting = NO_QUOTING,
        options: IncrementOptions | None = None,
        compatible: bool = False,
        utc_offset: int | None = None,
        progress: IncrementProgress | None = None,
    ) -> None:
        self.layout = layout
        self._root = os.fsencode(layout.root)  # mirror_path's bytes, without pathlib per call
        self.time = time
        self.quoting = quoting
        self.options = options or IncrementOptions()
        self._regexp = self.options.compiled_regexp()
        self._compatible = compatible or quoting.quotes_colon
        self._utc_offset = utc_offset
        self._progress: IncrementProgress = progress or NullProgress()
        self._pending = _Pending()
        owner = self.options.preserve_owner
        self._chown = os.geteuid() == 0 if owner is None else owner
        self._made_dirs: set[str] = set()  # as str: hashing a new Path costs several µs
        self._created_dirs: set[str] = set()  # those of them this writer made
        self._dirs_lock = threading.Lock()
        self._increments_root = os.fspath(layout.increments_dir)
        self._stamp: bytes | None = None  # this writer's time as increment names give it

    # ---- names -------------------------------------------------------------------------

    def mirror_path(self, index: tuple[bytes, ...]) -> Path:
        """The on-disk mirror path of ``index`` (quoted components)."""
        parts = [os.fsdecode(p) for p in self.quoting.quote_path(index)]
        return self.layout.root.joinpath(*parts)

    def compressed_for(self, index: tuple[bytes, ...], plan: Plan) -> bool:
        """Whether a diff or snapshot of ``index`` is gzipped (§3.3)."""
        if plan not in ("diff", "snapshot") or not self.options.compression:
            return False
        mirror = os.path.join(self._root, *self.quoting.quote_path(index)) if index else self._root
        return self._regexp.match(mirror) is None

    def increment_name(
        self,
        index: tuple[bytes, ...],
        kind: IncrementKind,
        compressed: bool,
        *,
        long_name: int | None = None,
    ) -> IncrementName:
        """The unquoted name (base, time, kind) of ``index``'s increment."""
        if long_name is not None:
            base = long_name_base(long_name)
        else:
            base = index[-1] if index else INCREMENTS.encode()
        return IncrementName(base, self.time, kind, compressed)

    def increment_path(
        self,
        index: tuple[bytes, ...],
        kind: IncrementKind,
        compressed: bool = False,
        *,
        long_name: int | None = None,
    ) -> Path:
        """Where ``index``'s increment of ``kind`` goes (quoted, §3.1 and §1.6)."""
        name = self.increment_name(index, kind, compressed, long_name=long_name)
        return self._increment_dir(index, long_name) / os.fsdecode(self._quoted_name(name))

    def _quoted_name(self, name: IncrementName) -> bytes:
        """``name`` formatted and quoted as its file is named (the time string made once)."""
        stamp = self._stamp
        if stamp is None:
            stamp = self._stamp = format_timestring(
                self.time, compatible=self._compatible, utc_offset=self._utc_offset
            ).encode("ascii")
        if name.time != self.time:
            raw = name.format(compatible=self._compatible, utc_offset=self._utc_offset)
        else:
            raw = b"%s.%s.%s" % (name.base, stamp, name.kind.encode("ascii"))
            if name.compressed:
                raw += b".gz"
        return self.quoting.quote(raw)

    def _increment_dir_str(self, index: tuple[bytes, ...]) -> str:
        """:meth:`_increment_dir` (no long name) as a str, joined without pathlib."""
        if not index:
            return os.fspath(self.layout.data_dir)
        return os.path.join(
            self._increments_root, *[os.fsdecode(p) for p in self.quoting.quote_path(index[:-1])]
        )

    def _increment_dir(self, index: tuple[bytes, ...], long_name: int | None) -> Path:
        if long_name is not None:
            return self.layout.long_filename_dir
        if not index:
            return self.layout.data_dir
        parents = [os.fsdecode(p) for p in self.quoting.quote_path(index[:-1])]
        return self.layout.increments_dir.joinpath(*parents)

    def needs_long_name(self, index: tuple[bytes, ...]) -> bool:
        """rdiff-backup's test (§1.6): does the quoted name + 50 bytes fit in its directory?"""
        if not index:
            return False
        directory = self._increment_dir(index, None)
        self._ensure_dir(directory)
        return not name_fits(directory, self.quoting.quote(index[-1]), margin=LONG_NAME_MARGIN)

    def _ensure_dir(self, directory: Path | str) -> None:
        key = os.fspath(directory)
        if key in self._made_dirs:
            return
        with self._dirs_lock:
            if key in self._made_dirs:
                return
            # its parent made by this session: it is not there, so one mkdir, not a stat then
            # makedirs' own calls (every directory of a first backup but the top ones)
            fresh = os.path.dirname(key) in self._created_dirs
            try:
                if fresh:
                    os.mkdir(key, 0o700)
                elif os.path.isdir(key):
                    self._made_dirs.add(key)
                    return
                else:
                    os.makedirs(key, mode=0o700, exist_ok=True)
            except FileExistsError as error:
                if not (fresh and os.path.isdir(key)):
                    raise _cannot_make_dir(key, error) from error
            except OSError as error:
                raise _cannot_make_dir(key, error) from error
            else:
                self._created_dirs.add(key)
                self._note_dir(Path(key).parent)
            self._made_dirs.add(key)

    def ensure_increment_dir(self, index: tuple[bytes, ...]) -> Path:
        """Create ``increments/<index>/`` (rdiff-backup does for directories, old or new)."""
        if not index:
            return self.layout.increments_dir
        path = os.path.join(
            self._increment_dir_str(index), os.fsdecode(self.quoting.quote(index[-1]))
        )
        self._ensure_dir(path)
        return Path(path)

    # ---- writing -----------------------------------------------------------------------

    def write(
        self,
        index: tuple[bytes, ...],
        old: Path | None,
        new: Path | None = None,
        *,
        long_name: int | None = None,
        jobs: int | None = None,
    ) -> WrittenIncrement:
        """Write the increment of ``index`` whose version at T is ``old``; see IncrementJob.

        ``jobs`` threads hash a large new file's signature (default: every CPU).
        """
        old_st = _stat(old)
        new_st = _stat(new)
        plan = choose_kind(old_st, new_st)
        is_dir = plan == "dir" or (new_st is not None and stat.S_ISDIR(new_st.st_mode))
        if is_dir and index and long_name is None:  # a long name's are in long_filename_data
            self.ensure_increment_dir(index)
        if plan == "missing":
            return self._write_marker(index, "missing", None, long_name)
        assert old is not None and old_st is not None
        if plan == "dir":
            return self._write_marker(index, "dir", old_st, long_name)
        if plan == "special":
            return self._write_special(index, old, old_st, long_name)
        compressed = self.compressed_for(index, plan)
        kind: IncrementKind = "diff" if plan == "diff" else "snapshot"
        target = self.increment_path(index, kind, compressed, long_name=long_name)
        name = self.increment_name(index, kind, compressed, long_name=long_name)
        if plan == "diff":
            assert new is not None and new_st is not None
            made = self._write_delta_in_c(target, old, old_st, new, new_st, compressed)
            if made is not None:
                return self._done(target, name, index, made[0], size=made[1])

            def body(out: BinaryIO) -> int:
                return _write_delta(old, old_st.st_size, new, new_st.st_size, out, jobs)

        else:
            made = self._write_delta_in_c(target, old, old_st, None, None, compressed)
            if made is not None:
                return self._done(target, name, index, made[0], size=made[1])

            def body(out: BinaryIO) -> int:
                return _copy(old, old_st.st_size, out)

        read = self._write_regular(target, old_st, compressed, body)
        return self._done(target, name, index, read)

    def plan_dir_marker(
        self, index: tuple[bytes, ...], old: Path | bytes, *, long_name: int | None = None
    ) -> PlannedMarker | None:
        """The ``.dir`` marker :meth:`write` would make for the directory ``old``, for the
        caller to create (many at a time, off its thread) and then report with
        :meth:`markers_made`; ``index``'s own increments directory is made now. None if
        ``old`` is no directory or the writer is not ``in_place`` (call :meth:`write`)."""
        if not self.options.in_place or self.options.replace:
            return None
        old_st = _stat(old)
        if old_st is None or not stat.S_ISDIR(old_st.st_mode):
            return None
        # as ensure_increment_dir and increment_path, in str: a directory's few µs of
        # pathlib were most of this (a release unpacked again changes every directory)
        if long_name is None:
            directory = self._increment_dir_str(index)
            if index:
                self._ensure_dir(
                    os.path.join(directory, os.fsdecode(self.quoting.quote(index[-1])))
                )
        else:
            directory = os.fspath(self.layout.long_filename_dir)
        self._ensure_dir(directory)
        name = self.increment_name(index, "dir", False, long_name=long_name)
        target = Path(os.path.join(directory, os.fsdecode(self._quoted_name(name))))
        return PlannedMarker(
            WrittenIncrement(target, name, index, 0, 0),
            stat.S_IMODE(old_st.st_mode) & 0o777,
            (old_st.st_uid, old_st.st_gid) if self._chown else None,
            old_st.st_atime_ns,
            old_st.st_mtime_ns,
        )

    def plan_missing_marker(
        self, index: tuple[bytes, ...], *, long_name: int | None = None
    ) -> PlannedMarker | None:
        """The ``.missing`` marker :meth:`write` would make for ``index``, new in this session,
        for the caller to create (an empty file, mode 0600, never over an existing one: many
        per C call, off its thread, after the new file) and then report with
        :meth:`markers_made`; its increments directory is made now. None if the writer is not
        ``in_place`` (call :meth:`write`)."""
        if not self.options.in_place or self.options.replace:
            return None
        if long_name is None:
            directory = self._increment_dir_str(index)
        else:
            directory = os.fspath(self.layout.long_filename_dir)
        self._ensure_dir(directory)
        name = self.increment_name(index, "missing", False, long_name=long_name)
        target = Path(os.path.join(directory, os.fsdecode(self._quoted_name(name))))
        now = time.time_ns()  # an empty file's times: when it is made, as write's
        return PlannedMarker(WrittenIncrement(target, name, index, 0, 0), 0o600, None, now, now)

    def markers_made(self, markers: Iterable[PlannedMarker]) -> None:
        """Note planned markers the caller has created (for :meth:`sync` and progress)."""
        for marker in markers:
            self._note(marker.increment.path)
            self._progress.increment_written(marker.increment)

    def write_job(self, job: IncrementJob, *, jobs: int | None = 1) -> WrittenIncrement:
        """:meth:`write` for one :class:`IncrementJob`."""
        return self.write(job.index, job.old, job.new, long_name=job.long_name, jobs=jobs)

    def write_many(
        self, jobs: Iterable[IncrementJob], *, workers: int | None = None, window: int = 0
    ) -> Iterator[IncrementOutcome]:
        """Write many increments on a thread pool; outcomes come back in input order.

        At most ``window`` jobs (default 4 x workers) are in flight, so memory stays flat for
        any number of jobs. A job that fails with an expected error (unreadable or vanished
        file, bad delta) yields an outcome with ``error`` set and the others go on; any other
        exception propagates.
        """
        count = workers or min(32, (os.cpu_count() or 1) + 2)
        limit = window or count * 4
        pending: deque[tuple[IncrementJob, Future[WrittenIncrement]]] = deque()
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="rdb-increment") as pool:
            try:
                for job in jobs:
                    pending.append((job, pool.submit(self.write_job, job)))
                    while len(pending) >= limit:
                        yield _outcome(*pending.popleft())
                while pending:
                    yield _outcome(*pending.popleft())
            finally:
                for _, future in pending:
                    future.cancel()

    def sync(self) -> None:
        """fsync every file and directory written since the last call (do it before the
        session marker is committed)."""
        with self._pending.lock:
            files = sorted(self._pending.files)
            dirs = sorted(self._pending.dirs)
            self._pending.files.clear()
            self._pending.dirs.clear()
        for path in files:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                continue  # a symlink or special file: its directory entry is what matters
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.fsync(fd)
            finally:
                os.close(fd)
        for directory in dirs:
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(directory)

    # ---- internals ---------------------------------------------------------------------

    def _note(self, path: Path) -> None:
        if not self.options.remember_written:
            return
        with self._pending.lock:
            self._pending.files.add(path)
            self._pending.dirs.add(path.parent)

    def _note_dir(self, path: Path) -> None:
        if not self.options.remember_written:
            return
        with self._pending.lock:
            self._pending.dirs.add(path)

    def _done(
        self,
        target: Path,
        name: IncrementName,
        index: tuple[bytes, ...],
        read: int,
        size: int | None = None,
    ) -> WrittenIncrement:
        """Note the written increment ``target`` (``size``: its size, if known) and tell
        progress."""
        self._note(target)
        if size is None:
            size = os.lstat(target).st_size
        written = WrittenIncrement(target, name, index, size, read)
        self._progress.increment_written(written)
        return written

    def _check_free(self, target: Path) -> None:
        if not self.options.replace and os.path.lexists(target):
            raise IncrementExists(
                "increment already exists (an unfinished session? regress first)", path=target
            )

    def _place(self, temp: Path, target: Path) -> None:
        """Rename the finished temp file into place (never over an existing increment)."""
        if self.options.replace:
            os.replace(temp, target)
            return
        try:
            os.link(temp, target, follow_symlinks=False)
        except FileExistsError:
            raise IncrementExists(
                "increment already exists (an unfinished session? regress first)", path=target
            ) from None
        except OSError:
            # No hard links here (some file systems): fall back to a checked rename.
            self._check_free(target)
            os.replace(temp, target)
            return
        os.unlink(temp)

    def _open_temp(self, directory: Path) -> tuple[int, Path]:
        self._ensure_dir(directory)
        for _ in range(100):
            temp = _temp_path(directory)
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            except OSError as error:
                raise IncrementError(
                    f"cannot create a temporary file: {error.strerror}", path=directory
                ) from error
            return fd, temp
        raise IncrementError("cannot create a unique temporary file", path=directory)

    def _write_regular(
        self,
        target: Path,
        old_st: os.stat_result,
        compressed: bool,
        body: Callable[[BinaryIO], int],
    ) -> int:
        fd, temp = self._create(target)
        try:
            with os.fdopen(fd, "wb", buffering=CHUNK) as stream:
                # The gzip header holds the final name without .gz (bytes), as rdiff-backup's.
                if compressed:
                    gz = gzip.GzipFile(
                        filename=os.fsencode(target.name),
                        mode="wb",
                        compresslevel=GZIP_LEVEL,
                        fileobj=stream,
                        mtime=self.options.gzip_mtime,
                    )
                    with gz:
                        read = body(gz)  # type: ignore[arg-type]
                else:
                    read = body(stream)
                stream.flush()
                self._copy_attributes(stream.fileno(), old_st)
                if self.options.fsync_each:
                    os.fsync(stream.fileno())
            self._settle(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        return read

    def _write_delta_in_c(
        self,
        target: Path,
        old: Path,
        old_st: os.stat_result,
        new: Path | None,
        new_st: os.stat_result | None,
        compressed: bool,
    ) -> tuple[int, int] | None:
        """The ``.diff[.gz]`` increment as :meth:`_write_regular` with :func:`_write_delta`
        makes it (``new`` None: the ``.snapshot[.gz]`` it makes with :func:`_copy`), byte for
        byte, written by :mod:`rdb_fastio.increment` with the GIL released: (bytes of ``old``
        read, increment size), or None if that path is not for this file (see
        :meth:`_delta_job`) or failed, leaving nothing behind (the general path then writes
        it, or says exactly what is wrong)."""
        new_size = new_st.st_size if new_st is not None else 0
        job = self._delta_job(target, old, old_st, new, new_size, compressed)
        if job is None:
            return None
        written = write_delta_increment(job)
        if written.status != DeltaStatus.DONE:
            return None
        return written.read, written.size

    def _delta_job(
        self,
        target: Path,
        old: Path,
        old_st: os.stat_result,
        new: Path | None,
        new_size: int,
        compressed: bool,
    ) -> DeltaJob | None:
        """The C routine's job for ``target`` (``new`` None: a snapshot of ``old``), or None
        where only the Python path goes: not ``in_place``, a version past its limit, a gzip
        MTIME ``gzip.GzipFile`` refuses."""
        options = self.options
        if not options.in_place or options.replace:
            return None
        if old_st.st_size > DELTA_LIMIT or new_size > DELTA_LIMIT:
            return None
        mtime = int(time.time()) if options.gzip_mtime is None else options.gzip_mtime
        if not 0 <= mtime <= 0xFFFFFFFF:
            return None
        self._ensure_dir(target.parent)
        raw_target = os.fsencode(target)
        return DeltaJob(
            old=os.fsencode(old),
            new=os.fsencode(new) if new is not None else b"",
            target=raw_target,
            old_size=old_st.st_size,
            new_size=new_size,
            block_len=block_size_for(new_size),
            strong_len=STRONG_LEN,
            magic=SIGNATURE_MAGIC,
            mode=stat.S_IMODE(old_st.st_mode),
            times_ns=(old_st.st_atime_ns, old_st.st_mtime_ns),
            owner=(old_st.st_uid, old_st.st_gid) if self._chown else None,
            gzip_name=_gzip_name(raw_target) if compressed else None,
            level=GZIP_LEVEL,
            gzip_mtime=mtime,
            fsync=options.fsync_each,
            snapshot=new is None,
        )

    def plan_delta(
        self,
        index: tuple[bytes, ...],
        old: Path,
        new: Path,
        new_size: int,
        *,
        long_name: int | None = None,
    ) -> PlannedDelta | None:
        """The ``.diff[.gz]`` increment :meth:`write` would make for the regular file ``old``
        replaced by the regular file ``new`` of ``new_size`` bytes, as a job for the caller to
        run when ``new`` is written (many per C call, off its thread: an
        :class:`rdb_fastio.increment.DeltaBatch`) and then report with :meth:`delta_made`.
        None where :meth:`write` must do it (``old`` no regular file, a version past the C
        routine's limit, a writer not ``in_place``); so must the caller if the job fails
        (nothing is left behind: :meth:`write` then writes it or says what is wrong)."""
        old_st = _stat(old)
        if old_st is None or not stat.S_ISREG(old_st.st_mode):
            return None
        compressed = self.compressed_for(index, "diff")
        target = self.increment_path(index, "diff", compressed, long_name=long_name)
        job = self._delta_job(target, old, old_st, new, new_size, compressed)
        if job is None:
            return None
        name = self.increment_name(index, "diff", compressed, long_name=long_name)
        return PlannedDelta(job, WrittenIncrement(target, name, index, 0, 0))

    def delta_made(self, planned: PlannedDelta, written: DeltaWritten) -> WrittenIncrement:
        """Note a planned increment the caller's job wrote (for :meth:`sync` and progress)."""
        increment = planned.increment
        return self._done(
            increment.path, increment.name, increment.index, written.read, written.size
        )

    def _copy_attributes(self, fd: int, old_st: os.stat_result) -> None:
        """Old file's owner, mode and mtime on the increment (§3.4); fd-based, pre-rename."""
        if self._chown:
            with contextlib.suppress(OSError):
                os.fchown(fd, old_st.st_uid, old_st.st_gid)
        os.fchmod(fd, stat.S_IMODE(old_st.st_mode))
        os.utime(fd, ns=(old_st.st_atime_ns, old_st.st_mtime_ns))

    def _write_marker(
        self,
        index: tuple[bytes, ...],
        kind: Literal["missing", "dir"],
        old_st: os.stat_result | None,
        long_name: int | None,
    ) -> WrittenIncrement:
        target = self.increment_path(index, kind, long_name=long_name)
        fd, temp = self._create(target)
        try:
            if old_st is not None:  # .dir: old dir's mode & 0o777, owner and mtime
                if self._chown:
                    with contextlib.suppress(OSError):
                        os.fchown(fd, old_st.st_uid, old_st.st_gid)
                os.fchmod(fd, stat.S_IMODE(old_st.st_mode) & 0o777)
                os.utime(fd, ns=(old_st.st_atime_ns, old_st.st_mtime_ns))
            if self.options.fsync_each:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            self._settle(temp, target)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        name = self.increment_name(index, kind, False, long_name=long_name)
        return self._done(target, name, index, 0, size=0)

    def _create(self, target: Path) -> tuple[int, Path]:
        """An fd to write ``target`` through and the name it has meanwhile: ``target`` itself
        with ``in_place`` (never over an existing increment: O_EXCL), else a temporary name
        that :meth:`_settle` puts in place."""
        if self.options.in_place and not self.options.replace:
            self._ensure_dir(target.parent)
            return self._create_final(target), target
        self._check_free(target)
        return self._open_temp(target.parent)

    def _settle(self, written: Path, target: Path) -> None:
        if written is not target:
            self._place(written, target)

    @staticmethod
    def _create_final(target: Path) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(target, flags, 0o600)
        except OSError as error:
            raise creation_error(target, error) from None

    def _write_special(
        self, index: tuple[bytes, ...], old: Path, old_st: os.stat_result, long_name: int | None
    ) -> WrittenIncrement:
        target = self.increment_path(index, "snapshot", long_name=long_name)
        self._check_free(target)
        directory = target.parent
        self._ensure_dir(directory)
        mode = old_st.st_mode
        for _ in range(100):
            temp = _temp_path(directory)
            try:
                made = _make_special(old, temp, old_st)
            except FileExistsError:
                continue
            break
        else:
            raise IncrementError("cannot create a unique temporary file", path=directory)
        try:
            if made:
                if self._chown:
                    with contextlib.suppress(OSError):
                        os.lchown(temp, old_st.st_uid, old_st.st_gid)
                if not stat.S_ISLNK(mode):  # symlinks have no mode or times of their own
                    os.chmod(temp, stat.S_IMODE(mode))
                    if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
                        os.utime(temp, ns=(old_st.st_atime_ns, old_st.st_mtime_ns))
            self._place(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        name = self.increment_name(index, "snapshot", False, long_name=long_name)
        return self._done(target, name, index, 0)


def creation_error(target: Path, error: OSError) -> IncrementError:
    """What failing to create the increment ``target`` (never over an existing one) means."""
    if isinstance(error, FileExistsError):
        return IncrementExists(
            "increment already exists (an unfinished session? regress first)", path=target
        )
    reason = os.strerror(error.errno) if error.errno else str(error)
    return IncrementError(f"cannot create the increment: {reason}", path=target)


def _outcome(job: IncrementJob, future: Future[WrittenIncrement]) -> IncrementOutcome:
    try:
        return IncrementOutcome(job, increment=future.result())
    except RdbError as error:
        return IncrementOutcome(job, error=error)


def _make_special(old: Path, temp: Path, old_st: os.stat_result) -> bool:
    """Create a special file like ``old`` at ``temp``; an empty regular file if the kind cannot
    be created (not root, no device support). True if the real kind was made."""
    mode = old_st.st_mode
    try:
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(os.fsencode(old)), os.fsencode(temp))
        elif stat.S_ISFIFO(mode):
            os.mkfifo(temp, 0o600)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            os.mknod(temp, stat.S_IFMT(mode) | 0o600, old_st.st_rdev)
        else:
            raise OSError(f"unknown file type {stat.S_IFMT(mode):o}")
    except FileExistsError:
        raise
    except OSError:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        return False
    return True


def _gzip_name(target: bytes) -> bytes:
    """The FNAME ``gzip.GzipFile`` writes for a file named ``target``."""
    name = os.path.basename(target)
    return name[:-3] if name.endswith(b".gz") else name


def _buffer_for(size: int, most: int) -> int:
    """A buffer for the bytes of a file of ``size`` (or for what librsync makes of them):
    the whole file up to ``most``, at least 4 KiB. librsync's buffers and the reads' are
    allocated and zeroed per file: 1.5 MiB of them for each small changed file had cost more
    than its delta."""
    return max(4096, min(most, size + 1))


def _chunks(stream: BinaryIO, path: Path, size: int) -> Iterator[bytes]:
    """The bytes of ``stream``, whose ``size`` (from its ``stat``) sizes the reads: a read
    allocates what it asks for, 1 MiB for a 5 KiB file otherwise (twice, with the read that
    finds the end). A file that grew since is read to its end all the same."""
    done = 0
    while True:
        left = size - done
        try:
            data = stream.read(min(CHUNK, left + 1) if left >= 0 else CHUNK)
        except OSError as error:
            raise SourceError(f"cannot read: {error.strerror}", path=path) from error
        if not data:
            return
        done += len(data)
        yield data


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as error:
        raise SourceError(f"cannot open: {error.strerror}", path=path) from error


def _copy(old: Path, old_size: int, out: BinaryIO) -> int:
    total = 0
    with _open(old) as src:
        for data in _chunks(src, old, old_size):
            out.write(data)
            total += len(data)
    return total


def _write_delta(
    old: Path, old_size: int, new: Path, new_size: int, out: BinaryIO, jobs: int | None
) -> int:
    """librsync delta from ``new`` (basis) to ``old``, streamed into ``out``; ``jobs`` threads
    hash the signature and, for an old file of :data:`PARALLEL_DELTA` bytes or more, encode
    the delta (default: every CPU)."""
    sig_buffer = io.BytesIO()
    try:
        with _open(new) as basis:
            signature(
                basis,
                sig_buffer,
                block_len=block_size_for(new_size),
                strong_len=STRONG_LEN,
                hash_name="md4",
                rollsum="rollsum",
                jobs=jobs,
                in_size=_buffer_for(new_size, CHUNK),
                out_size=_buffer_for(new_size, OUT_BUFFER),
                basis_name=os.fsdecode(new),
            )
        sig_buffer.seek(0)
        workers = jobs if jobs is not None else os.cpu_count() or 1
        parallel = workers > 1 and old_size >= PARALLEL_DELTA
        loaded = load_signature(sig_buffer, name=f"of {os.fsdecode(new)}", keep_raw=parallel)
        del sig_buffer
        if parallel:
            # byte ranges of a large old file encoded by every CPU (rdiff's parallel delta:
            # a valid delta to the same old bytes, though not byte for byte librsync's)
            with _open(old) as src:
                delta(loaded, src, out, jobs=workers, new_name=os.fsdecode(old))
            return old_size
        total = 0
        with _open(old) as src:

            def counted() -> Iterator[bytes]:
                nonlocal total
                for data in _chunks(src, old, old_size):
                    total += len(data)
                    yield data

            what = os.fsdecode(old)
            out_size = _buffer_for(old_size, OUT_BUFFER)
            for piece in iter_delta(loaded, counted(), what=what, out_size=out_size):
                out.write(piece)
    except RdiffError as error:
        raise IncrementError(f"delta failed: {error}", path=old) from error
    return total
