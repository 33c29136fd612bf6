"""rdb_clikit.coercion: the values a command receives are typer's own, without pydantic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from tests.unprivileged import AS_A_USER

from rdb_clikit.coercion import FastConversion, install
from rdb_clikit.options import make_app
from rdb_clikit.run import run


def make(seen: list[dict[str, object]]) -> typer.Typer:
    app = make_app(name="rdb-demo")

    @app.command()
    def main(
        name: Annotated[str, typer.Argument()],
        where: Annotated[Path | None, typer.Argument()] = None,
        *,
        workers: Annotated[int | None, typer.Option("--workers", min=1)] = None,
        count: Annotated[int, typer.Option("--count")] = 0,
        ratio: Annotated[float, typer.Option("--ratio")] = 0.5,
        tag: Annotated[list[str] | None, typer.Option("--tag")] = None,
        verbose: Annotated[int, typer.Option("-v", count=True)] = 0,
        flag: Annotated[bool, typer.Option("--flag")] = False,
    ) -> None:
        seen.append(
            {
                "name": name,
                "where": where,
                "workers": workers,
                "count": count,
                "ratio": ratio,
                "tag": tag,
                "verbose": verbose,
                "flag": flag,
            }
        )

    return app


CASES = [
    ["plain"],
    ["caf\udcc3", "/no/such/dir"],
    ["x", ".", "--workers", "3", "--count", "12", "-vv", "--flag"],
    ["x", "--tag", "a", "--tag", "b\nc", "--ratio", "2"],
    ["x", "--ratio", "0.25"],
    # spellings only typer's own converter accepts
    ["x", "--workers", " 4", "--count", "5.0", "--ratio", "1."],
    ["x", "--workers", "0"],  # below the minimum: typer's message
    ["x", "--count", "many"],
    ["x", ""],
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c) or "-" for c in CASES])
def test_values_and_errors_match_typers_own_conversion(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    ours: list[dict[str, object]] = []
    status = run(make(ours), argv=argv)
    ours_err = capsys.readouterr().err
    theirs: list[dict[str, object]] = []
    app = make(theirs)
    try:
        app(args=argv, prog_name="rdb-demo", standalone_mode=False)
        their_status = 0
    except Exception as error:  # typer's usage error (its click exception)
        their_status = error.exit_code  # type: ignore[attr-defined]
        assert ours_err == f"rdb-demo: {error.format_message()} (try 'rdb-demo --help')\n"  # type: ignore[attr-defined]
    assert status == their_status
    assert ours == theirs
    for value in ours:
        assert {k: type(v) for k, v in value.items()} == {k: type(v) for k, v in theirs[0].items()}


def test_every_parameter_gets_the_fast_converter_and_help_too() -> None:
    command = typer.main.get_command(make([]))
    install(command)
    assert all(isinstance(p._runtime_param, FastConversion) for p in command.params)  # type: ignore[attr-defined]
    ctx = command.make_context("rdb-demo", ["x"])
    help_option = command.get_help_option(ctx)
    assert isinstance(help_option._runtime_param, FastConversion)  # type: ignore[union-attr]


def test_an_unreadable_path_is_left_to_typer(tmp_path: Path) -> None:
    """Run without the permission-override capabilities (as root too: never skipped)."""
    secret = tmp_path / "secret"
    secret.mkdir(mode=0)
    code = (
        "import sys\n"
        "from tests.rdb_clikit.test_coercion import make\n"
        "from rdb_clikit.run import run\n"
        "sys.exit(run(make([]), argv=['x', sys.argv[1]]))\n"
    )
    proc = subprocess.run(
        [*AS_A_USER, sys.executable, "-c", code, str(secret)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "is not readable" in proc.stderr


def test_anything_else_typer_asks_of_its_converter_is_typers_own() -> None:
    """A later typer may call another method of its converter (or pass its arguments
    otherwise): it then gets its own converter's answer, not an AttributeError."""
    command = typer.main.get_command(make([]))
    install(command)
    count = next(p for p in command.params if p.name == "count")
    ctx = command.make_context("rdb-demo", ["x"])
    assert count.get_runtime_param().coerce("6", count, ctx) == 6  # type: ignore[attr-defined]
    assert count._runtime_param._coerce_value("7", param=count, ctx=ctx) == 7  # type: ignore[attr-defined]
    assert not isinstance(count._runtime_param, FastConversion)  # type: ignore[attr-defined]
    assert count.get_runtime_param().coerce("8", param=count, ctx=ctx) == 8  # type: ignore[attr-defined]


def test_a_plain_run_does_not_import_pydantic() -> None:
    code = (
        "import sys\n"
        "from rdb_clikit.options import make_app\n"
        "from rdb_clikit.run import run\n"
        "app = make_app(name='x')\n"
        "@app.command()\n"
        "def main(name: str, workers: int = 1) -> None:\n"
        "    print(name, workers)\n"
        "assert run(app, argv=['n', '--workers', '3']) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('pydantic')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "n 3\n[]\n"
