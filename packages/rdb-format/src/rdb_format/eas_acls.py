"""``extended_attributes`` and ``access_control_lists`` files (docs/format.md §7).

Both are sequences of records in metadata order, one per file that has EAs or a non-trivial
POSIX ACL, written in full every session (never diffed)::

    # file: <acl-quoted path>
    user.foo=0sYmFy                      (EA: name=0s<base64 of the value>)

    # file: <acl-quoted path>
    user::rw-                            (ACL: getfacl-style entries)
    user:nobody:r--
    group::---
    mask::r--
    other::---

ACL quoting (paths, and EA names) turns every byte outside printable ASCII 0x21-0x7E, and
``\\`` and ``=``, into a backslash and three octal digits: a space is ``\\040``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from rdb_format._datafiles import PathArg, opened_source, show_path
from rdb_format.errors import CorruptRepository, HostilePath
from rdb_format.metadata import (
    check_path,
    iter_blocks,
    path_key,
    write_data_file,
)

__all__ = [
    "ACLEntry",
    "ACLRecord",
    "EARecord",
    "acl_quote",
    "acl_unquote",
    "format_acl_record",
    "format_ea_record",
    "is_trivial_acl",
    "iter_acl_records",
    "iter_ea_records",
    "write_acl_file",
    "write_ea_file",
]

_HEADER: Final = b"# file: "
_SEPARATOR: Final = b"\n# file: "
_PLAIN: Final = frozenset(range(0x21, 0x7F)) - {ord("\\"), ord("=")}
_QUOTE_TABLE: Final = [bytes([b]) if b in _PLAIN else b"\\%03o" % b for b in range(256)]
_OCTAL: Final = frozenset(b"01234567")


def acl_quote(name: bytes) -> bytes:
    """ACL-style quoting: bytes outside 0x21-0x7E, ``\\`` and ``=`` become ``\\ooo``."""
    if _PLAIN.issuperset(name):
        return name
    return b"".join([_QUOTE_TABLE[b] for b in name])


def acl_unquote(quoted: bytes) -> bytes:
    """Reverse :func:`acl_quote`; ValueError for a backslash not followed by 3 octal digits."""
    if b"\\" not in quoted:
        return quoted
    out = bytearray()
    start = 0
    while True:
        pos = quoted.find(b"\\", start)
        if pos < 0:
            out += quoted[start:]
            return bytes(out)
        out += quoted[start:pos]
        digits = quoted[pos + 1 : pos + 4]
        if len(digits) != 3 or not _OCTAL.issuperset(digits) or int(digits, 8) > 0xFF:
            raise ValueError(f"bad backslash sequence {quoted[pos : pos + 4]!r}")
        out.append(int(digits, 8))
        start = pos + 4


@dataclass(frozen=True, slots=True)
class EARecord:
    """The extended attributes of one file: ``(name, value)`` pairs in file order."""

    path: bytes
    attributes: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class ACLEntry:
    """One ACL entry: ``[default:]tag:qualifier:perms`` (``user:nobody:r--``)."""

    tag: str  # user, group, mask, other
    qualifier: str  # empty for the owner/owning group/mask/other; a name or numeric id
    perms: str  # "rwx" with "-" for an absent permission
    default: bool = False

    def format(self) -> str:
        text = f"{self.tag}:{self.qualifier}:{self.perms}"
        return "default:" + text if self.default else text


@dataclass(frozen=True, slots=True)
class ACLRecord:
    """The non-trivial POSIX ACL (access entries, then default entries) of one file."""

    path: bytes
    entries: tuple[ACLEntry, ...]


_TAGS: Final = {"user": "user", "u": "user", "group": "group", "g": "group"}
_TAGS.update({"mask": "mask", "m": "mask", "other": "other", "o": "other"})


def parse_acl_entry(text: str) -> ACLEntry:
    """Parse one getfacl-style line (comment already removed); ValueError if malformed."""
    default = False
    for prefix in ("default:", "d:"):
        if text.startswith(prefix):
            default, text = True, text[len(prefix) :]
            break
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"bad ACL entry {text!r}")
    tag, qualifier, perms = parts
    canonical = _TAGS.get(tag)
    if canonical is None or not perms or len(perms) > 3 or not set(perms) <= set("rwx-"):
        raise ValueError(f"bad ACL entry {text!r}")
    if canonical in ("mask", "other") and qualifier:
        raise ValueError(f"bad ACL entry {text!r}")
    return ACLEntry(canonical, qualifier, perms, default)


def is_trivial_acl(entries: Iterable[ACLEntry]) -> bool:
    """True if the ACL is only the three base entries (what the mode bits say): not written."""
    count = 0
    for entry in entries:
        if entry.default or entry.qualifier or entry.tag == "mask":
            return False
        count += 1
    return count <= 3


# ---------------------------------------------------------------------------------------------
# Reading


def _records(stream: BinaryIO, label: str) -> Iterator[tuple[int, bytes, list[bytes]]]:
    """(record number, path, body lines) of each ``# file:`` record, checked and ordered."""
    number = 0
    last: tuple[bytes, ...] | None = None
    first = True
    for block in iter_blocks(stream, label, _SEPARATOR):
        if first and not block.startswith(_HEADER):
            first = False
            head, sep, block = block.partition(_SEPARATOR)
            if any(line.strip() and not line.startswith(b"#") for line in head.splitlines()):
                raise CorruptRepository(
                    f"text before the first '# file:' line: {head[:60]!r}", path=label
                )
            if not sep:
                continue
        elif block.startswith(_HEADER):
            first = False
            block = block[len(_HEADER) :]
        if block[-1:] != b"\n":
            raise CorruptRepository(
                f"record #{number + 1}: truncated (the last line has no newline)", path=label
            )
        for chunk in block[:-1].split(_SEPARATOR):
            number += 1
            lines = chunk.split(b"\n")
            try:
                path = acl_unquote(lines[0])
            except ValueError as error:
                raise CorruptRepository(
                    f"record #{number}: bad '# file:' line: {error}", path=label
                ) from None
            problem = check_path(path)
            if problem is not None:
                raise HostilePath(f"record #{number}: {problem}: {show_path(path)!r}", path=label)
            key = path_key(path)
            if last is not None and key <= last:
                raise CorruptRepository(
                    f"record #{number} {show_path(path)!r}: out of order (or duplicated)",
                    path=label,
                )
            last = key
            yield number, path, lines[1:]


def _ea_value(encoded: bytes) -> bytes:
    if encoded.startswith(b"0s"):
        return base64.b64decode(encoded[2:], validate=True)
    if encoded.startswith(b"0x"):
        return binascii.unhexlify(encoded[2:])
    raise ValueError("value is neither 0s (base64) nor 0x (hex) encoded")


def iter_ea_records(source: BinaryIO | PathArg, *, name: str | None = None) -> Iterator[EARecord]:
    """Stream the records of an ``extended_attributes`` file (path or binary stream)."""
    with opened_source(source, name) as (stream, label):
        for number, path, lines in _records(stream, label):
            attributes: list[tuple[bytes, bytes]] = []
            for line in lines:
                if not line.strip() or line.startswith(b"#"):
                    continue
                quoted, sep, encoded = line.partition(b"=")
                try:
                    if not sep:  # an empty value: the bare, unquoted name (rdiff-backup 2.2.7)
                        attributes.append((line, b""))
                        continue
                    attributes.append((acl_unquote(quoted), _ea_value(encoded)))
                except (ValueError, binascii.Error) as error:
                    raise CorruptRepository(
                        f"record #{number} {show_path(path)!r}: bad attribute line "
                        f"{line[:60]!r}: {error}",
                        path=label,
                    ) from None
            yield EARecord(path, tuple(attributes))


def iter_acl_records(source: BinaryIO | PathArg, *, name: str | None = None) -> Iterator[ACLRecord]:
    """Stream the records of an ``access_control_lists`` file (path or binary stream)."""
    with opened_source(source, name) as (stream, label):
        for number, path, lines in _records(stream, label):
            entries: list[ACLEntry] = []
            for line in lines:
                text = line.partition(b"#")[0].strip()
                if not text:
                    continue
                try:
                    entries.append(parse_acl_entry(text.decode("utf-8", "surrogateescape")))
                except ValueError as error:
                    raise CorruptRepository(
                        f"record #{number} {show_path(path)!r}: {error}", path=label
                    ) from None
            yield ACLRecord(path, tuple(entries))


# ---------------------------------------------------------------------------------------------
# Writing


def _header(path: bytes) -> bytes:
    problem = check_path(path)
    if problem is not None:
        raise ValueError(f"{problem}: {show_path(path)!r}")
    return b"# file: " + acl_quote(path) + b"\n"


def format_ea_record(record: EARecord) -> bytes:
    """The bytes rdiff-backup 2.2.7 writes for ``record``.

    An empty value is written as the bare name, as rdiff-backup does, when that name needs
    no quoting; otherwise as ``<quoted name>=0s`` so the name survives.
    """
    parts = [_header(record.path)]
    for attr, value in record.attributes:
        if not attr:
            raise ValueError(f"empty attribute name for {show_path(record.path)!r}")
        quoted = acl_quote(attr)
        if quoted.startswith(b"#"):
            quoted = b"\\043" + quoted[1:]  # a line starting with '#' is a comment
        if value or quoted != attr:
            parts += (quoted, b"=0s", base64.b64encode(value), b"\n")
        else:
            parts += (attr, b"\n")
    return b"".join(parts)


def format_acl_record(record: ACLRecord) -> bytes:
    """The bytes of one ACL record: the header, then one getfacl-style line per entry."""
    lines = [_header(record.path)]
    for entry in record.entries:
        text = entry.format()
        if parse_acl_entry(text) != entry or "\n" in text or "#" in text:
            raise ValueError(f"bad ACL entry {text!r} for {show_path(record.path)!r}")
        lines += (text.encode("utf-8", "surrogateescape"), b"\n")
    return b"".join(lines)


def _ordered(records: Iterable[EARecord] | Iterable[ACLRecord]) -> Iterator[bytes]:
    last: tuple[bytes, ...] | None = None
    chunk: list[bytes] = []
    size = 0
    for record in records:
        key = path_key(record.path)
        if last is not None and key <= last:
            raise ValueError(f"record {show_path(record.path)!r} out of order")
        last = key
        data = (
            format_ea_record(record) if isinstance(record, EARecord) else format_acl_record(record)
        )
        chunk.append(data)
        size += len(data)
        if size >= 1 << 18:
            yield b"".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield b"".join(chunk)


def write_ea_file(
    path: PathArg, records: Iterable[EARecord], *, compress: bool = True, fsync: bool = True
) -> Path:
    """Write ``extended_attributes.<T>.snapshot`` (``path`` without ``.gz``), atomically.

    Gzipped as ``<path>.gz`` when there is a record and ``compress``; a 0-byte plain file
    when there are none (write one every session to keep rdiff-backup quiet).
    """
    return write_data_file(path, _ordered(records), compress=compress, fsync=fsync)


def write_acl_file(
    path: PathArg, records: Iterable[ACLRecord], *, compress: bool = True, fsync: bool = True
) -> Path:
    """Write ``access_control_lists.<T>.snapshot`` (``path`` without ``.gz``), atomically."""
    return write_data_file(path, _ordered(records), compress=compress, fsync=fsync)
