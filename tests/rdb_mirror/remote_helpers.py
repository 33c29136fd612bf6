"""Helpers of the remote rdb-mirror tests: remote schemas, and a client run with --json."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.sshd import SshServer

MIRROR = str(Path(sys.executable).parent / "rdb-mirror")
HOST = "127.0.0.1"


def subprocess_schema(*env: str) -> str:
    """A --remote-schema that runs the server as a plain local subprocess (%s is $0)."""
    command = shlex.join(["exec", *(["env", *env] if env else []), MIRROR, "--server"])
    return f"sh -c {shlex.quote(command)} %s"


def ssh_schema(sshd: SshServer, *env: str) -> str:
    """Through the real test sshd (``env`` set on the remote command)."""
    remote = shlex.join([*(["env", *env] if env else []), MIRROR, "--server"])
    return shlex.join(sshd.ssh_argv()) + " %s " + remote


@dataclass
class Run:
    status: int
    summary: dict[str, object]
    stderr: str
    stdout: str


def mirror_json(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None, timeout: float = 600
) -> Run:
    """``rdb-mirror --json ARGS``; the summary (or error) document it printed last
    (subprocess.TimeoutExpired after ``timeout`` seconds: a test fails, it does not hang)."""
    proc = subprocess.run(
        [MIRROR, "--json", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    summary: dict[str, object] = {}
    for line in proc.stdout.splitlines():
        document = json.loads(line)
        if "summary" in document:
            summary = document["summary"]
        elif "error" in document:
            summary = document["error"]
    return Run(proc.returncode, summary, proc.stderr, proc.stdout)
