"""A hostile .diff.gz whose file would be gigabytes (a gzip bomb, or a delta copying its basis
over and over) is refused with the file named and exit status 13, nothing left at its name,
and the memory of the restore stays far below what the file would take (each version is held
whole in memory only up to a limit in C; the general way then streams it and stops)."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from tests.rdb_restore.helpers import increments

from rdb_mirror import session as mirror

T0 = 1_700_000_000
DELTA_MAGIC = struct.pack(">I", 0x72730236)
SIZE = 100_000
#: the restore's peak RSS must stay under this (a file of several GiB is asked for)
MEMORY_BOUND = 512 << 20


def _gzip(pieces: list[bytes], repeat: int = 1) -> bytes:
    """One gzip member of the pieces, the middle one ``repeat`` times (streamed)."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first, middle, last = pieces
    out = [packer.compress(first)]
    out += [packer.compress(middle) for _ in range(repeat)]
    out += [packer.compress(last), packer.flush()]
    return b"".join(out)


def _copy_bomb() -> bytes:
    """COPY commands (0x47: 1-byte offset, 4-byte length) of the whole basis, 40,000 times:
    ~4 GB of output from a delta of a few hundred bytes."""
    copy = b"\x47\x00" + struct.pack(">I", SIZE)
    return _gzip([DELTA_MAGIC, copy * 1000, b"\x00"], repeat=40)


def _literal_bomb() -> bytes:
    """One LITERAL command (0x44: 8-byte length) of 1 GiB of zeros: ~1 MB compressed."""
    length = 1 << 30
    return _gzip([DELTA_MAGIC + b"\x44" + struct.pack(">Q", length), bytes(1 << 20), b"\x00"], 1024)


BOMBS = {"copy": _copy_bomb, "literal": _literal_bomb}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("hostile")
    src, repo = work / "src", work / "repo"
    src.mkdir()
    base = random.Random(4).randbytes(SIZE)
    (src / "file").write_bytes(base)
    (src / "other").write_bytes(b"fine\n")
    mirror.backup(src, repo, mirror.BackupOptions(current_time=T0))
    (src / "file").write_bytes(base[:50_000] + b"changed" + base[50_000:])
    mirror.backup(src, repo, mirror.BackupOptions(current_time=T0 + 3600))
    return repo


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_diff_that_would_make_gigabytes_is_refused_in_bounded_memory(
    repo: Path, tmp_path: Path, bomb: str
) -> None:
    (diff,) = increments(repo, ".diff.gz")
    diff.write_bytes(BOMBS[bomb]())
    target = tmp_path / "target"
    peak = tmp_path / "peak-kib"
    args = [str(peak), "--at", str(T0), str(repo), str(target)]
    done = subprocess.run(
        [sys.executable, "-c", _RESTORE_REPORTING_PEAK, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TZ": "UTC"},
        check=False,
    )
    error = done.stderr.decode()
    assert done.returncode == 13, error
    last = error.strip().splitlines()[-1]
    assert str(repo / "file") in last and "more than the 100000 bytes" in last, error
    assert sorted(os.listdir(target)) == ["other"]
    assert int(peak.read_text()) * 1024 < MEMORY_BOUND


#: rdb-restore's command, writing its peak RSS (KiB) to argv[1] as it exits: VmHWM of its own
#: memory map, not the ``ru_maxrss`` its parent gets, which Linux carries over the exec from
#: the image it replaced (a child of a big pytest process, spawned by vfork, would report the
#: parent's size: 590 MiB in the full suite).
_RESTORE_REPORTING_PEAK = """
import atexit, sys
peak_file = sys.argv.pop(1)
def report():
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM:"))
    with open(peak_file, "w") as out:
        out.write(hwm.split()[1])
atexit.register(report)
sys.argv[0] = "rdb-restore"
from rdb_restore.cli import main
main()
"""
