"""Our ``rdiff`` against Debian's ``/usr/bin/rdiff``, side by side in the same run.

Usage::

    python benchmarks/bench_rdiff.py             # 512 MiB corpus, 3 repetitions, median
    python benchmarks/bench_rdiff.py --quick     # 64 MiB smoke run
    python benchmarks/bench_rdiff.py --cases sig,delta-j2 -n 5

Each operation runs as a child process, alternately ours and rdiff's (the order flips every
repetition). Wall time is taken around spawn + ``wait4``; peak RSS, user and system time come
from the child's rusage. Before a run its inputs are already in the page cache (read once per
case, nothing is dropped), outputs of the previous run are deleted and ``sync`` is called so
write-back of one run does not land in the next. Every output is verified: signatures byte
for byte against rdiff's, deltas byte for byte or else by patching them with rdiff, patched
files against the new file.

"ours" is the ``rdiff`` console script next to this interpreter when ``rdiff.cli`` exists and
knows ``--jobs``; otherwise this file acts as a minimal command line over ``rdiff.api``
(``python bench_rdiff.py --as-rdiff [-j N] signature|delta|patch ...``).
"""

from __future__ import annotations

import sys


def _as_rdiff(argv: list[str]) -> int:
    """A tiny stand-in for the command line: ``[-j N] signature|delta|patch IN... OUT``."""
    jobs: int | None = None
    if argv[:1] in (["-j"], ["--jobs"]):
        jobs, argv = int(argv[1]), argv[2:]
    op, *paths = argv
    from rdiff import api

    if op == "signature":
        with open(paths[0], "rb") as basis, open(paths[1], "wb") as out:
            api.signature(basis, out, jobs=jobs)
    elif op == "delta":
        with open(paths[0], "rb") as sig, open(paths[1], "rb") as new, open(paths[2], "wb") as out:
            api.delta(sig, new, out, jobs=jobs or 1)
    elif op == "patch":
        with (
            open(paths[0], "rb") as basis,
            open(paths[1], "rb") as dlt,
            open(paths[2], "wb") as out,
        ):
            api.patch(basis, dlt, out)
    else:
        print(f"unknown operation {op!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--as-rdiff"]:
    sys.exit(_as_rdiff(sys.argv[2:]))

# Everything below is the benchmark itself (kept out of the wrapper's start-up path).
import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # when loaded by path (pytest)
from measure import run_child  # noqa: E402

MIB = 1024 * 1024
RDIFF = "/usr/bin/rdiff"
TIME = "/usr/bin/time"
RSS_TARGET_MIB = 64.0
STARTUP_TARGET = 2.0
ALL_CASES = ("sig", "sig-j1", "delta", "delta-j2", "patch", "nomatch", "nomatch-j2", "startup")


# --------------------------------------------------------------------------------------------
# Corpus


def _write_random(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        left = size
        while left:
            n = min(left, MIB)
            f.write(rng.randbytes(n))
            left -= n
    tmp.replace(path)


def _write_mutated(src: Path, dst: Path, seed: int, insertions: int = 20) -> None:
    """``src`` with 1 % of its 4 KiB blocks rewritten and ``insertions`` random insertions
    (1-2999 bytes), as /work/shared/bench/corpus.sh builds big-b.bin."""
    rng = random.Random(seed)
    data = bytearray(src.read_bytes())
    nblk = len(data) // 4096
    for blk in rng.sample(range(nblk), nblk // 100):
        data[blk * 4096 : (blk + 1) * 4096] = rng.randbytes(4096)
    for _ in range(insertions):
        pos = rng.randrange(len(data))
        data[pos:pos] = rng.randbytes(rng.randrange(1, 3000))
    tmp = dst.with_name(dst.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(dst)


@dataclass
class Corpus:
    old: Path  # the basis
    new: Path  # old with 1 % of 4 KiB blocks rewritten + insertions
    other: Path  # independent random data of the same size: nothing matches
    tiny: Path  # 1 KiB, for start-up


def build_corpus(root: Path, quick: bool) -> Corpus:
    """Reuse corpus.sh's big-a.bin / big-b.bin when present; build what is missing."""
    if quick:
        size, d = 64 * MIB, root / "rdiff-bench-quick"
        old, new = d / "a.bin", d / "b.bin"
    else:
        size, d = 512 * MIB, root / "rdiff-bench"
        old, new = root / "big-a.bin", root / "big-b.bin"
    d.mkdir(parents=True, exist_ok=True)
    other, tiny = d / "other.bin", d / "tiny.bin"
    if not old.exists():
        print(f"building {old} ({size // MIB} MiB)", file=sys.stderr)
        _write_random(old, size, 7)
    if not new.exists():
        print(f"building {new}", file=sys.stderr)
        _write_mutated(old, new, 42)
    if not other.exists() or other.stat().st_size != old.stat().st_size:
        print(f"building {other}", file=sys.stderr)
        _write_random(other, old.stat().st_size, 99)
    if not tiny.exists():
        _write_random(tiny, 1024, 5)
    return Corpus(old, new, other, tiny)


def preread(*paths: Path) -> None:
    """Bring files into the page cache (nothing is ever dropped from it)."""
    buf = bytearray(4 * MIB)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        while True:
            x, y = fa.read(4 * MIB), fb.read(4 * MIB)
            if x != y:
                return False
            if not x:
                return True


# --------------------------------------------------------------------------------------------
# Measurement


@dataclass
class Run:
    wall: float
    user: float
    sys: float
    maxrss_mib: float


def run_once(argv: Sequence[str], *, rss: bool = True, env: dict[str, str] | None = None) -> Run:
    """Spawn ``argv`` and wait for it with wait4: wall time, CPU time and peak RSS.

    The peak RSS is taken by /usr/bin/time (``%M``), not from our own wait4: Linux folds the
    high-water RSS of the address space a child execs from into the child's ru_maxrss, and
    subprocess spawns with vfork, so every child would "peak" at this benchmark's own RSS.
    /usr/bin/time is small, so its child's figure is the command's own. ``rss=False`` skips
    it (start-up timing, where its extra fork + exec of ~1 ms would blur the ratio).
    """
    with tempfile.NamedTemporaryFile(suffix=".time") as tf:
        cmd = [TIME, "-q", "-f", "%M", "-o", tf.name, *argv] if rss else list(argv)
        child = run_child(cmd, env=env)
        words = Path(tf.name).read_text().split() if rss else []
    return Run(child.wall, child.user, child.system, int(words[-1]) / 1024 if words else 0.0)


def cpu_busy() -> tuple[float, float]:
    """Whole-machine busy and steal CPU seconds so far (from /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    v = [int(x) for x in fields]
    hz = os.sysconf("SC_CLK_TCK")
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / hz, (v[7] / hz if len(v) > 7 else 0.0)


def wait_quiet(max_wait: float, threshold: float = 0.15) -> float:
    """Wait (up to ``max_wait`` s) for a 1 s window in which the machine is under
    ``threshold`` busy cores; return the busy cores of the last window."""
    deadline = time.monotonic() + max_wait
    while True:
        b0, _ = cpu_busy()
        t0 = time.monotonic()
        time.sleep(1.0)
        b1, _ = cpu_busy()
        load = (b1 - b0) / (time.monotonic() - t0)
        if load < threshold or time.monotonic() >= deadline:
            return load


@dataclass
class Side:
    runs: list[Run] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def best(self) -> float:
        return min(r.wall for r in self.runs)

    @property
    def rss(self) -> float:
        return statistics.median(r.maxrss_mib for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.user + r.sys for r in self.runs)


@dataclass
class Result:
    case: str
    label: str
    target: float | None
    rdiff: Side
    ours: Side
    verified: str
    background_cpu: float  # CPU seconds used by other processes during the case
    steal: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.ours.wall / self.rdiff.wall

    @property
    def best_ratio(self) -> float:
        return self.ours.best / self.rdiff.best

    @property
    def paired_ratio(self) -> float:
        """Median of ours/rdiff within each repetition (the two ran back to back, so slow
        swings of background load mostly cancel)."""
        pairs = zip(self.ours.runs, self.rdiff.runs, strict=False)
        return statistics.median(o.wall / r.wall for o, r in pairs)

    @property
    def cpu_ratio(self) -> float:
        """Our CPU time (user + sys, all threads) over rdiff's: load-independent."""
        return self.ours.cpu / self.rdiff.cpu if self.rdiff.cpu else float("nan")


@dataclass
class Tools:
    ours: list[str]  # argv prefix of our rdiff
    ours_kind: str  # "cli" or "wrapper"
    python: str  # the interpreter that runs ours
    rdiff: list[str] = field(default_factory=lambda: [RDIFF])
    env: dict[str, str] | None = None  # environment of ours and of ``python -c pass``
    bytecode: str = "inherit"


def python_env(mode: str, cache_dir: Path) -> dict[str, str] | None:
    """The environment our Python children run in.

    ``cache``: bytecode is cached as an installed package has it (pip compiles on install),
    in a folder of our own (PYTHONPYCACHEPREFIX) so the source tree is left untouched, even
    when the calling environment sets PYTHONDONTWRITEBYTECODE. ``none``: no bytecode cache at
    all, every module compiled at every start. ``inherit``: the environment as it is.
    """
    if mode == "inherit":
        return None
    env = dict(os.environ)
    if mode == "cache":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    else:
        env.pop("PYTHONPYCACHEPREFIX", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def snapshot(dest: Path, env: dict[str, str] | None, python: str) -> dict[str, str]:
    """Copy the imported ``rdiff`` package (sources and built extension) to ``dest`` and
    return ``env`` with PYTHONPATH pointing there, so the whole run measures one version.

    The copy is compiled up front (into the bytecode cache ``env`` names, if any), so no
    timed run pays for it."""
    spec = importlib.util.find_spec("rdiff")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the rdiff package is not importable")
    src = Path(next(iter(spec.submodule_search_locations)))
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest / "rdiff", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dest), env.get("PYTHONPATH")]))
    if "PYTHONDONTWRITEBYTECODE" not in env:
        subprocess.run([python, "-m", "compileall", "-q", str(dest)], env=env, check=True)
    return env


def find_ours(choice: str) -> Tools:
    here = Path(sys.executable)
    script = here.parent / "rdiff"
    if choice == "auto":
        has_cli = importlib.util.find_spec("rdiff.cli") is not None and script.exists()
        if has_cli:
            probe = subprocess.run([str(script), "--help"], capture_output=True, text=True)
            has_cli = probe.returncode == 0 and "--jobs" in probe.stdout + probe.stderr
        choice = "cli" if has_cli else "wrapper"
    if choice == "wrapper":
        return Tools(
            [sys.executable, str(Path(__file__).resolve()), "--as-rdiff"], "wrapper", sys.executable
        )
    exe = script if choice == "cli" else Path(choice)
    first = exe.read_bytes()[:256].split(b"\n", 1)[0]
    python = first[2:].decode().strip() if first.startswith(b"#!") else sys.executable
    return Tools([str(exe)], "cli", python.split()[0])


class Bench:
    def __init__(
        self,
        tools: Tools,
        corpus: Corpus,
        work: Path,
        reps: int,
        slow_reps: int,
        startup_runs: int,
        quiet: float = 0.0,
    ) -> None:
        self.quiet = quiet
        self.quiet_below = 0.15
        self.tools, self.c, self.work = tools, corpus, work
        self.reps, self.slow_reps, self.startup_runs = reps, slow_reps, startup_runs
        self.sig = work / "ref.sig"
        self.delta = work / "ref.delta"
        self._prepared = False

    def out(self, name: str) -> Path:
        return self.work / name

    def prepare(self) -> None:
        """Reference signature and delta (by rdiff), used as inputs by both tools."""
        if self._prepared:
            return
        preread(self.c.old, self.c.new)
        for p in (self.sig, self.delta):
            p.unlink(missing_ok=True)
        run_once([RDIFF, "signature", str(self.c.old), str(self.sig)])
        run_once([RDIFF, "delta", str(self.sig), str(self.c.new), str(self.delta)])
        self._prepared = True

    def rdiff_patches_to(self, delta: Path, basis: Path, expected: Path) -> bool:
        out = self.out("verify.out")
        out.unlink(missing_ok=True)
        try:
            run_once([RDIFF, "patch", str(basis), str(delta), str(out)])
            return same_bytes(out, expected)
        finally:
            out.unlink(missing_ok=True)

    def pair(
        self,
        case: str,
        label: str,
        target: float | None,
        args: Sequence[str],
        ours_opts: Sequence[str],
        inputs: Sequence[Path],
        reps: int,
        verify: Callable[[Path, Path, int], str],
    ) -> Result:
        """Run rdiff and ours ``reps`` times, alternating; ``args`` ends with the output."""
        preread(*inputs)
        rd, us = Side(), Side()
        checks: list[str] = []
        busy0, steal0 = cpu_busy()
        for rep in range(reps):
            if self.quiet:
                wait_quiet(self.quiet, self.quiet_below)
            outs = {"rdiff": self.out(f"{case}.rdiff"), "ours": self.out(f"{case}.ours")}
            order = ["rdiff", "ours"] if rep % 2 == 0 else ["ours", "rdiff"]
            for who in order:
                outs[who].unlink(missing_ok=True)
                os.sync()
                if who == "rdiff":
                    argv = [*self.tools.rdiff, *args, str(outs[who])]
                    rd.runs.append(run_once(argv))
                else:
                    argv = [*self.tools.ours, *ours_opts, *args, str(outs[who])]
                    us.runs.append(run_once(argv, env=self.tools.env))
            checks.append(verify(outs["ours"], outs["rdiff"], rep))
            for p in outs.values():
                p.unlink(missing_ok=True)
        busy1, steal1 = cpu_busy()
        own = sum(r.user + r.sys for r in rd.runs + us.runs)
        background = max(0.0, (busy1 - busy0) - own)
        bad = [c for c in checks if c.startswith("FAIL")]
        verified = bad[0] if bad else checks[0]
        res = Result(case, label, target, rd, us, verified, background, steal1 - steal0)
        print_row(res)
        return res

    # Verifiers -----------------------------------------------------------------------------

    def _v_sig(self, ours: Path, theirs: Path, rep: int) -> str:
        return "identical" if same_bytes(ours, theirs) else "FAIL: signature differs"

    def _v_delta(self, basis: Path, new: Path) -> Callable[[Path, Path, int], str]:
        def check(ours: Path, theirs: Path, rep: int) -> str:
            if same_bytes(ours, theirs):
                return "identical"
            if rep > 0:  # patching 512 MiB each time adds nothing: check the first one
                return "valid (patched rep 0)"
            if self.rdiff_patches_to(ours, basis, new):
                return "valid (rdiff patch == new)"
            return "FAIL: delta does not patch to the new file"

        return check

    def _v_patch(self, ours: Path, theirs: Path, rep: int) -> str:
        if not same_bytes(ours, self.c.new):
            return "FAIL: patched output != new"
        if not same_bytes(theirs, self.c.new):
            return "FAIL: rdiff's output != new"
        return "== new"

    # Cases ---------------------------------------------------------------------------------

    def case(self, name: str) -> Result:
        c = self.c
        old, new, other = str(c.old), str(c.new), str(c.other)
        if name == "sig":
            return self.pair(
                name, "signature", 0.6, ["signature", old], [], [c.old], self.reps, self._v_sig
            )
        if name == "sig-j1":
            return self.pair(
                name,
                "signature -j 1",
                None,
                ["signature", old],
                ["-j", "1"],
                [c.old],
                self.reps,
                self._v_sig,
            )
        self.prepare()
        sig = str(self.sig)
        if name == "delta":
            return self.pair(
                name,
                "delta",
                1.05,
                ["delta", sig, new],
                [],
                [self.sig, c.new],
                self.reps,
                self._v_delta(c.old, c.new),
            )
        if name == "delta-j2":
            return self.pair(
                name,
                "delta -j 2",
                0.6,
                ["delta", sig, new],
                ["-j", "2"],
                [self.sig, c.new],
                self.reps,
                self._v_delta(c.old, c.new),
            )
        if name == "patch":
            return self.pair(
                name,
                "patch",
                1.05,
                ["patch", old, str(self.delta)],
                [],
                [c.old, self.delta],
                self.reps,
                self._v_patch,
            )
        if name == "nomatch":
            return self.pair(
                name,
                "delta, nothing matches",
                None,
                ["delta", sig, other],
                [],
                [self.sig, c.other],
                self.slow_reps,
                self._v_delta(c.old, c.other),
            )
        if name == "nomatch-j2":
            return self.pair(
                name,
                "delta -j 2, nothing matches",
                None,
                ["delta", sig, other],
                ["-j", "2"],
                [self.sig, c.other],
                self.slow_reps,
                self._v_delta(c.old, c.other),
            )
        if name == "startup":
            return self.startup()
        raise ValueError(f"unknown case {name!r}")

    def startup(self) -> Result:
        """``rdiff signature`` of a 1 KiB file against ``python -c pass`` (same interpreter)."""
        tiny = str(self.c.tiny)
        ours_out, rd_out = self.out("startup.ours"), self.out("startup.rdiff")
        bare, us, rd, nopyc = Side(), Side(), Side(), Side()
        busy0, steal0 = cpu_busy()
        env = self.tools.env
        no_cache = python_env("none", Path())
        ours_argv = [*self.tools.ours, "signature", tiny, str(ours_out)]
        cmds: list[tuple[Side, list[str], Path | None, dict[str, str] | None]] = [
            (bare, [self.tools.python, "-c", "pass"], None, env),
            (us, ours_argv, ours_out, env),
            (rd, [*self.tools.rdiff, "signature", tiny, str(rd_out)], rd_out, None),
        ]
        if self.tools.bytecode == "cache":  # for information: what no .pyc at all costs
            cmds.append((nopyc, ours_argv, ours_out, no_cache))
        for _ in range(2):  # warm-up: .pyc files, dentries
            for _, argv, out, e in cmds:
                if out is not None:
                    out.unlink(missing_ok=True)
                run_once(argv, env=e)
        rss: dict[int, list[float]] = {id(side): [] for side, _, _, _ in cmds}
        k = len(cmds)
        for i in range(self.startup_runs + 3):
            for side, argv, out, e in cmds[i % k :] + cmds[: i % k]:
                if out is not None:
                    out.unlink(missing_ok=True)
                if i < self.startup_runs:
                    side.runs.append(run_once(argv, rss=False, env=e))
                else:  # peak RSS from three extra runs under /usr/bin/time
                    rss[id(side)].append(run_once(argv, env=e).maxrss_mib)
        for side, _, _, _ in cmds:
            for r in side.runs:
                r.maxrss_mib = statistics.median(rss[id(side)])
        verified = "identical" if same_bytes(ours_out, rd_out) else "FAIL: signature differs"
        busy1, steal1 = cpu_busy()
        own = sum(r.user + r.sys for r in bare.runs + us.runs + rd.runs + nopyc.runs)
        res = Result(
            "startup",
            "signature of 1 KiB (start-up)",
            STARTUP_TARGET,
            rd,
            us,
            verified,
            max(0.0, busy1 - busy0 - own),
            steal1 - steal0,
        )
        res.extra = {
            "python_c_pass_median": bare.wall,
            "python_c_pass_mean": statistics.fmean(r.wall for r in bare.runs),
            "ours_mean": statistics.fmean(r.wall for r in us.runs),
            "rdiff_mean": statistics.fmean(r.wall for r in rd.runs),
            "ratio_vs_python": us.wall / bare.wall,
            "python_rss": bare.rss,
        }
        if nopyc.runs:
            res.extra["ours_no_pyc_median"] = nopyc.wall
        print_row(res)
        return res


# --------------------------------------------------------------------------------------------
# Reporting


def _fmt_s(x: float) -> str:
    return f"{x * 1000:.1f} ms" if x < 0.1 else f"{x:.2f} s"


def verdict(res: Result) -> str:
    parts = []
    if res.target is not None:
        ratio = res.extra.get("ratio_vs_python", res.ratio)
        parts.append("✅" if ratio <= res.target else "❌")
    rss_ok = res.ours.rss <= RSS_TARGET_MIB
    parts.append("RSS ✅" if rss_ok else "RSS ❌")
    return " ".join(parts)


def row(res: Result) -> list[str]:
    if res.case == "startup":
        e = res.extra
        target = f"≤ {STARTUP_TARGET:g}× `python -c pass` ({_fmt_s(e['python_c_pass_median'])})"
        ratio = f"{res.ratio:.2f} ({e['ratio_vs_python']:.2f}× python)"
    else:
        target = f"≤ {res.target:g}" if res.target is not None else "—"
        ratio = f"{res.ratio:.2f}"
    return [
        res.label,
        _fmt_s(res.rdiff.wall),
        _fmt_s(res.ours.wall),
        ratio,
        f"{res.paired_ratio:.2f}" if res.case != "startup" else "",
        f"{res.cpu_ratio:.2f}" if res.case != "startup" else "",
        target,
        verdict(res),
        f"{res.rdiff.rss:.1f} MiB",
        f"{res.ours.rss:.1f} MiB",
        f"{res.rdiff.cpu:.2f} / {res.ours.cpu:.2f} s",
        f"{len(res.ours.runs)}",
        res.verified,
    ]


HEADER = [
    "op",
    "rdiff",
    "ours",
    "ratio",
    "paired ratio",
    "CPU ratio",
    "target",
    "met",
    "rdiff RSS",
    "ours RSS",
    "CPU rdiff / ours",
    "n",
    "output",
]


def _walls(side: Side) -> str:
    return " ".join(f"{r.wall:.3f}" for r in side.runs)


def print_row(res: Result) -> None:
    walls = _walls
    print(
        f"  {res.label}: rdiff [{walls(res.rdiff)}] ours [{walls(res.ours)}] "
        f"ratio {res.ratio:.2f} (best {res.best_ratio:.2f}, paired {res.paired_ratio:.2f}, "
        f"CPU {res.cpu_ratio:.2f}); "
        f"background CPU {res.background_cpu:.1f} s, "
        f"steal {res.steal:.1f} s; {res.verified}",
        file=sys.stderr,
        flush=True,
    )


def markdown(results: Sequence[Result]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row(r)) + " |" for r in results]
    return "\n".join(lines)


def machine() -> dict[str, str]:
    info: dict[str, str] = {"nproc": str(os.cpu_count())}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        info["ram"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    info["kernel"] = platform.release()
    info["python"] = platform.python_version()
    try:
        from rdiff import _binding

        info["librsync"] = _binding.LIBRSYNC_VERSION
    except ImportError:
        pass
    info["rdiff"] = subprocess.run(
        [RDIFF, "--version"], capture_output=True, text=True
    ).stdout.split("\n", 1)[0]
    info["loadavg"] = Path("/proc/loadavg").read_text().strip()
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "packages/rdiff"],
            capture_output=True,
            text=True,
        ).stdout
        info["commit"] = head + (" + uncommitted packages/rdiff changes" if dirty else "")
    except OSError:
        pass
    return info


# --------------------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="64 MiB files: a smoke run")
    p.add_argument("-n", "--reps", type=int, default=3, help="repetitions per case (median)")
    p.add_argument(
        "--slow-reps",
        type=int,
        default=None,
        help="repetitions of the nothing-matches deltas (default 1; quick: reps)",
    )
    p.add_argument("--startup-runs", type=int, default=30)
    p.add_argument(
        "--cases",
        default=",".join(ALL_CASES),
        help=f"comma-separated subset of {','.join(ALL_CASES)}",
    )
    p.add_argument("--corpus", type=Path, default=Path(os.environ.get("CORPUS", "/tmp/corpus")))
    p.add_argument(
        "--ours", default="auto", help="auto | cli | wrapper | path of an rdiff executable"
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each repetition wait up to SECONDS for a quiet 1 s window "
        "(see --quiet-below) when other work shares the machine",
    )
    p.add_argument(
        "--quiet-below",
        type=float,
        default=0.15,
        metavar="CORES",
        help="what --wait-quiet calls quiet: fewer busy cores than this (default 0.15)",
    )
    p.add_argument(
        "--bytecode",
        choices=("cache", "none", "inherit"),
        default="cache",
        help="our Python children: cache = .pyc cached in a folder of ours as for an installed "
        "package (default); none = no .pyc at all; inherit = the environment as it is",
    )
    p.add_argument(
        "--no-snapshot",
        dest="snapshot",
        action="store_false",
        help="run the live rdiff package rather than a copy taken at start (the copy keeps "
        "concurrent edits of packages/rdiff out of a long run)",
    )
    p.add_argument("--json", type=Path, help="also write raw results here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if not Path(RDIFF).exists():
        print(f"{RDIFF} is missing (apt-get install rdiff)", file=sys.stderr)
        return 2
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(ALL_CASES)
    if unknown:
        print(f"unknown cases: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    tools = find_ours(args.ours)
    tools.bytecode = args.bytecode
    tools.env = python_env(args.bytecode, args.corpus / "rdiff-bench-pycache")
    corpus = build_corpus(args.corpus, args.quick)
    slow = args.slow_reps if args.slow_reps is not None else (args.reps if args.quick else 1)
    info = machine()
    print(
        f"ours: {' '.join(tools.ours)} ({tools.ours_kind}); python: {tools.python}; "
        f"bytecode: {tools.bytecode}",
        file=sys.stderr,
    )
    print(f"machine: {info}", file=sys.stderr)
    print(
        f"corpus: {corpus.old} ({corpus.old.stat().st_size:,} B), {corpus.new} "
        f"({corpus.new.stat().st_size:,} B)",
        file=sys.stderr,
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="rdiff-bench-", dir=args.corpus))
    signal.signal(signal.SIGTERM, _terminate)  # run the cleanup below on kill
    results: list[Result] = []
    try:
        if args.snapshot:
            tools.env = snapshot(work / "src", tools.env, tools.python)
        bench = Bench(tools, corpus, work, args.reps, slow, args.startup_runs, args.wait_quiet)
        bench.quiet_below = args.quiet_below
        for name in cases:
            results.append(bench.case(name))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info["loadavg_end"] = Path("/proc/loadavg").read_text().strip()
    print()
    print(markdown(results))
    print()
    for r in results:
        if r.case == "startup":
            e = r.extra
            print(
                f"start-up: python -c pass {_fmt_s(e['python_c_pass_median'])} median / "
                f"{_fmt_s(e['python_c_pass_mean'])} mean; ours {_fmt_s(r.ours.wall)} / "
                f"{_fmt_s(e['ours_mean'])}; rdiff {_fmt_s(r.rdiff.wall)} / "
                f"{_fmt_s(e['rdiff_mean'])} ({len(r.ours.runs)} runs each)"
            )
            if "ours_no_pyc_median" in e:
                print(
                    f"start-up without any .pyc (PYTHONDONTWRITEBYTECODE=1, as this checkout "
                    f"runs): ours {_fmt_s(e['ours_no_pyc_median'])} median"
                )
    bg = sum(r.background_cpu for r in results)
    print(
        f"background CPU by other processes during the run: {bg:.1f} s; "
        f"steal {sum(r.steal for r in results):.1f} s; load {info['loadavg']} -> "
        f"{info['loadavg_end']}"
    )
    print(
        f"ours = {' '.join(tools.ours)} ({tools.ours_kind}, bytecode {tools.bytecode}); "
        f"corpus {corpus.old.parent}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "ours": tools.ours,
                    "results": [
                        {
                            **asdict(r),
                            "ratio": r.ratio,
                            "best_ratio": r.best_ratio,
                            "paired_ratio": r.paired_ratio,
                            "cpu_ratio": r.cpu_ratio,
                        }
                        for r in results
                    ],
                },
                indent=1,
                default=str,
            )
        )
    failed = [r for r in results if r.verified.startswith("FAIL")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
