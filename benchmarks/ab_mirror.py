"""Two versions of rdb-mirror against each other: incremental and no-change backups, interleaved.

Usage::

    python benchmarks/ab_mirror.py 49a0720 HEAD                     # django and small, 5 rounds
    python benchmarks/ab_mirror.py main HEAD --only django --repeat 7

Each REF runs from a byte-compiled snapshot of its committed packages (``bench_mirror.snapshot``:
``git archive REF``, plus the working tree's compiled extensions). For each corpus pair of
``../shared/bench/corpus.sh`` (``CORPUS``, default ``/tmp/corpus``; ``django-a`` → ``-b``,
``small-a`` → ``-b``) a one-session base repository of A is made once by the first REF (kept in
``--work`` between runs). Each round, for each corpus and each REF (the order flips every
round): a fresh ``cp -a`` of the base, the incremental backup of B into it, then a no-change
backup of B again, each a measured child process (benchmarks/measure.py). The copies are made
right before their runs, and written back before them (``run_child`` syncs first: the
copy's writeback is not charged to the backup's commit sync), and nothing is deleted until
the end (the machine's ext4 has no journal: creates right after a large delete are slow; see
bench_mirror's docstring).

Prints one line per run and a table: each REF's median wall time (min; median CPU) and the
ratio of the first REF's median to the last's; ``docs/benchmarks.md`` takes the table with
the load average printed with it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_mirror import machine, snapshot
from measure import Measure, run_child

T0 = 1_700_000_000
PHASES = ("incremental", "no-change")


def mirror(env: dict[str, str], src: Path, dest: Path, session: int) -> Measure:
    """One rdb-mirror session (``--current-time`` one hour per session), measured."""
    argv = [sys.executable, "-m", "rdb_mirror", "--quiet", "--current-time"]
    return run_child([*argv, str(T0 + 3600 * session), str(src), str(dest)], env=env, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("refs", nargs=2, metavar="REF", help="the two git refs to compare")
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("CORPUS", "/tmp/corpus"))
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/rdb-ab-mirror"))
    parser.add_argument("--only", default="django,small", help="corpora, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    refs: list[str] = args.refs
    corpora = args.only.split(",")
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    print(machine(), flush=True)

    envs = {}
    for ref in refs:
        snap = work / f"snapshot-{ref}"
        shutil.rmtree(snap, ignore_errors=True)
        envs[ref] = {**os.environ, "PYTHONPATH": snapshot(snap, ref)}
    bases = {}
    for corpus in corpora:
        base = work / f"base-{corpus}"
        if not (base / "rdiff-backup-data").is_dir():
            shutil.rmtree(base, ignore_errors=True)
            made = mirror(envs[refs[0]], args.corpus / f"{corpus}-a", base, 0)
            if made.status != 0:
                print(f"the base backup of {corpus}-a failed ({made.status})", file=sys.stderr)
                return 1
        bases[corpus] = base
        for side in ("a", "b"):  # the page cache warm for both sides
            tar = ["tar", "cf", "/dev/null", str(args.corpus / f"{corpus}-{side}")]
            subprocess.run(tar, stderr=subprocess.DEVNULL)

    runs = work / f"runs-{int(time.time())}"
    runs.mkdir()
    times: dict[tuple[str, str, str], list[Measure]] = {}
    try:
        for round_ in range(args.repeat):
            for corpus in corpora:
                order = refs if round_ % 2 == 0 else refs[::-1]
                for ref in order:
                    dest = runs / f"{round_}-{corpus}-{ref}"
                    subprocess.run(["cp", "-a", str(bases[corpus]), str(dest)], check=True)
                    src = args.corpus / f"{corpus}-b"
                    for session, phase in enumerate(PHASES, start=1):
                        measured = mirror(envs[ref], src, dest, session)
                        times.setdefault((corpus, phase, ref), []).append(measured)
                        print(
                            f"round {round_} {corpus} {phase} {ref}: {measured.wall:.3f} s "
                            f"(cpu {measured.cpu:.2f}, status {measured.status}), "
                            f"load {os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
    finally:
        shutil.rmtree(runs, ignore_errors=True)

    print()
    header = " | ".join(f"{ref}: median s (min; cpu)" for ref in refs)
    print(f"| corpus | backup | {header} | {refs[0]} / {refs[1]} |")
    print("|---|---|" + "---:|" * (len(refs) + 1))
    for corpus in corpora:
        for phase in PHASES:
            cells: list[str] = []
            medians: list[float] = []
            for ref in refs:
                runs_of = times[(corpus, phase, ref)]
                median = statistics.median(m.wall for m in runs_of)
                medians.append(median)
                cpu = statistics.median(m.cpu for m in runs_of)
                cells.append(f"{median:.3f} ({min(m.wall for m in runs_of):.3f}; {cpu:.2f})")
            print(f"| {corpus} | {phase} | {' | '.join(cells)} | {medians[0] / medians[1]:.2f}× |")
    print(machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
