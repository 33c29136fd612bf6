"""error_log files: entry format, separators, lazily gzipped writer."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdb_format.error_log import (
    ErrorEntry,
    ErrorLogWriter,
    format_error_entry,
    iter_error_log,
)
from rdb_format.errors import CorruptRepository

# Observed on rdiff-backup 2.2.7 (reference §4.3)
OBSERVED = (
    b"UpdateError: 'growing' Updated mirror temp file 'repo/rdiff-backup.tmp.2' does not "
    b"match source\n"
)


def entries(data: bytes, **kw: bool) -> list[ErrorEntry]:
    return list(iter_error_log(io.BytesIO(data), name="error_log.T.data", **kw))


def test_observed_entry() -> None:
    (entry,) = entries(OBSERVED)
    assert entry == ErrorEntry(
        "UpdateError",
        "growing",
        "Updated mirror temp file 'repo/rdiff-backup.tmp.2' does not match source",
    )
    assert format_error_entry(entry) == OBSERVED


def test_newlines_become_spaces_unless_null_separated() -> None:
    entry = ErrorEntry("ListError", "dir/sub", "Permission denied:\n'dir/sub'")
    assert format_error_entry(entry) == b"ListError: 'dir/sub' Permission denied: 'dir/sub'\n"
    raw = format_error_entry(entry, null_separator=True)
    assert raw.endswith(b"'dir/sub'\0")
    assert entries(raw + raw) == [entry, entry]


def test_non_encodable_characters_are_backslash_escaped() -> None:
    entry = ErrorEntry("SpecialFileError", "bad\udcffname", "x")
    assert format_error_entry(entry) == b"SpecialFileError: 'bad\\udcffname' x\n"


def test_message_may_be_empty() -> None:
    assert entries(b"ListError: 'a b'\n") == [ErrorEntry("ListError", "a b", "")]


@pytest.mark.parametrize("line", [b"garbage", b"UpdateError 'a' b", b"Bad Type: 'a' b"])
def test_garbled_entries(line: bytes) -> None:
    with pytest.raises(CorruptRepository) as error:
        entries(OBSERVED + line + b"\n")
    assert "error_log.T.data" in str(error.value)
    assert "entry 2" in str(error.value)


def test_writer_gzips_from_the_first_entry(tmp_path: Path) -> None:
    with ErrorLogWriter(tmp_path / "error_log.X.data") as log:
        log.write(entries(OBSERVED)[0])
    assert log.path.name == "error_log.X.data.gz"
    assert gzip.decompress(log.path.read_bytes()) == OBSERVED
    assert not (tmp_path / "error_log.X.data").exists()
    assert list(iter_error_log(log.path)) == entries(OBSERVED)


def test_writer_leaves_an_empty_plain_file(tmp_path: Path) -> None:
    with ErrorLogWriter(tmp_path / "error_log.X.data") as log:
        pass
    assert log.path == tmp_path / "error_log.X.data"
    assert log.path.read_bytes() == b""
    assert list(iter_error_log(log.path)) == []


def test_writer_without_compression(tmp_path: Path) -> None:
    with ErrorLogWriter(tmp_path / "error_log.X.data", compress=False) as log:
        log.write(entries(OBSERVED)[0])
    assert log.path.read_bytes() == OBSERVED


text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\n"))


@settings(max_examples=200)
@given(
    st.sampled_from(["ListError", "UpdateError", "SpecialFileError"]),
    text.filter(lambda p: "' " not in p and not p.endswith("'")),
    text,
)
def test_entry_roundtrip(kind: str, path: str, message: str) -> None:
    entry = ErrorEntry(kind, path, message)
    (back,) = entries(format_error_entry(entry) + b"\n")
    if message:
        assert back == entry
    else:
        assert back == ErrorEntry(kind, path, "")
