"""rdiff-backup's human sizes and durations, as its statistics and listings print them.

A module of its own, importing nothing, so that a command printing one size (a restore's
summary line, ``rdb-restore list``) does not load :mod:`rdb_format.statistics` (which
re-exports both) for it.
"""

from __future__ import annotations

__all__ = ["format_bytes", "format_seconds"]


def format_bytes(count: int) -> str:
    """rdiff-backup's human size: ``1 byte``, ``18 bytes``, ``1.29 KB``, ``196 KB``, ``-3.5 MB``.

    1024-based units, three significant figures (two, one or no decimals).
    """
    sign = "-" if count < 0 else ""
    count = abs(count)
    for unit, name in ((1 << 40, "TB"), (1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")):
        if count >= unit:
            scaled = count / unit
            decimals = 0 if scaled >= 100 else 1 if scaled >= 10 else 2
            return f"{sign}{scaled:.{decimals}f} {name}"
    return f"{sign}1 byte" if count == 1 else f"{sign}{count} bytes"


def format_seconds(seconds: float) -> str:
    """rdiff-backup's human duration: ``0.75 seconds``, ``1 hour 2 minutes 3.40 seconds``.

    Hours and minutes are whole and singular when 1; the seconds part is ``1 second``, or
    ``%.2f seconds`` when more than one (or when it is the only part).
    """
    parts: list[str] = []
    hours, rest = divmod(seconds, 3600)
    if hours >= 1:
        parts.append("1 hour" if hours == 1 else f"{int(hours)} hours")
    minutes, rest = divmod(rest, 60)
    if minutes >= 1:
        parts.append("1 minute" if minutes == 1 else f"{int(minutes)} minutes")
    if rest == 1:
        parts.append("1 second")
    elif not parts or rest > 1:
        parts.append(f"{rest:.2f} seconds")
    return " ".join(parts)
