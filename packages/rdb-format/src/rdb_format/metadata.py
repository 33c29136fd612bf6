"""``mirror_metadata`` records: one typed record per file, read and written as a stream.

The file format (rdiff-backup 2.2.7, see docs/format.md §6) is a sequence of byte records::

    File <quoted path>
      Type reg
      Size 5
      ...

Paths are ``bytes``: the index components joined by ``b"/"``, the root is ``b"."``. Inside the
file only two substitutions quote a path or a symlink target: newline → ``\\n`` and backslash →
``\\\\``; every other byte (non-UTF-8 included) is written raw.

Records are sorted by *index tuple* (:func:`path_key`), not by the joined string, so
``a/b`` < ``a.b``. The reader checks the order and the writer refuses out-of-order input:
every merge in this package relies on it.

Reading is streaming: :func:`iter_records` holds one record at a time, whatever the file size.
Anything hostile or garbled raises :class:`~rdb_format.errors.HostilePath` or
:class:`~rdb_format.errors.CorruptRepository` with a one-line message naming the file.
"""

from __future__ import annotations

import gzip
import itertools
import operator
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Final, Literal, NamedTuple, cast

from rdb_format._datafiles import READ_BUFFER as _READ_BUFFER
from rdb_format._datafiles import (
    STREAM_ERRORS,
    PathArg,
    open_data_file,
    opened_source,
    show_path,
    stream_error,
)
from rdb_format.atomic import atomic_writer, write_atomic
from rdb_format.errors import CorruptRepository, HostilePath

# The old private names, still imported by other modules and packages.
_opened = opened_source
_show = show_path

__all__ = [
    "FIELD_ORDER",
    "FILE_TYPES",
    "STREAM_ERRORS",
    "FileType",
    "MetadataWriter",
    "PathArg",
    "RawRecord",
    "Record",
    "check_path",
    "file_type_of",
    "format_record",
    "iter_raw_records",
    "iter_records",
    "open_data_file",
    "path_key",
    "quote_path",
    "safe_name",
    "stream_error",
    "unquote_path",
    "write_metadata_file",
]

FileType = Literal["reg", "dir", "sym", "fifo", "sock", "dev", "None"]

#: Every value of the ``Type`` field. ``"None"`` (a file absent at that time) only in diffs.
FILE_TYPES: Final[tuple[FileType, ...]] = ("reg", "dir", "sym", "fifo", "sock", "dev", "None")


def file_type_of(mode: int) -> FileType | None:
    """The record type of a file with ``st_mode`` ``mode``; None for a kind the format lacks."""
    if stat.S_ISREG(mode):
        return "reg"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "sym"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "sock"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "dev"
    return None


#: The fields after ``File``, in the order rdiff-backup 2.2.7 writes them.
FIELD_ORDER: Final[tuple[str, ...]] = (
    "Type",
    "Size",
    "ResourceFork",
    "CarbonFile",
    "NumHardLinks",
    "Inode",
    "DeviceLoc",
    "SHA1Digest",
    "SymData",
    "DeviceNum",
    "ModTime",
    "Uid",
    "Uname",
    "Gid",
    "Gname",
    "Permissions",
    "AlternateMirrorName",
    "AlternateIncrementName",
)

_U64: Final = 1 << 64
_I64: Final = 1 << 63
_U32: Final = 1 << 32
_WRITE_CHUNK: Final = 1 << 18
_HEX: Final = frozenset(b"0123456789abcdef")


class Record(NamedTuple):
    """One file's entry in ``mirror_metadata`` (every field rdiff-backup 2.2.7 reads or writes).

    An immutable typed record (a NamedTuple: ten times cheaper to build than a frozen
    dataclass, which matters at a million records per file); change one with ``_replace``.

    ``None`` means "field absent". ``uname``/``gname`` ``None`` means unknown (written ``:``).
    ``device_num`` is ``(kind, major, minor)`` with kind ``"c"`` or ``"b"``.
    ``resource_fork`` and ``carbon_file`` (macOS repositories) are kept as raw field values.
    """

    path: bytes
    type: FileType
    size: int | None = None
    resource_fork: bytes | None = None
    carbon_file: bytes | None = None
    num_hard_links: int | None = None
    inode: int | None = None
    device_loc: int | None = None
    sha1_digest: str | None = None
    sym_data: bytes | None = None
    device_num: tuple[str, int, int] | None = None
    mod_time: int | None = None
    uid: int | None = None
    uname: str | None = None
    gid: int | None = None
    gname: str | None = None
    permissions: int | None = None
    alternate_mirror_name: int | None = None
    alternate_increment_name: int | None = None

    @classmethod
    def missing(cls, path: bytes) -> Record:
        """The ``Type None`` record of a diff: ``path`` did not exist at that time."""
        return cls(path, "None")

    @property
    def exists(self) -> bool:
        """False for a ``Type None`` (diff-only) record."""
        return self.type != "None"

    @property
    def components(self) -> tuple[bytes, ...]:
        """The index tuple (sort key) of the path; the root is ``()``."""
        return path_key(self.path)

    @property
    def has_hard_link_triple(self) -> bool:
        """Whether the writer emits NumHardLinks/Inode/DeviceLoc (regular file, nlink > 1)."""
        return (
            self.type == "reg"
            and self.num_hard_links is not None
            and self.num_hard_links > 1
            and self.inode is not None
            and self.device_loc is not None
        )


# ---------------------------------------------------------------------------------------------
# Paths: order, quoting, validation


def path_key(path: bytes) -> tuple[bytes, ...]:
    """Sort key of a metadata path: its index tuple (``b"."`` → ``()``).

    Records are ordered by this key, component by component as byte strings, so
    ``a`` < ``a/b`` < ``a.b``.
    """
    if path == b".":
        return ()
    return tuple(path.split(b"/"))


def quote_path(path: bytes) -> bytes:
    """Quote a path or symlink target for a metadata line: ``\\`` → ``\\\\``, newline → ``\\n``."""
    if b"\\" in path:
        path = path.replace(b"\\", b"\\\\")
    if b"\n" in path:
        path = path.replace(b"\n", b"\\n")
    return path


def unquote_path(quoted: bytes) -> bytes:
    """Reverse :func:`quote_path`. ValueError on any other backslash sequence."""
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
        escaped = quoted[pos + 1 : pos + 2]
        if escaped == b"n":
            out += b"\n"
        elif escaped == b"\\":
            out += b"\\"
        else:
            raise ValueError(f"bad backslash sequence {quoted[pos : pos + 2]!r}")
        start = pos + 2


def check_path(path: bytes) -> str | None:
    """Why ``path`` is not a safe relative metadata path, or ``None`` if it is.

    Refused: empty, absolute, a NUL byte, and empty, ``.`` or ``..`` components (the root
    itself is the single path ``b"."``).
    """
    if path == b".":
        return None
    if not path:
        return "empty path"
    if b"\0" in path:
        return "NUL byte in path"
    if path[0] == 0x2F:
        return "absolute path"
    parts = path.split(b"/")
    if b".." in parts:
        return "'..' component in path"
    if b"" in parts or b"." in parts:
        return "empty or '.' component in path"
    return None


def safe_name(name: str | None) -> str | None:
    """A user or group name as rdiff-backup can read it back, else ``None`` (unknown).

    rdiff-backup decodes ``Uname``/``Gname`` as ASCII and drops the whole record otherwise,
    so a backup should pass non-ASCII (or empty, or multi-line) names through this.
    """
    if not name or not name.isascii() or "\n" in name or name in (":", "None"):
        return None
    return name


# ---------------------------------------------------------------------------------------------
# Files


# ---------------------------------------------------------------------------------------------
# Reading


def _u32(value: bytes) -> int:
    number = int(value)
    if not 0 <= number < _U32:
        raise ValueError("out of range")
    return number


def _u64(value: bytes) -> int:
    number = int(value)
    if not 0 <= number < _U64:
        raise ValueError("out of range")
    return number


def _size(value: bytes) -> int:
    number = int(value)
    if not 0 <= number < _I64:
        raise ValueError("out of range")
    return number


def _perms(value: bytes) -> int:
    number = int(value)
    if not 0 <= number < 0o10000:
        raise ValueError("out of range")
    return number


def _name(value: bytes) -> str | None:
    if value == b":" or value == b"None":
        return None
    if not value:
        raise ValueError("empty")
    return value.decode("utf-8", "surrogateescape")


def _sha1(value: bytes) -> str:
    value = value.lower()
    if len(value) != 40 or not _HEX.issuperset(value):
        raise ValueError("not 40 hex digits")
    return value.decode("ascii")


def _devnum(value: bytes) -> tuple[str, int, int]:
    kind, major, minor = value.split(b" ")
    if kind not in (b"c", b"b"):
        raise ValueError("not c or b")
    return kind.decode("ascii"), _u32(major), _u32(minor)


def _mtime(value: bytes) -> int:
    number = int(value)
    if not -_I64 <= number < _I64:
        raise ValueError("out of range")
    return number


def _alt_name(value: bytes) -> int:
    if not value.isdigit():
        raise ValueError("not a decimal number")
    return _u64(value)


def _nlink(value: bytes) -> int:
    number = _u64(value)
    if number < 1:
        raise ValueError("out of range")
    return number


def _bytes(value: bytes) -> bytes:
    return value


# field name → (attribute, converter)
_PARSERS: Final[dict[bytes, tuple[str, Callable[[bytes], object]]]] = {
    b"Size": ("size", _size),
    b"ResourceFork": ("resource_fork", _bytes),
    b"CarbonFile": ("carbon_file", _bytes),
    b"NumHardLinks": ("num_hard_links", _nlink),
    b"Inode": ("inode", _u64),
    b"DeviceLoc": ("device_loc", _u64),
    b"SHA1Digest": ("sha1_digest", _sha1),
    b"SymData": ("sym_data", unquote_path),
    b"DeviceNum": ("device_num", _devnum),
    b"ModTime": ("mod_time", _mtime),
    b"Uid": ("uid", _u32),
    b"Uname": ("uname", _name),
    b"Gid": ("gid", _u32),
    b"Gname": ("gname", _name),
    b"Permissions": ("permissions", _perms),
    b"AlternateMirrorName": ("alternate_mirror_name", _alt_name),
    b"AlternateIncrementName": ("alternate_increment_name", _alt_name),
}
_TYPES: Final[dict[bytes, FileType]] = {t.encode(): t for t in FILE_TYPES}
# What a record of each type must carry to be usable (rdiff-backup always writes these).
_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "reg": ("size", "mod_time", "uid", "gid", "permissions"),
    "dir": ("mod_time", "uid", "gid", "permissions"),
    "fifo": ("mod_time", "uid", "gid", "permissions"),
    "sock": ("mod_time", "uid", "gid", "permissions"),
    "sym": ("sym_data", "uid", "gid", "permissions"),
    "dev": ("device_num", "uid", "gid", "permissions"),
    "None": (),
}
_FIELD_OF_ATTR: Final[dict[str, str]] = {
    attr: name.decode() for name, (attr, _) in _PARSERS.items()
}


class _GarbledError(Exception):
    """Internal: a record-level problem, turned into CorruptRepository with file context."""


def _field_pairs(lines: list[bytes]) -> dict[bytes, bytes]:
    """The record's ``Field value`` lines as a dict, checking the line grammar."""
    try:
        pairs = dict([line.lstrip(b" ").split(b" ", 1) for line in lines])
    except ValueError:
        pairs = None
    if pairs is not None and len(pairs) == len(lines):
        return pairs  # the fast path: every line had a space, no duplicates
    pairs = {}
    for line in lines:
        key, sep, value = line.lstrip(b" ").partition(b" ")
        if not sep:
            if not key.strip():
                continue  # a blank line
            raise _GarbledError(f"garbled line {line[:60]!r}")
        if key in pairs:
            raise _GarbledError(f"duplicate field {key[:40].decode('ascii', 'replace')}")
        pairs[key] = value
    return pairs


_SPACES: Final = itertools.repeat(b" ")
_ONES: Final = itertools.repeat(1)
# Uname/Gname values seen so far (a repository has few owners): decoded once.
_NAMES_READ: dict[bytes, str | None] = {b":": None, b"None": None}


def _read_name(value: bytes) -> str | None:
    name = _NAMES_READ.get(value, _MISSING)
    if name is _MISSING:
        name = _name(value)
        if len(_NAMES_READ) < 4096:
            _NAMES_READ[value] = name
    return cast("str | None", name)


_MISSING: Final = object()
_IDS_READ: dict[bytes, int] = {}
_PERMS_READ: dict[bytes, int] = {}


def _read_id(value: bytes | None) -> int:
    assert value is not None
    number = _u32(value)
    if len(_IDS_READ) < 4096:
        _IDS_READ[value] = number
    return number


def _read_perms(value: bytes | None) -> int:
    assert value is not None
    number = _perms(value)
    if len(_PERMS_READ) < 4096:
        _PERMS_READ[value] = number
    return number


def _build(path: bytes, lines: list[bytes], unindented: bool = False) -> Record:
    """Parse a record's field lines; the fast path for well-formed records.

    ``lines`` are the field lines as in the file, or with ``unindented`` the ``Key value``
    parts without their two leading spaces.
    """
    try:
        if unindented:
            # "Key value" parts (split off "\n  " by the caller): one C-level pass
            pairs = dict(map(bytes.split, lines, _SPACES, _ONES))
        else:
            pairs = dict([line.lstrip(b" ").split(b" ", 1) for line in lines])
        if len(pairs) != len(lines):
            raise ValueError("blank or duplicate lines")
        type_ = _TYPES[pairs.pop(b"Type")]
        pop = pairs.pop
        size = pop(b"Size", None)
        resource_fork = pop(b"ResourceFork", None)
        carbon_file = pop(b"CarbonFile", None)
        num_hard_links = pop(b"NumHardLinks", None)
        inode = pop(b"Inode", None)
        device_loc = pop(b"DeviceLoc", None)
        sha1 = pop(b"SHA1Digest", None)
        sym_data = pop(b"SymData", None)
        device_num = pop(b"DeviceNum", None)
        mod_time = pop(b"ModTime", None)
        uid = pop(b"Uid", None)
        uname = pop(b"Uname", None)
        gid = pop(b"Gid", None)
        gname = pop(b"Gname", None)
        perms = pop(b"Permissions", None)
        alt_mirror = pop(b"AlternateMirrorName", None)
        alt_increment = pop(b"AlternateIncrementName", None)
        names = _NAMES_READ
        if pairs or (type_ == "None" and len(lines) != 1):
            raise ValueError("unknown fields, or fields in a Type None record")
        # ids and modes repeat: each distinct text is converted and range-checked once
        ids = _IDS_READ
        uid_value = None if uid is None else ids.get(uid, -1)
        if uid_value == -1:
            uid_value = _read_id(uid)
        gid_value = None if gid is None else ids.get(gid, -1)
        if gid_value == -1:
            gid_value = _read_id(gid)
        perms_value = None if perms is None else _PERMS_READ.get(perms, -1)
        if perms_value == -1:
            perms_value = _read_perms(perms)
        record = Record(
            path,
            type_,
            None if size is None else _size(size),
            None if resource_fork is None else _raw_field(resource_fork),
            None if carbon_file is None else _raw_field(carbon_file),
            None if num_hard_links is None else _nlink(num_hard_links),
            None if inode is None else _u64(inode),
            None if device_loc is None else _u64(device_loc),
            None if sha1 is None else _sha1(sha1),
            None if sym_data is None else _raw_field(unquote_path(sym_data)),
            None if device_num is None else _devnum(device_num),
            None if mod_time is None else _mtime(mod_time),
            uid_value,
            None if uname is None else names.get(uname) or _read_name(uname),
            gid_value,
            None if gname is None else names.get(gname) or _read_name(gname),
            perms_value,
            None if alt_mirror is None else _alt_name(alt_mirror),
            None if alt_increment is None else _alt_name(alt_increment),
        )
        if type_ != "None" and (uid is None or gid is None or perms is None):
            raise ValueError("missing field")
        if type_ == "reg":
            if size is None or mod_time is None:
                raise ValueError("missing field")
        elif type_ == "sym":
            if sym_data is None:
                raise ValueError("missing field")
        elif type_ == "dev":
            if device_num is None:
                raise ValueError("missing field")
        elif mod_time is None and type_ != "None":
            raise ValueError("missing field")
        if alt_mirror is not None and alt_increment is not None:
            raise ValueError("both alternate names")
    except (ValueError, KeyError, UnicodeError):
        return _build_carefully(path, lines)  # raises the precise error, or handles the rest
    return record


def _raw_field(value: bytes) -> bytes:
    if not value:
        raise ValueError("empty")
    return value


def _build_carefully(path: bytes, lines: list[bytes]) -> Record:
    pairs = _field_pairs(lines)
    raw_type = pairs.pop(b"Type", None)
    if raw_type is None:
        raise _GarbledError("no Type field")
    type_ = _TYPES.get(raw_type)
    if type_ is None:
        raise _GarbledError(f"unknown Type {raw_type[:40].decode('ascii', 'replace')!r}")
    kwargs: dict[str, object] = {}
    for key, value in pairs.items():
        parser = _PARSERS.get(key)
        if parser is None:
            if not key.isalnum() or not key.isascii() or not value:
                raise _GarbledError(f"garbled field line {key[:40] + b' ' + value[:40]!r}")
            continue  # an unknown field: rdiff-backup warns and ignores it
        attr, convert = parser
        try:
            if not value:
                raise ValueError("empty")
            kwargs[attr] = convert(value)
        except (ValueError, UnicodeError):
            shown = value[:60].decode("ascii", "backslashreplace")
            raise _GarbledError(f"bad {key.decode()} value {shown!r}") from None
    if type_ == "None" and kwargs:
        raise _GarbledError("a Type None record with other fields")
    for attr in _REQUIRED[type_]:
        if attr not in kwargs:
            raise _GarbledError(f"Type {type_} record without {_FIELD_OF_ATTR[attr]}")
    if "alternate_mirror_name" in kwargs and "alternate_increment_name" in kwargs:
        raise _GarbledError("both AlternateMirrorName and AlternateIncrementName")
    return Record(path, type_, **kwargs)  # type: ignore[arg-type]


def iter_records(source: BinaryIO | PathArg, *, name: str | None = None) -> Iterator[Record]:
    """Stream the records of a ``mirror_metadata`` file, in file order, one at a time.

    ``source`` is a path (gunzipped iff it ends in ``.gz``) or an open binary stream of the
    uncompressed text. ``name`` labels error messages (default: the path or ``stream.name``).
    Raises HostilePath for a path that would escape the tree, CorruptRepository for anything
    truncated, garbled, out of range or out of order.
    """
    with opened_source(source, name) as (stream, label):
        yield from map(_RECORD_OF, _parse(stream, label))


_RECORD_OF: Final = operator.itemgetter(1)


class RawRecord(NamedTuple):
    """A record as read, with its sort key and, when possible, its stored bytes.

    ``text`` is the record's bytes exactly as stored *when they are what*
    :func:`format_record` *writes for* ``record`` (rdiff-backup 2.2.7's canonical form:
    fields in its order, two-space indentation, no unknown fields); ``None`` otherwise (the
    writer then formats ``record``). A writer may copy ``text`` unchanged
    (:meth:`MetadataWriter.write_raw`) instead of formatting the record again.
    """

    key: tuple[bytes, ...]
    record: Record
    text: bytes | None


def iter_raw_records(source: BinaryIO | PathArg, *, name: str | None = None) -> Iterator[RawRecord]:
    """Like :func:`iter_records`, with each record's key and stored text (:class:`RawRecord`).

    The same checks and errors as :func:`iter_records`.
    """
    with opened_source(source, name) as (stream, label):
        yield from _parse(stream, label)


def iter_blocks(stream: BinaryIO, label: str, separator: bytes) -> Iterator[bytes]:
    """Read ``stream`` in large chunks, cut just before a ``separator`` (e.g. ``b"\\nFile "``).

    Each block ends with the byte before ``separator`` (a newline) or at end of file, so a
    record never straddles two blocks. Read errors become CorruptRepository naming ``label``.
    """
    pending = b""
    try:
        while True:
            data = stream.read(_READ_BUFFER)
            if not data:
                break
            pending = pending + data if pending else data
            cut = pending.rfind(separator)
            if cut >= 0:
                yield pending[: cut + 1]
                pending = pending[cut + 1 :]
    except STREAM_ERRORS as error:
        raise stream_error(error, label) from None
    if pending:
        yield pending


# The canonical form of a record (what format_record writes), matched in one C-level pass;
# the presence rules per type and the number ranges are checked by _canonical.
_NUM: Final = rb"(0|[1-9][0-9]*)"
_CANONICAL: Final = re.compile(
    rb"File ([^\n\\]+)\n  Type (reg|dir|sym|fifo|sock|dev)\n"
    rb"(?:  Size " + _NUM + rb"\n)?"
    rb"(?:  NumHardLinks ([2-9]|[1-9][0-9]+)\n"
    rb"  Inode " + _NUM + rb"\n  DeviceLoc " + _NUM + rb"\n)?"
    rb"(?:  SHA1Digest ([0-9a-f]{40})\n)?"
    rb"(?:  SymData ([^\n\\]+)\n)?"
    rb"(?:  DeviceNum ([cb]) " + _NUM + rb" " + _NUM + rb"\n)?"
    rb"(?:  ModTime (0|-?[1-9][0-9]*)\n)?"
    rb"(  Uid " + _NUM + rb"\n  Uname ([^\n]+)\n  Gid " + _NUM + rb"\n  Gname ([^\n]+)\n"
    rb"  Permissions " + _NUM + rb"\n)"
    rb"(?:  Alternate(Mirror|Increment)Name " + _NUM + rb"\n)?"
)
# The two commonest shapes (a regular file without hard links, a directory) in one pattern
# with five groups, the record end included (the next "File " or the end of the block): most
# records are built from it with a few operations (_common); the rest go through _CANONICAL.
_COMMON: Final = re.compile(
    rb"File ([^\n\\]+)\n  Type (?:reg\n  Size " + _NUM + rb"\n(?:  SHA1Digest ([0-9a-f]{40})\n)?"
    rb"|dir\n)  ModTime (0|-?[1-9][0-9]*)\n"
    rb"(  Uid [^\n]+\n  Uname [^\n]+\n  Gid [^\n]+\n  Gname [^\n]+\n  Permissions [^\n]+\n)"
    rb"(?=File |\Z)"
)
_tuple_new: Final = tuple.__new__
# The owner lines (Uid to Permissions) seen so far, read once: (uid, uname, gid, gname, perms),
# or None when format_record would not write them so (e.g. "Uname None").
_OWNERS: dict[bytes, tuple[int, str | None, int, str | None, int] | None] = {}


def _owner(
    text: bytes, uid: bytes, uname: bytes, gid: bytes, gname: bytes, perms: bytes
) -> tuple[int, str | None, int, str | None, int] | None:
    owner: tuple[int, str | None, int, str | None, int] | None
    try:
        names = [None if n == b":" else n.decode("ascii") for n in (uname, gname)]
        owner = (_u32(uid), names[0], _u32(gid), names[1], _perms(perms))
    except (ValueError, UnicodeError):
        return None  # the general parser says what is wrong
    if any(n is not None and safe_name(n) != n for n in names):
        owner = None  # "None", multi-line...: read as unknown, written differently
    if len(_OWNERS) < 4096:
        _OWNERS[text] = owner
    return owner


def _canonical(match: re.Match[bytes]) -> RawRecord | None:
    """The record of a canonical match; None if anything needs the general parser."""
    (
        path,
        type_b,
        size,
        nlink,
        inode,
        device_loc,
        sha1,
        sym_data,
        dev_kind,
        dev_major,
        dev_minor,
        mod_time,
        owner_text,
        uid,
        uname,
        gid,
        gname,
        perms,
        alt_kind,
        alt_number,
    ) = match.groups()
    key = () if path == b"." else tuple(path.split(b"/"))
    if b"" in key or b"." in key or b".." in key or b"\0" in path:
        return None
    # the fields format_record writes for each type, and only those
    if type_b == b"reg":
        if size is None or mod_time is None or sym_data is not None or dev_kind is not None:
            return None
    elif nlink is not None or size is not None or sha1 is not None:
        return None
    elif type_b == b"sym":
        if sym_data is None or dev_kind is not None or mod_time is not None:
            return None
    elif type_b == b"dev":
        if dev_kind is None or sym_data is not None or mod_time is not None:
            return None
    elif mod_time is None or sym_data is not None or dev_kind is not None:
        return None
    owner = _OWNERS.get(owner_text, _MISSING)
    if owner is _MISSING:
        owner = _owner(owner_text, uid, uname, gid, gname, perms)
    if owner is None:
        return None
    size_value = None
    if size is not None:
        size_value = int(size)
        if size_value >= _I64:
            return None
    mtime_value = None
    if mod_time is not None:
        mtime_value = int(mod_time)
        if not -_I64 <= mtime_value < _I64:
            return None
    triple: tuple[int | None, ...] = (None, None, None)
    if nlink is not None:
        numbers = (int(nlink), int(inode), int(device_loc))
        if max(numbers) >= _U64:
            return None
        triple = numbers
    device_num = None
    if dev_kind is not None:
        device_num = (dev_kind.decode("ascii"), int(dev_major), int(dev_minor))
        if device_num[1] >= _U32 or device_num[2] >= _U32:
            return None
    alt: tuple[int | None, int | None] = (None, None)
    if alt_kind is not None:
        number = int(alt_number)
        if number >= _U64:
            return None
        alt = (number, None) if alt_kind == b"Mirror" else (None, number)
    record = _tuple_new(
        Record,
        (
            path,
            _TYPES[type_b],
            size_value,
            None,
            None,
            *triple,
            None if sha1 is None else sha1.decode("ascii"),
            sym_data,
            device_num,
            mtime_value,
            *owner,  # type: ignore[misc]
            *alt,
        ),
    )
    return _tuple_new(RawRecord, (key, record, match.group()))


def _common(match: re.Match[bytes]) -> RawRecord | None:
    """The record of a :data:`_COMMON` match; None if anything needs a closer look."""
    path, size, sha1, mod_time, owner_text = match.groups()
    owner = _OWNERS.get(owner_text)  # a new owner block: _canonical reads it once
    if owner is None or len(mod_time) > 18 or b"\0" in path:
        return None
    key = () if path == b"." else tuple(path.split(b"/"))
    if b"" in key or b"." in key or b".." in key:
        return None
    if size is None:  # a directory
        fields: tuple[object, ...] = (path, "dir", None, None, None, None, None, None, None)
    elif len(size) > 18:
        return None
    else:
        digest = None if sha1 is None else sha1.decode("ascii")
        fields = (path, "reg", int(size), None, None, None, None, None, digest)
    record = _tuple_new(Record, (*fields, None, None, int(mod_time), *owner, None, None))
    return _tuple_new(RawRecord, (key, record, match.group()))


def _parse(stream: BinaryIO, label: str) -> Iterator[RawRecord]:
    last_key: tuple[bytes, ...] | None = None
    number = 0  # records so far
    first = True
    match_canonical = _CANONICAL.match
    match_common = _COMMON.match
    for block in iter_blocks(stream, label, b"\nFile "):
        if first:
            first = False
            if not block.startswith(b"File "):
                head, _, rest = block.partition(b"\nFile ")
                if head.strip():
                    message = f"text before the first File line: {head[:60]!r}"
                    raise CorruptRepository(message, path=label)
                block = b"File " + rest if rest else b""
                if not block:
                    continue
        if block[-1:] != b"\n":
            what = "truncated (the last line has no newline)"
            raise CorruptRepository(f"record #{number + 1}: {what}", path=label)
        end = len(block)
        position = 0
        while position < end:
            number += 1
            raw = None
            match = match_common(block, position)  # the commonest shapes, whole records
            if match is not None:
                raw = _common(match)
                after = match.end()
            if raw is None:
                match = match_canonical(block, position)
                if match is not None:
                    after = match.end()
                    if after == end or block.startswith(b"File ", after):
                        try:
                            raw = _canonical(match)
                        except ValueError:  # a number out of range: the general parser says so
                            raw = None
            if raw is None:
                after = block.find(b"\nFile ", position)
                after = end if after < 0 else after + 1
                start = position + 5 if block.startswith(b"File ", position) else position
                raw = _general(block[start : after - 1], number, label)
            key = raw[0]
            if last_key is not None and key <= last_key:
                shown = show_path(raw[1].path)
                message = f"record #{number} {shown!r}: out of order (or duplicated)"
                raise CorruptRepository(message, path=label)
            last_key = key
            position = after
            yield raw


def _general(chunk: bytes, number: int, label: str) -> RawRecord:
    """Parse one record's text (without ``File ``) that is not in the canonical form."""
    lines = chunk.split(b"\n  ")  # fields are indented by exactly two spaces
    unindented = chunk.count(b"\n") == len(lines) - 1
    if not unindented:
        lines = chunk.split(b"\n")  # other indentation, or blank lines
    path = lines[0]
    if b"\\" in path:
        try:
            path = unquote_path(path)
        except ValueError as error:
            message = f"record #{number}: bad File line: {error}"
            raise CorruptRepository(message, path=label) from None
    # the sort key, which also shows (C-level) whether the path may be unsafe
    key = () if path == b"." else tuple(path.split(b"/"))
    if b"" in key or b"." in key or b".." in key or b"\0" in path:
        problem = check_path(path)
        if problem is not None:
            message = f"record #{number}: {problem}: {show_path(path)!r}"
            raise HostilePath(message, path=label)
    del lines[0]
    try:
        record = _build(path, lines, unindented)
    except _GarbledError as error:
        message = f"record #{number} {show_path(path)!r}: {error}"
        raise CorruptRepository(message, path=label) from None
    return RawRecord(key, record, None)


# ---------------------------------------------------------------------------------------------
# Writing


_NAME_CACHE: dict[str | None, bytes] = {None: b":"}


def _check_name(name: str | None, field: str, path: bytes) -> bytes:
    cached = _NAME_CACHE.get(name)
    if cached is not None:
        return cached
    if name is None or safe_name(name) != name:
        raise ValueError(
            f"{field} {name!r} of {show_path(path)!r} is not readable by rdiff-backup "
            "(use safe_name(): non-ASCII, empty or multi-line names must be None)"
        )
    encoded = name.encode("ascii")
    if len(_NAME_CACHE) < 4096:
        _NAME_CACHE[name] = encoded
    return encoded


def format_record(record: Record) -> bytes:
    """The exact bytes rdiff-backup 2.2.7 writes for ``record`` (fields in its order).

    Only the fields rdiff-backup writes for the record's type are emitted: ``Size``,
    ``SHA1Digest`` and the hard-link triple (nlink > 1) for regular files, ``SymData`` for
    symlinks, ``DeviceNum`` for devices, ``ModTime`` for all but symlinks and devices.
    Raises ValueError for an unsafe path or a field the type requires but lacks.
    """
    path = record.path
    problem = check_path(path)
    if problem is not None:
        raise ValueError(f"{problem}: {show_path(path)!r}")
    type_ = record.type
    if type_ not in _REQUIRED:
        raise ValueError(f"unknown type {type_!r} for {show_path(path)!r}")
    parts = [b"File ", quote_path(path), b"\n  Type ", type_.encode("ascii"), b"\n"]
    if type_ == "None":
        return b"".join(parts)
    for attr in _REQUIRED[type_]:
        if getattr(record, attr) is None:
            raise ValueError(f"{type_} record {show_path(path)!r} lacks {_FIELD_OF_ATTR[attr]}")
    if type_ == "reg":
        parts += (b"  Size ", b"%d" % _ranged(record.size, 0, _I64, "Size", path), b"\n")
        if record.resource_fork is not None:
            parts += (b"  ResourceFork ", _raw_value(record.resource_fork, path), b"\n")
        if record.carbon_file is not None:
            parts += (b"  CarbonFile ", _raw_value(record.carbon_file, path), b"\n")
        if record.has_hard_link_triple:
            parts += (
                b"  NumHardLinks %d\n  Inode %d\n  DeviceLoc %d\n"
                % (
                    _ranged(record.num_hard_links, 1, _U64, "NumHardLinks", path),
                    _ranged(record.inode, 0, _U64, "Inode", path),
                    _ranged(record.device_loc, 0, _U64, "DeviceLoc", path),
                ),
            )
        if record.sha1_digest is not None:
            digest = record.sha1_digest
            if len(digest) != 40 or not _HEX.issuperset(digest.encode("ascii", "replace")):
                raise ValueError(f"bad SHA1Digest {digest!r} for {show_path(path)!r}")
            parts += (b"  SHA1Digest ", digest.encode("ascii"), b"\n")
    elif type_ == "sym":
        assert record.sym_data is not None
        if not record.sym_data:
            raise ValueError(f"empty SymData for {show_path(path)!r}")
        parts += (b"  SymData ", quote_path(record.sym_data), b"\n")
    elif type_ == "dev":
        assert record.device_num is not None
        kind, major, minor = record.device_num
        if kind not in ("c", "b"):
            raise ValueError(f"bad DeviceNum kind {kind!r} for {show_path(path)!r}")
        parts.append(
            b"  DeviceNum %s %d %d\n"
            % (
                kind.encode("ascii"),
                _ranged(major, 0, _U32, "DeviceNum", path),
                _ranged(minor, 0, _U32, "DeviceNum", path),
            )
        )
    if type_ not in ("sym", "dev"):
        parts.append(b"  ModTime %d\n" % _ranged(record.mod_time, -_I64, _I64, "ModTime", path))
    uid, gid, perms = record.uid, record.gid, record.permissions
    if uid is None or not 0 <= uid < _U32:
        uid = _ranged(uid, 0, _U32, "Uid", path)
    if gid is None or not 0 <= gid < _U32:
        gid = _ranged(gid, 0, _U32, "Gid", path)
    if perms is None or not 0 <= perms < 0o10000:
        perms = _ranged(perms, 0, 0o10000, "Permissions", path)
    parts.append(
        b"  Uid %d\n  Uname %s\n  Gid %d\n  Gname %s\n  Permissions %d\n"
        % (
            uid,
            _check_name(record.uname, "Uname", path),
            gid,
            _check_name(record.gname, "Gname", path),
            perms,
        )
    )
    if record.alternate_mirror_name is not None:
        if record.alternate_increment_name is not None:
            raise ValueError(f"{show_path(path)!r}: both alternate names set; only one is written")
        number = _ranged(record.alternate_mirror_name, 0, _U64, "AlternateMirrorName", path)
        parts.append(b"  AlternateMirrorName %d\n" % number)
    elif record.alternate_increment_name is not None:
        number = _ranged(record.alternate_increment_name, 0, _U64, "AlternateIncrementName", path)
        parts.append(b"  AlternateIncrementName %d\n" % number)
    return b"".join(parts)


def _ranged(value: int | None, low: int, high: int, field: str, path: bytes) -> int:
    if value is None or not low <= value < high:
        raise ValueError(f"{field} {value!r} out of range for {show_path(path)!r}")
    return value


def _raw_value(value: bytes, path: bytes) -> bytes:
    if not value or b"\n" in value:
        raise ValueError(f"empty or multi-line raw field value for {show_path(path)!r}")
    return value


class MetadataWriter:
    """Write records to a binary stream in rdiff-backup's format, refusing out-of-order input.

    ``allow_missing`` permits ``Type None`` records (diff files only). Records are buffered
    and written in chunks; call :meth:`flush` (or use the writer as a context manager) before
    closing the underlying stream. The stream itself is never closed here.
    """

    def __init__(self, stream: BinaryIO, *, allow_missing: bool = False) -> None:
        self._stream = stream
        self._allow_missing = allow_missing
        self._last: tuple[bytes, ...] | None = None
        self._chunk: list[bytes] = []
        self._chunk_size = 0
        self.count = 0

    def write(self, record: Record) -> None:
        """Append one record; ValueError if it does not sort strictly after the previous one."""
        key = path_key(record.path)
        if self._last is not None and key <= self._last:
            raise ValueError(
                f"metadata record {show_path(record.path)!r} out of order (not after the previous)"
            )
        if record.type == "None" and not self._allow_missing:
            raise ValueError(f"Type None record {show_path(record.path)!r} outside a diff")
        self._append(key, format_record(record))

    def write_raw(self, raw: RawRecord) -> None:
        """Append a record as read (:func:`iter_raw_records`): its stored text is copied when
        it is canonical, else the record is formatted. Same order rules as :meth:`write`."""
        text = raw.text
        if text is None:
            self.write(raw.record)
            return
        key = raw.key
        if self._last is not None and key <= self._last:
            raise ValueError(
                f"metadata record {show_path(raw.record.path)!r} out of order "
                "(not after the previous)"
            )
        self._append(key, text)

    def _append(self, key: tuple[bytes, ...], data: bytes) -> None:
        self._last = key
        self.count += 1
        self._chunk.append(data)
        self._chunk_size += len(data)
        if self._chunk_size >= _WRITE_CHUNK:
            self.flush()

    def write_all(self, records: Iterable[Record]) -> None:
        """Write every record of ``records`` (in order)."""
        for record in records:
            self.write(record)

    def flush(self) -> None:
        """Write out the buffered records."""
        if self._chunk:
            self._stream.write(b"".join(self._chunk))
            self._chunk = []
            self._chunk_size = 0

    def __enter__(self) -> MetadataWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()


def write_data_file(
    path: PathArg,
    chunks: Iterable[bytes],
    *,
    compress: bool = True,
    compresslevel: int = 9,
    fsync: bool = True,
) -> Path:
    """Write a repository data file atomically, gzipped as rdiff-backup does.

    ``path`` is the name without ``.gz``. If ``compress`` and at least one non-empty chunk
    comes, the file is ``<path>.gz`` (gzip level 9, FNAME = the plain name); otherwise a plain
    file, which is 0 bytes when nothing was written. Returns the path actually written.
    """
    plain = Path(path)
    iterator = iter(chunks)
    first = b""
    for first in iterator:
        if first:
            break
    if not first:
        write_atomic(plain, b"", fsync=fsync)
        return plain
    target = plain.with_name(plain.name + ".gz") if compress else plain
    with atomic_writer(target, fsync=fsync) as raw:
        if compress:
            with gzip.GzipFile(
                filename=plain.name, mode="wb", compresslevel=compresslevel, fileobj=raw
            ) as out:
                out.write(first)
                for chunk in iterator:
                    out.write(chunk)
        else:
            raw.write(first)
            for chunk in iterator:
                raw.write(chunk)
    return target


def _record_chunks(records: Iterable[Record], *, allow_missing: bool) -> Iterator[bytes]:
    sink = _ChunkSink()
    writer = MetadataWriter(cast(BinaryIO, sink), allow_missing=allow_missing)
    for record in records:
        writer.write(record)
        if sink.pending:
            yield from sink.take()
    writer.flush()
    yield from sink.take()


class _ChunkSink:
    """A write-only 'stream' collecting the writer's chunks for a generator to pass on."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.pending.append(data)
        return len(data)

    def take(self) -> list[bytes]:
        taken, self.pending = self.pending, []
        return taken


def write_metadata_file(
    path: PathArg,
    records: Iterable[Record],
    *,
    compress: bool = True,
    allow_missing: bool | None = None,
    compresslevel: int = 9,
    fsync: bool = True,
) -> Path:
    """Write ``mirror_metadata.<T>.snapshot`` or ``.diff`` (``path`` without ``.gz``).

    Streams ``records`` (constant memory), atomically; gzipped as ``<path>.gz`` unless
    ``compress`` is false or there are no records (then a 0-byte plain file, as rdiff-backup
    leaves it). ``Type None`` records are allowed iff the name contains ``.diff`` (or as
    ``allow_missing`` says). Returns the path written.
    """
    if allow_missing is None:
        allow_missing = ".diff" in Path(path).name
    return write_data_file(
        path,
        _record_chunks(records, allow_missing=allow_missing),
        compress=compress,
        compresslevel=compresslevel,
        fsync=fsync,
    )
