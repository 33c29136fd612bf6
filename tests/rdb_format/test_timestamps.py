"""Time strings (reference §1.3) and user time specs (§6.4)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdb_format.errors import CorruptRepository, TimeSpecError
from rdb_format.exitcodes import ExitCode
from rdb_format.timestamps import (
    format_timestring,
    parse_timestring,
    resolve_time_spec,
    session_at_or_before,
    session_back,
    try_parse_timestring,
)

# 2026-11-22T00:21:20+01:00 (first session in the reference's examples)
T1 = 1795303280
MIN_T = -(2**31) + 86400  # 1901-12-14 and later are writable
MAX_T = 4102444800 - 86400 * 2  # before 2100


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2026-11-22T00:21:20+01:00", T1),
        ("2026-11-22T00-21-20+01-00", T1),
        ("2026-11-21T23:21:20Z", T1),
        ("2026-11-21T23-21-20Z", T1),
        ("2023-11-14T22:13:20Z", 1700000000),
        ("2023-11-14T22-13-20Z", 1700000000),
        ("2023-11-14T17:13:20-05:00", 1700000000),
        ("2026-11-22T00:21:33+01:00", 1795303293),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_observed_forms(text: str, epoch: int) -> None:
    assert parse_timestring(text) == epoch
    assert try_parse_timestring(text.encode()) == epoch


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-22T00:21:20",
        "2026-11-22T00:21:20+0100",
        "2026-11-22T00:21:20+01:00:00",
        "2026-11-22T00:21:20 ",
        "2026-13-22T00:21:20Z",
        "2026-11-32T00:21:20Z",
        "2026-11-22T24:21:20Z",
        "2026-11-22T00:60:20Z",
        "2026-11-22T00:21:62Z",
        "1900-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "2026-11-22T00:21:20+01:0x",
        "2026-11-22T00:21:20.5Z",
        "２０２６-11-22T00:21:20Z",
        "garbage",
    ],
)
def test_not_a_timestring(text: str) -> None:
    assert try_parse_timestring(text) is None
    with pytest.raises(CorruptRepository) as info:
        parse_timestring(text, path="repo/rdiff-backup-data/current_mirror.x.data")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("repo/rdiff-backup-data/current_mirror.x.data: bad time string")
    assert info.value.exit_code == ExitCode.CORRUPT


def test_non_ascii_bytes_are_not_a_timestring() -> None:
    assert try_parse_timestring(b"2026-11-22T00:21:20\xff") is None


def test_format_explicit_offsets() -> None:
    assert format_timestring(T1, utc_offset=3600) == "2026-11-22T00:21:20+01:00"
    assert format_timestring(T1, utc_offset=3600, compatible=True) == "2026-11-22T00-21-20+01-00"
    assert format_timestring(1700000000, utc_offset=0) == "2023-11-14T22:13:20Z"
    assert format_timestring(1700000000, utc_offset=0, compatible=True) == "2023-11-14T22-13-20Z"
    assert format_timestring(1700000000, utc_offset=-5 * 3600 - 1800) == "2023-11-14T16:43:20-05:30"


def test_format_uses_local_offset_at_that_instant(berlin: None) -> None:
    assert format_timestring(T1) == "2026-11-22T00:21:20+01:00"
    summer = parse_timestring("2026-07-01T12:00:00Z")
    assert format_timestring(summer) == "2026-07-01T14:00:00+02:00"


def test_format_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        format_timestring(4200000000, utc_offset=0)


@given(
    st.integers(min_value=MIN_T, max_value=MAX_T),
    st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: m * 60),
    st.booleans(),
)
def test_round_trip(epoch: int, offset: int, compatible: bool) -> None:
    text = format_timestring(epoch, utc_offset=offset, compatible=compatible)
    assert parse_timestring(text) == epoch
    assert len(text) in (20, 25)
    assert (":" in text) is not compatible


# ---- user time specs -------------------------------------------------------------------

NOW = 1795303293
SESSIONS = [1795000000, 1795100000, 1795200000, 1795303280]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("now", NOW),
        ("1795303278", 1795303278),
        ("2026-11-22T00:21:20+01:00", T1),
        ("2026-11-22T00-21-20+01-00", T1),
        ("2026-11-21T23:21:20Z", T1),
        ("2026-11-21T23:21Z", T1 - 20),
        ("2026-11-22T00:21:20+0100", T1),
        ("3D", NOW - 3 * 86400),
        ("2W", NOW - 14 * 86400),
        ("1M2D", NOW - 32 * 86400),
        ("10h", NOW - 36000),
        ("30m", NOW - 1800),
        ("45s", NOW - 45),
        ("1Y", NOW - 365 * 86400),
        ("1h78m", NOW - 3600 - 78 * 60),
        ("3D64s", NOW - 3 * 86400 - 64),
        ("0B", 1795303280),
        ("1B", 1795200000),
        ("3B", 1795000000),
        ("99B", 1795000000),
    ],
)
def test_time_specs(spec: str, expected: int) -> None:
    assert resolve_time_spec(spec, now=NOW, sessions=SESSIONS) == expected


def test_local_forms(berlin: None) -> None:
    midnight = parse_timestring("2026-11-22T00:00:00+01:00")
    for spec in ("2026-11-22", "2026/11/22", "11-22-2026", "11/22/2026", "2026-11-22T00:00"):
        assert resolve_time_spec(spec, now=NOW, sessions=SESSIONS) == midnight
    assert resolve_time_spec("2026-11-22T00:21:20", now=NOW) == T1
    assert resolve_time_spec("2026-11-22 00:21:20", now=NOW) == T1
    # summer date: local offset at that date (+02:00)
    assert resolve_time_spec("2026-7-1", now=NOW) == parse_timestring("2026-07-01T00:00:00+02:00")
    assert resolve_time_spec("Sun Nov 22 00:21:20 2026", now=NOW) == T1


@pytest.mark.parametrize(
    "spec", ["", "yesterday", "3", "3X", "D", "3D4", "2026-13-01", "2026-02-30", "B", "-3D"]
)
def test_bad_specs(spec: str) -> None:
    if spec == "3":  # a plain integer is epoch seconds
        assert resolve_time_spec(spec, now=NOW) == 3
        return
    with pytest.raises(TimeSpecError) as info:
        resolve_time_spec(spec, now=NOW, sessions=SESSIONS)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


def test_sessions_back_needs_sessions() -> None:
    with pytest.raises(TimeSpecError, match="no"):
        resolve_time_spec("2B", now=NOW, sessions=[])
    assert session_back(0, [3, 1, 2, 3]) == 3


def test_round_down_to_session() -> None:
    assert session_at_or_before(1795200001, SESSIONS) == 1795200000
    assert session_at_or_before(1795200000, SESSIONS) == 1795200000
    assert session_at_or_before(1, SESSIONS) == 1795000000
    assert session_at_or_before(NOW, SESSIONS) == 1795303280
    with pytest.raises(TimeSpecError):
        session_at_or_before(5, [])
