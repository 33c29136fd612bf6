"""The ``rdb-mirror`` command: one backup session (or ``--regress`` / ``--check``)."""

# No ``from __future__ import annotations`` here: typer reads every command's annotations
# when it builds the command line, and from strings that is a compile and an eval per
# parameter, ~2 ms of every run (test_cli_imports.py checks they stay objects).

import os
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from rdb_clikit.options import JsonOpt, QuietOpt, TimeoutOpt, epilog, make_app
from rdb_clikit.protocol import Progress
from rdb_clikit.run import error_document, exit_now, run
from rdb_format.errors import UsageError
from rdb_format.exitcodes import ExitCode
from rdb_format.timestamps import format_timestring
from rdb_format.units import format_bytes
from rdb_mirror.selection import Selection, extract_selection_args
from rdb_mirror.session import BackupOptions, BackupResult, backup

if TYPE_CHECKING:
    from rdb_remote.spawn import RemoteLocation

# rdb_remote and rdb_mirror.remote (the ssh transport, its codec) are imported only for a
# location that may be remote: a local backup does not load them
# (tests/rdb_mirror/test_cli_imports.py).

PROG = "rdb-mirror"
#: --timeout's default: rdb_remote.connection.DEFAULT_TIMEOUT (a test checks they agree), not
#: imported from there, since importing rdb_remote costs every local run
DEFAULT_TIMEOUT = 300
app = make_app(name=PROG)

NOTES = (
    "DEST becomes a browsable copy of SRC; DEST/rdiff-backup-data keeps what restores every "
    "earlier session, in rdiff-backup 2.2's format (rdiff-backup 2.2.7 lists, verifies and "
    "restores it, and rdb-mirror continues repositories rdiff-backup made). An interrupted "
    "session is rolled back by the next run, or by --regress. Files that cannot be read are "
    "listed in rdiff-backup-data/error_log.<time>.data and the exit status is 3."
)

SELECTION_HELP = (
    "Selection options, as rdiff-backup 2.2.7's (docs/selection.md): they may come anywhere "
    "on the command line, interleaved in any order; they are applied in that order and the "
    "first one with an opinion decides; an entry none decides is included. Globs are matched "
    "against the path formed from SRC as typed (SRC/a/*.py, or '**' patterns).",
    "--include GLOB, --exclude GLOB: the entry and everything below it ('**' crosses '/', "
    "'ignorecase:' prefix).",
    "--include-regexp RE, --exclude-regexp RE: re.search on the full path.",
    "--include-filelist FILE, --exclude-filelist FILE, --include-filelist-stdin, "
    "--exclude-filelist-stdin: literal paths, one per line ('+ ' / '- ' prefixes).",
    "--include-globbing-filelist FILE, --exclude-globbing-filelist FILE, "
    "--include-globbing-filelist-stdin, --exclude-globbing-filelist-stdin: one glob per line.",
    "--null-separator: file lists are NUL-separated.",
    "--include-if-present NAME, --exclude-if-present NAME: directories containing NAME.",
    "--exclude-device-files, --exclude-fifos, --exclude-sockets, --exclude-symbolic-links "
    "(--include-symbolic-links), --exclude-special-files (--include-special-files), "
    "--exclude-other-filesystems.",
    "--max-file-size BYTES, --min-file-size BYTES: regular files larger / smaller than BYTES.",
)

#: The selection options taken out of argv by :func:`run_cli` before typer parses the rest.
_SELECTION_ARGS: ContextVar[tuple[tuple[str, str | None], ...]] = ContextVar(
    "rdb_mirror_selection_args", default=()
)


@app.command(
    epilog=epilog(
        "rdb-mirror ~/work /backups/work",
        "rdb-mirror --current-time 1700000000 src repo",
        "rdb-mirror --json src repo | jq 'select(.summary)'",
        "rdb-mirror --regress /backups/work",
        "rdb-mirror --check /backups/work",
        "rdb-mirror --exclude '**/__pycache__' --exclude-if-present .nobackup ~/work /b/work",
        "rdb-mirror --include ~/work/src --exclude '**' ~/work /backups/src-only",
        "rdiff-backup restore --at 2B /backups/work /tmp/work-two-sessions-ago",
        notes="\n\n".join((NOTES, *SELECTION_HELP)),
    )
)
def main_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="SRC DEST for a backup; only DEST with --regress or --check.",
            show_default=False,
        ),
    ],
    current_time: Annotated[
        int | None,
        typer.Option(
            "--current-time",
            help="Session time in epoch seconds instead of now (tests, scripted histories).",
        ),
    ] = None,
    do_regress: Annotated[
        bool,
        typer.Option("--regress", help="Roll back an interrupted session of DEST, then stop."),
    ] = False,
    do_check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Check that DEST is consistent (one session marker, metadata for every "
            "session, every increment and data file readable) and that its mirror matches "
            "the metadata (SHA1s), then stop.",
        ),
    ] = False,
    no_compression: Annotated[
        bool, typer.Option("--no-compression", help="Do not gzip increments and statistics.")
    ] = False,
    no_compression_regexp: Annotated[
        str | None,
        typer.Option(
            "--no-compression-regexp",
            help="Increments of paths matching this regexp stay uncompressed "
            "(default: rdiff-backup's list of compressed formats).",
        ),
    ] = None,
    chars_to_quote: Annotated[
        str | None,
        typer.Option(
            "--chars-to-quote",
            help="Quote these characters in the names a new repository stores (a regex class "
            "body, e.g. 'A-Z' for a case-insensitive destination) instead of what the probe "
            "of DEST finds; rdiff-backup's option of the same name. A name too long once "
            "quoted is kept under rdiff-backup-data/long_filename_data.",
        ),
    ] = None,
    no_eas: Annotated[bool, typer.Option("--no-eas", help="Do not keep extended attributes.")] = (
        False
    ),
    no_acls: Annotated[bool, typer.Option("--no-acls", help="Do not keep POSIX ACLs.")] = False,
    no_file_statistics: Annotated[
        bool, typer.Option("--no-file-statistics", help="Do not write file_statistics.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Go on although a marker's PID is alive (it is not a backup)."
        ),
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Threads for reading and deltas.")
    ] = None,
    remote_schema: Annotated[
        str | None,
        typer.Option(
            "--remote-schema",
            help="The command that starts the remote side when SRC or DEST is "
            "[user@]host::/path; %s is the host. Default: 'ssh -C %s rdb-mirror --server'.",
            show_default=False,
        ),
    ] = None,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> int:
    """Back up SRC into the repository DEST (created if new or empty): one session."""
    selection_args = _SELECTION_ARGS.get()
    if (do_regress or do_check) and selection_args:
        raise UsageError(
            f"{selection_args[0][0]}: selection options apply to a backup, "
            "not to --regress or --check"
        )
    if do_regress or do_check:
        if len(paths) != 1:
            raise UsageError("--regress and --check take one path: the repository DEST")
    elif len(paths) != 2:
        raise UsageError("give SRC and DEST (or --regress DEST / --check DEST)")
    remote_src, remote_dest = (
        (_remote(p) for p in paths[:2])
        if len(paths) == 2
        else (
            None,
            _remote(paths[0]),
        )
    )
    if remote_src is not None and remote_dest is not None:
        raise UsageError("SRC and DEST are both remote; one of them must be on this host")
    if (do_regress or do_check) and remote_dest is not None:
        raise UsageError(
            f"{paths[0]}: --regress and --check run on the repository's host "
            "(ssh HOST rdb-mirror --regress PATH); a remote backup regresses by itself"
        )
    if remote_schema is not None and remote_src is None and remote_dest is None:
        raise UsageError("--remote-schema applies when SRC or DEST is [user@]host::/path")
    selection: Selection | None = None
    if selection_args and remote_src is None:
        # globs are matched against the source path as the user typed it (rdiff-backup's way);
        # every list is read and every option checked before anything is written
        selection = Selection.from_options(selection_args, root=paths[0], stdin=sys.stdin.buffer)
    progress = _progress(json_output, quiet)
    if do_regress or do_check:
        if do_regress:
            from rdb_mirror.regress import regress

            done = regress(paths[0], progress, force=force)
            summary: dict[str, object] = {"regressed": done is not None}
            if done is not None:
                summary.update(
                    failed_time=done.failed_time,
                    restored_time=done.restored_time,
                    rebuilt=done.rebuilt,
                    recreated=done.recreated,
                    deleted=done.deleted,
                    increments_removed=done.increments_removed,
                )
                text = (
                    f"regressed the unfinished session {format_timestring(done.failed_time)}; "
                    f"the repository is back at {format_timestring(done.restored_time)}"
                )
            else:
                text = "nothing to regress: the last session finished"
            _say(json_output, quiet, summary, text)
            return int(ExitCode.OK)
        from rdb_mirror.check import check

        result = check(paths[0], progress, workers=workers)
        ok = not result.problems
        for problem in result.problems[:50]:
            progress.warning(problem)
        _say(
            json_output,
            quiet,
            {
                "time": result.time,
                "sessions": result.sessions,
                "entries": result.entries,
                "files": result.files,
                "unfinished": result.unfinished,
                "problems": result.problems,
            },
            f"checked {result.sessions} sessions, {result.files} repository files and the "
            f"{result.entries} mirror entries of {format_timestring(result.time)}: "
            + ("all match" if ok else f"{len(result.problems)} problems"),
        )
        if result.unfinished:
            return int(ExitCode.UNFINISHED)
        return int(ExitCode.OK if ok else ExitCode.CORRUPT)
    options = BackupOptions(
        current_time=current_time,
        selection=selection,
        compression=not no_compression,
        no_compression_regexp=no_compression_regexp,
        file_statistics=not no_file_statistics,
        eas=not no_eas,
        acls=not no_acls,
        workers=workers,
        force=force,
        chars_to_quote=None if chars_to_quote is None else os.fsencode(chars_to_quote),
    )
    if chars_to_quote is not None and remote_dest is not None:
        raise UsageError("--chars-to-quote applies when DEST is on this host")
    if remote_dest is not None:
        from rdb_mirror.remote import backup_to_remote

        result_ = backup_to_remote(
            paths[0], remote_dest, _schema(remote_schema), options, progress,
            timeout=timeout or None,
        )  # fmt: skip
    elif remote_src is not None:
        from rdb_mirror.remote import RemoteSource

        source = RemoteSource(
            remote_src, _schema(remote_schema), tuple(selection_args), workers,
            stdin=sys.stdin.buffer,
            timeout=timeout or None,
        )  # fmt: skip
        try:
            result_ = backup(source, paths[1], options, progress)
        except BaseException as error:
            source.close(error)
            raise
        source.close()
        result_.bytes_sent = source.connection.bytes_sent
        result_.bytes_received = source.connection.bytes_received
    else:
        result_ = backup(paths[0], paths[1], options, progress)
    _say(json_output, quiet, _summary(result_), _text(result_))
    return int(ExitCode.WARNINGS if result_.errors else ExitCode.OK)


def _summary(result: BackupResult) -> dict[str, object]:
    s = result.statistics
    return {
        "source": str(result.source),
        "destination": str(result.destination),
        "time": result.time,
        "time_string": format_timestring(result.time),
        "previous_time": result.previous_time,
        "new_repository": result.new_repository,
        "regressed": result.regressed is not None,
        "source_files": s.source_files,
        "source_file_size": s.source_file_size,
        "new_files": s.new_files,
        "changed_files": s.changed_files,
        "deleted_files": s.deleted_files,
        "increment_files": s.increment_files,
        "increment_file_size": s.increment_file_size,
        "bytes_read": result.bytes_read,
        "bytes_sent": result.bytes_sent,
        "bytes_received": result.bytes_received,
        "elapsed": round(s.elapsed_time, 3),
        "warnings": result.errors,
    }


def _text(result: BackupResult) -> str:
    s = result.statistics
    kind = "first backup" if result.previous_time is None else "backup"
    lines = [
        f"{kind} {format_timestring(result.time)} of {result.source} into {result.destination}: "
        f"{s.source_files} entries ({format_bytes(s.source_file_size)}), "
        f"{s.new_files} new, {s.changed_files} changed, {s.deleted_files} deleted; "
        f"{s.increment_files} increments ({format_bytes(s.increment_file_size)}); "
        f"{s.elapsed_time:.2f} s"
    ]
    if result.regressed is not None:
        lines.append(
            f"the unfinished session {format_timestring(result.regressed.failed_time)} "
            "was rolled back first"
        )
    if result.errors:
        lines.append(
            f"{len(result.errors)} files could not be backed up; see error_log.*.data "
            "(exit status 3)"
        )
    return "\n".join(lines)


def _remote(location: str) -> "RemoteLocation | None":
    """``[user@]host::path`` as a RemoteLocation; None for a local path (rdb_remote is only
    imported for a location that may be remote)."""
    if "::" not in location:
        return None
    from rdb_remote.spawn import parse_location

    return parse_location(location)


def _schema(given: str | None) -> str:
    """--remote-schema, or the default one."""
    from rdb_remote.spawn import default_schema

    return given or default_schema(PROG)


def _progress(json_output: bool, quiet: bool) -> Progress:
    """JSON lines on stdout, nothing (quiet), a rich bar on a terminal, else plain warnings."""
    from rdb_clikit.progress import progress_for

    return progress_for(prog=PROG, json_lines=json_output, quiet=quiet)


def _say(json_output: bool, quiet: bool, summary: dict[str, object], text: str) -> None:
    if json_output:
        import json  # only for --json: its import is start-up cost

        print(json.dumps({"summary": summary}), flush=True)
    elif not quiet:
        print(text, file=sys.stderr, flush=True)


def run_cli(argv: Sequence[str]) -> int:
    """Run the command on ``argv`` (without the program name); returns the exit status.

    The selection options are taken out first (typer cannot keep their interleaved order)
    and handed to the command; the rest goes to typer.
    """
    if list(argv[:1]) == ["--server"]:
        return _serve(argv[1:])
    try:
        selection_args, rest = extract_selection_args(argv)
    except UsageError as error:
        if "--json" in argv[: argv.index("--") if "--" in argv else len(argv)]:
            import json

            print(json.dumps(error_document(error)), flush=True)
        else:
            print(f"{PROG}: {error}", file=sys.stderr, flush=True)
        return int(error.exit_code)
    token = _SELECTION_ARGS.set(tuple(selection_args))
    try:
        return run(app, prog=PROG, argv=rest)
    finally:
        _SELECTION_ARGS.reset(token)


def _serve(extra: Sequence[str]) -> int:
    """``rdb-mirror --server``: one session's remote half on stdin/stdout (docs/protocol.md).

    Errors go back to the client in a Failed message (it prints them); only what cannot be
    delivered is printed here, on stderr (which ssh passes to the client's terminal).
    """
    from rdb_format.errors import RdbError
    from rdb_mirror.protocol import CODEC, Failed
    from rdb_mirror.remote import HELLO, RemoteFailure, serve_session
    from rdb_remote.spawn import serve_stdio, server_timeout

    try:
        timeout = server_timeout(extra)
    except RdbError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return int(error.exit_code)
    try:
        connection, _ = serve_stdio(HELLO, CODEC, timeout=timeout)
    except RdbError as error:  # the client reports handshake problems itself
        return int(error.exit_code)
    failure: RdbError | None = None
    try:
        serve_session(connection)
    except RemoteFailure as error:  # the client failed and told us: nothing to add
        connection.close()
        return int(error.exit_code)
    except RdbError as error:
        failure = error
    except Exception as error:  # a bug: the traceback on stderr, one line to the client
        import traceback

        traceback.print_exc()
        failure = RdbError(f"internal error of rdb-mirror --server: {error!r}")
    if failure is not None:
        try:
            connection.send(Failed(str(failure), int(failure.exit_code)))
        except RdbError:
            pass
    connection.close()
    if failure is not None:
        if connection.failure is not None:
            print(f"{PROG} --server: {failure}", file=sys.stderr, flush=True)
        return int(failure.exit_code)
    return int(ExitCode.OK)


def main() -> NoReturn:
    exit_now(run_cli(sys.argv[1:]))
