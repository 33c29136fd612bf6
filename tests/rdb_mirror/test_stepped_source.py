"""The local source half run in steps on the repository side's thread (rdb_mirror.stepped_source):
answers come in order and complete, memory per step is bounded, and messages sent from other
threads wake a waiting ``receive``."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from pathlib import Path

from rdb_mirror import stepped_source
from rdb_mirror.fsmeta import probe
from rdb_mirror.protocol import (
    Batch,
    Content,
    ContentEnd,
    ContentRequest,
    Credit,
    Entry,
    Finish,
    LocalFile,
    SourceMessage,
    WalkDone,
    stat_key,
)
from rdb_mirror.source import IncludeAll, SourceOptions
from rdb_mirror.stepped_source import SteppedSource


def _options(root: Path, window: int) -> SourceOptions:
    return SourceOptions(
        root=os.fsencode(root),
        selection=IncludeAll(),
        capabilities=probe(os.fsencode(root)),
        workers=2,
        window=window,
        local_copy=True,
    )


def _request(root: Path, number: int, name: str) -> ContentRequest:
    return ContentRequest(number, (name.encode(),), stat_key(os.lstat(root / name)))


def _entries(message: SourceMessage) -> list[Entry]:
    if isinstance(message, Batch):
        return [m for m in message.messages if isinstance(m, Entry)]
    return [message] if isinstance(message, Entry) else []


def test_the_walk_goes_only_as_far_as_its_credit(tmp_path: Path) -> None:
    for i in range(300):
        (tmp_path / f"f{i:03}").write_bytes(b"x")
    source = SteppedSource(_options(tmp_path, window=200))
    try:
        walked: list[Entry] = []
        while len(walked) < 200:
            walked += _entries(source.receive())
        assert len(walked) == 200  # the root and 199 files: then it waits for credit
        source.send(Credit(200))
        done: WalkDone | None = None
        while done is None:
            message = source.receive()
            walked += _entries(message)
            if isinstance(message, WalkDone):
                done = message
        assert done == WalkDone(301, None)
        assert [e.index for e in walked[1:]] == [(f"f{i:03}".encode(),) for i in range(300)]
        source.send(Finish())
    finally:
        source.close()


def test_small_files_read_ahead_are_bounded(tmp_path: Path) -> None:
    """Requests for many files just under a chunk are read in batches on the pool; with a
    slow repository side the batches read ahead wait for room in the inbox, so the memory
    held stays a fraction of what was asked for."""
    size = 900 << 10
    count = 80  # 72 MiB in all
    for i in range(count):
        (tmp_path / f"f{i:02}").write_bytes(bytes([i]) * size)
    source = SteppedSource(_options(tmp_path, window=0))
    tracemalloc.start()
    try:
        for i in range(count):
            source.send(_request(tmp_path, i, f"f{i:02}"))
        answers: dict[int, bool] = {}
        while len(answers) < count:
            message = source.receive()
            assert isinstance(message, Content)
            answers[message.request] = message.data == bytes([message.request]) * size
            del message
            time.sleep(0.005)  # a slow repository side
        peak = tracemalloc.get_traced_memory()[1]
        source.send(Finish())
    finally:
        tracemalloc.stop()
        source.close()
    assert answers == dict.fromkeys(range(count), True)
    assert peak < count * size // 2, f"{peak >> 20} MiB held at once"


def test_a_large_file_is_answered_from_the_pool(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(os.urandom((1 << 20) + 7))
    source = SteppedSource(_options(tmp_path, window=0))
    try:
        source.send(_request(tmp_path, 0, "big"))
        first = source.receive()
        assert isinstance(first, LocalFile) and first.request == 0
        os.close(first.fd)
        end = source.receive()
        assert isinstance(end, ContentEnd) and end.size == (1 << 20) + 7
        source.send(Finish())
    finally:
        source.close()
    # every pooled message gave its token back
    assert source._pooled.tokens.qsize() == stepped_source.POOLED_MESSAGES


def test_a_request_from_another_thread_wakes_a_waiting_receive(tmp_path: Path) -> None:
    """The repository side's pool sends signatures and delta requests: a receive that waits
    (nothing to walk, nothing asked yet) must wake up and answer them."""
    (tmp_path / "f").write_bytes(b"content\n")
    source = SteppedSource(_options(tmp_path, window=0))
    request = _request(tmp_path, 7, "f")

    def later() -> None:
        time.sleep(0.2)
        source.send(request)

    sender = threading.Thread(target=later)
    sender.start()
    try:
        answer = source.receive()
        assert isinstance(answer, Content)
        assert (answer.request, answer.data) == (7, b"content\n")
        source.send(Finish())
    finally:
        sender.join()
        source.close()


def test_closing_after_a_failure_does_not_wait_for_answers_nobody_takes(tmp_path: Path) -> None:
    """The repository side failed with many large files asked for: the pool's answers fill
    the inbox's budget and wait for room. Closing drops them (closing their descriptors)
    instead of waiting forever."""
    count = 3 * stepped_source.POOLED_MESSAGES
    for i in range(count):
        (tmp_path / f"big{i:02}").write_bytes(b"\0" * ((1 << 20) + i))
    source = SteppedSource(_options(tmp_path, window=0))
    for i in range(count):
        source.send(_request(tmp_path, i, f"big{i:02}"))
    assert isinstance(source.receive(), LocalFile | ContentEnd)  # the pool answers
    deadline = time.monotonic() + 30
    while source._pooled.tokens.qsize() and time.monotonic() < deadline:
        time.sleep(0.01)  # until the pool's answers have used the whole budget
    assert source._pooled.tokens.qsize() == 0
    fds_before = len(os.listdir("/proc/self/fd"))
    closer = threading.Thread(target=lambda: source.close(failed=True))
    closer.start()
    closer.join(timeout=30)
    assert not closer.is_alive(), "close() waits for answers that nobody will receive"
    assert len(os.listdir("/proc/self/fd")) <= fds_before
