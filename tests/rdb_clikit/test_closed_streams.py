"""A command started with stdout or stderr closed (``>&-``, ``2>&-``, as cron jobs may be run)
works: what goes to the closed one is dropped, nothing lands in the other or in a file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

#: a command that prints a line to stdout, a warning through its progress, and writes a file
#: it opened after start-up (which would take a closed descriptor's number)
APP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from rdb_clikit.options import make_app
    from rdb_clikit.progress import progress_for
    from rdb_clikit.run import main

    app = make_app(name="rdb-demo")

    @app.command()
    def demo(out: Path) -> int:
        progress = progress_for(prog="rdb-demo")
        with open(out, "w") as written:
            print("to stdout")
            progress.warning("a warning")
            written.write("the file's own text\\n")
        return 3

    sys.argv = ["rdb-demo", sys.argv[1]]
    main(app, prog="rdb-demo")
    """
)


def _run(redirect: str, out: Path) -> subprocess.CompletedProcess[bytes]:
    script = out.with_suffix(".py")
    script.write_text(APP)
    return subprocess.run(
        ["sh", "-c", f'exec "$0" "$1" "$2" {redirect}', sys.executable, str(script), str(out)],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_stderr_closed(tmp_path: Path) -> None:
    out = tmp_path / "written"
    done = _run("2>&-", out)
    assert done.returncode == 3
    assert done.stdout == b"to stdout\n"  # no warning mixed in
    assert out.read_text() == "the file's own text\n"


def test_stdout_closed(tmp_path: Path) -> None:
    out = tmp_path / "written"
    done = _run(">&-", out)
    assert done.returncode == 3
    assert b"a warning" in done.stderr
    assert out.read_text() == "the file's own text\n"  # the print did not land in it


def test_both_closed(tmp_path: Path) -> None:
    out = tmp_path / "written"
    done = _run(">&- 2>&-", out)
    assert done.returncode == 3
    assert out.read_text() == "the file's own text\n"
