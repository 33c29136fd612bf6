"""librsync's pipelines across ssh: ``rdiff signature old | ssh host rdiff delta - new |
rdiff patch old - out`` through the real test sshd, our rdiff on both ends."""

from __future__ import annotations

import random
import shlex
import subprocess
import sys
from pathlib import Path

from tests.sshd import SshServer, sshd

__all__ = ["sshd"]


def test_rdiff_pipeline_across_ssh_is_byte_identical_to_local(
    sshd: SshServer, tmp_path: Path
) -> None:
    """``rdiff signature old | ssh host rdiff delta - new | rdiff patch old - out``."""
    rng = random.Random(7)
    old = tmp_path / "old"
    new = tmp_path / "new"
    data = bytearray(rng.randbytes(3 << 20))
    old.write_bytes(data)
    for at in range(0, len(data), 97_000):
        data[at : at + 500] = rng.randbytes(500)
    new.write_bytes(bytes(data) + b"tail")
    rdiff = str(Path(sys.executable).parent / "rdiff")
    remote = shlex.join([rdiff, "delta", "-", str(new)])
    pipeline = (
        f"{shlex.quote(rdiff)} signature {old} | "
        f"{shlex.join(sshd.ssh_argv())} {sshd.host} {shlex.quote(remote)} | "
        f"{shlex.quote(rdiff)} patch {old} - {tmp_path / 'out'}"
    )
    subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], check=True, timeout=120)
    assert (tmp_path / "out").read_bytes() == new.read_bytes()
    local = subprocess.run(
        ["bash", "-c", f"{rdiff} signature {old} | {rdiff} delta - {new}"],
        capture_output=True,
        check=True,
    ).stdout
    remote_delta = subprocess.run(
        [
            "bash",
            "-c",
            f"{rdiff} signature {old} | {shlex.join(sshd.ssh_argv())} {sshd.host} "
            f"{shlex.quote(remote)}",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert remote_delta == local
