"""What ``rdiff-backup list increments [--size]`` shows, as data and as its exact text (§6.6).

Without a path the sessions are the root's ``increments.T.dir`` markers (a session that changed
nothing has none and is not shown, as in rdiff-backup), plus the current mirror. With a path
they are that path's own increments ``<path>.T.*``. The sizes are rdiff-backup's: per time, the
sum of the sizes of every increment file with that time under the path (its own increments and
its increment subtree); the current mirror's size is the sum of the lstat sizes of everything
under the mirror path (``rdiff-backup-data`` excluded); cumulative sizes add up from the newest.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rdb_format.errors import CorruptRepository, UsageError
from rdb_format.increments import parse_increment_name
from rdb_format.layout import DATA_DIR, Layout, open_repository
from rdb_format.metadata import path_key
from rdb_format.metadata_diff import list_metadata_files
from rdb_format.quoting import LONG_NAME_MARGIN, Quoting, name_max
from rdb_format.repository import read_state
from rdb_format.units import format_bytes
from rdb_increment.rebuild import IncrementFile, find_increments

__all__ = [
    "EntryType",
    "IncrementListing",
    "ListedIncrement",
    "SessionSize",
    "byte_summary",
    "entry_type",
    "format_listing",
    "format_parsable",
    "format_sizes",
    "increment_sizes",
    "list_increments",
    "parse_index",
]

EntryType = Literal["directory", "regular", "missing", "special"]


@dataclass(frozen=True)
class ListedIncrement:
    """One line of ``list increments``: a time, what the path was then, and the file's name."""

    time: int
    type: EntryType
    base: str  # the increment's on-disk file name (or the mirror path's), for display
    path: Path | None  # the increment file; None for the current mirror
    size: int = 0  # bytes on disk of this increment file (0 for the mirror)


@dataclass(frozen=True)
class IncrementListing:
    """The increments of one path, oldest first, and the current mirror."""

    index: tuple[bytes, ...]
    increments: tuple[ListedIncrement, ...]
    mirror: ListedIncrement


@dataclass(frozen=True)
class SessionSize:
    """One line of ``list increments --size``."""

    time: int
    size: int  # bytes of the increments at this time (the mirror's total for the current one)
    total_size: int  # the size needed to restore this session: mirror + all newer increments
    current: bool = False


def parse_index(path: str | bytes | None) -> tuple[bytes, ...]:
    """A path relative to the repository root as an index (``None``, ``""`` or ``.`` = root)."""
    if path is None:
        return ()
    raw = os.fsencode(path)
    parts = tuple(p for p in raw.split(b"/") if p not in (b"", b"."))
    if any(p == b".." for p in parts):
        raise UsageError(f"path {os.fsdecode(raw)!r} must stay inside the repository")
    if parts and parts[0] == DATA_DIR.encode():
        raise UsageError(f"path {os.fsdecode(raw)!r} is inside {DATA_DIR}; give a mirror path")
    return parts


def entry_type(path: Path) -> EntryType:
    """What is at ``path`` (lstat): "missing" also when a parent is not a directory."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            return "missing"
        raise
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "regular"
    return "special"


def _inc_type(inc: IncrementFile) -> EntryType:
    kind = inc.name.kind
    if kind == "dir":
        return "directory"
    if kind == "diff":
        return "regular"
    if kind == "missing":
        return "missing"
    return entry_type(inc.path)  # a snapshot: what it is on disk (regular or special)


def _mirror_path(
    layout: Layout, quoting: Quoting, index: tuple[bytes, ...], long_mirror: int | None = None
) -> Path:
    """Where ``index``'s mirror copy is (``long_filename_data/N`` for AlternateMirrorName N)."""
    if long_mirror is not None:
        return layout.long_filename_dir / str(long_mirror)
    return layout.root.joinpath(*(os.fsdecode(p) for p in quoting.quote_path(index)))


def _lsize(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0


def _open(repo: str | os.PathLike[str] | Layout) -> tuple[Layout, Quoting, int]:
    layout = repo if isinstance(repo, Layout) else open_repository(repo)
    state = read_state(layout)
    current = state.current_time
    if current is None:
        raise CorruptRepository(
            "no current_mirror marker: no finished backup session", path=layout.data_dir
        )
    return layout, state.quoting, current


def _long_names(
    layout: Layout, quoting: Quoting, index: tuple[bytes, ...], current: int
) -> tuple[set[int], int | None]:
    """The ``long_filename_data`` numbers ``index`` had in any session, and the current
    ``AlternateMirrorName`` (format.md §1.6). Only a name too long for an increment suffix
    can have one, so the metadata files are read only then (each up to ``index``: sorted).
    """
    if not index or len(quoting.quote(index[-1])) + LONG_NAME_MARGIN <= name_max(
        layout.increments_dir
    ):
        return set(), None
    numbers: set[int] = set()
    mirror: int | None = None
    for metadata in list_metadata_files(layout.data_dir, quoting):
        for record in metadata.records():
            key = path_key(record.path)
            if key < index:
                continue
            if key == index:
                number = record.alternate_mirror_name
                if number is None:
                    number = record.alternate_increment_name
                if number is not None:
                    numbers.add(number)
                if metadata.time == current:
                    mirror = record.alternate_mirror_name
            break
    return numbers, mirror


def _long_increments(layout: Layout, quoting: Quoting, numbers: set[int]) -> list[IncrementFile]:
    """The increments ``long_filename_data/N.T.*`` of the numbers ``numbers``."""
    found: list[IncrementFile] = []
    directory = layout.long_filename_dir
    for number in numbers:
        index = (str(number).encode(),)
        found += find_increments(layout, index, quoting=quoting, long_dir=directory)
    return found


def list_increments(
    repo: str | os.PathLike[str] | Layout, path: str | bytes | None = None
) -> IncrementListing:
    """The increments of ``path`` (relative to the repository root; None = the whole repository,
    i.e. the sessions) as rdiff-backup's ``list increments`` counts them."""
    layout, quoting, current = _open(repo)
    index = parse_index(path)
    numbers, long_mirror = _long_names(layout, quoting, index, current)
    incs = find_increments(layout, index, quoting=quoting) + _long_increments(
        layout, quoting, numbers
    )
    listed = tuple(
        ListedIncrement(
            inc.time,
            _inc_type(inc),
            inc.path.name,
            inc.path,
            _lsize(inc.path),
        )
        for inc in sorted(incs, key=lambda inc: (inc.time, inc.path.name))
    )
    mirror_path = _mirror_path(layout, quoting, index, long_mirror)
    mirror = ListedIncrement(current, entry_type(mirror_path), mirror_path.name, None)
    return IncrementListing(index, listed, mirror)


def _walk_sizes(
    top: Path, *, skip_data_dir: bool, include_top: bool = False
) -> Iterator[tuple[str, os.stat_result]]:
    """The name and lstat of every entry below ``top`` (and of ``top`` itself first, with
    ``include_top``), without following symlinks (plain strings: a Path per entry cost more
    than the walk)."""
    try:
        top_st = os.lstat(top)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:  # a long name's place: it lives elsewhere
            return
        raise
    if include_top:
        yield top.name, top_st
    if not stat.S_ISDIR(top_st.st_mode):
        return
    stack = [os.fspath(top)]
    first = True
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as listed:
                entries = list(listed)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if skip_data_dir and first and entry.name == DATA_DIR:
                continue
            st = entry.stat(follow_symlinks=False)
            yield entry.name, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
        first = False


def increment_sizes(
    repo: str | os.PathLike[str] | Layout, path: str | bytes | None = None
) -> list[SessionSize]:
    """Sizes per session for ``path`` (None = the whole repository), oldest first, the current
    mirror last, as rdiff-backup's ``list increments --size``."""
    layout, quoting, current = _open(repo)
    index = parse_index(path)
    numbers, long_mirror = _long_names(layout, quoting, index, current)
    by_time: dict[int, int] = {}
    for inc in find_increments(layout, index, quoting=quoting) + _long_increments(
        layout, quoting, numbers
    ):
        by_time[inc.time] = by_time.get(inc.time, 0) + _lsize(inc.path)
    tree = layout.increments_dir.joinpath(*(os.fsdecode(p) for p in quoting.quote_path(index)))
    for entry_name, st in _walk_sizes(tree, skip_data_dir=False):
        try:
            name = parse_increment_name(quoting.unquote(os.fsencode(entry_name)))
        except CorruptRepository:
            continue
        if name is not None:
            by_time[name.time] = by_time.get(name.time, 0) + st.st_size
    mirror_root = _mirror_path(layout, quoting, index, long_mirror)
    mirror_total = sum(
        st.st_size for _, st in _walk_sizes(mirror_root, skip_data_dir=not index, include_top=True)
    )
    sizes = [SessionSize(current, mirror_total, mirror_total, current=True)]
    cumulative = mirror_total
    for when in sorted(by_time, reverse=True):
        cumulative += by_time[when]
        sizes.append(SessionSize(when, by_time[when], cumulative))
    sizes.sort(key=lambda s: (s.time, s.current))
    return sizes


# ---- rdiff-backup's text -----------------------------------------------------------------


def _pretty(epoch: int) -> str:
    return time.asctime(time.localtime(epoch))


def byte_summary(count: int) -> str:
    """rdiff-backup's human byte count: ``1 byte``, ``134 bytes``, ``203 KB``, ``1.50 MB``
    (:func:`rdb_format.units.format_bytes`)."""
    return format_bytes(count)


def format_listing(listing: IncrementListing) -> str:
    """The text of ``rdiff-backup list increments`` (times in the local zone)."""
    lines = [f"Found {len(listing.increments)} increments:"]
    lines += [f"    {inc.base}   {_pretty(inc.time)}" for inc in listing.increments]
    lines.append(f"Current mirror: {_pretty(listing.mirror.time)}")
    return "\n".join(lines) + "\n"


def format_parsable(listing: IncrementListing) -> str:
    """``rdiff-backup --parsable-output list increments`` (API 200): ``<epoch> <type>`` lines."""
    entries = (*listing.increments, listing.mirror)
    return "".join(f"{inc.time} {inc.type}\n" for inc in entries)


def format_sizes(sizes: list[SessionSize]) -> str:
    """The table of ``rdiff-backup list increments --size``."""
    lines = [
        f"{'Time':^24} {'Size':^17} {'Cumulative size':^17}",
        f"{'':-^24} {'':-^17} {'':-^17}",
    ]
    for row in sizes:
        line = (
            f"{_pretty(row.time):<24} {byte_summary(row.size):>17} "
            f"{byte_summary(row.total_size):>17}"
        )
        lines.append(line + "  (current mirror)" if row.current else line)
    return "\n".join(lines) + "\n"
