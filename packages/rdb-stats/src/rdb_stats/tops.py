"""The files and directories behind most of the source size, increment size and changes.

rdiff-backup-statistics' method (reference §4.2), streamed: per session, each
``file_statistics`` line is added to its directories' totals as the (index-ordered) file is
read, and only entries whose totals reach the session's cutoff (``ratio`` × the session's
source size, increment size or changed-file count) are kept. Sessions are merged by summing
entries and cutoffs. A kept entry's value excludes the kept entries below it, so a report
names the most specific directories, each with its share of the total.

Memory is bounded by the number of kept entries (about depth / ratio per session), not by the
number of lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from rdb_format.metadata import unquote_path

Metric = Literal["source_size", "increment_size", "changed_files"]
METRICS: tuple[Metric, ...] = ("source_size", "increment_size", "changed_files")
_INDEX = {"changed_files": 0, "source_size": 1, "increment_size": 2}
_DIGITS = frozenset(b"0123456789")


@dataclass(frozen=True)
class TopEntry:
    """A file or directory (``.`` is the root) and its part of one metric."""

    path: str
    value: int
    percent: float  # of the whole repository's value of that metric (over the range)


class BadLine(ValueError):
    """A file_statistics line that does not parse."""


def _field(value: bytes) -> int:
    if value == b"NA":
        return 0
    if not value or not set(value) <= _DIGITS:
        raise BadLine(value)
    return int(value)


class TopAccumulator:
    """Sum sessions' file_statistics into a pruned tree, then report the top entries."""

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        # key: path as b"a/b/" (root b""); value: [changed, source size, increment size]
        self.kept: dict[bytes, list[int]] = {}
        self.cutoff = [0.0, 0.0, 0.0]
        self.sessions = 0

    def add_session(
        self,
        records: Iterable[bytes],
        cutoff: tuple[float, float, float] | None,
    ) -> int:
        """Add one session's file_statistics records; returns the number of bad lines.

        ``cutoff`` is (changed files, source size, increment size) already multiplied by the
        ratio, from the session's session_statistics. None (no usable session_statistics):
        the cutoff is taken from the file's own totals, and the session's entries are held
        until the end of the file.
        """
        stack_keys: list[bytes] = [b""]
        stack_vals: list[list[int]] = [[0, 0, 0]]
        finished: list[tuple[bytes, list[int]]] = []
        bad = 0
        for record in records:
            parts = record.rsplit(b" ", 4)
            if len(parts) != 5:
                bad += 1
                continue
            name, changed, source, _mirror, increment = parts
            try:
                values = [_field(changed), _field(source), _field(increment)]
            except BadLine:
                bad += 1
                continue
            if name == b".":
                stack_vals[0][0] += values[0]
                stack_vals[0][1] += values[1]
                stack_vals[0][2] += values[2]
                continue
            if b"\\" in name:
                try:
                    name = unquote_path(name)
                except ValueError:
                    bad += 1
                    continue
            key = name + b"/"
            while len(stack_keys) > 1 and not key.startswith(stack_keys[-1]):
                done_key = stack_keys.pop()
                done = stack_vals.pop()
                parent = stack_vals[-1]
                parent[0] += done[0]
                parent[1] += done[1]
                parent[2] += done[2]
                finished.append((done_key, done))
            stack_keys.append(key)
            stack_vals.append(values)
            # Keep memory flat: prune finished entries as we go when the cutoff is known.
            if cutoff is not None and len(finished) > 4096:
                self._keep(finished, cutoff)
                finished.clear()
        while len(stack_keys) > 1:
            done_key = stack_keys.pop()
            done = stack_vals.pop()
            parent = stack_vals[-1]
            parent[0] += done[0]
            parent[1] += done[1]
            parent[2] += done[2]
            finished.append((done_key, done))
        root = stack_vals[0]
        if cutoff is None:
            cutoff = (root[0] * self.ratio, root[1] * self.ratio, root[2] * self.ratio)
        finished.append((b"", root))
        self._keep(finished, cutoff)
        self.cutoff = [c + n for c, n in zip(self.cutoff, cutoff, strict=True)]
        self.sessions += 1
        return bad

    def _keep(self, entries: list[tuple[bytes, list[int]]], cutoff: tuple[float, ...]) -> None:
        kept = self.kept
        c0, c1, c2 = cutoff
        for key, (changed, source, increment) in entries:
            # rdiff-backup's FileStat >= : important if ANY of the three reaches its cutoff
            if changed >= c0 or source >= c1 or increment >= c2:
                total = kept.get(key)
                if total is None:
                    kept[key] = [changed, source, increment]
                else:
                    total[0] += changed
                    total[1] += source
                    total[2] += increment

    def top(self, metric: Metric) -> list[TopEntry]:
        """Entries at or above the summed cutoff, most specific first kept, largest first."""
        index = _INDEX[metric]
        cutoff = self.cutoff[index]
        kept = self.kept
        if b"" not in kept:
            return []
        children: dict[bytes, list[bytes]] = {}
        for key in kept:
            if key:
                parent = key[: key.rstrip(b"/").rfind(b"/") + 1]
                children.setdefault(parent, []).append(key)
        grand_total = kept[b""][index]
        result: list[tuple[bytes, int]] = []

        def visit(key: bytes) -> int:
            """Add the top entries under ``key``; return the value they account for."""
            value = kept[key][index]
            if value <= cutoff:
                return 0
            excluded = sum(visit(child) for child in children.get(key, ()))
            own = value - excluded
            if own >= cutoff:
                result.append((key, own))
                return value
            return excluded

        visit(b"")
        result.sort(key=lambda item: (-item[1], item[0]))
        return [
            TopEntry(
                path=(key[:-1] or b".").decode("utf-8", "backslashreplace"),
                value=value,
                percent=(100.0 * value / grand_total) if grand_total else 0.0,
            )
            for key, value in result
        ]
