"""Fixtures for the rdiff tests: generated inputs, the reference rdiff, our CLI, helpers.

Inputs come from scripts/make_rdiff_inputs.py (seeded), generated once per session into a
temporary directory. Helpers that several test modules need are exposed as fixtures, because
test modules cannot import each other under ``--import-mode=importlib``.
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_rdiff_inputs.py"
OUR_CLI = Path(sys.executable).parent / "rdiff"
T = TypeVar("T")
HANG_TIMEOUT = 20.0  # seconds; a librsync job on these inputs takes milliseconds


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_rdiff_inputs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_rdiff_inputs", module)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture(scope="session")
def make_inputs() -> Any:
    """The generator module (make_inputs, edit, EDIT_KINDS, ...)."""
    return gen


@pytest.fixture(scope="session")
def data() -> dict[str, bytes]:
    """name -> bytes of every generated input (seeded, identical across runs)."""
    inputs: dict[str, bytes] = gen.make_inputs(gen.DEFAULT_SEED, big=True)  # loaded by path
    return inputs


@pytest.fixture(scope="session")
def files(data: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path of a regular file holding that input."""
    directory = tmp_path_factory.mktemp("rdiff-inputs")
    paths = {}
    for name, content in data.items():
        path = directory / name
        path.write_bytes(content)
        paths[name] = path
    return paths


# --- the reference rdiff ------------------------------------------------------------------


@dataclass
class Reference:
    """Debian's /usr/bin/rdiff 2.3.2, driven through files, pipes and redirects."""

    exe: str
    workdir: Path

    def run(
        self,
        *args: str | os.PathLike[str],
        input: bytes | None = None,
        stdin: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [self.exe, *map(str, args)]
        if stdin is not None:
            with open(stdin, "rb") as f:
                proc = subprocess.run(argv, stdin=f, capture_output=True, timeout=120)
        else:
            proc = subprocess.run(argv, input=input or b"", capture_output=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} exited {proc.returncode}: {proc.stderr!r}")
        return proc

    def tmp(self, content: bytes, name: str = "blob") -> Path:
        """A fresh regular file with ``content`` (for rdiff operands)."""
        fd, path = _mkstemp(self.workdir, name)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        return Path(path)

    def signature_file(self, basis: Path, *opts: str) -> bytes:
        """rdiff signature with BASIS as a regular file operand (size known)."""
        return self.run(*opts, "signature", basis, "-").stdout

    def signature_pipe(self, content: bytes, *opts: str) -> bytes:
        """rdiff signature reading a pipe on stdin (size unknown)."""
        return self.run(*opts, "signature", input=content).stdout

    def delta(self, sig: bytes, new: Path, *opts: str) -> bytes:
        sig_path = self.tmp(sig, "sig")
        try:
            return self.run(*opts, "delta", sig_path, new, "-").stdout
        finally:
            sig_path.unlink()

    def patch(self, basis: Path, delta: bytes, *opts: str) -> bytes:
        return self.run(*opts, "patch", basis, "-", "-", input=delta).stdout


_counter = iter(range(10**9))
_counter_lock = threading.Lock()


def _mkstemp(directory: Path, name: str) -> tuple[int, str]:
    with _counter_lock:
        n = next(_counter)
    path = directory / f"{name}-{os.getpid()}-{n}"
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(path)


@pytest.fixture(scope="session")
def ref(reference_rdiff: str, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return Reference(reference_rdiff, tmp_path_factory.mktemp("rdiff-ref"))


# --- our command line ---------------------------------------------------------------------


@dataclass
class OurCli:
    exe: Path

    def run(
        self,
        *args: str | os.PathLike[str],
        input: bytes | None = None,
        stdin: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [str(self.exe), *map(str, args)]
        if stdin is not None:
            with open(stdin, "rb") as f:
                proc = subprocess.run(argv, stdin=f, capture_output=True, timeout=120)
        else:
            proc = subprocess.run(argv, input=input or b"", capture_output=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} exited {proc.returncode}: {proc.stderr!r}")
        return proc


@pytest.fixture(scope="session")
def our_cli() -> OurCli:
    """Our console script ``rdiff`` (rdiff.cli:main) from this venv."""
    missing = not OUR_CLI.exists() or importlib.util.find_spec("rdiff.cli") is None
    if missing:
        message = f"our rdiff CLI is not available ({OUR_CLI}, rdiff.cli)"
        if os.environ.get("RDB_REQUIRE_REFERENCE") == "1" or os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return OurCli(OUR_CLI)


# --- helpers ------------------------------------------------------------------------------


def parse_delta_bytes(delta: bytes) -> list[tuple[Any, ...]]:
    """Decode a delta into ("LIT", bytes) / ("COPY", offset, length) / ("END",) commands.

    Independent of librsync: follows the opcode table of the format (prototab). Raises
    ValueError on a malformed delta.
    """
    if delta[:4] != b"rs\x026":
        raise ValueError("bad delta magic")
    widths = (1, 2, 4, 8)
    pos = 4
    commands: list[tuple[Any, ...]] = []

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(delta):
            raise ValueError("truncated delta")
        piece = delta[pos : pos + n]
        pos += n
        return piece

    while True:
        op = take(1)[0]
        if op == 0:
            commands.append(("END",))
            return commands
        if op <= 0x40:
            commands.append(("LIT", take(op)))
        elif op <= 0x44:
            n = int.from_bytes(take(widths[op - 0x41]), "big")
            commands.append(("LIT", take(n)))
        elif op <= 0x54:
            i = op - 0x45
            offset = int.from_bytes(take(widths[i // 4]), "big")
            length = int.from_bytes(take(widths[i % 4]), "big")
            commands.append(("COPY", offset, length))
        else:
            raise ValueError(f"reserved opcode {op:#x}")


@pytest.fixture(scope="session")
def parse_delta() -> Callable[[bytes], list[tuple[Any, ...]]]:
    return parse_delta_bytes


def run_with_timeout(fn: Callable[[], T], timeout: float = HANG_TIMEOUT) -> T:
    """Run ``fn`` in a thread; fail the test (rather than hang the run) if it does not finish.

    Returns ``fn``'s result, or re-raises its exception.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(fn())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"hung: no result after {timeout} s")
    if errors:
        raise errors.pop()
    return results.pop()


class NoHang(Protocol):
    """The ``no_hang`` fixture: run_with_timeout."""

    def __call__(self, fn: Callable[[], T], timeout: float = HANG_TIMEOUT) -> T: ...


@pytest.fixture(scope="session")
def no_hang() -> NoHang:
    return run_with_timeout


@pytest.fixture(scope="session")
def api_sig() -> Callable[..., bytes]:
    """Our signature of bytes: as a regular file (``path``) or as an unknown-size stream."""
    from rdiff import api

    def sig(source: Path | bytes, **kwargs: Any) -> bytes:
        out = io.BytesIO()
        if isinstance(source, Path):
            with open(source, "rb") as f:
                api.signature(f, out, **kwargs)
        else:
            api.signature(io.BytesIO(source), out, **kwargs)
        return out.getvalue()

    return sig


@pytest.fixture(scope="session")
def api_delta() -> Callable[..., bytes]:
    """Our delta of ``new`` (path or bytes) against the signature bytes ``sig``."""
    from rdiff import api

    def make(sig: bytes, new: Path | bytes, **kwargs: Any) -> bytes:
        out = io.BytesIO()
        if isinstance(new, Path):
            with open(new, "rb") as f:
                api.delta(io.BytesIO(sig), f, out, **kwargs)
        else:
            api.delta(io.BytesIO(sig), io.BytesIO(new), out, **kwargs)
        return out.getvalue()

    return make


@pytest.fixture(scope="session")
def api_patch() -> Callable[..., bytes]:
    """Our patch of ``basis`` (path or bytes) with the delta bytes."""
    from rdiff import api

    def apply(basis: Path | bytes, delta: bytes, **kwargs: Any) -> bytes:
        out = io.BytesIO()
        if isinstance(basis, Path):
            with open(basis, "rb") as f:
                api.patch(f, io.BytesIO(delta), out, **kwargs)
        else:
            api.patch(io.BytesIO(basis), io.BytesIO(delta), out, **kwargs)
        return out.getvalue()

    return apply
