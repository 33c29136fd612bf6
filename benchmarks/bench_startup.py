"""The fixed cost of every rdb-* command, against a bare interpreter and rdiff-backup 2.2.7;
and the mirror_metadata parse rate, this tree's reader against an older commit's.

Usage::

    python benchmarks/bench_startup.py                        # both parts
    python benchmarks/bench_startup.py --repeat 20 --no-parse --baseline main
    python benchmarks/bench_startup.py --no-startup --baseline 4feea19 --records 200000

**Start-up.** A tiny repository (three files, two sessions) is made once with rdiff-backup
2.2.7, so that both tools read the same one. Each command (``--help``, ``rdb-restore list``,
``rdb-increment list``, ``rdb-stats``, a no-change ``rdb-mirror`` of the three files, a
restore of a path that is not in the backup, which fails after all of a restore's imports,
``rdiff signature`` of a 1 KiB file, and the peers' equivalents: rdiff-backup 2.2.7's, Debian's
``/usr/bin/rdiff``) runs ``--repeat`` times, interleaved with the others, as of this tree
("now") and as of ``--baseline`` ("before", any git revision), stdout and stderr to /dev/null
(not a terminal: no progress bar, as in a script); ``python -c pass`` and ``rdiff-backup
--version`` give each tool's floor. The rdb-* commands (and rdiff) run as their console
scripts do (``from rdb_x.cli import main``; ``python -m`` would add runpy's ~5 ms), from a
snapshot of the committed packages (``git archive``, byte-compiled, as bench_mirror does), so
edits during a run do not leak in. Reported: the median and best wall time, the median CPU
time (user + system, from ``wait4``), now ÷ before in median wall time, and CPU ratios to
``python -c pass`` and to the peer's command for the same question (CPU time, because on a
shared machine wall time mostly measures the neighbours).

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
#: Debian's rdiff (librsync 2.3), the peer of ``rdiff signature``.
RDIFF = os.environ.get("RDB_REFERENCE_RDIFF", "/usr/bin/rdiff")
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


@dataclass(frozen=True)
class Case:
    """One row: our command, the peer's equivalent (or None), and the exit statuses that are
    not a failure of the benchmark (a row may measure a command that fails on purpose)."""

    what: str
    ours: list[str]
    theirs: list[str] | None
    ok: tuple[int, ...] = (0, 3)


def startup_cases(work: Path) -> list[Case]:
    src, repo = tiny_repository(work)
    mirror_repo = work / "mirror-repo"
    rb = [RDIFF_BACKUP, "--api-version", "201"]
    stats = str(Path(RDIFF_BACKUP).with_name("rdiff-backup-statistics"))
    one_kib = work / "1KiB"
    one_kib.write_bytes(bytes(range(256)) * 4)

    def rdb(package: str, *args: str) -> list[str]:
        # what the console script runs (``python -m`` would add runpy's imports, ~5 ms)
        script = f"import sys; from {package}.cli import main; sys.exit(main())"
        return [PYTHON, "-c", script, *args]

    rows = [
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
    return [
        *(Case(what, ours, theirs) for what, ours, theirs in rows),
        # what a script pays to learn that a path is not in the backup: every import of a
        # restore, none of its work
        Case(
            "rdb-restore REPO/missing TARGET (fails)",
            rdb("rdb_restore", f"{repo}/missing", str(work / "not-restored")),
            [*rb, "restore", f"{repo}/missing", str(work / "not-restored")],
            ok=(0, 1, 2, 3),
        ),
        Case(
            "rdiff signature (1 KiB file)",
            rdb("rdiff", "signature", str(one_kib), "-"),
            [RDIFF, "signature", str(one_kib), "-"],
        ),
    ]


def run_startup(repeat: int, envs: dict[str, dict[str, str]], work: Path) -> list[str]:
    """``envs``: "now" (this tree's snapshot) and "before" (the baseline's), same commands."""
    cases = startup_cases(work)
    plain = envs["now"]
    # (case, column, argv, env, statuses that are not a failure)
    runs: list[tuple[str, str, list[str], dict[str, str], tuple[int, ...]]] = []
    for case in cases:
        for column, env in envs.items():
            argv = case.ours
            if argv[-1].endswith("mirror-repo"):  # one repository per column: a session a second
                argv = [*argv[:-1], f"{argv[-1]}-{column}"]
                subprocess.run(argv, env=env, check=True, capture_output=True)  # the first one
            runs.append((case.what, column, argv, env, case.ok))
        if case.theirs is not None:
            if case.theirs[-1].endswith("rb-repo"):
                subprocess.run(case.theirs, env=plain, check=True, capture_output=True)
            runs.append((case.what, "peer", case.theirs, plain, case.ok))
    floors = {
        "`python -c pass`": [PYTHON, "-c", "pass"],
        "rdiff-backup 2.2.7 `--version`": [RDIFF_BACKUP, "--version"],
    }
    bare = {name: Timing([], []) for name in floors}
    results: dict[tuple[str, str], Timing] = {(w, c): Timing([], []) for w, c, *_ in runs}
    for _ in range(repeat):
        for name, argv in floors.items():
            child = run_child(argv, env=plain, check=False)
            bare[name].walls.append(child.wall)
            bare[name].cpus.append(child.cpu)
        for what, column, argv, env, ok in runs:
            child = run_child(argv, env=env, check=False)
            if child.status not in ok:
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

    python = bare["`python -c pass`"]
    lines = [
        f"{name}: median {t.median * 1000:.0f} ms (best {t.best * 1000:.0f}, "
        f"CPU {t.cpu * 1000:.0f} ms)"
        for name, t in bare.items()
    ]
    lines += [
        "",
        "| command | before: median (best) | CPU | now: median (best) | CPU | now ÷ before "
        "(median wall) | now × `python -c pass` (CPU) | peer: median (best) | CPU "
        "| peer ÷ now (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        now = results[case.what, "now"]
        before = results.get((case.what, "before"))
        theirs_t = results.get((case.what, "peer"))
        ratio = "—" if theirs_t is None else f"{theirs_t.cpu / now.cpu:.2f}"
        gain = "—" if before is None else f"{now.median / before.median:.2f}"
        lines.append(
            f"| `{case.what}` | {cell(before)} | {cell(now)} | {gain} "
            f"| {now.cpu / python.cpu:.1f} | {cell(theirs_t)} | {ratio} |"
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
