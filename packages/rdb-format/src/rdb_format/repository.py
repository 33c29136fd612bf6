"""Repository state read from ``rdiff-backup-data``: markers, sessions, quoting (§5.2, §3.6)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from rdb_format.atomic import is_temp_name, remove_durable, write_atomic
from rdb_format.errors import CorruptRepository, RepositoryNotFound, UnfinishedSession
from rdb_format.increments import IncrementKind, IncrementName, parse_increment_name
from rdb_format.layout import CURRENT_MIRROR, ERROR_LOG, INCREMENTS, MIRROR_METADATA, Layout
from rdb_format.quoting import Quoting, read_quoting

_PID_CONTENT = re.compile(rb"PID (\d+)\n?", re.ASCII)
_MAX_MARKER_SIZE = 4096


@dataclass(frozen=True)
class DataEntry:
    """A file directly in rdiff-backup-data whose unquoted name is increment-style."""

    path: Path  # the on-disk (quoted) path
    name: IncrementName  # parsed from the unquoted name


@dataclass(frozen=True)
class Marker:
    """A ``current_mirror.<T>.data`` session marker; ``pid`` is None for an empty file."""

    time: int
    pid: int | None
    path: Path


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (kill(pid, 0))."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def read_marker_pid(path: Path) -> int | None:
    """The PID in a marker file (``PID <n>\\n``); None if empty; CorruptRepository if garbled."""
    with open(path, "rb") as stream:
        content = stream.read(_MAX_MARKER_SIZE + 1)
    if not content:
        return None
    match = _PID_CONTENT.fullmatch(content)
    if match is None:
        raise CorruptRepository("session marker does not hold 'PID <number>'", path=path)
    return int(match.group(1))


def list_data_dir(layout: Layout, quoting: Quoting) -> list[DataEntry]:
    """Increment-style entries directly in rdiff-backup-data, sorted by time.

    Names are unquoted first; temp files and unknown names are ignored.
    """
    entries: list[DataEntry] = []
    data_dir = os.fsencode(layout.data_dir)
    for raw in os.listdir(data_dir):
        if is_temp_name(raw):
            continue
        name = quoting.unquote(raw, path=layout.data_dir)
        parsed = parse_increment_name(name)
        if parsed is not None:
            entries.append(DataEntry(layout.data_dir / os.fsdecode(raw), parsed))
    entries.sort(key=lambda entry: entry.name)
    return entries


@dataclass(frozen=True)
class RepositoryState:
    """What ``rdiff-backup-data`` says about the repository, read in one pass."""

    layout: Layout
    quoting: Quoting
    markers: tuple[Marker, ...]  # oldest first; normally exactly one
    metadata: tuple[DataEntry, ...]  # mirror_metadata.*, oldest first
    root_increment_times: tuple[int, ...]  # increments.T.dir: what `list increments` counts
    entries: tuple[DataEntry, ...]  # every increment-style entry, oldest first
    increments_empty: bool  # increments/ missing or empty

    @property
    def is_new(self) -> bool:
        """rdiff-backup's "new repository": no increments yet, so no regress check (§5.2)."""
        return self.increments_empty

    @property
    def unfinished(self) -> bool:
        """Two markers: a session was interrupted and must be regressed."""
        return len(self.markers) == 2

    @property
    def failed_initial(self) -> bool:
        """A first backup died: no marker, at most one error_log and one mirror_metadata."""
        if self.markers:
            return False
        logs = [e for e in self.entries if e.name.base == ERROR_LOG.encode()]
        return len(logs) <= 1 and len(self.metadata) <= 1

    @property
    def current_time(self) -> int | None:
        """The last completed session: the single marker, or the older of two."""
        return self.markers[0].time if self.markers else None

    @property
    def failed_time(self) -> int | None:
        """The interrupted session's time when there are two markers."""
        return self.markers[1].time if self.unfinished else None

    @property
    def sessions(self) -> tuple[int, ...]:
        """Restorable session times, oldest first (§3.6), up to the current mirror time.

        The union of the current mirror time, the root ``increments.T.dir`` times and the
        ``mirror_metadata`` times. Sessions without root markers are included.
        """
        current = self.current_time
        if current is None:
            return ()
        times = {current, *self.root_increment_times, *(e.name.time for e in self.metadata)}
        return tuple(sorted(t for t in times if t <= current))

    def check_finished(self) -> None:
        """Raise unless exactly one marker describes a completed session (§5.2).

        New repositories (empty increments) pass. Two markers raise UnfinishedSession; none
        (with increments) or more than two raise CorruptRepository.
        """
        data_dir = self.layout.data_dir
        if len(self.markers) > 2:
            raise CorruptRepository(
                f"{len(self.markers)} current_mirror markers (at most 2 are possible)",
                path=data_dir,
            )
        if self.unfinished:
            failed = self.markers[1]
            who = f" (pid {failed.pid})" if failed.pid is not None else ""
            raise UnfinishedSession(
                f"the backup session{who} started after the last complete one did not finish; "
                "run the regress command first",
                path=data_dir,
            )
        if not self.markers and not self.is_new:
            raise CorruptRepository(
                "no current_mirror marker but increments exist; cannot tell the current session",
                path=data_dir,
            )


def read_state(layout: Layout, *, allow_duplicate_timestamps: bool = False) -> RepositoryState:
    """Read markers, metadata times, root increments and quoting from rdiff-backup-data.

    Two ``mirror_metadata`` files at the same epoch second raise CorruptRepository unless
    ``allow_duplicate_timestamps`` (rdiff-backup's rule, §1.3).
    """
    if not layout.data_dir.is_dir():
        raise RepositoryNotFound(
            "has no rdiff-backup-data directory; give the backup destination", path=layout.root
        )
    quoting = read_quoting(layout.data_dir)
    entries = list_data_dir(layout, quoting)
    markers: list[Marker] = []
    metadata: list[DataEntry] = []
    roots: set[int] = set()
    for entry in entries:
        name = entry.name
        if name.base == CURRENT_MIRROR.encode() and name.kind == "data" and not name.compressed:
            markers.append(Marker(name.time, read_marker_pid(entry.path), entry.path))
        elif name.base == MIRROR_METADATA.encode() and name.kind in ("snapshot", "diff"):
            if metadata and metadata[-1].name.time == name.time and not allow_duplicate_timestamps:
                raise CorruptRepository(
                    f"duplicate timestamp: {metadata[-1].path.name!r} is the same session",
                    path=entry.path,
                )
            metadata.append(entry)
        elif name.base == INCREMENTS.encode() and name.kind == "dir":
            roots.add(name.time)
    if len({m.time for m in markers}) != len(markers):
        raise CorruptRepository(
            "two current_mirror markers for the same time", path=layout.data_dir
        )
    try:
        with os.scandir(layout.increments_dir) as listing:
            increments_empty = not any(True for _ in listing)
    except (FileNotFoundError, NotADirectoryError):
        increments_empty = True
    return RepositoryState(
        layout=layout,
        quoting=quoting,
        markers=tuple(markers),
        metadata=tuple(metadata),
        root_increment_times=tuple(sorted(roots)),
        entries=tuple(entries),
        increments_empty=increments_empty,
    )


def data_file_name(
    quoting: Quoting,
    base: str,
    time: int,
    kind: IncrementKind,
    *,
    compressed: bool = False,
    compatible: bool = False,
    utc_offset: int | None = None,
) -> bytes:
    """The quoted on-disk name of ``<base>.<T>.<kind>[.gz]`` in rdiff-backup-data.

    Time strings use the compatible ``-`` form when asked or when ``:`` is quoted.
    """
    name = IncrementName(base.encode("ascii"), time, kind, compressed).format(
        compatible=compatible or quoting.quotes_colon, utc_offset=utc_offset
    )
    return quoting.quote(name)


def write_marker(
    layout: Layout,
    quoting: Quoting,
    time: int,
    *,
    pid: int | None = None,
    compatible: bool = False,
    utc_offset: int | None = None,
) -> Marker:
    """Durably write ``current_mirror.<T>.data`` holding ``PID <pid>\\n`` (default: ours)."""
    pid = os.getpid() if pid is None else pid
    raw = data_file_name(
        quoting, CURRENT_MIRROR, time, "data", compatible=compatible, utc_offset=utc_offset
    )
    path = layout.data_dir / os.fsdecode(raw)
    write_atomic(path, b"PID %d\n" % pid)
    return Marker(time, pid, path)


def remove_marker(marker: Marker) -> None:
    """Durably delete a marker (the commit point of a session, or of a regress)."""
    remove_durable(marker.path)
