"""The writer lock, against real second processes (reference §5.5)."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdb_format.errors import RepositoryLocked, RepositoryNotFound
from rdb_format.exitcodes import ExitCode
from rdb_format.layout import Layout
from rdb_format.locking import WriterLock, parse_owner, read_owner
from rdb_format.quoting import NO_QUOTING
from rdb_format.repository import write_marker

HOST = socket.gethostname()

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from rdb_format.layout import Layout
    from rdb_format.locking import WriterLock
    with WriterLock(Layout(Path(sys.argv[1])), command="rdb-test"):
        print("ready", flush=True)
        sys.stdin.read()
    """
)

RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rdb_format.errors import RepositoryLocked
    from rdb_format.layout import Layout
    from rdb_format.locking import WriterLock
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    try:
        with WriterLock(Layout(Path(sys.argv[1]))):
            print("won", flush=True)
            time.sleep(1.0)
    except RepositoryLocked as error:
        print("lost", error, flush=True)
    """
)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    lay = Layout(tmp_path / "repo")
    lay.increments_dir.mkdir(parents=True)
    return lay


@pytest.fixture
def holder(layout: Layout) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(layout.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    yield proc
    proc.communicate(timeout=10)  # closes stdin (the holder exits) and the pipes


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def stale_lock(layout: Layout, pid: int, host: str = HOST) -> None:
    layout.writer_lock.write_text(f"host: {host}\npid: {pid}\ncommand: rdb-backup\ntoken: old\n")


def test_acquire_and_release(layout: Layout) -> None:
    with WriterLock(layout, command="rdb-backup") as lock:
        owner = read_owner(layout.writer_lock)
        assert owner is not None
        assert (owner.host, owner.pid, owner.command) == (HOST, os.getpid(), "rdb-backup")
        assert lock.owner == owner
        yml = layout.rdiff_backup_lock.read_text()
        assert f"pid: {os.getpid()}" in yml
        assert f"hostname: {HOST}" in yml
        assert "cmd: rdb-backup" in yml
    assert not layout.writer_lock.exists()
    assert layout.rdiff_backup_lock.read_bytes() == b""  # truncated and kept, like rdiff-backup
    assert not lock.held
    with WriterLock(layout):  # free again
        pass


def test_second_process_holding_the_lock(layout: Layout, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(RepositoryLocked) as info, WriterLock(layout):
        pass
    message = str(info.value)
    assert f"pid {holder.pid}" in message
    assert f"host {HOST}" in message
    assert "rdb-test" in message
    assert message.startswith(str(layout.rdiff_backup_lock) + ": ")
    assert "\n" not in message
    assert info.value.exit_code == ExitCode.LOCKED
    # the failed attempt must not disturb the holder's files
    owner = read_owner(layout.writer_lock)
    assert owner is not None
    assert owner.pid == holder.pid


def test_same_process_second_lock_is_refused(layout: Layout) -> None:
    with WriterLock(layout), pytest.raises(RepositoryLocked):
        WriterLock(layout).acquire()


def test_rdiff_backup_api201_holding_lock_yml(layout: Layout) -> None:
    fd = os.open(layout.rdiff_backup_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(
            fd,
            b"cmd: rdiff-backup\nhostname: box\npid: 23740\ntimestamp: '2026-11-21T23:25:44Z'\n",
        )
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file description
        with pytest.raises(RepositoryLocked, match="rdiff-backup pid 23740 on host box"):
            WriterLock(layout).acquire()
    finally:
        os.close(fd)


def test_stale_lock_of_dead_pid_is_broken(layout: Layout) -> None:
    stale_lock(layout, dead_pid())
    with WriterLock(layout) as lock:
        assert lock.owner is not None
        assert read_owner(layout.writer_lock) == lock.owner
    assert sorted(p.name for p in layout.data_dir.iterdir()) == ["increments", "lock.yml"]


def test_live_pid_lock_without_flock_holder(layout: Layout) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale_lock(layout, proc.pid)
        with pytest.raises(RepositoryLocked, match=f"pid {proc.pid} on host {HOST}.*still running"):
            WriterLock(layout).acquire()
        assert layout.writer_lock.exists()
    finally:
        proc.kill()
        proc.wait()


def test_other_host_is_never_broken(layout: Layout) -> None:
    stale_lock(layout, dead_pid(), host="elsewhere.example")
    with pytest.raises(RepositoryLocked) as info:
        WriterLock(layout).acquire()
    message = str(info.value)
    assert "host elsewhere.example" in message
    assert "delete" in message
    assert str(layout.writer_lock) in message
    assert "\n" not in message
    assert read_owner(layout.writer_lock) == parse_owner(layout.writer_lock.read_bytes())
    assert layout.writer_lock.exists()


def test_garbled_lock_is_not_broken(layout: Layout) -> None:
    layout.writer_lock.write_bytes(b"\x00garbage")
    with pytest.raises(RepositoryLocked, match="unreadable"):
        WriterLock(layout).acquire()


@pytest.mark.parametrize("racers", [2, 4])
def test_concurrent_breakers_one_winner(layout: Layout, tmp_path: Path, racers: int) -> None:
    stale_lock(layout, dead_pid())
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(layout.root), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(racers)
    ]
    time.sleep(0.5)  # let every racer start and spin on the barrier
    go.write_bytes(b"")
    outputs = [p.communicate(timeout=30)[0] for p in procs]
    assert sum(out.startswith("won") for out in outputs) == 1, outputs
    assert sum(out.startswith("lost") for out in outputs) == racers - 1, outputs
    assert not layout.writer_lock.exists()


def test_rdiff_backup_marker_pid_alive(layout: Layout) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_marker(layout, NO_QUOTING, 1795303280, pid=1234567)
        write_marker(layout, NO_QUOTING, 1795303293, pid=proc.pid)
        with pytest.raises(RepositoryLocked, match=f"pid {proc.pid}.*--force"):
            WriterLock(layout).acquire()
        assert not layout.writer_lock.exists()  # released on failure
        with WriterLock(layout, force=True):
            pass
    finally:
        proc.kill()
        proc.wait()
    with WriterLock(layout):  # marker PID now dead: regress is someone else's job
        pass


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound):
        WriterLock(Layout(tmp_path)).acquire()


def test_parse_owner() -> None:
    assert parse_owner(b"") is None
    assert parse_owner(b"host: h\npid: x\n") is None
    owner = parse_owner(
        b"cmd: rdiff-backup\nhostname: h\npid: 5\ntimestamp: '2026-11-21T23:25:44Z'\n"
    )
    assert owner is not None
    assert (owner.host, owner.pid, owner.command, owner.started) == (
        "h",
        5,
        "rdiff-backup",
        "2026-11-21T23:25:44Z",
    )
