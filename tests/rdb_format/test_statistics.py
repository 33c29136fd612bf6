"""session_statistics and file_statistics: exact text, tolerant reading, streaming rows."""

from __future__ import annotations

import gzip
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdb_format.errors import CorruptRepository, HostilePath
from rdb_format.statistics import (
    SESSION_STATISTICS_FIELDS,
    FileStatisticsReader,
    FileStatRow,
    PartialSessionStatistics,
    SessionStatistics,
    file_stat_row,
    format_bytes,
    format_file_stat_row,
    format_seconds,
    format_session_statistics,
    iter_file_statistics,
    parse_file_stat_row,
    parse_session_statistics,
    read_session_statistics,
    write_file_statistics,
    write_session_statistics,
)

# Observed on rdiff-backup 2.2.7 with TZ=Europe/Berlin (reference §4.1)
SESSION_OBSERVED = """\
StartTime 1795303293.00 (Sun Nov 22 00:21:33 2026)
EndTime 1795303293.75 (Sun Nov 22 00:21:33 2026)
ElapsedTime 0.75 (0.75 seconds)
SourceFiles 25
SourceFileSize 201114 (196 KB)
MirrorFiles 24
MirrorFileSize 201067 (196 KB)
NewFiles 4
NewFileSize 18 (18 bytes)
DeletedFiles 3
DeletedFileSize 9 (9 bytes)
ChangedFiles 15
ChangedSourceSize 201085 (196 KB)
ChangedMirrorSize 201047 (196 KB)
IncrementFiles 22
IncrementFileSize 1320 (1.29 KB)
TotalDestinationSizeChange 1367 (1.33 KB)
Errors 0
"""

# Observed rows (reference §4.2)
FILE_STATS_OBSERVED = (
    b"# Format of each line in file statistics file:\n"
    b"# Filename Changed SourceSize MirrorSize IncrementSize\n"
    b". 1 0 0 NA\n"
    b"archive.gz 1 1010 1000 91\n"
    b"back\\\\slash.txt 0 3 3 NA\n"
    b"with space.txt 1 3 NA 0\n"
    b"new\\nline.txt 0 3 3 NA\n"
    b"dir2file/inner 1 NA 1 62\n"
)


@pytest.fixture
def berlin() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_observed_session_statistics_roundtrip(berlin: None) -> None:
    stats = parse_session_statistics(SESSION_OBSERVED)
    assert stats.start_time == 1795303293.0
    assert stats.elapsed_time == 0.75
    assert stats.source_files == 25
    assert stats.increment_file_size == 1320
    assert stats.total_destination_size_change == 1367
    assert stats.with_total() == stats
    assert format_session_statistics(stats) == SESSION_OBSERVED


def test_session_statistics_without_parentheses_and_with_banner() -> None:
    text = "--------------[ Session statistics ]--------------\nSourceFiles 3\nErrors 2\n\n"
    assert parse_session_statistics(text) == SessionStatistics(source_files=3, errors=2)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Bogus 1\n", "unknown statistic"),
        ("SourceFiles\n", "no value"),
        ("SourceFiles x\n", "bad value"),
        ("SourceFiles 1.5\n", "bad value"),
    ],
)
def test_bad_session_statistics(text: str, why: str) -> None:
    with pytest.raises(CorruptRepository) as error:
        parse_session_statistics(text, name="session_statistics.T.data")
    assert why in str(error.value)
    assert "session_statistics.T.data" in str(error.value)


def test_session_statistics_file(tmp_path: Path, berlin: None) -> None:
    path = tmp_path / "session_statistics.2026-11-22T00:21:33+01:00.data"
    stats = parse_session_statistics(SESSION_OBSERVED)
    write_session_statistics(path, stats, fsync=False)
    assert path.read_text() == SESSION_OBSERVED
    assert read_session_statistics(path) == stats


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (18, "18 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.00 KB"),
        (1320, "1.29 KB"),
        (1367, "1.33 KB"),
        (201114, "196 KB"),
        (10 * 1024 + 512, "10.5 KB"),
        (5 * 1024**3, "5.00 GB"),
        (3 * 1024**4, "3.00 TB"),
        (-1367, "-1.33 KB"),
        (-1, "-1 byte"),
    ],
)
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.75, "0.75 seconds"),
        (0.0, "0.00 seconds"),
        (1.0, "1 second"),
        (59.5, "59.50 seconds"),
        (60.0, "1 minute"),
        (3723.4, "1 hour 2 minutes 3.40 seconds"),
        (7200.5, "2 hours"),
        (7261.0, "2 hours 1 minute 1 second"),
    ],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


# -- file_statistics -------------------------------------------------------------------------


def rows(data: bytes, *, allow_truncated: bool = False) -> list[FileStatRow]:
    stream = io.BytesIO(data)
    name = "file_statistics.T.data"
    return list(iter_file_statistics(stream, name=name, allow_truncated=allow_truncated))


def test_observed_file_statistics() -> None:
    parsed = rows(FILE_STATS_OBSERVED)
    assert parsed[0] == FileStatRow(b".", True, 0, 0, None)
    assert parsed[2] == FileStatRow(b"back\\slash.txt", False, 3, 3, None)
    assert parsed[3] == FileStatRow(b"with space.txt", True, 3, None, 0)
    assert parsed[4].path == b"new\nline.txt"
    assert parsed[5] == FileStatRow(b"dir2file/inner", True, None, 1, 62)
    out = io.BytesIO()
    for chunk in (
        FILE_STATS_OBSERVED.split(b"\n. ")[0] + b"\n",
        *map(format_file_stat_row, parsed),
    ):
        out.write(chunk)
    assert out.getvalue() == FILE_STATS_OBSERVED


def test_file_stat_row_for_checked_paths_matches_the_checked_formatter() -> None:
    for row in rows(FILE_STATS_OBSERVED):
        fields = (row.path, row.changed, row.source_size, row.mirror_size, row.increment_size)
        assert file_stat_row(*fields) == format_file_stat_row(row)
        assert file_stat_row(*fields, b"\0") == format_file_stat_row(row, b"\0")
    with pytest.raises(ValueError, match="negative size"):
        file_stat_row(b"a", True, -1, None, None)


def test_null_separated_file_statistics(tmp_path: Path) -> None:
    parsed = rows(FILE_STATS_OBSERVED)
    path = write_file_statistics(tmp_path / "file_statistics.X.data", parsed, null_separator=True)
    raw = gzip.decompress(path.read_bytes())
    assert raw == FILE_STATS_OBSERVED.replace(b"\n", b"\0")
    assert list(iter_file_statistics(path)) == parsed


def test_file_statistics_files(tmp_path: Path) -> None:
    parsed = rows(FILE_STATS_OBSERVED)
    path = write_file_statistics(tmp_path / "file_statistics.X.data", parsed)
    assert path.name == "file_statistics.X.data.gz"
    assert gzip.decompress(path.read_bytes()) == FILE_STATS_OBSERVED
    plain = write_file_statistics(tmp_path / "file_statistics.Y.data", parsed, compress=False)
    assert plain.read_bytes() == FILE_STATS_OBSERVED
    assert list(iter_file_statistics(plain)) == parsed


def test_truncated_file_statistics(tmp_path: Path) -> None:
    cut = FILE_STATS_OBSERVED[:-5]
    with pytest.raises(CorruptRepository, match="truncated"):
        rows(cut)
    assert len(rows(cut, allow_truncated=True)) == 5
    path = tmp_path / "file_statistics.X.data.gz"
    many = b"".join(b"file%d 1 %d NA %d\n" % (i, i * 7919 % 104729, i) for i in range(2000))
    path.write_bytes(gzip.compress(FILE_STATS_OBSERVED + many)[:-20])
    with pytest.raises(CorruptRepository, match="truncated") as error:
        list(iter_file_statistics(path))
    assert path.name in str(error.value)
    assert len(list(iter_file_statistics(path, allow_truncated=True))) > 100


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"../etc 1 1 1 1", HostilePath),
        (b"/abs 1 1 1 1", HostilePath),
        (b"a 2 1 1 1", CorruptRepository),
        (b"a 1 x 1 1", CorruptRepository),
        (b"a 1 1 1", CorruptRepository),
        (b"a\\t 1 1 1 1", CorruptRepository),
    ],
)
def test_bad_rows(line: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        rows(FILE_STATS_OBSERVED + line + b"\n")
    assert "file_statistics.T.data" in str(info.value)
    assert "\n" not in str(info.value)


sizes = st.one_of(st.none(), st.integers(0, 2**63))
names = st.binary(min_size=1, max_size=255).filter(
    lambda c: b"/" not in c and b"\0" not in c and c not in (b".", b"..")
)


@settings(max_examples=200)
@given(names, st.booleans(), sizes, sizes, sizes, st.booleans())
def test_row_roundtrip(
    name: bytes, changed: bool, a: int | None, b: int | None, c: int | None, null: bool
) -> None:
    row = FileStatRow(name, changed, a, b, c)
    sep = b"\0" if null else b"\n"
    data = FILE_STATS_OBSERVED.replace(b"\n", sep) + format_file_stat_row(row, sep)
    assert rows(data)[-1] == row


# -- file_statistics: truncation signal, batches, speed ----------------------------------------


def test_truncation_is_signalled(tmp_path: Path) -> None:
    cut = FILE_STATS_OBSERVED[:-5]
    seen: list[str] = []
    reader = iter_file_statistics(
        io.BytesIO(cut),
        name="file_statistics.T.data",
        allow_truncated=True,
        on_truncated=seen.append,
    )
    assert isinstance(reader, FileStatisticsReader)
    truncated_before = reader.truncated  # (a name: mypy would keep the attribute narrowed)
    assert not truncated_before
    assert len(list(reader)) == 5
    assert reader.truncated and reader.rows_read == 5
    assert seen == [reader.problem]
    assert reader.problem is not None and "file_statistics.T.data" in reader.problem
    whole = iter_file_statistics(io.BytesIO(FILE_STATS_OBSERVED), allow_truncated=True)
    assert len(list(whole)) == 6 and not whole.truncated and whole.problem is None
    path = tmp_path / "file_statistics.X.data.gz"
    many = b"".join(b"file%d 1 %d NA %d\n" % (i, i * 7919 % 104729, i) for i in range(2000))
    path.write_bytes(gzip.compress(FILE_STATS_OBSERVED + many)[:-20])
    gz = iter_file_statistics(path, allow_truncated=True)
    assert len(list(gz)) > 100
    assert gz.truncated and gz.problem is not None and "truncated" in gz.problem


@pytest.mark.parametrize(
    "line", [b"../etc 1 1 1 1", b"/abs 1 1 1 1", b"a 2 1 1 1", b"a 1 x 1 1", b"a 1 1 1"]
)
def test_bad_rows_skipped_and_counted(line: bytes) -> None:
    """skip_bad_rows (rdb-stats' reading): a malformed or hostile row is left out and
    counted, the rows around it are read."""
    after = b"after 1 5 NA 7\n"
    reader = iter_file_statistics(
        io.BytesIO(FILE_STATS_OBSERVED + line + b"\n" + after), skip_bad_rows=True
    )
    got = list(reader)
    assert reader.bad_rows == 1 and reader.rows_read == 7
    assert got[:6] == rows(FILE_STATS_OBSERVED)
    assert got[6] == FileStatRow(b"after", True, 5, None, 7)


def test_batches_are_the_rows(tmp_path: Path) -> None:
    many = b"".join(b"d/f\\\\%d x 1 %d NA %d\n" % (i, i, i) for i in range(50_000))
    data = FILE_STATS_OBSERVED + many
    batches = list(iter_file_statistics(io.BytesIO(data)).batches())
    assert len(batches) > 1
    flat = [row for batch in batches for row in batch]
    assert flat == [parse_file_stat_row(line) for line in data.split(b"\n")[2:-1]]
    assert flat[-1] == FileStatRow(b"d/f\\49999 x", True, 49999, None, 49999)
    tuples = [row for batch in iter_file_statistics(io.BytesIO(data)).tuples() for row in batch]
    assert [FileStatRow(*row) for row in tuples] == flat


def test_tuples_of_a_cut_file_with_bad_rows(tmp_path: Path) -> None:
    """tuples() (rdb-stats' way) reads tolerantly as rows do: bad rows left out, the rows
    before a gzip cut kept (read1: nothing decompressed before the cut is lost)."""
    many = b"".join(b"file%d 1 %d NA %d\n" % (i, i, i) for i in range(20_000))
    data = FILE_STATS_OBSERVED + b"../up 1 1 1 1\n" + many
    path = tmp_path / "file_statistics.T.data.gz"
    compressed = gzip.compress(data)
    path.write_bytes(compressed[: len(compressed) * 3 // 4])
    reader = iter_file_statistics(path, allow_truncated=True, skip_bad_rows=True)
    got = [row for batch in reader.tuples() for row in batch]
    assert reader.truncated and reader.bad_rows == 1
    whole = gzip.GzipFile(fileobj=io.BytesIO(path.read_bytes()))
    readable = b""
    try:
        while piece := whole.read1(1 << 16):
            readable += piece
    except EOFError:
        pass
    complete_rows = readable.count(b"\n") - 2 - 1  # the header lines and the bad row
    assert len(got) == complete_rows > 10_000
    assert got[6] == (b"file0", True, 0, None, 0)


@pytest.mark.parametrize(
    "line",
    [b"a/../b 1 1 1 1", b"./a 1 1 1 1", b"a/. 1 1 1 1", b"a//b 1 1 1 1", b"a/ 1 1 1 1"],
)
def test_hostile_rows_in_a_big_chunk(line: bytes) -> None:
    good = b"".join(b"f%d 1 1 1 1\n" % i for i in range(5000))
    with pytest.raises(HostilePath, match="line 5009"):
        rows(FILE_STATS_OBSERVED + good + line + b"\n")


def test_a_million_rows_parse_in_batches() -> None:
    """A million rows stream through the batch reader (speed: benchmarks/, not here)."""
    data = FILE_STATS_OBSERVED + b"".join(
        b"dir%d/some file %d.txt %d %d NA %d\n" % (i % 100, i, i % 2, i * 7, i % 4096)
        for i in range(1_000_000)
    )
    batches = list(iter_file_statistics(io.BytesIO(data)).batches())
    assert sum(len(batch) for batch in batches) == 1_000_006
    assert len(batches) > 1  # streamed, not one list of a million rows
    assert batches[-1][-1].path == b"dir99/some file 999999.txt"


# -- session_statistics: tolerant mode ---------------------------------------------------------


def test_tolerant_complete_file_equals_strict() -> None:
    partial = parse_session_statistics(SESSION_OBSERVED, tolerant=True)
    assert isinstance(partial, PartialSessionStatistics)
    assert partial.complete and partial.problems == () and partial.missing == ()
    assert partial.to_statistics() == parse_session_statistics(SESSION_OBSERVED)


def test_tolerant_missing_field_is_absent_not_zero() -> None:
    text = SESSION_OBSERVED.replace("Errors 0\n", "").replace("NewFiles 4\n", "")
    assert parse_session_statistics(text).errors == 0  # strict: 0, as before
    partial = parse_session_statistics(text, tolerant=True)
    assert partial.get("errors") is None and partial.get("new_files") is None
    assert partial.missing == ("NewFiles", "Errors")
    assert partial.problems == ("no NewFiles line", "no Errors line")
    assert partial.get("source_files") == 25
    with pytest.raises(ValueError, match="NewFiles, Errors"):
        partial.to_statistics()


def test_tolerant_garbled_lines_keep_the_values_around_them() -> None:
    lines = SESSION_OBSERVED.split("\n")
    lines[4] = "SourceFil\x00\ufffd 201114"  # garbled name
    lines[6] = "MirrorFileSize 2x1067 (196 KB)"  # bad value
    lines[8] = "NewFileSize"  # no value
    partial = parse_session_statistics("\n".join(lines), tolerant=True)
    assert partial.get("source_files") == 25  # the line before the first garbled one
    assert partial.get("mirror_files") == 24
    assert partial.get("errors") == 0  # and everything after
    assert partial.get("elapsed_time") == 0.75
    assert [p.split(":")[0] for p in partial.problems[:3]] == ["line 5", "line 7", "line 9"]
    assert partial.missing == ("SourceFileSize", "MirrorFileSize", "NewFileSize")
    with pytest.raises(CorruptRepository, match="line 5"):
        parse_session_statistics("\n".join(lines))


def test_tolerant_cut_file(tmp_path: Path) -> None:
    cut = SESSION_OBSERVED[: SESSION_OBSERVED.index("ChangedSourceSize") + 21]
    assert cut.endswith("ChangedSourceSize 201")
    partial = parse_session_statistics(cut, tolerant=True)
    assert partial.get("changed_files") == 15
    assert partial.get("changed_source_size") is None  # maybe cut short: not used
    assert "no final newline" in partial.problems[0]
    assert "ChangedSourceSize" in partial.missing
    path = tmp_path / "session_statistics.T.data"
    path.write_text(cut)
    assert read_session_statistics(path, tolerant=True) == partial
    assert parse_session_statistics(cut).changed_source_size == 201  # strict: as before


def test_tolerant_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "session_statistics.T.data.gz"
    path.write_bytes(gzip.compress(SESSION_OBSERVED.encode() * 50)[:-30])
    with pytest.raises(CorruptRepository):
        read_session_statistics(path)
    partial = read_session_statistics(path, tolerant=True)
    assert partial.get("start_time") == 1795303293.0
    assert "truncated" in partial.problems[0]


def test_tolerant_named_values_and_damage() -> None:
    """named_values: the file's names in file order; damage: the problems of the lines that
    are there (the missing fields are listed apart, in ``missing``)."""
    lines = SESSION_OBSERVED.split("\n")
    lines[6] = "MirrorFileSize 2x1067 (196 KB)"
    del lines[17]  # Errors
    partial = parse_session_statistics("\n".join(lines), tolerant=True)
    named = partial.named_values
    assert list(named) == [
        n for n in SESSION_STATISTICS_FIELDS if n not in ("MirrorFileSize", "Errors")
    ]
    assert named["SourceFiles"] == 25 and named["ElapsedTime"] == 0.75
    assert partial.missing == ("MirrorFileSize", "Errors")
    assert len(partial.damage) == 1 and partial.damage[0].startswith("line 7: bad value")
    assert partial.problems == (*partial.damage, "no MirrorFileSize line", "no Errors line")
    whole = parse_session_statistics(SESSION_OBSERVED, tolerant=True)
    assert whole.damage == () and len(whole.named_values) == len(SESSION_STATISTICS_FIELDS) == 18


def test_tolerant_duplicate_keeps_the_first() -> None:
    partial = parse_session_statistics(SESSION_OBSERVED + "Errors 7\n", tolerant=True)
    assert partial.get("errors") == 0
    assert partial.problems == ("line 19: Errors again (the first one is used)",)


def test_a_time_rounded_up_to_the_next_second_is_written_again_as_read() -> None:
    """rdiff-backup formats EndTime with %.2f but the time in parentheses from the time itself:
    1795314228.996 is written "1795314229.00 (… 21:23:48 …)"; reading then writing keeps it."""
    stats = SessionStatistics(start_time=1795314000.0, end_time=1795314228.996)
    text = format_session_statistics(stats)
    assert "EndTime 1795314229.00 (" in text
    assert format_session_statistics(parse_session_statistics(text)) == text
    plain = format_session_statistics(SessionStatistics(end_time=1795314229.0))
    assert parse_session_statistics(plain).end_time == 1795314229.0
