"""Restore ``REPO[/PATH]`` as of a session into TARGET (reference §3.6).

The metadata at the session is walked in order (streaming: memory does not grow with the number
of files) together with the repository directories it names (:class:`SourceTree`); the
:class:`TreeWriter` writes TARGET, rebuilding each regular file in its thread pool from the
mirror copy and the reverse diffs: in C, many per call (:func:`_plain_copy` says how), or the
general way (:func:`rebuild_into`).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import cast

from rdb_clikit.protocol import NullProgress, Progress
from rdb_format.errors import CorruptRepository, RdbError, UsageError
from rdb_format.timestamps import format_timestring
from rdb_restore.content import Digest, fd_writer, produce, rebuild_into
from rdb_restore.repo import Entry, Index, Repo, open_repo, parse_increment_path, show
from rdb_restore.sources import Place, SourceTree
from rdb_restore.target import refuse_empty, refuse_repository
from rdb_restore.writer import (
    PlainCopy,
    Rebuild,
    RestoreOptions,
    TreeWriter,
    WriteCounts,
    check_content,
    default_workers,
)

SPECIAL_TYPES = ("sym", "fifo", "sock", "dev")


def limit_heap_growth() -> None:
    """Keep glibc from growing the heap with the 1 MiB buffers librsync, zlib and the reads
    use (its dynamic mmap threshold otherwise lets a restore's RSS climb to ~300 MiB): fix
    the threshold at 128 KiB so big buffers are mapped and returned on free. Process-wide;
    the command calls it, a library caller may. No effect off glibc."""
    import ctypes

    try:
        # the process's own symbols, libc's among them (ctypes.util.find_library would run
        # ldconfig in a subprocess: 7 ms of every run)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, 128 * 1024)


@dataclass
class RestoreResult:
    """What a restore did; ``bad`` holds one line per file that could not be restored."""

    time: int
    source: str
    target: str
    entries: int = 0
    files: int = 0
    bytes: int = 0
    bad: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    received: int | None = None  # bytes that crossed the link (a remote restore)


def _fill_from(
    tree: SourceTree,
    entry: Entry,
    context: object,
    payload: object,
    out: int,
    label: str,
    scratch: int,
) -> tuple[int, str]:
    """Rebuild ``entry`` from the repository into ``out`` (a worker thread), its intermediate
    versions in ``scratch``: TARGET's file system, never the temporary directory."""
    del payload
    sources = tree.sources(cast(Place, context), entry.index, entry.record)
    try:
        return rebuild_into(sources.base, sources.diffs, out, label, entry.record.size, scratch)
    finally:
        sources.close()


def _plain_copy(tree: SourceTree, entry: Entry, context: object) -> PlainCopy | Rebuild | None:
    """How the writer's runs make ``entry`` in C: copied as it is, or rebuilt; or None (the
    general way: :func:`_fill_from`)."""
    return tree.plain_copy(cast(Place, context), entry.index, entry.record)


def _close_place(context: object) -> None:
    cast(Place, context).close()


def session_of(location: str, at: str | None, *, now: int | None = None) -> tuple[Repo, int]:
    """The opened repository of ``location`` (``REPO[/PATH]`` or an increment file, whose
    time it then is) and the session time ``at`` means (relative to ``now``)."""
    ref = parse_increment_path(location) if "rdiff-backup-data" in location else None
    if ref is not None:
        if at is not None:
            raise UsageError("an increment file names its own time; do not give --at with it")
        repo = open_repo(ref.location)
        repo.sub = ref.index
        return repo, repo.resolve(str(ref.time))
    repo = open_repo(location)
    return repo, repo.resolve(at, now=now)


def first_entry(repo: Repo, when: int, entries: Iterator[Entry]) -> Entry:
    """The entry of the repository's sub-path itself, which ``entries`` must start with."""
    sub = repo.sub
    first = next(entries, None)
    if first is None or first.index != sub:
        raise UsageError(
            f"{show(sub)!r} is not in the backup of {format_timestring(when)} "
            f"({os.fsdecode(repo.layout.root)})"
        )
    return first


def write_entries(
    writer: TreeWriter,
    target: str,
    first: tuple[Entry, object],
    rest: Iterator[tuple[Entry, object]],
    *,
    context_of: Callable[[Index], object],
    descend: Callable[[object, bytes], object],
    where: str,
) -> None:
    """Write the tree (or the one file) whose entries, in metadata order, are ``first`` and
    then ``rest``, each with the payload :data:`writer.fill` gets for it, into ``target``.

    ``context_of(index)`` and ``descend(context, name)`` give each directory the source
    context its files are filled from (a local restore: the repository's directories).
    ``where`` names the metadata in an error about the order of the entries.
    """
    entry, payload = first
    key = entry.index
    if entry.record.type != "dir":
        holder, name = writer.single(target, key, context_of(key[:-1]))
        if entry.record.type == "reg":
            writer.file(holder, name, entry, payload)
        else:
            writer.special(holder, name, entry)
        writer.pop(holder)
        return
    stack = [writer.root(target, key, entry, context_of(key))]
    for entry, payload in rest:
        if writer.fatal is not None:
            break
        key = entry.index
        top = stack[-1]
        while not (len(key) > len(top.key) and key[: len(top.key)] == top.key):
            writer.pop(stack.pop())
            if not stack:
                break
            top = stack[-1]
        if not stack or len(key) != len(top.key) + 1:
            raise CorruptRepository(
                f"metadata record {show(key)!r} has no directory record above it", path=where
            )
        name = key[-1]
        kind = entry.record.type
        if kind == "reg":
            writer.file(top, name, entry, payload)
        elif kind == "dir":
            stack.append(writer.directory(top, name, entry, descend(top.context, name)))
        else:
            writer.special(top, name, entry)
    while stack:
        writer.pop(stack.pop())


def summarize(result: RestoreResult, counts: WriteCounts) -> RestoreResult:
    """``result`` with what the writer did; CorruptRepository if a file was left out."""
    result.entries, result.files, result.bytes = counts.entries, counts.files, counts.bytes
    result.bad, result.warnings = counts.bad, counts.warnings
    if result.bad:
        raise CorruptRepository(
            f"{len(result.bad)} file(s) could not be restored; the first: {result.bad[0]}",
            path=None,
        )
    return result


def restore(
    location: str,
    target: str,
    *,
    at: str | None = None,
    options: RestoreOptions | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore ``location`` (``REPO``, ``REPO/sub/path`` or an increment file) as of ``at``
    (a time spec; default now) into ``target`` (``-``: a regular file to stdout)."""
    repo, when = session_of(location, at)
    with repo:
        runner = _Restorer(repo, when, location, target, options or RestoreOptions(), progress)
        return runner.run()


class _Restorer:
    def __init__(
        self,
        repo: Repo,
        when: int,
        location: str,
        target: str,
        options: RestoreOptions,
        progress: Progress | None,
    ) -> None:
        self.repo = repo
        self.when = when
        self.target = target
        self.options = options
        self.progress = progress or NullProgress()
        self.result = RestoreResult(when, location, target)

    def _label(self, index: Index) -> str:
        return os.path.join(os.fsdecode(self.repo.layout.root), show(index))

    def run(self) -> RestoreResult:
        entries = self.repo.entries_at(self.when)
        first = first_entry(self.repo, self.when, entries)
        tree = SourceTree(self.repo, self.when)
        self.progress.start(f"restoring {format_timestring(self.when)}", None)
        try:
            if self.target == "-":
                self._to_stdout(tree, first)
                return self.result
            refuse_empty(self.target)
            refuse_repository(self.target, os.fsdecode(os.fspath(self.repo.layout.root)))
            writer = TreeWriter(
                fill=partial(_fill_from, tree),
                find_copy=partial(_plain_copy, tree),
                close_context=_close_place,
                label=self._label,
                progress=self.progress,
                options=self.options,
            )
            with writer:
                write_entries(
                    writer,
                    self.target,
                    (first, None),
                    ((entry, None) for entry in entries),
                    context_of=tree.place_of,
                    descend=lambda place, name: tree.descend(cast(Place, place), name),
                    where=os.fsdecode(self.repo.layout.data_dir),
                )
        finally:
            tree.close()
            self.progress.finish()
        return summarize(self.result, writer.counts)

    # ---- stdout ------------------------------------------------------------------------------

    def _to_stdout(self, tree: SourceTree, first: Entry) -> None:
        if first.record.type != "reg":
            raise UsageError(
                f"{show(first.index)!r} is a {_kind_name(first.record.type)} at "
                f"{format_timestring(self.when)}; only a regular file can be written to stdout"
            )
        sub = self.repo.sub
        parent = tree.place_of(sub[:-1])
        try:
            sources = tree.sources(parent, sub, first.record)
        finally:
            parent.close()
        try:
            sys.stdout.flush()
            digest = Digest(fd_writer(sys.stdout.fileno(), "stdout"))
            try:
                produce(sources.base, sources.diffs, digest)
            except OSError as error:
                if error.errno == errno.EPIPE:
                    raise BrokenPipeError(errno.EPIPE, "broken pipe") from None
                raise
            check_content(digest.size, digest.hexdigest(), first, self._label)
        finally:
            sources.close()
        self.result.entries = self.result.files = 1
        self.result.bytes = digest.size


def _kind_name(kind: str) -> str:
    return {
        "dir": "directory",
        "sym": "symbolic link",
        "fifo": "FIFO",
        "sock": "socket",
        "dev": "device",
    }.get(kind, kind)


__all__ = [
    "RdbError",
    "RestoreOptions",
    "RestoreResult",
    "default_workers",
    "limit_heap_growth",
    "restore",
]
