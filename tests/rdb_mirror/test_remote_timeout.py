"""--timeout on remote backups: a peer that stays connected but stops (SIGSTOP here) ends
the run after that long, on the client and on the server, and leaves no partial session the
next backup cannot regress; a repository side that is slow but alive is not cut off."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

from tests.interop import trees
from tests.rdb_mirror.helpers import differences, session_time
from tests.rdb_mirror.remote_helpers import HOST, MIRROR, Run, mirror_json

from rdb_format.exitcodes import ExitCode
from rdb_format.layout import Layout
from rdb_format.metadata import Record
from rdb_format.repository import read_state
from rdb_mirror import BackupOptions, backup
from rdb_mirror.check import check
from rdb_mirror.protocol import CODEC, Batch, Entry, Ready, RepositoryStart
from rdb_mirror.remote import HELLO
from rdb_remote.framing import read_frame, write_frame
from rdb_remote.handshake import read_hello, write_hello

HERE = Path(__file__).parent


def _schema(script: str, *args: str) -> str:
    return shlex.join([sys.executable, str(HERE / script), *args]) + " %s"


def _first_session(tmp_path: Path) -> tuple[Path, Path]:
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=5)
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    return src, repo


def _second_backup(timeout: str, schema: str, source: str | Path, dest: str | Path) -> Run:
    """Session 1 with ``--timeout`` through ``schema`` (after 120 s the test fails: a run
    that never ends does not hang it)."""
    return mirror_json(
        "--timeout", timeout, "--remote-schema", schema,
        "--current-time", str(session_time(1)), source, dest, timeout=120,
    )  # fmt: skip


def _next_backup_regresses(src: Path, repo: Path) -> None:
    """The next (local) backup regresses what the stopped one left; all is well after."""
    result = backup(src, repo, BackupOptions(current_time=session_time(2)))
    assert result.regressed is not None
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert check(repo).problems == []


def test_a_stalled_remote_source_ends_the_backup(tmp_path: Path) -> None:
    src, repo = _first_session(tmp_path)
    started = time.monotonic()
    run = _second_backup("3", _schema("hostile_server.py", "stall"), f"{HOST}::/x", repo)
    assert run.status == ExitCode.CONNECTION, run.stderr + run.stdout
    message = str(run.summary["message"])
    assert message.startswith(f"{HOST}::/x: nothing received or sent for 3 s (--timeout 3): ")
    assert "check them" in message and "give a longer --timeout" in message
    assert "Traceback" not in run.stderr
    assert time.monotonic() - started < 30
    _next_backup_regresses(src, repo)


def test_a_stalled_remote_repository_side_ends_the_backup(tmp_path: Path) -> None:
    src, repo = _first_session(tmp_path)
    trees.mutate_tree(src, seed=52)
    run = _second_backup("3", _schema("slow_server.py", "stop", "300"), src, f"{HOST}::{repo}")
    assert run.status == ExitCode.CONNECTION, run.stderr + run.stdout
    message = str(run.summary["message"])
    assert message.startswith(f"{HOST}::{repo}: nothing received or sent for 3 s (--timeout 3)")
    assert "Traceback" not in run.stderr
    _next_backup_regresses(src, repo)


def test_a_server_whose_client_stalls_ends_and_the_next_backup_regresses(
    tmp_path: Path,
) -> None:
    """The client starts a session on the repository server, sends the root entry, then
    neither writes nor reads: the server gives up after its --timeout, exit status 16."""
    src, repo = _first_session(tmp_path)
    server = subprocess.Popen(
        [MIRROR, "--server", "--timeout", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
    )  # fmt: skip
    assert server.stdin is not None and server.stdout is not None
    write_hello(server.stdin, HELLO)  # type: ignore[arg-type]
    read_hello(server.stdout, peer="server", command="rdb-mirror --server")  # type: ignore[arg-type]
    start = RepositoryStart(
        os.fsencode(repo), "test:src", session_time(1), True, None, True, True, True, None,
        False, True, True, True,
    )  # fmt: skip
    write_frame(server.stdin, CODEC.encode(start))  # type: ignore[arg-type]
    while not isinstance(_next_message(server.stdout), Ready):  # type: ignore[arg-type]
        pass  # progress events
    record = Record(b".", "dir", mod_time=0, permissions=0o755, uid=0, gid=0)
    entry = Entry((), record, (0, 0, 0, 1), 0, 0)
    write_frame(server.stdin, CODEC.encode(Batch((entry,))))  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        status = server.wait(30)
        stderr = server.stderr.read().decode() if server.stderr else ""
    finally:
        server.kill()
        server.stdin.close()
        server.stdout.close()
        if server.stderr:
            server.stderr.close()
    assert status == ExitCode.CONNECTION, stderr
    assert "client: nothing received or sent for 2 s (--timeout 2)" in stderr
    assert time.monotonic() - started < 20
    assert read_state(Layout(repo)).markers[0].time == session_time(0)
    _next_backup_regresses(src, repo)


def _next_message(stream: BinaryIO) -> object:
    while not (frame := read_frame(stream)):
        assert frame is not None, "the server hung up"  # (b"": a keep-alive)
    return CODEC.decode(frame)


def test_a_slow_but_alive_repository_side_is_not_cut_off(tmp_path: Path) -> None:
    """Its main thread works 4 s on each of two files; both sides' timeouts are 2 s."""
    src, repo = _first_session(tmp_path)
    trees.mutate_tree(src, seed=51)
    run = _second_backup("2", _schema("slow_server.py", "4", "2"), src, f"{HOST}::{repo}")
    assert run.status == 0, run.stderr + run.stdout
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert check(repo).problems == []
