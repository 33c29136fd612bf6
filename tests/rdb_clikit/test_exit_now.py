"""rdb_clikit.run.exit_now: the exit status, buffered output and exit handlers survive skipping
the interpreter's teardown; a thread still at work is waited for."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: the children buffer their output, as a command's does (this environment may say otherwise)
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _run(script: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        timeout=60,
        check=False,
        env=BUFFERED,
    )


def test_status_output_and_exit_handlers(tmp_path: Path) -> None:
    marker = tmp_path / "atexit-ran"
    done = _run(
        f"""
        import atexit, sys
        from rdb_clikit.run import exit_now
        atexit.register(lambda: open({str(marker)!r}, "w").close())
        sys.stdout.write("x" * 100_000 + "end")  # still in the buffer: no newline, no flush
        sys.stderr.write("a warning")
        exit_now(3)
        """
    )
    assert done.returncode == 3
    assert done.stdout == b"x" * 100_000 + b"end"
    assert done.stderr == b"a warning"
    assert marker.exists()


def test_a_thread_still_at_work_is_waited_for(tmp_path: Path) -> None:
    written = tmp_path / "written-by-the-thread"
    done = _run(
        f"""
        import threading, time
        from rdb_clikit.run import exit_now
        def late() -> None:
            time.sleep(0.5)
            with open({str(written)!r}, "w") as out:
                out.write("done")
        threading.Thread(target=late).start()
        exit_now(0)
        """
    )
    assert done.returncode == 0, done.stderr
    assert written.read_text() == "done"


def test_a_reader_gone_does_not_change_the_status() -> None:
    """Output still buffered when the reader has gone (``rdb-restore ... - | head``): the
    flush fails (EPIPE), the status stays the command's (Python's own exit would make it 120)."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom rdb_clikit.run import exit_now\n"
            "time.sleep(0.5)\nsys.stdout.write('y' * 100)\nexit_now(5)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=BUFFERED,
    )
    with child:
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()  # the reader goes away before the child writes
        error = child.stderr.read()
        assert child.wait(timeout=60) == 5
    assert b"Traceback" not in error


def test_a_command_started_without_stdout_keeps_its_status() -> None:
    """Started with descriptor 1 closed (``cmd >&-``: sys.stdout is None), as a command run
    from cron or a service may be: its own status, no traceback (print() writes nothing)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom rdb_clikit.run import exit_now\n"
            "assert sys.stdout is None\nprint('lost')\nexit_now(4)",
        ],
        capture_output=False,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),
        timeout=60,
        check=False,
        env=BUFFERED,
    )
    assert done.returncode == 4, done.stderr
    assert b"Traceback" not in done.stderr


def test_what_an_exit_handler_prints_is_not_lost(tmp_path: Path) -> None:
    """Python runs the exit handlers before it flushes stdout: what one prints comes out."""
    done = _run(
        """
        import atexit
        from rdb_clikit.run import exit_now
        atexit.register(lambda: print("said at exit"))
        print("said before", end="; ")
        exit_now(0)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"said before; said at exit\n"
