"""What the copy tests share."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from rdb_fastio import FileCopy


@contextlib.contextmanager
def three_dir_pairs(tmp_path: Path) -> Iterator[list[tuple[int, int]]]:
    """Three pairs of directories ``srcN``/``dstN`` (N = 0, 1, 2), opened; ``srcN/f`` holds
    the digit N."""
    fds: list[int] = []
    try:
        for n in range(3):
            src, dst = tmp_path / f"src{n}", tmp_path / f"dst{n}"
            src.mkdir()
            dst.mkdir()
            (src / "f").write_bytes(b"%d" % n)
            fds += (
                os.open(src, os.O_RDONLY | os.O_DIRECTORY),
                os.open(dst, os.O_RDONLY | os.O_DIRECTORY),
            )
        yield [(fds[n], fds[n + 1]) for n in range(0, 6, 2)]
    finally:
        for fd in fds:
            os.close(fd)


def plant_failures(src: Path) -> None:
    """In ``src``, a source for each job of :data:`FAILING` (``gone`` is missing; ``taken``
    is a fine source whose target the test makes first)."""
    for name in ("short", "altered", "taken"):
        (src / name).write_bytes(b"12345")
    (src / "elsewhere").write_bytes(b"secret")
    (src / "link").symlink_to(src / "elsewhere")
    os.mkfifo(src / "fifo")  # opened without O_NONBLOCK this would wait for a writer
    (src / "dir").mkdir()


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


#: copies that fail, one per way: no source, a symlink, a FIFO, a directory, not the size
#: asked, not the SHA1 asked, a target already there
FAILING = [
    FileCopy(b"gone", b"gone", 0o600),
    FileCopy(b"link", b"link", 0o600),
    FileCopy(b"fifo", b"fifo", 0o600),
    FileCopy(b"dir", b"dir", 0o600),
    FileCopy(b"short", b"short", 0o600, size=6),
    FileCopy(b"altered", b"altered", 0o600, size=5, sha1=_sha1(b"54321")),
    FileCopy(b"taken", b"taken", 0o600),
]
