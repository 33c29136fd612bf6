"""mirror_metadata records: grammar, field sets, quoting, order, hostile and garbled input."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdb_format.errors import CorruptRepository, HostilePath
from rdb_format.metadata import (
    FIELD_ORDER,
    FileType,
    MetadataWriter,
    RawRecord,
    Record,
    format_record,
    iter_raw_records,
    iter_records,
    path_key,
    quote_path,
    safe_name,
    unquote_path,
    write_metadata_file,
)

SHA = "4aaf8f1bc676d6c000dff7c99abc088fb55d8758"
OWNER: dict[str, Any] = {"uid": 0, "uname": "root", "gid": 0, "gname": "root"}

# Records transcribed from the reference note §9 (observed on rdiff-backup 2.2.7).
OBSERVED = (
    b"File .\n  Type dir\n  ModTime 1795303278\n  Uid 0\n  Uname root\n  Gid 0\n"
    b"  Gname root\n  Permissions 493\n"
    b"File " + b"L" * 240 + b"\n  Type reg\n  Size 5\n"
    b"  SHA1Digest 4aaf8f1bc676d6c000dff7c99abc088fb55d8758\n  ModTime 1795303278\n"
    b"  Uid 0\n  Uname root\n  Gid 0\n  Gname root\n  Permissions 420\n"
    b"  AlternateIncrementName 1\n"
    b"File back\\\\slash.txt\n  Type reg\n  Size 3\n  ModTime 1795303278\n  Uid 0\n"
    b"  Uname root\n  Gid 0\n  Gname root\n  Permissions 420\n"
    b"File bad\xffname.txt\n  Type reg\n  Size 3\n  ModTime 1795303278\n  Uid 0\n"
    b"  Uname root\n  Gid 0\n  Gname root\n  Permissions 420\n"
    b"File chardev\n  Type dev\n  DeviceNum c 1 3\n  Uid 0\n  Uname root\n  Gid 0\n"
    b"  Gname root\n  Permissions 420\n"
    b"File hard1\n  Type reg\n  Size 5\n  NumHardLinks 2\n  Inode 2147537\n"
    b"  DeviceLoc 65024\n  SHA1Digest 61f989da454225f99b2adaf8f2be0a93bca85eac\n"
    b"  ModTime 1795303278\n  Uid 0\n  Uname root\n  Gid 0\n  Gname root\n"
    b"  Permissions 420\n"
    b"File hard2\n  Type reg\n  Size 5\n  NumHardLinks 2\n  Inode 2147537\n"
    b"  DeviceLoc 65024\n  ModTime 1795303278\n  Uid 0\n  Uname root\n  Gid 0\n"
    b"  Gname root\n  Permissions 420\n"
    b"File link\n  Type sym\n  SymData file1.txt\n  Uid 0\n  Uname root\n  Gid 0\n"
    b"  Gname root\n  Permissions 511\n"
    b"File new\\nline.txt\n  Type reg\n  Size 3\n  ModTime 1795303278\n  Uid 0\n"
    b"  Uname root\n  Gid 0\n  Gname root\n  Permissions 420\n"
    b"File orphan\n  Type reg\n  Size 2\n"
    b"  SHA1Digest 6fcf9dfbd479ed82697fee719b9f8c610a11ff2a\n  ModTime 1795303601\n"
    b"  Uid 4242\n  Uname :\n  Gid 4343\n  Gname :\n  Permissions 2541\n"
)


def parse(data: bytes, name: str = "mirror_metadata.test.snapshot") -> list[Record]:
    return list(iter_records(io.BytesIO(data), name=name))


def dump(records: list[Record], *, allow_missing: bool = False) -> bytes:
    out = io.BytesIO()
    with MetadataWriter(out, allow_missing=allow_missing) as writer:
        writer.write_all(records)
    return out.getvalue()


def reg(path: bytes, **kw: object) -> Record:
    values: dict[str, Any] = {"size": 0, "mod_time": 0, "permissions": 0o644, **OWNER}
    values.update(kw)
    return Record(path, "reg", **values)


# -- observed records ------------------------------------------------------------------------


def test_observed_records_parse_and_reformat_to_the_same_bytes() -> None:
    records = parse(OBSERVED)
    assert dump(records) == OBSERVED
    assert [r.path for r in records] == [
        b".",
        b"L" * 240,
        b"back\\slash.txt",
        b"bad\xffname.txt",
        b"chardev",
        b"hard1",
        b"hard2",
        b"link",
        b"new\nline.txt",
        b"orphan",
    ]


def test_observed_field_values() -> None:
    root, long, *_, chardev, hard1, hard2, link, _nl, orphan = parse(OBSERVED)
    assert root == Record(b".", "dir", mod_time=1795303278, permissions=493, **OWNER)
    assert long.alternate_increment_name == 1
    assert long.sha1_digest == SHA
    assert chardev.device_num == ("c", 1, 3)
    assert chardev.mod_time is None
    assert (hard1.num_hard_links, hard1.inode, hard1.device_loc) == (2, 2147537, 65024)
    assert hard2.sha1_digest is None
    assert link.sym_data == b"file1.txt"
    assert link.mod_time is None
    assert (orphan.uname, orphan.gname, orphan.uid, orphan.permissions) == (None, None, 4242, 2541)


def test_diff_records_with_type_none() -> None:
    data = b"File hard3\n  Type None\n"
    (record,) = parse(data)
    assert record == Record.missing(b"hard3")
    assert not record.exists
    assert dump([record], allow_missing=True) == data
    with pytest.raises(ValueError, match="outside a diff"):
        dump([record])


# -- field sets per type ---------------------------------------------------------------------


def _fields(data: bytes) -> list[str]:
    return [line.split()[0].decode() for line in data.splitlines()[1:]]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            reg(b"f", sha1_digest=SHA, num_hard_links=3, inode=7, device_loc=9),
            ["Type", "Size", "NumHardLinks", "Inode", "DeviceLoc", "SHA1Digest", "ModTime"],
        ),
        (reg(b"f", num_hard_links=1, inode=7, device_loc=9), ["Type", "Size", "ModTime"]),
        (reg(b"f", alternate_mirror_name=4), ["Type", "Size", "ModTime"]),
        (
            reg(b"f", resource_fork=b"00ff", carbon_file=b"None"),
            ["Type", "Size", "ResourceFork", "CarbonFile", "ModTime"],
        ),
        (
            Record(b"d", "dir", size=4096, mod_time=5, permissions=0o755, **OWNER),
            ["Type", "ModTime"],
        ),
        (Record(b"p", "fifo", mod_time=5, permissions=0o644, **OWNER), ["Type", "ModTime"]),
        (Record(b"s", "sock", mod_time=5, permissions=0o755, **OWNER), ["Type", "ModTime"]),
        (
            Record(b"l", "sym", sym_data=b"t", mod_time=5, permissions=0o777, **OWNER),
            ["Type", "SymData"],
        ),
        (
            Record(b"b", "dev", device_num=("b", 8, 0), mod_time=5, permissions=0o660, **OWNER),
            ["Type", "DeviceNum"],
        ),
    ],
)
def test_field_set_per_type(record: Record, expected: list[str]) -> None:
    data = format_record(record)
    names = _fields(data)
    tail = ["Uid", "Uname", "Gid", "Gname", "Permissions"]
    if record.alternate_mirror_name is not None:
        tail.append("AlternateMirrorName")
    assert names == expected + tail
    assert names == sorted(names, key=FIELD_ORDER.index)
    (back,) = parse(data)
    assert format_record(back) == data


def test_writer_requires_the_fields_rdiff_backup_needs() -> None:
    with pytest.raises(ValueError, match="lacks Size"):
        format_record(Record(b"f", "reg", mod_time=0, permissions=0, **OWNER))
    with pytest.raises(ValueError, match="lacks SymData"):
        format_record(Record(b"l", "sym", permissions=0, **OWNER))
    with pytest.raises(ValueError, match="lacks Uid"):
        format_record(Record(b"d", "dir", mod_time=0, permissions=0, gid=0))
    with pytest.raises(ValueError, match="both alternate names"):
        format_record(reg(b"f", alternate_mirror_name=1, alternate_increment_name=2))
    with pytest.raises(ValueError, match="out of range"):
        format_record(reg(b"f", permissions=0o10000))
    with pytest.raises(ValueError, match="SHA1Digest"):
        format_record(reg(b"f", sha1_digest="xyz"))


def test_names_must_be_readable_by_rdiff_backup() -> None:
    assert safe_name("root") == "root"
    for bad in ("jürgen", "", "a\nb", ":", "None", None):
        assert safe_name(bad) is None
    with pytest.raises(ValueError, match="safe_name"):
        format_record(reg(b"f", uname="jürgen"))
    assert b"  Uname :\n" in format_record(reg(b"f", uname=None))


def test_uname_none_from_old_repositories_reads_as_unknown() -> None:
    (record,) = parse(OBSERVED.split(b"File L")[0].replace(b"Uname root", b"Uname None"))
    assert record.uname is None


def test_unknown_fields_are_ignored() -> None:
    data = OBSERVED.split(b"File L")[0].replace(b"  Uid 0\n", b"  Uid 0\n  FutureField 12 x\n")
    (record,) = parse(data)
    assert record.uid == 0


def test_field_lines_may_have_any_indentation() -> None:
    data = b"File f\nType fifo\n    ModTime 1\n Uid 1\n Gid 2\n Permissions 420\n\n"
    (record,) = parse(data)
    assert record == Record(b"f", "fifo", mod_time=1, uid=1, gid=2, permissions=420)


# -- quoting and order -----------------------------------------------------------------------


def test_quoting() -> None:
    assert quote_path(b"a\\b\nc\xff d\t:") == b"a\\\\b\\nc\xff d\t:"
    assert unquote_path(b"a\\\\b\\nc") == b"a\\b\nc"
    assert unquote_path(b"\\\\n") == b"\\n"
    for bad in (b"a\\tb", b"trailing\\", b"\\x41"):
        with pytest.raises(ValueError):
            unquote_path(bad)


def test_symlink_target_quoting() -> None:
    record = Record(b"l", "sym", sym_data=b"../x\\y\nz\xfe", permissions=0o777, **OWNER)
    data = format_record(record)
    assert b"  SymData ../x\\\\y\\nz\xfe\n" in data
    assert parse(data) == [record]


def test_order_is_by_components_not_by_string() -> None:
    paths = [b"a.b", b"archive.gz", b"a/b", b".", b"a", b"L" * 3, b"a/b/c", b"a-"]
    assert sorted(paths, key=path_key) == [
        b".",
        b"LLL",
        b"a",
        b"a/b",
        b"a/b/c",
        b"a-",
        b"a.b",
        b"archive.gz",
    ]
    assert sorted(paths) != sorted(paths, key=path_key)


def test_writer_refuses_out_of_order_and_duplicates() -> None:
    writer = MetadataWriter(io.BytesIO())
    writer.write(reg(b"a/b"))
    with pytest.raises(ValueError, match="out of order"):
        writer.write(reg(b"a"))
    with pytest.raises(ValueError, match="out of order"):
        writer.write(reg(b"a/b"))
    writer.write(reg(b"a.b"))
    with pytest.raises(ValueError, match="out of order"):
        writer.write(reg(b"a/c"))


@pytest.mark.parametrize("bad", [b"../x", b"a/../b", b"/etc/passwd", b"a\0b", b"a//b", b"a/", b""])
def test_writer_refuses_unsafe_paths(bad: bytes) -> None:
    with pytest.raises(ValueError):
        format_record(reg(bad))


# -- hostile and garbled input -----------------------------------------------------------------


def _one_line_naming(error: pytest.ExceptionInfo[Exception], name: str) -> str:
    text = str(error.value)
    assert "\n" not in text
    assert name in text
    return text


@pytest.mark.parametrize(
    ("path", "why"),
    [
        (b"..", "'..'"),
        (b"a/../../etc", "'..'"),
        (b"/etc/passwd", "absolute"),
        (b"a\0b", "NUL"),
        (b"a//b", "empty or '.'"),
        (b"./a", "empty or '.'"),
        (b"a/", "empty or '.'"),
    ],
)
def test_hostile_paths(path: bytes, why: str) -> None:
    data = b"File " + path + b"\n  Type fifo\n  ModTime 1\n  Uid 1\n  Gid 1\n  Permissions 1\n"
    with pytest.raises(HostilePath) as error:
        parse(data, name="mirror_metadata.X.snapshot.gz")
    text = _one_line_naming(error, "mirror_metadata.X.snapshot.gz")
    assert why in text


GOOD = b"File a\n  Type fifo\n  ModTime 1\n  Uid 1\n  Uname u\n  Gid 1\n  Permissions 1\n"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"  Type reg\n" + GOOD, "before the first File"),
        (b"garbage\n" + GOOD, "before the first File"),
        (GOOD.replace(b"ModTime 1", b"ModTime one"), "bad ModTime"),
        (GOOD.replace(b"ModTime 1", b"ModTime 99999999999999999999"), "bad ModTime"),
        (GOOD.replace(b"Uid 1", b"Uid -1"), "bad Uid"),
        (GOOD.replace(b"Uid 1", b"Uid 4294967296"), "bad Uid"),
        (GOOD.replace(b"Permissions 1", b"Permissions 4096"), "bad Permissions"),
        (GOOD.replace(b"Type fifo", b"Type blob"), "unknown Type"),
        (GOOD.replace(b"  Type fifo\n", b""), "no Type"),
        (GOOD.replace(b"  Uid 1\n", b""), "without Uid"),
        (GOOD.replace(b"  ModTime 1\n", b""), "without ModTime"),
        (GOOD.replace(b"  ModTime 1\n", b"  ModTime 1\n  ModTime 2\n"), "duplicate field"),
        (GOOD.replace(b"  Uid 1\n", b"  Uid\n"), "garbled"),
        (GOOD.replace(b"  Uid 1\n", b"  U!d 1\n"), "garbled"),
        (GOOD.replace(b"  Uname u\n", b"  Uname \n"), "bad Uname"),
        (GOOD.replace(b"File a", b"File a\\t"), "bad File line"),
        (GOOD + b"File a\n  Type None\n", "out of order"),
        (GOOD.replace(b"File a", b"File b") + b"File a\n  Type None\n", "out of order"),
        (b"File a\n  Type None\n  Size 3\n", "Type None record with other fields"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"File b\n  Type fifo\n  Mod", "truncated"),
        (GOOD.replace(b"  ModTime 1\n", b"  ModTime 1\n  SHA1Digest abc\n"), "bad SHA1"),
        (GOOD.replace(b"Type fifo", b"Type dev").replace(b"ModTime 1", b"DeviceNum x 1 2"), "Dev"),
        (GOOD + GOOD.replace(b"File a", b"File b").replace(b"  Gid 1\n", b"  Gid 1x\n"), "Gid"),
    ],
)
def test_garbled_input(data: bytes, why: str) -> None:
    with pytest.raises(CorruptRepository) as error:
        parse(data, name="mirror_metadata.2026-11-22T00:21:20+01:00.snapshot.gz")
    assert not isinstance(error.value, HostilePath)
    text = _one_line_naming(error, "mirror_metadata.2026-11-22T00:21:20+01:00.snapshot.gz")
    assert why in text


def test_truncated_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "mirror_metadata.2026-11-22T00:21:20Z.snapshot.gz"
    path.write_bytes(gzip.compress(OBSERVED * 1)[:-30])
    with pytest.raises(CorruptRepository) as error:
        list(iter_records(path))
    assert "truncated" in _one_line_naming(error, path.name)


def test_not_gzip_file_with_gz_name(tmp_path: Path) -> None:
    path = tmp_path / "mirror_metadata.2026-11-22T00:21:20Z.snapshot.gz"
    path.write_bytes(OBSERVED)
    with pytest.raises(CorruptRepository) as error:
        list(iter_records(path))
    assert "gzip" in _one_line_naming(error, path.name)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CorruptRepository) as error:
        list(iter_records(tmp_path / "mirror_metadata.X.snapshot.gz"))
    _one_line_naming(error, "mirror_metadata.X.snapshot.gz")


def test_empty_file_has_no_records() -> None:
    assert parse(b"") == []


# -- files -----------------------------------------------------------------------------------


def test_write_metadata_file_gzip_and_empty(tmp_path: Path) -> None:
    records = parse(OBSERVED)
    written = write_metadata_file(
        tmp_path / "mirror_metadata.2026-11-22T00:21:20Z.snapshot", records
    )
    assert written.name == "mirror_metadata.2026-11-22T00:21:20Z.snapshot.gz"
    raw = written.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] & 0x08  # FNAME: the uncompressed name, as Python's GzipFile writes it
    assert b"mirror_metadata.2026-11-22T00:21:20Z.snapshot\0" in raw[:100]
    assert gzip.decompress(raw) == OBSERVED
    assert list(iter_records(written)) == records

    empty = write_metadata_file(tmp_path / "mirror_metadata.2026-11-22T00:21:21Z.diff", [])
    assert empty.name == "mirror_metadata.2026-11-22T00:21:21Z.diff"
    assert empty.read_bytes() == b""
    plain = write_metadata_file(tmp_path / "m.snapshot", records, compress=False)
    assert plain.read_bytes() == OBSERVED
    assert not list(tmp_path.glob("rdiff-backup.tmp.*"))


def test_write_metadata_file_leaves_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="out of order"):
        write_metadata_file(tmp_path / "m.snapshot", [reg(b"b"), reg(b"a")])
    assert list(tmp_path.iterdir()) == []


def test_reader_is_lazy() -> None:
    stream = io.BytesIO(OBSERVED + b"File zzz\n  Type bogus\n")
    records = iter_records(stream, name="m")
    assert next(records).path == b"."


# -- properties ------------------------------------------------------------------------------

component = st.binary(min_size=1, max_size=255).filter(
    lambda c: b"/" not in c and b"\0" not in c and c not in (b".", b"..")
)
hostile_component = st.sampled_from(
    [b"new\nline", b"back\\slash", b"\\n", b"\xff\xfe", b"sp ace", b"File x", b"x" * 255, b"\\"]
)
paths = st.lists(st.one_of(component, hostile_component), min_size=1, max_size=4).map(b"/".join)
names = st.one_of(
    st.none(), st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1)
)
names = names.filter(lambda n: n not in (":", "None"))
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
sha1 = st.one_of(st.none(), st.binary(min_size=20, max_size=20).map(bytes.hex))


@st.composite
def records(draw: st.DrawFn, path: bytes | None = None) -> Record:
    p = draw(paths) if path is None else path
    kind = draw(st.sampled_from(["reg", "dir", "sym", "fifo", "sock", "dev"]))
    common: dict[str, Any] = {
        "uid": draw(u32),
        "uname": draw(names),
        "gid": draw(u32),
        "gname": draw(names),
        "permissions": draw(st.integers(0, 0o7777)),
    }
    mtime = draw(st.integers(-(2**63), 2**63 - 1))
    if kind == "reg":
        nlink = draw(st.one_of(st.none(), st.integers(2, 2**64 - 1)))
        alt = draw(st.sampled_from(["none", "mirror", "increment"]))
        return Record(
            p,
            "reg",
            size=draw(st.integers(0, 2**63 - 1)),
            num_hard_links=nlink,
            inode=None if nlink is None else draw(u64),
            device_loc=None if nlink is None else draw(u64),
            sha1_digest=draw(sha1),
            mod_time=mtime,
            alternate_mirror_name=draw(u64) if alt == "mirror" else None,
            alternate_increment_name=draw(u64) if alt == "increment" else None,
            **common,
        )
    if kind == "sym":
        target = draw(st.one_of(st.binary(min_size=1, max_size=300), hostile_component))
        return Record(p, "sym", sym_data=target, **common)
    if kind == "dev":
        devnum = (draw(st.sampled_from(["c", "b"])), draw(u32), draw(u32))
        return Record(p, "dev", device_num=devnum, **common)
    return Record(p, cast(FileType, kind), mod_time=mtime, **common)


@settings(max_examples=300)
@given(records())
def test_parse_format_roundtrip(record: Record) -> None:
    data = format_record(record)
    assert parse(data) == [record]
    assert format_record(parse(data)[0]) == data


@settings(max_examples=50)
@given(st.lists(records(), max_size=30))
def test_stream_roundtrip_sorted(items: list[Record]) -> None:
    unique = {r.path: r for r in items}
    ordered = sorted(unique.values(), key=lambda r: path_key(r.path))
    data = dump(ordered)
    assert parse(data) == ordered


# ---- the reader's fast path (two-space fields, cached ids and names) keeps every check --------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b"File a\n  Type reg\n  Size 1\n  ModTime 1\n  Uid 4294967296\n  Uname :\n"
         b"  Gid 0\n  Gname :\n  Permissions 420\n", CorruptRepository),
        (b"File a\n  Type dir\n  ModTime 1\n  Uid 0\n  Uname :\n  Gid 0\n  Gname :\n"
         b"  Permissions 4096\n", CorruptRepository),
        (b"File a/./b\n  Type None\n", HostilePath),
        (b"File /a\n  Type None\n", HostilePath),
        (b"File a\\\\/..\n  Type None\n", HostilePath),
        (b"File a\\\\b\n  Type None\n", None),
        (b"File \n  Type None\n", HostilePath),
    ],
)  # fmt: skip
def test_fast_path_checks(text: bytes, error: type[Exception] | None) -> None:
    import io

    from rdb_format.metadata import iter_records

    if error is None:
        (record,) = iter_records(io.BytesIO(text), name="m")
        assert record.path == b"a\\b"
        return
    with pytest.raises(error):
        list(iter_records(io.BytesIO(text), name="m"))


def test_other_indentation_still_reads() -> None:
    import io

    from rdb_format.metadata import iter_records

    text = (
        b"File .\n Type dir\n    ModTime 5\n  Uid 7\n  Uname u\n\n  Gid 7\n  Gname :\n"
        b"  Permissions 493\nFile a\n  Type reg\n  Size 1\n  ModTime 1\n  Uid 7\n  Uname u\n"
        b"  Gid 8\n  Gname g\n  Permissions 420\n"
    )
    first, second = iter_records(io.BytesIO(text))
    assert (first.mod_time, first.uid, first.uname, first.gname) == (5, 7, "u", None)
    assert (second.uid, second.gid, second.permissions, second.gname) == (7, 8, 420, "g")


# ---- raw records: the stored text, copied when it is exactly what the writer would write ----


def raw_parse(data: bytes) -> list[RawRecord]:
    return list(iter_raw_records(io.BytesIO(data), name="m"))


@settings(max_examples=100)
@given(st.lists(records(), max_size=30))
def test_raw_records_carry_the_canonical_text(items: list[Record]) -> None:
    unique = {r.path: r for r in items}
    ordered = sorted(unique.values(), key=lambda r: path_key(r.path))
    data = dump(ordered)
    raws = raw_parse(data)
    assert [r.record for r in raws] == ordered
    assert [r.key for r in raws] == [path_key(r.path) for r in ordered]
    for raw in raws:
        assert raw.text is None or raw.text == format_record(raw.record)
        if b"\\" not in quote_path(raw.record.path) and b"\\" not in quote_path(
            raw.record.sym_data or b""
        ):
            assert raw.text is not None  # the writer's own output is always canonical
    out = io.BytesIO()
    with MetadataWriter(out) as writer:
        for raw in raws:
            writer.write_raw(raw)
    assert out.getvalue() == data


BASE = b"  ModTime 1\n  Uid 0\n  Uname root\n  Gid 0\n  Gname root\n  Permissions 420\n"


@pytest.mark.parametrize(
    "text",
    [
        b"File a\n  Type reg\n  Size 1\n" + BASE.replace(b"  Gid", b"   Gid"),
        b"File a\n  Type reg\n  Size 1\n  SHA1Digest " + SHA.upper().encode() + b"\n" + BASE,
        b"File a\n  Type reg\n  Size 1\n" + BASE.replace(b"Uname root", b"Uname None"),
        b"File a\n  Type reg\n  Size 1\n" + BASE + b"  Future 1\n",
        b"File a\n  Type reg\n  Size 01\n" + BASE,
        b"File a\n  Type reg\n  Size 1\n  NumHardLinks 1\n  Inode 5\n  DeviceLoc 6\n" + BASE,
        b"File a\n  Type sym\n  SymData b\n" + BASE,
        b"File a\n  Type fifo\n  Size 0\n" + BASE,
        b"File a\n  Type reg\n  Size 1\n  Permissions 420\n" + BASE[: -len(b"  Permissions 420\n")],
        b"File a\\\\b\n  Type reg\n  Size 1\n" + BASE,
    ],
)  # fmt: skip
def test_non_canonical_records_are_reformatted(text: bytes) -> None:
    (raw,) = raw_parse(text)
    assert raw.text is None
    assert [raw.record] == parse(text)
    out = io.BytesIO()
    with MetadataWriter(out) as writer:
        writer.write_raw(raw)
    assert out.getvalue() == format_record(raw.record)


def test_raw_records_keep_every_check() -> None:
    bad = b"File a\n  Type reg\n  Size 1\n" + BASE.replace(b"Uid 0", b"Uid 4294967296")
    with pytest.raises(CorruptRepository, match="bad Uid"):
        raw_parse(bad)
    with pytest.raises(HostilePath):
        raw_parse(b"File a/../b\n  Type reg\n  Size 1\n" + BASE)
    good = b"File b\n  Type reg\n  Size 1\n" + BASE
    with pytest.raises(CorruptRepository, match="out of order"):
        raw_parse(good + good.replace(b"File b", b"File a"))
    (raw,) = raw_parse(good)
    out = io.BytesIO()
    writer = MetadataWriter(out)
    writer.write_raw(raw)
    with pytest.raises(ValueError, match="out of order"):
        writer.write_raw(raw)
