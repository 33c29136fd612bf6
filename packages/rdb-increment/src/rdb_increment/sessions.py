"""Which backup sessions a removal drops: ``--older-than``, ``--keep N`` and calendar thinning.

A pure function of the session times: no file is touched here. The newest session (the current
mirror) is always kept. The rules, as ``rdb-increment remove`` documents them:

- ``older_than`` (epoch seconds, or any time spec ``rdb_format.timestamps`` understands):
  every session strictly older than that time goes, as rdiff-backup's
  ``remove increments --older-than``.
- ``keep_last`` N, ``keep_daily`` D, ``keep_weekly`` W, ``keep_monthly`` M: a session is kept
  if *any* of them keeps it. ``keep_last`` keeps the N newest sessions; the calendar rules keep
  the newest session of each of the D (W, M) most recent local days (ISO weeks, months) that
  have a session, as borg and restic count them. Every other session goes, wherever it lies in
  the history: one in the middle is merged into its neighbours (``rdb_increment.thin``).

- ``sessions``: exactly these sessions go (each spec must name a session: an exact time, or
  ``nB``); the newest cannot be named.

``older_than``, the keep rules and ``sessions`` are alternatives, never combined (one of them
must be given).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rdb_format.errors import UsageError
from rdb_format.timestamps import format_timestring, resolve_time_spec

__all__ = ["RemovalPlan", "RetentionPolicy", "Window", "plan_removal"]

BucketKey = Callable[[int], tuple[int, ...]]


def _day(epoch: int) -> tuple[int, ...]:
    local = time.localtime(epoch)
    return (local.tm_year, local.tm_yday)


def _week(epoch: int) -> tuple[int, ...]:
    local = time.localtime(epoch)
    iso_year, iso_week, _ = time.strftime("%G %V %u", local).split()
    return (int(iso_year), int(iso_week))


def _month(epoch: int) -> tuple[int, ...]:
    local = time.localtime(epoch)
    return (local.tm_year, local.tm_mon)


@dataclass(frozen=True)
class RetentionPolicy:
    """What to keep or drop; see the module docstring. Counts must be at least 1."""

    older_than: str | int | None = None
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    sessions: tuple[str | int, ...] = ()

    @property
    def keep_rules(self) -> dict[str, int]:
        """The keep rules that are set, by option name."""
        rules = {
            "--keep": self.keep_last,
            "--keep-daily": self.keep_daily,
            "--keep-weekly": self.keep_weekly,
            "--keep-monthly": self.keep_monthly,
        }
        return {name: count for name, count in rules.items() if count is not None}

    def check(self) -> None:
        """UsageError unless exactly one kind of rule is given and every count is >= 1."""
        rules = self.keep_rules
        given = [
            name
            for name, used in (
                ("--older-than", self.older_than is not None),
                (" / ".join(rules), bool(rules)),
                ("--session", bool(self.sessions)),
            )
            if used
        ]
        if not given:
            raise UsageError(
                "say what to remove: --older-than TIME, --session TIME, or --keep N / "
                "--keep-daily N / --keep-weekly N / --keep-monthly N"
            )
        if len(given) > 1:
            raise UsageError(f"{given[0]} cannot be combined with {given[1]}")
        for name, count in rules.items():
            if count < 1:
                raise UsageError(f"{name} must be at least 1, not {count}")


@dataclass(frozen=True)
class Window:
    """Dropped sessions lying between two kept ones: ``previous`` < each of ``dropped`` <
    ``next``. Their increments are merged into ``previous``'s."""

    previous: int
    dropped: tuple[int, ...]
    next: int


@dataclass(frozen=True)
class RemovalPlan:
    """The sessions (oldest first) split into kept and dropped ones."""

    sessions: tuple[int, ...]
    kept: tuple[int, ...]
    dropped: tuple[int, ...]
    cutoff: int | None = None  # the resolved --older-than time, if one was given

    @property
    def prefix(self) -> tuple[int, ...]:
        """Dropped sessions older than every kept one: their files are simply deleted."""
        oldest_kept = self.kept[0]
        return tuple(t for t in self.dropped if t < oldest_kept)

    @property
    def windows(self) -> tuple[Window, ...]:
        """Dropped sessions between kept ones, grouped by the kept pair around them."""
        out: list[Window] = []
        kept = self.kept
        dropped = sorted(set(self.dropped) - set(self.prefix))
        position = 0
        for previous, following in itertools.pairwise(kept):
            inside: list[int] = []
            while position < len(dropped) and dropped[position] < following:
                if dropped[position] > previous:
                    inside.append(dropped[position])
                position += 1
            if inside:
                out.append(Window(previous, tuple(inside), following))
        return tuple(out)


def _calendar_keep(sessions_newest_first: Sequence[int], count: int, key: BucketKey) -> set[int]:
    kept: set[int] = set()
    seen: set[tuple[int, ...]] = set()
    for when in sessions_newest_first:
        bucket = key(when)
        if bucket in seen:
            continue
        if len(seen) == count:
            break
        seen.add(bucket)
        kept.add(when)
    return kept


def _resolve(spec: str | int, now: int, sessions: Sequence[int]) -> int:
    if isinstance(spec, int):
        return spec
    return resolve_time_spec(spec, now=now, sessions=sessions)


def plan_removal(
    sessions: Sequence[int],
    policy: RetentionPolicy,
    *,
    now: int | None = None,
    gone_ok: bool = False,
) -> RemovalPlan:
    """Split ``sessions`` (any order; the newest is the current mirror) by ``policy``.

    A string ``older_than`` is resolved with ``resolve_time_spec`` (``now`` defaults to the
    clock), so every time form of the rdb tools works, ``3B`` included. ``gone_ok``: a
    ``sessions`` time that is no session is skipped instead of refused (an interrupted
    removal already took it).
    """
    policy.check()
    ordered = tuple(sorted(set(sessions)))
    if not ordered:
        return RemovalPlan((), (), ())
    current = ordered[-1]
    clock = int(time.time()) if now is None else now
    cutoff: int | None = None
    if policy.older_than is not None:
        cutoff = _resolve(policy.older_than, clock, ordered)
        keep = {t for t in ordered if t >= cutoff}
    elif policy.sessions:
        named = set()
        for spec in policy.sessions:
            when = _resolve(spec, clock, ordered)
            if when not in ordered and gone_ok:
                continue
            if when not in ordered:
                raise UsageError(
                    f"--session {spec}: no session at {format_timestring(when)}; "
                    "'rdb-increment list' shows them (or use nB for the n-th newest)"
                )
            if when == current:
                raise UsageError(
                    f"--session {spec}: the newest session ({format_timestring(when)}) "
                    "holds the mirror and cannot be removed"
                )
            named.add(when)
        keep = set(ordered) - named
    else:
        newest_first = ordered[::-1]
        keep = set()
        if policy.keep_last is not None:
            keep.update(newest_first[: policy.keep_last])
        for count, key in (
            (policy.keep_daily, _day),
            (policy.keep_weekly, _week),
            (policy.keep_monthly, _month),
        ):
            if count is not None:
                keep |= _calendar_keep(newest_first, count, key)
    keep.add(current)
    kept = tuple(t for t in ordered if t in keep)
    dropped = tuple(t for t in ordered if t not in keep)
    return RemovalPlan(ordered, kept, dropped, cutoff)
