"""Session files streamed while a backup runs: compressed on their own thread, put in place
only on commit, nothing left behind on failure."""

from __future__ import annotations

import errno
import gzip
import os
from pathlib import Path

import pytest

from rdb_format.statistics import FILE_STATISTICS_HEADER
from rdb_mirror import datafiles
from rdb_mirror.datafiles import StreamedFile


def test_compressed_in_the_background_in_order(tmp_path: Path) -> None:
    chunks = [os.urandom(1000) + b"%d\n" % i * 5000 for i in range(3 * datafiles.PENDING)]
    out = StreamedFile(tmp_path / "file_statistics.T.data")
    for chunk in chunks:
        out.write(chunk)
    assert not (tmp_path / "file_statistics.T.data.gz").exists()  # not before the commit
    final = out.commit()
    assert final == tmp_path / "file_statistics.T.data.gz"
    assert gzip.decompress(final.read_bytes()) == b"".join(chunks)
    assert os.listdir(tmp_path) == [final.name]


def test_an_error_of_the_compression_thread_surfaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = gzip.GzipFile.write
    calls: list[int] = []

    def full(self: gzip.GzipFile, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(gzip.GzipFile, "write", full)
    out = StreamedFile(tmp_path / "mirror_metadata.T.snapshot")
    with pytest.raises(OSError, match="No space left"):
        for _ in range(4 * datafiles.PENDING):
            out.write(b"x" * 1000)
        out.commit()
    out.abort()
    assert os.listdir(tmp_path) == []  # no final file, no temp file


def test_unchanged_rows_are_the_rows_add_row_writes(tmp_path: Path) -> None:
    """An unchanged entry's short-cut row is byte for byte the general row, odd names
    (quoted: backslash, newline) and more than one chunk's worth included."""
    paths = [b"plain", b"dir/sub/file.txt", b"back\\slash", b"new\nline", b"\xff\xfe"]
    paths += [b"d%03d/f%05d" % (i % 7, i) for i in range(5000)]
    sizes = [0, 1, 4096, 10**12, 7]
    general = datafiles.FileStatistics(tmp_path / "file_statistics.A.data", compress=False)
    short = datafiles.FileStatistics(tmp_path / "file_statistics.B.data", compress=False)
    for number, path in enumerate(paths):
        size = sizes[number % len(sizes)]
        general.add_row(path, False, size, size, None)
        short.add_unchanged(path, size)
    written = general.commit().read_bytes()
    assert short.commit().read_bytes() == written
    assert b"back\\\\slash 0 4096 " in written and b"new\\nline 0 10000" in written  # quoted
    assert written.count(b"\n") == len(paths) + len(FILE_STATISTICS_HEADER)
