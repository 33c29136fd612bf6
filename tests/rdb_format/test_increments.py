"""Increment-style names (reference §1.4, examples from §9)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdb_format.increments import (
    INCREMENT_KINDS,
    IncrementName,
    format_increment_name,
    increments_of,
    parse_increment_name,
    sort_increments,
)

T1 = 1795303280  # 2026-11-22T00:21:20+01:00
S1 = b"2026-11-22T00:21:20+01:00"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"increments." + S1 + b".dir", IncrementName(b"increments", T1, "dir")),
        (b"file1.txt." + S1 + b".diff.gz", IncrementName(b"file1.txt", T1, "diff", True)),
        (b"archive.gz." + S1 + b".diff", IncrementName(b"archive.gz", T1, "diff")),
        (
            b"todelete.txt." + S1 + b".snapshot.gz",
            IncrementName(b"todelete.txt", T1, "snapshot", True),
        ),
        (b"link." + S1 + b".snapshot", IncrementName(b"link", T1, "snapshot")),
        (b"newfile.txt." + S1 + b".missing", IncrementName(b"newfile.txt", T1, "missing")),
        (b"1." + S1 + b".diff.gz", IncrementName(b"1", T1, "diff", True)),
        (b"archive.tar.gz." + S1 + b".diff", IncrementName(b"archive.tar.gz", T1, "diff")),
        (
            b"current_mirror.2026-11-22T00-22-52+01-00.data",
            IncrementName(b"current_mirror", T1 + 92, "data"),
        ),
        (
            b"mirror_metadata.2023-11-14T22:13:20Z.snapshot.gz",
            IncrementName(b"mirror_metadata", 1700000000, "snapshot", True),
        ),
        (b"error_log." + S1 + b".data.gz", IncrementName(b"error_log", T1, "data", True)),
        (b"." + S1 + b".dir", IncrementName(b"", T1, "dir")),
    ],
)
def test_parse_observed(name: bytes, expected: IncrementName) -> None:
    assert parse_increment_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        b"",
        b"gz",
        b"file.txt",
        b"rdiff-backup.tmp.12",
        b"chars_to_quote",
        b"backup.log",
        b"lock.yml",
        S1 + b".dir",  # no base: needs a dot before the time
        S1 + b".diff.gz",
        b"x." + S1 + b".patch",
        b"x." + S1 + b".DIFF",
        b"x." + S1 + b".diff.bz2",
        b"x.1900-12-31T00:00:00Z.dir",  # year out of range: silently not an increment
        b"x.2026-11-22T00:21:20+0100.dir",  # malformed zone
        b"x.2026-11-22T00:21:20.dir",  # no zone
        b"x.2026-11-22T00;05820;05800+01;05800.dir",  # still quoted
        b"x." + S1 + b".diff.gz.gz",
    ],
)
def test_not_increments(name: bytes) -> None:
    assert parse_increment_name(name) is None


def test_format() -> None:
    assert (
        format_increment_name(b"file1.txt", T1, "diff", compressed=True, utc_offset=3600)
        == b"file1.txt." + S1 + b".diff.gz"
    )
    assert (
        IncrementName(b"increments", T1, "dir").format(compatible=True, utc_offset=3600)
        == b"increments.2026-11-22T00-21-20+01-00.dir"
    )
    assert IncrementName(b"a", 1700000000, "missing").format(utc_offset=0) == (
        b"a.2023-11-14T22:13:20Z.missing"
    )


def test_invalid_construction() -> None:
    with pytest.raises(ValueError, match="type"):
        IncrementName(b"a", 1, "patch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="component"):
        IncrementName(b"a/b", 1, "dir")


def test_sorting_by_epoch_not_text() -> None:
    names = [
        b"f.2026-11-22T00:21:20+01:00.diff.gz",  # T1
        b"f.2026-11-21T23:21:19Z.snapshot.gz",  # T1 - 1, sorts later as text
        b"f.2026-11-22T00:21:21+01:00.missing",
        b"g.2026-11-21T00:00:00Z.dir",
        b"f.2026-11-21T00:00:00Z.bogus",
    ]
    found = increments_of(names, b"f")
    assert [i.time for i in found] == [T1 - 1, T1, T1 + 1]
    assert [i.kind for i in found] == ["snapshot", "diff", "missing"]
    parsed = [p for p in map(parse_increment_name, names) if p is not None]
    assert sort_increments(parsed)[0].base == b"g"
    assert IncrementName(b"a", 2, "dir") > IncrementName(b"z", 1, "dir")


hostile_base = st.binary(min_size=0, max_size=200).filter(
    lambda b: b"/" not in b and b"\0" not in b
)


@given(
    hostile_base,
    st.integers(min_value=-(2**31) + 86400, max_value=4102444800 - 2 * 86400),
    st.sampled_from(INCREMENT_KINDS),
    st.booleans(),
    st.booleans(),
    st.sampled_from([0, 3600, -18000, 19800]),
)
def test_round_trip(
    base: bytes, time: int, kind: str, compressed: bool, compatible: bool, offset: int
) -> None:
    inc = IncrementName(base, time, kind, compressed)  # type: ignore[arg-type]
    name = inc.format(compatible=compatible, utc_offset=offset)
    assert parse_increment_name(name) == inc


@pytest.mark.parametrize(
    "base", [b"new\nline", b"back\\slash", b"bad\xffname", b"L" * 255, b"semi;colon", b"a.b.c"]
)
def test_round_trip_examples(base: bytes) -> None:
    inc = IncrementName(base, T1, "diff", True)
    assert parse_increment_name(inc.format()) == inc
