"""The one place where an rdb-* command's exceptions become a message and an exit status.

==========================  ===========  ==============================================
raised                      exit status  printed
==========================  ===========  ==============================================
``RdbError``                its code     ``<prog>: <message>`` on stderr; with ``--json``
                                         ``{"error": {...}}`` on stdout instead
usage error (typer)         2            ``<prog>: <message> (try '<prog> --help')``; with
                                         ``--json`` the ``{"error": {...}}`` of a ``UsageError``
``KeyboardInterrupt``       130          ``<prog>: interrupted``
broken pipe on stdout       1            nothing
the machine's ``OSError``   1            as an ``RdbError``: ``<prog>: [<file>: ]<error>``
anything else               1            the traceback (it is a bug)
==========================  ===========  ==============================================

The machine's ``OSError``: a full disk or quota (``ENOSPC``, ``EDQUOT``), a file too large
for it (``EFBIG``), an I/O error (``EIO``), a read-only file system (``EROFS``), too many open
files (``EMFILE``, ``ENFILE``): nothing a fix here would change, so no traceback asking for a
report. Any other ``OSError`` the core did not turn into an ``RdbError`` is a bug.

A command returns its exit status (an int such as ``ExitCode.WARNINGS``) or None (0).
"""

from __future__ import annotations

import atexit
import errno
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import typer
import typer.main

from rdb_clikit.coercion import install
from rdb_format.errors import RdbError, UsageError
from rdb_format.exitcodes import ExitCode

#: errno values of the machine's trouble, not of a bug (see above)
_MACHINE = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EMFILE, errno.ENFILE}
)


def _wants_json(args: Sequence[str]) -> bool:
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_document(error: RdbError) -> dict[str, object]:
    """The JSON object printed for an error with ``--json``."""
    return {
        "error": {
            "type": type(error).__name__,
            "exit_code": int(error.exit_code),
            "message": str(error),
        }
    }


def _is_usage_error(error: BaseException) -> bool:
    # typer vendors click privately: recognise its exceptions by what they carry, not by class.
    return isinstance(getattr(error, "exit_code", None), int) and callable(
        getattr(error, "format_message", None)
    )


def standard_streams() -> None:
    """Give a standard descriptor the command was started without (``>&-``, ``2>&-``, as cron
    jobs may be run) /dev/null: Python has None there, and ``print(..., file=None)`` writes to
    stdout (into ``rdb-restore ... -``'s bytes), ``None.isatty()`` fails, and the first file
    the command opens would take the free number, where anything written to "stdout" or
    "stderr" would then land."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free number: fd (those below are open)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


def run(app: typer.Typer, *, prog: str | None = None, argv: Sequence[str] | None = None) -> int:
    """Run ``app`` on ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    standard_streams()
    args = list(sys.argv[1:] if argv is None else argv)
    name = prog or app.info.name or Path(sys.argv[0]).name or "rdb"
    json_mode = _wants_json(args)
    # What ``app(...)`` does, minus typer's traceback hook (we report errors ourselves) and
    # with plain values converted without pydantic (rdb_clikit.coercion: ~0.1 s a run).
    command = typer.main.get_command(app)
    install(command)
    try:
        result = command(args=args, prog_name=name, standalone_mode=False)
    except RdbError as error:
        return _report(error, name, json_mode=json_mode)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr, flush=True)
        return int(ExitCode.INTERRUPTED)
    except typer.Abort:
        print(f"{name}: aborted", file=sys.stderr, flush=True)
        return int(ExitCode.FAILURE)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BrokenPipeError:
        return _broken_pipe()
    except Exception as error:
        if _is_usage_error(error):
            message = _one_line(error.format_message())  # type: ignore[attr-defined]
            if json_mode:  # a script asked for JSON: the error is one too, on stdout
                return _report(UsageError(f"{message} (try '{name} --help')"), name, json_mode=True)
            print(f"{name}: {message} (try '{name} --help')", file=sys.stderr, flush=True)
            return int(error.exit_code)  # type: ignore[attr-defined]
        if isinstance(error, OSError) and error.errno == errno.EPIPE:
            return _broken_pipe()
        if isinstance(error, OSError) and error.errno in _MACHINE:
            message = error.strerror or os.strerror(error.errno)
            path = error.filename
            if not isinstance(path, str | bytes | os.PathLike):
                path = None  # a descriptor's number (os.fstat(fd)) names nothing
            return _report(RdbError(message, path=path), name, json_mode=json_mode)
        traceback.print_exc()
        print(
            f"{name}: internal error (a bug); please report it with the traceback above",
            file=sys.stderr,
            flush=True,
        )
        return int(ExitCode.FAILURE)
    if result == ExitCode.INTERRUPTED:  # typer turns KeyboardInterrupt into Exit(130)
        print(f"{name}: interrupted", file=sys.stderr, flush=True)
    if result is None:
        return int(ExitCode.OK)
    if isinstance(result, int):
        return int(result)
    return int(ExitCode.OK)


def _report(error: RdbError, name: str, *, json_mode: bool) -> int:
    """Print ``error`` as one line on stderr (with ``--json``: a JSON object on stdout);
    its exit status."""
    if json_mode:
        import json  # only for --json: its import is start-up cost

        print(json.dumps(error_document(error)), flush=True)
    else:
        print(f"{name}: {_one_line(str(error))}", file=sys.stderr, flush=True)
    return int(error.exit_code)


def _broken_pipe() -> int:
    # The reader went away (e.g. `| head`): stop quietly, and keep Python from complaining
    # again when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return int(ExitCode.FAILURE)


def exit_now(code: int) -> NoReturn:
    """Exit with ``code``, skipping the interpreter's teardown when nothing is left for it to
    do: it frees every object and module one by one, ~20 ms after a backup or a restore of
    20,000 files, longer than some whole commands take. Python's exit handlers run and stdout
    and stderr are flushed first (in that order, as Python's own exit), then the C library's
    ``exit``, which runs the C exit handlers and destructors (an ``LD_PRELOAD`` tool's report,
    the kill-shim tests' count); a stream the command started without is skipped. With another
    thread still alive, the usual ``sys.exit`` (which waits for it)."""
    if any(
        thread is not threading.current_thread() and not thread.daemon
        for thread in threading.enumerate()
    ):
        sys.exit(code)
    atexit._run_exitfuncs()  # before the flush, as Python's own exit: what they print is kept
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started without that descriptor (``>&-``)
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a reader gone (``| head``) or a stream closed: nothing more can be told
    import ctypes  # ~2 ms, only here

    ctypes.CDLL(None).exit(code)
    os._exit(code)  # not reached


def main(app: typer.Typer, *, prog: str | None = None) -> NoReturn:
    """Console-script entry: ``run`` then exit with its status."""
    exit_now(run(app, prog=prog))
