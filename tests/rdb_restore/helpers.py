"""Helpers of the rdb-restore tests: run the command, find files in a repository."""

from __future__ import annotations

import gzip
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_restore(
    *args: str | int | os.PathLike[str], input_: bytes | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[bytes]:
    """``python -m rdb_restore ARGS`` in a subprocess (bytes output)."""
    return subprocess.run(
        [sys.executable, "-m", "rdb_restore", *map(str, args)],
        capture_output=True,
        input=input_,
        env={**os.environ, "TZ": "UTC"},
        timeout=timeout,
        check=False,
    )


def increments(repo: Path, suffix: str) -> list[Path]:
    """Increment files under ``increments/`` whose name ends in ``suffix``, sorted."""
    return sorted((repo / "rdiff-backup-data" / "increments").rglob(f"*{suffix}"))


def metadata_snapshot(repo: Path) -> Path:
    return next((repo / "rdiff-backup-data").glob("mirror_metadata.*.snapshot.gz"))


def rewrite_gzip(path: Path, data: bytes) -> None:
    with gzip.open(path, "wb") as out:
        out.write(data)


def take_way(monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    """Make in-process restores take ``way``: "copied" (files copied from the mirror as they
    are, the default) or "rebuilt" (every file through the general rebuild path)."""
    if way == "rebuilt":
        monkeypatch.setattr(
            importlib.import_module("rdb_restore.restore"), "_plain_copy", lambda *_: None
        )
