"""Remote backups over ssh to 127.0.0.1: rdb-mirror vs rdiff-backup 2.2.7 vs ``rsync -aH``.

Usage::

    python benchmarks/bench_remote.py                   # django, small, big
    python benchmarks/bench_remote.py --only small --tools rdb-mirror,rsync

A real OpenSSH server is started on 127.0.0.1 (the test suite's helper, tests/sshd.py: keys
made per run, a free port). Every tool pushes the local source to ``127.0.0.1::DEST`` through
the same ssh command (no ``-C``: on loopback compression only costs CPU), its remote half
started by absolute path: ``rdb-mirror --server``, ``rdiff-backup server``, rsync's own.
For each corpus of ``../shared/bench/corpus.sh`` (``CORPUS``, default /tmp/corpus): an
**initial** backup of A, then an **incremental** backup of B into it.

Measured per run: wall time of the client process (the remote half runs under sshd and is not
in the client's CPU time, so only wall times are compared), and the bytes that crossed the
loopback interface (``/sys/class/net/lo/statistics/tx_bytes`` before and after: ssh's
encrypted stream both ways, so every tool's bytes are counted alike; other loopback traffic on
the machine during the run would add to it). rdb-mirror runs from a snapshot of HEAD, as
bench_mirror does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_mirror  # noqa: E402
from bench_mirror import (  # noqa: E402
    RDIFF_BACKUP,
    T0,
    VENV_PYTHON,
    corpus_sources,
    entries,
    machine,
    snapshot,
    warm,
)

PHASES = ("initial", "incremental")
TOOLS = ("rdb-mirror", "rdiff-backup", "rsync")
LO_TX = Path("/sys/class/net/lo/statistics/tx_bytes")


@dataclass(frozen=True)
class Result:
    wall: float
    wire: int | None  # bytes over loopback, both directions
    status: int


def loopback_bytes() -> int | None:
    try:
        return int(LO_TX.read_text())
    except (OSError, ValueError):
        return None


def command(
    tool: str, src: Path, dest: Path, session: int, ssh: list[str], python_path: str
) -> list[str]:
    rdiff_backup = os.environ.get("RDB_RDIFF_BACKUP", str(RDIFF_BACKUP))
    when = str(T0 + 3600 * session)
    if tool == "rdb-mirror":
        remote = shlex.join(
            ["env", f"PYTHONPATH={python_path}", str(VENV_PYTHON), "-m", "rdb_mirror", "--server"]
        )
        schema = shlex.join(ssh) + " %s " + remote
        return [
            str(VENV_PYTHON), "-m", "rdb_mirror", "--quiet", "--current-time", when,
            "--remote-schema", schema, str(src), f"127.0.0.1::{dest}",
        ]  # fmt: skip
    if tool == "rdiff-backup":
        schema = shlex.join(ssh) + " {h} " + shlex.join([rdiff_backup, "server"])
        return [
            rdiff_backup, "--current-time", when, "--terminal-verbosity", "1",
            "--remote-schema", schema, "backup", str(src), f"127.0.0.1::{dest}",
        ]  # fmt: skip
    rsync = shutil.which("rsync") or "/usr/bin/rsync"
    return [rsync, "-aH", "--delete", "-e", shlex.join(ssh), f"{src}/", f"127.0.0.1:{dest}/"]


def measure(argv: list[str]) -> Result:
    before = loopback_bytes()
    result = bench_mirror.run(argv)
    after = loopback_bytes()
    wire = after - before if before is not None and after is not None else None
    return Result(result.wall, wire, result.status)


def bench_corpus(
    name: str, a: Path, b: Path, work: Path, tools: Sequence[str], ssh: list[str], path: str
) -> dict[tuple[str, str], Result]:
    results: dict[tuple[str, str], Result] = {}
    for tool in tools:
        dest = work / f"dest-{name}-{tool}"
        for session, (phase, src) in enumerate(zip(PHASES, (a, b), strict=True)):
            result = measure(command(tool, src, dest, session, ssh, path))
            results[(tool, phase)] = result
            if result.status not in (0, 3) and not (tool == "rsync" and result.status == 24):
                print(f"  !! {tool} {phase} exited {result.status}", file=sys.stderr)
            want, got = entries(src), entries(dest)
            if want != got:
                print(f"  !! {tool} {phase}: {got} entries in the mirror, {want} in the source")
            wire = f"{result.wire / 2**20:9.1f} MiB" if result.wire is not None else "?"
            print(f"  {name:7} {phase:12} {tool:13} {result.wall:8.2f} s {wire}", flush=True)
        shutil.rmtree(dest)
    return results


def table(all_results: dict[str, dict[tuple[str, str], Result]], tools: Sequence[str]) -> str:
    head = "| corpus | backup | " + " | ".join(f"{t} s" for t in tools)
    head += " | " + " | ".join(f"{t} MiB on the wire" for t in tools)
    ratios = [r for r, need in (("rdb/rsync", "rsync"), ("rdiff-backup/rdb", "rdiff-backup"))
              if need in tools and "rdb-mirror" in tools]  # fmt: skip
    head += "".join(f" | {r}" for r in ratios) + " |"
    lines = [head, "|---|---|" + "---:|" * (2 * len(tools) + len(ratios))]
    for corpus, results in all_results.items():
        for phase in PHASES:
            cells = [f"{results[(t, phase)].wall:.2f}" for t in tools]
            for t in tools:
                wire = results[(t, phase)].wire
                cells.append(f"{wire / 2**20:.1f}" if wire is not None else "?")
            ours = results[("rdb-mirror", phase)].wall if "rdb-mirror" in tools else None
            if ours is not None and "rsync" in tools:
                cells.append(f"{ours / results[('rsync', phase)].wall:.2f}×")
            if ours is not None and "rdiff-backup" in tools:
                cells.append(f"{results[('rdiff-backup', phase)].wall / ours:.1f}×")
            lines.append(f"| {corpus} | {phase} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("CORPUS", "/tmp/corpus"))
    )
    parser.add_argument("--only", default="django,small,big", help="comma-separated corpora")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--work", type=Path, default=None, help="scratch directory")
    parser.add_argument(
        "--rdiff-backup", default=os.environ.get("RDB_RDIFF_BACKUP", str(RDIFF_BACKUP))
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    tools = [t for t in args.tools.split(",") if t]
    os.environ["RDB_RDIFF_BACKUP"] = args.rdiff_backup
    corpus: Path = args.corpus
    names = [n for n in args.only.split(",") if n]
    if not all((corpus / (f"{n}-a.bin" if n == "big" else f"{n}-a")).exists() for n in names):
        print(f"corpus {corpus} is incomplete: run ../shared/bench/corpus.sh", file=sys.stderr)
        return 2
    from tests.sshd import running_sshd

    print(f"machine: {machine()}", flush=True)
    loads = [os.getloadavg()[0]]
    all_results: dict[str, dict[tuple[str, str], Result]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-remote-", dir=args.work or corpus.parent) as tmp,
        running_sshd(Path(tmp) / "sshd") as server,
    ):
        work = Path(tmp)
        path = snapshot(work / "snapshot")
        bench_mirror.ENV["PYTHONPATH"] = path
        head = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        print(f"rdb-mirror: snapshot of HEAD {head}; ssh to 127.0.0.1:{server.port}", flush=True)
        ssh = server.ssh_argv()
        for name in names:
            a, b = corpus_sources(corpus, name, work)
            warm(a)
            warm(b)
            all_results[name] = bench_corpus(name, a, b, work, tools, ssh, path)
            loads.append(os.getloadavg()[0])
    print()
    print(table(all_results, tools))
    print()
    print(
        f"1-minute load average during the run: median {statistics.median(loads):.2f}, "
        f"max {max(loads):.2f}; {machine()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
