"""The client's --timeout reaches the server it starts: a server started by
``rdb-mirror --timeout N`` or ``rdb-restore --timeout N`` whose client stalls ends after N
seconds, not after its own default of 300."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rdb_remote.connection import DEFAULT_TIMEOUT
from rdb_remote.spawn import server_command

FAKE_SSH = Path(__file__).with_name("fake_ssh.py")
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("program", ["rdb-mirror", "rdb-restore"])
def test_a_server_started_with_the_clients_timeout_ends_after_it(
    program: str, tmp_path: Path
) -> None:
    """The client is stopped (SIGSTOP) once it started its server; the server gives up
    after the client's --timeout 2 (exit status 16)."""
    repo, src, report = tmp_path / "repo", tmp_path / "src", tmp_path / "report"
    src.mkdir()
    (src / "a").write_bytes(b"a" * 1000)
    subprocess.run([BIN / "rdb-mirror", src, repo], check=True, capture_output=True)
    command = shlex.join([sys.executable, str(FAKE_SSH)]) + f" %s {BIN / program} --server"
    where, options = f"127.0.0.1::{repo}", ["--timeout", "2", "--remote-schema", command]
    argv = [*options, src, where] if program == "rdb-mirror" else ["list", *options, where]
    client = subprocess.Popen(
        [BIN / program, *argv],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "FAKE_SSH_REPORT": str(report)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert report.exists(), "the server did not end within 60 s of its client stalling"
        status, seconds, ran = report.read_text().split(" ", 2)
    finally:
        client.kill()
        client.send_signal(signal.SIGCONT)
        client.wait(30)
        assert client.stderr is not None
        client.stderr.close()
    assert ran.strip() == f"{BIN / program} --server --timeout 2"
    assert int(status) == 16
    assert 2 <= float(seconds) < 30


@pytest.mark.parametrize(
    ("schema", "timeout", "expected"),
    [
        ("ssh -C %s rdb-mirror --server", 60.0, "ssh -C nas rdb-mirror --server --timeout 60"),
        ("ssh -C %s rdb-mirror --server", None, "ssh -C nas rdb-mirror --server --timeout 0"),
        ("ssh %s rdb-mirror --server", 0.5, "ssh nas rdb-mirror --server --timeout 0.5"),
        (
            "ssh %s rdb-mirror --server",
            DEFAULT_TIMEOUT,
            "ssh nas rdb-mirror --server",
        ),
        # a schema that says its own --timeout, or does not end in --server, is run as given
        ("ssh %s rdb-mirror --server --timeout 9", 60.0, "ssh nas rdb-mirror --server --timeout 9"),
        ("sh -c 'exec rdb-mirror --server' %s", 60.0, "sh -c 'exec rdb-mirror --server' nas"),
    ],
)
def test_the_server_command_carries_the_clients_timeout(
    schema: str, timeout: float | None, expected: str
) -> None:
    assert shlex.join(server_command(schema, "nas", timeout)) == expected
