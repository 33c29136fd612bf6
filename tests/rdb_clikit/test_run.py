"""rdb_clikit.run: every exception kind becomes the documented message and exit status."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Annotated

import pytest
import typer

from rdb_clikit.options import JsonOpt, QuietOpt, VerboseOpt, epilog, make_app
from rdb_clikit.run import run
from rdb_format.errors import CorruptRepository, RepositoryNotFound, UnfinishedSession
from rdb_format.exitcodes import ExitCode


def make(behaviour: str) -> typer.Typer:
    app = make_app(name="rdb-demo")

    @app.command(epilog=epilog("rdb-demo ok", "rdb-demo --json norepo"))
    def main(
        what: Annotated[str, typer.Argument(help="what to do")] = behaviour,
        *,
        count: Annotated[int, typer.Option(help="a number")] = 1,
        json_output: JsonOpt = False,
        quiet: QuietOpt = False,
        verbose: VerboseOpt = 0,
    ) -> int | None:
        """A demo command."""
        if what == "ok":
            print(f"ok {count} json={json_output} quiet={quiet} verbose={verbose}")
            return None
        if what == "warn":
            return ExitCode.WARNINGS
        if what == "norepo":
            raise RepositoryNotFound("is not a backup repository\nsecond line", path=Path("/x"))
        if what == "corrupt":
            raise CorruptRepository("truncated")
        if what == "unfinished":
            raise UnfinishedSession("regress first")
        if what == "interrupt":
            raise KeyboardInterrupt
        if what == "bug":
            raise ZeroDivisionError("oops")
        if what == "full":
            raise OSError(errno.ENOSPC, "cannot write a.bin: No space left on device")
        if what == "eio":
            raise OSError(errno.EIO, "Input/output error", "/x/y")
        if what == "eio-fd":  # os.fstat(fd), os.listdir(fd): the filename is the descriptor
            raise OSError(errno.EIO, "Input/output error", 3)
        if what == "missing":
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/z")
        if what == "exit":
            raise typer.Exit(7)
        return None

    return app


def test_success_returns_zero_and_passes_shared_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(make("ok"), argv=["ok", "--count", "3", "--json", "-q", "-vv"]) == 0
    assert capsys.readouterr().out == "ok 3 json=True quiet=True verbose=2\n"


def test_returned_status_is_the_exit_status() -> None:
    assert run(make("warn"), argv=[]) == 3


def test_typer_exit_code_is_kept() -> None:
    assert run(make("exit"), argv=[]) == 7


@pytest.mark.parametrize(
    ("what", "code", "message"),
    [
        ("norepo", 10, "rdb-demo: /x: is not a backup repository second line\n"),
        ("corrupt", 13, "rdb-demo: truncated\n"),
        ("unfinished", 14, "rdb-demo: regress first\n"),
    ],
)
def test_rdb_error_is_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str], what: str, code: int, message: str
) -> None:
    assert run(make(what), argv=[what]) == code
    captured = capsys.readouterr()
    assert captured.err == message
    assert captured.out == ""


def test_rdb_error_with_json_is_a_json_object_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(make("norepo"), argv=["norepo", "--json"]) == 10
    captured = capsys.readouterr()
    assert captured.err == ""
    document = json.loads(captured.out)
    assert document == {
        "error": {
            "type": "RepositoryNotFound",
            "exit_code": 10,
            "message": "/x: is not a backup repository second line",
        }
    }


def test_json_after_double_dash_is_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(make("norepo"), argv=["norepo", "--", "--json"]) == 2  # extra argument
    assert "rdb-demo: " in capsys.readouterr().err


def test_keyboard_interrupt_is_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(make("interrupt"), argv=["interrupt"]) == 130
    assert capsys.readouterr().err == "rdb-demo: interrupted\n"


@pytest.mark.parametrize(
    "argv", [["ok", "--no-such-option"], ["ok", "--count", "many"], ["a", "b", "c"]]
)
def test_usage_errors_are_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert run(make("ok"), argv=argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rdb-demo: ")
    assert err.endswith("(try 'rdb-demo --help')\n")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def _required_argument() -> typer.Typer:
    app = make_app(name="rdb-demo")

    @app.command()
    def needs(repo: Annotated[str, typer.Argument()], *, json_output: JsonOpt = False) -> None:
        """A command whose argument is required."""

    return app


@pytest.mark.parametrize(
    ("app", "argv"),
    [
        (_required_argument(), ["--json"]),
        (make("ok"), ["ok", "--json", "--count", "many"]),
        (make("ok"), ["a", "b", "--json"]),
    ],
)
def test_usage_errors_with_json_are_a_json_error_on_stdout(
    capsys: pytest.CaptureFixture[str], app: typer.Typer, argv: list[str]
) -> None:
    assert run(app, argv=argv) == 2
    out, err = capsys.readouterr()
    assert err == ""
    assert out.count("\n") == 1
    document = json.loads(out)
    assert document["error"]["type"] == "UsageError"
    assert document["error"]["exit_code"] == 2
    assert document["error"]["message"].endswith("(try 'rdb-demo --help')")


def test_unexpected_exception_shows_traceback_and_is_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(make("bug"), argv=["bug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ZeroDivisionError: oops" in err


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("full", "rdb-demo: cannot write a.bin: No space left on device\n"),
        ("eio", "rdb-demo: /x/y: Input/output error\n"),
        ("eio-fd", "rdb-demo: Input/output error\n"),
    ],
)
def test_a_full_disk_or_an_io_error_is_one_line_and_1(
    capsys: pytest.CaptureFixture[str], what: str, message: str
) -> None:
    """The machine's trouble, not a bug: no traceback, no 'please report it'."""
    assert run(make(what), argv=[what]) == 1
    assert capsys.readouterr().err == message
    assert run(make(what), argv=[what, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document == {"error": {"type": "RdbError", "exit_code": 1, "message": message[10:-1]}}


def test_other_os_errors_are_still_bugs(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file the core did not turn into an RdbError is a bug: its traceback."""
    assert run(make("missing"), argv=["missing"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_help_has_epilog_and_short_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(make("ok"), argv=["-h"]) == 0
    out = capsys.readouterr().out
    assert "A demo command." in out
    assert "$ rdb-demo ok" in out
    assert "$ rdb-demo --json norepo" in out
    assert "Exit status" in out
    assert "--json" in out
