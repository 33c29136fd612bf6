"""Removing old sessions: ``rdb-increment remove`` against ``rdiff-backup remove increments``.

A repository of the 20,000-file corpus (``../shared/bench/corpus.sh``: small-a) is built once
with rdb-mirror over ``--sessions`` sessions an hour apart (``--current-time``), each changing
1% of the files (100 bytes rewritten in the middle of 200 of them). Then, on ``cp -a`` copies
of it, in the same run:

- **remove**: the oldest ``--sessions - 1`` sessions go (``--older-than`` the newest):
  rdb-increment and rdiff-backup 2.2.7, ``--repeat`` times each, interleaved (best and median
  reported), and both must leave the same files;
- **thin**: rdb-increment only (rdiff-backup cannot): ``--keep-daily 2`` keeps the newest
  session of the last two days and merges the increments of every other one into them.

Wall time, CPU time (user + system) and peak RSS of the command (wait4), the machine and its
load average are printed as markdown.

Usage::

    python benchmarks/bench_remove.py [--corpus DIR] [--work DIR] [--sessions N]
                                      [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from measure import Measure, run_child

ROOT = Path(__file__).resolve().parent.parent
RDIFF_BACKUP = os.environ.get("RDB_RDIFF_BACKUP") or str(
    ROOT / ".venv-rdiff-backup" / "bin" / "rdiff-backup"
)
T0 = 1_700_000_000
HOUR = 3_600


def run(argv: Sequence[str]) -> Measure:
    """Run a command to completion (in UTC); its wall and CPU seconds and peak RSS."""
    return run_child(argv, env={**os.environ, "TZ": "UTC"})


def _wall(result: Measure) -> float:
    return result.wall


def _median(runs: list[Measure]) -> Measure:
    return sorted(runs, key=_wall)[(len(runs) - 1) // 2]


def settle() -> None:
    """Let the file system write back (a copy or a big delete) before the next timing."""
    os.sync()
    time.sleep(1)


def change_files(source: Path, files: list[Path], rng: random.Random, share: float) -> None:
    """Rewrite 100 bytes in the middle of ``share`` of the files (size kept)."""
    for path in rng.sample(files, max(1, int(len(files) * share))):
        size = path.stat().st_size
        with open(path, "r+b") as stream:
            stream.seek(max(0, size // 2 - 50))
            stream.write(rng.randbytes(min(100, size)))


def build(corpus: Path, work: Path, sessions: int, files_limit: int | None) -> Path:
    """The repository (built once per parameter set)."""
    repo = work / "master"
    stamp = work / f".built-{sessions}-{files_limit}"
    if stamp.exists():
        return repo
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = work / "src"
    subprocess.run(["cp", "-a", str(corpus / "small-a"), str(source)], check=True)
    files = sorted(source.rglob("*.dat"))
    if files_limit is not None:
        for extra in files[files_limit:]:
            extra.unlink()
        files = files[:files_limit]
    rng = random.Random(8)
    mirror = [sys.executable, "-m", "rdb_mirror", "--quiet"]
    for n in range(sessions):
        if n:
            change_files(source, files, rng, 0.01)
        run([*mirror, "--current-time", str(T0 + n * HOUR), str(source), str(repo)])
        print(f"  built session {n + 1}/{sessions}", file=sys.stderr, flush=True)
    shutil.rmtree(source)
    stamp.touch()
    return repo


def copy(master: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    subprocess.run(["cp", "-a", str(master), str(target)], check=True)
    settle()
    return target


def listing(repo: Path) -> set[str]:
    skip = {"remove.log", "lock.yml", "rdb-writer.lock"}
    return {
        os.path.relpath(os.path.join(d, f), repo)
        for d, _, names in os.walk(repo)
        for f in names
        if f not in skip
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("CORPUS", "/tmp/corpus"))
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/rdb-remove-bench"))
    parser.add_argument("--sessions", type=int, default=101)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 files, 21 sessions, 1 run")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not (args.corpus / "small-a").is_dir() or not Path(RDIFF_BACKUP).exists():
        print(
            f"bench_remove: needs the corpus in {args.corpus} (../shared/bench/corpus.sh) and "
            f"rdiff-backup 2.2.7 ({RDIFF_BACKUP}); skipped"
        )
        return 0
    sessions = 21 if args.quick else args.sessions
    limit = 2_000 if args.quick else None
    repeat = 1 if args.quick else args.repeat
    master = build(args.corpus, args.work, sessions, limit)
    newest = T0 + (sessions - 1) * HOUR
    increments = sum(1 for _ in (master / "rdiff-backup-data" / "increments").rglob("*"))
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; repository: {sessions} sessions, "
        f"{increments} entries under increments/"
    )
    loads = [os.getloadavg()[0]]
    remove = [sys.executable, "-m", "rdb_increment", "remove", "--force", "--quiet"]
    theirs_remove = [RDIFF_BACKUP, "--force", "remove", "increments", "--older-than"]
    ours: list[Measure] = []
    theirs: list[Measure] = []
    same = True
    for _ in range(repeat):  # interleaved, so that both see the same machine
        target = copy(master, args.work / "ours")
        loads.append(os.getloadavg()[0])
        ours.append(run([*remove, str(target), "--older-than", str(newest)]))
        other = copy(master, args.work / "theirs")
        loads.append(os.getloadavg()[0])
        theirs.append(run([*theirs_remove, str(newest), str(other)]))
        same = same and listing(target) == listing(other)
    target = copy(master, args.work / "thin")
    loads.append(os.getloadavg()[0])
    thin = run([*remove, str(target), "--keep-daily", "2"])
    loads.append(os.getloadavg()[0])
    print(f"1-minute load average during the run: {min(loads):.2f}-{max(loads):.2f}")
    header = "rdb-increment wall / CPU (peak RSS) | rdiff-backup 2.2.7 wall / CPU (peak RSS)"
    print(f"| operation | {header} | speed-up (wall) |")
    print("|---|---:|---:|---:|")
    for label, mine, them in (
        ("best", min(ours, key=_wall), min(theirs, key=_wall)),
        ("median", _median(ours), _median(theirs)),
    ):
        print(
            f"| remove the {sessions - 1} oldest sessions ({label} of {repeat}) | "
            f"{mine.wall:.2f} s / {mine.cpu:.2f} s ({mine.rss_kib // 1024} MiB) | "
            f"{them.wall:.2f} s / {them.cpu:.2f} s ({them.rss_kib // 1024} MiB) | "
            f"{them.wall / mine.wall:.1f}× |"
        )
    print(
        f"| thin to --keep-daily 2 | {thin.wall:.2f} s / {thin.cpu:.2f} s "
        f"({thin.rss_kib // 1024} MiB) | (cannot) | |"
    )
    print(f"rdb-increment runs (wall s): {', '.join(f'{r.wall:.2f}' for r in ours)}")
    print(f"rdiff-backup runs (wall s): {', '.join(f'{r.wall:.2f}' for r in theirs)}")
    print(f"both removals leave the same files: {'yes' if same else 'NO'}")
    for name in ("ours", "theirs", "thin"):
        shutil.rmtree(args.work / name, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
