"""pytest-benchmark cases: our rdiff (API in-process and command line) next to /usr/bin/rdiff.

Collected only when asked for (``testpaths`` is ``tests``)::

    pytest benchmarks/ --benchmark-group-by=group
    RDIFF_BENCH_MIB=512 pytest benchmarks/test_bench_rdiff.py

The assertions check outputs only; times are recorded by pytest-benchmark, never asserted.
The side-by-side table with ratios, targets and peak RSS is ``python benchmarks/bench_rdiff.py``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RDIFF = "/usr/bin/rdiff"
SIZE_MIB = int(os.environ.get("RDIFF_BENCH_MIB", "64"))
ROUNDS = int(os.environ.get("RDIFF_BENCH_ROUNDS", "3"))

pytestmark = pytest.mark.skipif(not Path(RDIFF).exists(), reason=f"{RDIFF} is not installed")


def _load_bench() -> ModuleType:
    path = Path(__file__).with_name("bench_rdiff.py")
    spec = importlib.util.spec_from_file_location("_bench_rdiff_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@dataclass
class Files:
    old: Path
    new: Path
    tiny: Path
    sig: Path  # rdiff's signature of old
    delta: Path  # rdiff's delta from old to new
    out: Path  # scratch folder


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    d = tmp_path_factory.mktemp("rdiff-bench")
    old, new, tiny = d / "a.bin", d / "b.bin", d / "tiny.bin"
    bench._write_random(old, SIZE_MIB * bench.MIB, 7)
    bench._write_mutated(old, new, 42)
    bench._write_random(tiny, 1024, 5)
    sig, delta = d / "ref.sig", d / "ref.delta"
    subprocess.run([RDIFF, "signature", old, sig], check=True)
    subprocess.run([RDIFF, "delta", sig, new, delta], check=True)
    out = d / "out"
    out.mkdir()
    return Files(old, new, tiny, sig, delta, out)


def _ours_cli() -> list[str] | None:
    script = Path(sys.executable).with_name("rdiff")
    if importlib.util.find_spec("rdiff.cli") is None or not script.exists():
        return None
    return [str(script)]


def _run(benchmark: Any, fn: Callable[[], object], out: Path) -> None:
    def setup() -> None:
        out.unlink(missing_ok=True)

    benchmark.pedantic(fn, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=0)


def _cmd(argv: list[str | Path]) -> Callable[[], object]:
    return lambda: subprocess.run([str(a) for a in argv], check=True)


# --- signature -----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["api-parallel", "api-j1", "cli", "rdiff"])
def test_signature(benchmark: Any, files: Files, who: str) -> None:
    from rdiff import api

    benchmark.group = f"signature {SIZE_MIB} MiB"
    out = files.out / f"sig.{who}"

    def via_api(jobs: int | None) -> Callable[[], object]:
        def go() -> None:
            with open(files.old, "rb") as b, open(out, "wb") as o:
                api.signature(b, o, jobs=jobs)

        return go

    if who == "api-parallel":
        fn = via_api(None)
    elif who == "api-j1":
        fn = via_api(1)
    elif who == "cli":
        cli = _ours_cli() or pytest.skip("no rdiff command yet")
        fn = _cmd([*cli, "signature", files.old, out])
    else:
        fn = _cmd([RDIFF, "signature", files.old, out])
    _run(benchmark, fn, out)
    assert bench.same_bytes(out, files.sig)


# --- delta ---------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["api", "api-j2", "cli", "cli-j2", "rdiff"])
def test_delta(benchmark: Any, files: Files, who: str) -> None:
    from rdiff import api

    benchmark.group = f"delta {SIZE_MIB} MiB"
    out = files.out / f"delta.{who}"
    jobs = 2 if who.endswith("-j2") else 1

    def via_api() -> None:
        with open(files.sig, "rb") as s, open(files.new, "rb") as n, open(out, "wb") as o:
            api.delta(s, n, o, jobs=jobs)

    fn: Callable[[], object] = via_api
    if who.startswith("cli"):
        cli = _ours_cli() or pytest.skip("no rdiff command yet")
        fn = _cmd([*cli, "-j", str(jobs), "delta", files.sig, files.new, out])
    elif who == "rdiff":
        fn = _cmd([RDIFF, "delta", files.sig, files.new, out])
    _run(benchmark, fn, out)
    patched = files.out / f"delta.{who}.patched"
    patched.unlink(missing_ok=True)
    subprocess.run([RDIFF, "patch", str(files.old), str(out), str(patched)], check=True)
    assert bench.same_bytes(patched, files.new)
    if jobs == 1:
        assert bench.same_bytes(out, files.delta)


# --- patch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["api", "cli", "rdiff"])
def test_patch(benchmark: Any, files: Files, who: str) -> None:
    from rdiff import api

    benchmark.group = f"patch {SIZE_MIB} MiB"
    out = files.out / f"patch.{who}"

    def via_api() -> None:
        with open(files.old, "rb") as b, open(files.delta, "rb") as d, open(out, "wb") as o:
            api.patch(b, d, o)

    fn: Callable[[], object] = via_api
    if who == "cli":
        cli = _ours_cli() or pytest.skip("no rdiff command yet")
        fn = _cmd([*cli, "patch", files.old, files.delta, out])
    elif who == "rdiff":
        fn = _cmd([RDIFF, "patch", files.old, files.delta, out])
    _run(benchmark, fn, out)
    assert bench.same_bytes(out, files.new)


# --- start-up ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["python-c-pass", "cli", "rdiff"])
def test_startup(benchmark: Any, files: Files, who: str) -> None:
    """``rdiff signature`` of a 1 KiB file against the bare start-up of the same interpreter."""
    benchmark.group = "start-up: signature of 1 KiB"
    out = files.out / f"tiny.{who}"
    if who == "python-c-pass":
        argv: list[str | Path] = [sys.executable, "-c", "pass"]
    elif who == "cli":
        argv = [*(_ours_cli() or pytest.skip("no rdiff command yet")), "signature", files.tiny, out]
    else:
        argv = [RDIFF, "signature", files.tiny, out]
    cmd = [str(a) for a in argv]

    def fn() -> None:
        subprocess.run(cmd, check=True)

    benchmark.pedantic(fn, setup=lambda: out.unlink(missing_ok=True), rounds=30, iterations=1)
    if who != "python-c-pass":
        assert out.stat().st_size > 0
