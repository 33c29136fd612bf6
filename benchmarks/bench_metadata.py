"""Benchmark: write, stream-read and rebuild a large mirror_metadata snapshot.

    .venv/bin/python benchmarks/bench_metadata.py [--records N] [--dir DIR]

Each phase runs in a fresh child process so its peak RSS (ru_maxrss) is its own:
  write    generate N records (files in 1000-entry directories), write two gzipped snapshots
           (sessions 1 and 2), then turn session 1 into a reverse diff (times are for all three)
  read     stream every record back with iter_records
  rebuild  records_at(older session): the snapshot plus one reverse diff (1% of paths changed)
Prints a Markdown table. Memory must be flat: compare --records 100000 with 1000000.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from rdb_format.metadata import Record, iter_records, write_metadata_file
from rdb_format.metadata_diff import diff_records, records_at
from rdb_format.timestamps import format_timestring

T_OLD = 1795303200
T_NEW = T_OLD + 86400
SHA = "4aaf8f1bc676d6c000dff7c99abc088fb55d8758"
PER_DIR = 1000


def generate(count: int, *, session: int) -> Iterator[Record]:
    """A sorted tree of ``count`` entries; in the newer session 1% of files changed."""
    yield Record(
        b".", "dir", mod_time=T_OLD, uid=0, uname="root", gid=0, gname="root", permissions=0o755
    )
    made = 1
    d = 0
    while made < count:
        directory = b"dir%05d" % d
        yield Record(
            directory,
            "dir",
            mod_time=T_OLD,
            uid=1000,
            uname="user",
            gid=1000,
            gname="user",
            permissions=0o755,
        )
        made += 1
        for i in range(min(PER_DIR, count - made)):
            changed = session == 1 and i % 100 == 7
            yield Record(
                directory + b"/file%06d.txt" % i,
                "reg",
                size=i * 37 + (1 if changed else 0),
                sha1_digest=SHA,
                mod_time=T_OLD + i + (3600 if changed else 0),
                uid=1000,
                uname="user",
                gid=1000,
                gname="user",
                permissions=0o644,
            )
            made += 1
        d += 1


def name(time_: int, kind: str) -> str:
    return f"mirror_metadata.{format_timestring(time_, utc_offset=0)}.{kind}"


def phase(which: str, count: int, data_dir: Path) -> tuple[float, int, int]:
    start = time.perf_counter()
    n = 0
    if which == "write":
        old = write_metadata_file(
            data_dir / name(T_OLD, "snapshot"), generate(count, session=0), fsync=False
        )
        new = write_metadata_file(
            data_dir / name(T_NEW, "snapshot"), generate(count, session=1), fsync=False
        )
        n = count
        # the older session becomes a reverse diff, as after the next backup
        write_metadata_file(
            data_dir / name(T_OLD, "diff"),
            diff_records(iter_records(new), iter_records(old)),
            fsync=False,
        )
        old.unlink()
        write_time = time.perf_counter() - start
        return write_time, n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if which == "read":
        for _ in iter_records(data_dir / (name(T_NEW, "snapshot") + ".gz")):
            n += 1
    else:
        for _ in records_at(data_dir, T_OLD):
            n += 1
    return time.perf_counter() - start, n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        seconds, n, rss = phase(args.phase, args.records[0], args.dir)
        print(f"{seconds} {n} {rss}")
        return
    print("| records | phase | records seen | time (s) | records/s | peak RSS (MiB) | file size |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for count in args.records:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            for which in ("write", "read", "rebuild"):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--phase",
                        which,
                        "--records",
                        str(count),
                        "--dir",
                        tmp,
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()
                seconds, n, rss = float(out[0]), int(out[1]), int(out[2])
                sizes = (
                    ", ".join(
                        f"{p.name.split('.')[-2 if p.suffix == '.gz' else -1]}"
                        f" {p.stat().st_size / 2**20:.2f} MiB"
                        for p in sorted(Path(tmp).iterdir())
                    )
                    if which == "write"
                    else ""
                )
                print(
                    f"| {count:,} | {which} | {n:,} | {seconds:.1f} | {n / seconds:,.0f} "
                    f"| {rss / 1024:.0f} | {sizes} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
