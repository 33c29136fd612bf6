"""Scripted rdb-increment runs (--json, piped) never load rich, pydantic or typer's rich help:
the fixed cost every run pays (benchmarks/bench_startup.py) stays small."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rdb_mirror.session import BackupOptions, backup  # a test dependency (noxfile TEST_ONLY)

Imports = Callable[[str, list[str]], tuple[int, list[str]]]
LazyImports = Callable[[str, list[str], list[str]], tuple[int, list[str]]]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    for n, when in enumerate((1_700_000_000, 1_700_003_600, 1_700_007_200)):
        (src / "a.txt").write_bytes(b"version %d\n" % n)
        backup(src, repo, BackupOptions(current_time=when))
    return repo


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--json", "{repo}"],
        ["list", "{repo}"],
        ["list", "--size", "{repo}"],
        ["list", "{repo}", "a.txt"],
        ["remove", "--older-than", "2B", "--dry-run", "--json", "{repo}"],
    ],
)
def test_scripted_runs_import_no_rich(argv: list[str], repo: Path, heavy_imports: Imports) -> None:
    status, heavy = heavy_imports("rdb_increment.cli", [a.format(repo=repo) for a in argv])
    assert (status, heavy) == (0, [])


@pytest.mark.parametrize("argv", [["list", "{repo}"], ["list", "--size", "{repo}", "a.txt"]])
def test_listing_loads_no_writer(argv: list[str], repo: Path, lazy_imports: LazyImports) -> None:
    """Listing increments reads names and sizes: the increment writer (and the C copier,
    thread pool and hashing it brings), session statistics, the lock's random tokens and
    json (without --json) are not imported for it."""
    lazy = [
        "rdb_increment.writer",
        "rdb_fastio",
        "concurrent.futures",
        "rdb_format.statistics",
        "secrets",
        "json",
    ]
    status, loaded = lazy_imports("rdb_increment.cli", [a.format(repo=repo) for a in argv], lazy)
    assert (status, loaded) == (0, [])


def test_typer_reads_no_string_annotations() -> None:
    from tests.conftest import string_annotations

    from rdb_increment import cli

    assert string_annotations(cli.app) == []
