"""The reader's commonest-shape path (regular files without hard links, directories): the
same records, texts and errors as the general parsers, odd names included."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.rdb_format.test_metadata import dump, raw_parse

from rdb_format import metadata
from rdb_format.errors import CorruptRepository, HostilePath
from rdb_format.metadata import RawRecord, Record, format_record, path_key

OWNER: dict[str, Any] = {"uid": 1000, "uname": "user", "gid": 100, "gname": "users"}
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def common_hits(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The paths of the records the common path built (so a test knows it ran)."""
    hits: list[bytes] = []
    real = metadata._common

    def spy(match: Any) -> RawRecord | None:
        raw = real(match)
        if raw is not None:
            hits.append(raw.record.path)
        return raw

    monkeypatch.setattr(metadata, "_common", spy)
    return hits


ODD = [
    b".",
    b"!",  # sorts first: reads the shared owner lines (the general path) for the others
    b".hidden",
    b"caf\xc3\xa9",
    b"\xff\xfe not utf-8",
    b"new\nline",  # quoted: the general parser
    b"back\\slash",  # quoted: the general parser
    b"sp ace",
    b"File x",
    b"x" * 255,
]


def test_odd_names_read_back_exactly(common_hits: list[bytes]) -> None:
    records = []
    for n, name in enumerate(sorted(ODD, key=path_key)):
        if name == b".":
            records.append(Record(name, "dir", mod_time=5, permissions=0o755, **OWNER))
        else:
            sha = SHA if n % 2 else None
            records.append(
                Record(
                    name, "reg", size=n, sha1_digest=sha, mod_time=-n, permissions=0o644, **OWNER
                )
            )
    data = dump(records)
    raws = raw_parse(data)
    assert [r.record for r in raws] == records
    assert [r.key for r in raws] == [path_key(r.path) for r in records]
    assert b"".join(r.text or format_record(r.record) for r in raws) == data
    assert b"\xff\xfe not utf-8" in common_hits and b".hidden" in common_hits
    assert b"new\nline" not in common_hits and b"back\\slash" not in common_hits
    for raw in raws:
        assert raw.text == format_record(raw.record) or raw.text is None


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (b"a/../b", HostilePath),
        (b"a//b", HostilePath),
        (b"a/./b", HostilePath),
        (b"/a", HostilePath),
    ],
)
def test_hostile_paths_still_refused(path: bytes, error: type[Exception]) -> None:
    good = dump([Record(b"0", "dir", mod_time=1, permissions=0o755, **OWNER)])
    bad = good.replace(b"File 0", b"File " + path)
    with pytest.raises(error):
        raw_parse(good + bad)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        (b"Size", b"9223372036854775807", None),  # 2**63 - 1: the largest size
        (b"Size", b"9223372036854775808", CorruptRepository),
        (b"Size", b"99999999999999999999", CorruptRepository),
        (b"ModTime", b"-9223372036854775808", None),
        (b"ModTime", b"9223372036854775808", CorruptRepository),
    ],
)
def test_big_numbers_are_range_checked(
    field: bytes, value: bytes, error: type[Exception] | None
) -> None:
    first = dump([Record(b"a", "reg", size=1, mod_time=1, permissions=0o644, **OWNER)])
    second = first.replace(b"File a", b"File b")
    start = second.index(b"  " + field + b" ") + len(field) + 3
    end = second.index(b"\n", start)
    data = first + second[:start] + value + second[end:]
    if error is None:
        (_, raw) = raw_parse(data)
        assert getattr(raw.record, "size" if field == b"Size" else "mod_time") == int(value)
        assert raw.text == format_record(raw.record)
    else:
        with pytest.raises(error):
            raw_parse(data)


def test_a_record_followed_by_more_fields_is_not_taken_whole() -> None:
    base = dump([Record(b"a", "reg", size=1, mod_time=1, permissions=0o644, **OWNER)])
    extra = base.replace(b"File a", b"File b") + b"  Future 7\n"
    (_, raw) = raw_parse(base + extra)
    assert raw.text is None  # an unknown field: read, and written again canonically
    assert raw.record == Record(b"b", "reg", size=1, mod_time=1, permissions=0o644, **OWNER)


owners = st.fixed_dictionaries(
    {
        "uid": st.integers(0, 2**32 - 1),
        "uname": st.sampled_from([None, "root", "user"]),
        "gid": st.integers(0, 2**32 - 1),
        "gname": st.sampled_from([None, "wheel"]),
        "permissions": st.integers(0, 0o7777),
    }
)
names = st.binary(min_size=1, max_size=20).filter(
    lambda c: b"/" not in c and b"\0" not in c and c not in (b".", b"..")
)


@st.composite
def common_records(draw: st.DrawFn) -> Record:
    path = b"/".join(draw(st.lists(names, min_size=1, max_size=3)))
    owner = draw(st.sampled_from([0, 1]))  # few owners: most records take the common path
    fields = {**draw(owners), **([OWNER, {}][owner])}
    fields.setdefault("permissions", 0o644)
    mtime = draw(st.integers(-(2**63), 2**63 - 1))
    if draw(st.booleans()):
        return Record(path, "dir", mod_time=mtime, **fields)
    sha = draw(st.one_of(st.none(), st.binary(min_size=20, max_size=20).map(bytes.hex)))
    size = draw(st.integers(0, 2**63 - 1))
    return Record(path, "reg", size=size, sha1_digest=sha, mod_time=mtime, **fields)


@settings(max_examples=150)
@given(st.lists(common_records(), max_size=40))
def test_common_shapes_roundtrip(items: list[Record]) -> None:
    unique = {r.path: r for r in items}
    ordered = sorted(unique.values(), key=lambda r: path_key(r.path))
    data = dump(ordered)
    raws = raw_parse(data)
    assert [r.record for r in raws] == ordered
    assert all(type(r.record.type) is str for r in raws)
    assert b"".join(r.text or format_record(r.record) for r in raws) == data
