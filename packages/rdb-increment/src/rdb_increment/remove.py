"""Remove backup sessions from a repository: the oldest ones, or any ones (thinning).

:func:`remove_sessions` takes the writer lock, decides which sessions go
(:mod:`rdb_increment.sessions`) and changes the repository in an order that keeps every kept
session restorable, by us and by rdiff-backup 2.2.7, whenever the process is killed:

1. ``rdb-remove.journal`` is written (not an increment-style name: rdiff-backup ignores it).
   It lists the sessions whose metadata step 6 re-diffs; a later run that finds it finishes
   the job.
2. Each kept session P followed by dropped ones gets self-contained metadata
   (:func:`rdb_increment.metadata_merge.make_self_contained`), in place.
3. The root's ``increments.T.dir`` markers are merged or deleted, then every other data-dir
   file of a dropped session (statistics, error log, EA/ACL snapshots), then its
   ``mirror_metadata``: from here the session no longer exists for any reader.
4. The increment tree and ``long_filename_data`` are walked once: increments older than the
   oldest kept session are deleted, as rdiff-backup's ``remove increments`` does; those of
   dropped sessions between kept ones are merged into the kept session before them
   (:class:`rdb_increment.thin.PathMerger`, each step atomic). Directories left empty are
   removed, as rdiff-backup does.
5. (crash leftovers) increments whose time is no session any more are treated the same way,
   so a second run completes an interrupted one.
6. The metadata of step 2 is re-diffed against the next kept session; the journal is removed.

Before the session files go (step 3) nothing a reader uses has changed meaning; after it, the
remaining steps only tidy files that no kept session's chain depends on incorrectly.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import shutil
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rdb_format.atomic import fsync_dir, is_temp_name, write_atomic
from rdb_format.errors import CorruptRepository, UnfinishedSession, UsageError
from rdb_format.layout import CURRENT_MIRROR, INCREMENTS, MIRROR_METADATA, Layout, open_repository
from rdb_format.locking import WriterLock
from rdb_format.progress import NullProgress, Progress
from rdb_format.repository import RepositoryState, read_state
from rdb_format.timestamps import format_timestring
from rdb_increment import testhooks
from rdb_increment.metadata_merge import make_self_contained, rediff
from rdb_increment.sessions import RemovalPlan, RetentionPolicy, plan_removal
from rdb_increment.thin import Changes, PathMerger, time_stamp
from rdb_increment.tree import (
    IncrementTimes,
    LongNameMirrors,
    PathIncrements,
    remove_if_empty,
    root_increments,
    walk_increments,
)

__all__ = ["JOURNAL", "RemoveOptions", "RemoveResult", "remove_sessions"]

#: Written while a removal runs; lists the sessions whose metadata is still to be re-diffed.
JOURNAL = "rdb-remove.journal"
_SCRATCH_PREFIX = "rdiff-backup.tmp.rdb-remove-"


@dataclass(frozen=True)
class RemoveOptions:
    """``dry_run``: only say what would go. ``force``: allow removing more than one session.
    ``workers``: threads that merge increments (default: CPUs, at most 4). ``now``: the
    clock for time specs such as ``3D`` (default: now)."""

    dry_run: bool = False
    force: bool = False
    workers: int | None = None
    now: int | None = None


@dataclass(frozen=True)
class RemoveResult:
    """What a removal did (or, with ``dry_run``, would do)."""

    repository: Path
    plan: RemovalPlan
    dry_run: bool = False
    files_deleted: int = 0
    bytes_freed: int = 0
    paths_merged: int = 0
    increments_renamed: int = 0
    files_rewritten: int = 0
    resumed: bool = False  # an interrupted earlier removal was completed

    @property
    def changes(self) -> int:
        """How many times the repository was changed (deletions, renames, rewrites)."""
        return self.files_deleted + self.increments_renamed + self.files_rewritten

    @property
    def removed(self) -> tuple[int, ...]:
        return self.plan.dropped

    @property
    def kept(self) -> tuple[int, ...]:
        return self.plan.kept


def _checked_state(layout: Layout) -> RepositoryState:
    state = read_state(layout)
    try:
        state.check_finished()
    except UnfinishedSession:
        raise UnfinishedSession(
            "the last backup session did not finish; run "
            f"'rdb-mirror --regress {os.fsdecode(layout.root)}' first, then remove",
            path=layout.data_dir,
        ) from None
    return state


def _describe(times: tuple[int, ...]) -> str:
    first = format_timestring(times[0])
    if len(times) == 1:
        return first
    return f"{first} ... {format_timestring(times[-1])}"


def _check_plan(plan: RemovalPlan, options: RemoveOptions, layout: Layout) -> None:
    if len(plan.dropped) > 1 and not options.force and not options.dry_run:
        raise UsageError(
            f"would remove {len(plan.dropped)} sessions ({_describe(plan.dropped)}); "
            "give --force to remove more than one, or --dry-run to list them",
            path=layout.root,
        )


def remove_sessions(
    repository: str | os.PathLike[str],
    policy: RetentionPolicy,
    options: RemoveOptions | None = None,
    progress: Progress | None = None,
) -> RemoveResult:
    """Remove the sessions ``policy`` drops from ``repository`` (see the module docstring).

    Raises RepositoryNotFound, UnfinishedSession (regress first), RepositoryLocked,
    UsageError (bad policy, or several sessions without ``force``), CorruptRepository.
    """
    opts = options or RemoveOptions()
    report = progress or NullProgress()
    policy.check()
    layout = open_repository(repository)
    journal = _Journal(layout.data_dir)
    try:
        state = _checked_state(layout)
        # after an interrupted removal, sessions it named may be gone already: not an error
        resuming = journal.path.exists()
        plan = plan_removal(state.sessions, policy, now=opts.now, gone_ok=resuming)
        _check_plan(plan, opts, layout)
        if opts.dry_run:
            return RemoveResult(layout.root, plan, dry_run=True, resumed=resuming)
        with WriterLock(layout, command="rdb-increment remove"):
            testhooks.point("locked")
            state = _checked_state(layout)  # what it is now that we hold the lock
            resuming = journal.path.exists()
            plan = plan_removal(state.sessions, policy, now=opts.now, gone_ok=resuming)
            _check_plan(plan, opts, layout)
            return _Removal(layout, state, plan, opts, report).run()
    finally:
        report.finish()


class _Journal:
    """``rdb-remove.journal``: the sessions whose metadata must be re-diffed at the end."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / JOURNAL

    def read(self) -> set[int] | None:
        """The pending sessions, or None when no removal was interrupted."""
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            document = json.loads(content)
            return {int(t) for t in document["rediff"]}
        except (ValueError, KeyError, TypeError):
            raise CorruptRepository(
                "garbled removal journal; delete it (the repository stays valid) and run again",
                path=self.path,
            ) from None

    # Not fsynced: the journal only saves a later run some tidying (every state it covers is
    # a valid repository), so losing it to a power cut costs nothing but leftovers.

    def write(self, rediff: set[int]) -> None:
        document = {"rediff": sorted(rediff), "pid": os.getpid()}
        write_atomic(self.path, json.dumps(document).encode() + b"\n", fsync=False)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class _Deleter:
    """Unlinks on a pool of threads. A removal's deletions wait on the disk (inode and bitmap
    blocks, the file system journal), not on the CPU, and overlap well: 33,000 increments
    took 4.8-19 s one by one on the benchmark machine, 1.5 s on 16 threads."""

    THREADS = 16
    _CHUNK = 2048  # paths per task: a directory per task (unlinks in one directory serialise)
    _BACKLOG = 256  # tasks in flight at most

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self._pool = ThreadPoolExecutor(self.THREADS, thread_name_prefix="rdb-unlink")
        self._pending: deque[Future[None]] = deque()

    def delete(self, path: Path) -> None:
        self.delete_many([os.fsencode(path)])

    def delete_many(self, paths: list[bytes]) -> None:
        """Delete ``paths`` (in any order), a chunk of them per task."""
        for start in range(0, len(paths), self._CHUNK):
            chunk = paths[start : start + self._CHUNK]
            self._pending.append(self._pool.submit(self._some, chunk))
        while len(self._pending) > self._BACKLOG:
            self._pending.popleft().result()

    def _some(self, paths: list[bytes]) -> None:
        for path in paths:
            try:
                size = os.lstat(path).st_size
                os.unlink(path)
            except FileNotFoundError:
                continue
            self.changes.deleted(size)

    def wait(self) -> None:
        """Until every deletion asked for so far is done (errors are raised here)."""
        while self._pending:
            self._pending.popleft().result()

    def map(self, function: Callable[[Path], object], paths: list[Path]) -> None:
        """``function`` over ``paths`` on the same threads, waiting for all."""
        for _ in self._pool.map(function, paths):
            pass

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)


class _Removal:
    def __init__(
        self,
        layout: Layout,
        state: RepositoryState,
        plan: RemovalPlan,
        options: RemoveOptions,
        progress: Progress,
    ) -> None:
        self.layout = layout
        self.state = state
        self.plan = plan
        self.options = options
        self.progress = progress
        self.quoting = state.quoting
        self.changes = Changes()
        self.kept = plan.kept
        self.kept_set = frozenset(plan.kept)
        self.doomed = frozenset(plan.dropped)
        self.recheck: frozenset[int] = frozenset()  # windows a killed removal was merging
        self.deleter: _Deleter

    # ---- the run ---------------------------------------------------------------------

    def run(self) -> RemoveResult:
        journal = _Journal(self.layout.data_dir)
        pending = journal.read()
        resumed = pending is not None
        if not self.plan.kept or (not self.plan.dropped and not resumed):
            return RemoveResult(self.layout.root, self.plan)
        self._clean_scratch()
        windows = self.plan.windows
        self.recheck = frozenset((pending or set()) & set(self.kept[:-1]))
        rediff_times = (pending or set()) | {w.previous for w in windows}
        journal.write(rediff_times)
        data_dir = self.layout.data_dir
        for window in windows:
            if make_self_contained(
                data_dir, self.quoting, window.previous, window.dropped, window.next
            ):
                self.changes.note("rewritten")
        testhooks.point("metadata-merged")
        scratch = data_dir / f"{_SCRATCH_PREFIX}{os.getpid()}"
        scratch.mkdir(mode=0o700, exist_ok=True)
        self.deleter = _Deleter(self.changes)
        try:
            mirrors = LongNameMirrors(self.layout, self.quoting, self.kept[-1])
            merger = PathMerger(
                self.layout, self.quoting, self._stamps(), scratch, self.changes, mirrors.of
            )
            self.progress.start("removing sessions", None)
            self._handle(merger, root_increments(self.layout, self.quoting), None)
            self.deleter.wait()
            self._drop_session_files()
            testhooks.point("sessions-dropped")
            self._walk(merger)
            testhooks.point("increments-done")
        finally:
            self.deleter.close()
            shutil.rmtree(scratch, ignore_errors=True)
        sessions = set(read_state(self.layout).sessions)
        for when in sorted(rediff_times):
            if when in sessions and rediff(data_dir, self.quoting, when):
                self.changes.note("rewritten")
        testhooks.point("rediffed")
        journal.remove()
        return RemoveResult(
            self.layout.root,
            self.plan,
            files_deleted=self.changes.files_deleted,
            bytes_freed=self.changes.bytes_freed,
            paths_merged=self.changes.paths_merged,
            increments_renamed=self.changes.renamed,
            files_rewritten=self.changes.rewritten,
            resumed=resumed,
        )

    def _clean_scratch(self) -> None:
        """Scratch directories of removals that were killed, and the temp files of any killed
        writer (its lock file or journal half made): we hold the lock, none is being written."""
        for name in os.listdir(self.layout.data_dir):  # the scratch names are temp names too
            path = self.layout.data_dir / name
            if not is_temp_name(name):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _stamps(self) -> dict[int, bytes]:
        """Each session's time string as its metadata file writes it."""
        stamps: dict[int, bytes] = {}
        for entry in self.state.metadata:
            raw = self.quoting.unquote(os.fsencode(entry.path.name), path=entry.path)
            stamps[entry.name.time] = time_stamp(raw)
        return stamps

    def _goes(self, when: int) -> bool:
        return when in self.doomed or when < self.kept[0]

    def _drop_session_files(self) -> None:
        """Every data-dir file of a dropped session; its ``mirror_metadata`` last."""
        keep_bases = {CURRENT_MIRROR.encode(), INCREMENTS.encode(), MIRROR_METADATA.encode()}
        for entry in self.state.entries:
            if entry.name.base not in keep_bases and self._goes(entry.name.time):
                self.deleter.delete(entry.path)
        self.deleter.wait()
        for entry in self.state.metadata:
            if self._goes(entry.name.time):
                self.deleter.delete(entry.path)
        self.deleter.wait()
        fsync_dir(self.layout.data_dir)

    # ---- the increment tree ----------------------------------------------------------

    def _walk(self, merger: PathMerger) -> None:
        workers = self.options.workers or min(4, os.cpu_count() or 1)
        in_flight: deque[Future[None]] = deque()
        directories: list[Path] = []  # children before parents
        with ThreadPoolExecutor(workers, thread_name_prefix="rdb-merge") as pool:

            def submit(group: PathIncrements, windows: list[int]) -> None:
                in_flight.append(pool.submit(self._merge_all, merger, group, windows))
                while len(in_flight) > workers * 4:
                    in_flight.popleft().result()

            try:
                times = IncrementTimes(self.quoting)
                oldest = self.kept[0]
                for directory in walk_increments(self.layout):
                    # the hot path: increments older than every kept session just go
                    where = os.fsencode(directory.path)
                    doomed: list[bytes] = []
                    rest: list[bytes] = []
                    for raw in directory.names:
                        when = times.of(raw, directory.path)
                        if when is not None and when < oldest:
                            doomed.append(os.path.join(where, raw))
                        elif when is not None:
                            rest.append(raw)
                    self.deleter.delete_many(doomed)
                    self.progress.advance(len(doomed))
                    for group in directory.groups(self.quoting, rest):
                        self._handle(merger, group, submit)
                    directories.append(directory.path)
                while in_flight:
                    in_flight.popleft().result()
            finally:
                for future in in_flight:
                    future.cancel()
        self.deleter.wait()
        # rdiff-backup's removal leaves no empty directory: the deepest first, a level at a time
        by_depth: dict[int, list[Path]] = {}
        for path in directories:
            by_depth.setdefault(len(path.parts), []).append(path)
        for depth in sorted(by_depth, reverse=True):
            self.deleter.map(remove_if_empty, by_depth[depth])

    def _handle(
        self,
        merger: PathMerger,
        group: PathIncrements,
        submit: Callable[[PathIncrements, list[int]], None] | None,
    ) -> None:
        """Delete ``group``'s increments older than the oldest kept session; merge those of
        times that are no kept session into the kept session before them."""
        oldest, current = self.kept[0], self.kept[-1]
        windows: set[int] = set()  # kept sessions followed by increments of other times
        self.progress.advance(len(group.files))
        remaining = []
        for inc in group.files:
            when = inc.time
            if when < oldest:
                self.deleter.delete(inc.path)  # nothing kept depends on it: any order
                continue
            remaining.append(inc)
            if when < current and when not in self.kept_set:
                windows.add(self.kept[bisect.bisect_right(self.kept, when) - 1])
            elif when in self.recheck:
                windows.add(when)
        group.files = remaining
        if not windows:
            return
        todo = sorted(windows)
        cheap = all(self._window_size(group, p) == 1 for p in todo) and not (windows & self.recheck)
        if submit is None or cheap:
            self._merge_all(merger, group, todo)  # renames only
        else:
            submit(group, todo)

    def _next_kept(self, previous: int) -> int:
        return self.kept[bisect.bisect_right(self.kept, previous)]

    def _window_size(self, group: PathIncrements, previous: int) -> int:
        following = self._next_kept(previous)
        return sum(1 for inc in group.files if previous <= inc.time < following)

    def _merge_all(self, merger: PathMerger, group: PathIncrements, windows: list[int]) -> None:
        for previous in windows:
            merger.merge(
                group, previous, self._next_kept(previous), recheck=previous in self.recheck
            )
