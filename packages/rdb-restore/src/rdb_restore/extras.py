"""The extended attributes and POSIX ACL a local file has now, in the repository's terms (for
``compare``): what a backup of it would record in ``extended_attributes`` and
``access_control_lists``.

The same rules as the backup side: ``system.*`` attributes are not EAs (ACLs are kept apart),
and an unprivileged user only keeps ``user.*``; an ACL that only repeats the mode bits is no
ACL. A file system without EAs or ACLs, or no pylibacl, reads as having none.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from rdb_format.eas_acls import ACLEntry, is_trivial_acl, parse_acl_entry
from rdb_restore.repo import EAs

posix1e: Any  # pylibacl, optional: the restore side applies ACLs with it too
try:  # pragma: no cover - depends on the machine
    import posix1e as _posix1e

    posix1e = _posix1e
except ImportError:  # pragma: no cover
    posix1e = None

_ALL_NAMESPACES = os.geteuid() == 0
_NOT_THERE = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.ENODATA, errno.EPERM}


def local_eas(path: bytes) -> EAs:
    """``path``'s extended attributes (symlinks not followed), sorted by name."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as error:
        if error.errno in _NOT_THERE:
            return ()
        raise
    found: list[tuple[bytes, bytes]] = []
    for name in names:
        if name.startswith("system.") or not (_ALL_NAMESPACES or name.startswith("user.")):
            continue
        try:
            found.append((os.fsencode(name), os.getxattr(path, name, follow_symlinks=False)))
        except OSError as error:
            if error.errno not in _NOT_THERE:
                raise
    return tuple(sorted(found))


def local_acl(path: bytes, is_dir: bool) -> tuple[ACLEntry, ...]:
    """``path``'s non-trivial ACL: access entries, then (directories) default ones."""
    if posix1e is None:
        return ()
    try:
        if not posix1e.has_extended(path):
            return ()
        acls = [(posix1e.ACL(file=path), False)]
        if is_dir:
            acls.append((posix1e.ACL(filedef=path), True))
    except OSError as error:
        if error.errno in _NOT_THERE:
            return ()
        raise
    entries: list[ACLEntry] = []
    for acl, default in acls:
        for line in os.fsdecode(acl.to_any_text()).splitlines():
            text = line.partition("#")[0].strip()
            if text:
                entry = parse_acl_entry(text)
                entries.append(ACLEntry(entry.tag, entry.qualifier, entry.perms, default))
    return () if is_trivial_acl(entries) else tuple(entries)


def same_acl(a: tuple[ACLEntry, ...], b: tuple[ACLEntry, ...]) -> bool:
    """Whether two ACLs hold the same entries (their order in a file does not matter)."""
    return sorted(e.format() for e in a) == sorted(e.format() for e in b)
