"""The source side's answer to one content request (rdb_mirror.source.serve) when the file
changes under it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdb_mirror import source
from rdb_mirror.fsmeta import probe
from rdb_mirror.protocol import ContentFailed, ContentRequest, SourceMessage, stat_key
from rdb_mirror.source import IncludeAll, SourceOptions


@pytest.mark.parametrize("local_copy", [True, False], ids=["local", "remote"])
def test_a_small_file_that_grows_once_opened_is_failed_without_reading_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_copy: bool
) -> None:
    """Listed small, grown by 8 MiB once opened (a log being written, a download): the answer
    is "changed while being read" at once. Reading on to its end would be for nothing, and
    never end while the writer outpaces the reader."""
    log = tmp_path / "log"
    log.write_bytes(b"first line\n")
    request = ContentRequest(3, (b"log",), stat_key(os.lstat(log)))
    opened = source._open_checked

    def open_then_grow(*args: object) -> object:
        result = opened(*args)  # type: ignore[arg-type]
        with open(log, "ab") as appending:
            appending.write(b"\0" * (8 << 20))
        return result

    monkeypatch.setattr(source, "_open_checked", open_then_grow)
    options = SourceOptions(
        root=os.fsencode(tmp_path),
        selection=IncludeAll(),
        capabilities=probe(os.fsencode(tmp_path)),
        workers=1,
        window=0,
        local_copy=local_copy,
    )
    sent: list[SourceMessage] = []

    class Collect:
        send = staticmethod(sent.append)

    source.serve(options, request, Collect())
    assert sent == [ContentFailed(3, "changed while being read; not updated")]
