"""A thread pool for many tiny jobs: what a backup of small files submits per file.

``concurrent.futures.ThreadPoolExecutor`` builds a ``Future`` (a ``Condition`` with its own
lock), a work item and a semaphore round per job: about as much Python as writing a small
file costs. Here a job is a slotted object whose completion is one plain lock (held from
submission, released by the worker), and the queue is C-level (``queue.SimpleQueue``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Cancelled", "Job", "Workers"]

T = TypeVar("T")


class Cancelled(Exception):
    """The pool was shut down before the job ran."""


class Job(Generic[T]):
    """One submitted call; :meth:`result` waits for it (from any thread)."""

    __slots__ = ("_args", "_done", "_error", "_function", "_value")

    def __init__(self, function: Callable[..., T], args: tuple[object, ...]) -> None:
        self._function = function
        self._args = args
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def done(self) -> bool:
        return not self._done.locked()

    def result(self) -> T:
        """The call's value (waiting for it); raises what the call raised."""
        if self._done.locked():
            self._done.acquire()
            self._done.release()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def _run(self, cancelled: bool) -> None:
        try:
            if cancelled:
                raise Cancelled("the pool was shut down")
            self._value = self._function(*self._args)
        except BaseException as error:  # handed to whoever asks for the result
            self._error = error
        finally:
            self._function = None  # type: ignore[assignment]
            self._args = ()
            self._done.release()


class Workers:
    """``count`` threads running submitted jobs in submission order (FIFO start)."""

    def __init__(self, count: int, name: str) -> None:
        self._queue: queue.SimpleQueue[Job[object] | None] = queue.SimpleQueue()
        self._cancelled = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{n}", daemon=True)
            for n in range(max(1, count))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, function: Callable[..., T], *args: object) -> Job[T]:
        job: Job[T] = Job(function, args)
        self._queue.put(job)  # type: ignore[arg-type]
        return job

    def run_here(self, function: Callable[..., T], *args: object) -> Job[T]:
        """Run the call now on this thread, as a finished job: for work smaller than the
        hand-off to another thread (with two CPUs, a cross-CPU wake-up each way). Errors wait
        in the job as a pool's do, except a Ctrl-C (or exit), which stops the caller now."""
        job: Job[T] = Job(function, args)
        job._run(False)
        if isinstance(job._error, KeyboardInterrupt | SystemExit):
            raise job._error
        return job

    def cancel(self) -> None:
        """Jobs that have not started yet fail with :class:`Cancelled` instead of running."""
        self._cancelled = True

    def shutdown(self, *, cancel: bool = False) -> None:
        """Wait for the threads to end, after every queued job (``cancel``: see
        :meth:`cancel`)."""
        if cancel:
            self.cancel()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        get = self._queue.get
        while True:
            job = get()
            if job is None:
                return
            job._run(self._cancelled)
