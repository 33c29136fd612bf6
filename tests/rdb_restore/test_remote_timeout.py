"""--timeout on remote restores: a server that stays connected but stops (SIGSTOP) ends the
client after that long (exit 16, one line naming the host and what to do); a server whose
client stops reading ends by itself instead of waiting forever on its writes."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from tests.rdb_restore.test_remote import HOSTILE, RESTORE, rdb_restore

from rdb_format.exitcodes import ExitCode
from rdb_mirror import BackupOptions, backup
from rdb_remote.framing import write_frame
from rdb_remote.handshake import read_hello, write_hello
from rdb_restore import __version__
from rdb_restore.protocol import CODEC, RestoreRequest, hello


def test_a_stalled_server_ends_the_restore(tmp_path: Path) -> None:
    command = shlex.join(["exec", sys.executable, str(HOSTILE), "stall"])
    started = time.monotonic()
    proc = rdb_restore(
        "--timeout", "3", "--remote-schema", f"sh -c {shlex.quote(command)} %s",
        "nas::/r", tmp_path / "target",
    )  # fmt: skip
    assert proc.returncode == ExitCode.CONNECTION, proc.stderr
    last = proc.stderr.decode().splitlines()[-1]
    assert "nas::/r: nothing received or sent for 3 s (--timeout 3): " in last, last
    assert "give a longer --timeout" in last
    assert b"Traceback" not in proc.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "target").exists()


def test_a_server_whose_client_stops_reading_ends(tmp_path: Path) -> None:
    """The client asks for a tree with a 16 MiB file, then neither reads nor writes."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(16 << 20))
    backup(src, repo, BackupOptions(current_time=1_700_000_000))
    server = subprocess.Popen(
        [RESTORE, "--server", "--timeout", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
    )  # fmt: skip
    assert server.stdin is not None and server.stdout is not None
    try:
        write_hello(server.stdin, hello(__version__))  # type: ignore[arg-type]
        read_hello(server.stdout, peer="server", command="rdb-restore --server")  # type: ignore[arg-type]
        request = RestoreRequest(os.fsencode(repo), None, int(time.time()))
        write_frame(server.stdin, CODEC.encode(request))  # type: ignore[arg-type]
        started = time.monotonic()
        status = server.wait(30)
    finally:
        server.kill()
        server.stdin.close()
        server.stdout.close()
    assert status == ExitCode.CONNECTION
    assert time.monotonic() - started < 20
