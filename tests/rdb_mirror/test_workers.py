"""The small-job thread pool and the in-process channel of a backup's two halves."""

from __future__ import annotations

import threading
import time

import pytest

from rdb_mirror.protocol import QueueChannel
from rdb_mirror.workers import Cancelled, Workers


def test_jobs_run_and_report_their_results_and_errors() -> None:
    pool = Workers(3, "test")
    jobs = [pool.submit(pow, n, 2) for n in range(100)]
    failing = pool.submit(int, "not a number")
    assert [job.result() for job in jobs] == [n * n for n in range(100)]
    with pytest.raises(ValueError, match="invalid literal"):
        failing.result()
    assert failing.done()
    pool.shutdown()


def test_a_job_may_wait_for_an_earlier_one() -> None:
    pool = Workers(2, "test")
    gate = threading.Event()
    first = pool.submit(lambda: "first" if gate.wait(5) else "timed out")
    second = pool.submit(lambda: first.result() + " then second")
    assert not second.done()
    gate.set()
    assert second.result() == "first then second"
    pool.shutdown()


def test_cancel_fails_the_jobs_not_started() -> None:
    pool = Workers(1, "test")
    gate, started = threading.Event(), threading.Event()

    def first() -> bool:
        started.set()
        return gate.wait(5)

    running = pool.submit(first)
    queued = [pool.submit(time.sleep, 0) for _ in range(5)]
    assert started.wait(5)
    pool.cancel()
    gate.set()
    pool.shutdown()
    assert running.result() is True
    for job in queued:
        with pytest.raises(Cancelled):
            job.result()


def test_a_bounded_channel_blocks_the_sender_when_full() -> None:
    channel: QueueChannel[int] = QueueChannel(maxsize=2)
    channel.send(1)
    channel.send(2)
    sent = threading.Event()

    def send_third() -> None:
        channel.send(3)
        sent.set()

    sender = threading.Thread(target=send_third)
    sender.start()
    assert not sent.wait(0.1)  # full: the third send waits
    assert channel.receive() == 1
    assert sent.wait(5)
    assert [channel.receive(), channel.receive()] == [2, 3]
    sender.join()
