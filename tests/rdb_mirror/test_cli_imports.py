"""Scripted rdb-mirror runs (--json, --quiet, piped) never load rich, pydantic or typer's rich
help: the fixed cost every backup pays (benchmarks/bench_startup.py) stays small."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

Imports = Callable[[str, list[str]], tuple[int, list[str]]]
LazyImports = Callable[[str, list[str], list[str]], tuple[int, list[str]]]


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


def test_a_local_backup_loads_no_transport(tmp_path: Path, lazy_imports: LazyImports) -> None:
    """The ssh transport (rdb_remote, rdb_mirror.remote and its codec) and json are imported
    only by the runs that use them: a local backup of a tree does not pay for them."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "a.txt").write_bytes(b"one\n")
    lazy = ["rdb_remote", "rdb_mirror.remote", "json"]
    for when in ("1700000000", "1700003600"):  # a first backup, then one with nothing new
        argv = ["--current-time", when, str(src), str(repo)]
        assert lazy_imports("rdb_mirror.cli", argv, lazy) == (0, [])
    assert lazy_imports("rdb_mirror.cli", ["--json", "--regress", str(repo)], lazy) == (0, ["json"])
    import rdb_mirror.protocol as protocol
    from rdb_mirror.protocol import CODEC  # built on first use, then a plain attribute

    assert protocol.CODEC is CODEC
    assert CODEC.decode(CODEC.encode(protocol.Credit(3))) == protocol.Credit(3)


def test_the_timeout_default_is_the_transports() -> None:
    """rdb_mirror.cli spells --timeout's default itself (importing rdb_remote for it would
    cost every local run); it must stay the transport's."""
    from rdb_mirror import cli
    from rdb_remote.connection import DEFAULT_TIMEOUT

    assert cli.DEFAULT_TIMEOUT == DEFAULT_TIMEOUT


def test_typer_reads_no_string_annotations() -> None:
    from tests.conftest import string_annotations

    from rdb_mirror import cli

    assert string_annotations(cli.app) == []
