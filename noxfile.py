"""Development sessions. `./dev test` runs the `ci` set; `nox -l` lists them all."""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "types", "tests", "isolated", "interop"]

# Each package with the sibling packages it needs (installed from this checkout).
PACKAGES: dict[str, list[str]] = {
    "rdiff": [],
    "rdb-format": [],
    "rdb-fastio": [],
    "rdb-increment": ["rdiff", "rdb-fastio", "rdb-format", "rdb-clikit"],
    "rdb-clikit": ["rdb-format"],
    "rdb-mirror": [
        "rdiff",
        "rdb-fastio",
        "rdb-format",
        "rdb-increment",
        "rdb-clikit",
        "rdb-remote",
    ],
    "rdb-stats": ["rdb-format", "rdb-clikit"],
    "rdb-restore": [
        "rdiff",
        "rdb-fastio",
        "rdb-format",
        "rdb-increment",
        "rdb-clikit",
        "rdb-remote",
    ],
    "rdb-remote": ["rdb-format"],
}
# Siblings a package's tests use to make or check repositories (never imported by the package
# itself): installed in its isolated session too, so no test of it is skipped there.
TEST_ONLY: dict[str, list[str]] = {
    "rdb-increment": ["rdb-remote", "rdb-mirror", "rdb-restore"],
    "rdb-mirror": ["rdb-restore"],
    "rdb-restore": ["rdb-mirror"],
    # the transport's tests run both programs' servers (rdb-mirror and rdb-restore --server)
    "rdb-remote": [
        "rdb-increment",
        "rdb-clikit",
        "rdiff",
        "rdb-fastio",
        "rdb-mirror",
        "rdb-restore",
    ],
}
TEST_TOOLS = ["pytest", "hypothesis", "pytest-benchmark"]
RDIFF_BACKUP_VERSION = "2.2.7"
RDIFF_BACKUP_VENV = ROOT / ".venv-rdiff-backup"


def _local(*names: str) -> list[str]:
    return [str(ROOT / "packages" / n) for n in names]


def _import_name(package: str) -> str:
    return package.replace("-", "_")


def _all_packages(session: nox.Session) -> None:
    session.install(*_local(*PACKAGES))


def _rdiff_backup(session: nox.Session) -> str:
    """rdiff-backup 2.2.7 from PyPI in a venv of its own (it builds against librsync-dev)."""
    exe = RDIFF_BACKUP_VENV / "bin" / "rdiff-backup"
    stamp = RDIFF_BACKUP_VENV / ".with-xattr-acl"
    if not stamp.exists():
        session.run("python", "-m", "venv", str(RDIFF_BACKUP_VENV), external=True)
        session.run(
            str(RDIFF_BACKUP_VENV / "bin" / "pip"),
            "install",
            "-q",
            f"rdiff-backup=={RDIFF_BACKUP_VERSION}",
            # Without these rdiff-backup silently records no extended attributes or ACLs.
            "pyxattr",
            "pylibacl",
            external=True,
        )
    stamp.touch()
    return str(exe)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict over every package's source, the tests and the benchmark scripts."""
    session.install("mypy", "typer", "rich", "cffi", *TEST_TOOLS)
    _all_packages(session)
    srcs = [
        str(p.parent)
        for p in sorted((ROOT / "packages").glob("*/src/*/__init__.py"))
        if p.parent.name != "_rdiff_cffi"
    ]
    session.run("mypy", *srcs, str(ROOT / "tests"), str(ROOT / "benchmarks"))


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite against all packages installed together (interop excluded)."""
    session.install(*TEST_TOOLS)
    _all_packages(session)
    env = {"RDB_REQUIRE_REFERENCE": os.environ.get("RDB_REQUIRE_REFERENCE", "1")}
    session.run("pytest", "-m", "not interop", "-q", *session.posargs, env=env)


@nox.session
@nox.parametrize("package", list(PACKAGES))
def isolated(session: nox.Session, package: str) -> None:
    """One package installed alone (with its declared siblings, and the siblings its tests use
    to make repositories) runs its own tests."""
    session.install(*TEST_TOOLS)
    session.install(*_local(package, *PACKAGES[package], *TEST_ONLY.get(package, [])))
    tests_dir = ROOT / "tests" / _import_name(package)
    session.run(
        "pytest",
        "-q",
        "-m",
        "not interop",
        str(tests_dir),
        *session.posargs,
        env={"RDB_REQUIRE_REFERENCE": "1"},
        success_codes=[0, 5],
    )


@nox.session
def interop(session: nox.Session) -> None:
    """Repositories made and read by rdiff-backup 2.2.7 (installed from PyPI in its own venv)."""
    exe = _rdiff_backup(session)
    session.install(*TEST_TOOLS)
    _all_packages(session)
    session.run(
        "pytest",
        "-q",
        "-m",
        "interop",
        *session.posargs,
        env={"RDB_RDIFF_BACKUP": exe, "RDB_REQUIRE_REFERENCE": "1"},
        success_codes=[0, 5],
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with the peers (corpora from ../shared/bench/corpus.sh)."""
    exe = _rdiff_backup(session)
    session.install("pytest", "pytest-benchmark")
    _all_packages(session)
    session.run("python", "benchmarks/run.py", *session.posargs, env={"RDB_RDIFF_BACKUP": exe})
