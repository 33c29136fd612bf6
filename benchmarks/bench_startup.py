"""The fixed cost of every rdb-* command, against a bare interpreter and rdiff-backup 2.2.7;
and the mirror_metadata parse rate, this tree's reader against an older commit's.

Usage::

    python benchmarks/bench_startup.py                        # both parts
    python benchmarks/bench_startup.py --repeat 20 --no-parse
    python benchmarks/bench_startup.py --no-startup --baseline 4feea19 --records 200000

**Start-up.** A tiny repository (three files, two sessions) is made once with rdiff-backup
2.2.7, so that both tools read the same one. Each command (``--help``, ``rdb-restore list``,
``rdb-increment list``, ``rdb-stats``, a no-change ``rdb-mirror`` of the three files, and
rdiff-backup's equivalents) runs ``--repeat`` times, interleaved with the others, as of this
tree ("now") and as of ``--baseline`` ("before", the packages before the start-up work),
stdout and stderr to /dev/null (not a terminal: no progress bar, as in a script). The rdb-*
commands run as ``python -m rdb_x`` from a snapshot of the committed packages (``git archive HEAD``,
byte-compiled, as bench_mirror does), so edits during a run do not leak in. Reported: the
median and best wall time, the median CPU time (user + system, from ``wait4``), and CPU
ratios to ``python -c pass`` and to rdiff-backup's command for the same question (CPU time,
because on a shared machine wall time mostly measures the neighbours).

**Metadata parse.** A ``mirror_metadata`` snapshot of ``--records`` entries (regular files
with SHA1 in 1000-entry directories, the shape of a real tree) and a 20,000-record one, each
plain and gzipped, and any ``--snapshot`` file (e.g. the snapshot rdb-mirror writes for the
small-a corpus), read with ``iter_records`` by this tree's reader and by the reader of
``--baseline`` (loaded from ``git show``), alternately, best of ``--rounds``; records per
second in CPU time (``time.process_time``: on a shared machine wall time mostly measures the
neighbours).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bench_mirror import machine, snapshot  # the same machine line; HEAD's packages
from measure import run_child

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
RDIFF_BACKUP = os.environ.get("RDB_RDIFF_BACKUP") or str(
    ROOT / ".venv-rdiff-backup" / "bin" / "rdiff-backup"
)
T0 = 1_700_000_000
#: The reader before this benchmark's changes (main when it was written).
DEFAULT_BASELINE = "4feea19"


@dataclass
class Timing:
    walls: list[float]
    cpus: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def best(self) -> float:
        return min(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


def tiny_repository(work: Path) -> tuple[Path, Path]:
    """Three files backed up twice by rdiff-backup 2.2.7 (a change in between)."""
    src, repo = work / "src", work / "repo"
    rdiff_backup = [RDIFF_BACKUP, "--api-version", "201"]
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "a.txt").write_bytes(b"a\n")
    (src / "b.txt").write_bytes(b"b\n")
    for n in range(2):
        (src / "c.txt").write_bytes(b"version %d\n" % n)
        os.utime(src / "c.txt", (T0 + n * 3600 - 60,) * 2)
        subprocess.run(
            [*rdiff_backup, "--current-time", str(T0 + n * 3600), "backup", str(src), str(repo)],
            check=True,
            capture_output=True,
        )
    return src, repo


def startup_cases(work: Path) -> list[tuple[str, list[str], list[str] | None]]:
    """(what, our command, rdiff-backup's equivalent or None)."""
    src, repo = tiny_repository(work)
    mirror_repo = work / "mirror-repo"
    rb = [RDIFF_BACKUP, "--api-version", "201"]
    stats = str(Path(RDIFF_BACKUP).with_name("rdiff-backup-statistics"))

    def rdb(module: str, *args: str) -> list[str]:
        return [PYTHON, "-m", module, *args]

    return [
        ("rdb-restore --help", rdb("rdb_restore", "--help"), [*rb, "--help"]),
        ("rdb-mirror --help", rdb("rdb_mirror", "--help"), [*rb, "backup", "--help"]),
        ("rdb-increment --help", rdb("rdb_increment", "--help"), [*rb, "list", "--help"]),
        ("rdb-stats --help", rdb("rdb_stats", "--help"), [stats, "--help"]),
        (
            "rdb-restore list REPO",
            rdb("rdb_restore", "list", str(repo)),
            [*rb, "list", "increments", "--size", str(repo)],
        ),
        (
            "rdb-restore list --json REPO",
            rdb("rdb_restore", "list", "--json", str(repo)),
            None,
        ),
        (
            "rdb-increment list REPO",
            rdb("rdb_increment", "list", str(repo)),
            [*rb, "list", "increments", str(repo)],
        ),
        ("rdb-stats REPO", rdb("rdb_stats", str(repo)), [stats, str(repo)]),
        ("rdb-stats --json REPO", rdb("rdb_stats", "--json", str(repo)), None),
        (
            "rdb-mirror, no change (3 files)",
            rdb("rdb_mirror", "--quiet", str(src), str(mirror_repo)),
            [*rb, "backup", str(src), str(work / "rb-repo")],
        ),
    ]


def run_startup(repeat: int, envs: dict[str, dict[str, str]], work: Path) -> list[str]:
    """``envs``: "now" (this tree's snapshot) and "before" (the baseline's), same commands."""
    cases = startup_cases(work)
    plain = envs["now"]
    runs: list[tuple[str, str, list[str], dict[str, str]]] = []  # (case, column, argv, env)
    for what, ours, theirs in cases:
        for column, env in envs.items():
            argv = ours
            if ours[-1].endswith("mirror-repo"):  # one repository per column: a session a second
                argv = [*ours[:-1], f"{ours[-1]}-{column}"]
                subprocess.run(argv, env=env, check=True, capture_output=True)  # the first one
            runs.append((what, column, argv, env))
        if theirs is not None:
            if theirs[-1].endswith("rb-repo"):
                subprocess.run(theirs, env=plain, check=True, capture_output=True)
            runs.append((what, "rdiff-backup", theirs, plain))
    bare = Timing([], [])
    results: dict[tuple[str, str], Timing] = {(w, c): Timing([], []) for w, c, _, _ in runs}
    for _ in range(repeat):
        child = run_child([PYTHON, "-c", "pass"], env=plain, check=False)
        bare.walls.append(child.wall)
        bare.cpus.append(child.cpu)
        for what, column, argv, env in runs:
            child = run_child(argv, env=env, check=False)
            if child.status not in (0, 3):
                again = subprocess.run(argv, env=env, capture_output=True, text=True)
                raise SystemExit(f"{' '.join(argv)}: exit status {child.status}\n{again.stderr}")
            results[what, column].walls.append(child.wall)
            results[what, column].cpus.append(child.cpu)

    def cell(timing: Timing | None) -> str:
        if timing is None:
            return "— | —"
        return (
            f"{timing.median * 1000:.0f} ms ({timing.best * 1000:.0f}) | {timing.cpu * 1000:.0f} ms"
        )

    lines = [
        f"`python -c pass`: median {bare.median * 1000:.0f} ms (best {bare.best * 1000:.0f}, "
        f"CPU {bare.cpu * 1000:.0f} ms)",
        "",
        "| command | before: median (best) | CPU | now: median (best) | CPU | now × `python -c "
        "pass` (CPU) | rdiff-backup: median (best) | CPU | rdiff-backup ÷ now (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for what, _ours, _theirs in cases:
        now = results[what, "now"]
        theirs_t = results.get((what, "rdiff-backup"))
        ratio = "—" if theirs_t is None else f"{theirs_t.cpu / now.cpu:.2f}"
        lines.append(
            f"| `{what}` | {cell(results.get((what, 'before')))} | {cell(now)} "
            f"| {now.cpu / bare.cpu:.1f} | {cell(theirs_t)} | {ratio} |"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# Metadata parse


def baseline_reader(revision: str) -> ModuleType:
    """``rdb_format.metadata`` as of ``revision``, as a module of its own."""
    where = "packages/rdb-format/src/rdb_format/metadata.py"
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:{where}"],
        capture_output=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="bench-startup-")) / "metadata_baseline.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("rdb_format._metadata_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def snapshot_records(count: int) -> Iterator[object]:
    from rdb_format.metadata import Record

    owner = {"uid": 1000, "uname": "user", "gid": 1000, "gname": "user"}
    yield Record(b".", "dir", mod_time=T0, permissions=0o755, **owner)  # type: ignore[arg-type]
    made, directory = 1, 0
    while made < count:
        name = b"dir%05d" % directory
        yield Record(name, "dir", mod_time=T0, permissions=0o755, **owner)  # type: ignore[arg-type]
        made += 1
        for n in range(min(999, count - made)):
            yield Record(
                name + b"/file%05d.dat" % n,
                "reg",
                size=1000 + n,
                sha1_digest="%040x" % (made * 7919 + n),
                mod_time=T0 - n,
                permissions=0o644,
                **owner,  # type: ignore[arg-type]
            )
            made += 1
        directory += 1


def time_readers(
    path: Path, readers: list[tuple[str, Callable[..., Iterator[object]]]], rounds: int
) -> tuple[int, dict[str, float]]:
    """Records in ``path`` and each reader's best CPU time over ``rounds`` alternating runs."""
    best: dict[str, float] = {}
    counts = set()
    for _ in range(rounds):
        for name, reader in readers:
            start = time.process_time()
            counts.add(sum(1 for _ in reader(path)))
            spent = time.process_time() - start
            best[name] = min(best.get(name, spent), spent)
    assert len(counts) == 1, counts
    return counts.pop(), best


def run_parse(
    records: int, rounds: int, revision: str, work: Path, extra: Sequence[Path]
) -> list[str]:
    from rdb_format import metadata
    from rdb_format.metadata import write_metadata_file

    old = baseline_reader(revision)
    readers: list[tuple[str, Callable[..., Iterator[object]]]] = [
        ("old", old.iter_records),
        ("new", metadata.iter_records),
    ]
    lines = [
        f"| snapshot | records | {revision} (records/s) | this tree (records/s) | speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for count in (20_000, records):
        for gz in (False, True):
            path = write_metadata_file(
                work / f"mirror_metadata.{count}.snapshot",
                snapshot_records(count),  # type: ignore[arg-type]
                compress=gz,
                compresslevel=6,
                fsync=False,
            )
            seen, best = time_readers(path, readers, rounds)
            kind = "gzip" if gz else "plain"
            lines.append(
                f"| generated, {kind} | {seen:,} | {seen / best['old']:,.0f} "
                f"| {seen / best['new']:,.0f} | {best['old'] / best['new']:.2f}× |"
            )
            path.unlink()
    for path in extra:
        count, best = time_readers(path, readers, rounds)
        lines.append(
            f"| {path.name} | {count:,} | {count / best['old']:,.0f} "
            f"| {count / best['new']:,.0f} | {best['old'] / best['new']:.2f}× |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--no-startup", action="store_true")
    parser.add_argument("--no-parse", action="store_true")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--snapshot",
        type=Path,
        action="append",
        default=[],
        help="also read this mirror_metadata file (e.g. one rdb-mirror wrote for small-a)",
    )
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare")
    parser.add_argument("--no-snapshot", action="store_true", help="run the working tree")
    args = parser.parse_args(argv)
    print(machine())
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        # rdiff-backup-statistics runs "rdiff-backup" from PATH
        env["PATH"] = f"{Path(RDIFF_BACKUP).parent}{os.pathsep}{env.get('PATH', '')}"
        envs = {"before": dict(env), "now": env}
        envs["before"]["PYTHONPATH"] = snapshot(work / "before", args.baseline)
        if not args.no_snapshot:
            env["PYTHONPATH"] = snapshot(work / "snapshot")
        if not args.no_startup:
            print("\n".join(["", *run_startup(args.repeat, envs, work)]))
        if not args.no_parse:
            parse = run_parse(args.records, args.rounds, args.baseline, work, args.snapshot)
            print("\n".join(["", *parse]))
    print(f"\nload average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
