"""rdb-restore against rdiff-backup 2.2.7's restore and ``cp -a`` of the mirror, in one run.

Usage::

    python benchmarks/bench_restore.py                     # small + django, then flatness
    python benchmarks/bench_restore.py --only django --repeat 5 --no-flat
    python benchmarks/bench_restore.py --flat-files 200000
    python benchmarks/bench_restore.py --only django --no-flat --baseline 8972426   # A/B

rdb-restore runs from a snapshot of the committed packages (``git archive HEAD``, as
bench_mirror does; ``--no-snapshot``: the working tree), so edits during a run do not leak in.
For each corpus pair (``../shared/bench/corpus.sh``: small-a → small-b, django-a → django-b) a
repository is made once with rdiff-backup 2.2.7 (two sessions: a, then b; kept in ``--work``
between runs), then restored at the newest session (everything comes from the mirror) and at
the oldest (the reverse diffs are applied) by rdb-restore (``.venv/bin/python -m rdb_restore
--quiet``) and by rdiff-backup; ``cp -a`` of the mirror (without ``rdiff-backup-data``) is the
floor. The runs are interleaved (cp, ours newest, ours oldest, again ``--repeat`` times;
rdiff-backup once per session); each reports the best wall time, its CPU time (user + system
from ``wait4``) and the largest peak RSS.

**Every run writes a fresh directory and nothing is deleted until the end.** The benchmark
machine's ext4 has no journal, and there the inode allocator skips every inode freed in the
last 60 s (5 min while its table block is dirty), scanning past them on each create
(``recently_deleted`` in ``fs/ext4/ialloc.c``): a restore right after ``rm -rf`` of the
previous one spent most of its time there, and so did ``cp -a``. The outputs are removed when
the run ends.

``--baseline REF``: rdb-restore from a snapshot of REF (``git archive``, compiled the same way)
runs in the same loop, right after HEAD's run of each session, into its own fresh directory:
a second table gives both versions' best times and the ratio, measured in the same minutes
and the same file-system state (on a shared machine, the only comparison that holds).

``--remote``: the same restores over ssh to 127.0.0.1 (a real OpenSSH server started with
the test suite's helper, tests/sshd.py): rdb-restore ``127.0.0.1::REPO`` (its server started
as ``python -m rdb_restore --server`` from the snapshot), rdiff-backup 2.2.7 ``restore
127.0.0.1::REPO`` (``rdiff-backup server``), and, for the newest session, ``rsync -aH`` of the
mirror over the same ssh command. Wall time of the client, best of ``--repeat`` (rdiff-backup
once; the server half is not in the client's CPU time), and the bytes that crossed the loopback
interface (both directions, as bench_remote counts them).

The flatness check backs up generated trees of 20,000 and ``--flat-files`` tiny files with
rdb-mirror (200 per directory) and compares rdb-restore's peak RSS restoring each. The
repositories are kept in ``--work`` between runs; a generated tree is an output like the
others, removed only when the run ends (deleting it right before the timed restore made the
20,000-file restore take 2.8 s instead of ~0.8 s).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench_mirror import machine, snapshot  # the same machine line; HEAD's packages
from measure import Measure, run_child

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
RDIFF_BACKUP = os.environ.get("RDB_RDIFF_BACKUP") or str(
    ROOT / ".venv-rdiff-backup" / "bin" / "rdiff-backup"
)
T0 = 1_700_000_000
PAIRS = {"small": ("small-a", "small-b"), "django": ("django-a", "django-b")}
SESSIONS = (("newest", T0 + 3600), ("oldest", T0))


#: The environment of every measured command (PYTHONPATH: the snapshot of HEAD, if taken).
ENV: dict[str, str] = {**os.environ, "TZ": "UTC"}


def run(argv: Sequence[str], *, cwd: Path | None = None) -> Measure:
    """Run one command as a child (in ``ENV``): wall time, CPU and peak RSS."""
    return run_child(argv, env=ENV, cwd=cwd)


def best(measures: Sequence[Measure]) -> Measure:
    """The fastest run, with the largest peak RSS of them all."""
    fastest = min(measures, key=lambda m: m.wall)
    return replace(fastest, rss_kib=max(m.rss_kib for m in measures))


class Outputs:
    """Fresh output directories, never reused, all removed at the end (see the docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)

    def fresh(self, what: str) -> Path:
        self.count += 1
        return self.root / f"{self.count:03d}-{what}"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def warm(path: Path) -> None:
    """Read every regular file once, so that every tool starts from a warm page cache."""
    for directory, _, names in os.walk(path):
        for name in names:
            file = os.path.join(directory, name)
            if not stat.S_ISREG(os.lstat(file).st_mode):
                continue  # a FIFO would block the open
            with open(file, "rb") as f:
                while f.read(1 << 20):
                    pass


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


#: label, session, ours, rdiff-backup's, cp -a's, and the baseline's (``--baseline``) or None
Row = tuple[str, str, Measure, Measure, Measure, Measure | None]


def bench_pair(
    corpus: Path,
    work: Path,
    outputs: Outputs,
    label: str,
    repeat: int,
    baseline: dict[str, str] | None = None,
) -> list[Row]:
    """Time the pair ``label``; ``baseline``: the environment of the version to compare with,
    run right after ours in each round."""
    a, b = PAIRS[label]
    repo = make_repo(corpus, work / label, a, b)
    warm(repo)
    entries = sorted(p.name for p in repo.iterdir() if p.name != "rdiff-backup-data")
    ours: dict[str, list[Measure]] = {name: [] for name, _ in SESSIONS}
    based: dict[str, list[Measure]] = {name: [] for name, _ in SESSIONS}
    cps: list[Measure] = []
    for _ in range(repeat):
        out = outputs.fresh(f"{label}-cp")
        out.mkdir()
        cps.append(run(["cp", "-a", *entries, str(out)], cwd=repo))
        for session, at in SESSIONS:
            argv = [PYTHON, "-m", "rdb_restore", "--quiet", "--at", str(at), str(repo)]
            ours[session].append(run([*argv, str(outputs.fresh(f"{label}-ours-{session}"))]))
            if baseline is not None:
                out = outputs.fresh(f"{label}-baseline-{session}")
                based[session].append(run_child([*argv, str(out)], env=baseline))
    rows = []
    cp = best(cps)
    for session, at in SESSIONS:
        out = outputs.fresh(f"{label}-rdiff-backup-{session}")
        theirs = run([RDIFF_BACKUP, "restore", "--at", str(at), str(repo), str(out)])
        before = best(based[session]) if baseline is not None else None
        rows.append((label, session, best(ours[session]), theirs, cp, before))
    return rows


def bench_remote(
    corpus: Path, work: Path, outputs: Outputs, label: str, repeat: int, ssh: list[str]
) -> list[str]:
    from bench_remote import loopback_bytes

    a, b = PAIRS[label]
    repo = make_repo(corpus, work / label, a, b)
    warm(repo)
    server = ["env", f"PYTHONPATH={ENV.get('PYTHONPATH', '')}", PYTHON, "-m", "rdb_restore"]
    ours_schema = shlex.join(ssh) + " %s " + shlex.join([*server, "--server"])
    theirs_schema = shlex.join(ssh) + " {h} " + shlex.join([RDIFF_BACKUP, "server"])
    location = f"127.0.0.1::{repo}"

    def wired(argv: list[str]) -> tuple[Measure, int]:
        before = loopback_bytes() or 0
        measure = run(argv)
        return measure, (loopback_bytes() or 0) - before

    rows = []
    for session, at in SESSIONS:
        ours = []
        for _ in range(repeat):
            out = outputs.fresh(f"{label}-remote-ours-{session}")
            ours.append(
                wired([PYTHON, "-m", "rdb_restore", "--quiet", "--remote-schema", ours_schema,
                       "--at", str(at), location, str(out)])
            )  # fmt: skip
        mine = min(ours, key=lambda m: m[0].wall)
        out = outputs.fresh(f"{label}-remote-rdiff-backup-{session}")
        theirs = wired(
            [RDIFF_BACKUP, "--remote-schema", theirs_schema, "restore", "--at", str(at),
             location, str(out)]
        )  # fmt: skip
        rsync = "–"
        ratio = "–"
        if session == "newest":
            copies = []
            for _ in range(repeat):
                out = outputs.fresh(f"{label}-remote-rsync")
                copies.append(
                    wired(["rsync", "-aH", "--exclude", "/rdiff-backup-data", "-e",
                           shlex.join(ssh), f"127.0.0.1:{repo}/", f"{out}/"])
                )  # fmt: skip
            best_copy = min(copies, key=lambda m: m[0].wall)
            rsync = f"{best_copy[0].wall:.2f} ({best_copy[1] / 2**20:.0f})"
            ratio = f"{mine[0].wall / best_copy[0].wall:.2f}×"
        rows.append(
            f"| {label} | {session} | {mine[0].wall:.2f} ({mine[1] / 2**20:.0f}) | "
            f"{theirs[0].wall:.2f} ({theirs[1] / 2**20:.0f}) | {rsync} | "
            f"{theirs[0].wall / mine[0].wall:.1f}× | {ratio} |"
        )
        print(rows[-1], flush=True)
    return rows


def files_in(path: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(path))


def make_tiny_tree(root: Path, files: int, per_dir: int = 200) -> None:
    for n in range(files):
        directory = root / f"d{n // per_dir:05d}"
        if n % per_dir == 0:
            directory.mkdir(parents=True)
        (directory / f"f{n:07d}").write_bytes(b"%d\n" % n)


def flatness(work: Path, outputs: Outputs, sizes: Sequence[int]) -> list[tuple[int, Measure]]:
    """rdb-restore of a repository of ``size`` tiny files, for each size (made once, kept in
    ``work``). The generated source is one of the outputs: removed when the run ends, not
    before the timed restore (see "nothing is deleted until the end")."""
    rows = []
    for size in sizes:
        base = work / f"flat-{size}"
        repo = base / "repo"
        if not (base / ".done").exists():
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir(parents=True)
            source = outputs.fresh(f"flat-{size}-source")
            make_tiny_tree(source, size)
            run([PYTHON, "-m", "rdb_mirror", "--quiet", str(source), str(repo)])
            (base / ".done").touch()
        out = outputs.fresh(f"flat-{size}")
        rows.append((size, run([PYTHON, "-m", "rdb_restore", "--quiet", str(repo), str(out)])))
    return rows


def remote_table(args: argparse.Namespace, outputs: Outputs) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.sshd import running_sshd

    loads = [os.getloadavg()[0]]
    with running_sshd() as sshd:
        ssh = sshd.ssh_argv()
        print(
            "| corpus | session | rdb-restore s (MiB on the wire) | rdiff-backup 2.2.7 s (MiB) "
            "| rsync -aH of the mirror s (MiB) | rdiff-backup / rdb | rdb / rsync |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        for label in args.only or list(PAIRS):
            bench_remote(args.corpus, args.work, outputs, label, args.repeat, ssh)
            loads.append(os.getloadavg()[0])
    print(f"\n1-minute load average during the run: {min(loads):.2f}–{max(loads):.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("CORPUS", "/tmp/corpus"))
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/rdb-restore-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=sorted(PAIRS), action="append")
    parser.add_argument("--flat-files", type=int, default=200_000)
    parser.add_argument("--no-flat", action="store_true")
    parser.add_argument("--remote", action="store_true", help="over ssh to 127.0.0.1 instead")
    parser.add_argument(
        "--no-snapshot", action="store_true", help="run the working tree, not a copy of HEAD"
    )
    parser.add_argument(
        "--baseline", metavar="REF", help="also run a snapshot of REF, interleaved (A/B)"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not (args.corpus / "small-a").is_dir() or not Path(RDIFF_BACKUP).exists():
        print(
            f"bench_restore: needs the corpora in {args.corpus} (../shared/bench/corpus.sh) "
            f"and rdiff-backup 2.2.7 ({RDIFF_BACKUP}); skipped"
        )
        return 0
    if not args.no_snapshot:
        shutil.rmtree(args.work / "snapshot", ignore_errors=True)
        ENV["PYTHONPATH"] = snapshot(args.work / "snapshot")
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"rdb-restore: a snapshot of HEAD {head.stdout.strip()}", flush=True)
    baseline = None
    if args.baseline:
        shutil.rmtree(args.work / "baseline", ignore_errors=True)
        baseline = {**ENV, "PYTHONPATH": snapshot(args.work / "baseline", args.baseline)}
        print(f"baseline: a snapshot of {args.baseline}", flush=True)
    print(f"machine: {machine()}", flush=True)
    outputs = Outputs(args.work / "outputs")
    loads = [os.getloadavg()[0]]
    if args.remote:
        try:
            remote_table(args, outputs)
        finally:
            outputs.remove()
        return 0
    try:
        print(
            "| corpus | session | rdb-restore s (cpu s, MiB) | rdiff-backup 2.2.7 s (cpu s, MiB) "
            "| cp -a mirror s (cpu s) | rdiff-backup / rdb | rdb / cp -a |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        compared: list[Row] = []
        for label in args.only or list(PAIRS):
            rows = bench_pair(args.corpus, args.work, outputs, label, args.repeat, baseline)
            compared += rows
            for name, session, mine, theirs, cp, _ in rows:
                files = files_in(args.corpus / PAIRS[name][1])
                print(
                    f"| {name} ({files} files) | {session} | {mine.wall:.2f} ({mine.cpu:.2f}, "
                    f"{mine.rss_kib // 1024}) | {theirs.wall:.2f} ({theirs.cpu:.2f}, "
                    f"{theirs.rss_kib // 1024}) | "
                    f"{cp.wall:.2f} ({cp.cpu:.2f}) | {theirs.wall / mine.wall:.1f}× | "
                    f"{mine.wall / cp.wall:.2f}× |",
                    flush=True,
                )
            loads.append(os.getloadavg()[0])
        if baseline is not None:
            print(f"\n| corpus | session | {args.baseline} s (cpu s) | HEAD s (cpu s) | ratio |")
            print("|---|---|---:|---:|---:|")
            for name, session, mine, _, _, before in compared:
                assert before is not None
                print(
                    f"| {name} | {session} | {before.wall:.2f} ({before.cpu:.2f}) | "
                    f"{mine.wall:.2f} ({mine.cpu:.2f}) | {before.wall / mine.wall:.2f}× |",
                    flush=True,
                )
        if not args.no_flat:
            print("\n| files | rdb-restore s (cpu s) | peak RSS MiB |\n|---:|---:|---:|")
            for size, m in flatness(args.work, outputs, (20_000, args.flat_files)):
                print(
                    f"| {size:,} | {m.wall:.2f} ({m.cpu:.2f}) | {m.rss_kib // 1024} |", flush=True
                )
            loads.append(os.getloadavg()[0])
    finally:
        outputs.remove()
    print(f"\n1-minute load average during the run: {min(loads):.2f}–{max(loads):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
