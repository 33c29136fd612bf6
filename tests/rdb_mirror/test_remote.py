"""rdb-mirror with one half on a "remote host": through the real test sshd and through a
--remote-schema that runs ``rdb-mirror --server`` as a plain subprocess. Several sessions in
each direction (the mirror equals the source, the repository checks out), byte accounting,
a killed connection, handshake errors and hostile peers."""

from __future__ import annotations

import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences, session_time
from tests.rdb_mirror.remote_helpers import (
    HOST,
    MIRROR,
    mirror_json,
    ssh_schema,
    subprocess_schema,
)
from tests.sshd import SshServer, sshd

from rdb_clikit.protocol import RecordingProgress
from rdb_format.errors import ConnectionFailed
from rdb_format.exitcodes import ExitCode
from rdb_format.layout import Layout
from rdb_format.repository import read_state
from rdb_mirror import BackupOptions
from rdb_mirror.check import check
from rdb_mirror.remote import RemoteFailure, backup_to_remote
from rdb_remote import RemoteLocation

__all__ = ["sshd"]

SESSIONS = 3
ECHO_SERVER = Path(__file__).parent.parent / "rdb_remote" / "echo_server.py"
HOSTILE_SERVER = Path(__file__).with_name("hostile_server.py")


@pytest.fixture(params=["subprocess", "ssh"])
def schema(request: pytest.FixtureRequest) -> str:
    if request.param == "ssh":
        return ssh_schema(request.getfixturevalue("sshd"))
    return subprocess_schema()


def _locations(src: Path, dest: Path, remote: str) -> tuple[str | Path, str | Path]:
    """SRC and DEST for the command; ``remote`` ("dest" or "src") is on the other host."""
    return (
        f"{HOST}::{src}" if remote == "src" else src,
        f"{HOST}::{dest}" if remote == "dest" else dest,
    )


def _backup(schema: str, src: Path, dest: Path, n: int, *, remote: str) -> dict[str, Any]:
    """One session; ``remote`` is "dest" or "src": which side is on the other host."""
    source, target = _locations(src, dest, remote)
    run = mirror_json(
        "--remote-schema", schema, "--current-time", str(session_time(n)), source, target
    )
    assert run.status == 0, run.stderr + run.stdout
    assert "Traceback" not in run.stderr
    return run.summary


@pytest.mark.parametrize("remote", ["dest", "src"])
def test_sessions_in_each_direction_mirror_the_source(
    schema: str, remote: str, tmp_path: Path
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=71)
    for n in range(SESSIONS):
        if n:
            trees.mutate_tree(src, seed=710 + n)
        summary = _backup(schema, src, repo, n, remote=remote)
        assert summary["time"] == session_time(n)
        assert summary["warnings"] == []
        assert differences(trees.scan(src), trees.scan(repo)) == [], f"session {n}"
        assert check(repo).problems == []
        assert isinstance(summary["bytes_sent"], int) and summary["bytes_sent"] > 0
    state = read_state(Layout(repo))
    assert not state.unfinished


def _file_with_changes(path: Path, size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(size))
    path.write_bytes(data)
    return bytes(data)


@pytest.mark.parametrize("remote", ["dest", "src"])
def test_a_changed_big_file_sends_a_delta_not_the_file(remote: str, tmp_path: Path) -> None:
    """64 MiB with 1% changed: under 5% of the file crosses in each direction."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    size = 64 << 20
    data = bytearray(_file_with_changes(src / "big.bin", size, 1))
    first = _backup(subprocess_schema(), src, repo, 0, remote=remote)
    assert max(first["bytes_sent"], first["bytes_received"]) > size  # whole, the first time
    rng = random.Random(2)
    for at in sorted(rng.sample(range(0, size - 50_000, 65_536), 16)):
        data[at : at + size // 100 // 16] = rng.randbytes(size // 100 // 16)  # 1% in 16 places
    (src / "big.bin").write_bytes(data)
    later = (src / "big.bin").stat().st_mtime + 10  # same size: the mtime says it changed
    os.utime(src / "big.bin", (later, later))
    second = _backup(subprocess_schema(), src, repo, 1, remote=remote)
    assert second["changed_files"] == 1
    assert second["bytes_sent"] < size * 0.05, second
    assert second["bytes_received"] < size * 0.05, second
    assert (repo / "big.bin").read_bytes() == bytes(data)
    assert check(repo).problems == []


def test_deltas_work_in_process_too(tmp_path: Path) -> None:
    """The delta path forced on a local session (BackupOptions(deltas=True))."""
    from rdb_mirror import BackupOptions, backup

    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    data = bytearray(_file_with_changes(src / "f", 1 << 20, 3))
    backup(src, repo, BackupOptions(current_time=session_time(0), deltas=True))
    data[5000:5100] = b"x" * 100
    (src / "f").write_bytes(data + b"tail")
    os.utime(src / "f", (1e9, 1e9))
    result = backup(src, repo, BackupOptions(current_time=session_time(1), deltas=True))
    assert result.errors == [] and result.statistics.changed_files == 1
    assert (repo / "f").read_bytes() == bytes(data) + b"tail"
    assert check(repo).problems == []


def test_a_no_change_backup_of_20000_files_sends_only_metadata(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    for d in range(100):
        directory = src / f"d{d:03}"
        directory.mkdir()
        for f in range(200):
            (directory / f"file-{f:04}.txt").write_bytes(b"x" * (f % 50))
    entries = 20_000 + 100 + 1
    _backup(subprocess_schema(), src, repo, 0, remote="dest")
    summary = _backup(subprocess_schema(), src, repo, 1, remote="dest")
    assert summary["new_files"] == summary["changed_files"] == 0
    assert summary["bytes_read"] == 0  # no file was read
    assert summary["bytes_sent"] < 200 * entries  # metadata only: < 200 bytes an entry
    assert summary["bytes_received"] < 4 * entries  # credits, progress and the summary


@pytest.mark.parametrize("remote", ["dest", "src"])
def test_a_killed_remote_is_a_clear_error_and_the_next_run_regresses(
    remote: str, tmp_path: Path, sshd: SshServer
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=81)
    _backup(ssh_schema(sshd), src, repo, 0, remote=remote)
    trees.mutate_tree(src, seed=810)
    # the repository side dies after 20 entries: the server (remote dest) or this client
    kill = ssh_schema(sshd, "RDB_MIRROR_TEST_KILL_AFTER=20")
    source, target = _locations(src, repo, remote)
    env = {"RDB_MIRROR_TEST_KILL_AFTER": "20"} if remote == "src" else None
    run = mirror_json(
        "--remote-schema", kill, "--current-time", str(session_time(1)), source, target, env=env
    )
    if remote == "dest":
        assert run.status == ExitCode.CONNECTION, run.stderr + run.stdout
        message = str(run.summary["message"])
        assert message.startswith(f"{HOST}::{repo}: the connection was lost"), message
        assert "Traceback" not in run.stderr
    else:
        assert run.status == -9  # the local repository side was killed
    assert read_state(Layout(repo)).unfinished
    summary = _backup(ssh_schema(sshd), src, repo, 2, remote=remote)
    assert summary["regressed"] is True
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert check(repo).problems == []


def test_missing_remote_command_is_one_line(tmp_path: Path, sshd: SshServer) -> None:
    (tmp_path / "src").mkdir()
    schema = shlex.join(sshd.ssh_argv()) + " %s rdb-mirror-not-installed --server"
    run = mirror_json("--remote-schema", schema, tmp_path / "src", f"{HOST}::{tmp_path}/r")
    assert run.status == ExitCode.CONNECTION
    message = str(run.summary["message"])
    assert "was not found there (exit status 127); install rdb-mirror" in message
    assert "\n" not in message and "Traceback" not in run.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("--program", "rdb-mirror", "--protocol", "9", "--oldest", "9"), "is too new"),
        (("--program", "rdb-mirror", "--protocol", "0", "--oldest", "0"), "is too old"),
        (("--program", "rdb-restore"), "is rdb-restore 9.9, not rdb-mirror"),
        (("--mode", "text"), "did not answer as an rdb --server"),
        (("--program", "rdb-mirror", "--mode", "garbage"), "malformed frame: unknown tag"),
        (("--program", "rdb-mirror", "--mode", "huge"), "malformed frame: 4294967295 bytes"),
    ],
)
def test_incompatible_or_garbled_peers_are_one_line(
    args: tuple[str, ...], why: str, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    schema = shlex.join([sys.executable, str(ECHO_SERVER)]) + " %s " + shlex.join(args)
    run = mirror_json("--remote-schema", schema, tmp_path / "src", f"{HOST}::{tmp_path}/r")
    assert run.status == ExitCode.PROTOCOL, run.stderr + run.stdout
    assert why in str(run.summary["message"])
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "mode",
    [
        "unsafe-path",
        "out-of-order",
        "wrong-record-path",
        "unknown-request",
        "wrong-kind",
        "incomplete",
        "bad-kind",
        "huge-time",
        "more-than-announced",
        "oversize-content",
        "mismatched-size",
    ],
)
def test_a_hostile_source_cannot_write_outside_the_repository(mode: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    schema = shlex.join([sys.executable, str(HOSTILE_SERVER), mode]) + " %s"
    run = mirror_json("--remote-schema", schema, f"{HOST}::/anything", repo)
    assert run.status == ExitCode.PROTOCOL, run.stderr + run.stdout
    assert "Traceback" not in run.stderr
    assert str(run.summary["message"]).startswith(f"{HOST}::/anything: "), run.summary
    assert not (tmp_path / "escaped").exists()
    assert not any(p.name == "escaped" for p in tmp_path.rglob("*"))
    assert not read_state(Layout(repo)).markers  # no session was committed


def test_errors_of_the_remote_half_come_back_with_their_status(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    run = mirror_json("--remote-schema", subprocess_schema(), f"{HOST}::/no/such", tmp_path / "r")
    assert run.status == ExitCode.SOURCE
    assert run.summary["message"] == f"{HOST}: /no/such: does not exist"
    assert not (tmp_path / "r").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_bytes(b"x")
    run = mirror_json(
        "--remote-schema", subprocess_schema(), tmp_path / "src", f"{HOST}::{tmp_path}/full"
    )
    assert run.status == ExitCode.NOT_A_REPOSITORY
    assert str(run.summary["message"]).startswith(f"{HOST}: {tmp_path}/full: is not empty")
    assert "Traceback" not in run.stderr


def test_a_patched_copy_that_does_not_match_the_source_sha1_is_not_kept(tmp_path: Path) -> None:
    """A delta whose result has another SHA1 than announced: the file fails like one that
    changed while read (error_log, exit 3), its old copy and record stay."""
    from rdb_format.metadata import path_key
    from rdb_format.metadata_diff import records_at
    from rdb_mirror import backup

    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "f").write_bytes(b"x" * (64 << 10))
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    old = {path_key(r.path): r for r in records_at(repo / "rdiff-backup-data", session_time(0))}
    schema = shlex.join([sys.executable, str(HOSTILE_SERVER), "wrong-sha1"]) + " %s"
    run = mirror_json(
        "--remote-schema", schema, "--current-time", str(session_time(1)), f"{HOST}::/x", repo
    )
    assert run.status == ExitCode.WARNINGS, run.stderr + run.stdout
    assert run.summary["warnings"] == ["UpdateError: 'f' changed while being read; not updated"]
    assert (repo / "f").read_bytes() == b"x" * (64 << 10)
    new = {path_key(r.path): r for r in records_at(repo / "rdiff-backup-data", session_time(1))}
    assert new[(b"f",)] == old[(b"f",)]
    assert check(repo).problems == []


def test_remote_usage_errors(tmp_path: Path) -> None:
    run = mirror_json("a::/x", "b::/y")
    assert run.status == ExitCode.USAGE and "both remote" in str(run.summary["message"])
    run = mirror_json("--regress", "nas::/repo")
    assert run.status == ExitCode.USAGE and "repository's host" in str(run.summary["message"])
    run = mirror_json("--remote-schema", "ssh %s x", tmp_path, tmp_path / "r")
    assert run.status == ExitCode.USAGE
    run = mirror_json(
        "--remote-schema", subprocess_schema(), "--include-filelist", tmp_path / "no-list",
        f"{HOST}::{tmp_path}", tmp_path / "r",
    )  # fmt: skip
    assert run.status == ExitCode.USAGE and "cannot read the file list" in str(run.summary)
    assert not (tmp_path / "r").exists()  # refused before connecting


def test_file_lists_of_a_remote_source_are_read_here(tmp_path: Path) -> None:
    """--include-filelist FILE and --exclude-filelist-stdin: the lists are read on this host
    and applied by the remote source side."""
    src = tmp_path / "src"
    for name in ("a", "b", "c", "d"):
        (src / name).mkdir(parents=True)
        (src / name / "f").write_bytes(name.encode())
    listing = tmp_path / "list"
    listing.write_text(f"{src}/a\n{src}/b\n{src}/c\n")
    proc = subprocess.run(
        [
            MIRROR, "--json", "--remote-schema", subprocess_schema(),
            "--exclude-filelist-stdin", "--include-filelist", str(listing), "--exclude", "**",
            f"{HOST}::{src}", str(tmp_path / "r"),
        ],
        input=f"{src}/b\n".encode(), capture_output=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["a", "c", "rdiff-backup-data"]


def test_server_is_hidden_from_help() -> None:
    wide = {**os.environ, "COLUMNS": "250"}
    out = subprocess.run(
        [MIRROR, "--help"], capture_output=True, text=True, check=True, env=wide
    ).stdout
    assert not re.search(r"^[│ ]*--server", out, re.MULTILINE)  # no option of that name
    assert "--remote-schema" in out


class _KillSshAtStart(RecordingProgress):
    """Kills this process's ssh children when the remote session starts (marker written)."""

    def start(self, task: str, total: int | None = None) -> None:
        super().start(task, total)
        for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
            for pid in children.read_text().split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "ssh":
                    os.kill(int(pid), signal.SIGKILL)


def test_killing_ssh_mid_session_then_the_next_run_regresses(
    tmp_path: Path, sshd: SshServer
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    trees.build_tree(src, seed=83)
    location = RemoteLocation(HOST, str(repo))
    schema = ssh_schema(sshd)
    backup_to_remote(src, location, schema, BackupOptions(current_time=session_time(0)))
    trees.mutate_tree(src, seed=830)
    with pytest.raises(ConnectionFailed, match=r"connection was lost .*ssh was killed by SIGKILL"):
        backup_to_remote(
            src, location, schema, BackupOptions(current_time=session_time(1)), _KillSshAtStart()
        )
    deadline = time.monotonic() + 30  # the server notices the end of its input, then aborts
    while time.monotonic() < deadline:
        try:
            result = backup_to_remote(
                src, location, schema, BackupOptions(current_time=session_time(2))
            )
            break
        except RemoteFailure as error:
            assert error.exit_code == ExitCode.LOCKED, error
            time.sleep(0.2)
    assert result.regressed is not None
    assert differences(trees.scan(src), trees.scan(repo)) == []
    assert check(repo).problems == []
