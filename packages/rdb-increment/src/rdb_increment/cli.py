"""``rdb-increment``: list a repository's increments, or make one increment for a script.

Thin: parses options, calls :mod:`rdb_increment`'s library, prints. Errors are mapped to exit
statuses by :func:`rdb_clikit.run.run` (docs/exit-codes.md).
"""

# No ``from __future__ import annotations`` here: typer reads every command's annotations
# when it builds the command line, and from strings that is a compile and an eval per
# parameter, ~2 ms of every run (test_cli_imports.py checks they stay objects).

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rdb_clikit.options import JsonOpt, QuietOpt, epilog, make_app
from rdb_clikit.progress import progress_for
from rdb_clikit.protocol import NullProgress, Progress
from rdb_clikit.run import main as run_main
from rdb_format.errors import SourceError, UsageError
from rdb_format.layout import open_repository
from rdb_format.locking import WriterLock
from rdb_format.repository import read_state
from rdb_format.timestamps import format_timestring, resolve_time_spec
from rdb_format.units import format_bytes
from rdb_increment.listing import (
    IncrementListing,
    ListedIncrement,
    SessionSize,
    format_listing,
    format_parsable,
    format_sizes,
    increment_sizes,
    list_increments,
    parse_index,
)

if TYPE_CHECKING:  # 'remove' and 'writer' are imported by the commands that run them
    from rdb_increment.remove import RemoveResult
    from rdb_increment.writer import WrittenIncrement

app = make_app(name="rdb-increment")


@app.callback()
def _root() -> None:
    """Reverse increments in rdiff-backup 2.2's format.

    An increment X.T.KIND in REPO/rdiff-backup-data/increments keeps what
    mirror path X was in the backup session at time T:

    .diff.gz: a librsync delta from the newer version back to the old one;
    .snapshot.gz / .snapshot: the whole old file (or old symlink, fifo, device);
    .missing: X did not exist at T;  .dir: X was a directory.

    'rdb-increment list REPO' shows the sessions; 'rdb-increment make' writes one;
    'rdb-increment remove' deletes old sessions or thins the history.
    """


def _show(path: bytes | str | os.PathLike[str]) -> str:
    return os.fsdecode(path)


def _listing_document(listing: IncrementListing) -> dict[str, object]:
    def entry(inc: ListedIncrement) -> dict[str, object]:
        return {
            "time": inc.time,
            "type": inc.type,
            "base": inc.base,
            "path": None if inc.path is None else _show(inc.path),
            "size": inc.size,
        }

    return {
        "path": _show(b"/".join(listing.index) or b"."),
        "increments": [entry(inc) for inc in listing.increments],
        "mirror": {"time": listing.mirror.time, "type": listing.mirror.type},
    }


def _sizes_document(path: str | None, sizes: list[SessionSize]) -> dict[str, object]:
    return {
        "path": path or ".",
        "sessions": [
            {
                "time": row.time,
                "size": row.size,
                "total_size": row.total_size,
                "current_mirror": row.current,
            }
            for row in sizes
        ],
    }


@app.command(
    "list",
    epilog=epilog(
        "rdb-increment list /backups/home",
        "rdb-increment list /backups/home docs/report.odt",
        "rdb-increment list --size /backups/home",
        "rdb-increment list --json /backups/home | jq '.increments[].time'",
        notes=(
            "Without PATH the sessions are the root's increments.T.dir markers, as in "
            "'rdiff-backup list increments': a session in which nothing changed has none and "
            "is not shown (it is still restorable). Times are shown in the local time zone."
        ),
    ),
)
def list_cmd(
    repo: Annotated[Path, typer.Argument(help="The repository (the backup destination).")],
    path: Annotated[
        str | None,
        typer.Argument(help="A path inside the mirror, relative to REPO (default: everything)."),
    ] = None,
    *,
    size: Annotated[
        bool,
        typer.Option(
            "--size",
            help="Show each session's increment size and the cumulative size needed to "
            "restore it (like 'rdiff-backup list increments --size').",
        ),
    ] = False,
    parsable: Annotated[
        bool,
        typer.Option(
            "--parsable", help="'<epoch> <type>' lines, as rdiff-backup --parsable-output."
        ),
    ] = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """List the increments (backup sessions) of a repository, or of one path in it.

    The text is the same as rdiff-backup 2.2's 'list increments'.
    """
    del quiet  # nothing is printed on stderr but errors
    if size:
        sizes = increment_sizes(repo, path)
        if json_output:
            import json  # only for --json: its import is start-up cost

            print(json.dumps(_sizes_document(path, sizes)))
        else:
            sys.stdout.write(format_sizes(sizes))
        return 0
    listing = list_increments(repo, path)
    if json_output:
        import json

        print(json.dumps(_listing_document(listing)))
    elif parsable:
        sys.stdout.write(format_parsable(listing))
    else:
        sys.stdout.write(format_listing(listing))
    return 0


def _written_document(written: "WrittenIncrement") -> dict[str, object]:
    return {
        "increment": {
            "path": _show(written.path),
            "index": _show(b"/".join(written.index) or b"."),
            "time": written.name.time,
            "kind": written.name.kind,
            "compressed": written.name.compressed,
            "size": written.size,
        }
    }


@app.command(
    "make",
    epilog=epilog(
        "rdb-increment make /backups/home notes.txt --new /home/me/notes.txt",
        "rdb-increment make /backups/home old.log --deleted",
        "rdb-increment make REPO a.iso --new new.iso --old old.iso --time 1700000000",
        "rdb-increment make --json REPO f.txt --new f.txt | jq -r .increment.path",
        notes=(
            "Typical script: make the increment first, then replace REPO/PATH with the new "
            "version. Which kind is written follows rdiff-backup: .missing if PATH did not "
            "exist at T, .dir for a directory, .diff.gz when old and new are regular files, "
            ".snapshot.gz (or .snapshot) otherwise. The repository must not have an "
            "unfinished session, and the writer lock is taken while writing. The increment is "
            "fsynced before the command exits. Prints the increment's path."
        ),
    ),
)
def make_cmd(
    repo: Annotated[Path, typer.Argument(help="The repository (the backup destination).")],
    path: Annotated[str, typer.Argument(help="The mirror path, relative to REPO.")],
    *,
    new: Annotated[
        Path | None,
        typer.Option(
            "--new", help="The version that replaces PATH (its content is the diff's basis)."
        ),
    ] = None,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="PATH was deleted: keep the whole old version.")
    ] = False,
    old: Annotated[
        Path | None,
        typer.Option(
            "--old", help="The version of PATH at time T (default: the mirror copy REPO/PATH)."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--time",
            help="Session time T the old version belongs to: epoch seconds or a time string "
            "(default: the repository's current mirror time).",
        ),
    ] = None,
    no_compression: Annotated[
        bool, typer.Option("--no-compression", help="Write .diff/.snapshot without gzip.")
    ] = False,
    no_compression_regexp: Annotated[
        str | None,
        typer.Option(
            "--no-compression-regexp",
            "--not-compressed-regexp",
            help="Paths matching this regexp (re.match on the full mirror path) are not "
            "gzipped. Default: rdiff-backup's list of compressed formats "
            "(.gz, .zip, .jpg, .mp4, ...).",
        ),
    ] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Write the reverse increment of one mirror path, as rdiff-backup would.

    It keeps the old version of PATH (the mirror copy, or --old) under session
    time T, so 'rdiff-backup restore --at T' gets it back after REPO/PATH is
    replaced by the --new version (or removed, with --deleted).
    """
    del quiet
    if (new is None) == (not deleted):
        raise UsageError("give exactly one of --new FILE or --deleted")
    for given in (new, old):
        if given is not None and not os.path.lexists(given):
            raise SourceError("does not exist", path=given)
    layout = open_repository(repo)
    state = read_state(layout)
    state.check_finished()
    index = parse_index(path)
    if not index:
        raise UsageError("PATH must name a file inside the repository, not its root")
    if at is None:
        if state.current_time is None:
            raise UsageError("the repository has no finished session; give --time")
        when = state.current_time
    else:
        when = resolve_time_spec(at, now=int(time.time()), sessions=state.sessions)
    from rdb_increment.writer import (
        DEFAULT_NO_COMPRESSION_REGEXP,
        IncrementOptions,
        IncrementWriter,
    )

    options = IncrementOptions(
        compression=not no_compression,
        no_compression_regexp=no_compression_regexp or DEFAULT_NO_COMPRESSION_REGEXP,
    )
    with WriterLock(layout, command="rdb-increment"):
        writer = IncrementWriter(layout, when, quoting=state.quoting, options=options)
        old_path = old if old is not None else writer.mirror_path(index)
        written = writer.write(index, old_path, new)
        writer.sync()
    if json_output:
        import json

        print(json.dumps(_written_document(written)))
    else:
        print(_show(written.path))
    return 0


def _session_document(when: int) -> dict[str, object]:
    return {"time": when, "time_string": format_timestring(when)}


def _removal_document(result: "RemoveResult") -> dict[str, object]:
    return {
        "repository": _show(result.repository),
        "dry_run": result.dry_run,
        "removed": [_session_document(t) for t in result.removed],
        "kept": [_session_document(t) for t in result.kept],
        "files_deleted": result.files_deleted,
        "bytes_freed": result.bytes_freed,
        "paths_merged": result.paths_merged,
        "increments_renamed": result.increments_renamed,
        "files_rewritten": result.files_rewritten,
        "resumed": result.resumed,
    }


def _removal_text(result: "RemoveResult") -> str:
    def line(when: int) -> str:
        return f"    {format_timestring(when)}   {time.asctime(time.localtime(when))}"

    lines: list[str] = []
    if result.resumed:
        lines.append("finished an interrupted removal")
    if not result.removed:
        cutoff = result.plan.cutoff
        if len(result.plan.sessions) <= 1:
            lines.append("nothing to remove: the only session is the newest, always kept")
        elif cutoff is not None:
            lines.append(f"nothing to remove: no session is older than {format_timestring(cutoff)}")
        else:
            lines.append("nothing to remove: the rules keep every session")
        return "\n".join(lines) + "\n"
    verb = "would remove" if result.dry_run else "removed"
    count = len(result.removed)
    lines.append(f"{verb} {count} session{'s' if count > 1 else ''}:")
    lines += [line(t) for t in result.removed]
    lines.append(f"kept {len(result.kept)} (the newest: {format_timestring(result.kept[-1])})")
    if not result.dry_run:
        lines.append(
            f"deleted {result.files_deleted} files ({format_bytes(result.bytes_freed)}); "
            f"merged the increments of {result.paths_merged} paths into kept sessions"
        )
    return "\n".join(lines) + "\n"


@app.command(
    "remove",
    epilog=epilog(
        "rdb-increment remove /backups/home --older-than 1Y --force",
        "rdb-increment remove /backups/home --older-than 2026-01-01 --dry-run",
        "rdb-increment remove /backups/home --keep 30 --force",
        "rdb-increment remove REPO --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --force",
        "rdb-increment remove /backups/home --session 2026-11-22T00:21:20+01:00",
        "rdb-increment remove --json REPO --older-than 10B --force | jq '.removed[].time'",
        notes=(
            "--older-than removes every session older than TIME, as 'rdiff-backup remove "
            "increments --older-than' does. The --keep rules keep the N newest sessions and "
            "the newest session of each of the last N days, ISO weeks and months (local "
            "time) that have one; a session any rule keeps stays, every other one goes, also "
            "between kept ones: its increments are merged into the kept session before it, "
            "so every kept session restores exactly as before. --session removes the sessions "
            "named (any of them, e.g. one in the middle). The newest session is never "
            "removed. Removing more than one session needs --force (as in rdiff-backup); "
            "--dry-run only lists what would go. The writer lock is held throughout; a "
            "repository whose last backup did not finish must be regressed first "
            "(rdb-mirror --regress). Killed at any instant, the repository stays valid for "
            "rdiff-backup 2.2.7 and the rdb tools, and the next remove finishes the job."
        ),
    ),
)
def remove_cmd(
    repo: Annotated[Path, typer.Argument(help="The repository (the backup destination).")],
    *,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="TIME",
            help="Remove the sessions older than TIME: now, 2026-11-22, "
            "2026-11-22T10:20:30+01:00, epoch seconds, an interval (3D, 2W, 1M, 1Y; "
            "s m h D W M Y) or nB (the n-th newest session).",
        ),
    ] = None,
    session: Annotated[
        list[str] | None,
        typer.Option(
            "--session",
            metavar="TIME",
            help="Remove exactly this session (repeat for more): its time as "
            "'rdb-increment list' shows it, epoch seconds, or nB.",
        ),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option("--keep", metavar="N", min=1, help="Keep the N newest sessions."),
    ] = None,
    keep_daily: Annotated[
        int | None,
        typer.Option(
            "--keep-daily", metavar="N", min=1, help="Keep the newest session of each of N days."
        ),
    ] = None,
    keep_weekly: Annotated[
        int | None,
        typer.Option(
            "--keep-weekly",
            metavar="N",
            min=1,
            help="Keep the newest session of each of N ISO weeks.",
        ),
    ] = None,
    keep_monthly: Annotated[
        int | None,
        typer.Option(
            "--keep-monthly",
            metavar="N",
            min=1,
            help="Keep the newest session of each of N months.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list the sessions that would be removed.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Allow removing more than one session.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Threads merging increments (default: 4 at most)."),
    ] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Remove old backup sessions, or thin the history, keeping the rest restorable.

    Deletes the increments, metadata, statistics and error logs of the sessions that go.
    """
    from rdb_increment.remove import RemoveOptions, remove_sessions
    from rdb_increment.sessions import RetentionPolicy

    policy = RetentionPolicy(
        older_than=older_than,
        keep_last=keep,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        sessions=tuple(session or ()),
    )
    progress: Progress = (
        NullProgress() if json_output else progress_for(prog="rdb-increment", quiet=quiet)
    )
    result = remove_sessions(
        repo, policy, RemoveOptions(dry_run=dry_run, force=force, workers=workers), progress
    )
    if json_output:
        import json

        print(json.dumps(_removal_document(result)))
    else:
        sys.stdout.write(_removal_text(result))
    return 0


def main() -> None:
    """Console-script entry point."""
    run_main(app, prog="rdb-increment")
