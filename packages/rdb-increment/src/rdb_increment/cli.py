"""``rdb-increment``: list a repository's increments, or make one increment for a script.

Thin: parses options, calls :mod:`rdb_increment`'s library, prints. Errors are mapped to exit
statuses by :func:`rdb_clikit.run.run` (docs/exit-codes.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from rdb_clikit.options import JsonOpt, QuietOpt, epilog, make_app
from rdb_clikit.run import main as run_main
from rdb_format.errors import SourceError, UsageError
from rdb_format.layout import open_repository
from rdb_format.locking import WriterLock
from rdb_format.repository import read_state
from rdb_format.timestamps import resolve_time_spec
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
from rdb_increment.writer import (
    DEFAULT_NO_COMPRESSION_REGEXP,
    IncrementOptions,
    IncrementWriter,
    WrittenIncrement,
)

app = make_app(name="rdb-increment")


@app.callback()
def _root() -> None:
    """Reverse increments in rdiff-backup 2.2's format.

    An increment X.T.KIND in REPO/rdiff-backup-data/increments keeps what
    mirror path X was in the backup session at time T:

    .diff.gz: a librsync delta from the newer version back to the old one;
    .snapshot.gz / .snapshot: the whole old file (or old symlink, fifo, device);
    .missing: X did not exist at T;  .dir: X was a directory.

    'rdb-increment list REPO' shows the sessions; 'rdb-increment make' writes one.
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
            print(json.dumps(_sizes_document(path, sizes)))
        else:
            sys.stdout.write(format_sizes(sizes))
        return 0
    listing = list_increments(repo, path)
    if json_output:
        print(json.dumps(_listing_document(listing)))
    elif parsable:
        sys.stdout.write(format_parsable(listing))
    else:
        sys.stdout.write(format_listing(listing))
    return 0


def _written_document(written: WrittenIncrement) -> dict[str, object]:
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
        print(json.dumps(_written_document(written)))
    else:
        print(_show(written.path))
    return 0


def main() -> None:
    """Console-script entry point."""
    run_main(app, prog="rdb-increment")
