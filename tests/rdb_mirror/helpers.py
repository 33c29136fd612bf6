"""Helpers of the rdb-mirror tests: run the command, compare trees, restore with rdiff-backup."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from tests.interop import trees

#: Session times used by the tests (fake, one hour apart, well inside 1901-2099).
T0 = 1_700_000_000
STEP = 3_600


def session_time(n: int) -> int:
    return T0 + n * STEP


def run_mirror(
    *args: str | int | os.PathLike[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m rdb_mirror ARGS`` (each str()ed: paths, session times) in a subprocess (text
    output)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rdb_mirror", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def differences(
    expected: trees.Snapshot, actual: trees.Snapshot, *, links: bool = True
) -> list[str]:
    """What differs between two scans: content, type, mode, owner, mtime, targets, EAs, ACLs
    and the hard-link structure (inode numbers themselves are ignored)."""
    out: list[str] = []
    for index in sorted(set(expected) | set(actual)):
        want, got = expected.get(index), actual.get(index)
        shown = trees.render(index)
        if want is None or got is None:
            out.append(f"{shown!r}: {'extra' if want is None else 'missing'}")
            continue
        a = dataclasses.asdict(want)
        b = dataclasses.asdict(got)
        for key in ("inode", "nlink"):
            a.pop(key)
            b.pop(key)
        if want.type in ("sym", "dev"):
            a.pop("mtime")
            b.pop("mtime")
        if a != b:
            out.append(
                f"{shown!r}: " + ", ".join(f"{k} {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k])
            )
    if links and trees.hardlink_groups(expected) != trees.hardlink_groups(actual):
        out.append(
            f"hard links {trees.hardlink_groups(expected)} != {trees.hardlink_groups(actual)}"
        )
    return out


def run_rdiff_backup(exe: str, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def restore_with_rdiff_backup(exe: str, repo: Path, when: int, target: Path) -> trees.Snapshot:
    """``rdiff-backup restore --at WHEN`` into ``target`` and scan the result."""
    proc = run_rdiff_backup(exe, "restore", "--at", str(when), repo, target)
    assert proc.returncode == 0, proc.stderr
    return trees.scan(target)


def restored(repo: Path, when: int, target: Path) -> trees.Snapshot:
    """``rdb-restore restore --at WHEN`` into ``target`` and scan the result."""
    exe = Path(sys.executable).parent / "rdb-restore"
    proc = subprocess.run(
        [str(exe), "restore", "--at", str(when), str(repo), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return trees.scan(target)
