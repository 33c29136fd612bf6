"""The tagged encoding of messages: plain values and registered dataclasses, nothing else.

Every value starts with a one-byte tag (docs/protocol.md, "Encoding")::

    N None     T True     F False
    i int      zigzag varint (at most 20 bytes)
    q int      8 bytes, signed big-endian (the encoder's choice for large int64 values:
               nanosecond times, inodes — one unpack instead of a 10-byte varint loop)
    d float    8 bytes, IEEE 754 big-endian
    b bytes    varint length, then the bytes
    s str      varint length, then UTF-8 (surrogates passed through)
    t tuple    varint count, then the items
    R Record   the 19 fields of rdb_format.metadata.Record, in order (no tags of their own
               beyond each field's value)
    S struct   varint type number (the registry's order), then every field, in order

Decoding builds only these values: no code is looked up by name, no constructor runs but the
registered dataclasses' own, and every field is checked against the dataclass's type hints
before it is built. Whatever is wrong (truncated, unknown tag, wrong type, extra bytes, too
deep) raises :class:`rdb_format.errors.ProtocolError` with one line saying what.
"""

from __future__ import annotations

import dataclasses
import struct
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, Union, cast, get_args, get_origin, get_type_hints

from rdb_format.errors import ProtocolError
from rdb_format.metadata import Record

__all__ = ["MAX_DEPTH", "MAX_INT_BYTES", "Codec"]

#: Nesting of tuples and structs a frame may have (ours have at most 5).
MAX_DEPTH = 16
#: Longest varint accepted: 20 bytes hold 140 bits (inodes and nanosecond times need 64).
MAX_INT_BYTES = 20

_NONE, _TRUE, _FALSE = b"N", b"T", b"F"
_INT, _BYTES, _STR, _TUPLE, _RECORD, _STRUCT = 0x69, 0x62, 0x73, 0x74, 0x52, 0x53
_FLOAT = 0x64
_INT64 = 0x71
_QUAD = struct.Struct(">q")
_SMALL = 1 << 20
_DOUBLE = struct.Struct(">d")

Validator = Callable[[object], bool]
#: a field's check: the exact types it may have, or a validator
Check = frozenset[type] | Validator


def _varint(value: int, out: bytearray) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class Codec:
    """Encodes and decodes the values of one protocol: its dataclasses, in registry order.

    The registry order is part of the protocol (a struct's number is its position), so a
    message type may only be appended, never moved, within one protocol version.
    """

    def __init__(self, structs: Sequence[type]) -> None:
        self._structs: list[type] = list(structs)
        self._numbers: dict[type, int] = {cls: n for n, cls in enumerate(self._structs)}
        self._fields: list[tuple[str, ...]] = []
        self._checks: list[tuple[Check, ...]] = []
        for cls in self._structs:
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{cls.__name__} is not a dataclass")
            hints = get_type_hints(cls)
            names = tuple(f.name for f in dataclasses.fields(cls))
            self._fields.append(names)
            self._checks.append(tuple(self._check(hints[name]) for name in names))
        record_hints = get_type_hints(Record)
        self._record_checks = tuple(self._check(record_hints[n]) for n in Record._fields)

    # ---- validators compiled from type hints ----------------------------------------------

    def _atomic(self, hint: Any) -> frozenset[type] | None:
        """The exact types a hint allows, if it is a plain type or a union of them."""
        if hint is None or hint is type(None):
            return frozenset((type(None),))
        if hint in (bool, int, float, bytes, str, Record) or hint in self._numbers:
            return frozenset((hint,))
        if get_origin(hint) in (Union, types.UnionType):
            parts = [self._atomic(a) for a in get_args(hint)]
            if all(p is not None for p in parts):
                return frozenset().union(*parts)  # type: ignore[arg-type]
        return None

    def _check(self, hint: Any) -> Check:
        """A field's check: the set of its exact types when that says it all (tested inline,
        no call), else a validator."""
        atomic = self._atomic(hint)
        return atomic if atomic is not None else self._validator(hint)

    def _validator(self, hint: Any) -> Validator:
        atomic = self._atomic(hint)
        if atomic is not None:
            if len(atomic) == 1:
                (only,) = atomic
                return lambda v: type(v) is only
            return lambda v: type(v) in atomic
        origin = get_origin(hint)
        args = get_args(hint)
        if origin is Literal:
            allowed = frozenset(args)
            return lambda v: type(v) is str and v in allowed
        if origin in (Union, types.UnionType):
            if type(None) in args and len(args) == 2:  # X | None: the common optional field
                inner = self._validator(next(a for a in args if a is not type(None)))
                return lambda v: v is None or inner(v)
            options = tuple(self._validator(a) for a in args)
            return lambda v: any(check(v) for check in options)
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                items = self._atomic(args[0])
                if items is not None:
                    return lambda v: type(v) is tuple and set(map(type, v)) <= items
                each = self._validator(args[0])
                return lambda v: type(v) is tuple and all(each(x) for x in v)
            fixed = tuple(self._validator(a) for a in args)
            return lambda v: (
                type(v) is tuple
                and len(v) == len(fixed)
                and all(c(x) for c, x in zip(fixed, v, strict=True))
            )
        if hint is typing.Any:
            return lambda v: True
        raise TypeError(f"the wire encoding cannot carry {hint!r}")

    # ---- encoding -----------------------------------------------------------------------

    def encode(self, value: object) -> bytes:
        out = bytearray()
        self._encode(value, out)
        return bytes(out)

    def _encode(self, value: object, out: bytearray) -> None:
        kind = type(value)
        if kind is bytes:
            data_ = cast(bytes, value)
            out.append(_BYTES)
            _varint(len(data_), out)
            out += data_
        elif kind is int:
            number: int = value  # type: ignore[assignment]
            if -_SMALL < number < _SMALL or not -(1 << 63) <= number < (1 << 63):
                out.append(_INT)
                _varint((number << 1) if number >= 0 else ((-number) << 1) - 1, out)
            else:
                out.append(_INT64)
                out += _QUAD.pack(number)
        elif value is None:
            out += _NONE
        elif kind is str:
            data = value.encode("utf-8", "surrogatepass")  # type: ignore[attr-defined]
            out.append(_STR)
            _varint(len(data), out)
            out += data
        elif kind is tuple:
            out.append(_TUPLE)
            _varint(len(value), out)  # type: ignore[arg-type]
            for item in value:  # type: ignore[attr-defined]
                self._encode(item, out)
        elif kind is Record:
            out.append(_RECORD)
            for item in value:  # type: ignore[attr-defined]
                self._encode(item, out)
        elif kind is float:
            out.append(_FLOAT)
            out += _DOUBLE.pack(value)
        elif value is True:
            out += _TRUE
        elif value is False:
            out += _FALSE
        else:
            number_ = self._numbers.get(kind)
            if number_ is None:
                raise TypeError(f"the wire encoding cannot carry {kind.__name__}")
            out.append(_STRUCT)
            _varint(number_, out)
            for name in self._fields[number_]:
                self._encode(getattr(value, name), out)

    # ---- decoding -----------------------------------------------------------------------

    def decode(self, data: bytes | bytearray | memoryview) -> object:
        """The one value ``data`` holds; ProtocolError if it is not exactly one good value."""
        view = bytes(data)
        value, end = self._decode(view, 0, 0)
        if end != len(view):
            raise ProtocolError(f"malformed frame: {len(view) - end} bytes after the message")
        return value

    def _read_varint(self, data: bytes, pos: int) -> tuple[int, int]:
        result = 0
        shift = 0
        limit = min(len(data), pos + MAX_INT_BYTES)
        while pos < limit:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
        if pos >= len(data):
            raise ProtocolError("malformed frame: truncated number")
        raise ProtocolError("malformed frame: number too long")

    def _length(self, data: bytes, pos: int) -> tuple[int, int]:
        length, pos = self._read_varint(data, pos)
        if length > len(data) - pos:
            raise ProtocolError("malformed frame: a length runs past the end of the frame")
        return length, pos

    def _values(self, data: bytes, pos: int, count: int, depth: int) -> tuple[list[object], int]:
        """``count`` consecutive values: plain ones decoded here, in the loop (a function
        call per value is most of the cost of a metadata entry), the others by _decode."""
        end = len(data)
        values: list[object] = []
        append = values.append
        for _ in range(count):
            if pos >= end:
                raise ProtocolError("malformed frame: truncated value")
            tag = data[pos]
            if tag in (_BYTES, _STR):
                if pos + 1 < end and data[pos + 1] < 0x80:
                    length = data[pos + 1]
                    pos += 2
                    if length > end - pos:
                        raise ProtocolError(
                            "malformed frame: a length runs past the end of the frame"
                        )
                else:
                    length, pos = self._length(data, pos + 1)
                if tag == _BYTES:
                    append(data[pos : pos + length])
                    pos += length
                    continue
                try:
                    append(data[pos : pos + length].decode("utf-8", "surrogatepass"))
                except UnicodeDecodeError:
                    raise ProtocolError("malformed frame: a string is not UTF-8") from None
                pos += length
            elif tag == _INT and pos + 1 < end and data[pos + 1] < 0x80:
                raw = data[pos + 1]
                append((raw >> 1) if not raw & 1 else -((raw + 1) >> 1))
                pos += 2
            elif tag == _INT and pos + 2 < end and data[pos + 2] < 0x80:  # two-byte varint
                raw = (data[pos + 1] & 0x7F) | (data[pos + 2] << 7)
                append((raw >> 1) if not raw & 1 else -((raw + 1) >> 1))
                pos += 3
            elif tag == _INT64 and pos + 9 <= end:
                append(_QUAD.unpack_from(data, pos + 1)[0])
                pos += 9
            elif tag == 0x4E:  # N
                append(None)
                pos += 1
            else:
                value, pos = self._decode(data, pos, depth)
                append(value)
        return values, pos

    def _decode(self, data: bytes, pos: int, depth: int) -> tuple[object, int]:
        end = len(data)
        if pos >= end:
            raise ProtocolError("malformed frame: truncated value")
        tag = data[pos]
        pos += 1
        if tag in (_BYTES, _STR):
            if pos < end and data[pos] < 0x80:
                length = data[pos]
                pos += 1
                if length > end - pos:
                    raise ProtocolError("malformed frame: a length runs past the end of the frame")
            else:
                length, pos = self._length(data, pos)
            if tag == _BYTES:
                return data[pos : pos + length], pos + length
            try:
                text = data[pos : pos + length].decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise ProtocolError("malformed frame: a string is not UTF-8") from None
            return text, pos + length
        if tag == _INT:
            if pos < end and data[pos] < 0x80:
                raw = data[pos]
                pos += 1
            else:
                raw, pos = self._read_varint(data, pos)
            return (raw >> 1) if not raw & 1 else -((raw + 1) >> 1), pos
        if tag == 0x4E:  # N
            return None, pos
        if tag == _INT64:
            if pos + 8 > end:
                raise ProtocolError("malformed frame: truncated value")
            return _QUAD.unpack_from(data, pos)[0], pos + 8
        if depth >= MAX_DEPTH:
            raise ProtocolError("malformed frame: values nested too deep")
        if tag == _TUPLE:
            if pos < end and data[pos] < 0x80:
                count = data[pos]
                pos += 1
                if count > end - pos:  # each item takes at least one byte
                    raise ProtocolError("malformed frame: a length runs past the end of the frame")
            else:
                count, pos = self._length(data, pos)
            items, pos = self._values(data, pos, count, depth + 1)
            return tuple(items), pos
        if tag == _RECORD:
            fields, pos = self._values(data, pos, len(self._record_checks), depth + 1)
            for check, item in zip(self._record_checks, fields, strict=True):
                if not (type(item) in check if type(check) is frozenset else check(item)):  # type: ignore[operator]
                    raise ProtocolError("malformed frame: a metadata record has a bad field")
            return Record._make(fields), pos
        if tag == _STRUCT:
            number, pos = self._read_varint(data, pos)
            if number >= len(self._structs):
                raise ProtocolError(f"malformed frame: unknown message type {number}")
            cls = self._structs[number]
            names = self._fields[number]
            values, pos = self._values(data, pos, len(names), depth + 1)
            for name, check, item in zip(names, self._checks[number], values, strict=True):
                if not (type(item) in check if type(check) is frozenset else check(item)):  # type: ignore[operator]
                    raise ProtocolError(
                        f"malformed frame: {cls.__name__}.{name} has a value of the wrong type"
                    )
            return cls(*values), pos
        if tag == _FLOAT:
            if pos + 8 > end:
                raise ProtocolError("malformed frame: truncated value")
            return _DOUBLE.unpack_from(data, pos)[0], pos + 8
        if tag == 0x54:  # T
            return True, pos
        if tag == 0x46:  # F
            return False, pos
        raise ProtocolError(f"malformed frame: unknown tag 0x{tag:02x}")
