"""The source side's readers when a file changes between the walk and its read: the batched
one in C (rdb_fastio) and the general one (rdb_mirror.source.serve) answer at once
that it changed, without waiting on a FIFO put at its path or reading on a file that grows."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from rdb_fastio import SmallRead, read_small_files
from rdb_mirror import source
from rdb_mirror.fsmeta import probe
from rdb_mirror.protocol import (
    Content,
    ContentFailed,
    ContentRequest,
    SourceMessage,
    StatKey,
    stat_key,
)
from rdb_mirror.source import IncludeAll, SourceOptions


def _served(root: Path, request: ContentRequest, *, local_copy: bool) -> list[SourceMessage]:
    """What :func:`rdb_mirror.source.serve` sends for ``request``."""
    options = SourceOptions(
        root=os.fsencode(root),
        selection=IncludeAll(),
        capabilities=probe(os.fsencode(root)),
        workers=1,
        window=0,
        local_copy=local_copy,
    )
    sent: list[SourceMessage] = []

    class Collect:
        send = staticmethod(sent.append)

    source.serve(options, request, Collect())
    return sent


@pytest.mark.parametrize("local_copy", [True, False], ids=["local", "remote"])
def test_a_small_file_that_grows_once_opened_is_failed_without_reading_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_copy: bool
) -> None:
    """Listed small, grown by 8 MiB once opened (a log being written, a download): the answer
    is "changed while being read" at once. Reading on to its end would be for nothing, and
    never end while the writer outpaces the reader."""
    log = tmp_path / "log"
    log.write_bytes(b"first line\n")
    request = ContentRequest(3, (b"log",), stat_key(os.lstat(log)))
    opened = source._open_checked

    def open_then_grow(*args: object) -> object:
        result = opened(*args)  # type: ignore[arg-type]
        with open(log, "ab") as appending:
            appending.write(b"\0" * (8 << 20))
        return result

    monkeypatch.setattr(source, "_open_checked", open_then_grow)
    sent = _served(tmp_path, request, local_copy=local_copy)
    assert sent == [ContentFailed(3, "changed while being read; not updated")]


def _swapped(tmp_path: Path) -> tuple[Path, StatKey]:
    """A regular file's stat key as the walk saw it, and a FIFO now at its path."""
    path = tmp_path / "f"
    path.write_bytes(b"listed as a file\n")
    key = stat_key(os.lstat(path))
    path.unlink()
    os.mkfifo(path)
    return path, key


def _within(seconds: float, fifo: Path, call: Callable[[], None]) -> bool:
    """Run ``call`` on a thread; whether it ended in time (if not, a writer opening the FIFO
    releases it, so the test fails instead of hanging)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    ended = not thread.is_alive()
    if not ended:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
    return ended


def test_the_batched_reader_does_not_wait_on_a_fifo(tmp_path: Path) -> None:
    fifo, key = _swapped(tmp_path)
    results: list[list[SmallRead]] = []

    def read() -> None:
        results.append(read_small_files([os.fsencode(fifo)], [key], noatime=False))

    assert _within(10, fifo, read), "read_small_files waits for a writer of the FIFO"
    assert results == [[SmallRead(None, None)]]


def test_the_general_reader_does_not_wait_on_a_fifo(tmp_path: Path) -> None:
    fifo, key = _swapped(tmp_path)
    sent: list[SourceMessage] = []

    def serve() -> None:
        sent.extend(_served(tmp_path, ContentRequest(5, (b"f",), key), local_copy=True))

    assert _within(10, fifo, serve), "serve waits for a writer of the FIFO"
    assert sent == [ContentFailed(5, "changed since it was listed; not updated")]


@pytest.mark.skipif(os.geteuid() != 0, reason="O_NOATIME needs the file's owner or root")
def test_reading_as_root_leaves_the_access_time_alone(tmp_path: Path) -> None:
    """As root, both readers open with O_NOATIME, and clearing O_NONBLOCK keeps it: a backup
    does not change the source's access times (relatime would: this one is years old)."""
    old_atime = 1_000_000_000_000_000_000
    for name in ("batched", "general"):
        path = tmp_path / name
        path.write_bytes(b"data\n")
        os.utime(path, ns=(old_atime, 1_600_000_000_000_000_000))
    batched = tmp_path / "batched"
    (read,) = read_small_files([os.fsencode(batched)], [stat_key(os.lstat(batched))], noatime=True)
    assert read.data == b"data\n"
    request = ContentRequest(1, (b"general",), stat_key(os.lstat(tmp_path / "general")))
    assert [type(m) for m in _served(tmp_path, request, local_copy=True)] == [Content]
    assert os.lstat(batched).st_atime_ns == old_atime
    assert os.lstat(tmp_path / "general").st_atime_ns == old_atime
