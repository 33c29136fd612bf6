"""Time strings in file names and markers, and user time specs (--at, --older-than).

All times are integer epoch seconds. A time string is the W3C datetime profile rdiff-backup
writes: ``YYYY-MM-DDTHH:MM:SS`` plus ``Z`` or ``+HH:MM``/``-HH:MM`` (the writer's local
offset at that instant). In the "compatible" form every ``:`` is ``-``, offset included:
``2026-11-22T10-20-30+01-00``. Compatible strings are written when ``:`` is quoted.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import os
import re
import time
from collections.abc import Sequence

from rdb_format.errors import CorruptRepository, TimeSpecError

PathArg = str | bytes | os.PathLike[str]

# Bounds rdiff-backup applies when reading (exclusive years); outside them a name is not a time.
MIN_YEAR = 1901
MAX_YEAR = 2099

_TIMESTRING = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2})[:-](\d{2})[:-](\d{2})(Z|[+-]\d{2}[:-]\d{2})",
    re.ASCII,
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "D": 86400, "W": 7 * 86400, "M": 30 * 86400}
_UNITS["Y"] = 365 * 86400
_INTERVAL = re.compile(r"(?:\d+[smhDWMY])+", re.ASCII)
_INTERVAL_PART = re.compile(r"(\d+)([smhDWMY])", re.ASCII)
_SESSIONS_BACK = re.compile(r"(\d+)B", re.ASCII)
_EPOCH = re.compile(r"-?\d+", re.ASCII)
_USER_DATETIME = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"(Z|[+-]\d{2}:?\d{2})?",
    re.ASCII,
)
_DATE_YMD = re.compile(r"(\d{4})([-/])(\d{1,2})\2(\d{1,2})", re.ASCII)
_DATE_MDY = re.compile(r"(\d{1,2})([-/])(\d{1,2})\2(\d{4})", re.ASCII)


def _fields_to_epoch(fields: Sequence[int], offset: int) -> int | None:
    year, month, day, hour, minute, second = fields
    if not (
        MIN_YEAR <= year <= MAX_YEAR
        and 1 <= month <= 12
        and 1 <= day <= 31
        and 0 <= hour <= 23
        and 0 <= minute <= 59
        and 0 <= second <= 61
    ):
        return None
    # timegm normalises day 31 of a short month and leap seconds, as rdiff-backup does.
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset


def _zone_offset(zone: str) -> int:
    if zone == "Z":
        return 0
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "").replace("-", "")
    return sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)


def try_parse_timestring(text: str | bytes) -> int | None:
    """Epoch seconds of a time string, or None if it is not one (rdiff-backup's rule)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _TIMESTRING.fullmatch(text)
    if match is None:
        return None
    fields = [int(group) for group in match.groups()[:6]]
    return _fields_to_epoch(fields, _zone_offset(match.group(7)))


def parse_timestring(text: str | bytes, *, path: PathArg | None = None) -> int:
    """Epoch seconds of a time string read from ``path``; CorruptRepository if garbled."""
    result = try_parse_timestring(text)
    if result is None:
        shown = text.decode("ascii", "backslashreplace") if isinstance(text, bytes) else text
        raise CorruptRepository(f"bad time string {shown!r}", path=path)
    return result


def local_offset(epoch: int) -> int:
    """The local zone's UTC offset in seconds at that instant (DST included)."""
    return time.localtime(epoch).tm_gmtoff


def format_timestring(
    epoch: int, *, compatible: bool = False, utc_offset: int | None = None
) -> str:
    """The time string rdiff-backup writes for ``epoch``.

    ``utc_offset`` defaults to the local offset at that instant; ``compatible`` uses ``-``
    for every ``:``. ValueError if the year would fall outside 1901-2099 (unreadable).
    """
    offset = local_offset(epoch) if utc_offset is None else utc_offset
    if offset % 60:
        offset = offset // 60 * 60  # zones with seconds cannot be written; round like strftime
    local = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=epoch + offset)
    if not MIN_YEAR <= local.year <= MAX_YEAR:
        raise ValueError(f"time {epoch} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    sep = "-" if compatible else ":"
    if offset == 0:
        zone = "Z"
    else:
        sign = "-" if offset < 0 else "+"
        hours, minutes = divmod(abs(offset) // 60, 60)
        zone = f"{sign}{hours:02d}{sep}{minutes:02d}"
    return local.strftime(f"%Y-%m-%dT%H{sep}%M{sep}%S") + zone


def _local_to_epoch(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    return int(_dt.datetime(year, month, day, hour, minute, second).timestamp())


def _resolve_datetime(match: re.Match[str], spec: str) -> int:
    year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
    second = int(match.group(6) or 0)
    zone = match.group(7)
    try:
        if zone is None:
            return _local_to_epoch(year, month, day, hour, minute, second)
        if zone != "Z" and len(zone) == 5:
            zone = f"{zone[:3]}:{zone[3:]}"
        epoch = calendar.timegm(_dt.datetime(year, month, day, hour, minute, second).timetuple())
        return epoch - _zone_offset(zone)
    except (ValueError, OverflowError) as error:
        raise TimeSpecError(f"bad date/time {spec!r}: {error}") from None


def _resolve_date(year: int, month: int, day: int, spec: str) -> int:
    try:
        return _local_to_epoch(year, month, day, 0, 0, 0)
    except (ValueError, OverflowError) as error:
        raise TimeSpecError(f"bad date {spec!r}: {error}") from None


def session_back(count: int, sessions: Sequence[int]) -> int:
    """The session ``count`` back from the newest (0 = current mirror); oldest if too far."""
    ordered = sorted(set(sessions), reverse=True)
    if not ordered:
        raise TimeSpecError(
            f"'{count}B' needs at least one backup session, the repository has none"
        )
    return ordered[min(count, len(ordered) - 1)]


def resolve_time_spec(spec: str, *, now: int, sessions: Sequence[int] = ()) -> int:
    """Turn a user time spec into epoch seconds.

    Forms, tried in rdiff-backup's order: ``now``; epoch seconds (``1795303278``); a W3
    datetime (``2026-11-22T10:20:30+01:00``, ``…Z``, the compatible ``-`` form, or without a
    zone meaning local time; seconds optional, ``T`` or a space); ``<n>B`` (the n-th session
    back, 0 = newest, clamped to the oldest); an asctime (``Mon Jun  5 11:00:23 1990``); an
    interval subtracted from now (``3D``, ``1h78m``; units s m h D W M=30D Y=365D); a date
    (``2026-11-22``, ``2026/11/22``, ``11-22-2026``, ``11/22/2026``) meaning local midnight.
    """
    text = spec.strip()
    if text == "now":
        return now
    if _EPOCH.fullmatch(text):
        return int(text)
    exact = try_parse_timestring(text)
    if exact is not None:
        return exact
    match = _USER_DATETIME.fullmatch(text)
    if match is not None:
        return _resolve_datetime(match, spec)
    match = _SESSIONS_BACK.fullmatch(text)
    if match is not None:
        return session_back(int(match.group(1)), sessions)
    try:
        parsed = time.strptime(text, "%a %b %d %H:%M:%S %Y")
    except ValueError:
        pass
    else:
        return int(time.mktime(parsed))
    if len(text) >= 2 and _INTERVAL.fullmatch(text):
        total = sum(int(n) * _UNITS[unit] for n, unit in _INTERVAL_PART.findall(text))
        return now - total
    match = _DATE_YMD.fullmatch(text)
    if match is not None:
        return _resolve_date(int(match.group(1)), int(match.group(3)), int(match.group(4)), spec)
    match = _DATE_MDY.fullmatch(text)
    if match is not None:
        return _resolve_date(int(match.group(4)), int(match.group(1)), int(match.group(3)), spec)
    raise TimeSpecError(
        f"cannot understand time {spec!r}; use now, 2026-11-22, 2026-11-22T10:20:30+01:00, "
        "epoch seconds, an interval like 3D or 1h30m (s m h D W M Y), or 5B for 5 sessions back"
    )


def session_at_or_before(epoch: int, sessions: Sequence[int]) -> int:
    """Round a time down to a session time; the oldest session if it predates them all."""
    if not sessions:
        raise TimeSpecError("the repository has no backup sessions")
    earlier = [s for s in sessions if s <= epoch]
    return max(earlier) if earlier else min(sessions)
