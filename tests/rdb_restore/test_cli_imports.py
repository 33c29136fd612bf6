"""Scripted rdb-restore runs (--json, --quiet, piped) never load rich, pydantic or typer's rich
help: the fixed cost every run pays (benchmarks/bench_startup.py) stays small."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.rdb_restore.conftest import MirrorRepo

Imports = Callable[[str, list[str]], tuple[int, list[str]]]
LazyImports = Callable[[str, list[str], list[str]], tuple[int, list[str]]]


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--json", "{repo}"],
        ["list", "{repo}"],
        ["list", "files", "--json", "{repo}"],
        ["list", "changed", "--since", "2B", "{repo}"],
        ["verify", "--json", "{repo}"],
        ["verify", "{repo}"],
        ["--json", "{repo}", "{tmp}/json"],
        ["{repo}", "{tmp}/plain"],
        ["--quiet", "{repo}", "{tmp}/quiet"],
    ],
)
def test_scripted_runs_import_no_rich(
    argv: list[str], mirror_repo: MirrorRepo, tmp_path: Path, heavy_imports: Imports
) -> None:
    args = [a.format(repo=mirror_repo.path, tmp=tmp_path) for a in argv]
    status, heavy = heavy_imports("rdb_restore.cli", args)
    assert status == 0
    assert heavy == []


def test_help_and_usage_errors_still_work(heavy_imports: Imports) -> None:
    assert heavy_imports("rdb_restore.cli", ["--help"]) == (0, ["rich", "typer.rich_utils"])
    assert heavy_imports("rdb_restore.cli", ["list"])[0] == 2


@pytest.mark.parametrize(
    ("argv", "lazy"),
    [
        (["{repo}", "{tmp}/plain"], ["rdb_format.statistics", "rdb_remote", "json"]),
        (
            ["list", "{repo}"],
            ["rdb_increment.writer", "rdb_format.statistics", "rdb_remote", "secrets", "json"],
        ),
    ],
    ids=["restore", "list"],
)
def test_what_a_command_does_not_need_is_not_loaded(
    argv: list[str],
    lazy: list[str],
    mirror_repo: MirrorRepo,
    tmp_path: Path,
    lazy_imports: LazyImports,
) -> None:
    """A restore's summary line and 'list' print sizes without loading session statistics;
    neither loads the ssh transport, nor json without --json, nor ('list') the increment
    writer."""
    args = [a.format(repo=mirror_repo.path, tmp=tmp_path) for a in argv]
    assert lazy_imports("rdb_restore.cli", args, lazy) == (0, [])


def test_typer_reads_no_string_annotations() -> None:
    from tests.conftest import string_annotations

    from rdb_restore import cli

    assert string_annotations(cli.app) == []
