"""Remote sessions restore bit-exact with rdb-restore and with rdiff-backup 2.2.7."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences, restore_with_rdiff_backup, session_time
from tests.rdb_mirror.remote_helpers import HOST, mirror_json, ssh_schema
from tests.sshd import SshServer, sshd

__all__ = ["sshd"]

pytestmark = pytest.mark.interop

RESTORE = str(Path(sys.executable).parent / "rdb-restore")


@pytest.mark.parametrize("remote", ["dest", "src"])
def test_every_remote_session_restores_with_both_restorers(
    remote: str, rdiff_backup: str, sshd: SshServer, tmp_path: Path
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=91)
    scans = []
    for n in range(4):
        if n:
            trees.mutate_tree(src, seed=910 + n)
        scans.append(trees.scan(src))
        source = f"{HOST}::{src}" if remote == "src" else src
        target = f"{HOST}::{repo}" if remote == "dest" else repo
        run = mirror_json(
            "--remote-schema", ssh_schema(sshd), "--current-time", str(session_time(n)),
            source, target,
        )  # fmt: skip
        assert run.status == 0, run.stderr + run.stdout
    for n, scan in enumerate(scans):
        restored = restore_with_rdiff_backup(
            rdiff_backup, repo, session_time(n), tmp_path / f"rb{n}"
        )
        assert differences(scan, restored) == [], f"rdiff-backup, session {n}"
        ours = tmp_path / f"ours{n}"
        proc = subprocess.run(
            [RESTORE, "restore", "--at", str(session_time(n)), str(repo), str(ours)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert differences(scan, trees.scan(ours)) == [], f"rdb-restore, session {n}"
