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

from rdb_format.statistics import RowTuple

Metric = Literal["source_size", "increment_size", "changed_files"]
METRICS: tuple[Metric, ...] = ("source_size", "increment_size", "changed_files")
_INDEX = {"changed_files": 0, "source_size": 1, "increment_size": 2}


@dataclass(frozen=True)
class TopEntry:
    """A file or directory (``.`` is the root) and its part of one metric."""

    path: str
    value: int
    percent: float  # of the whole repository's value of that metric (over the range)


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
        batches: Iterable[list[RowTuple]],
        cutoff: tuple[float, float, float] | None,
    ) -> None:
        """Add one session's file_statistics rows (paths checked and unquoted: rdb_format's
        ``FileStatisticsReader.tuples()``).

        ``cutoff`` is (changed files, source size, increment size) already multiplied by the
        ratio, from the session's session_statistics. None (no usable session_statistics):
        the cutoff is taken from the file's own totals, and the session's entries are held
        until the end of the file.
        """
        # The stack of open directories: keys (path + b"/", root b"") and their totals.
        keys: list[bytes] = [b""]
        vals: list[list[int]] = [[0, 0, 0]]
        top = b""
        held: list[tuple[bytes, list[int]]] = []
        inf = float("inf")
        c0, c1, c2 = cutoff if cutoff is not None else (inf, inf, inf)
        for batch in batches:
            for name, changed, source, _mirror, increment in batch:
                values = [int(changed), source or 0, increment or 0]
                if name == b".":
                    root = vals[0]
                    root[0] += values[0]
                    root[1] += values[1]
                    root[2] += values[2]
                    continue
                key = name + b"/"
                while top and not key.startswith(top):
                    done = vals.pop()
                    keys.pop()
                    parent = vals[-1]
                    parent[0] += done[0]
                    parent[1] += done[1]
                    parent[2] += done[2]
                    if cutoff is None:
                        held.append((top, done))
                    elif done[0] >= c0 or done[1] >= c1 or done[2] >= c2:
                        self._add(top, done)
                    top = keys[-1]
                keys.append(key)
                vals.append(values)
                top = key
        while len(keys) > 1:
            done = vals.pop()
            done_key = keys.pop()
            parent = vals[-1]
            parent[0] += done[0]
            parent[1] += done[1]
            parent[2] += done[2]
            held.append((done_key, done))
        root = vals[0]
        if cutoff is None:
            cutoff = (root[0] * self.ratio, root[1] * self.ratio, root[2] * self.ratio)
        held.append((b"", root))
        self._keep(held, cutoff)
        self.cutoff = [c + n for c, n in zip(self.cutoff, cutoff, strict=True)]
        self.sessions += 1

    def _add(self, key: bytes, values: list[int]) -> None:
        total = self.kept.get(key)
        if total is None:
            self.kept[key] = values
        else:
            total[0] += values[0]
            total[1] += values[1]
            total[2] += values[2]

    def _keep(self, entries: list[tuple[bytes, list[int]]], cutoff: tuple[float, ...]) -> None:
        c0, c1, c2 = cutoff
        for key, values in entries:
            # rdiff-backup's FileStat >= : important if ANY of the three reaches its cutoff
            if values[0] >= c0 or values[1] >= c1 or values[2] >= c2:
                self._add(key, values)

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
