"""One measured child process: wall time, CPU time and peak RSS (the benchmark scripts' ``run``).

The command runs as a child of its own (``subprocess``, stdin and stdout on /dev/null unless
told otherwise). Wall time is taken around spawn + ``os.wait4``; CPU time (user + system) and
peak RSS come from the rusage ``wait4`` returns: Linux reports the maximum over the child and
the descendants it waited for, so a tool's forked helpers count (rsync's receiver). ru_maxrss
also includes the high-water RSS of the address space the child was spawned from (subprocess
uses vfork), so it is a floor of about this script's own RSS: small for these scripts;
bench_rdiff, whose parent is big, reads the RSS from ``/usr/bin/time`` instead.

Before the clock starts, ``os.sync()`` writes back every dirty page on the machine (``settle``,
on by default): otherwise a command that syncs its file system before it ends (rdb-mirror's
commit) paid for the writeback of whatever ran before it, another tool's destination or a
``cp -a`` of a base repository. Measured on the benchmark machine: a small-corpus incremental
took 0.59 s after ``sync``, 0.82 s right after a ``cp -a`` that left 170 MB dirty (whose
writeback its ``syncfs`` then waited for). A tool that does not sync is not charged its own
writeback either way.

stderr goes to a temporary file (no pipe to fill while nobody reads it): it is the message of
:class:`ChildFailed` when ``check`` is set and the command exits non-zero.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Measure:
    wall: float  # seconds from spawn to reaped
    user: float  # CPU seconds of the child and its waited-for descendants
    system: float
    rss_kib: int  # ru_maxrss (KiB on Linux)
    status: int  # exit code; -N when killed by signal N

    @property
    def cpu(self) -> float:
        """User + system seconds."""
        return self.user + self.system

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024


class ChildFailed(RuntimeError):
    """A measured command exited non-zero (with ``check``)."""


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    check: bool = True,
    settle: bool = True,
) -> Measure:
    """Run ``argv`` to completion and measure it. ``stdout=None`` inherits ours. The child is
    killed if we are interrupted while waiting (it is not left running unmeasured)."""
    if settle:
        os.sync()
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
        if check and proc.returncode != 0:
            err.seek(0)
            message = err.read().decode(errors="replace").strip()
            raise ChildFailed(f"{' '.join(argv)} exited {proc.returncode}: {message}")
    return Measure(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss, proc.returncode)
