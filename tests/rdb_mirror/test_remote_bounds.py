"""What a remote source sends for a changed file is bounded by the size it listed: a delta
no longer than librsync can make of that size, patched into no more than that size. Past
either bound the session stops with a protocol error naming the file, and the previous
session stays as it was."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from tests.rdb_mirror.helpers import session_time
from tests.rdb_mirror.remote_helpers import HOST, MIRROR, mirror_json

from rdb_format.exitcodes import ExitCode
from rdb_format.layout import Layout
from rdb_format.repository import read_state
from rdb_mirror import BackupOptions, backup
from rdb_mirror.check import check
from rdb_mirror.deltas import delta_limit, send_delta
from rdb_mirror.protocol import Chunk
from rdiff.api import iter_delta, iter_patch, load_signature, signature

HOSTILE_SERVER = Path(__file__).with_name("hostile_server.py")
SIZE = 64 << 10


def test_the_delta_limit_covers_what_the_encoder_makes_of_unrelated_data() -> None:
    """No COPY matches: the delta is all literals, within the limit, and the limit is close
    to the size (it bounds the disk a source can use)."""
    for size in (4 << 10, 1 << 20):
        old, new = os.urandom(size), os.urandom(size)
        sig = io.BytesIO()
        signature(io.BytesIO(old), sig, block_len=1024, strong_len=16)
        delta = b"".join(iter_delta(load_signature([sig.getvalue()]), [new]))
        assert len(delta) <= delta_limit(size)
        assert delta_limit(size) < size * 1.03 + (64 << 10)


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("endless-delta", f"'f': a delta of more than {delta_limit(SIZE)} bytes"),
        ("expanding-delta", f"'f': the delta patches into more than the {SIZE} bytes announced"),
    ],
)
def test_a_source_cannot_send_more_than_the_size_it_listed(
    mode: str, why: str, tmp_path: Path
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "f").write_bytes(b"x" * SIZE)
    backup(src, repo, BackupOptions(current_time=session_time(0)))
    schema = shlex.join([sys.executable, str(HOSTILE_SERVER), mode]) + " %s"
    run = mirror_json(
        "--remote-schema", schema, "--current-time", str(session_time(1)), f"{HOST}::/x", repo
    )
    assert run.status == ExitCode.PROTOCOL, run.stderr + run.stdout
    assert "Traceback" not in run.stderr
    assert str(run.summary["message"]).startswith(f"{HOST}::/x: {why}"), run.summary
    assert (repo / "f").read_bytes() == b"x" * SIZE
    staged = [p for p in (repo / "rdiff-backup-data").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in staged) < 1 << 20  # nothing of the delta kept
    # the session was not committed: the next run regresses it, the first one is intact
    assert read_state(Layout(repo)).unfinished
    regress = subprocess.run([MIRROR, "--regress", str(repo)], capture_output=True, check=False)
    assert regress.returncode == 0, regress.stderr
    assert [m.time for m in read_state(Layout(repo)).markers] == [session_time(0)]
    assert (repo / "f").read_bytes() == b"x" * SIZE
    assert check(repo).problems == []


class _Collect:
    def __init__(self) -> None:
        self.messages: list[object] = []

    def send(self, message: object) -> None:
        self.messages.append(message)


@pytest.mark.parametrize("size", [64 << 10, 9 << 20])  # one thread; parallel ranges
def test_a_source_encodes_no_more_than_the_size_listed(size: int, tmp_path: Path) -> None:
    """A file that grew past its listed size: the delta covers the listed bytes only (so a
    growing file never makes a delta past the limit), and the size read says it grew."""
    old = os.urandom(size)
    sig = io.BytesIO()
    signature(io.BytesIO(old), sig, block_len=1024, strong_len=16)
    grown = tmp_path / "grown"
    grown.write_bytes(os.urandom(size) + os.urandom(size))
    out = _Collect()
    fd = os.open(grown, os.O_RDONLY)
    try:
        read, _ = send_delta(fd, size, 0, [sig.getvalue()], out)
    finally:
        os.close(fd)
    assert read > size
    delta = b"".join(m.data for m in out.messages if isinstance(m, Chunk))
    assert len(delta) <= delta_limit(size)
    patched = b"".join(iter_patch(io.BytesIO(old), [delta]))
    assert patched == grown.read_bytes()[:size]
