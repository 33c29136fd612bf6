"""What freeing a replaced or deleted file costs the thread that replaces it, and what
rdb-mirror's ``Releaser`` (``rdb_mirror/release.py``) leaves of it.

Usage::

    python benchmarks/bench_release.py                       # in a temp dir under /tmp
    python benchmarks/bench_release.py --dir /srv/x --files 500 --rounds 5

An incremental backup renames each changed file's new copy over the old one and unlinks each
deleted file. The call that drops an inode's last reference frees its blocks; on some file
systems (ext4 mounted with ``discard``) that is most of the call. Three ways, alternating round
by round, each over ``--files`` files of ``--size`` bytes (page cache warm, synced first):

- ``plain``: ``os.replace`` over the old file / ``os.unlink``, as before;
- ``held``: the same through ``Releaser``: the old inode held by an ``O_PATH`` descriptor, the
  descriptors closed 32 at a time by its own thread (the time includes waiting for it);
- the time the *calling* thread spends in ``held`` (what the walk's thread is spared).

Median microseconds per file, the file system's mount options and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rdb_mirror.release import Releaser


def _make(directory: Path, names: list[str], size: int) -> None:
    data = os.urandom(size)
    for name in names:
        (directory / name).write_bytes(data)


def _mount_options(path: Path) -> str:
    best = ("", "")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[1]
            inside = str(path).startswith(point.rstrip("/") + "/") or point == "/"
            if inside and len(point) >= len(best[0]):
                best = (point, f"{fields[2]} {fields[3]}")
    return f"{best[0]} {best[1]}"


def _round(directory: Path, count: int, size: int, way: str, op: str) -> tuple[float, float]:
    """(seconds of the calling thread's loop, seconds until every file is freed)."""
    old = [f"old{n}" for n in range(count)]
    new = [f"new{n}" for n in range(count)]
    _make(directory, old, size)
    if op == "replace":
        _make(directory, new, size)
    os.sync()
    releaser = Releaser()
    replace: Callable[[Path, Path], None] = os.replace if way == "plain" else releaser.replace
    unlink: Callable[[Path], None] = os.unlink if way == "plain" else releaser.unlink
    start = time.perf_counter()
    for n in range(count):
        if op == "replace":
            replace(directory / new[n], directory / old[n])
        else:
            unlink(directory / old[n])
    looped = time.perf_counter()
    releaser.close()  # every held file freed
    freed = time.perf_counter()
    for name in os.listdir(directory):
        os.unlink(directory / name)
    return looped - start, freed - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where (default: a temp dir)")
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-release-") as temp:
        directory = Path(temp)
        print(f"file system: {_mount_options(directory.resolve())}")
        print(f"load average: {os.getloadavg()[0]:.2f}; {args.files} files of {args.size} B")
        for op in ("replace", "unlink"):
            plain: list[float] = []
            held_loop: list[float] = []
            held_all: list[float] = []
            for _ in range(args.rounds):
                plain.append(_round(directory, args.files, args.size, "plain", op)[0])
                loop, freed = _round(directory, args.files, args.size, "held", op)
                held_loop.append(loop)
                held_all.append(freed)
            per = 1e6 / args.files
            p, h, a = (statistics.median(x) * per for x in (plain, held_loop, held_all))
            print(
                f"{op:8} plain {p:7.1f} µs/file | Releaser: calling thread {h:6.1f} µs/file "
                f"({p / h:4.1f}× less), until freed {a:7.1f} µs/file"
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
