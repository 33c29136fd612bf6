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
