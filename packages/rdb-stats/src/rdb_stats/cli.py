"""``rdb-stats``: parse, call :func:`rdb_stats.core.collect`, render, exit."""

# No ``from __future__ import annotations`` here: typer reads every command's annotations
# when it builds the command line, and from strings that is a compile and an eval per
# parameter, ~2 ms of every run (test_cli_imports.py checks they stay objects).

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rdb_clikit.options import JsonOpt, QuietOpt, VerboseOpt, epilog, make_app
from rdb_clikit.progress import progress_for
from rdb_clikit.run import main as run_main
from rdb_format.errors import UsageError
from rdb_stats.tops import METRICS

if TYPE_CHECKING:  # rich is imported only to draw the tables (not for --json or --csv)
    from rich.console import Console
    from rich.table import Table

    from rdb_stats.core import StatsReport

PROG = "rdb-stats"
app = make_app(name=PROG)

_TIME_HELP = (
    "now, epoch seconds, 2026-11-22, 2026-11-22T10:20:30+01:00, an interval back from now "
    "(3D, 2W, 1h30m) or 5B (the 5th session back)"
)
_TOP_TITLES = {
    "source_size": "Top files and directories by source size",
    "increment_size": "Top files and directories by increment size",
    "changed_files": "Top files and directories by number of files changed",
}


def human_size(value: float | None) -> str:
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _count(value: float | None, *, decimals: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{decimals}f}"


def _local(when: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(when))


_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    # (title, field, is a size)
    ("Elapsed s", "ElapsedTime", False),
    ("Source files", "SourceFiles", False),
    ("Source size", "SourceFileSize", True),
    ("New", "NewFiles", False),
    ("Changed", "ChangedFiles", False),
    ("Deleted", "DeletedFiles", False),
    ("Increments written", "IncrementFileSize", True),
    ("Size change", "TotalDestinationSizeChange", True),
    ("Errors", "LoggedErrors", False),
)


def _cell(value: float | None, is_size: bool, *, average: bool = False, field: str = "") -> str:
    if is_size:
        return human_size(value)
    if field == "ElapsedTime":
        return _count(value, decimals=2)
    return _count(value, decimals=1 if average else 0)


def sessions_table(report: "StatsReport") -> "Table":
    from rich.table import Table

    table = Table(title="Sessions", title_justify="left", show_footer=False)
    table.add_column("Session (local time)", no_wrap=True)
    for title, _field, _size in _COLUMNS:
        table.add_column(title, justify="right")
    for session in report.sessions:
        table.add_row(
            _local(session.time),
            *(_cell(session.value(f), s, field=f) for _t, f, s in _COLUMNS),
        )
    if report.sessions:
        table.add_section()
        table.add_row(
            f"average of {len(report.sessions)}",
            *(_cell(report.averages[f], s, average=True, field=f) for _t, f, s in _COLUMNS),
        )
        table.add_row("total", *(_cell(report.totals[f], s, field=f) for _t, f, s in _COLUMNS))
    return table


def growth_table(report: "StatsReport") -> "Table":
    from rich.table import Table

    table = Table(title="Repository growth", title_justify="left")
    table.add_column("Session (local time)", no_wrap=True)
    table.add_column("Mirror / source size", justify="right")
    table.add_column("Increments kept", justify="right")
    table.add_column("Increment files", justify="right")
    table.add_column("Cumulative", justify="right")
    for session in reversed(report.sessions):
        mirror = (
            report.mirror_bytes
            if session.time == report.current_time
            else session.statistics.get("SourceFileSize")
        )
        table.add_row(
            _local(session.time),
            human_size(mirror),
            human_size(session.increment_bytes),
            _count(session.increment_files),
            human_size(session.cumulative_bytes),
        )
    return table


def top_table(report: "StatsReport", metric: str) -> "Table":
    from rich.table import Table

    table = Table(title=_TOP_TITLES[metric], title_justify="left")
    table.add_column("Path")
    table.add_column("Value", justify="right")
    table.add_column("% of total", justify="right")
    entries = report.top[metric] if report.top is not None else ()  # type: ignore[index]
    for entry in entries:
        value = human_size(entry.value) if metric != "changed_files" else _count(entry.value)
        table.add_row(entry.path, value, f"{entry.percent:.1f}")
    return table


def render_tables(report: "StatsReport", console: "Console") -> None:
    console.print(f"Repository {report.repository}")
    console.print(sessions_table(report))
    if report.mirror_bytes is not None:
        console.print(growth_table(report))
        console.print(
            f"Mirror {human_size(report.mirror_bytes)} in {report.mirror_entries:,} entries, "
            f"increments {human_size(report.increment_bytes)} in all."
        )
    if report.top is not None:
        for metric in METRICS:
            console.print(top_table(report, metric))


@app.command(
    epilog=epilog(
        "rdb-stats /backups/home",
        "rdb-stats --begin-time 4W /backups/home              # the last four weeks",
        "rdb-stats --begin-time 10B --plot growth.svg /backups/home",
        "rdb-stats --json /backups/home | jq '.averages.increment_file_size'",
        "rdb-stats --csv --no-files /backups/home > sessions.csv",
        notes=(
            "Missing or damaged statistics files are reported as warnings on stderr and the "
            "run goes on; it then exits 3. Errors per session are counted from error_log."
        ),
    )
)
def stats(
    repository: Annotated[
        Path, typer.Argument(help="The repository (the backup destination directory).")
    ],
    *,
    begin_time: Annotated[
        str | None,
        typer.Option(
            "--begin-time", metavar="TIME", help=f"Sessions at or after TIME: {_TIME_HELP}."
        ),
    ] = None,
    end_time: Annotated[
        str | None,
        typer.Option("--end-time", metavar="TIME", help="Sessions at or before TIME."),
    ] = None,
    minimum_ratio: Annotated[
        float,
        typer.Option(
            "--minimum-ratio",
            metavar="F",
            help="Top files and directories: those with at least this share of a session's "
            "source size, increment size or changed files (as rdiff-backup-statistics).",
        ),
    ] = 0.05,
    null_separator: Annotated[
        bool,
        typer.Option(
            "--null-separator",
            help="file_statistics and error_log records end in NUL (backups made with "
            "rdiff-backup --null-separator).",
        ),
    ] = False,
    no_files: Annotated[
        bool,
        typer.Option("--no-files", help="Skip file_statistics (no top files; faster)."),
    ] = False,
    no_disk_usage: Annotated[
        bool,
        typer.Option("--no-disk-usage", help="Do not measure the mirror and increments on disk."),
    ] = False,
    csv_output: Annotated[
        bool, typer.Option("--csv", help="Write one CSV row per session on stdout.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE",
            help="Also draw increment size and changed files per session into FILE.svg "
            "or FILE.png.",
        ),
    ] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = 0,
) -> int:
    """Statistics over a repository's history: per-session table, averages and totals,
    errors, the files and directories behind the changes, and how the repository grows."""
    if json_output and csv_output:
        raise UsageError("--json and --csv cannot be used together")
    if plot is not None and plot.suffix.lower() not in (".svg", ".png"):
        raise UsageError(f"--plot {plot}: the file name must end in .svg or .png")
    from rdb_stats.core import StatsOptions, collect

    progress = progress_for(prog=PROG, quiet=quiet)
    options = StatsOptions(
        begin_time=begin_time,
        end_time=end_time,
        minimum_ratio=minimum_ratio,
        null_separator=null_separator,
        file_statistics=not no_files,
        disk_usage=not no_disk_usage,
    )
    try:
        report = collect(repository, options, progress)
    finally:
        progress.finish()
    if plot is not None:
        from rdb_stats.plot import write_plot

        write_plot(report, plot)
        if verbose:
            _note(quiet, f"{PROG}: wrote {plot}")
    if json_output:
        import json  # only for --json: its import is start-up cost

        from rdb_stats.export import to_document

        json.dump(to_document(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif csv_output:
        from rdb_stats.export import write_csv

        write_csv(report, sys.stdout)
    else:
        from rdb_clikit.console import stdout_console

        render_tables(report, stdout_console())
    if report.warnings and verbose == 0 and not json_output:
        _note(quiet, f"{PROG}: {len(report.warnings)} warning(s); exit status 3")
    return int(report.exit_code)


def _note(quiet: bool, text: str) -> None:
    """One line on stderr unless --quiet."""
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def main() -> None:
    """The ``rdb-stats`` console script."""
    run_main(app, prog=PROG)
