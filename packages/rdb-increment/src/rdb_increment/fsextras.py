"""A local file's extended attributes and POSIX ACL as a backup records them.

One reader for the sides that look at local files: rdb-mirror's backup (and regress) and
rdb-restore's ``compare`` (what a backup of a file would record, against what the repository
holds). ``system.*`` attributes are not EAs (ACLs are kept apart, as
``access_control_lists``), and an unprivileged user only keeps ``user.*``; an ACL that only
repeats the mode bits is no ACL. A file system without EAs or ACLs, or no pylibacl, reads as
having none. Here rather than in rdb-format (standard library only) because ACLs need
pylibacl; both rdb-mirror and rdb-restore already depend on rdb-increment.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from rdb_format.eas_acls import ACLEntry, is_trivial_acl, parse_acl_entry

posix1e: Any  # pylibacl, optional
try:  # pragma: no cover - depends on the machine
    import posix1e as _posix1e

    posix1e = _posix1e
except ImportError:  # pragma: no cover
    posix1e = None

EAs = tuple[tuple[bytes, bytes], ...]

IS_ROOT = os.geteuid() == 0
#: errnos of a file system (or kernel) without EA or ACL support
UNSUPPORTED = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
#: the attributes a POSIX ACL is stored and listed as
ACL_NAMES = ("system.posix_acl_access", "system.posix_acl_default")


def keeps_ea(name: str) -> bool:
    """Whether a backup records the attribute ``name``."""
    if name.startswith("system."):
        return False  # ACLs (kept separately) and file-system internals
    return IS_ROOT or name.startswith("user.")


def read_eas(path: bytes, names: list[str] | None = None) -> EAs:
    """The extended attributes of ``path`` (not following symlinks), sorted by name;
    ``names`` is its ``listxattr`` when the caller has it already."""
    if names is None:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError as error:
            if error.errno in UNSUPPORTED or error.errno == errno.EPERM:
                return ()
            raise
    out: list[tuple[bytes, bytes]] = []
    for name in names:
        if not keeps_ea(name):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as error:
            if error.errno in (errno.ENODATA, *UNSUPPORTED):
                continue
            raise
        out.append((os.fsencode(name), value))
    out.sort()
    return tuple(out)


def _parse_text(raw: bytes | str, default: bool) -> list[ACLEntry]:
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    entries: list[ACLEntry] = []
    for line in text.splitlines():
        line = line.partition("#")[0].strip()
        if line:
            entry = parse_acl_entry(line)
            if default and not entry.default:
                entry = ACLEntry(entry.tag, entry.qualifier, entry.perms, True)
            entries.append(entry)
    return entries


def read_acl(path: bytes, is_dir: bool) -> tuple[ACLEntry, ...]:
    """The non-trivial ACL of ``path`` (access entries, then default ones), else ``()``."""
    if posix1e is None:
        return ()
    try:
        if not posix1e.has_extended(path):
            return ()
        entries = _parse_text(posix1e.ACL(file=path).to_any_text(), False)
        if is_dir:
            entries += _parse_text(posix1e.ACL(filedef=path).to_any_text(), True)
    except OSError as error:
        if error.errno in UNSUPPORTED:
            return ()
        raise
    if is_trivial_acl(entries):
        return ()
    return tuple(entries)


def read_eas_and_acl(
    path: bytes, is_dir: bool, *, eas: bool, acls: bool
) -> tuple[EAs | None, tuple[ACLEntry, ...] | None]:
    """:func:`read_eas` and :func:`read_acl` (None for what is not asked) from one
    ``listxattr``: a POSIX ACL is stored, and listed, as a ``system.posix_acl_*`` attribute,
    so an entry whose list has none has the trivial ACL and needs no ACL call at all."""
    if not (eas or acls):
        return None, None
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as error:
        if error.errno not in UNSUPPORTED and error.errno != errno.EPERM:
            raise
        names = []
    found_eas = read_eas(path, names) if eas and names else (() if eas else None)
    acl: tuple[ACLEntry, ...] | None = None
    if acls:
        acl = read_acl(path, is_dir) if any(n in ACL_NAMES for n in names) else ()
    return found_eas, acl


def acl_text(entries: list[ACLEntry]) -> str:
    """``entries`` as the text pylibacl's ``ACL(text=...)`` takes."""
    return "".join(f"{e.tag}:{e.qualifier}:{e.perms}\n" for e in entries)
