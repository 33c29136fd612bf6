"""Every increment file of a repository, grouped by the mirror path it belongs to.

The increment tree (``rdiff-backup-data/increments``) has the mirror's shape: the increments of
``a/b`` are ``increments/a/b.<T>.<kind>[.gz]``. Over-long names keep theirs in
``long_filename_data/<N>.<T>.<kind>[.gz]`` and the root's are ``increments.<T>.dir`` in the data
dir. :func:`walk_increments` lists each directory once (one ``scandir``), so a walk costs one
pass over the tree, and yields directories children first, so a caller that empties a
directory can remove it after its children (:func:`remove_if_empty`), as rdiff-backup's
removal does.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rdb_format.atomic import is_temp_name
from rdb_format.errors import CorruptRepository
from rdb_format.increments import INCREMENT_KINDS, parse_increment_name
from rdb_format.layout import INCREMENTS, Layout
from rdb_format.metadata import path_key
from rdb_format.metadata_diff import records_at
from rdb_format.quoting import Quoting
from rdb_format.timestamps import try_parse_timestring
from rdb_increment.rebuild import IncrementFile

__all__ = [
    "IncrementDirectory",
    "IncrementTimes",
    "LongNameMirrors",
    "PathIncrements",
    "group_increments",
    "remove_if_empty",
    "root_increments",
    "walk_increments",
]


@dataclass
class PathIncrements:
    """The increments of one path, oldest first.

    ``mirror`` is the path of its mirror copy when the place tells it (the increment tree and
    the root); ``long_name`` is N for ``long_filename_data/N.*`` (the mirror copy is then
    found through the metadata's ``AlternateMirrorName``/``AlternateIncrementName``).
    """

    directory: Path
    base: bytes  # unquoted; b"increments" for the root, b"<N>" for a long name
    files: list[IncrementFile] = field(default_factory=list)
    mirror: Path | None = None
    long_name: int | None = None


@dataclass
class IncrementDirectory:
    """One directory of increment files: its on-disk names, grouped on demand."""

    path: Path
    mirror_dir: Path | None  # the matching mirror directory (None: long_filename_data)
    names: list[bytes]  # every non-directory entry, as on disk (quoted)
    entries: int  # every entry, directories included

    def groups(
        self, quoting: Quoting, names: Iterable[bytes] | None = None
    ) -> list[PathIncrements]:
        """The increments among ``names`` (default: all) grouped by path."""
        chosen = self.names if names is None else names
        return group_increments(self.path, chosen, quoting, mirror_dir=self.mirror_dir)


class IncrementTimes:
    """The time of an increment-style name, each distinct time string parsed once (a
    repository has few of them and many files: this is the hot loop of a removal)."""

    _KINDS = frozenset(kind.encode() for kind in INCREMENT_KINDS if kind != "data")

    def __init__(self, quoting: Quoting) -> None:
        self.quoting = quoting
        self._stamps: dict[bytes, int | None] = {}

    def of(self, raw: bytes, directory: Path) -> int | None:
        """The time of the on-disk name ``raw``; None for what ``group_increments`` skips."""
        if is_temp_name(raw):
            return None
        try:
            name = self.quoting.unquote(raw, path=directory)
        except CorruptRepository:
            return None
        parts = name.split(b".")
        if parts[-1] == b"gz":
            parts.pop()
        if len(parts) < 3 or parts[-1] not in self._KINDS:
            return None
        stamp = parts[-2]
        try:
            return self._stamps[stamp]
        except KeyError:
            value = self._stamps[stamp] = try_parse_timestring(stamp)
            return value


def group_increments(
    directory: Path,
    names: Iterable[bytes],
    quoting: Quoting,
    *,
    mirror_dir: Path | None = None,
    only_base: bytes | None = None,
) -> list[PathIncrements]:
    """Group the increment-style ``names`` (on-disk, quoted) of ``directory`` by base.

    Temp files, ``.data`` names and names that do not parse are left out (nothing touches
    them). ``mirror_dir`` is the mirror directory matching ``directory``; ``only_base`` keeps
    one base (the root's ``increments`` in the data dir).
    """
    groups: dict[bytes, PathIncrements] = {}
    for raw in names:
        if is_temp_name(raw):
            continue
        try:
            parsed = parse_increment_name(quoting.unquote(raw, path=directory))
        except CorruptRepository:
            continue
        if parsed is None or parsed.kind == "data":
            continue
        if only_base is not None and parsed.base != only_base:
            continue
        group = groups.get(parsed.base)
        if group is None:
            group = PathIncrements(directory, parsed.base)
            if mirror_dir is not None:
                group.mirror = mirror_dir / os.fsdecode(quoting.quote(parsed.base))
            elif parsed.base.isdigit():
                group.long_name = int(parsed.base)
            groups[parsed.base] = group
        group.files.append(IncrementFile(parsed, directory / os.fsdecode(raw)))
    for group in groups.values():
        group.files.sort()
    return list(groups.values())


def root_increments(layout: Layout, quoting: Quoting) -> PathIncrements:
    """The root's ``increments.<T>.dir`` markers in the data dir."""
    names = os.listdir(os.fsencode(layout.data_dir))
    base = INCREMENTS.encode()
    found = group_increments(layout.data_dir, names, quoting, only_base=base)
    group = found[0] if found else PathIncrements(layout.data_dir, base)
    group.mirror = layout.root
    return group


def _scan(directory: Path) -> tuple[list[bytes], list[Path], int]:
    files: list[bytes] = []
    subdirs: list[Path] = []
    count = 0
    try:
        with os.scandir(os.fsencode(directory)) as listing:
            for entry in listing:
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(directory / os.fsdecode(entry.name))
                else:
                    files.append(entry.name)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return files, subdirs, count


def walk_increments(layout: Layout) -> Iterator[IncrementDirectory]:
    """Every directory of the increment tree, children before their parent, then
    ``long_filename_data``, each listed once."""
    top = layout.increments_dir
    # iterative post-order: (directory, its mirror directory, children already pushed?)
    stack: list[tuple[Path, Path, bool]] = [(top, layout.root, False)]
    pending: dict[Path, tuple[list[bytes], int]] = {}
    while stack:
        directory, mirror_dir, expanded = stack.pop()
        if expanded:
            names, count = pending.pop(directory)
            yield IncrementDirectory(directory, mirror_dir, names, count)
            continue
        names, subdirs, count = _scan(directory)
        pending[directory] = (names, count)
        stack.append((directory, mirror_dir, True))
        for sub in subdirs:
            stack.append((sub, mirror_dir / sub.name, False))
    long_dir = layout.long_filename_dir
    names, _, count = _scan(long_dir)
    if names:
        yield IncrementDirectory(long_dir, None, names, count)


def remove_if_empty(directory: Path) -> bool:
    """rmdir ``directory`` if it is empty; False if it holds anything (or is gone)."""
    try:
        os.rmdir(directory)
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.EBUSY):
            return False
        raise
    return True


class LongNameMirrors:
    """The mirror copy of each ``long_filename_data/N`` group (thread-safe, read lazily).

    ``long_filename_data/N`` itself when it exists (``AlternateMirrorName N``), else the mirror
    path whose record at session ``current`` says ``AlternateIncrementName N``; None when no
    current file has that number.
    """

    def __init__(self, layout: Layout, quoting: Quoting, current: int) -> None:
        self.layout = layout
        self.quoting = quoting
        self.current = current
        self._found: dict[int, Path] | None = None
        self._lock = threading.Lock()

    def of(self, group: PathIncrements) -> Path | None:
        if group.mirror is not None or group.long_name is None:
            return group.mirror
        own = self.layout.long_filename_dir / str(group.long_name)
        if os.path.lexists(own):
            return own
        with self._lock:
            if self._found is None:
                found: dict[int, Path] = {}
                data_dir = self.layout.data_dir
                for record in records_at(data_dir, self.current, quoting=self.quoting):
                    if record.alternate_increment_name is not None:
                        parts = self.quoting.quote_path(path_key(record.path))
                        mirror = self.layout.root.joinpath(*map(os.fsdecode, parts))
                        found[record.alternate_increment_name] = mirror
                self._found = found
        return self._found.get(group.long_name)
