"""A restore of the newest session imports only what that path needs: no librsync and patching
(no diff applies), no rdb_increment (no increment is listed), no rdb_remote (a local
repository), no read-only queries, no OpenSSL hashlib (the files are copied and hashed in C):
every run pays for what it imports (docs/rdb-restore.md, "Start-up")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rdb_mirror import session as mirror

T0 = 1_700_000_000

#: modules (and their sub-modules) a local restore of the newest session must not load
NOT_NEEDED = (
    "rdiff",
    "rdb_increment",
    "rdb_remote",
    "rdb_restore.patching",
    "rdb_restore.query",
    "rdb_restore.remote",
    "rdb_format.statistics",
    "tempfile",
    "_hashlib",
    "rich",
)


def _restore_imports(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``rdb-restore ARGV`` (``python -X importtime -m rdb_restore``: every module it
    imports is named on stderr) in a fresh interpreter, stdin, stdout and stderr not
    terminals; the run and which of :data:`NOT_NEEDED` (or their sub-modules) it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rdb_restore", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        env={**os.environ, "TZ": "UTC"},
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "rdb_restore.restore" in modules, done.stderr  # the report is there
    found = {w for m in modules for w in NOT_NEEDED if m == w or m.startswith(w + ".")}
    return done, found


@pytest.fixture(scope="module")
def two_sessions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository of two sessions by rdb-mirror: directories, small files, a symlink, and a
    file changed in the second session (its older version is a reverse diff)."""
    work = tmp_path_factory.mktemp("imports")
    src, repo = work / "src", work / "repo"
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "docs" / "deep" / "a.txt").write_bytes(b"alpha\n" * 50)
    (src / "docs" / "b.txt").write_bytes(b"bravo\n")
    (src / "changing.txt").write_bytes(b"first version, long enough for a delta\n" * 40)
    (src / "link").symlink_to("docs/b.txt")
    mirror.backup(src, repo, mirror.BackupOptions(current_time=T0))
    (src / "changing.txt").write_bytes(b"second version, long enough for a delta\n" * 40)
    os.utime(src / "changing.txt", (T0 + 10, T0 + 10))
    mirror.backup(src, repo, mirror.BackupOptions(current_time=T0 + 3600))
    return repo


def test_a_newest_session_restore_loads_nothing_it_does_not_need(
    two_sessions: Path, tmp_path: Path
) -> None:
    target = tmp_path / "newest"
    done, imported = _restore_imports(["--json", str(two_sessions), str(target)])
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])["summary"]
    assert (summary["time"], summary["files"]) == (T0 + 3600, 3)
    assert imported == set()
    assert (target / "docs" / "deep" / "a.txt").read_bytes() == b"alpha\n" * 50
    assert (target / "changing.txt").read_bytes().startswith(b"second version")
    assert os.readlink(target / "link") == "docs/b.txt"


def test_an_older_session_lists_increments_and_rebuilds_in_c(
    two_sessions: Path, tmp_path: Path
) -> None:
    """The same check's other side: an older session lists the increments (rdb_increment),
    and its small file rebuilt from a reverse diff is rebuilt in C (rdb_fastio.rebuild), not
    by the general way's patching in Python (rdb_increment's plan_rebuild, which the walk
    uses, still loads rdiff itself)."""
    target = tmp_path / "oldest"
    done, imported = _restore_imports(["--json", "--at", str(T0), str(two_sessions), str(target)])
    assert done.returncode == 0, done.stderr
    assert "rdb_increment" in imported
    assert "rdb_restore.patching" not in imported
    assert "rdb_remote" not in imported
    assert (target / "changing.txt").read_bytes().startswith(b"first version")


def test_the_timeout_default_is_the_transports() -> None:
    """rdb_restore.cli spells --timeout's default itself (importing rdb_remote for it would
    cost every local run); it must stay the transport's."""
    from rdb_remote.connection import DEFAULT_TIMEOUT
    from rdb_restore import cli

    assert cli.DEFAULT_TIMEOUT == DEFAULT_TIMEOUT
