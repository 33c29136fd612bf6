"""rdb_format._datafiles: the shared opener and path display; old private names still work."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from rdb_format import _datafiles, metadata
from rdb_format.errors import CorruptRepository


def test_old_private_names_still_import() -> None:
    from rdb_format.metadata import _opened, _show

    assert _opened is _datafiles.opened_source
    assert _show is _datafiles.show_path
    assert metadata.open_data_file is _datafiles.open_data_file
    assert metadata.STREAM_ERRORS is _datafiles.STREAM_ERRORS


def test_opened_source(tmp_path: Path) -> None:
    path = tmp_path / "x.data.gz"
    path.write_bytes(gzip.compress(b"abc"))
    with _datafiles.opened_source(path, None) as (stream, label):
        assert stream.read() == b"abc" and label == str(path)
    with _datafiles.opened_source(io.BytesIO(b"z"), "given") as (stream, label):
        assert label == "given"
    with (
        pytest.raises(CorruptRepository, match="cannot open"),
        _datafiles.opened_source(tmp_path / "missing", None),
    ):
        pass


def test_show_path() -> None:
    assert _datafiles.show_path(b"a\nb\xff") == "a\\nb\\xff"
    assert _datafiles.show_path(b"x" * 300).endswith("…")
