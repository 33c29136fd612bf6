"""rdb-stats' core: read a repository's statistics over a time range into a typed report.

Never prints, exits or imports typer/rich; reports progress through
:class:`rdb_clikit.protocol.Progress` and problems as warnings in the result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rdb_clikit.protocol import NullProgress, Progress
from rdb_format.error_log import iter_error_log
from rdb_format.errors import CorruptRepository, UnfinishedSession, UsageError
from rdb_format.exitcodes import ExitCode
from rdb_format.layout import ERROR_LOG, FILE_STATISTICS, SESSION_STATISTICS, open_repository
from rdb_format.repository import read_state
from rdb_format.statistics import (
    SESSION_STATISTICS_FIELDS,
    iter_file_statistics,
    read_session_statistics,
)
from rdb_format.timestamps import format_timestring, resolve_time_spec
from rdb_stats.growth import DiskUsage, measure_increments, measure_mirror
from rdb_stats.tops import METRICS, Metric, TopAccumulator, TopEntry

#: Fields averaged and summed: the session_statistics fields but the start and end times
#: (as ``rdiff-backup calculate``), plus LoggedErrors (see SessionReport.logged_errors).
SUMMED_FIELDS: tuple[str, ...] = (
    *(name for name in SESSION_STATISTICS_FIELDS if name not in ("StartTime", "EndTime")),
    "LoggedErrors",
)


@dataclass(frozen=True)
class StatsOptions:
    """What to report. Time specs are rdb_format's (``now``, ``3D``, ISO dates, ``5B``...)."""

    begin_time: str | None = None  # sessions at or after this time
    end_time: str | None = None  # sessions at or before this time
    minimum_ratio: float = 0.05  # top entries: at least this share of a session's total
    null_separator: bool = False  # file_statistics and error_log records end in NUL
    file_statistics: bool = True  # read file_statistics for the top files and directories
    disk_usage: bool = True  # measure the mirror and the increments on disk
    now: int | None = None  # "now" for relative time specs (default: the clock)


@dataclass(frozen=True)
class SessionReport:
    """One backup session."""

    time: int
    #: the session_statistics values present in the file (rdiff-backup's names); empty if none
    statistics: Mapping[str, int | float]
    statistics_complete: bool
    error_log_entries: int | None  # None: no error_log file
    error_types: Mapping[str, int]  # "UpdateError" -> count
    file_statistics_lines: int | None  # None: not read or missing
    increment_bytes: int | None  # on disk, increments named with this time (keep T restorable)
    increment_files: int | None
    cumulative_bytes: int | None  # mirror + every increment at or after this time

    @property
    def logged_errors(self) -> int | None:
        """Errors of the session: error_log entries (the statistics' own count stays 0 for
        errors rdiff-backup logs, reference §4.1/§4.3), else the statistics' Errors."""
        if self.error_log_entries is not None:
            return self.error_log_entries
        value = self.statistics.get("Errors")
        return int(value) if value is not None else None

    def value(self, name: str) -> int | float | None:
        """A SUMMED_FIELDS value, or None when unknown."""
        if name == "LoggedErrors":
            return self.logged_errors
        return self.statistics.get(name)


@dataclass(frozen=True)
class StatsReport:
    """Everything rdb-stats reports about one repository over one time range."""

    repository: Path
    begin: int | None
    end: int | None
    current_time: int | None
    sessions: tuple[SessionReport, ...]
    averages: Mapping[str, float | None]  # over the sessions that have the field
    totals: Mapping[str, int | float | None]
    counted: Mapping[str, int]  # how many sessions had each field
    minimum_ratio: float
    top: Mapping[Metric, tuple[TopEntry, ...]] | None  # None: file_statistics not read
    mirror_bytes: int | None
    mirror_entries: int | None
    increment_bytes: int | None  # all increments on disk (whatever their time)
    warnings: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> ExitCode:
        """WARNINGS (3) when anything was missing or damaged, else OK."""
        return ExitCode.WARNINGS if self.warnings else ExitCode.OK


def _label(when: int) -> str:
    return format_timestring(when, utc_offset=0)


def _cutoff(values: Mapping[str, int | float], ratio: float) -> tuple[float, float, float] | None:
    try:
        changed = values["NewFiles"] + values["ChangedFiles"] + values["DeletedFiles"]
        return (
            ratio * changed,
            ratio * values["SourceFileSize"],
            ratio * values["IncrementFileSize"],
        )
    except KeyError:
        return None


def _count_errors(
    path: Path, null_separator: bool, session: str, warn: Callable[[str], None]
) -> tuple[int, dict[str, int]]:
    """The entries of an error_log and their number per type; a malformed entry or a read
    error (the entries before it are counted) is a warning."""
    types: dict[str, int] = {}
    count = 0

    def damaged(problem: str) -> None:
        warn(f"{session}: {problem}")

    try:
        for entry in iter_error_log(
            path, name=path.name, null_separator=null_separator, on_damage=damaged
        ):
            count += 1
            types[entry.kind] = types.get(entry.kind, 0) + 1
    except CorruptRepository as error:  # it cannot be opened
        damaged(str(error))
    return count, types


def _session_values(
    path: Path, session: str, warn: Callable[[str], None]
) -> tuple[dict[str, int | float], bool]:
    """The values a session_statistics file holds (by its names) and whether it is complete;
    what is wrong with it is one warning."""
    try:
        parsed = read_session_statistics(path, tolerant=True)
    except CorruptRepository as error:  # it cannot be opened
        warn(f"{session}: {error}")
        return {}, False
    problems = list(parsed.damage)
    if parsed.missing:
        problems.append(f"truncated: no {', '.join(parsed.missing)}")
    if problems:
        warn(f"{session}: {path.name}: {'; '.join(problems)}")
    return parsed.named_values, parsed.complete


def _add_file_statistics(
    tops: TopAccumulator,
    path: Path,
    cutoff: tuple[float, float, float] | None,
    session: str,
    warn: Callable[[str], None],
) -> int | None:
    """Add a file_statistics file to the top report; returns its number of rows (bad ones
    included). A file cut short counts up to the cut; its problems are warnings."""
    reader = iter_file_statistics(
        path,
        name=path.name,
        allow_truncated=True,
        on_truncated=lambda problem: warn(f"{session}: {problem}"),
        skip_bad_rows=True,
    )
    try:
        tops.add_session(reader.tuples(), cutoff)
    except CorruptRepository as error:  # it cannot be opened
        warn(f"{session}: {error}")
        return None
    if reader.bad_rows:
        warn(f"{session}: {path.name}: {reader.bad_rows} lines do not parse")
    return reader.rows_read + reader.bad_rows


def collect(
    repository: str | os.PathLike[str],
    options: StatsOptions | None = None,
    progress: Progress | None = None,
) -> StatsReport:
    """Read the repository's statistics for the sessions in the options' time range.

    RepositoryNotFound (exit 10) if it is not a repository, TimeSpecError (2) for a bad time
    spec, CorruptRepository (13) for an impossible marker state. Missing or damaged
    statistics files are warnings in the result (exit 3), never exceptions.
    """
    options = options or StatsOptions()
    progress = progress or NullProgress()
    if not 0 <= options.minimum_ratio <= 1:
        raise UsageError(f"--minimum-ratio must be between 0 and 1, not {options.minimum_ratio}")
    layout = open_repository(repository)
    state = read_state(layout, allow_duplicate_timestamps=True)
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        progress.warning(message)

    try:
        state.check_finished()
    except UnfinishedSession as error:
        warn(f"{error} (its statistics are left out)")
    all_sessions = state.sessions
    if not all_sessions:
        warn(f"{layout.root}: no completed backup session")
    now = int(time.time()) if options.now is None else options.now
    begin = (
        resolve_time_spec(options.begin_time, now=now, sessions=all_sessions)
        if options.begin_time is not None
        else None
    )
    end = (
        resolve_time_spec(options.end_time, now=now, sessions=all_sessions)
        if options.end_time is not None
        else None
    )
    chosen = [
        t for t in all_sessions if (begin is None or t >= begin) and (end is None or t <= end)
    ]

    files: dict[tuple[bytes, int], Path] = {}
    wanted = {SESSION_STATISTICS.encode(), FILE_STATISTICS.encode(), ERROR_LOG.encode()}
    for entry in state.entries:
        inc = entry.name
        if inc.base in wanted and inc.kind == "data":
            key = (inc.base, inc.time)
            if key in files:
                warn(f"{entry.path}: a second {inc.base.decode()} file for the same session")
                continue
            files[key] = entry.path

    usage: DiskUsage | None = None
    if options.disk_usage:
        progress.start("measuring the mirror and increments", None)
        usage = DiskUsage()
        measure_mirror(layout.root, usage)
        measure_increments(state, usage)
        for problem in usage.unreadable:
            warn(f"cannot read {problem}")

    cumulative: dict[int, int] = {}
    if usage is not None:
        running = usage.mirror_bytes
        for when in sorted({*all_sessions, *usage.increments}, reverse=True):
            running += usage.increments.get(when, [0, 0])[0]
            cumulative[when] = running

    tops = TopAccumulator(options.minimum_ratio) if options.file_statistics else None
    reports: list[SessionReport] = []
    progress.start("reading session statistics", len(chosen))
    for when in chosen:
        label = _label(when)
        values: dict[str, int | float] = {}
        complete = False
        stats_path = files.get((SESSION_STATISTICS.encode(), when))
        if stats_path is None:
            warn(f"session {label}: no {SESSION_STATISTICS} file")
        else:
            values, complete = _session_values(stats_path, f"session {label}", warn)

        log_entries: int | None = None
        log_types: dict[str, int] = {}
        log_path = files.get((ERROR_LOG.encode(), when))
        if log_path is not None:
            log_entries, log_types = _count_errors(
                log_path, options.null_separator, f"session {label}", warn
            )

        lines: int | None = None
        if tops is not None:
            fs_path = files.get((FILE_STATISTICS.encode(), when))
            if fs_path is None:
                warn(f"session {label}: no {FILE_STATISTICS} file (the top report leaves it out)")
            else:
                lines = _add_file_statistics(
                    tops, fs_path, _cutoff(values, options.minimum_ratio), f"session {label}", warn
                )

        slot = usage.increments.get(when, [0, 0]) if usage is not None else None
        reports.append(
            SessionReport(
                time=when,
                statistics=values,
                statistics_complete=complete,
                error_log_entries=log_entries,
                error_types=log_types,
                file_statistics_lines=lines,
                increment_bytes=slot[0] if slot is not None else None,
                increment_files=slot[1] if slot is not None else None,
                cumulative_bytes=cumulative.get(when) if usage is not None else None,
            )
        )
        progress.advance()

    averages: dict[str, float | None] = {}
    totals: dict[str, int | float | None] = {}
    counted: dict[str, int] = {}
    for name in SUMMED_FIELDS:
        present = [v for v in (r.value(name) for r in reports) if v is not None]
        counted[name] = len(present)
        totals[name] = sum(present) if present else None
        averages[name] = sum(present) / len(present) if present else None

    return StatsReport(
        repository=layout.root,
        begin=begin,
        end=end,
        current_time=state.current_time,
        sessions=tuple(reports),
        averages=averages,
        totals=totals,
        counted=counted,
        minimum_ratio=options.minimum_ratio,
        top={m: tuple(tops.top(m)) for m in METRICS} if tops is not None else None,
        mirror_bytes=usage.mirror_bytes if usage is not None else None,
        mirror_entries=usage.mirror_entries if usage is not None else None,
        increment_bytes=(
            sum(v[0] for v in usage.increments.values()) if usage is not None else None
        ),
        warnings=tuple(warnings),
    )
