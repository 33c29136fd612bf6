"""rdb-mirror against rdiff-backup 2.2.7 and ``rsync -aH``, side by side in one run.

Usage::

    python benchmarks/bench_mirror.py                      # all corpora + the 200k flatness check
    python benchmarks/bench_mirror.py --only small --no-flat
    python benchmarks/bench_mirror.py --corpus /tmp/corpus --flat-files 200000
    python benchmarks/bench_mirror.py --only small,django,big --repeat 3 --no-flat

The corpora come from ``../shared/bench/corpus.sh`` (``CORPUS``, default ``/tmp/corpus``; run
it first): ``django-a`` → ``django-b`` (two releases of a real source tree), ``small-a`` →
``small-b`` (20,000 small files, 1% changed, 0.5% deleted, 0.5% added), ``big-a.bin`` →
``big-b.bin`` (512 MiB, 1% changed), the latter as a one-file directory (a hard link to the
corpus file in a directory of its own). rdb-mirror runs from a snapshot of the committed
packages taken at start (``--no-snapshot``: the working tree), so edits during a run do not
leak into it; the snapshot is byte-compiled, as an installed package is.

For each corpus and tool: an **initial** backup of A into an empty destination, an
**incremental** backup of B into it, then a **no-change** backup of B again. ``--repeat N``
runs that N times (fresh destinations each round, the tools' order turned by one per round)
and the table gives each cell's median run with the fastest and slowest wall times: on this
machine one run can be twice another (the 512 MiB first backup: 0.7 or 1.8 s, rsync's too,
by the kernel's block allocation). rdb-mirror and
rdiff-backup get ``--current-time`` one hour apart per session; rsync is ``rsync -aH --delete
SRC/ DEST/``; ``rsync+sync`` is the same followed by ``sync -f DEST`` (a ``syncfs`` of the
destination's file system): rdb-mirror's session is on disk when it exits, rsync's copy is
still in the page cache, so this is the durable copy to set a backup beside. Every command is
its own child process (benchmarks/measure.py): wall time around it, peak RSS from
``os.wait4``'s rusage (Linux reports the maximum over the child and the descendants it waited
for, so rsync's forked receiver counts). Output is discarded. The
page cache is warm (every source is read once before the timings).

**Nothing is deleted until the run ends** (every tool and corpus gets its own destination):
the benchmark machine's ext4 has no journal, and there the inode allocator scans past every
inode freed in the last 60 s (5 min while its table block is dirty) on each create
(``recently_deleted`` in ``fs/ext4/ialloc.c``), so a backup right after ``rm -rf`` of the
previous tool's destination paid several seconds of kernel time (``cp -a`` of 20,000 files:
0.3 s on fresh inodes, 3.5-5 s after deleting such a tree, measured with ``perf``). And
every command starts with nothing dirty in the page cache (``measure.run_child`` syncs first),
so rdb-mirror's commit sync does not write back the previous tool's destination.

The flatness check generates trees of N tiny files (20,000 and ``--flat-files``, default
200,000; 200 files per directory) and compares rdb-mirror's peak RSS for the initial and the
no-change backup of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from measure import Measure, run_child

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
RDIFF_BACKUP = ROOT / ".venv-rdiff-backup" / "bin" / "rdiff-backup"
T0 = 1_700_000_000
PHASES = ("initial", "incremental", "no-change")
TOOLS = ("rdb-mirror", "rdiff-backup", "rsync", "rsync+sync")


def snapshot(dest: Path, ref: str = "HEAD") -> str:
    """The committed packages (``git archive REF``) plus the working tree's compiled
    extensions, for PYTHONPATH: the run measures one version even while the tree is edited."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "packages"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    for ext in (ROOT / "packages").glob("*/src/**/*.so"):
        target = dest / ext.relative_to(ROOT)
        if not target.exists():
            shutil.copy2(ext, target)
    # byte-compiled, as an installed package is (pip compiles on install; rdiff-backup's venv
    # is): the environment may say PYTHONDONTWRITEBYTECODE, and compiling ~40 modules from
    # source costs ~50 ms per run
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(dest)], check=True)
    return os.pathsep.join(str(p) for p in sorted((dest / "packages").glob("*/src")))


#: The environment of every measured command (PYTHONPATH set to the snapshot, if any).
ENV: dict[str, str] = dict(os.environ)


def run(argv: Sequence[str]) -> Measure:
    """One child process (in ``ENV``, output discarded): wall time, CPU and peak RSS; its exit
    status is the caller's to judge (rsync's 24, rdb-mirror's 3 are not failures)."""
    return run_child(argv, env=ENV, check=False)


def command(tool: str, src: Path, dest: Path, session: int, binaries: dict[str, str]) -> list[str]:
    if tool == "rdb-mirror":
        return [
            binaries[tool],
            "-m",
            "rdb_mirror",
            "--quiet",
            "--current-time",
            str(T0 + 3600 * session),
            str(src),
            str(dest),
        ]
    if tool == "rdiff-backup":
        return [
            binaries[tool],
            "--current-time",
            str(T0 + 3600 * session),
            "--terminal-verbosity",
            "1",
            "backup",
            str(src),
            str(dest),
        ]
    copy = [binaries["rsync"], "-aH", "--delete", f"{src}/", f"{dest}/"]
    if tool == "rsync+sync":  # then everything on disk, as a backup's commit
        # rsync's 24 (source files vanished) is not a failure: the sync runs after it too
        script = '"$@"; status=$?; sync -f "$0" || exit 1; exit $status'
        return ["sh", "-c", script, str(dest), *copy]
    return copy


def warm(path: Path) -> int:
    """Read every file once (page cache warm for every tool alike); returns the entry count."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(path):
        count += len(dirnames) + len(filenames)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            with open(full, "rb") as handle:
                while handle.read(1 << 20):
                    pass
    return count


def entries(path: Path) -> int:
    count = 0
    for dirpath, dirnames, filenames in os.walk(path):
        if dirpath == str(path):
            dirnames[:] = [d for d in dirnames if d != "rdiff-backup-data"]
        count += len(dirnames) + len(filenames)
    return count


def corpus_sources(corpus: Path, name: str, work: Path) -> tuple[Path, Path]:
    if name == "big":
        pair = []
        for side in ("a", "b"):
            directory = work / f"big-{side}"
            directory.mkdir()
            target = directory / "big.bin"
            try:
                os.link(corpus / f"big-{side}.bin", target)
            except OSError:
                shutil.copy2(corpus / f"big-{side}.bin", target)
            pair.append(directory)
        return pair[0], pair[1]
    return corpus / f"{name}-a", corpus / f"{name}-b"


def bench_corpus(
    name: str,
    a: Path,
    b: Path,
    work: Path,
    binaries: dict[str, str],
    tools: Sequence[str],
    rounds: int = 1,
) -> dict[tuple[str, str], list[Measure]]:
    """Every tool's three sessions, ``rounds`` times, each round into fresh destinations and
    with the tools' order turned by one (no tool always runs first); every run's measure."""
    results: dict[tuple[str, str], list[Measure]] = {}
    for round_ in range(rounds):
        order = [*tools[round_ % len(tools) :], *tools[: round_ % len(tools)]]
        for tool in order:
            dest = work / f"dest-{name}-{tool}-{round_}"
            for session, (phase, src) in enumerate(zip(PHASES, (a, b, b), strict=True)):
                measure = run(command(tool, src, dest, session, binaries))
                results.setdefault((tool, phase), []).append(measure)
                vanished = tool.startswith("rsync") and measure.status == 24
                if measure.status not in (0, 3) and not vanished:
                    print(f"  !! {tool} {phase} exited {measure.status}", file=sys.stderr)
                want, got = entries(src), entries(dest)
                if want != got:
                    print(f"  !! {tool} {phase}: {got} entries in the mirror, {want} in the source")
                print(
                    f"  {name:7} {phase:12} {tool:13} {measure.wall:8.2f} s "
                    f"{measure.cpu:7.2f} cpu {measure.rss_mib:7.1f} MiB",
                    flush=True,
                )
            # kept until the run ends: see "nothing is deleted" in the module's docstring
    return results


def median_run(measures: Sequence[Measure]) -> Measure:
    """The run of median wall time (the lower of the two middle ones for an even count),
    with the largest peak RSS of all."""
    middle = sorted(measures, key=lambda m: m.wall)[(len(measures) - 1) // 2]
    return replace(middle, rss_kib=max(m.rss_kib for m in measures))


def make_tiny_tree(root: Path, files: int, per_dir: int = 200) -> None:
    rng = random.Random(files)
    for i in range(files):
        directory = root / f"d{i // per_dir:05d}"
        if i % per_dir == 0:
            directory.mkdir(parents=True)
        with open(directory / f"f{i:07d}", "wb") as handle:
            handle.write(rng.randbytes(rng.randrange(1, 200)))


def flatness(work: Path, binaries: dict[str, str], sizes: Sequence[int]) -> list[str]:
    rows = []
    for files in sizes:
        src = work / f"tiny-{files}"
        make_tiny_tree(src, files)
        dest = work / f"dest-tiny-{files}"
        for session, phase in enumerate(("initial", "no-change")):
            m = run(command("rdb-mirror", src, dest, session, binaries))
            if m.status != 0:
                print(f"  !! rdb-mirror {phase} exited {m.status}", file=sys.stderr)
            print(
                f"  tiny {files:7} {phase:10} {m.wall:8.2f} s "
                f"{m.cpu:7.2f} cpu {m.rss_mib:7.1f} MiB",
                flush=True,
            )
            rows.append(f"| {files:,} | {phase} | {m.wall:.2f} | {m.cpu:.2f} | {m.rss_mib:.1f} |")
    return rows


def table(
    all_results: dict[str, dict[tuple[str, str], list[Measure]]], tools: Sequence[str]
) -> str:
    """Each cell the median run (its wall and CPU seconds; with several rounds, the fastest
    and slowest wall times after it); the ratios are of the medians."""
    head = "| corpus | backup | " + " | ".join(f"{t} s (cpu s)" for t in tools)
    head += " | " + " | ".join(f"{t} MiB" for t in tools)
    ratios = []
    if "rsync" in tools and "rdb-mirror" in tools:
        ratios.append("rdb/rsync")
    if "rsync+sync" in tools and "rdb-mirror" in tools:
        ratios.append("rdb/(rsync+sync)")
    if "rdiff-backup" in tools and "rdb-mirror" in tools:
        ratios.append("rdiff-backup/rdb")
    head += "".join(f" | {r}" for r in ratios) + " |"
    sep = "|---|---|" + "---:|" * (2 * len(tools) + len(ratios))
    lines = [head, sep]
    for corpus, results in all_results.items():
        for phase in PHASES:
            medians = {t: median_run(results[(t, phase)]) for t in tools}
            cells = []
            for t in tools:
                walls = sorted(m.wall for m in results[(t, phase)])
                spread = f" {walls[0]:.2f}–{walls[-1]:.2f}" if len(walls) > 1 else ""
                cells.append(f"{medians[t].wall:.2f} ({medians[t].cpu:.2f}){spread}")
            cells += [f"{medians[t].rss_mib:.0f}" for t in tools]
            ours = medians["rdb-mirror"].wall if "rdb-mirror" in tools else None
            if ours is not None and "rsync" in tools:
                cells.append(f"{ours / medians['rsync'].wall:.2f}×")
            if ours is not None and "rsync+sync" in tools:
                cells.append(f"{ours / medians['rsync+sync'].wall:.2f}×")
            if ours is not None and "rdiff-backup" in tools:
                cells.append(f"{medians['rdiff-backup'].wall / ours:.1f}×")
            lines.append(f"| {corpus} | {phase} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load average {load}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("CORPUS", "/tmp/corpus"))
    )
    parser.add_argument("--only", default="django,small,big", help="comma-separated corpora")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--ref", default="HEAD", help="the commit whose packages run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of every tool's sessions (fresh destinations each; the table gives medians)",
    )
    parser.add_argument("--no-flat", action="store_true", help="skip the flatness check")
    parser.add_argument("--flat-files", type=int, default=200_000)
    parser.add_argument(
        "--rdiff-backup", default=os.environ.get("RDB_RDIFF_BACKUP", str(RDIFF_BACKUP))
    )
    parser.add_argument(
        "--no-snapshot",
        dest="snapshot",
        action="store_false",
        help="run the working tree's packages (default: a snapshot of HEAD taken at start)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="scratch directory (default: a temp dir next to the corpus)",
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    tools = [t for t in args.tools.split(",") if t]
    binaries = {
        "rdb-mirror": str(VENV_PYTHON),
        "rdiff-backup": args.rdiff_backup,
        "rsync": shutil.which("rsync") or "/usr/bin/rsync",
    }
    binaries["rsync+sync"] = binaries["rsync"]
    corpus: Path = args.corpus
    names = [n for n in args.only.split(",") if n]
    missing = [
        n for n in names if not (corpus / (f"{n}-a.bin" if n == "big" else f"{n}-a")).exists()
    ]
    if missing:
        print(
            f"corpus {corpus} lacks {missing}: run ../shared/bench/corpus.sh first", file=sys.stderr
        )
        return 2
    print(f"machine: {machine()}", flush=True)
    all_results: dict[str, dict[tuple[str, str], list[Measure]]] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-mirror-", dir=args.work or corpus.parent) as tmp:
        work = Path(tmp)
        if args.snapshot:
            ENV["PYTHONPATH"] = snapshot(work / "snapshot", args.ref)
            head = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", args.ref],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            print(f"rdb-mirror: snapshot of {args.ref} {head}", flush=True)
        for name in names:
            a, b = corpus_sources(corpus, name, work)
            warm(a)
            warm(b)
            all_results[name] = bench_corpus(name, a, b, work, binaries, tools, args.repeat)
            loads.append(os.getloadavg()[0])
        print()
        print(table(all_results, tools))
        if not args.no_flat and "rdb-mirror" in tools:
            print()
            rows = flatness(work, binaries, [20_000, args.flat_files])
            loads.append(os.getloadavg()[0])
            print()
            print("| files | backup | rdb-mirror s | cpu s | rdb-mirror peak RSS MiB |")
            print("|---:|---|---:|---:|---:|")
            print("\n".join(rows))
    print()
    print(
        f"1-minute load average during the run: median {statistics.median(loads):.2f}, "
        f"max {max(loads):.2f}; {machine()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
