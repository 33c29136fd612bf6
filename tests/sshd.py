"""A real OpenSSH server on 127.0.0.1 for the remote tests (and benchmarks).

Usage in a test directory's conftest.py::

    from tests.sshd import sshd  # noqa: F401  (the session-scoped fixture)

    def test_x(sshd):
        schema = sshd.schema("rdb-mirror")     # '... %s /abs/venv/bin/rdb-mirror --server'
        run(["rdb-mirror", "--remote-schema", schema, "src", f"{sshd.host}::{repo}"])

Per run: a host key and a client key made with ssh-keygen, ``authorized_keys`` and the
config in a temporary directory, a free port on 127.0.0.1, ``sshd -D -e -f CONFIG`` (logs in
``sshd.log`` beside them). The remote PATH of an ssh session does not have the venv, so
:meth:`SshServer.schema` uses absolute paths. Sessions get ``TZ=UTC`` (as the tests' own
processes). Without /usr/sbin/sshd the fixture skips locally and fails in CI.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import need_tool

SSHD = "/usr/sbin/sshd"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class SshServer:
    """A running test sshd: ``host`` to put in ``host::/path``, and ssh options."""

    port: int
    key: Path
    directory: Path
    host: str = "127.0.0.1"

    def ssh_argv(self) -> list[str]:
        """``ssh`` with every option needed to reach this server (add the host, command)."""
        return [
            "ssh",
            "-p",
            str(self.port),
            "-i",
            str(self.key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ]

    def schema(self, program: str = "rdb-mirror", *args: str) -> str:
        """A --remote-schema running ``program --server`` (absolute venv path) over ssh."""
        command = [str(VENV_BIN / program), *(args or ("--server",))]
        return shlex.join(self.ssh_argv()) + " %s " + shlex.join(command)

    def run(
        self,
        command: str,
        *,
        input: bytes | None = None,
        capture_output: bool = False,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a shell ``command`` on the server (as ssh would)."""
        return subprocess.run(
            [*self.ssh_argv(), self.host, command],
            input=input,
            capture_output=capture_output,
            timeout=timeout,
            check=False,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rdb-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _config(directory: Path, port: int) -> Path:
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {directory / 'host_key'}",
                f"PidFile {directory / 'sshd.pid'}",
                f"AuthorizedKeysFile {directory / 'authorized_keys'}",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "PrintMotd no",
                "LogLevel ERROR",
                "MaxStartups 100:30:200",
                "MaxSessions 100",
                "SetEnv TZ=UTC",
                "",
            ]
        )
    )
    return config


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text()[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on port {port}: {log.read_text()[-500:]}")


@contextlib.contextmanager
def running_sshd(directory: Path | None = None) -> Iterator[SshServer]:
    """Start a test sshd (keys, config, free port); stop it at the end."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rdb-sshd-")))
        directory.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        _keygen(directory / "host_key")
        _keygen(directory / "client_key")
        (directory / "authorized_keys").write_bytes((directory / "client_key.pub").read_bytes())
        log = directory / "sshd.log"
        for attempt in range(3):
            port = _free_port()
            config = _config(directory, port)
            with log.open("ab") as log_file:
                process = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(config)],
                    stdout=log_file,
                    stderr=log_file,
                    stdin=subprocess.DEVNULL,
                )
            try:
                _wait_listening(port, process, log)
            except RuntimeError:
                process.kill()
                process.wait()
                if attempt == 2:
                    raise
                continue
            break
        try:
            yield SshServer(port=port, key=directory / "client_key", directory=directory)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real OpenSSH server on 127.0.0.1 (skipped locally without sshd; a failure in CI)."""
    need_tool("sshd (openssh-server)", SSHD if os.path.exists(SSHD) else None)
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


__all__ = ["SshServer", "running_sshd", "sshd"]
