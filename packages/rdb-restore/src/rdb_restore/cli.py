"""The ``rdb-restore`` command: restore (the default), list, list files, list changed, compare,
verify.

``rdb-restore REPO[/PATH] TARGET`` is the restore command: a small argv shim inserts the
``restore`` word when the first argument is not a command name, and turns ``list files`` /
``list changed`` into the ``list-files`` / ``list-changed`` commands.
"""

# No ``from __future__ import annotations`` here: typer reads every command's annotations
# when it builds the command line, and from strings that is a compile and an eval per
# parameter, ~2 ms of every run (test_cli_imports.py checks they stay objects).

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from rdb_clikit.options import JsonOpt, QuietOpt, TimeoutOpt, epilog, make_app
from rdb_clikit.progress import progress_for
from rdb_clikit.protocol import NullProgress, Progress
from rdb_clikit.run import exit_now, run
from rdb_format.errors import UsageError
from rdb_format.exitcodes import ExitCode
from rdb_format.metadata import Record, path_key
from rdb_format.timestamps import format_timestring
from rdb_format.units import format_bytes
from rdb_restore.repo import open_repo, show
from rdb_restore.restore import RestoreOptions, limit_heap_growth, restore

if TYPE_CHECKING:
    from rdb_remote.spawn import RemoteLocation
    from rdb_restore.query import Method

# What a restore of the newest session needs is imported above; the rest (rdb_remote, the
# read-only queries, rdb_format.statistics) only by the commands or paths that use it:
# tests/rdb_restore/test_cli_imports.py keeps a local restore's imports to what it needs.

PROG = "rdb-restore"
#: --timeout's default: rdb_remote.connection.DEFAULT_TIMEOUT (a test checks they agree), not
#: imported from there, since importing rdb_remote costs every local run ~10 ms
DEFAULT_TIMEOUT = 300
COMMANDS = ("restore", "list", "list-files", "list-changed", "compare", "verify")
app = make_app(name=PROG)

AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="When: now (default), 3D, 2W, 1h30m, 5B (5 sessions back), 2026-11-22, "
        "2026-11-22T10:20:30+01:00, epoch seconds; rounded down to a session.",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1, help="Threads rebuilding files (default: one per CPU, at least 2)."
    ),
]
RemoteSchemaOpt = Annotated[
    str | None,
    typer.Option(
        "--remote-schema",
        help="The command that runs rdb-restore --server on the host of a host::/path "
        "location; %s is replaced by [user@]host (default: 'ssh -C %s rdb-restore --server').",
    ),
]
REMOTE_NOTE = (
    "A location [user@]host::/path is on another host: 'ssh -C host rdb-restore --server' "
    "is run there (see --remote-schema) and only the answer crosses the link."
)
TIME_NOTE = (
    "TIME is rounded down to the newest session at or before it (the oldest session if it is "
    "older than all of them)."
)


@app.callback(
    epilog=epilog(
        "rdb-restore /backups/home /tmp/home",
        "rdb-restore --at 3D /backups/home/alice/notes.txt /tmp/notes.txt",
        "rdb-restore list /backups/home",
        "rdb-restore list files --at 2B /backups/home alice",
        "rdb-restore list changed --since 1W /backups/home",
        "rdb-restore compare --hash ~/work /backups/work",
        "rdb-restore verify --at 5B /backups/home",
    )
)
def _main() -> None:
    """Restore any session of an rdiff-backup 2.2 repository, and answer questions about it.

    'rdb-restore REPO TARGET' is short for 'rdb-restore restore REPO TARGET'; 'list files'
    and 'list changed' are written with a space. 'rdb-restore COMMAND --help' for more.
    """


def _remote(location: str) -> "RemoteLocation | None":
    """``[user@]host::path`` as a RemoteLocation; None for a local path (rdb_remote is only
    imported for a location that may be remote)."""
    if "::" not in location:
        return None
    from rdb_remote.spawn import parse_location

    return parse_location(location)


def _progress(json_output: bool, quiet: bool, *, stream_stdout: bool = True) -> Progress:
    return progress_for(
        prog=PROG,
        json_lines=json_output,
        quiet=quiet,
        json_stream=sys.stdout if stream_stdout else sys.stderr,
    )


def _emit(json_output: bool, document: dict[str, object]) -> None:
    import json  # only for --json: its import is start-up cost

    print(json.dumps(document), flush=True)
    del json_output


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


@app.command(
    "restore",
    epilog=epilog(
        "rdb-restore /backups/home /tmp/home-now",
        "rdb-restore --at 3D /backups/home/alice/notes.txt /tmp/notes.txt",
        "rdb-restore --at 2026-11-22 /backups/home/alice /tmp/alice",
        "rdb-restore --at 5B /backups/home/etc/fstab - | diff - /etc/fstab",
        "rdb-restore /backups/home/rdiff-backup-data/increments/alice/x.2026-11-22T10:20:30+01:00"
        ".diff.gz /tmp/x",
        "rdb-restore --force --at 1W /backups/home /srv/home-restored",
        "rdb-restore --at 2D nas::/backups/home/alice /tmp/alice",
        notes="REPO is the repository, or any path inside its mirror (it may exist only in "
        "older sessions), or one increment file (restored as of its own time). TARGET must not "
        "exist or be an empty directory (--force overwrites it and removes what is not in the "
        "backup); '-' writes one regular file to stdout. A new or empty TARGET is built as "
        "'.rdb-restore-partial.<pid>.<name>' next to it and renamed when complete, so a failed "
        "restore leaves no TARGET (the next run removes what a killed one left). Nothing is "
        "ever written outside "
        "TARGET: no symbolic link is followed, whether in the repository or in TARGET. "
        "Files whose content does not match their recorded SHA1 are left out, named, and "
        "the exit status is 13. " + REMOTE_NOTE + " " + TIME_NOTE,
    ),
)
def restore_command(
    location: Annotated[str, typer.Argument(help="REPO, REPO/PATH, or an increment file.")],
    target: Annotated[str, typer.Argument(help="Where to restore; '-' for stdout.")],
    at: AtOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Restore into a non-empty TARGET (overwriting it).")
    ] = False,
    numeric_ids: Annotated[
        bool,
        typer.Option(
            "--preserve-numerical-ids",
            help="Owners by the recorded uid/gid, not by user and group name.",
        ),
    ] = False,
    workers: WorkersOpt = None,
    remote_schema: RemoteSchemaOpt = None,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Restore REPO (or a path in it) into TARGET as it was at TIME (default: the newest)."""
    to_stdout = target == "-"
    progress = _progress(json_output, quiet, stream_stdout=not to_stdout)
    options = RestoreOptions(force=force, numeric_ids=numeric_ids, workers=workers)
    remote = _remote(location)
    if remote is not None:
        from rdb_restore.remote import remote_restore

        result = remote_restore(
            remote,
            target,
            at=at,
            options=options,
            progress=progress,
            schema=remote_schema,
            timeout=timeout or None,
        )
    else:
        result = restore(location, target, at=at, options=options, progress=progress)
    summary: dict[str, object] = {
        "source": result.source,
        "target": result.target,
        "time": result.time,
        "time_string": format_timestring(result.time),
        "entries": result.entries,
        "files": result.files,
        "bytes": result.bytes,
        "warnings": result.warnings,
    }
    if result.received is not None:
        summary["bytes_received"] = result.received
    if json_output and not to_stdout:
        _emit(json_output, {"summary": summary})
    elif json_output:
        import json

        print(json.dumps({"summary": summary}), file=sys.stderr, flush=True)
    else:
        _say(
            quiet or to_stdout,
            f"restored {result.source} as of {format_timestring(result.time)} into "
            f"{result.target}: {result.entries} entries, {result.files} files "
            f"({format_bytes(result.bytes)})",
        )
    return int(ExitCode.WARNINGS if result.warnings else ExitCode.OK)


@app.command(
    "list",
    epilog=epilog(
        "rdb-restore list /backups/home",
        "rdb-restore list files --at 3D /backups/home alice",
        "rdb-restore list changed --since 1W /backups/home",
        "rdb-restore list --json /backups/home | jq '.sessions[].time_string'",
    ),
)
def list_command(
    repo: Annotated[str, typer.Argument(help="The repository.")],
    remote_schema: RemoteSchemaOpt = None,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    json_output: JsonOpt = False,
) -> int:
    """List the sessions of REPO (oldest first) with their sizes. Also: 'list files',
    'list changed'."""
    remote = _remote(repo)
    if remote is not None:
        from rdb_restore.remote import remote_sessions

        sessions = remote_sessions(remote, schema=remote_schema, timeout=timeout or None)
    else:
        from rdb_restore.query import list_sessions

        with open_repo(repo) as opened:
            sessions = list_sessions(opened)
    if json_output:
        _emit(
            True,
            {
                "sessions": [
                    {
                        "time": s.time,
                        "time_string": format_timestring(s.time),
                        "size": s.size,
                        "total_size": s.total_size,
                        "current": s.current,
                    }
                    for s in sessions
                ]
            },
        )
        return 0
    print(f"{'Session':<27} {'Size':>12} {'Cumulative':>12}")
    for s in sessions:
        mark = "  (current mirror)" if s.current else ""
        size, total = format_bytes(s.size), format_bytes(s.total_size)
        print(f"{format_timestring(s.time):<27} {size:>12} {total:>12}{mark}")
    return 0


def _local_only(location: str, command: str) -> None:
    if _remote(location) is not None:
        raise UsageError(
            f"{location}: {command} reads the repository on this host; run it on the "
            "repository's host (restore, list, list files and verify work over ssh)"
        )


def _write_path(raw: bytes) -> None:
    sys.stdout.buffer.write(raw + b"\n")


@app.command(
    "list-files",
    epilog=epilog(
        "rdb-restore list files /backups/home",
        "rdb-restore list files --at 2B /backups/home alice/docs",
        "rdb-restore list files --json --at 3D /backups/home | jq -r '.files[].path'",
        notes="Paths are relative to the repository, '.' for its top, one per line, raw "
        "bytes. " + TIME_NOTE,
    ),
)
def list_files_command(
    repo: Annotated[str, typer.Argument(help="The repository (or REPO/PATH).")],
    path: Annotated[str | None, typer.Argument(help="Only under this path.")] = None,
    at: AtOpt = None,
    remote_schema: RemoteSchemaOpt = None,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    json_output: JsonOpt = False,
) -> int:
    """List the files of REPO (or a path in it) as they were at TIME ('list files')."""
    parts = [p for p in Path(path).parts if p not in ("", ".", "/")] if path else []
    remote = _remote(repo)
    if remote is not None:
        from rdb_remote.spawn import RemoteLocation
        from rdb_restore.remote import remote_files

        where = RemoteLocation(remote.host, os.path.join(remote.path, *parts))
        listing = remote_files(where, at=at, schema=remote_schema, timeout=timeout or None)
        with listing as (when, records):
            _print_files(when, records, json_output)
        return 0
    with open_repo(repo) as opened:
        opened.sub = (*opened.sub, *map(os.fsencode, parts))
        when = opened.resolve(at)
        _print_files(when, (e.record for e in opened.entries_at(when)), json_output)
    return 0


def _print_files(when: int, records: Iterator[Record], json_output: bool) -> None:
    """One path per line, raw bytes; or one JSON document (time, files with type and size)."""
    if json_output:
        files = [{"path": show(path_key(r.path)), "type": r.type, "size": r.size} for r in records]
        _emit(True, {"time": when, "time_string": format_timestring(when), "files": files})
        return
    for record in records:
        _write_path(record.path)
    sys.stdout.flush()


@app.command(
    "list-changed",
    epilog=epilog(
        "rdb-restore list changed --since 3D /backups/home",
        "rdb-restore list changed --since 2B --json /backups/home/alice",
        notes="Compares the metadata of the session at --since with the current mirror; "
        "prints 'new', 'deleted' or 'changed' and the path, like rdiff-backup's "
        "list files --changed-since.",
    ),
)
def list_changed_command(
    repo: Annotated[str, typer.Argument(help="The repository (or REPO/PATH).")],
    since: Annotated[str, typer.Option("--since", help="The older session (a time spec).")],
    json_output: JsonOpt = False,
) -> int:
    """List what changed in REPO (or a path in it) since the session at TIME."""
    from rdb_restore.query import list_changed

    _local_only(repo, "list changed")
    with open_repo(repo) as opened:
        when = opened.resolve(since)
        changes = list_changed(opened, when)
        if json_output:
            items = [{"change": kind, "path": show(r.components)} for kind, r in changes]
            _emit(True, {"since": when, "current": opened.current_time, "changes": items})
            return 0
        for kind, record in changes:
            sys.stdout.buffer.write(kind.ljust(7).encode() + b" " + record.path + b"\n")
    sys.stdout.flush()
    return 0


@app.command(
    "compare",
    epilog=epilog(
        "rdb-restore compare ~/work /backups/work",
        "rdb-restore compare --hash --at 2B ~/work /backups/work",
        "rdb-restore compare --full ~/work/src /backups/work/src",
        notes="Prints 'new: PATH' (only in SRC), 'deleted: PATH' (only in the backup) and "
        "'changed: PATH (what)'. Exit status 0 when they match, 1 when they differ.",
    ),
)
def compare_command(
    source: Annotated[Path, typer.Argument(help="The directory to compare.")],
    repo: Annotated[str, typer.Argument(help="The repository (or REPO/PATH).")],
    at: AtOpt = None,
    hash_: Annotated[
        bool, typer.Option("--hash", help="Also compare SHA1s of regular files.")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Also compare the bytes of regular files.")
    ] = False,
    workers: WorkersOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Compare SRC with REPO (or a path in it) at TIME: metadata, --hash or --full content."""
    from rdb_restore.query import compare

    _local_only(repo, "compare")
    method: Method = "full" if full else "hash" if hash_ else "meta"
    with open_repo(repo) as opened:
        when = opened.resolve(at)
        result = compare(
            source,
            opened,
            when,
            method=method,
            workers=workers,
            progress=NullProgress() if json_output else _progress(False, quiet),
        )
    if json_output:
        _emit(
            True,
            {
                "time": when,
                "time_string": format_timestring(when),
                "method": method,
                "compared": result.compared,
                "same": result.same,
                "differences": [
                    {"change": d.kind, "path": d.path, "what": d.what} for d in result.differences
                ],
            },
        )
    else:
        for difference in result.differences:
            print(difference.line())
        _say(
            quiet,
            f"compared {result.compared} entries with the session {format_timestring(when)}: "
            + ("no differences" if result.same else f"{len(result.differences)} differences"),
        )
    return int(ExitCode.OK if result.same else ExitCode.FAILURE)


@app.command(
    "verify",
    epilog=epilog(
        "rdb-restore verify /backups/home",
        "rdb-restore verify --at 3B /backups/home",
        "rdb-restore verify --json /backups/home | jq '.bad'",
        notes="Rebuilds every regular file of the session and checks its SHA1 against the "
        "one recorded in the metadata; each bad file is printed on stdout. Exit status 0 when "
        "all match, 13 when any file is bad. " + TIME_NOTE,
    ),
)
def verify_command(
    repo: Annotated[str, typer.Argument(help="The repository (or REPO/PATH).")],
    at: AtOpt = None,
    workers: WorkersOpt = None,
    remote_schema: RemoteSchemaOpt = None,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Check every regular file of REPO as of TIME against its recorded SHA1."""
    remote = _remote(repo)
    if remote is not None:
        from rdb_restore.remote import remote_verify

        result = remote_verify(
            remote, at=at, workers=workers, schema=remote_schema, timeout=timeout or None
        )
    else:
        from rdb_restore.query import verify

        with open_repo(repo) as opened:
            progress: Progress = NullProgress() if json_output else _progress(False, quiet)
            result = verify(opened, opened.resolve(at), workers=workers, progress=progress)
    when = result.time
    if json_output:
        _emit(
            True,
            {
                "time": when,
                "time_string": format_timestring(when),
                "checked": result.checked,
                "bytes": result.bytes,
                "ok": result.ok,
                "bad": result.bad,
                "unchecked": result.unchecked,
            },
        )
    else:
        for line in result.bad:
            print(f"bad: {line}")
        _say(
            quiet,
            f"verified {result.checked} files ({format_bytes(result.bytes)}) of the session "
            f"{format_timestring(when)}: "
            + ("all match their SHA1" if result.ok else f"{len(result.bad)} bad"),
        )
    return int(ExitCode.OK if result.ok else ExitCode.CORRUPT)


def serve_main(extra: Sequence[str]) -> int:
    """``rdb-restore --server``: the remote half on stdin/stdout (docs/protocol.md), run by
    ssh. Errors go to the client in a Failed message (it prints them); only what cannot be
    delivered is printed here, on stderr (which ssh passes to the client's terminal)."""
    from rdb_format.errors import ConnectionFailed, RdbError
    from rdb_remote.spawn import serve_stdio, server_timeout

    try:
        timeout = server_timeout(extra)
    except RdbError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return int(error.exit_code)
    from rdb_restore import __version__
    from rdb_restore.protocol import CODEC, Failed, hello
    from rdb_restore.server import serve

    try:
        connection, _ = serve_stdio(hello(__version__), CODEC, timeout=timeout)
    except RdbError as error:  # the client reports handshake problems itself
        return int(error.exit_code)
    try:
        return serve(connection)
    except ConnectionFailed as error:  # the client went away: it knows, nobody to tell
        return int(error.exit_code)
    except RdbError as error:  # the connection is unusable: stderr is all that is left
        print(f"{PROG} --server: {error}", file=sys.stderr, flush=True)
        return int(error.exit_code)
    except Exception as error:  # a bug: the traceback on stderr, one line to the client
        import traceback

        traceback.print_exc()
        failure = f"internal error of rdb-restore --server: {error!r}"
        with contextlib.suppress(RdbError):
            connection.send(Failed(int(ExitCode.FAILURE), failure))
        return int(ExitCode.FAILURE)
    finally:
        connection.close()


def shim(argv: Sequence[str]) -> list[str]:
    """``REPO TARGET`` → ``restore REPO TARGET``; ``list files`` → ``list-files``."""
    args = list(argv)
    first = next((i for i, a in enumerate(args) if not a.startswith("-") or a == "-"), None)
    if first is None:
        return args
    word = args[first]
    if word == "list" and first + 1 < len(args) and args[first + 1] in ("files", "changed"):
        return [*args[:first], f"list-{args[first + 1]}", *args[first + 2 :]]
    if word in COMMANDS:
        return args
    if any(a in ("-h", "--help") for a in args[:first]):
        return args
    return ["restore", *args]


def main() -> NoReturn:
    limit_heap_growth()
    if sys.argv[1:2] == ["--server"]:
        exit_now(serve_main(sys.argv[2:]))
    exit_now(run(app, prog=PROG, argv=shim(sys.argv[1:])))
