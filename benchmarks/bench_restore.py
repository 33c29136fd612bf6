"""rdb-restore against rdiff-backup 2.2.7's restore and ``cp -a`` of the mirror, in one run.

For each corpus pair (``../shared/bench/corpus.sh``: small-a→small-b, django-a→django-b) a
repository is made with rdiff-backup 2.2.7 (two sessions: a, then b), then restored at the
newest session (from the mirror) and at the oldest (through the reverse increments) by
rdb-restore and by rdiff-backup; ``cp -a`` of the mirror is the floor. Wall time is the best
of ``--repeat`` runs (rdiff-backup: one run), peak RSS is the child's own (wait4).

Usage::

    python benchmarks/bench_restore.py [--corpus DIR] [--work DIR] [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RDIFF_BACKUP = os.environ.get("RDB_RDIFF_BACKUP") or str(
    ROOT / ".venv-rdiff-backup" / "bin" / "rdiff-backup"
)
T0 = 1_700_000_000
PAIRS = (("small", "small-a", "small-b"), ("django", "django-a", "django-b"))


def run(argv: Sequence[str], *, cwd: Path | None = None) -> tuple[float, int]:
    """Run a command; (wall seconds, peak RSS in MiB of that child)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TZ": "UTC"},
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}: {err.decode(errors='replace')}")
    return elapsed, usage.ru_maxrss // 1024


def make_repo(corpus: Path, work: Path, a: str, b: str) -> Path:
    repo = work / "repo"
    stamp = work / ".done"
    if stamp.exists():
        return repo
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for n, name in enumerate((a, b)):
        run(
            [
                RDIFF_BACKUP,
                "--current-time",
                str(T0 + n * 3600),
                "backup",
                str(corpus / name),
                str(repo),
            ]
        )
    stamp.touch()
    return repo


def fresh(path: Path) -> Path:
    """Remove ``path``, then let the file system settle (ext4 with discard is slow to create
    files right after a big delete, which would skew the next timing)."""
    if path.exists():
        shutil.rmtree(path)
        os.sync()
        time.sleep(1)
    return path


def best(
    repeat: int, make: Sequence[str], target: Path, cwd: Path | None = None
) -> tuple[float, int]:
    results = []
    for _ in range(repeat):
        fresh(target)
        results.append(run(make, cwd=cwd))
    fresh(target)
    return min(r[0] for r in results), max(r[1] for r in results)


def bench_pair(corpus: Path, work: Path, label: str, a: str, b: str, repeat: int) -> list[str]:
    repo = make_repo(corpus, work / label, a, b)
    out = work / label / "out"
    ours = [sys.executable, "-m", "rdb_restore"]
    entries = sorted(p.name for p in repo.iterdir() if p.name != "rdiff-backup-data")
    files = sum(len(f) for _, _, f in os.walk(corpus / b))
    rows = []
    cp = best(
        repeat, ["sh", "-c", f'mkdir "{out}" && cp -a {" ".join(entries)} "{out}/"'], out, cwd=repo
    )
    for session, at in (("newest", str(T0 + 3600)), ("oldest", str(T0))):
        mine = best(repeat, [*ours, "--quiet", "--at", at, str(repo), str(out)], out)
        fresh(out)
        theirs = run([RDIFF_BACKUP, "restore", "--at", at, str(repo), str(out)])
        fresh(out)
        rows.append(
            f"| {label} ({files} files) | {session} | {mine[0]:.2f} s ({mine[1]} MiB) | "
            f"{theirs[0]:.2f} s ({theirs[1]} MiB) | {cp[0]:.2f} s | "
            f"{theirs[0] / mine[0]:.1f}× | {mine[0] / cp[0]:.2f}× |"
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("CORPUS", "/tmp/corpus"))
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/rdb-restore-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="django only, one run each")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not (args.corpus / "small-a").is_dir() or not Path(RDIFF_BACKUP).exists():
        print(
            f"bench_restore: needs the corpora in {args.corpus} (../shared/bench/corpus.sh) "
            f"and rdiff-backup 2.2.7 ({RDIFF_BACKUP}); skipped"
        )
        return 0
    pairs = PAIRS[1:] if args.quick else PAIRS
    repeat = 1 if args.quick else args.repeat
    print(
        "| corpus | session | rdb-restore (peak RSS) | rdiff-backup 2.2.7 (peak RSS) | "
        "cp -a mirror | speed-up | vs cp -a |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, a, b in pairs:
        bench_pair(args.corpus, args.work, label, a, b, repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
