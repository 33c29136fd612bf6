"""``rdb-mirror --check DEST``: is the repository consistent, and does the mirror match?

Problems are collected, one line each naming the file, never raised (except for a path that is
no repository at all):

1. **Session markers**: exactly one ``current_mirror`` (two: the last session did not finish,
   regress it; none while increments exist; more than two).
2. **Metadata**: a ``mirror_metadata`` file for every session, no two at one time, the current
   one a snapshot, a snapshot at or after every diff; every file read through (gzip CRC,
   record grammar and order).
3. **Session files**: every ``extended_attributes``/``access_control_lists`` snapshot and
   ``session_statistics`` file parses; none belongs to a time that is no session.
4. **Increments** (the tree, ``long_filename_data`` and the root's markers): each has a
   session's time, at most one per path and time; every ``.gz`` reads through (CRC); every
   diff is a whole librsync delta; and a diff is followed by a full copy of a regular file (a
   diff or regular snapshot after it, else a regular mirror file), so it can be applied.
5. **The mirror** against the current metadata: every entry with its type, size, symlink
   target and SHA1.

``file_statistics`` and ``error_log`` are not checked: a crash may cut them and every reader
tolerates that. Read-only: no lock is taken, so a writer running meanwhile can cause reports.
Files are read on a thread pool (zlib and I/O release the GIL).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rdb_clikit.protocol import NullProgress, Progress
from rdb_format.eas_acls import iter_acl_records, iter_ea_records
from rdb_format.errors import CorruptRepository, RdbError
from rdb_format.layout import (
    ACCESS_CONTROL_LISTS,
    CURRENT_MIRROR,
    EXTENDED_ATTRIBUTES,
    INCREMENTS,
    SESSION_STATISTICS,
    Layout,
    open_repository,
)
from rdb_format.metadata import Record, iter_records, path_key
from rdb_format.metadata_diff import list_metadata_files, metadata_chain, records_at
from rdb_format.repository import RepositoryState, read_state
from rdb_format.statistics import read_session_statistics
from rdb_format.timestamps import format_timestring
from rdb_increment import (
    IncrementFile,
    LongNameMirrors,
    PathIncrements,
    read_delta,
    root_increments,
    walk_increments,
)
from rdb_increment.listing import entry_type
from rdb_mirror.fsmeta import file_type

__all__ = ["CheckResult", "check"]

Task = Callable[[], str | None]


@dataclass
class CheckResult:
    """What ``check`` found. ``unfinished``: two markers (regress first)."""

    time: int
    entries: int = 0  # mirror entries compared with the metadata
    files: int = 0  # repository files read through (metadata, session files, increments)
    sessions: int = 0
    unfinished: bool = False
    problems: list[str] = field(default_factory=list)


def _problem(message: str, path: str | os.PathLike[str] | bytes) -> str:
    return str(CorruptRepository(message, path=path))


def _sha1(path: bytes) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(
    destination: str | os.PathLike[str],
    progress: Progress | None = None,
    *,
    workers: int | None = None,
) -> CheckResult:
    """Check the repository at ``destination`` (see the module docstring).

    RepositoryNotFound if it is none; every other finding is a line in ``problems``.
    """
    report = progress or NullProgress()
    layout = open_repository(destination)
    try:
        return _Checker(layout, report, workers or min(4, os.cpu_count() or 1)).run()
    finally:
        report.finish()


class _Checker:
    def __init__(self, layout: Layout, progress: Progress, workers: int) -> None:
        self.layout = layout
        self.progress = progress
        self.workers = workers

    def run(self) -> CheckResult:
        problems: list[str] = []
        try:
            state = read_state(self.layout)
        except CorruptRepository as error:
            problems.append(str(error))
            try:  # go on with what can be read: duplicate timestamps are one such finding
                state = read_state(self.layout, allow_duplicate_timestamps=True)
            except RdbError:
                return CheckResult(0, problems=problems)
        result = CheckResult(state.current_time or 0, problems=problems)
        result.sessions = len(state.sessions)
        self._markers(state, result)
        if state.current_time is None:
            return result
        self.progress.start("checking repository files", None)
        tasks = [
            *self._metadata(state, result),
            *self._session_files(state, result),
            *self._increments(state, result),
        ]
        result.files = len(tasks)
        result.problems += sorted(p for p in self._run(tasks) if p is not None)
        self._mirror(state, result)
        result.problems = list(dict.fromkeys(result.problems))  # one line per finding
        return result

    def _run(self, tasks: list[Task]) -> Iterator[str | None]:
        with ThreadPoolExecutor(self.workers, thread_name_prefix="rdb-check") as pool:
            for found in pool.map(lambda task: task(), tasks):
                self.progress.advance(1)
                yield found

    # ---- 1. markers ------------------------------------------------------------------

    def _markers(self, state: RepositoryState, result: CheckResult) -> None:
        data_dir = self.layout.data_dir
        count = len(state.markers)
        if count > 2:
            result.problems.append(
                _problem(f"{count} current_mirror markers (there must be one)", data_dir)
            )
        elif state.unfinished:
            result.unfinished = True
            failed = state.failed_time
            assert failed is not None
            result.problems.append(
                _problem(
                    f"two current_mirror markers: the session {format_timestring(failed)} did "
                    f"not finish; run 'rdb-mirror --regress {os.fsdecode(self.layout.root)}'",
                    data_dir,
                )
            )
        elif count == 0 and not state.is_new:
            result.problems.append(
                _problem("no current_mirror marker, but increments exist", data_dir)
            )

    # ---- 2. metadata -----------------------------------------------------------------

    def _metadata(self, state: RepositoryState, result: CheckResult) -> list[Task]:
        data_dir = self.layout.data_dir
        try:
            files = list_metadata_files(data_dir, state.quoting)
        except CorruptRepository:
            files = []  # duplicate timestamps: already reported by read_state
        times = {f.time for f in files}
        for session in state.sessions:
            if session not in times:
                result.problems.append(
                    _problem(
                        f"no mirror_metadata file for the session {format_timestring(session)}",
                        data_dir,
                    )
                )
            else:
                try:
                    metadata_chain(files, session, where=data_dir)
                except CorruptRepository as error:
                    result.problems.append(str(error))
        current = state.current_time
        for entry in files:
            if entry.time == current and entry.kind != "snapshot":
                result.problems.append(
                    _problem("the current session's metadata must be a snapshot", entry.path)
                )
        return [_read_records(f.path) for f in files]

    # ---- 3. session files ------------------------------------------------------------

    def _session_files(self, state: RepositoryState, result: CheckResult) -> list[Task]:
        sessions = set(state.sessions)
        readers: dict[bytes, Callable[[Path], Iterable[object]]] = {
            EXTENDED_ATTRIBUTES.encode(): iter_ea_records,
            ACCESS_CONTROL_LISTS.encode(): iter_acl_records,
            SESSION_STATISTICS.encode(): lambda path: [read_session_statistics(path)],
        }
        tasks: list[Task] = []
        for entry in state.entries:
            base, when = entry.name.base, entry.name.time
            if base == CURRENT_MIRROR.encode():
                continue
            if when not in sessions and not (state.unfinished and when == state.failed_time):
                result.problems.append(_problem(_no_session(when, state), entry.path))
            reader = readers.get(base)
            if reader is not None:
                tasks.append(_read_with(reader, entry.path))
        return tasks

    # ---- 4. increments ---------------------------------------------------------------

    def _increments(self, state: RepositoryState, result: CheckResult) -> list[Task]:
        quoting = state.quoting
        groups = [root_increments(self.layout, quoting)]
        for directory in walk_increments(self.layout):
            groups += directory.groups(quoting)
        tasks: list[Task] = []
        assert state.current_time is not None
        long_mirrors = LongNameMirrors(self.layout, quoting, state.current_time)
        for group in groups:
            self._group(group, state, result, long_mirrors)
            for inc in group.files:
                if inc.kind == "diff":
                    tasks.append(_read_diff(inc))
                elif inc.name.compressed:
                    tasks.append(_read_gzip(inc.path))
        return tasks

    def _group(
        self,
        group: PathIncrements,
        state: RepositoryState,
        result: CheckResult,
        long_mirrors: LongNameMirrors,
    ) -> None:
        sessions = set(state.sessions)
        seen: set[int] = set()
        for position, inc in enumerate(group.files):
            if inc.time in seen:
                result.problems.append(_problem("a second increment at the same time", inc.path))
            seen.add(inc.time)
            if inc.time not in sessions:
                if state.unfinished and inc.time == state.current_time:
                    continue  # written by the unfinished session: regress handles it
                result.problems.append(_problem(_no_session(inc.time, state), inc.path))
            if inc.kind != "diff" or state.unfinished or group.base == INCREMENTS.encode():
                continue
            if position + 1 < len(group.files):
                after = group.files[position + 1]
                ok = after.kind == "diff" or (
                    after.kind == "snapshot" and entry_type(after.path) == "regular"
                )
            else:
                try:
                    mirror = long_mirrors.of(group)
                except CorruptRepository:
                    mirror = None  # unreadable current metadata: reported with the metadata
                ok = mirror is not None and entry_type(mirror) == "regular"
            if not ok:
                result.problems.append(
                    _problem(
                        "a diff with no regular file after it to apply it to (the next "
                        "increment or the mirror copy is missing or not a regular file)",
                        inc.path,
                    )
                )

    # ---- 5. the mirror ---------------------------------------------------------------

    def _mirror(self, state: RepositoryState, result: CheckResult) -> None:
        current = state.current_time
        assert current is not None
        layout = self.layout
        root = os.fsencode(layout.root)
        self.progress.start("checking the mirror", None)
        sha1s: dict[tuple[int, int], str] = {}
        try:
            for record in records_at(layout.data_dir, current, quoting=state.quoting):
                self._compare(record, root, sha1s, state, result)
        except CorruptRepository as error:
            result.problems.append(str(error))  # the metadata itself: reported above too

    def _compare(
        self,
        record: Record,
        root: bytes,
        sha1s: dict[tuple[int, int], str],
        state: RepositoryState,
        result: CheckResult,
    ) -> None:
        """One entry of the current metadata against the mirror."""
        layout = self.layout
        result.entries += 1
        self.progress.advance(1)
        index = state.quoting.quote_path(path_key(record.path))
        if record.alternate_mirror_name is not None:
            path = os.fsencode(layout.long_filename_dir / str(record.alternate_mirror_name))
        else:
            path = os.path.join(root, *index) if index else root
        shown = record.path.decode("utf-8", "backslashreplace")
        try:
            st = os.lstat(path)
        except OSError as error:
            result.problems.append(f"{shown}: missing from the mirror ({error.strerror})")
            return
        kind = file_type(st.st_mode)
        if kind != record.type and not (
            record.type in ("dev", "sock", "fifo") and stat.S_ISREG(st.st_mode)
        ):
            result.problems.append(f"{shown}: is a {kind} in the mirror, not a {record.type}")
            return
        if record.type == "sym" and os.readlink(path) != record.sym_data:
            result.problems.append(f"{shown}: symlink target differs")
        if record.type != "reg":
            return
        if st.st_size != record.size:
            result.problems.append(f"{shown}: size {st.st_size}, metadata says {record.size}")
            return
        wanted = record.sha1_digest
        if record.has_hard_link_triple:
            assert record.device_loc is not None and record.inode is not None
            key = (record.device_loc, record.inode)
            if wanted is not None:
                sha1s[key] = wanted
            else:
                wanted = sha1s.get(key)
        if wanted is not None and _sha1(path) != wanted:
            result.problems.append(f"{shown}: content differs from its SHA1")


def _no_session(when: int, state: RepositoryState) -> str:
    current = state.current_time or 0
    if when > current:
        return (
            f"time {format_timestring(when)} is after the current session "
            "(left by an unfinished one?)"
        )
    return (
        f"time {format_timestring(when)} is no session (left by an interrupted removal? "
        "'rdb-increment remove' finishes it)"
    )


# ---- reading one file (each returns a problem line or None) -------------------------------


def _guarded(path: str | os.PathLike[str], body: Callable[[], object]) -> str | None:
    try:
        body()
    except RdbError as error:
        return str(error)
    except (OSError, EOFError, zlib.error) as error:
        return _problem(f"unreadable: {error}", path)
    return None


def _read_records(path: Path) -> Task:
    return lambda: _guarded(path, lambda: sum(1 for _ in iter_records(path)))


def _read_with(reader: Callable[[Path], Iterable[object]], path: Path) -> Task:
    return lambda: _guarded(path, lambda: sum(1 for _ in reader(path)))


def _read_diff(inc: IncrementFile) -> Task:
    return lambda: _guarded(inc.path, lambda: read_delta(inc))


def _gunzip_all(path: Path) -> None:
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 20):
                pass
    except EOFError:
        raise CorruptRepository("truncated (compressed data ends early)", path=path) from None
    except (zlib.error, gzip.BadGzipFile) as error:
        raise CorruptRepository(f"not valid gzip data ({error})", path=path) from None


def _read_gzip(path: Path) -> Task:
    return lambda: _guarded(path, lambda: _gunzip_all(path))
