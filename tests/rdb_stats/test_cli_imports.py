"""rdb-stats --json and --csv never load rich (only the tables need it) nor pydantic: the
fixed cost every run pays (benchmarks/bench_startup.py) stays small."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.rdb_stats.conftest import Synthetic

Imports = Callable[[str, list[str]], tuple[int, list[str]]]
LazyImports = Callable[[str, list[str], list[str]], tuple[int, list[str]]]


@pytest.mark.parametrize("flags", [["--json"], ["--csv"], ["--json", "--no-files", "-q"]])
def test_scripted_runs_import_no_rich(
    flags: list[str], full_repo: Synthetic, heavy_imports: Imports
) -> None:
    status, heavy = heavy_imports("rdb_stats.cli", [*flags, str(full_repo.root)])
    assert status in (0, 3)  # the synthetic repository has logged errors
    assert heavy == []


def test_tables_still_use_rich(full_repo: Synthetic, heavy_imports: Imports) -> None:
    status, heavy = heavy_imports("rdb_stats.cli", [str(full_repo.root)])
    assert status in (0, 3)
    assert heavy == ["rich"]


def test_json_and_csv_only_when_asked(full_repo: Synthetic, lazy_imports: LazyImports) -> None:
    lazy = ["json", "rdb_stats.export", "csv", "rdb_remote"]
    status, loaded = lazy_imports("rdb_stats.cli", [str(full_repo.root)], lazy)
    assert status in (0, 3)
    assert loaded == []
    status, loaded = lazy_imports("rdb_stats.cli", ["--json", str(full_repo.root)], ["json"])
    assert (status in (0, 3), loaded) == (True, ["json"])


def test_typer_reads_no_string_annotations() -> None:
    from tests.conftest import string_annotations

    from rdb_stats import cli

    assert string_annotations(cli.app) == []
