"""File-name quoting (``chars_to_quote``, ``special_escapes``) and long names (reference §1.5-1.6).

On disk every path component of the mirror, of ``increments/`` and ``long_filename_data/``,
and every name directly in ``rdiff-backup-data`` is *quoted*: when the repository's
``chars_to_quote`` setting is non-empty, each byte matching ``[<chars_to_quote>]`` or equal to
``;`` becomes ``;`` plus its value as 3 decimal digits. Metadata and statistics files store
*unquoted* names. All names are bytes.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rdb_format.atomic import write_atomic
from rdb_format.errors import CorruptRepository, HostilePath
from rdb_format.increments import IncrementKind, format_increment_name
from rdb_format.layout import (
    CHARS_TO_QUOTE,
    INCREMENTS,
    LONG_FILENAME_DATA,
    NEXT_FREE,
    SPECIAL_ESCAPES,
)

QUOTE_CHAR = b";"
ESCAPE_DOS_DEVICES = "escape_dos_devices"
ESCAPE_TRAILING_SPACES = "escape_trailing_spaces"
KNOWN_ESCAPES = frozenset({ESCAPE_DOS_DEVICES, ESCAPE_TRAILING_SPACES})

# Extra bytes rdiff-backup reserves when testing whether an increment name fits (§1.6).
LONG_NAME_MARGIN = 50

_UNQUOTE = re.compile(rb";(\d{3})", re.ASCII)
_DOS_DEVICE = re.compile(rb"(?:aux|prn|con|nul|com[0-9]|lpt[1-9])(?:\.|$)", re.IGNORECASE)

PathArg = str | os.PathLike[str]


def _quote_byte(match: re.Match[bytes]) -> bytes:
    return b";%03d" % match.group(0)[0]


@dataclass(frozen=True)
class Quoting:
    """A repository's quoting setting. ``Quoting()`` (empty) means names are stored as is."""

    chars_to_quote: bytes = b""
    special_escapes: frozenset[str] = frozenset()
    # Config files that were absent when this was read (readers warn about them).
    missing: tuple[str, ...] = field(default=(), compare=False)
    _class: re.Pattern[bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _quote: re.Pattern[bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.chars_to_quote:
            return
        # The setting is the body of a regex character class, exactly as rdiff-backup uses it.
        try:
            klass = re.compile(b"[" + self.chars_to_quote + b"]", re.DOTALL)
            quote = re.compile(b"[" + self.chars_to_quote + b"]|;", re.DOTALL)
        except re.error as error:
            raise ValueError(f"invalid chars_to_quote {self.chars_to_quote!r}: {error}") from None
        object.__setattr__(self, "_class", klass)
        object.__setattr__(self, "_quote", quote)

    @property
    def active(self) -> bool:
        """Quoting (and the special escapes) apply only with a non-empty chars_to_quote."""
        return self._quote is not None

    @property
    def quotes_colon(self) -> bool:
        """Whether ``:`` is quoted; then time strings are written in the compatible form."""
        return self._class is not None and self._class.match(b":") is not None

    @property
    def quotes_high_bytes(self) -> bool:
        """Whether bytes >= 0x80 are quoted (rdiff-backup 2.2.7 mis-reads such names)."""
        klass = self._class
        return klass is not None and any(klass.match(bytes([b])) for b in range(0x80, 0x100))

    def quote(self, name: bytes) -> bytes:
        """The on-disk form of one path component."""
        if self._quote is None:
            return name
        quoted = self._quote.sub(_quote_byte, name)
        if ESCAPE_DOS_DEVICES in self.special_escapes and _DOS_DEVICE.match(quoted):
            quoted = b";%03d" % quoted[0] + quoted[1:]
        if ESCAPE_TRAILING_SPACES in self.special_escapes and quoted[-1:] in (b" ", b"."):
            quoted = quoted[:-1] + b";%03d" % quoted[-1]
        return quoted

    def unquote(self, name: bytes, *, path: PathArg | bytes | None = None) -> bytes:
        """The real name of an on-disk component; errors name ``path`` (its directory or file).

        ``;DDD`` decodes to the raw byte DDD (not its UTF-8 form, the 2.2.7 bug). A ``;`` not
        followed by 3 digits is kept. Results that could escape the tree raise HostilePath.
        """
        if self._quote is None:
            result = name
        else:

            def byte(match: re.Match[bytes]) -> bytes:
                value = int(match.group(1))
                if value > 255:
                    raise CorruptRepository(
                        f"bad quoted name {_show(name)}: ;{value:03d} is not a byte", path=path
                    )
                return bytes([value])

            result = _UNQUOTE.sub(byte, name)
        check_component(result, path=path)
        return result

    def quote_path(self, index: Iterable[bytes]) -> tuple[bytes, ...]:
        return tuple(self.quote(part) for part in index)

    def unquote_path(
        self, parts: Iterable[bytes], *, path: PathArg | bytes | None = None
    ) -> tuple[bytes, ...]:
        return tuple(self.unquote(part, path=path) for part in parts)


NO_QUOTING = Quoting()


# ---- on-disk relative paths of an index ------------------------------------------------------


def _checked(index: Iterable[bytes]) -> tuple[bytes, ...]:
    parts = tuple(index)
    for part in parts:
        check_component(part)
    return parts


def mirror_relpath(
    index: Iterable[bytes],
    quoting: Quoting = NO_QUOTING,
    *,
    alternate_mirror_name: int | None = None,
) -> bytes:
    """The on-disk path of an index's mirror data, relative to the repository root.

    Each component quoted (``(b"Sub", b"X")`` with ``A-Z`` → ``b";083ub/;088"``); the root
    ``()`` is ``b"."``. With ``alternate_mirror_name`` N (metadata ``AlternateMirrorName``)
    it is ``rdiff-backup-data/long_filename_data/N``. HostilePath for an unsafe component.
    """
    parts = _checked(index)
    if alternate_mirror_name is not None:
        return b"/".join(
            [
                b"rdiff-backup-data",
                LONG_FILENAME_DATA.encode(),
                long_name_base(alternate_mirror_name),
            ]
        )
    if not parts:
        return b"."
    return b"/".join([quoting.quote(part) for part in parts])


def increment_relpath(
    index: Iterable[bytes],
    time: int,
    kind: IncrementKind,
    quoting: Quoting = NO_QUOTING,
    *,
    compressed: bool = False,
    compatible: bool = False,
    utc_offset: int | None = None,
    alternate_name: int | None = None,
) -> bytes:
    """The on-disk path of an index's increment ``<name>.<T>.<kind>[.gz]``, relative to
    ``rdiff-backup-data``.

    ``increments/<quoted dirs>/<quoted name.T.kind>`` (the whole last component is quoted,
    time string included, as rdiff-backup does); the root's is ``increments.<T>.dir``. With
    ``alternate_name`` N (``AlternateIncrementName`` or ``AlternateMirrorName``) it is
    ``long_filename_data/N.<T>.<kind>``. The time string is in the compatible form when asked
    or when ``:`` is quoted. HostilePath for an unsafe component.
    """
    parts = _checked(index)
    compatible = compatible or quoting.quotes_colon

    def name(base: bytes) -> bytes:
        raw = format_increment_name(
            base, time, kind, compressed=compressed, compatible=compatible, utc_offset=utc_offset
        )
        return quoting.quote(raw)

    if alternate_name is not None:
        return LONG_FILENAME_DATA.encode() + b"/" + name(long_name_base(alternate_name))
    if not parts:
        return name(INCREMENTS.encode())
    dirs = [quoting.quote(part) for part in parts[:-1]]
    return b"/".join([INCREMENTS.encode(), *dirs, name(parts[-1])])


def _show(name: bytes) -> str:
    return repr(name)[1:]


def check_component(name: bytes, *, path: PathArg | bytes | None = None) -> None:
    """HostilePath unless ``name`` is one safe path component (no '/', NUL, '.', '..', '')."""
    if name in (b"", b".", b"..") or b"/" in name or b"\0" in name:
        raise HostilePath(f"unsafe file name {_show(name)} in the repository", path=path)


def read_quoting(data_dir: PathArg) -> Quoting:
    """The repository's quoting, from ``chars_to_quote`` and ``special_escapes``.

    A missing file counts as empty and is listed in ``Quoting.missing``, so the caller can
    warn (rdiff-backup: "chars_to_quote file … not found, assuming no quoting").
    """
    base = Path(data_dir)
    missing: list[str] = []
    try:
        chars = (base / CHARS_TO_QUOTE).read_bytes()
    except FileNotFoundError:
        chars = b""
        missing.append(CHARS_TO_QUOTE)
    try:
        escapes_raw = (base / SPECIAL_ESCAPES).read_bytes()
    except FileNotFoundError:
        escapes_raw = b""
        missing.append(SPECIAL_ESCAPES)
    try:
        escapes = frozenset(escapes_raw.decode("ascii").split())
    except UnicodeDecodeError:
        raise CorruptRepository(
            "not an ASCII list of escapes", path=base / SPECIAL_ESCAPES
        ) from None
    unknown = escapes - KNOWN_ESCAPES
    if unknown:
        raise CorruptRepository(
            f"unknown special escape {sorted(unknown)[0]!r}", path=base / SPECIAL_ESCAPES
        )
    try:
        return Quoting(chars, escapes, tuple(missing))
    except ValueError as error:
        raise CorruptRepository(str(error), path=base / CHARS_TO_QUOTE) from None


def write_quoting(data_dir: PathArg, quoting: Quoting) -> None:
    """Write ``chars_to_quote`` and ``special_escapes`` as rdiff-backup does (no final newline)."""
    base = Path(data_dir)
    write_atomic(base / CHARS_TO_QUOTE, quoting.chars_to_quote)
    escapes = "\n".join(sorted(quoting.special_escapes)).encode("ascii")
    write_atomic(base / SPECIAL_ESCAPES, escapes)


# ---- long names (long_filename_data) -------------------------------------------------------


def name_max(directory: PathArg) -> int:
    """The file system's longest name in bytes (255 when it cannot be asked)."""
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def name_fits(directory: PathArg, quoted_name: bytes, *, margin: int = 0) -> bool:
    """Whether ``quoted_name`` plus ``margin`` bytes fits in one component in ``directory``.

    Use ``margin=LONG_NAME_MARGIN`` for the increment test rdiff-backup makes (§1.6).
    """
    return len(quoted_name) + margin <= name_max(directory)


def read_next_free(data_dir: PathArg) -> int | None:
    """The ``long_filename_data/next_free`` counter, or None if absent."""
    path = Path(data_dir) / LONG_FILENAME_DATA / NEXT_FREE
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    stripped = text.strip()
    if not stripped.isdigit() or int(stripped) < 1:
        raise CorruptRepository(f"not a positive number: {_show(text[:40])}", path=path)
    return int(stripped)


def _highest_used(long_dir: Path) -> int:
    highest = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(os.fsencode(long_dir)):
            head = entry.split(b".", 1)[0]
            if head.isdigit():
                highest = max(highest, int(head))
    return highest


def allocate_long_name(data_dir: PathArg) -> int:
    """Reserve the next free number N for an over-long name and advance ``next_free``.

    N is the larger of ``next_free`` and one past any number already used in the directory,
    so a stale or missing counter never hands out a used name. Call with the writer lock held.
    """
    long_dir = Path(data_dir) / LONG_FILENAME_DATA
    long_dir.mkdir(mode=0o700, exist_ok=True)
    number = max(read_next_free(data_dir) or 1, _highest_used(long_dir) + 1)
    write_atomic(long_dir / NEXT_FREE, str(number + 1).encode("ascii"))
    return number


def long_name_base(number: int) -> bytes:
    """The name in long_filename_data for mirror data (and the base of its increments)."""
    return str(number).encode("ascii")
