"""Directory listings read ahead of the walk on the pool (rdb_mirror.scan_ahead)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rdb_fastio import scan_directory
from rdb_mirror import scan_ahead
from rdb_mirror import session as mirror
from rdb_mirror.fsmeta import Capabilities
from rdb_mirror.scan_ahead import AHEAD, PENDING, ScanAhead
from rdb_mirror.selection import Selection
from rdb_mirror.source import IncludeAll, SourceOptions
from rdb_mirror.stepped_source import SteppedSource


def _record_listings(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    listed: list[bytes] = []
    lock = threading.Lock()

    def scan(path: bytes, *, xattrs: bool) -> object:
        with lock:
            listed.append(path)
        return scan_directory(path, xattrs=xattrs)

    monkeypatch.setattr(scan_ahead, "scan_directory", scan)
    return listed


def test_excluded_directories_are_never_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading ahead lists only what the walk enters: an excluded directory (another file
    system, an automount point) is not even opened."""
    src, repo = tmp_path / "src", tmp_path / "repo"
    for name in ("a", "b", "skip", "c", "d", "e"):
        (src / name / "inner").mkdir(parents=True)
        (src / name / "inner" / "f").write_bytes(name.encode())
    listed = _record_listings(monkeypatch)
    selection = Selection.from_options([("--exclude", str(src / "skip"))], root=str(src))
    options = mirror.BackupOptions(current_time=1_700_000_000, selection=selection)
    result = mirror.backup(src, repo, options)
    assert result.errors == []
    assert not [p for p in listed if b"/skip" in p]
    assert sorted(listed) == sorted(
        [bytes(src)]
        + [bytes(src / n) for n in ("a", "b", "c", "d", "e")]
        + [bytes(src / n / "inner") for n in ("a", "b", "c", "d", "e")]
    )  # each entered directory listed once
    assert (repo / "e" / "inner" / "f").read_bytes() == b"e"
    assert not (repo / "skip").exists()


def test_listings_ahead_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()

    def held_scan(path: bytes, *, xattrs: bool) -> object:
        gate.wait()  # nothing is listed until the gate opens
        return scan_directory(path, xattrs=xattrs)

    monkeypatch.setattr(scan_ahead, "scan_directory", held_scan)
    ahead = ScanAhead(xattrs=False)
    paths = []
    for n in range(PENDING * 2):
        (tmp_path / f"d{n}").mkdir()
        paths.append(bytes(tmp_path / f"d{n}"))
    try:
        ahead.ahead(paths)
        assert len(ahead._jobs) == AHEAD  # the next few of one level
        for n in range(0, len(paths), AHEAD):
            ahead.ahead(paths[n:])
        assert len(ahead._jobs) == PENDING  # and a bounded number in all
    finally:
        gate.set()
    assert [name for name, *_ in ahead.listing(paths[0])] == []
    ahead.forget(paths)
    assert ahead._jobs == {}
    ahead.close()


def test_the_walk_never_waits_for_the_source_pool(tmp_path: Path) -> None:
    """The source side's pool jobs can wait for the walk's thread (read batches wait for room
    in the repository side's inbox): a walk waiting for a listing queued behind them would
    wait forever. Its listings have a thread of their own."""
    for name in ("a", "b", "c", "d", "e", "f"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "file").write_bytes(b"x")
    options = SourceOptions(
        root=bytes(tmp_path), selection=IncludeAll(), capabilities=Capabilities(False, False)
    )
    source = SteppedSource(options)
    gate = threading.Event()
    for _ in range(options.workers * 2):
        source.pool.submit(gate.wait)  # every pool thread busy, more queued
    walked: list[object] = []
    walker = threading.Thread(target=lambda: walked.extend(source._entries or ()), daemon=True)
    walker.start()
    walker.join(30)
    gate.set()
    assert not walker.is_alive(), "the walk waited for the source pool"
    assert len(walked) == 1 + 6 * 3  # the root, and each directory, subdirectory and file
    source.pool.shutdown()
