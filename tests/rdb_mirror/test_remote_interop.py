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

from rdb_format.exitcodes import ExitCode

__all__ = ["sshd"]

pytestmark = pytest.mark.interop

RESTORE = str(Path(sys.executable).parent / "rdb-restore")


def _restore_all(
    rdiff_backup: str, repo: Path, scans: list[trees.Snapshot | None], work: Path
) -> None:
    """Every session with a scan (None: a session that was killed) restores exactly."""
    for n, scan in enumerate(scans):
        if scan is None:
            continue
        restored = restore_with_rdiff_backup(rdiff_backup, repo, session_time(n), work / f"rb{n}")
        assert differences(scan, restored) == [], f"rdiff-backup, session {n}"
        ours = work / f"ours{n}"
        proc = subprocess.run(
            [RESTORE, "restore", "--at", str(session_time(n)), str(repo), str(ours)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert differences(scan, trees.scan(ours)) == [], f"rdb-restore, session {n}"


@pytest.mark.parametrize("remote", ["dest", "src"])
def test_every_remote_session_restores_with_both_restorers(
    remote: str, rdiff_backup: str, sshd: SshServer, tmp_path: Path
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=91)
    scans: list[trees.Snapshot | None] = []
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
    _restore_all(rdiff_backup, repo, scans, tmp_path)


def test_sessions_killed_on_the_remote_lose_nothing(
    rdiff_backup: str, sshd: SshServer, tmp_path: Path
) -> None:
    """The remote repository side SIGKILLed mid-session (twice): the connection is lost,
    the next run regresses, and every committed session restores with both restorers."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=95)
    scans: list[trees.Snapshot | None] = []
    for n, kill_after in enumerate((None, None, "15", None, "40", None)):
        if n:
            trees.mutate_tree(src, seed=950 + n)
        env = (f"RDB_MIRROR_TEST_KILL_AFTER={kill_after}",) if kill_after else ()
        run = mirror_json(
            "--remote-schema", ssh_schema(sshd, *env), "--current-time", str(session_time(n)),
            src, f"{HOST}::{repo}",
        )  # fmt: skip
        if kill_after:
            assert run.status == ExitCode.CONNECTION, run.stderr + run.stdout
            scans.append(None)
        else:
            assert run.status == 0, run.stderr + run.stdout
            assert run.summary["regressed"] == (n > 0 and scans[-1] is None), n
            scans.append(trees.scan(src))
    _restore_all(rdiff_backup, repo, scans, tmp_path)
