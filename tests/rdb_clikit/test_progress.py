"""Consoles and progress renderers: plain when not a terminal, JSON lines parse."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest
from rich.console import Console

from rdb_clikit.console import stderr_console, stdout_console
from rdb_clikit.progress import JsonLinesProgress, RichProgress, make_progress
from rdb_clikit.protocol import NullProgress, Progress, RecordingProgress


def test_renderers_implement_the_protocol() -> None:
    console = Console(file=io.StringIO())
    for progress in (
        NullProgress(),
        RecordingProgress(),
        JsonLinesProgress(io.StringIO()),
        RichProgress(console, prog="x"),
    ):
        assert isinstance(progress, Progress)


def test_consoles_are_plain_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    err = stderr_console()
    out = stdout_console()
    assert not err.is_terminal
    assert not out.is_terminal
    err.print("[bold red]warning[/]")
    out.print("[green]result[/]")
    captured = capsys.readouterr()
    assert captured.err == "warning\n"
    assert captured.out == "result\n"
    assert "\x1b[" not in captured.err + captured.out


def test_forced_terminal_console_colours(capsys: pytest.CaptureFixture[str]) -> None:
    monkey = stderr_console(force_terminal=True)
    monkey.print("[bold]x[/]")
    assert "\x1b[" in capsys.readouterr().err


def test_quiet_console_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    stderr_console(quiet=True).print("hello")
    assert capsys.readouterr().err == ""
    assert isinstance(make_progress(stderr_console(quiet=True), prog="p"), NullProgress)


def test_rich_progress_without_terminal_prints_only_warnings() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False)
    progress = make_progress(console, prog="rdb-x")
    assert isinstance(progress, RichProgress)
    progress.start("reading", total=3)
    progress.advance(2)
    progress.warning("file [x] is truncated")
    progress.advance()
    progress.finish()
    assert buffer.getvalue() == "rdb-x: warning: file [x] is truncated\n"


def test_rich_progress_on_a_terminal_shows_count_and_time_remaining() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    progress = RichProgress(console, prog="x")
    progress.start("backing up", 200)
    progress.advance(50)
    progress._bar.refresh()
    progress.finish()
    drawn = buffer.getvalue()
    assert "backing up" in drawn and "50/200" in drawn
    frame = drawn[drawn.rindex("50/200") :].split("\n")[0]
    # elapsed, then remaining: two clock columns after the count
    assert len(re.findall(r"[\d-]:[\d-]{2}:[\d-]{2}", frame)) == 2, frame


def test_json_lines_progress_events_parse() -> None:
    buffer = io.StringIO()
    progress = JsonLinesProgress(buffer, interval=0.0)
    progress.start("sessions", total=2)
    progress.advance()
    progress.advance()
    progress.warning("missing statistics")
    progress.finish()
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [e["event"] for e in events] == [
        "start",
        "advance",
        "advance",
        "warning",
        "finish",
    ]
    assert events[0] == {"event": "start", "task": "sessions", "total": 2}
    assert events[2]["done"] == 2
    assert events[3]["message"] == "missing statistics"
    assert events[4] == {"event": "finish", "task": "sessions", "done": 2, "total": 2}


def test_json_lines_progress_rate_limits_advance() -> None:
    buffer = io.StringIO()
    progress = JsonLinesProgress(buffer, interval=3600.0)
    progress.start("t", total=1000)
    for _ in range(1000):
        progress.advance()
    progress.finish()
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["start", "finish"]
    assert events[-1]["done"] == 1000


def test_protocol_module_loads_neither_rich_nor_typer() -> None:
    code = (
        "import sys, rdb_clikit.protocol; "
        "print(sorted(m for m in ('rich', 'typer') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "message",
    ["file a.txt vanished", "file [x] is [bold]truncated[/]", "bell\x07 back\x08 cr\r ff\x0c"],
)
def test_plain_warnings_read_as_the_rich_console_printed_them(
    message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from rdb_clikit.progress import PlainProgress

    make_progress(stderr_console(), prog="rdb-x").warning(message)  # as when piped, before
    by_rich = capsys.readouterr().err
    plain = PlainProgress(prog="rdb-x")
    plain.start("reading", 3)
    plain.advance(2)
    plain.warning(message)
    plain.finish()
    assert capsys.readouterr().err == by_rich


def test_progress_for_picks_by_options_and_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from rdb_clikit.progress import PlainProgress, progress_for

    assert isinstance(progress_for(prog="p", json_lines=True), JsonLinesProgress)
    assert isinstance(progress_for(prog="p", quiet=True), NullProgress)
    assert isinstance(progress_for(prog="p"), PlainProgress)  # capsys: stderr is no terminal
    stream = io.StringIO()
    progress_for(prog="p", json_lines=True, json_stream=stream).warning("w")
    assert json.loads(stream.getvalue()) == {"event": "warning", "message": "w"}
