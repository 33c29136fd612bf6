"""Synthetic repositories whose statistics are written here with known values."""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

T1 = 1_795_300_000
T2 = T1 + 86_400
T3 = T2 + 86_400
TIMES = (T1, T2, T3)

FIELDS = (
    "StartTime",
    "EndTime",
    "ElapsedTime",
    "SourceFiles",
    "SourceFileSize",
    "MirrorFiles",
    "MirrorFileSize",
    "NewFiles",
    "NewFileSize",
    "DeletedFiles",
    "DeletedFileSize",
    "ChangedFiles",
    "ChangedSourceSize",
    "ChangedMirrorSize",
    "IncrementFiles",
    "IncrementFileSize",
    "TotalDestinationSizeChange",
    "Errors",
)


def stamp(epoch: int) -> str:
    """rdiff-backup's Z time string, written independently of rdb_format."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def session_text(when: int, **values: float) -> str:
    """A session_statistics file in rdiff-backup's layout (human forms included)."""
    base: dict[str, float] = dict.fromkeys(FIELDS, 0)
    base.update(StartTime=when, EndTime=when + 2.5, ElapsedTime=2.5)
    base.update(values)
    lines = []
    for name in FIELDS:
        value = base[name]
        if name in ("StartTime", "EndTime"):
            lines.append(f"{name} {value:.2f} (Sun Nov 22 00:21:33 2026)")
        elif name == "ElapsedTime":
            lines.append(f"{name} {value:.2f} ({value:.2f} seconds)")
        elif name.endswith("Size") or name == "TotalDestinationSizeChange":
            lines.append(f"{name} {int(value)} ({int(value)} bytes)")
        else:
            lines.append(f"{name} {int(value)}")
    return "\n".join(lines) + "\n"


@dataclass
class Synthetic:
    """A hand-made repository: mirror files, markers, statistics, increments."""

    root: Path
    times: Sequence[int] = TIMES
    written: dict[str, Path] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "rdiff-backup-data"

    def data_file(self, base: str, when: int, kind: str = "data", gz: bool = False) -> Path:
        return self.data / f"{base}.{stamp(when)}.{kind}{'.gz' if gz else ''}"

    def write(self, path: Path, content: bytes, gz: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(content) if gz else content)
        return path


def make_synthetic(root: Path, times: Sequence[int] = TIMES) -> Synthetic:
    """Markers and metadata only: a repository with these sessions and nothing else."""
    repo = Synthetic(root, times)
    repo.data.mkdir(parents=True)
    (repo.data / "increments").mkdir()
    repo.write(repo.data_file("current_mirror", times[-1]), b"PID 1\n")
    for when in times[:-1]:
        repo.write(repo.data_file("mirror_metadata", when, "diff", gz=True), b"")
        repo.write(repo.data_file("increments", when, "dir"), b"")
    repo.write(repo.data_file("mirror_metadata", times[-1], "snapshot", gz=True), b"")
    return repo


#: file_statistics of one session; the expected tops are worked out in test_core.py.
FILE_STATS = (
    b"# Format of each line in file statistics file:\n"
    b"# Filename Changed SourceSize MirrorSize IncrementSize\n"
    b". 1 0 0 NA\n"
    b"a 1 0 0 NA\n"
    b"a/big 1 900 900 90\n"
    b"a/small 0 10 10 NA\n"
    b"b 1 90 90 10\n"
)


@pytest.fixture
def synthetic(tmp_path: Path) -> Callable[..., Synthetic]:
    def build(times: Sequence[int] = TIMES, name: str = "repo") -> Synthetic:
        return make_synthetic(tmp_path / name, times)

    return build


@pytest.fixture
def full_repo(tmp_path: Path) -> Synthetic:
    """Three sessions with complete statistics, error logs, file statistics and increments.

    Known values: SourceFiles 10/20/30, IncrementFileSize 100/200/600, Errors 0 in every
    file but error_log of T2 has 2 entries (an UpdateError and a ListError); the mirror holds
    regular files of 100 and 50 bytes (plus a directory and a symlink); increments on disk:
    T1 -> 10 + 20 bytes + the root marker (3 files), T2 -> 5 bytes (1 file + root marker).
    """
    repo = make_synthetic(tmp_path / "repo")
    for when, files, inc in zip(TIMES, (10, 20, 30), (100, 200, 600), strict=True):
        repo.write(
            repo.data_file("session_statistics", when),
            session_text(
                when,
                SourceFiles=files,
                SourceFileSize=1000,
                NewFiles=4,
                ChangedFiles=5,
                DeletedFiles=1,
                IncrementFileSize=inc,
            ).encode(),
        )
        repo.write(repo.data_file("file_statistics", when, gz=True), FILE_STATS, gz=True)
        log = b""
        if when == T2:
            log = b"UpdateError: 'x' changed while read\nListError: 'y' Permission denied\n"
        repo.write(repo.data_file("error_log", when, gz=bool(log)), log, gz=bool(log))
    repo.write(repo.root / "file1", b"x" * 100)
    repo.write(repo.root / "sub" / "file2", b"y" * 50)
    os.symlink("file1", repo.root / "link")
    increments = repo.data / "increments"
    repo.write(increments / f"file1.{stamp(T1)}.diff.gz", b"d" * 10)
    repo.write(increments / "sub" / f"file2.{stamp(T1)}.snapshot.gz", b"s" * 20)
    repo.write(increments / f"file1.{stamp(T2)}.diff.gz", b"e" * 5)
    return repo
