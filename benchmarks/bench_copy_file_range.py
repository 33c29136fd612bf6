"""How a local backup should copy file data: read + write (today) or ``os.copy_file_range``.

Usage::

    python benchmarks/bench_copy_file_range.py                  # /tmp/corpus small-a and big-a.bin
    python benchmarks/bench_copy_file_range.py --rounds 7 --dest /var/tmp/x

rdb-mirror's source side reads every new or changed file once for its SHA1 and hands the bytes
to the repository side, which writes them to a staged copy. With a local source the repository
side could instead copy the file in the kernel (``copy_file_range``) while the source side only
hashes it. This script times both ways on the page-cache-warm corpus, the staged copies on the
destination's file system, alternating the two ways round by round (median of the rounds):

- **small files** (``small-a``, 20,000 files), one after the other as a pool job does them:
  ``read+write``: open, one read, SHA1, create the staged copy, write it, close both;
  ``copy_file_range``: open, one read, SHA1 (the source side), then the repository side's own
  open of the source (it must check the stat key), create, ``copy_file_range``, close.
- **one large file** (``big-a.bin``, 512 MiB): ``read+write``: 1 MiB reads, SHA1, writes;
  ``copy_file_range``: one thread reads + hashes while another copies it in the kernel.

Wall and CPU seconds (``resource.getrusage`` of this process), and the load average.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _files(root: Path) -> list[tuple[bytes, int]]:
    found = []
    for dirpath, _, names in os.walk(os.fsencode(root)):
        for name in names:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append((path, st.st_size))
    return found


def small_read_write(files: list[tuple[bytes, int]], out: bytes) -> None:
    for n, (path, size) in enumerate(files):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        data = os.read(fd, size + 1)
        os.close(fd)
        hashlib.sha1(data).hexdigest()
        dst = os.open(b"%s/%d" % (out, n), FLAGS, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view) :]
        os.close(dst)


def small_copy_file_range(files: list[tuple[bytes, int]], out: bytes) -> None:
    for n, (path, size) in enumerate(files):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        data = os.read(fd, size + 1)
        os.close(fd)
        hashlib.sha1(data).hexdigest()
        src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # the repository side's own open
        os.fstat(src)  # and its stat key check
        dst = os.open(b"%s/%d" % (out, n), FLAGS, 0o600)
        left = size
        while left > 0:
            done = os.copy_file_range(src, dst, left)
            if done == 0:
                break
            left -= done
        os.close(dst)
        os.close(src)


def big_read_write(path: bytes, out: bytes) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    dst = os.open(out + b"/big", FLAGS, 0o600)
    digest = hashlib.sha1()
    while data := os.read(fd, CHUNK):
        digest.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view) :]
    os.close(dst)
    os.close(fd)


def big_copy_file_range(path: bytes, out: bytes) -> None:
    def copy() -> None:
        src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        dst = os.open(out + b"/big", FLAGS, 0o600)
        while os.copy_file_range(src, dst, 64 * CHUNK):
            pass
        os.close(dst)
        os.close(src)

    copier = threading.Thread(target=copy)
    copier.start()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    digest = hashlib.sha1()
    while data := os.read(fd, CHUNK):
        digest.update(data)
    os.close(fd)
    copier.join()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(action: Callable[[bytes], None], dest: Path) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(dir=dest))
    os.sync()
    cpu, started = _cpu(), time.perf_counter()
    action(os.fsencode(out))
    wall = time.perf_counter() - started
    cpu = _cpu() - cpu
    shutil.rmtree(out)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("CORPUS", "/tmp/corpus"))
    )
    parser.add_argument("--dest", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    files = _files(args.corpus / "small-a")
    big = os.fsencode(args.corpus / "big-a.bin")
    for path, _ in files:  # page cache warm
        with open(path, "rb") as handle:
            handle.read()
    with open(big, "rb") as handle:
        while handle.read(CHUNK):
            pass
    cases: dict[str, Callable[[bytes], None]] = {
        "small read+write": lambda out: small_read_write(files, out),
        "small copy_file_range": lambda out: small_copy_file_range(files, out),
        "big read+write": lambda out: big_read_write(big, out),
        "big copy_file_range": lambda out: big_copy_file_range(big, out),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    loads = []
    for _ in range(args.rounds):
        for name, action in cases.items():
            loads.append(os.getloadavg()[0])
            results[name].append(measure(action, args.dest))
    print(
        f"{len(files)} small files, {os.path.getsize(big) >> 20} MiB big file, {args.rounds} rounds"
    )
    print(f"load average (1 min) median {statistics.median(loads):.2f}, max {max(loads):.2f}")
    for name, values in results.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"{name:24} {wall:7.3f} s wall {cpu:7.3f} s cpu")


if __name__ == "__main__":
    main()
