"""Shared fixtures: where the reference tools are, and whether missing ones may be skipped;
a far-future time the file system keeps."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def reference_required() -> bool:
    """In CI (and under ./dev test) a missing reference tool is a failure, never a skip."""
    return os.environ.get("RDB_REQUIRE_REFERENCE") == "1" or os.environ.get("CI") == "true"


def need_tool(name: str, path: str | None) -> str:
    """Return the tool's path, or skip (locally) / fail (CI) when it is missing."""
    if path and Path(path).exists():
        return path
    message = f"reference tool {name} not found ({path or 'not on PATH'}); run ./dev setup"
    if reference_required():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def reference_rdiff() -> str:
    """Debian's rdiff 2.3.2, the byte-compatibility reference."""
    return need_tool("rdiff", "/usr/bin/rdiff")


@pytest.fixture(scope="session")
def rdiff_backup() -> str:
    """rdiff-backup 2.2.7 from its own venv (the nox interop session sets RDB_RDIFF_BACKUP)."""
    default = ROOT / ".venv-rdiff-backup" / "bin" / "rdiff-backup"
    path = os.environ.get("RDB_RDIFF_BACKUP") or (str(default) if default.exists() else None)
    return need_tool("rdiff-backup 2.2.7", path or shutil.which("rdiff-backup"))


def _command_imports(module: str, argv: list[str]) -> tuple[int, list[str]]:
    """Run ``<module>.main()`` as a command with ``argv`` in a fresh interpreter (stdin, stdout
    and stderr not terminals): its exit status and every module it imported, sorted."""
    code = (
        "import atexit, sys\n"
        "def _report():\n"
        "    sys.stderr.write('\\nIMPORTED:' + ','.join(sorted(sys.modules)) + '\\n')\n"
        "atexit.register(_report)\n"
        f"sys.argv = ['cmd', *{argv!r}]\n"
        f"from {module} import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
    )
    marker = done.stderr.rsplit("IMPORTED:", 1)
    assert len(marker) == 2, done.stderr
    return done.returncode, marker[1].strip().split(",")


@pytest.fixture(scope="session")
def heavy_imports() -> Callable[[str, list[str]], tuple[int, list[str]]]:
    """Run ``<module>.main()`` as a command with ``argv`` in a fresh interpreter (stdin, stdout
    and stderr not terminals) and return its exit status and which of rich, pydantic and
    typer's rich help it imported: a regression guard for the commands' start-up cost."""

    def run(module: str, argv: list[str]) -> tuple[int, list[str]]:
        status, imported = _command_imports(module, argv)
        heavy = ("rich", "pydantic", "typer.rich_utils")
        return status, [m for m in heavy if m in imported]

    return run


@pytest.fixture(scope="session")
def lazy_imports() -> Callable[[str, list[str], list[str]], tuple[int, list[str]]]:
    """``run(module, argv, lazy)``: run ``<module>.main()`` as :func:`heavy_imports` does and
    return its exit status and which of the ``lazy`` modules (or their submodules) it imported.
    A regression guard for the modules a command imports only when it needs them (start-up
    cost: docs/architecture.md, "What an rdb-* command pays before it works")."""

    def run(module: str, argv: list[str], lazy: list[str]) -> tuple[int, list[str]]:
        status, imported = _command_imports(module, argv)
        return status, [
            name for name in lazy if any(m == name or m.startswith(name + ".") for m in imported)
        ]

    return run


def string_annotations(app: object) -> list[str]:
    """The parameters of a typer app's commands (and callback) annotated with a string: typer
    compiles and evaluates each of them every run (a CLI module without ``from __future__
    import annotations`` has none)."""
    import inspect

    registered = [*app.registered_commands, app.registered_callback]  # type: ignore[attr-defined]
    found = []
    for info in registered:
        function = getattr(info, "callback", None)
        if function is None:
            continue
        for name, parameter in inspect.signature(function).parameters.items():
            if isinstance(parameter.annotation, str):
                found.append(f"{function.__name__}({name})")
    return found


#: 2300-01-01T00:00:00.123456789Z: after 2262-04-11, nanoseconds since 1970 no longer fit in
#: 64 bits (ext4, XFS with bigtime, btrfs and tmpfs keep such times)
FAR_FUTURE_NS = 10_413_792_000 * 1_000_000_000 + 123_456_789


@pytest.fixture
def far_future_ns(tmp_path: Path) -> int:
    """:data:`FAR_FUTURE_NS`, once ``tmp_path``'s file system is seen to keep it (the test is
    skipped on one that stops earlier, such as XFS without bigtime: 2038)."""
    probe = tmp_path / ".far-future-probe"
    probe.write_bytes(b"")
    try:
        os.utime(probe, ns=(FAR_FUTURE_NS, FAR_FUTURE_NS))
        kept = probe.lstat().st_mtime_ns == FAR_FUTURE_NS
    except OSError:
        kept = False
    finally:
        probe.unlink()
    if not kept:
        pytest.skip("this file system does not keep times after 2262")
    return FAR_FUTURE_NS
