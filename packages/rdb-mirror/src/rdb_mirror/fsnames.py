"""What names a destination can store, and the quoting a new repository gets for it.

rdiff-backup 2.2.7 probes the destination of a first backup and writes the result to
``chars_to_quote`` / ``special_escapes``, never changing it afterwards (format reference
§1.5): a case-insensitive destination under a case-sensitive source quotes ``A-Z``; one that
cannot store control characters quotes ``\\000-\\037``; one that cannot store the characters
Windows reserves quotes those and DEL too; ``;`` (the quoting character) is added whenever
anything is quoted; DOS device names and trailing dots/spaces get the special escapes.
Unlike rdiff-backup we never quote bytes ``\\200-\\377``: rdiff-backup 2.2.7 cannot restore
such names (its unquoting of high bytes loops); a name the destination refuses is an error in
``error_log`` instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rdb_format.quoting import ESCAPE_DOS_DEVICES, ESCAPE_TRAILING_SPACES, Quoting
from rdb_mirror.datafiles import temp_path

__all__ = ["NameSupport", "choose_quoting", "probe_names", "source_case_sensitive"]


@dataclass(frozen=True)
class NameSupport:
    """What a directory's file system can store in a name (all True on Linux file systems)."""

    case_sensitive: bool = True
    control_characters: bool = True  # bytes 1-31
    windows_reserved: bool = True  # " * : < > ? \\ | and DEL
    dos_devices: bool = True  # aux, con.txt, lpt1 ...
    trailing_dots_and_spaces: bool = True  # "name." and "name " kept as given


def probe_names(directory: bytes) -> NameSupport:
    """Create (and remove) test files in a temp directory under ``directory``."""
    probe = os.fsencode(temp_path(Path(os.fsdecode(directory))))
    os.mkdir(probe, 0o700)
    try:
        return NameSupport(
            case_sensitive=_case_sensitive(probe),
            control_characters=_storable(probe, b"ctl\x01\x1f"),
            windows_reserved=all(_storable(probe, b"w%c" % c) for c in b'"*:<>?\\|\x7f'),
            dos_devices=_storable(probe, b"aux") and _storable(probe, b"con.txt"),
            trailing_dots_and_spaces=_storable(probe, b"dot.") and _storable(probe, b"space "),
        )
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _storable(directory: bytes, name: bytes) -> bool:
    """A file named ``name`` can be created and is listed under exactly that name."""
    path = os.path.join(directory, name)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except OSError:
        return False
    try:
        return name in os.listdir(directory)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _case_sensitive(directory: bytes) -> bool:
    upper = os.path.join(directory, b"CASE")
    os.close(os.open(upper, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    try:
        return not os.path.lexists(os.path.join(directory, b"case"))
    finally:
        os.unlink(upper)


def source_case_sensitive(root: bytes) -> bool:
    """Whether the source tells ``Name`` from ``NAME``, asked read-only: an entry of ``root``
    whose name has letters is looked up with the case swapped (rdiff-backup's read-only
    probe). True when no entry has letters (the usual case on Linux)."""
    try:
        names = os.listdir(root)
    except OSError:
        return True
    for name in names[:100]:
        swapped = name.swapcase()
        if swapped == name:
            continue
        try:
            original = os.lstat(os.path.join(root, name))
            other = os.lstat(os.path.join(root, swapped))
        except OSError:
            return True  # the swapped name does not exist: case matters
        return (original.st_dev, original.st_ino) != (other.st_dev, other.st_ino)
    return True


def choose_quoting(destination: NameSupport, source_is_case_sensitive: bool = True) -> Quoting:
    """The quoting rdiff-backup 2.2.7 chooses for a new repository (no high bytes, above)."""
    chars = b""
    if not destination.case_sensitive and source_is_case_sensitive:
        chars += b"A-Z"
    if not (destination.control_characters and destination.windows_reserved):
        chars += b"\\000-\\037"
    if not destination.windows_reserved:
        chars += b'"*:<>?\\\\|\\177'
    escapes: set[str] = set()
    if not destination.dos_devices:
        escapes.add(ESCAPE_DOS_DEVICES)
    if not destination.trailing_dots_and_spaces:
        escapes.add(ESCAPE_TRAILING_SPACES)
    if not chars and not escapes:
        return Quoting()
    return Quoting(chars + b";", frozenset(escapes))  # escapes apply only when quoting is on
