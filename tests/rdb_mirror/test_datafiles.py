"""Session files streamed while a backup runs: compressed on their own thread, put in place
only on commit, nothing left behind on failure."""

from __future__ import annotations

import errno
import gzip
import os
from pathlib import Path

import pytest

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
