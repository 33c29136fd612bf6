"""One backup session: checks, lock, regress, the two halves, and the crash-safe commit.

Write order (format reference §5.1), for a first backup::

    rdiff-backup-data/, increments/, chars_to_quote, special_escapes
    mirror files (+ mirror_metadata/EA/ACL/error_log under temp names, renamed at the end)
    syncfs(DEST); current_mirror.T.data                ← the commit
    file_statistics.T.data.gz, session_statistics.T.data, backup.log

and for an incremental one (previous session P)::

    current_mirror.T.data (fsynced)                    ← two markers: "unfinished"
    per changed entry: its increment X.P.*, then the mirror change (temp file + rename)
    mirror_metadata.T.snapshot.gz, EA/ACL snapshots, error_log (temp names, renamed)
    mirror_metadata.P.snapshot.gz → mirror_metadata.P.diff.gz (diff written, then snapshot removed)
    syncfs(DEST) (no change: fsync of the session files); remove current_mirror.P.data
    file_statistics.T.data.gz, session_statistics.T.data, backup.log

A crash before the commit leaves two markers (or, for a first backup, none): the next run
regresses (:mod:`rdb_mirror.regress`) and the previous session is intact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rdb_clikit.protocol import NullProgress, Progress
from rdb_format.atomic import (
    SyncBatch,
    is_temp_name,
    remove_durable,
    sync_filesystems,
)
from rdb_format.eas_acls import ACLRecord, EARecord, iter_acl_records, iter_ea_records
from rdb_format.errors import (
    RepositoryNotFound,
    SourceError,
    UsageError,
)
from rdb_format.layout import (
    ACCESS_CONTROL_LISTS,
    BACKUP_LOG,
    CHARS_TO_QUOTE,
    DATA_DIR,
    ERROR_LOG,
    EXTENDED_ATTRIBUTES,
    FILE_STATISTICS,
    MIRROR_METADATA,
    RDIFF_BACKUP_LOCK,
    SESSION_STATISTICS,
    SPECIAL_ESCAPES,
    WRITER_LOCK,
    Layout,
)
from rdb_format.locking import WriterLock
from rdb_format.metadata import RawRecord
from rdb_format.metadata_diff import (
    MetadataFile as StoredMetadata,
)
from rdb_format.metadata_diff import (
    find_session_file,
    list_metadata_files,
    raw_records_at,
)
from rdb_format.quoting import NO_QUOTING, Quoting, write_quoting
from rdb_format.repository import (
    RepositoryState,
    data_file_name,
    read_state,
    remove_marker,
    write_marker,
)
from rdb_format.statistics import SessionStatistics, write_session_statistics
from rdb_format.timestamps import format_timestring
from rdb_increment.writer import IncrementOptions, IncrementWriter
from rdb_mirror import testhooks
from rdb_mirror.datafiles import (
    AclFile,
    BackupLog,
    EaFile,
    ErrorLog,
    FileStatistics,
    MetadataFile,
    StreamedFile,
)
from rdb_mirror.fsmeta import Capabilities, probe
from rdb_mirror.fsnames import choose_quoting, probe_names, source_case_sensitive
from rdb_mirror.regress import RegressResult, regress_locked
from rdb_mirror.repo_side import Counters, OldState, RepositorySide
from rdb_mirror.source import IncludeAll, Selection, SourceOptions
from rdb_mirror.stepped_source import SteppedSource
from rdb_mirror.writeback import EarlyWriteback

__all__ = ["BackupOptions", "BackupResult", "LocalSource", "SourceEndpoint", "backup"]

#: rdiff-backup keeps a snapshot after this many diffs in a row (max_diff_chain = 9).
MAX_DIFFS_IN_A_ROW = 8


@dataclass(frozen=True)
class BackupOptions:
    """How a session runs. ``current_time`` fakes the session time (epoch seconds)."""

    current_time: int | None = None
    selection: Selection | None = None
    compression: bool = True
    no_compression_regexp: str | None = None
    file_statistics: bool = True
    eas: bool = True
    acls: bool = True
    workers: int | None = None
    force: bool = False
    #: changed files as librsync deltas against the old mirror copy (rdb_mirror.deltas);
    #: None: only when the source side is remote
    deltas: bool | None = None
    #: rdiff-backup's ``--chars-to-quote``: a new repository's quoting instead of the probe's
    #: (a regex class body, e.g. ``b"A-Z"``); an existing repository must already have it
    chars_to_quote: bytes | None = None


def default_workers() -> int:
    """Threads of each side's pool: reading, hashing, deltas and compression overlap I/O."""
    return min(8, (os.cpu_count() or 1) + 2)


class SourceEndpoint(Protocol):
    """Where the source half of a session runs: in this process (:class:`LocalSource`) or on
    the other end of a connection (:mod:`rdb_mirror.remote`)."""

    #: how backup.log and the result name the source
    name: str
    #: whether the source's messages cross a remote channel (deltas are then worth it)
    remote: bool

    def capabilities(self) -> Capabilities:
        """What the source's file system keeps (extended attributes, ACLs)."""
        ...

    def run(self, repo: RepositorySide, caps: Capabilities, workers: int) -> None:
        """Run the source half against ``repo`` until the session's messages are all in."""
        ...


class LocalSource:
    """The source half in this process, stepped on the repository side's thread
    (:mod:`rdb_mirror.stepped_source`)."""

    remote = False

    def __init__(self, root: Path, selection: Selection | None = None) -> None:
        self.root = root
        self.name = os.fsdecode(root)
        self.selection = selection

    def capabilities(self) -> Capabilities:
        return probe(os.fsencode(self.root))

    def run(self, repo: RepositorySide, caps: Capabilities, workers: int) -> None:
        options = SourceOptions(
            root=os.fsencode(self.root),
            selection=self.selection or IncludeAll(),
            capabilities=caps,
            workers=workers,
            window=repo.window,
            local_copy=True,
        )
        source = SteppedSource(options)
        try:
            repo.run(source, source)
        except BaseException:
            source.close(failed=True)
            raise
        source.close()
        if source.failure is not None:
            raise source.failure


@dataclass
class BackupResult:
    """What a session did."""

    source: Path
    destination: Path
    time: int
    previous_time: int | None
    statistics: SessionStatistics
    errors: list[str] = field(default_factory=list)
    regressed: RegressResult | None = None
    new_repository: bool = False
    bytes_read: int = 0
    #: bytes that crossed the connection each way (remote sessions; None when local)
    bytes_sent: int | None = None
    bytes_received: int | None = None

    @property
    def warnings(self) -> int:
        return len(self.errors)


# ---------------------------------------------------------------------------------------------
# checks


def _check_source(src: Path) -> None:
    try:
        st = os.stat(src)
    except FileNotFoundError:
        raise SourceError("does not exist", path=src) from None
    except OSError as error:
        raise SourceError(f"cannot be read: {error.strerror}", path=src) from None
    import stat as _stat

    if not _stat.S_ISDIR(st.st_mode):
        raise SourceError("is not a directory; give the directory to back up", path=src)
    try:
        with os.scandir(src):
            pass
    except OSError as error:
        raise SourceError(f"cannot be read: {error.strerror}", path=src) from None


def _check_nesting(src: Path, dest: Path) -> None:
    """Refuse a destination inside the source, and a source inside rdiff-backup-data."""
    real_src = os.path.realpath(src)
    real_dest = os.path.realpath(dest)
    if real_dest == real_src or real_dest.startswith(real_src.rstrip("/") + "/"):
        raise UsageError(
            f"is inside the source {os.fsdecode(src)!r}; a backup cannot contain itself",
            path=dest,
        )
    if real_src.startswith(real_dest.rstrip("/") + "/"):
        inside = Path(real_src).relative_to(real_dest).parts
        if inside and inside[0] == DATA_DIR:
            raise UsageError("the source is inside the repository's rdiff-backup-data", path=src)


def _check_destination(src: Path | None, dest: Path) -> bool:
    """Refuse bad destinations; True if ``dest`` is already a repository.

    ``src`` None: the source is on another host (it cannot contain the destination).
    """
    if src is not None:
        _check_nesting(src, dest)
    if not os.path.lexists(dest):
        parent = dest.absolute().parent
        if not parent.is_dir():
            raise SourceError("its parent directory does not exist; create it first", path=dest)
        return False
    if not dest.is_dir():
        raise RepositoryNotFound(
            "exists and is not a directory; give a new or empty directory, or a repository",
            path=dest,
        )
    if (dest / DATA_DIR).is_dir():
        return True
    try:
        empty = not os.listdir(dest)
    except OSError as error:
        raise RepositoryNotFound(f"cannot be read: {error.strerror}", path=dest) from None
    if not empty:
        raise RepositoryNotFound(
            "is not empty and not a backup repository (no rdiff-backup-data); "
            "give a new or empty directory, or an existing repository",
            path=dest,
        )
    return False


# ---------------------------------------------------------------------------------------------
# helpers


def _data_path(layout: Layout, quoting: Quoting, base: str, when: int, kind: str) -> Path:
    raw = data_file_name(quoting, base, when, kind)  # type: ignore[arg-type]
    return layout.data_dir / os.fsdecode(raw)


def _clean_temps(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(os.fsencode(directory)):
            if is_temp_name(name):
                path = os.path.join(os.fsencode(directory), name)
                with contextlib.suppress(OSError):
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)


def _wipe_failed_initial(layout: Layout) -> None:
    """A first backup died before its marker: start over (rdiff-backup does the same)."""
    keep = {RDIFF_BACKUP_LOCK.encode(), WRITER_LOCK.encode()}
    data = os.fsencode(layout.data_dir)
    for name in os.listdir(data):
        if name in keep:
            continue
        path = os.path.join(data, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    root = os.fsencode(layout.root)
    for name in os.listdir(root):
        if name == DATA_DIR.encode():
            continue
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _old_state(layout: Layout, state: RepositoryState, prev: int) -> OldState:
    quoting = state.quoting
    records: Iterator[RawRecord] = raw_records_at(layout.data_dir, prev, quoting=quoting)
    eas: Iterator[EARecord] | None = None
    acls: Iterator[ACLRecord] | None = None
    ea_path = find_session_file(
        layout.data_dir, EXTENDED_ATTRIBUTES, prev, kinds=("snapshot",), quoting=quoting
    )
    if ea_path is not None:
        eas = iter_ea_records(ea_path)
    acl_path = find_session_file(
        layout.data_dir, ACCESS_CONTROL_LISTS, prev, kinds=("snapshot",), quoting=quoting
    )
    if acl_path is not None:
        acls = iter_acl_records(acl_path)
    return OldState(prev, records, eas, acls)


def _previous_diff(layout: Layout, quoting: Quoting, prev: int) -> tuple[Path, Path] | None:
    """(the previous snapshot, the name of its diff) if the chain rule converts it."""
    files = list_metadata_files(layout.data_dir, quoting)
    position = next((i for i, f in enumerate(files) if f.time == prev), None)
    if position is None:
        return None
    previous: StoredMetadata = files[position]
    if previous.kind != "snapshot":
        return None
    run = 0
    for earlier in reversed(files[:position]):
        if earlier.kind != "diff":
            break
        run += 1
    if run >= MAX_DIFFS_IN_A_ROW:
        return None  # rdiff-backup's max_diff_chain: keep a full snapshot now and then
    name = previous.path.name
    if previous.compressed:
        name = name[: -len(".gz")]
    if not name.endswith("snapshot"):
        return None  # a quoted kind: leave it a snapshot (always valid)
    return previous.path, previous.path.with_name(name[: -len("snapshot")] + "diff")


# ---------------------------------------------------------------------------------------------
# the session


def backup(
    source: str | os.PathLike[str] | SourceEndpoint,
    destination: str | os.PathLike[str],
    options: BackupOptions | None = None,
    progress: Progress | None = None,
) -> BackupResult:
    """Back up ``source`` into the repository ``destination`` (made if new or empty).

    ``source`` is a local directory, or a :class:`SourceEndpoint` (a remote source).

    Raises SourceError, UsageError, RepositoryNotFound, RepositoryLocked, CorruptRepository
    (each with one line naming the path) before anything is written when the inputs are bad.
    Files that cannot be read are logged in ``error_log`` and listed in the result.
    """
    opts = options or BackupOptions()
    report = progress or NullProgress()
    dest = Path(destination)
    _valid_chars_to_quote(opts.chars_to_quote)
    endpoint: SourceEndpoint
    if isinstance(source, (str, os.PathLike)):
        src = Path(source)
        _check_source(src)
        is_repo = _check_destination(src, dest)
        endpoint = LocalSource(src, opts.selection)
    else:
        is_repo = _check_destination(None, dest)
        endpoint = source
    layout = Layout(dest)
    new_repository = not is_repo
    if new_repository:
        try:
            dest.mkdir(mode=0o700, exist_ok=True)
            layout.data_dir.mkdir(mode=0o700, exist_ok=True)
        except OSError as error:
            raise SourceError(
                f"cannot create the repository: {error.strerror}", path=dest
            ) from None
    try:
        with WriterLock(layout, command="rdb-mirror", force=opts.force):
            return _locked(endpoint, layout, opts, report, new_repository)
    finally:
        report.finish()


def _locked(
    src: SourceEndpoint,
    layout: Layout,
    opts: BackupOptions,
    report: Progress,
    new_repository: bool,
) -> BackupResult:
    state = read_state(layout, allow_duplicate_timestamps=True)
    regressed: RegressResult | None = None
    if len(state.markers) > 2:
        state.check_finished()  # raises
    if state.unfinished:
        report.warning("the previous session did not finish; regressing it first")
        regressed = regress_locked(layout, state, report)
        state = read_state(layout)
    if not state.markers:
        if not state.is_new and not state.failed_initial:
            state.check_finished()  # raises: increments without a marker
        if state.entries or not state.increments_empty or _mirror_leftovers(layout):
            _wipe_failed_initial(layout)
            state = read_state(layout)
    else:
        state.check_finished()
    _check_chars_to_quote(layout, state, opts.chars_to_quote)
    _clean_temps(layout.data_dir)
    now = opts.current_time if opts.current_time is not None else int(time.time())
    prev = state.current_time
    if prev is not None and now <= prev:
        raise UsageError(
            f"the last backup ({format_timestring(prev)}) is not in the past "
            f"(session time {format_timestring(now)}); wait, or give a later --current-time",
            path=layout.root,
        )
    return _Session(src, layout, state, opts, report, now, prev, regressed, new_repository).run()


def _valid_chars_to_quote(chars: bytes | None) -> None:
    """UsageError for a ``--chars-to-quote`` that is not a valid class body or that quotes
    bytes >= 0x80 (rdiff-backup 2.2.7 cannot restore such names)."""
    if chars is None:
        return
    try:
        wanted = Quoting(chars)
    except ValueError as error:
        raise UsageError(f"--chars-to-quote: {error}") from None
    if wanted.quotes_high_bytes:
        raise UsageError(
            "--chars-to-quote: bytes \\200-\\377 are never quoted "
            "(rdiff-backup 2.2.7 cannot restore such names)"
        )


def _check_chars_to_quote(layout: Layout, state: RepositoryState, chars: bytes | None) -> None:
    """UsageError when an existing repository's quoting is not ``--chars-to-quote``'s (it can
    never change; rdiff-backup refuses too)."""
    existing = state.quoting.chars_to_quote
    if chars is not None and state.current_time is not None and existing != chars:
        raise UsageError(
            f"--chars-to-quote {os.fsdecode(chars)!r} differs from the repository's "
            f"{os.fsdecode(existing)!r}; its quoting cannot change",
            path=layout.data_dir / CHARS_TO_QUOTE,
        )


def _mirror_leftovers(layout: Layout) -> bool:
    return any(name != DATA_DIR for name in os.listdir(layout.root))


class _Session:
    def __init__(
        self,
        src: SourceEndpoint,
        layout: Layout,
        state: RepositoryState,
        opts: BackupOptions,
        report: Progress,
        now: int,
        prev: int | None,
        regressed: RegressResult | None,
        new_repository: bool,
    ) -> None:
        self.src = src
        self.layout = layout
        self.state = state
        self.opts = opts
        self.report = report
        self.now = now
        self.prev = prev
        self.regressed = regressed
        self.new_repository = new_repository
        self.quoting: Quoting = state.quoting if prev is not None else NO_QUOTING

    def path(self, base: str, kind: str) -> Path:
        return _data_path(self.layout, self.quoting, base, self.now, kind)

    def run(self) -> BackupResult:
        layout = self.layout
        opts = self.opts
        started = time.time()
        data_dir = layout.data_dir
        layout.increments_dir.mkdir(mode=0o700, exist_ok=True)
        missing = self.state.quoting.missing
        if self.prev is None and CHARS_TO_QUOTE in missing:
            # a new repository: quote what its file system cannot store, as rdiff-backup does
            # (a remote source is taken as case-sensitive: Linux file systems are)
            sensitive = not isinstance(self.src, LocalSource) or source_case_sensitive(
                os.fsencode(self.src.root)
            )
            self.quoting = choose_quoting(probe_names(os.fsencode(data_dir)), sensitive)
            if opts.chars_to_quote is not None:  # the override, as rdiff-backup's
                self.quoting = Quoting(opts.chars_to_quote, self.quoting.special_escapes)
        if CHARS_TO_QUOTE in missing or SPECIAL_ESCAPES in missing:
            write_quoting(data_dir, self.quoting)
        src_caps = self.src.capabilities()
        dest_caps = probe(os.fsencode(layout.root))
        caps = Capabilities(
            eas=opts.eas and src_caps.eas and dest_caps.eas,
            acls=opts.acls and src_caps.acls and dest_caps.acls,
        )
        old_marker = self.state.markers[0] if self.state.markers else None
        writer: IncrementWriter | None = None
        old: OldState | None = None
        if self.prev is not None:
            write_marker(layout, self.quoting, self.now)
            testhooks.point("marker-written")
            old = _old_state(layout, self.state, self.prev)
            writer = IncrementWriter(
                layout,
                self.prev,
                quoting=self.quoting,
                # under their final names: a killed session's are the regress's to remove
                options=IncrementOptions(
                    compression=opts.compression,
                    no_compression_regexp=opts.no_compression_regexp,
                    in_place=True,
                    remember_written=False,  # the commit syncs the whole file system
                ),
            )
        compress = opts.compression
        metadata = MetadataFile(self.path(MIRROR_METADATA, "snapshot"), compress=True)
        convert = _previous_diff(layout, self.quoting, self.prev) if self.prev is not None else None
        # The previous snapshot's reverse diff is computed while the session runs (old and
        # new records meet in order there) and put in place after the new snapshot.
        diff_file = MetadataFile(convert[1], compress=True, diff=True) if convert else None
        # A session that keeps no EAs (ACLs) writes no file for them, as rdiff-backup: the
        # next session that keeps them then knows to set them again on the mirror copies
        # (an empty file would say "none", which that session could not have seen).
        ea_file = (
            EaFile(self.path(EXTENDED_ATTRIBUTES, "snapshot"), compress=True) if caps.eas else None
        )
        acl_file = (
            AclFile(self.path(ACCESS_CONTROL_LISTS, "snapshot"), compress=True)
            if caps.acls
            else None
        )
        file_stats = (
            FileStatistics(self.path(FILE_STATISTICS, "data"), compress=compress)
            if opts.file_statistics
            else None
        )
        errors = ErrorLog()
        workers = opts.workers or default_workers()
        self.report.start("backup", self._expected_total())
        outputs: list[StreamedFile] = [metadata]
        outputs += [f for f in (ea_file, acl_file, file_stats, diff_file) if f is not None]
        c = Counters()
        # syncs the file systems as the session writes (its error fails the session's syncs,
        # DurableOrder's before it replaces mirror copies, and the commit: writeback.py)
        writeback = EarlyWriteback(
            (layout.root, layout.data_dir),
            # done files, and the parts of large ones copied so far (counted twice once done:
            # the early syncs of a session of large files come twice as often)
            lambda: (
                c.new_file_size + c.changed_source_size + c.increment_file_size + c.kernel_copied
            ),
        )
        try:
            repo = RepositorySide(
                layout,
                self.quoting,
                old=old,
                writer=writer,
                metadata=metadata,
                diff_file=diff_file,
                ea_file=ea_file,
                acl_file=acl_file,
                file_stats=file_stats,
                errors=errors,
                capabilities=caps,
                progress=self.report,
                workers=workers,
                deltas=opts.deltas if opts.deltas is not None else self.src.remote,
                counters=c,
                sync=writeback.sync,
            )
        except BaseException:
            writeback.stop()
            raise
        try:
            try:
                self.src.run(repo, caps, workers)
                testhooks.point("walked")
            finally:
                writeback.stop()
            writeback.check()  # an early sync's error: no commit, as a failed commit sync
            written = [f.commit() for f in (metadata, ea_file, acl_file) if f is not None]
            written.append(errors.write(self.path(ERROR_LOG, "data"), compress=compress))
            testhooks.point("metadata-written")
            if convert is not None and diff_file is not None:
                written.append(diff_file.commit())
                testhooks.point("diff-written")
                remove_durable(convert[0])
                testhooks.point("converted")
            _make_durable(layout, written if repo.mirror_untouched else None)
            testhooks.point("before-commit")
            if old_marker is not None:
                remove_marker(old_marker)
            else:
                write_marker(layout, self.quoting, self.now)
            testhooks.point("committed")
        except BaseException:
            for out in outputs:
                out.abort()
            raise
        if file_stats is not None:
            file_stats.commit()
        ended = time.time()
        statistics = _statistics(c, self.now, started, ended, self.prev is None)
        write_session_statistics(self.path(SESSION_STATISTICS, "data"), statistics, fsync=False)
        BackupLog(data_dir / BACKUP_LOG).write(
            f"backup of {self.src.name} at {format_timestring(self.now)}: "
            f"{c.source_files} files, {c.new_files} new, {c.changed_files} changed, "
            f"{c.deleted_files} deleted, {len(errors.lines)} errors",
            *(f"WARNING: {line}" for line in errors.lines[:1000]),
        )
        return BackupResult(
            source=Path(self.src.name),
            destination=layout.root,
            time=self.now,
            previous_time=self.prev,
            statistics=statistics,
            errors=list(errors.lines),
            regressed=self.regressed,
            new_repository=self.new_repository,
            bytes_read=c.bytes_read,
        )

    def _expected_total(self) -> int | None:
        if self.prev is None:
            return None
        path = find_session_file(
            self.layout.data_dir,
            SESSION_STATISTICS,
            self.prev,
            kinds=("data",),
            quoting=self.quoting,
        )
        if path is None:
            return None
        try:
            from rdb_format.statistics import read_session_statistics

            return read_session_statistics(path).source_files or None
        except Exception:
            return None


def _make_durable(layout: Layout, only: list[Path] | None) -> None:
    """Everything the session wrote on stable storage, before the commit.

    ``only``: the session wrote nothing but these files of ``rdiff-backup-data`` (a
    session where nothing changed): fsync exactly them and the directory. Otherwise one
    ``syncfs`` of the repository's file system (docs/rdb-mirror.md, "Durability").
    """
    if only is None:
        sync_filesystems(layout.root, layout.data_dir)
        return
    batch = SyncBatch()
    for path in only:
        batch.add(path)
    batch.add_dir(layout.data_dir)
    batch.sync()


def _statistics(
    c: Counters, now: int, started: float, ended: float, first: bool
) -> SessionStatistics:
    elapsed = max(0.0, ended - started)
    return SessionStatistics(
        start_time=float(now),
        end_time=float(now) + elapsed,
        elapsed_time=elapsed,
        source_files=c.source_files,
        source_file_size=c.source_file_size,
        mirror_files=1 if first else c.mirror_files,
        mirror_file_size=0 if first else c.mirror_file_size,
        new_files=c.new_files,
        new_file_size=c.new_file_size,
        deleted_files=c.deleted_files,
        deleted_file_size=c.deleted_file_size,
        changed_files=c.changed_files,
        changed_source_size=c.changed_source_size,
        changed_mirror_size=c.changed_mirror_size,
        increment_files=c.increment_files,
        increment_file_size=c.increment_file_size,
        errors=c.errors,
    ).with_total()
