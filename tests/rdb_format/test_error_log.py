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
    count_error_log,
    format_error_entry,
    iter_error_log,
    parse_error_entry,
)
from rdb_format.errors import CorruptRepository

# Observed on rdiff-backup 2.2.7 (reference §4.3)
OBSERVED = (
    b"UpdateError: 'growing' Updated mirror temp file 'repo/rdiff-backup.tmp.2' does not "
    b"match source\n"
)


def entries(data: bytes) -> list[ErrorEntry]:
    return list(iter_error_log(io.BytesIO(data), name="error_log.T.data"))


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


text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0\n"))


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


# ---- paths containing "' " (rdiff-backup writes f"{type}: '{path}' {message}" unescaped)


@pytest.mark.parametrize(
    "entry",
    [
        ErrorEntry("ListError", "it' s", "[Errno 13] Permission denied: b'/src/it\\' s'"),
        ErrorEntry(
            "UpdateError", "a' b/c' d", "Updated mirror temp file 'x' does not match source"
        ),
        ErrorEntry("UpdateError", "dir/x' ", "File changed from regular file before signature"),
        ErrorEntry("ListError", "a' ", "[Errno n/a] Ignoring strange unreadable symlink"),
    ],
)
def test_path_with_quote_space_before_a_known_message(entry: ErrorEntry) -> None:
    raw = format_error_entry(entry)
    assert entries(raw) == [entry]
    assert format_error_entry(entries(raw)[0]) == raw


def test_known_paths_settle_an_unknown_message() -> None:
    line = b"ListError: 'it' s' some other failure"
    assert parse_error_entry(line) == ErrorEntry("ListError", "it", "s' some other failure")
    settled = ErrorEntry("ListError", "it' s", "some other failure")
    assert parse_error_entry(line, known_paths={"it' s"}) == settled
    found = list(iter_error_log(io.BytesIO(line + b"\n"), known_paths=frozenset({"it' s"})))
    assert found == [settled]


def test_path_ending_the_line_with_a_quote() -> None:
    assert parse_error_entry(b"ListError: 'a' b'") == ErrorEntry("ListError", "a", "b'")
    assert parse_error_entry(b"ListError: 'a'") == ErrorEntry("ListError", "a", "")


# ---- counting


@pytest.mark.parametrize("null", [False, True])
def test_count_matches_the_parser(tmp_path: Path, null: bool) -> None:
    sep = b"\0" if null else b"\n"
    data = sep.join([OBSERVED.rstrip(b"\n")] * 5 + [b"", b"  ", b"ListError: 'x' y"]) + sep
    assert count_error_log(io.BytesIO(data)) == len(entries(data)) == 6
    path = tmp_path / "error_log.T.data.gz"
    path.write_bytes(gzip.compress(data + b"ListError: 'cut' off"))
    assert count_error_log(path) == len(list(iter_error_log(path))) == 7
    assert count_error_log(io.BytesIO(b"")) == 0


def test_count_of_a_million_entries() -> None:
    data = OBSERVED * 1_000_000
    assert count_error_log(io.BytesIO(data)) == 1_000_000


def test_count_of_truncated_gzip_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "error_log.T.data.gz"
    path.write_bytes(gzip.compress(OBSERVED * 1000)[:-20])
    with pytest.raises(CorruptRepository, match=r"error_log\.T\.data\.gz"):
        count_error_log(path)


def test_on_damage_reports_and_reads_on(tmp_path: Path) -> None:
    """on_damage (rdb-stats' reading): a malformed entry is reported and left out; a read
    error ends the entries after those before it. Without it both raise."""
    data = OBSERVED + b"garbled line\n" + b"ListError: 'x' y\n"
    seen: list[str] = []
    got = list(iter_error_log(io.BytesIO(data), name="error_log.T.data", on_damage=seen.append))
    assert [e.kind for e in got] == ["UpdateError", "ListError"]
    assert len(seen) == 1 and seen[0].startswith("error_log.T.data: entry 2: ")
    with pytest.raises(CorruptRepository, match="entry 2"):
        entries(data)
    path = tmp_path / "error_log.T.data.gz"
    path.write_bytes(gzip.compress(OBSERVED * 5000)[:-20])
    seen.clear()
    kept = list(iter_error_log(path, on_damage=seen.append))
    assert 0 < len(kept) < 5000 and all(e == kept[0] for e in kept)
    assert len(seen) == 1 and "truncated" in seen[0] and "error_log.T.data.gz" in seen[0]
    with pytest.raises(CorruptRepository, match="truncated"):
        list(iter_error_log(path))
