"""Scripted rdb-mirror runs (--json, --quiet, piped) never load rich, pydantic or typer's rich
help: the fixed cost every backup pays (benchmarks/bench_startup.py) stays small."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

Imports = Callable[[str, list[str]], tuple[int, list[str]]]


@pytest.mark.parametrize("flags", [["--json"], ["--quiet"], []], ids=["json", "quiet", "piped"])
def test_backups_import_no_rich(flags: list[str], tmp_path: Path, heavy_imports: Imports) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "a.txt").write_bytes(b"one\n")
    for n, when in enumerate(("1700000000", "1700003600")):
        (src / "b.txt").write_bytes(b"version %d\n" % n)
        os.utime(src / "b.txt", (int(when) - 60, int(when) - 60))  # changed by stat too
        status, heavy = heavy_imports(
            "rdb_mirror.cli", [*flags, "--current-time", when, str(src), str(repo)]
        )
        assert (status, heavy) == (0, [])
    assert (repo / "b.txt").read_bytes() == b"version 1\n"


def test_help_still_imports_the_rich_help(heavy_imports: Imports) -> None:
    assert heavy_imports("rdb_mirror.cli", ["--help"]) == (0, ["rich", "typer.rich_utils"])
