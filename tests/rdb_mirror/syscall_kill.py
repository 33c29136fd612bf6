"""SIGKILL a command at one system call that changes the disk, chosen by strace's fault
injection (``strace -f -e inject=NAME:signal=KILL:when=N``).

strace counts ``when=N`` per tracee (thread) *and per system call*: the N-th ``rename`` of
whichever thread gets there first is the one that kills. So a kill point is one system call
name and N, and a run injects only that one name. :func:`kill_points` finds every point from
a dry run that logs the calls with their thread ids: for each thread's N-th call of a name
that changes the disk, (name, N) is a point. A worker thread's N-th call is only killed when
it comes before any other thread's N-th call of that name; :func:`run_killed` reports which
call it really was, so a sweep can say how many of the dry run's calls it hit.

The second way, ``LIBC``: an LD_PRELOAD shim (``killshim.c``, compiled with the system's C
compiler) counts the C-library calls that change the disk over all threads together and
kills on entry to the N-th one, so worker threads' calls are hit as often as their share.

Only calls that change something count: ``openat`` with a write flag, ``write`` to a file
(not a pipe, socket or terminal), and the renames, links, removals, syncs, truncations,
attribute, owner, time and xattr changes in ``MUTATING``. The call is killed on entry, so it
never happens; "killed just after call K" is "killed before the next one".
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

#: The system calls that change a file system (x86-64 names; the tools call a subset).
MUTATING = (
    "openat",
    "creat",
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev2",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "rmdir",
    "fsync",
    "fdatasync",
    "syncfs",
    "sync",
    "sync_file_range",
    "ftruncate",
    "truncate",
    "fallocate",
    "copy_file_range",
    "sendfile",
    "fchmod",
    "chmod",
    "fchmodat",
    "fchown",
    "lchown",
    "chown",
    "fchownat",
    "utimensat",
    "utime",
    "utimes",
    "futimesat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
)

#: What the sweep tests run: a sample by default, every point with ``RDB_CRASH_SWEEP=all``.
SWEEP_ALL = os.environ.get("RDB_CRASH_SWEEP") == "all"

_CALL = re.compile(r"^(\d+)\s+([a-z0-9_]+)\((.*)$")
_WRITE_OPEN = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")
#: ``-y`` shows a descriptor's file: a write to anything but a plain path changes no file.
_FD_TARGET = re.compile(r"^\d+<(.*?)>")
_END = re.compile(r"^\d+\s+\+\+\+ (exited|killed)")
#: Paths a call names: quoted arguments and descriptors shown by ``-y``.
_PATHS = re.compile(r'"((?:[^"\\]|\\.)*)"|(?<!AT_FDCWD)<(/[^>]*)>')


@dataclass(frozen=True, order=True)
class KillPoint:
    """The ``nth`` call of ``syscall`` in one thread; with ``path`` (relative to the
    repository), only calls naming that path (or a descriptor open on it) count: strace's
    ``-P``, which also limits injection, so a worker thread's call can be targeted."""

    syscall: str
    nth: int
    path: str = ""

    def __str__(self) -> str:
        where = f"@{self.path.replace('/', '|')}" if self.path else ""
        return f"{self.syscall}#{self.nth}{where}"


@dataclass(frozen=True)
class Killed:
    """How a run under injection ended: killed at ``call`` (strace's line for it), or not
    killed at all (``call`` empty): the point was not reached in this run."""

    returncode: int
    call: str
    stderr: str
    on_worker: bool = False  # the killed call was made by a thread other than the first

    @property
    def was_killed(self) -> bool:
        return self.returncode == -9


def _strace(log: Path, names: str, extra: list[str], argv: list[str]) -> list[str]:
    return [
        "strace",
        "-f",
        "-q",
        "-y",
        "-s",
        "64",
        "-o",
        str(log),
        "-e",
        f"trace={names}",
        *extra,
        *argv,
    ]


def _env() -> dict[str, str]:
    # no .pyc written by the interpreter: those would be kill points of no interest
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def _changes_disk(name: str, args: str) -> bool:
    if name == "openat":
        return bool(_WRITE_OPEN.search(args.split(")", 1)[0])) and "/proc/" not in args
    if name in (
        "write",
        "pwrite64",
        "writev",
        "pwritev",
        "pwritev2",
        "fsync",
        "fdatasync",
        "ftruncate",
    ):
        target = _FD_TARGET.match(args)
        return (
            target is not None
            and target.group(1).startswith("/")
            and not (target.group(1).startswith("/dev/"))
        )
    return True


def _calls(log: Path) -> tuple[int, list[tuple[int, str, str]]]:
    """The main thread's id, and (thread id, name, arguments) of every call started in an
    strace log, in order. The main thread (the thread-group leader) is the one whose end is
    reported last: the kernel reports it only once every other thread is gone."""
    out, main = [], 0
    for line in log.read_text(errors="replace").splitlines():
        found = _CALL.match(line)
        if found:
            out.append((int(found.group(1)), found.group(2), found.group(3)))
        elif _END.match(line):
            main = int(line.split()[0])
    return main, out


def module_command(module: str, *args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


@dataclass(frozen=True)
class DryRun:
    """Every kill point of a command, in the order the calls came (the first thread to make a
    point's call decides its place), and how many disk-changing calls each thread made."""

    points: list[KillPoint]
    main_calls: int
    worker_calls: int
    #: worker calls that name no stable path of their own (only a temporary name)
    untargeted: int = 0


def _stable_path(args: str, root: Path) -> str:
    """The first path the call names (strace 6.1's ``-P`` matches a rename or a link by its
    first path only), relative to ``root``; "" if it is a temporary name, outside ``root``,
    or a name strace had to escape."""
    for found in _PATHS.finditer(args):
        path: str = found.group(1) or found.group(2)
        if "\\" in path or "rdiff-backup.tmp." in path or not path.startswith(f"{root}/"):
            return ""
        return path[len(str(root)) + 1 :]
    return ""


#: KillPoint.syscall of the shim's points: the nth disk-changing C-library call of any thread.
LIBC = "libc"


@functools.cache
def shim_library() -> Path:
    """killshim.c compiled once per test run (into a directory removed when the run ends)."""
    directory = tempfile.mkdtemp(prefix="rdb-killshim-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    target = Path(directory) / "killshim.so"
    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    source = Path(__file__).with_name("killshim.c")
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(target), str(source), "-ldl"], check=True
    )
    return target


def _shim_env(count_file: Path, kill_at: int = 0) -> dict[str, str]:
    env = {**_env(), "LD_PRELOAD": str(shim_library()), "RDB_KILLSHIM_COUNT": str(count_file)}
    if kill_at:
        env["RDB_KILLSHIM_AT"] = str(kill_at)
    return env


def libc_points(argv: list[str], count_file: Path) -> DryRun:
    """Run ``argv`` once with the shim (it must succeed): one point per counted call."""
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=_shim_env(count_file), check=False, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    calls, others = map(int, count_file.read_text().split())
    return DryRun([KillPoint(LIBC, n) for n in range(1, calls + 1)], calls - others, others)


def kill_points(argv: list[str], log: Path, root: Path) -> DryRun:
    """Run ``argv`` once under strace (it must succeed) and find its kill points: (name, N)
    for each thread's N-th call, and for each call of another thread than the first that
    names a stable path below ``root`` (the repository), (name, N, that path)."""
    proc = subprocess.run(
        _strace(log, ",".join(MUTATING), [], argv),
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    seen: Counter[tuple[int, str]] = Counter()
    on_path: Counter[tuple[int, str, str]] = Counter()
    points: dict[KillPoint, None] = {}
    main, calls = _calls(log)
    by_thread: Counter[bool] = Counter()
    untargeted = 0
    for tid, name, args in calls:
        seen[tid, name] += 1
        paths = {_stable_path(args, root)} - {""}
        for path in paths:
            on_path[tid, name, path] += 1
        if not _changes_disk(name, args):
            continue
        points.setdefault(KillPoint(name, seen[tid, name]), None)
        worker = tid != main
        by_thread[worker] += 1
        if worker and paths:
            (path,) = paths
            points.setdefault(KillPoint(name, on_path[tid, name, path], path), None)
        untargeted += worker and not paths
    return DryRun(list(points), by_thread[False], by_thread[True], untargeted)


def run_killed(argv: list[str], point: KillPoint, log: Path, root: Path) -> Killed:
    """Run ``argv`` under strace (or with the shim), SIGKILLed at ``point`` (its path taken
    below ``root``)."""
    if point.syscall == LIBC:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=_shim_env(log, point.nth),
            check=False,
            timeout=600,
        )
        said = log.read_text() if log.exists() else ""
        return Killed(proc.returncode, f"libc call #{point.nth}", proc.stderr, said == "killed 1\n")
    only = ["-P", str(root / point.path)] if point.path else []
    inject = ["-e", f"inject={point.syscall}:signal=KILL:when={point.nth}"]
    proc = subprocess.run(
        _strace(log, point.syscall, [*only, *inject], argv),
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
        timeout=600,
    )
    call, on_worker = "", False
    if proc.returncode == -9:
        seen: Counter[int] = Counter()
        main, calls = _calls(log)
        for tid, _, args in calls:
            seen[tid] += 1
            if seen[tid] == point.nth:
                call, on_worker = f"{point.syscall}({args}", tid != main
                break
    return Killed(proc.returncode, call, proc.stderr, on_worker)


def spread(points: list[KillPoint], count: int | None) -> list[KillPoint]:
    """``count`` points spread evenly over the run (first and last included); all of them
    when ``count`` is None."""
    if count is None or len(points) <= count:
        return points
    step = (len(points) - 1) / (count - 1)
    return sorted({points[round(i * step)] for i in range(count)}, key=points.index)
