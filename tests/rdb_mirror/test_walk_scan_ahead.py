"""The walk's directories scanned ahead (rdb_fastio.ScanAhead, rdb_mirror.source.walk): the
walk sends the same entries and problems, in the same order, whether its listings come from
the thread or from its own scans; a directory the selection excludes is never submitted (nor
explored: the thread goes down on its own only when everything is included); and however the
walk ends (done, left early, the session failing, a remote source's connection lost) its
thread is stopped."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from rdb_fastio import ScanAhead, ScanEntry, scan_ahead_threads, scan_directory
from rdb_format.errors import ProtocolError
from rdb_mirror import source
from rdb_mirror.fsmeta import Index, probe
from rdb_mirror.protocol import Credit, Entry, Problem, RepositoryMessage, SourceMessage
from rdb_mirror.selection import Selection
from rdb_mirror.source import Batcher, IncludeAll, SourceOptions, run_source, walk
from rdb_mirror.stepped_source import SteppedSource


class _Never:
    """No directory scanned ahead: the walk lists each one itself, as before."""

    capacity = 256

    def __init__(self, *, xattrs: bool, **_: Any) -> None:
        self.xattrs = xattrs

    def submit(self, paths: list[bytes]) -> int:
        return 0

    def listing(self, path: bytes) -> tuple[Iterable[ScanEntry], bool]:
        return scan_directory(path, xattrs=self.xattrs), False

    def close(self) -> None:
        pass


class _Eager(ScanAhead):
    """Every directory taken from the thread (each listing waits until the thread has
    scanned all it may): the walk's other path. Records what was submitted and explored."""

    made: ClassVar[list[_Eager]] = []

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.explore = options.get("explore")
        self.submitted: list[bytes] = []
        self.last: dict[str, int] = {}
        _Eager.made.append(self)

    def submit(self, paths: list[bytes]) -> int:
        self.submitted += paths
        return super().submit(paths)

    def listing(self, path: bytes) -> tuple[Iterable[ScanEntry], bool]:
        deadline = time.monotonic() + 60  # (a wait for the thread, not a timing)
        while time.monotonic() < deadline:
            stats = self.stats()
            if not stats["running"] or stats["idle"]:
                break
            time.sleep(0.001)
        return super().listing(path)

    def close(self) -> None:
        if not self.closed:
            self.last = self.stats()
        super().close()


class _Record:
    def __init__(self) -> None:
        self.messages: list[SourceMessage] = []

    def send(self, message: SourceMessage) -> None:
        self.messages.append(message)


def _walked(root: Path, selection: source.Selection) -> list[object]:
    """What the walk sends, in order (each run reads the directories, which may change their
    access times: those are left out, and so are modification times, which the vanishing
    directory's parent changes; the stat fields are rdb_fastio's tests' business)."""
    record = _Record()
    batcher = Batcher(record, size=1)
    options = SourceOptions(os.fsencode(root), selection, probe(os.fsencode(root)))
    for entry in walk(options, batcher):
        batcher.send(entry)
    batcher.flush()
    return [
        (m.index, m.record.type, m.record.size, m.record.sym_data, m.eas, m.acl, m.unlisted)
        if isinstance(m, Entry)
        else m
        for m in record.messages
    ]


def _tree(root: Path) -> None:
    for d in ("a/b/c", "a/keep", "a-x/skipme/deep", "a.y", "k/inc", "k/other", "z"):
        (root / d).mkdir(parents=True, exist_ok=True)
        for name in ("file", "inc.txt", "other.txt"):
            (root / d / name).write_bytes(d.encode())
    (root / "a" / "link").symlink_to("b")
    (root / "rdiff-backup-data").mkdir()  # the repository's own: never walked
    (root / "rdiff-backup-data" / "x").mkdir()


class _Vanishing:
    """Includes everything; deciding directory ``vanish`` removes it first (it vanishes
    between its parent's listing and its own)."""

    def decide(self, index: Index, path: bytes, st: os.stat_result) -> bool | None:
        if index[-1] == b"vanish":
            shutil.rmtree(path, ignore_errors=True)
        return True


@pytest.mark.parametrize(
    "options",
    [
        None,
        [("--exclude", "**/skipme")],
        [("--include", "**/inc.txt"), ("--exclude", "**")],  # directories "scanned" only
        [("--include", "**/keep"), ("--exclude", "**/a/*")],
        "vanishing",
    ],
)
def test_the_same_walk_with_or_without_scans_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: Any
) -> None:
    root = tmp_path / "src"
    _tree(root)
    runs = []
    for ahead in (_Never, _Eager, ScanAhead):
        if options == "vanishing":
            (root / "a" / "vanish" / "below").mkdir(parents=True, exist_ok=True)
            selection: source.Selection = _Vanishing()
        elif options is None:
            selection = IncludeAll()
        else:
            selection = Selection.from_options(options, root=os.fsencode(root))
        monkeypatch.setattr(source, "ScanAhead", ahead)
        _Eager.made.clear()
        runs.append(_walked(root, selection))
        if ahead is _Eager:
            (made,) = _Eager.made
            stats = made.last
            assert stats["ready"] > 0 and stats["unstarted"] == stats["unfinished"] == 0
    assert runs[0] == runs[1] == runs[2]
    if options == "vanishing":
        problems = [m for m in runs[0] if isinstance(m, Problem)]
        assert [(p.index, p.message) for p in problems] == [
            ((b"a", b"vanish"), "cannot list: No such file or directory")
        ]


def test_an_excluded_directory_is_never_submitted_nor_explored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "src"
    _tree(root)
    monkeypatch.setattr(source, "ScanAhead", _Eager)
    _Eager.made.clear()
    selection = Selection.from_options([("--exclude", "**/skipme")], root=os.fsencode(root))
    _walked(root, selection)
    (made,) = _Eager.made
    assert made.explore is None  # the thread goes down only into what it is given
    assert not [p for p in made.submitted if b"skipme" in p or b"rdiff-backup-data" in p]
    assert os.fsencode(root / "a" / "b" / "c") in made.submitted
    _Eager.made.clear()
    _walked(root, IncludeAll())
    (made,) = _Eager.made
    assert made.explore == os.fsencode(root / "rdiff-backup-data")
    assert made.last["explored"] > 0


def _forty_directories(root: Path) -> SourceOptions:
    """A walk of forty directories (each with one below it) with a window of ten entries."""
    for n in range(40):
        (root / f"d{n:02}" / "e").mkdir(parents=True)
    return SourceOptions(os.fsencode(root), IncludeAll(), probe(os.fsencode(root)), window=10)


def test_a_walk_left_early_stops_its_thread(tmp_path: Path) -> None:
    options = _forty_directories(tmp_path)
    before = scan_ahead_threads()
    entries = walk(options, Batcher(_Record()))
    for _ in range(5):
        next(entries)
    assert scan_ahead_threads() == before + 1
    entries.close()
    assert scan_ahead_threads() == before


def test_a_failed_session_stops_its_walk_s_thread(tmp_path: Path) -> None:
    options = _forty_directories(tmp_path)
    before = scan_ahead_threads()
    stepped = SteppedSource(options)
    stepped.receive()  # a batch walked: the thread runs
    assert scan_ahead_threads() == before + 1
    stepped.close(failed=True)  # the repository side failed: the walk is left
    assert scan_ahead_threads() == before


class _LostConnection:
    """A remote source's connection: credit for a few entries, then gone."""

    def __init__(self) -> None:
        self.sent = False

    def receive(self) -> RepositoryMessage:
        if not self.sent:
            self.sent = True
            return Credit(20)
        time.sleep(0.05)
        raise ProtocolError("connection lost")


def test_a_remote_source_s_lost_connection_stops_its_walk_s_thread(tmp_path: Path) -> None:
    options = _forty_directories(tmp_path)
    before = scan_ahead_threads()
    with pytest.raises(ProtocolError):
        run_source(options, _LostConnection(), _Record())
    assert scan_ahead_threads() == before
