"""The report as a JSON document (schema ``rdb-stats/1``, docs/rdb-stats.md) and as CSV."""

from __future__ import annotations

import csv
import re
from typing import IO, Any

from rdb_format.timestamps import format_timestring
from rdb_stats.core import SUMMED_FIELDS, SessionReport, StatsReport
from rdb_stats.tops import METRICS

SCHEMA = "rdb-stats/1"
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    """``SourceFileSize`` -> ``source_file_size`` (``Errors`` -> ``errors_reported``)."""
    if name == "Errors":
        return "errors_reported"
    if name == "LoggedErrors":
        return "errors"
    return _CAMEL.sub("_", name).lower()


def utc(when: int | None) -> str | None:
    return None if when is None else format_timestring(when, utc_offset=0)


def session_document(session: SessionReport) -> dict[str, Any]:
    return {
        "time": session.time,
        "time_utc": utc(session.time),
        "statistics": {snake(k): v for k, v in session.statistics.items()},
        "statistics_complete": session.statistics_complete,
        "errors": session.logged_errors,
        "error_log_entries": session.error_log_entries,
        "error_types": dict(session.error_types),
        "file_statistics_lines": session.file_statistics_lines,
        "increment_bytes": session.increment_bytes,
        "increment_files": session.increment_files,
        "cumulative_bytes": session.cumulative_bytes,
    }


def to_document(report: StatsReport) -> dict[str, Any]:
    """The JSON document printed by ``rdb-stats --json``."""
    top = None
    if report.top is not None:
        top = {
            metric: [
                {"path": e.path, "value": e.value, "percent": round(e.percent, 3)}
                for e in report.top[metric]
            ]
            for metric in METRICS
        }
    return {
        "schema": SCHEMA,
        "repository": str(report.repository),
        "current_time": report.current_time,
        "range": {"begin": report.begin, "end": report.end},
        "sessions": [session_document(s) for s in report.sessions],
        "averages": {snake(k): report.averages[k] for k in SUMMED_FIELDS},
        "totals": {snake(k): report.totals[k] for k in SUMMED_FIELDS},
        "counted": {snake(k): report.counted[k] for k in SUMMED_FIELDS},
        "growth": {
            "mirror_bytes": report.mirror_bytes,
            "mirror_entries": report.mirror_entries,
            "increment_bytes": report.increment_bytes,
            "total_bytes": (
                report.mirror_bytes + report.increment_bytes
                if report.mirror_bytes is not None and report.increment_bytes is not None
                else None
            ),
        },
        "minimum_ratio": report.minimum_ratio,
        "top": top,
        "warnings": list(report.warnings),
        "exit_code": int(report.exit_code),
    }


CSV_COLUMNS: tuple[str, ...] = (
    "time",
    "time_utc",
    *(snake(k) for k in SUMMED_FIELDS),
    "increment_bytes",
    "increment_files",
    "cumulative_bytes",
)


def write_csv(report: StatsReport, stream: IO[str]) -> None:
    """One header line, then one row per session; empty cells for unknown values."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for session in report.sessions:
        row: list[object] = [session.time, utc(session.time)]
        row += [_cell(session.value(k)) for k in SUMMED_FIELDS]
        row += [
            _cell(session.increment_bytes),
            _cell(session.increment_files),
            _cell(session.cumulative_bytes),
        ]
        writer.writerow(row)


def _cell(value: int | float | None) -> object:
    return "" if value is None else value
