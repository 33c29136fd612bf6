"""Power loss: a mirror file's previous version is on disk before the mirror copy goes.

A kill cannot show this (the page cache outlives the process), so these tests read the order
of the system calls instead (strace): for every mirror file with data that a backup replaces
or removes, the increment keeping its previous version must be completely written (closed),
then a ``syncfs`` (or ``sync``) must run, and only after it has returned may the mirror copy
be renamed over or unlinked. Regress is held to the same rule the other way round: a rebuilt
mirror file is synced before the increment it was rebuilt from is deleted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.rdb_mirror.helpers import run_mirror, session_time

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")

_TRACED = "close,rename,renameat,renameat2,unlink,unlinkat,syncfs,sync"
_LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>(.*)|(\w+)\((.*))$")
_FD_PATH = re.compile(r"^\d+<([^>]*)>")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class _Call:
    name: str
    args: str = ""
    start: int = 0  # line number where it began
    end: int = 0  # line number where it returned


@dataclass
class _Trace:
    calls: list[_Call] = field(default_factory=list)

    def syncs(self) -> list[_Call]:
        return [c for c in self.calls if c.name in ("syncfs", "sync")]

    def closes_of(self, path: str) -> list[_Call]:
        out = []
        for call in self.calls:
            if call.name == "close":
                found = _FD_PATH.match(call.args)
                if found and found.group(1) == path:
                    out.append(call)
        return out

    def destroying(self, path: str) -> list[_Call]:
        """Calls that rename onto ``path`` or unlink it."""
        out = []
        for call in self.calls:
            if call.name in ("rename", "renameat", "renameat2"):
                if _targets(call.args, second=True) == path:
                    out.append(call)
            elif call.name in ("unlink", "unlinkat") and _targets(call.args) == path:
                out.append(call)
        return out


def _targets(args: str, *, second: bool = False) -> str | None:
    """The absolute path a rename (its new name) or an unlink names; dir-fd forms resolved
    from strace's ``-y`` annotation."""
    parts: list[str] = []
    rest = args
    while rest:
        fd = re.match(r"\s*(?:AT_FDCWD|\d+<([^>]*)>),\s*", rest)
        directory = fd.group(1) if fd and fd.group(1) else None
        if fd:
            rest = rest[fd.end() :]
        quoted = _QUOTED.match(rest.lstrip())
        if not quoted:
            break
        name = quoted.group(1)
        parts.append(name if directory is None or name.startswith("/") else f"{directory}/{name}")
        rest = rest.lstrip()[quoted.end() :].lstrip(", ")
    if not parts:
        return None
    if second:
        return parts[1] if len(parts) > 1 else None
    return parts[0]


def _read_trace(log: Path) -> _Trace:
    trace = _Trace()
    open_calls: dict[tuple[int, str], _Call] = {}
    for number, line in enumerate(log.read_text(errors="replace").splitlines()):
        found = _LINE.match(line)
        if not found:
            continue
        pid = int(found.group(1))
        if found.group(2):  # "<... name resumed>"
            call = open_calls.pop((pid, found.group(2)), None)
            if call is not None:
                call.end = number
            continue
        name, args = found.group(4), found.group(5)
        call = _Call(name, args, number, number)
        trace.calls.append(call)
        if args.endswith("<unfinished ...>"):
            call.args = args.removesuffix("<unfinished ...>")
            open_calls[(pid, name)] = call
    return trace


def _traced(argv: list[str], log: Path) -> subprocess.CompletedProcess[str]:
    command = ["strace", "-f", "-q", "-y", "-s", "256", "-o", str(log), "-e", f"trace={_TRACED}"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [*command, *argv], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def _mirror(*args: str | int | Path) -> list[str]:
    return [sys.executable, "-m", "rdb_mirror", *map(str, args)]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _first_session(src: Path) -> None:
    body = bytes(range(256)) * 64  # 16 KiB: a diff and a snapshot both hold data
    _write(src / "changed.txt", body)
    _write(src / "deleted.txt", body)
    _write(src / "to-symlink.txt", body)
    _write(src / "to-dir.txt", body)
    _write(src / "gone/one.bin", body)
    _write(src / "gone/two.bin", body[::-1])
    _write(src / "linked/a.bin", body)
    os.link(src / "linked/a.bin", src / "linked/b.bin")
    _write(src / "kept.txt", b"never changes\n")
    for n in range(40):  # enough files for the pool to run jobs concurrently
        _write(src / f"many/{n:02}.dat", body[n:] + body[:n])
    # an old time: a same-size edit within the same second would look unchanged (the
    # metadata keeps whole seconds, as rdiff-backup's does)
    for path in src.rglob("*"):
        if path.is_file():
            os.utime(path, (1_600_000_000, 1_600_000_000))


def _second_session(src: Path) -> None:
    (src / "changed.txt").write_bytes(b"new first line\n" + bytes(range(256)) * 60)
    (src / "deleted.txt").unlink()
    (src / "to-symlink.txt").unlink()
    os.symlink("kept.txt", src / "to-symlink.txt")
    (src / "to-dir.txt").unlink()
    _write(src / "to-dir.txt/inside.txt", b"a file inside what was a file\n")
    shutil.rmtree(src / "gone")
    with open(src / "linked/a.bin", "r+b") as both:  # the group changes, still linked
        both.write(b"CHANGED")
    for n in range(0, 40, 3):
        with open(src / f"many/{n:02}.dat", "r+b") as one:
            one.seek(1000)
            one.write(b"edited")


#: Mirror files of the first session that the second replaces or removes.
_DESTROYED = [
    "changed.txt",
    "deleted.txt",
    "to-symlink.txt",
    "to-dir.txt",
    "gone/one.bin",
    "gone/two.bin",
    "linked/a.bin",
    "linked/b.bin",
    *(f"many/{n:02}.dat" for n in range(0, 40, 3)),
]


def _increment_of(repo: Path, relative: str) -> Path:
    directory = repo / "rdiff-backup-data" / "increments" / Path(relative).parent
    stem = f"{Path(relative).name}."
    found = [
        p
        for p in directory.iterdir()
        if p.name.startswith(stem) and p.name[len(stem) :].split(".")[0] != ""
    ]
    assert found, f"no increment of {relative} in {directory}"
    (only,) = found
    return only


def _violations(trace: _Trace, repo: Path, increments: dict[str, Path]) -> list[str]:
    """Every destroyed mirror file whose increment was not synced between its last close and
    the first call destroying the mirror copy."""
    syncs = trace.syncs()
    problems = []
    for relative, increment in increments.items():
        closes = trace.closes_of(str(increment))
        destroys = trace.destroying(str(repo / relative))
        if not closes or not destroys:
            problems.append(f"{relative}: closes {len(closes)}, destroying calls {len(destroys)}")
            continue
        written, destroyed = closes[-1].end, destroys[0].start
        if not any(written < s.start and s.end < destroyed for s in syncs):
            problems.append(
                f"{relative}: increment closed at line {written}, mirror copy destroyed at "
                f"line {destroyed}, no sync between"
            )
    return problems


@pytest.fixture
def two_sessions(tmp_path: Path) -> tuple[Path, Path]:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _first_session(src)
    first = run_mirror("--current-time", session_time(0), src, repo)
    assert first.returncode == 0, first.stderr
    _second_session(src)
    return src, repo


def test_a_replaced_or_removed_mirror_file_waits_for_its_increment_on_disk(
    two_sessions: tuple[Path, Path], tmp_path: Path
) -> None:
    src, repo = two_sessions
    log = tmp_path / "backup.strace"
    run = _traced(_mirror("--current-time", session_time(1), src, repo), log)
    assert run.returncode == 0, run.stderr
    increments = {rel: _increment_of(repo, rel) for rel in _DESTROYED}
    assert _violations(_read_trace(log), repo, increments) == []
    # a changed file's increment is a diff, as rdiff-backup writes it, also for the second
    # name of a hard-link group whose new copy was still waiting for its rename
    for changed in ("changed.txt", "linked/a.bin", "linked/b.bin", "many/00.dat"):
        assert increments[changed].name.endswith(".diff.gz"), increments[changed]
    # and the session is whole: the previous version restores from those increments
    restored = tmp_path / "restored"
    back = subprocess.run(
        [sys.executable, "-m", "rdb_restore", repo, restored, "--at", str(session_time(0))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert back.returncode == 0, back.stderr
    assert (restored / "changed.txt").read_bytes() == bytes(range(256)) * 64
    assert (restored / "linked/b.bin").read_bytes() == bytes(range(256)) * 64
    assert (restored / "gone/two.bin").read_bytes() == (bytes(range(256)) * 64)[::-1]


def test_regress_syncs_the_rebuilt_mirror_before_deleting_its_increments(
    two_sessions: tuple[Path, Path], tmp_path: Path
) -> None:
    src, repo = two_sessions
    killed = run_mirror(
        "--current-time",
        session_time(1),
        src,
        repo,
        env={"RDB_MIRROR_TEST_KILL_AT": "before-commit"},
    )
    assert killed.returncode == -9, killed.stderr
    rebuilt = ["changed.txt", "linked/a.bin", *(f"many/{n:02}.dat" for n in range(0, 40, 3))]
    increments = {rel: _increment_of(repo, rel) for rel in rebuilt}
    log = tmp_path / "regress.strace"
    run = _traced(_mirror("--regress", repo), log)
    assert run.returncode == 0, run.stderr
    trace = _read_trace(log)
    syncs = trace.syncs()
    problems = []
    for relative, increment in increments.items():
        rebuilds = trace.destroying(str(repo / relative))  # the rebuilt copy renamed in
        removals = trace.destroying(str(increment))
        assert rebuilds and removals, relative
        done, removed = rebuilds[-1].end, removals[0].start
        if not any(done < s.start and s.end < removed for s in syncs):
            problems.append(f"{relative}: rebuilt at line {done}, increment deleted at {removed}")
    assert problems == []
    assert (repo / "changed.txt").read_bytes() == bytes(range(256)) * 64
