"""Run the benchmark scripts: every ``benchmarks/bench_*.py`` that defines ``main()``.

Usage::

    python benchmarks/run.py                     # all of them
    python benchmarks/run.py rdiff               # bench_rdiff.py only (a name or bench_name)
    python benchmarks/run.py rdiff -- --quick    # arguments after -- go to each main(argv)
    python benchmarks/run.py --list

Each script runs in a child process of its own (a fresh interpreter: no state, memory or
``ru_maxrss`` carried over from the driver or another script) that loads it by path and calls
its ``main``: with the arguments after ``--`` when it takes a parameter, with none otherwise,
``sys.argv`` being ``[script, *arguments]`` either way. Its return value (None counts as 0) is
its exit status. One failing script does not stop the others; the driver exits non-zero if
any failed. A script is selected when it defines a top-level ``main`` (found without
importing it).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Path]:
    """Short name (``rdiff`` for bench_rdiff.py) -> script path, sorted by name."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def defines_main(path: Path) -> bool:
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return True  # let the child report it
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main"
        for node in tree.body
    )


def load(path: Path) -> ModuleType:
    name = f"_bench_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


def call_main(main: Callable[..., object], argv: Sequence[str]) -> int:
    try:
        takes_args = bool(inspect.signature(main).parameters)
    except (TypeError, ValueError):
        takes_args = False
    if argv and not takes_args:
        print(f"  note: {main.__module__}.main() takes no parameter: arguments only in sys.argv")
    try:
        result = main(list(argv)) if takes_args else main()
    except SystemExit as stop:  # argparse --help / errors, sys.exit() inside main
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if result is None or isinstance(result, bool):
        return int(bool(result))
    return result if isinstance(result, int) else 0


def run_one(path: Path, argv: Sequence[str]) -> int:
    """In the child: load ``path`` and call its main."""
    sys.argv = [str(path), *argv]
    module = load(path)
    entry = getattr(module, "main", None)
    if not callable(entry):
        print("  skipped: no main()")
        return 0
    return call_main(entry, argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--one"]:
        return run_one(Path(args[1]), args[2:])
    passthrough: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, passthrough = args[:cut], args[cut + 1 :]
    scripts = discover()
    if "--list" in args or "-l" in args:
        for name, path in scripts.items():
            print(f"{name:20} {path.relative_to(HERE.parent)}")
        return 0
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    wanted = [a.removeprefix("bench_").removesuffix(".py") for a in args]
    unknown = [w for w in wanted if w not in scripts]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(scripts)}")
        return 2
    selected = wanted or list(scripts)
    status: dict[str, int] = {}
    for name in selected:
        path = scripts[name]
        print(f"==> {path.relative_to(HERE.parent)}", flush=True)
        if not defines_main(path):
            print("  skipped: no main()")
            continue
        start = time.monotonic()
        try:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(path)]
            status[name] = subprocess.run([*cmd, *passthrough], check=False).returncode
        except OSError:
            traceback.print_exc()
            status[name] = 1
        print(f"<== {name}: exit {status[name]} in {time.monotonic() - start:.0f} s", flush=True)
    failed = [n for n, code in status.items() if code]
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
