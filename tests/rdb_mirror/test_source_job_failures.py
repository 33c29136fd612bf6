"""A source-side pool job that fails unexpectedly (a bug, not a file's problem) answers its
requests failed, so the backup ends with those files reported and not updated, and every
other file backed up, instead of waiting forever for answers that never come."""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.rdb_mirror.helpers import session_time

from rdb_mirror import BackupOptions, BackupResult, backup, source, stepped_source


def _backup_within(src: Path, repo: Path, seconds: float = 60) -> BackupResult:
    results: list[BackupResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(backup(src, repo, BackupOptions(current_time=session_time(1))))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the backup hung"
    if errors:
        raise errors[0]
    return results[0]


def _tree(src: Path) -> None:
    src.mkdir()
    for n in range(40):
        (src / f"small-{n:02}").write_bytes(b"%d\n" % n)
    (src / "big").write_bytes(os.urandom(3 << 20))


def _broken(*_: object, **__: object) -> object:
    raise RuntimeError("a bug")


@pytest.mark.parametrize("where", ["batched read", "general read"])
def test_a_failing_job_answers_its_requests_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _tree(src)
    target: tuple[object, str, Callable[..., object]] = (
        (stepped_source, "read_small_files", _broken)
        if where == "batched read"
        else (source, "serve", _broken)
    )
    monkeypatch.setattr(*target)
    result = _backup_within(src, repo)
    failed = [line for line in result.errors if "internal error (RuntimeError: a bug)" in line]
    assert failed
    in_mirror = {p.name for p in repo.iterdir() if p.name != "rdiff-backup-data"}
    for name in (p.name for p in src.iterdir()):  # each file backed up, or named as failed
        named = any(name in line for line in failed)
        assert (name in in_mirror) != named, name
    logs = list((repo / "rdiff-backup-data").glob("error_log.*"))
    text = b"".join(
        gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes() for p in logs
    )
    assert text.count(b"internal error (RuntimeError: a bug)") == len(failed)
