"""chars_to_quote quoting, special escapes and long names (reference §1.5, §1.6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdb_format.errors import CorruptRepository, HostilePath
from rdb_format.exitcodes import ExitCode
from rdb_format.quoting import (
    LONG_NAME_MARGIN,
    NO_QUOTING,
    Quoting,
    allocate_long_name,
    check_component,
    long_name_base,
    name_fits,
    read_next_free,
    read_quoting,
    write_quoting,
)

COLON = Quoting(b":")
UPPER = Quoting(b"A-Z")
CONTROL = Quoting(b"\\000-\\037\\200-\\377;")
WINDOWS = Quoting(b'"*/:<>?\\\\|\\177')
ALL_SETTINGS = [COLON, UPPER, CONTROL, WINDOWS, Quoting(b"A-Z", frozenset({"escape_dos_devices"}))]


@pytest.mark.parametrize(
    ("quoting", "name", "quoted"),
    [
        (COLON, b"co:lon", b"co;058lon"),
        (COLON, b"semi;colon", b"semi;059colon"),
        (UPPER, b"Sub", b";083ub"),
        (UPPER, b"X", b";088"),
        (
            UPPER,
            b"current_mirror.2026-11-22T00:22:54+01:00.data",
            b"current_mirror.2026-11-22;08400:22:54+01:00.data",
        ),
        (UPPER, b"x.2023-11-14T22:13:20Z.snapshot", b"x.2023-11-14;08422:13:20;090.snapshot"),
        (CONTROL, b"caf\xc3\xa9", b"caf;195;169"),
        (CONTROL, b"new\nline", b"new;010line"),
        (WINDOWS, b'a\\b"c|d', b"a;092b;034c;124d"),
        (NO_QUOTING, b"co:lon;083", b"co:lon;083"),
    ],
)
def test_observed(quoting: Quoting, name: bytes, quoted: bytes) -> None:
    assert quoting.quote(name) == quoted
    assert quoting.unquote(quoted) == name


def test_unquote_high_bytes_to_raw_bytes() -> None:
    # rdiff-backup 2.2.7 turns ;195;169 into UTF-8 of U+00C3 U+00A9; we decode the raw bytes.
    assert CONTROL.unquote(b";195;169") == b"\xc3\xa9"
    assert CONTROL.quotes_high_bytes
    assert not UPPER.quotes_high_bytes


def test_flags() -> None:
    assert COLON.quotes_colon
    assert WINDOWS.quotes_colon
    assert not UPPER.quotes_colon
    assert not NO_QUOTING.active
    assert not NO_QUOTING.quotes_colon
    assert UPPER.active


def test_lone_quote_char_is_kept() -> None:
    assert UPPER.unquote(b"a;b;12") == b"a;b;12"


def test_special_escapes() -> None:
    both = Quoting(b"A-Z", frozenset({"escape_dos_devices", "escape_trailing_spaces"}))
    assert both.quote(b"aux") == b";097ux"
    assert both.quote(b"con.txt") == b";099on.txt"
    assert both.quote(b"com1") == b";099om1"
    assert both.quote(b"console") == b"console"
    assert both.quote(b"name ") == b"name;032"
    assert both.quote(b"name.") == b"name;046"
    for name in (b"aux", b"con.txt", b"name ", b"name.", b"lpt9", b"nul"):
        assert both.unquote(both.quote(name)) == name
    # no escapes without an active chars_to_quote
    assert Quoting(b"", frozenset({"escape_trailing_spaces"})).quote(b"x ") == b"x "


@pytest.mark.parametrize("quoted", [b";047etc", b"a;000b", b";046", b";046;046", b""])
def test_hostile_unquote(quoted: bytes) -> None:
    with pytest.raises(HostilePath) as info:
        UPPER.unquote(quoted, path="repo/increments")
    assert str(info.value).startswith("repo/increments: unsafe file name")
    assert "\n" not in str(info.value)
    assert info.value.exit_code == ExitCode.CORRUPT


def test_hostile_without_quoting() -> None:
    for bad in (b"..", b"a/b", b"a\0b"):
        with pytest.raises(HostilePath):
            NO_QUOTING.unquote(bad)
        with pytest.raises(HostilePath):
            check_component(bad)


def test_out_of_range_escape() -> None:
    with pytest.raises(CorruptRepository, match="is not a byte") as info:
        UPPER.unquote(b"a;999", path="repo/x")
    assert str(info.value).startswith("repo/x: ")


def test_invalid_setting() -> None:
    with pytest.raises(ValueError, match="chars_to_quote"):
        Quoting(b"z-a")


names = st.binary(min_size=1, max_size=255).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)


@given(names, st.sampled_from(ALL_SETTINGS))
def test_round_trip(name: bytes, quoting: Quoting) -> None:
    quoted = quoting.quote(name)
    assert quoting.unquote(quoted) == name
    if quoting is WINDOWS:
        assert b"/" not in quoted


@given(names)
def test_quoted_names_avoid_the_class(name: bytes) -> None:
    quoted = COLON.quote(name)
    assert b":" not in quoted
    assert quoted.count(b";") == name.count(b";") + name.count(b":")


@pytest.mark.parametrize(
    "name", [b"new\nline", b"back\\slash", b"bad\xffname", b"L" * 255, b";;;", b";083"]
)
def test_hostile_examples(name: bytes) -> None:
    for quoting in ALL_SETTINGS:
        assert quoting.unquote(quoting.quote(name)) == name
    assert quoting.quote_path([name, b"x"]) == (quoting.quote(name), b"x")
    assert quoting.unquote_path(quoting.quote_path([name, b"x"])) == (name, b"x")


# ---- config files ---------------------------------------------------------------------


def test_read_missing(tmp_path: Path) -> None:
    quoting = read_quoting(tmp_path)
    assert quoting == NO_QUOTING
    assert quoting.missing == ("chars_to_quote", "special_escapes")


def test_write_read(tmp_path: Path) -> None:
    setting = Quoting(b"A-Z", frozenset({"escape_dos_devices", "escape_trailing_spaces"}))
    write_quoting(tmp_path, setting)
    assert (tmp_path / "chars_to_quote").read_bytes() == b"A-Z"
    assert (tmp_path / "special_escapes").read_bytes() == (
        b"escape_dos_devices\nescape_trailing_spaces"
    )
    again = read_quoting(tmp_path)
    assert again == setting
    assert again.missing == ()
    write_quoting(tmp_path, NO_QUOTING)
    assert (tmp_path / "chars_to_quote").read_bytes() == b""
    assert (tmp_path / "special_escapes").read_bytes() == b""


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("chars_to_quote", b"z-a", "invalid chars_to_quote"),
        ("special_escapes", b"escape_everything", "unknown special escape"),
        ("special_escapes", b"\xff", "ASCII"),
    ],
)
def test_bad_config(tmp_path: Path, file: str, content: bytes, message: str) -> None:
    (tmp_path / file).write_bytes(content)
    with pytest.raises(CorruptRepository, match=message) as info:
        read_quoting(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / file}: ")
    assert "\n" not in str(info.value)


# ---- long names -----------------------------------------------------------------------


def test_name_fits(tmp_path: Path) -> None:
    assert name_fits(tmp_path, b"L" * 200)
    assert not name_fits(tmp_path, b"L" * 240, margin=LONG_NAME_MARGIN)
    assert not name_fits(tmp_path, UPPER.quote(b"A" * 100))  # 400 bytes quoted


def test_allocate(tmp_path: Path) -> None:
    assert read_next_free(tmp_path) is None
    assert allocate_long_name(tmp_path) == 1
    assert (tmp_path / "long_filename_data" / "next_free").read_bytes() == b"2"
    assert allocate_long_name(tmp_path) == 2
    # a stale counter never hands out a used number
    (tmp_path / "long_filename_data" / "7.2026-11-22T00:21:20Z.diff.gz").write_bytes(b"")
    assert allocate_long_name(tmp_path) == 8
    assert read_next_free(tmp_path) == 9
    assert long_name_base(8) == b"8"


def test_bad_next_free(tmp_path: Path) -> None:
    (tmp_path / "long_filename_data").mkdir()
    (tmp_path / "long_filename_data" / "next_free").write_bytes(b"x\n")
    with pytest.raises(CorruptRepository, match="not a positive number") as info:
        read_next_free(tmp_path)
    assert "next_free: " in str(info.value)


# ---- index -> on-disk relative path ----------------------------------------------------------


def test_relpaths_as_rdiff_backup_names_them() -> None:
    from rdb_format.quoting import Quoting, increment_relpath, mirror_relpath

    upper = Quoting(b"A-Z")
    t = 1_700_000_000  # 2023-11-14T22:13:20Z
    assert mirror_relpath(()) == b"."
    assert mirror_relpath((b"Sub", b"X"), upper) == b";083ub/;088"
    assert mirror_relpath((b"a", b"b;c")) == b"a/b;c"
    assert (
        increment_relpath((b"Sub", b"X"), t, "diff", upper, compressed=True)
        == b"increments/;083ub/;088.2023-11-14;08422:13:20;090.diff.gz"
    )
    assert increment_relpath((), t, "dir", upper) == b"increments.2023-11-14;08422:13:20;090.dir"
    assert (
        increment_relpath((b"co:lon",), t, "missing", Quoting(b":"))
        == b"increments/co;058lon.2023-11-14T22-13-20Z.missing"
    )
    assert (
        increment_relpath((b"d", b"f"), t, "snapshot", utc_offset=3600)
        == b"increments/d/f.2023-11-14T23:13:20+01:00.snapshot"
    )


def test_relpaths_of_long_names() -> None:
    from rdb_format.quoting import increment_relpath, mirror_relpath

    t = 1_700_000_000
    long = (b"d", b"L" * 240)
    assert (
        mirror_relpath(long, alternate_mirror_name=2) == b"rdiff-backup-data/long_filename_data/2"
    )
    assert (
        increment_relpath(long, t, "diff", compressed=True, alternate_name=1)
        == b"long_filename_data/1.2023-11-14T22:13:20Z.diff.gz"
    )


@pytest.mark.parametrize("bad", [(b"..",), (b"a/b",), (b"",), (b"x\0",)])
def test_relpaths_refuse_unsafe_components(bad: tuple[bytes, ...]) -> None:
    from rdb_format.errors import HostilePath
    from rdb_format.quoting import increment_relpath, mirror_relpath

    with pytest.raises(HostilePath):
        mirror_relpath(bad)
    with pytest.raises(HostilePath):
        increment_relpath(bad, 1_700_000_000, "missing")
