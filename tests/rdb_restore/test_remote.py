"""rdb-restore of a repository on a "remote host": through the real test sshd and through a
--remote-schema that runs ``rdb-restore --server`` as a plain subprocess. Every session
restores bit-exact, big files stream in chunks, list / list files / verify answer as locally,
and a dropped link, a missing or hostile server are one line with nothing written outside
TARGET and no temporary file left."""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_mirror.helpers import differences
from tests.rdb_restore.conftest import MirrorRepo, Sentinel, build_mirror_repo
from tests.sshd import SshServer, sshd

from rdb_format.exitcodes import ExitCode
from rdb_mirror.session import BackupOptions, backup

__all__ = ["sshd"]

RESTORE = str(Path(sys.executable).parent / "rdb-restore")
CUT = Path(__file__).with_name("cut_stream.py")
HOSTILE = Path(__file__).with_name("hostile_server.py")
HOST = "127.0.0.1"
T0 = 1_700_000_000


def subprocess_schema(pipe: str = "") -> str:
    """Runs the server as a local subprocess (``%s`` becomes ``$0``); ``pipe`` is a command
    its output goes through."""
    command = f"{shlex.quote(RESTORE)} --server"
    command = f"{command} | {pipe}" if pipe else f"exec {command}"
    return f"sh -c {shlex.quote(command)} %s"


def ssh_schema(sshd: SshServer, pipe: str = "") -> str:
    """Through the real test sshd (the remote shell runs the command and the pipe)."""
    remote = f"{shlex.quote(RESTORE)} --server" + (f" | {pipe}" if pipe else "")
    return shlex.join(sshd.ssh_argv()) + " %s " + remote


def cut_after(size: int) -> str:
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(CUT))} {size}"


@pytest.fixture(params=["subprocess", "ssh"])
def schema(request: pytest.FixtureRequest) -> str:
    if request.param == "ssh":
        return ssh_schema(request.getfixturevalue("sshd"))
    return subprocess_schema()


def rdb_restore(*args: str | int | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [RESTORE, *map(str, args)],
        capture_output=True,
        env={**os.environ, "TZ": "UTC"},
        timeout=600,
        check=False,
    )


def remote(path: Path) -> str:
    return f"{HOST}::{path}"


def leftovers(target: Path) -> list[Path]:
    return [p for p in target.rglob("*") if p.name.startswith(".rdb-restore.tmp")]


# ---- what crosses the link -----------------------------------------------------------------


def test_every_session_restores_bit_exact(
    schema: str, mirror_repo_master: MirrorRepo, tmp_path: Path
) -> None:
    repo = mirror_repo_master
    for n, when in enumerate(repo.times):
        target = tmp_path / f"at{n}"
        proc = rdb_restore(
            "--remote-schema", schema, "--json", "--at", when, remote(repo.path), target
        )
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout.splitlines()[-1])["summary"]
        assert summary["time"] == when
        assert summary["source"] == remote(repo.path)
        assert summary["bytes_received"] > summary["bytes"]
        assert differences(repo.scans[n], trees.scan(target)) == [], f"session {n}"
        assert leftovers(target) == []


def test_sub_path_one_file_stdout_and_increment(
    schema: str, mirror_repo_master: MirrorRepo, tmp_path: Path
) -> None:
    repo = mirror_repo_master
    first = repo.scans[0]
    sub = next(i for i, e in first.items() if len(i) == 1 and e.type == "dir")
    proc = rdb_restore(
        "--remote-schema",
        schema,
        "--at",
        T0,
        remote(repo.path / os.fsdecode(sub[0])),
        tmp_path / "sub",
    )
    assert proc.returncode == 0, proc.stderr
    expected = {i[1:]: e for i, e in first.items() if i[:1] == sub}
    assert differences(expected, trees.scan(tmp_path / "sub")) == []
    name, entry = next(
        (i, e) for i, e in first.items() if len(i) == 1 and e.type == "reg" and (e.size or 0) > 10
    )
    location = remote(repo.path / os.fsdecode(name[0]))
    one = rdb_restore("--remote-schema", schema, "--at", T0, location, tmp_path / "one")
    assert one.returncode == 0, one.stderr
    got = trees.stat_entry(tmp_path / "one")
    assert (got.sha1, got.perms, got.mtime) == (entry.sha1, entry.perms, entry.mtime)
    out = rdb_restore("--remote-schema", schema, "--at", T0, location, "-")
    assert out.returncode == 0, out.stderr
    assert hashlib.sha1(out.stdout).hexdigest() == entry.sha1
    increments = repo.path / "rdiff-backup-data" / "increments"
    diff = next(p for p in sorted(increments.glob("*.diff.gz")))
    local = rdb_restore(diff, tmp_path / "local-inc")
    over = rdb_restore("--remote-schema", schema, remote(diff), tmp_path / "remote-inc")
    assert local.returncode == over.returncode == 0, over.stderr
    assert (
        trees.stat_entry(tmp_path / "remote-inc").sha1
        == trees.stat_entry(tmp_path / "local-inc").sha1
    )


def _big_repo(workdir: Path) -> tuple[Path, list[trees.Snapshot]]:
    """Two sessions of a tree with files bigger than one chunk, changed in between."""
    rng = random.Random(5)
    src, repo = workdir / "src", workdir / "repo"
    (src / "d").mkdir(parents=True)
    (src / "d" / "big.bin").write_bytes(rng.randbytes(3 << 20))
    (src / "medium.bin").write_bytes(rng.randbytes(300 << 10))
    (src / "small.txt").write_bytes(b"small\n")
    (src / "empty").write_bytes(b"")
    scans = [trees.scan(src)]
    backup(src, repo, BackupOptions(current_time=T0))
    with open(src / "d" / "big.bin", "r+b") as f:
        f.seek(1 << 20)
        f.write(rng.randbytes(4096))
    os.utime(src / "d" / "big.bin", (T0, T0))  # same size: a new mtime makes the backup look
    (src / "medium.bin").write_bytes(rng.randbytes(400 << 10))
    scans.append(trees.scan(src))
    backup(src, repo, BackupOptions(current_time=T0 + 3600))
    return repo, scans


def test_big_files_stream_in_chunks(schema: str, tmp_path: Path) -> None:
    repo, scans = _big_repo(tmp_path)
    for n, when in enumerate((T0, T0 + 3600)):
        target = tmp_path / f"t{n}"
        proc = rdb_restore("--remote-schema", schema, "--at", when, remote(repo), target)
        assert proc.returncode == 0, proc.stderr
        assert differences(scans[n], trees.scan(target)) == []


def test_one_big_file_restores_to_a_file_and_to_stdout(schema: str, tmp_path: Path) -> None:
    """A single regular file larger than a chunk (its bytes streamed while it is written):
    restored whole, not waited for forever."""
    repo, scans = _big_repo(tmp_path)
    big = remote(repo / "d" / "big.bin")
    one = rdb_restore("--remote-schema", schema, "--at", T0 + 3600, big, tmp_path / "one")
    assert one.returncode == 0, one.stderr
    assert trees.stat_entry(tmp_path / "one").sha1 == scans[1][(b"d", b"big.bin")].sha1
    assert leftovers(tmp_path) == []
    out = rdb_restore("--remote-schema", schema, "--at", T0, big, "-")
    assert out.returncode == 0, out.stderr
    assert hashlib.sha1(out.stdout).hexdigest() == scans[0][(b"d", b"big.bin")].sha1


def test_list_files_and_verify_answer_as_locally(
    schema: str, mirror_repo_master: MirrorRepo
) -> None:
    repo = mirror_repo_master.path
    first = mirror_repo_master.scans[0]
    sub = next(i for i, e in first.items() if len(i) == 1 and e.type == "dir")
    for args in (
        ("list",),
        ("list", "--json"),
        ("list", "files", "--at", str(T0)),
        ("list", "files", "--json", "--at", "1B"),
        ("verify", "--at", str(T0)),
        ("verify", "--json"),
    ):
        local = rdb_restore(*args, repo)
        over = rdb_restore(*args, "--remote-schema", schema, remote(repo))
        assert over.returncode == local.returncode == 0, over.stderr
        assert over.stdout == local.stdout, args
    path = os.fsdecode(sub[0])
    local = rdb_restore("list", "files", "--at", T0, repo, path)
    over = rdb_restore("list", "files", "--remote-schema", schema, "--at", T0, remote(repo), path)
    assert over.stdout == local.stdout
    assert over.stdout.startswith(sub[0] + b"\n")


def test_verify_finds_a_damaged_file_there(schema: str, mirror_repo: MirrorRepo) -> None:
    scan = mirror_repo.scans[-1]
    index = next(
        i for i, e in scan.items() if e.type == "reg" and e.nlink == 1 and (e.size or 0) > 4
    )
    victim = mirror_repo.path.joinpath(*map(os.fsdecode, index))
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    over = rdb_restore("verify", "--remote-schema", schema, remote(mirror_repo.path))
    assert over.returncode == ExitCode.CORRUPT
    assert b"bad: " + b"/".join(index) in over.stdout


# ---- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [40, 20_000, 1_500_000])
def test_a_dropped_link_is_one_line_and_leaves_no_temporary_file(
    after: int, sshd: SshServer, sentinel: Sentinel, tmp_path: Path
) -> None:
    """The server's output stops after ``after`` bytes (in the handshake, in the first
    batches, inside a big file): exit 16, one line naming the host and the repository;
    no TARGET is left visible (the tree is staged) and no staging directory stays behind."""
    repo, _ = _big_repo(tmp_path)
    target = tmp_path / "t"
    for schema in (ssh_schema(sshd, cut_after(after)), subprocess_schema(cut_after(after))):
        proc = rdb_restore("--remote-schema", schema, "--at", T0, remote(repo), target)
        assert proc.returncode == ExitCode.CONNECTION, proc.stderr
        message = proc.stderr.decode()
        assert message.count("\n") == 1, message
        assert message.startswith(f"rdb-restore: {HOST}::{repo}: the connection was lost")
        assert "Traceback" not in message
        sentinel.assert_untouched()
        assert not target.exists()  # the tree was staged: nothing of it is left visible
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rdb-restore")] == []


def test_a_dropped_link_inside_a_single_big_file_leaves_nothing(tmp_path: Path) -> None:
    """``host::/repo/file TARGET`` cut inside the file's chunks: exit 16, one line, no TARGET
    and no temporary file (the worker writing it stops when the link breaks)."""
    repo, _ = _big_repo(tmp_path)
    schema = subprocess_schema(cut_after(1_000_000))
    proc = rdb_restore("--remote-schema", schema, remote(repo / "d" / "big.bin"), tmp_path / "one")
    assert proc.returncode == ExitCode.CONNECTION, proc.stderr
    assert proc.stderr.count(b"\n") == 1 and b"the connection was lost" in proc.stderr
    assert not (tmp_path / "one").exists()
    assert leftovers(tmp_path) == []


def test_server_errors_are_one_line(schema: str, mirror_repo: MirrorRepo, tmp_path: Path) -> None:
    missing = rdb_restore("--remote-schema", schema, remote(tmp_path / "nothing"), tmp_path / "t")
    assert missing.returncode == ExitCode.NOT_A_REPOSITORY
    assert missing.stderr.decode().startswith(f"rdb-restore: {HOST}: {tmp_path / 'nothing'}: ")
    data = mirror_repo.path / "rdiff-backup-data"
    (data / "current_mirror.2030-01-01T00:00:00Z.data").write_bytes(b"PID 999999\n")
    unfinished = rdb_restore("--remote-schema", schema, remote(mirror_repo.path), tmp_path / "t")
    assert unfinished.returncode == ExitCode.UNFINISHED
    assert b"rdb-mirror --regress" in unfinished.stderr
    for proc in (missing, unfinished):
        assert proc.stderr.count(b"\n") == 1 and b"Traceback" not in proc.stderr
    assert not (tmp_path / "t").exists()


def test_non_empty_target_refused(
    schema: str, mirror_repo_master: MirrorRepo, tmp_path: Path
) -> None:
    target = tmp_path / "full"
    target.mkdir()
    (target / "keep").write_bytes(b"mine")
    proc = rdb_restore("--remote-schema", schema, remote(mirror_repo_master.path), target)
    assert proc.returncode == ExitCode.SOURCE
    assert sorted(os.listdir(target)) == ["keep"]


def test_missing_remote_command_is_one_line(sshd: SshServer, tmp_path: Path) -> None:
    schema = shlex.join(sshd.ssh_argv()) + " %s rdb-restore-not-installed --server"
    proc = rdb_restore("--remote-schema", schema, remote(tmp_path), tmp_path / "t")
    assert proc.returncode == ExitCode.CONNECTION
    message = proc.stderr.decode().strip().splitlines()[-1]
    assert "was not found there (exit status 127); install rdb-restore" in message
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("unsafe-path", ExitCode.PROTOCOL),
        ("absolute-path", ExitCode.PROTOCOL),
        ("orphan", ExitCode.CORRUPT),
        ("through-symlink", ExitCode.CORRUPT),
        ("no-content", ExitCode.PROTOCOL),
        ("wrong-size", ExitCode.CORRUPT),
    ],
)
def test_a_hostile_server_cannot_write_outside_target(
    mode: str, status: ExitCode, sentinel: Sentinel, tmp_path: Path
) -> None:
    victim = sentinel.path / "escaped"
    command = shlex.join(["exec", sys.executable, str(HOSTILE), mode, str(victim)])
    target = sentinel.path / "sub" / "target"
    proc = rdb_restore(
        "--remote-schema", f"sh -c {shlex.quote(command)} %s", remote(Path("/r")), target
    )
    assert proc.returncode == status, proc.stderr
    assert b"Traceback" not in proc.stderr
    last = proc.stderr.decode().splitlines()[-1]
    assert f"{HOST}::/" in last, last
    assert not victim.exists()
    assert not (sentinel.path / "sub" / "escaped").exists()
    assert not (target / "escaped").exists()
    assert leftovers(target) == [] if target.exists() else True


@pytest.mark.parametrize(
    ("location", "target_name"), [("/r", "tree"), ("/r/big", "one"), ("/r/big", "-")]
)
def test_a_server_sending_more_than_a_file_records_is_cut_off(
    location: str, target_name: str, sentinel: Sentinel
) -> None:
    """A file recorded as 10 bytes whose chunks go on (64 MiB here; a hostile server need not
    stop), in a tree, alone, to stdout: the client stops writing it at its recorded size,
    reports it and finishes, as for a local file that does not match its record (a tree is
    restored without it). Its files are limited to 1 MiB (RLIMIT_FSIZE): writing on would
    fail."""
    command = shlex.join(["exec", sys.executable, str(HOSTILE), "endless"])
    target = sentinel.path / "sub" / target_name
    proc = subprocess.run(
        [
            RESTORE,
            "--remote-schema",
            f"sh -c {shlex.quote(command)} %s",
            f"{HOST}::{location}",
            "-" if target_name == "-" else str(target),
        ],
        capture_output=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20)),
    )
    assert proc.returncode == ExitCode.CORRUPT, proc.stderr
    last = proc.stderr.decode().splitlines()[-1]
    assert "more than the 10 bytes the metadata records" in last, last
    assert b"Traceback" not in proc.stderr
    assert len(proc.stdout) <= 10
    assert list(sentinel.path.joinpath("sub").iterdir()) == ([target] if location == "/r" else [])
    if location == "/r":
        assert list(target.iterdir()) == []


def test_compare_and_list_changed_want_a_local_repository(tmp_path: Path) -> None:
    for args in (
        ("compare", tmp_path, remote(tmp_path)),
        ("list", "changed", "--since", "1B", remote(tmp_path)),
    ):
        proc = rdb_restore(*args)
        assert proc.returncode == ExitCode.USAGE
        assert b"run it on the repository's host" in proc.stderr


def test_server_is_not_in_the_help() -> None:
    proc = rdb_restore("--help")
    assert proc.returncode == 0
    assert b"--server" not in proc.stdout and b"server" not in proc.stdout.lower().split()
    assert b"--remote-schema" in rdb_restore("restore", "--help").stdout


def test_a_fresh_mirror_repo_over_ssh(sshd: SshServer, tmp_path: Path) -> None:
    """A repository made for this test, restored over ssh at its oldest session."""
    (tmp_path / "w").mkdir()
    repo = build_mirror_repo(tmp_path / "w", sessions=2, seed=23)
    proc = rdb_restore(
        "--remote-schema", ssh_schema(sshd), "--at", "1B", remote(repo.path), tmp_path / "t"
    )
    assert proc.returncode == 0, proc.stderr
    assert differences(repo.scans[0], trees.scan(tmp_path / "t")) == []
