"""The tagged encoding and the frames: round trips, and hostile input refused in one line."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.rdb_remote.echo_server import CODEC, Note

from rdb_format.errors import ProtocolError
from rdb_format.exitcodes import ExitCode
from rdb_format.metadata import Record
from rdb_remote.framing import MAX_FRAME, TruncatedStream, read_frame, write_frame
from rdb_remote.wire import MAX_DEPTH, Codec

RECORD = Record(
    b"a/b\nc",
    "reg",
    size=12,
    num_hard_links=2,
    inode=2**63 + 5,
    device_loc=-1,
    sha1_digest="0" * 40,
    mod_time=-86400,
    uid=0,
    uname="root",
    gid=0,
    gname=None,
    permissions=0o4755,
)

notes = st.builds(
    Note,
    number=st.integers(min_value=-(2**100), max_value=2**100),
    data=st.binary(max_size=300),
    text=st.text(max_size=50),
    maybe=st.none() | st.text(max_size=5),
    flag=st.booleans(),
    items=st.lists(st.binary(max_size=10), max_size=5).map(tuple),
    record=st.none() | st.just(RECORD),
)


@given(notes)
def test_every_field_kind_round_trips(note: Note) -> None:
    assert CODEC.decode(CODEC.encode(note)) == note


def test_record_and_nested_values_round_trip() -> None:
    value = (
        RECORD,
        (b"x", (1, -1, None, True, False, 1.5, -0.0, 2**63 - 1, -(2**63), 2**64, 1 << 20)),
        "\udcff surrogate",
    )
    assert CODEC.decode(CODEC.encode(value)) == value


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_value_or_a_protocol_error(junk: bytes) -> None:
    try:
        CODEC.decode(junk)
    except ProtocolError as error:
        assert "\n" not in str(error)
        assert error.exit_code == ExitCode.PROTOCOL


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "truncated value"),
        (b"Z", "unknown tag"),
        (b"b\x05ab", "past the end"),
        (b"i" + b"\xff" * 30, "number too long"),
        (b"i\xff\xff", "truncated number"),
        (b"NN", "bytes after the message"),
        (b"d\x00\x00", "truncated value"),
        (b"q\x00\x00\x00", "truncated value"),
        (b"S\x05", "unknown message type"),
        (b"s\x02\xff\xfe", "not UTF-8"),
        (b"t\xff\xff\xff\x7f", "past the end"),
        (b"t\x01" * (MAX_DEPTH + 1) + b"N", "nested too deep"),
    ],
)
def test_malformed_payloads_are_one_line_protocol_errors(payload: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        CODEC.decode(payload)


def test_a_struct_field_of_the_wrong_type_is_refused() -> None:
    good = CODEC.encode(Note(1, b"d", "t", None, True, ()))
    bad = good.replace(b"i\x02", b"b\x01x", 1)  # number: an int becomes bytes
    with pytest.raises(ProtocolError, match=r"Note.number has a value of the wrong type"):
        CODEC.decode(bad)
    wrong_items = CODEC.encode(Note(1, b"d", "t", None, True, ())).replace(b"t\x00", b"t\x01i\x02")
    with pytest.raises(ProtocolError, match=r"Note.items"):
        CODEC.decode(wrong_items)


def test_a_record_with_a_bad_field_is_refused() -> None:
    data = CODEC.encode(RECORD)
    assert b"s\x03reg" in data
    bad = data.replace(b"s\x03reg", b"s\x03bad", 1)  # the type must be a FileType
    with pytest.raises(ProtocolError, match="metadata record has a bad field"):
        CODEC.decode(bad)


def test_values_outside_the_encoding_cannot_be_sent() -> None:
    with pytest.raises(TypeError, match="cannot carry"):
        CODEC.encode({"a": 1})
    with pytest.raises(TypeError, match="cannot carry"):
        CODEC.encode([1])

    @dataclass
    class Other:
        x: list[int]

    with pytest.raises(TypeError, match="cannot carry"):
        Codec([Other])


def test_frames_round_trip_and_end_cleanly() -> None:
    stream = io.BytesIO()
    assert write_frame(stream, b"hello") == 9
    write_frame(stream, b"")
    stream.seek(0)
    assert read_frame(stream) == b"hello"
    assert read_frame(stream) == b""
    assert read_frame(stream) is None


def test_a_truncated_frame_and_an_oversized_one_are_told_apart() -> None:
    with pytest.raises(TruncatedStream):
        read_frame(io.BytesIO(b"\x00\x00\x00\x09abc"))
    with pytest.raises(TruncatedStream):
        read_frame(io.BytesIO(b"\x00\x00"))
    with pytest.raises(ProtocolError, match="more than"):
        read_frame(io.BytesIO((MAX_FRAME + 1).to_bytes(4, "big")))
