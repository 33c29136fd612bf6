"""The small-job thread pool."""

from __future__ import annotations

import threading
import time

import pytest

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


def test_work_run_here_is_a_finished_job_and_ctrl_c_stops_at_once() -> None:
    """A job run on the calling thread keeps its result or error for later, like a pool's;
    but a Ctrl-C raised in it stops the caller now instead of waiting in the job."""
    pool = Workers(1, "test")
    done = pool.run_here(pow, 3, 2)
    failed = pool.run_here(int, "not a number")
    assert done.done() and done.result() == 9
    with pytest.raises(ValueError, match="invalid literal"):
        failed.result()

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pool.run_here(interrupted)
    pool.shutdown()
