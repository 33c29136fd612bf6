"""extended_attributes and access_control_lists files: quoting, records, hostile input."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdb_format.eas_acls import (
    ACLEntry,
    ACLRecord,
    EARecord,
    acl_quote,
    acl_unquote,
    format_acl_record,
    format_ea_record,
    is_trivial_acl,
    iter_acl_records,
    iter_ea_records,
    parse_acl_entry,
    write_acl_file,
    write_ea_file,
)
from rdb_format.errors import CorruptRepository, HostilePath
from rdb_format.metadata import path_key
from rdb_format.metadata_diff import find_session_file
from rdb_format.timestamps import parse_timestring

T = parse_timestring("2026-11-22T00:21:20Z")

# Observed on rdiff-backup 2.2.7 (reference §9)
EA_OBSERVED = b"# file: file1.txt\nuser.foo=0sYmFy\n"
ACL_OBSERVED = b"# file: file1.txt\nuser::rw-\nuser:nobody:r--\ngroup::---\nmask::r--\nother::---\n"


def eas(data: bytes, name: str = "extended_attributes.T.snapshot") -> list[EARecord]:
    return list(iter_ea_records(io.BytesIO(data), name=name))


def acls(data: bytes, name: str = "access_control_lists.T.snapshot") -> list[ACLRecord]:
    return list(iter_acl_records(io.BytesIO(data), name=name))


def test_observed_ea_record() -> None:
    (record,) = eas(EA_OBSERVED)
    assert record == EARecord(b"file1.txt", ((b"user.foo", b"bar"),))
    assert format_ea_record(record) == EA_OBSERVED


def test_observed_acl_record() -> None:
    (record,) = acls(ACL_OBSERVED)
    assert record.path == b"file1.txt"
    assert record.entries == (
        ACLEntry("user", "", "rw-"),
        ACLEntry("user", "nobody", "r--"),
        ACLEntry("group", "", "---"),
        ACLEntry("mask", "", "r--"),
        ACLEntry("other", "", "---"),
    )
    assert format_acl_record(record) == ACL_OBSERVED
    assert not is_trivial_acl(record.entries)


def test_default_acl_and_comments() -> None:
    data = (
        b"# file: d\n# owner: root\nuser::rwx\ngroup::r-x\nother::r-x\n"
        b"default:user::rwx\ndefault:group::r-x\ndefault:other::---  # effective\n\n"
    )
    (record,) = acls(data)
    assert record.entries[3:] == (
        ACLEntry("user", "", "rwx", default=True),
        ACLEntry("group", "", "r-x", default=True),
        ACLEntry("other", "", "---", default=True),
    )
    assert is_trivial_acl(record.entries[:3])
    assert not is_trivial_acl(record.entries)


def test_acl_quoting() -> None:
    assert acl_quote(b"with space.txt") == b"with\\040space.txt"
    assert acl_quote(b"new\nline") == b"new\\012line"
    assert acl_quote(b"a\\b=c\xff") == b"a\\134b\\075c\\377"
    assert acl_quote(b"plain-name_1.txt") == b"plain-name_1.txt"
    assert acl_unquote(b"with\\040space.txt") == b"with space.txt"
    for bad in (b"a\\04", b"a\\x41", b"a\\999", b"a\\"):
        with pytest.raises(ValueError):
            acl_unquote(bad)


def test_empty_ea_value_is_the_bare_name() -> None:
    record = EARecord(b"f", ((b"user.empty", b""), (b"user.x", b"\x00\xff")))
    data = format_ea_record(record)
    assert data == b"# file: f\nuser.empty\nuser.x=0sAP8=\n"
    assert eas(data) == [record]
    odd = EARecord(b"f", ((b"user.sp ace", b""),))
    assert format_ea_record(odd) == b"# file: f\nuser.sp\\040ace=0s\n"
    assert eas(format_ea_record(odd)) == [odd]


def test_hex_encoded_values_are_read() -> None:
    assert eas(b"# file: f\nuser.a=0x6869\n") == [EARecord(b"f", ((b"user.a", b"hi"),))]


def test_root_and_order() -> None:
    records = [EARecord(p, ((b"user.a", b"1"),)) for p in (b".", b"a", b"a/b", b"a.b")]
    data = b"".join(format_ea_record(r) for r in records)
    assert data.startswith(b"# file: .\n")
    assert eas(data) == records
    with pytest.raises(CorruptRepository, match="out of order"):
        eas(format_ea_record(records[2]) + format_ea_record(records[3]) + data)


@pytest.mark.parametrize(
    ("data", "error", "why"),
    [
        (b"# file: ..\nuser.a=0sYQ==\n", HostilePath, "'..'"),
        (b"# file: /etc\nuser.a=0sYQ==\n", HostilePath, "absolute"),
        (b"# file: a\\000b\nuser.a=0sYQ==\n", HostilePath, "NUL"),
        (b"# file: a\\9\nuser.a=0sYQ==\n", CorruptRepository, "bad '# file:'"),
        (b"user.a=0sYQ==\n", CorruptRepository, "before the first"),
        (b"# file: a\nuser.a=0s!!!\n", CorruptRepository, "bad attribute"),
        (b"# file: a\nuser.a=YQ==\n", CorruptRepository, "bad attribute"),
        (b"# file: a\nuser.a=0sYQ==", CorruptRepository, "truncated"),
    ],
)
def test_hostile_and_garbled_eas(data: bytes, error: type[Exception], why: str) -> None:
    with pytest.raises(error) as info:
        eas(data, name="extended_attributes.2026-11-22T00:21:20Z.snapshot.gz")
    text = str(info.value)
    assert "\n" not in text
    assert "extended_attributes.2026-11-22T00:21:20Z.snapshot.gz" in text
    assert why in text


@pytest.mark.parametrize(
    "line",
    [b"user::rwxx", b"bogus::rw-", b"user:rw-", b"mask:x:r--", b"user::rwz", b"user::"],
)
def test_garbled_acl_entries(line: bytes) -> None:
    with pytest.raises(CorruptRepository) as info:
        acls(b"# file: a\n" + line + b"\n", name="access_control_lists.X.snapshot")
    assert "access_control_lists.X.snapshot" in str(info.value)


def test_abbreviated_acl_entries() -> None:
    assert parse_acl_entry("d:u:bob:r-x") == ACLEntry("user", "bob", "r-x", default=True)
    assert parse_acl_entry("o::r") == ACLEntry("other", "", "r")


def test_files(tmp_path: Path) -> None:
    records = eas(EA_OBSERVED)
    path = write_ea_file(tmp_path / "extended_attributes.2026-11-22T00:21:20Z.snapshot", records)
    assert path.name.endswith(".snapshot.gz")
    assert gzip.decompress(path.read_bytes()) == EA_OBSERVED
    assert list(iter_ea_records(path)) == records
    empty = write_acl_file(tmp_path / "access_control_lists.2026-11-22T00:21:20Z.snapshot", [])
    assert empty.read_bytes() == b""
    assert list(iter_acl_records(empty)) == []
    assert find_session_file(tmp_path, "extended_attributes", T) == path
    assert find_session_file(tmp_path, "access_control_lists", T) == empty
    assert find_session_file(tmp_path, "access_control_lists", T + 1) is None
    with pytest.raises(ValueError, match="out of order"):
        write_ea_file(tmp_path / "e", [records[0], records[0]])


component = st.binary(min_size=1, max_size=255).filter(
    lambda c: b"/" not in c and b"\0" not in c and c not in (b".", b"..")
)
paths = st.lists(component, min_size=1, max_size=3).map(b"/".join)
attr_names = st.binary(min_size=1, max_size=40).filter(lambda n: b"\0" not in n)


@settings(max_examples=200)
@given(paths, st.lists(st.tuples(attr_names, st.binary(max_size=100)), max_size=5))
def test_ea_roundtrip(path: bytes, attributes: list[tuple[bytes, bytes]]) -> None:
    record = EARecord(path, tuple(attributes))
    assert eas(format_ea_record(record)) == [record]


entries = st.builds(
    ACLEntry,
    tag=st.sampled_from(["user", "group"]),
    qualifier=st.one_of(st.just(""), st.from_regex(r"[a-z_][a-z0-9_-]{0,15}", fullmatch=True)),
    perms=st.sampled_from(["rwx", "r--", "---", "rw-", "-w-"]),
    default=st.booleans(),
)


@settings(max_examples=100)
@given(st.lists(st.tuples(paths, st.lists(entries, max_size=6)), max_size=6))
def test_acl_stream_roundtrip(items: list[tuple[bytes, list[ACLEntry]]]) -> None:
    unique = {p: ACLRecord(p, tuple(e)) for p, e in items}
    records = sorted(unique.values(), key=lambda r: path_key(r.path))
    data = b"".join(format_acl_record(r) for r in records)
    assert acls(data) == records
