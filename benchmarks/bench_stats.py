"""rdb-stats over a synthetic repository: 1,000 sessions, 1,000,000 file_statistics lines.

Usage::

    python benchmarks/bench_stats.py                 # 1,000 sessions x 1,000 lines, 3 runs
    python benchmarks/bench_stats.py --sessions 100  # a smaller repository (memory comparison)
    python benchmarks/bench_stats.py --keep DIR      # build (or reuse) the repository in DIR

The repository is written directly (markers, metadata names, session_statistics, gzipped
file_statistics in index order, error logs, root increment markers and a small mirror). Each
run is ``rdb-stats --json REPO`` as a child process; wall time is taken around spawn + wait4,
peak RSS from the child's rusage. The target (issue 6) is at most 5 s with flat memory: the
1,000-session run is also compared with a 100-session one (10x fewer lines).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from measure import run_child

START = 1_700_000_000
STEP = 86_400
DIRS = 9
FILES_PER_DIR = 110  # 1 root + 9 x (1 dir + 110 files) = 1,000 lines per session


def stamp(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def session_statistics(when: int, rng: random.Random) -> str:
    new, changed, deleted = rng.randint(0, 50), rng.randint(0, 200), rng.randint(0, 30)
    increment = rng.randint(0, 5_000_000)
    values = {
        "StartTime": f"{when:.2f}",
        "EndTime": f"{when + 61.5:.2f}",
        "ElapsedTime": "61.50",
        "SourceFiles": "1000",
        "SourceFileSize": str(rng.randint(10**9, 2 * 10**9)),
        "MirrorFiles": "1000",
        "MirrorFileSize": str(10**9),
        "NewFiles": str(new),
        "NewFileSize": str(new * 4096),
        "DeletedFiles": str(deleted),
        "DeletedFileSize": str(deleted * 4096),
        "ChangedFiles": str(changed),
        "ChangedSourceSize": str(changed * 8192),
        "ChangedMirrorSize": str(changed * 8000),
        "IncrementFiles": str(changed + deleted + new),
        "IncrementFileSize": str(increment),
        "TotalDestinationSizeChange": str(increment + new * 4096),
        "Errors": "0",
    }
    return "".join(f"{k} {v}\n" for k, v in values.items())


def file_statistics(rng: random.Random) -> bytes:
    lines = [
        b"# Format of each line in file statistics file:",
        b"# Filename Changed SourceSize MirrorSize IncrementSize",
        b". 1 0 0 NA",
    ]
    for d in range(DIRS):
        lines.append(b"dir%02d 1 0 0 NA" % d)
        for f in range(FILES_PER_DIR):
            size = rng.randint(0, 10_000_000)
            if rng.random() < 0.2:
                inc = rng.randint(0, size // 10 + 1)
                lines.append(b"dir%02d/file %03d.dat 1 %d %d %d" % (d, f, size, size, inc))
            else:
                lines.append(b"dir%02d/file %03d.dat 0 %d %d NA" % (d, f, size, size))
    return b"\n".join(lines) + b"\n"


def build(root: Path, sessions: int) -> None:
    rng = random.Random(6)
    data = root / "rdiff-backup-data"
    (data / "increments").mkdir(parents=True)
    for d in range(DIRS):
        (root / f"dir{d:02d}").mkdir()
        (root / f"dir{d:02d}" / "file.dat").write_bytes(b"x" * 1000)
    times = [START + i * STEP for i in range(sessions)]
    # A few distinct file_statistics bodies, reused: building stays fast, reading does not
    # get any cheaper (every file is still gunzipped and parsed).
    bodies = [gzip.compress(file_statistics(rng), compresslevel=6) for _ in range(8)]
    for i, when in enumerate(times):
        t = stamp(when)
        (data / f"session_statistics.{t}.data").write_text(session_statistics(when, rng))
        (data / f"file_statistics.{t}.data.gz").write_bytes(bodies[i % len(bodies)])
        (data / f"error_log.{t}.data").write_bytes(b"")
        kind = "snapshot.gz" if when == times[-1] else "diff.gz"
        (data / f"mirror_metadata.{t}.{kind}").write_bytes(b"")
        if when != times[-1]:
            (data / f"increments.{t}.dir").write_bytes(b"")
            (data / "increments" / f"dir{i % DIRS:02d}.{t}.dir").write_bytes(b"")
    (data / f"current_mirror.{stamp(times[-1])}.data").write_bytes(b"PID 1\n")


def rdb_stats() -> list[str]:
    script = Path(sys.executable).parent / "rdb-stats"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rdb_stats"]


def measure(repo: Path, runs: int) -> tuple[float, float, dict[str, object]]:
    walls: list[float] = []
    peaks: list[float] = []
    document: dict[str, object] = {}
    for _ in range(runs):
        with tempfile.TemporaryFile() as out:
            child = run_child([*rdb_stats(), "--json", str(repo)], stdout=out)
            walls.append(child.wall)
            peaks.append(child.rss_mib)
            out.seek(0)
            document = json.loads(out.read())
    return statistics.median(walls), max(peaks), document


def run_case(sessions: int, runs: int, keep: Path | None) -> dict[str, float]:
    base = keep or Path(tempfile.mkdtemp(prefix="bench-stats-"))
    repo = base / f"repo-{sessions}"
    try:
        if not repo.exists():
            t0 = time.perf_counter()
            build(repo, sessions)
            print(f"built {repo} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        wall, peak, document = measure(repo, runs)
        sessions_seen = document["sessions"]
        assert isinstance(sessions_seen, list) and len(sessions_seen) == sessions
        lines = sum(s["file_statistics_lines"] for s in sessions_seen)
        return {"sessions": sessions, "lines": lines, "seconds": wall, "peak_mib": peak}
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("-n", "--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args(argv)
    results = [run_case(n, args.runs, args.keep) for n in args.sessions]
    print("| sessions | file_statistics lines | median wall (s) | peak RSS (MiB) |")
    print("| ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['sessions']:,} | {r['lines']:,} | {r['seconds']:.2f} | {r['peak_mib']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
