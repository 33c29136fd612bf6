"""File-system metadata: stat → metadata record, extended attributes, ACLs, and applying them.

Shared by the source side (reading) and the repository side and regress (writing). ACLs use
pylibacl (``posix1e``) when it is installed; extended attributes use the ``os`` xattr calls.
What a file system supports is probed at run time (:func:`probe`). Reading EAs and ACLs is
:mod:`rdb_increment.fsextras` (rdb-restore's ``compare`` reads them the same way).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import threading
from dataclasses import dataclass
from typing import Any, cast

from rdb_format.eas_acls import ACLEntry
from rdb_format.metadata import Record, file_type_of, safe_name
from rdb_increment.fsextras import IS_ROOT as IS_ROOT
from rdb_increment.fsextras import UNSUPPORTED as _UNSUPPORTED
from rdb_increment.fsextras import EAs as EAs
from rdb_increment.fsextras import acl_text, posix1e
from rdb_increment.fsextras import read_acl as read_acl
from rdb_increment.fsextras import read_eas as read_eas
from rdb_increment.fsextras import read_eas_and_acl as read_eas_and_acl

Index = tuple[bytes, ...]


def render(index: Index) -> bytes:
    """The metadata path of an index: components joined by ``/``, ``.`` for the root."""
    return b"/".join(index) if index else b"."


file_type = file_type_of  # the format's mapping of st_mode to a record type


_UNKNOWN = object()
_S_IFMT = 0o170000
_S_IFREG = stat.S_IFREG


class Names:
    """uid → user name and gid → group name, cached; None when unknown or unreadable."""

    def __init__(self) -> None:
        self.users: dict[int, str | None] = {}  # read directly by record_from_stat
        self.groups: dict[int, str | None] = {}
        self._lock = threading.Lock()

    def user(self, uid: int) -> str | None:
        known = self.users.get(uid, _UNKNOWN)
        if known is not _UNKNOWN:
            return cast("str | None", known)
        with self._lock:
            if uid not in self.users:
                try:
                    self.users[uid] = safe_name(pwd.getpwuid(uid).pw_name)
                except KeyError:
                    self.users[uid] = None
            return self.users[uid]

    def group(self, gid: int) -> str | None:
        known = self.groups.get(gid, _UNKNOWN)
        if known is not _UNKNOWN:
            return cast("str | None", known)
        with self._lock:
            if gid not in self.groups:
                try:
                    self.groups[gid] = safe_name(grp.getgrgid(gid).gr_name)
                except KeyError:
                    self.groups[gid] = None
            return self.groups[gid]


def record_from_stat(
    index: Index, st: os.stat_result, names: Names, link_target: bytes | None = None
) -> Record | None:
    """The metadata record of an entry (no SHA1 yet); None for an unknown file type."""
    mode = st.st_mode
    # a regular file (most entries) known without file_type's tests
    kind = "reg" if mode & _S_IFMT == _S_IFREG else file_type(mode)
    if kind is None:
        return None
    uid, gid = st.st_uid, st.st_gid
    size = nlink = inode = device_loc = sym_data = device_num = mod_time = None
    if kind == "reg":
        size = st.st_size
        if st.st_nlink > 1:
            nlink, inode, device_loc = st.st_nlink, st.st_ino, st.st_dev
    elif kind == "sym":
        sym_data = link_target
    elif kind == "dev":
        device = "c" if stat.S_ISCHR(mode) else "b"
        device_num = (device, os.major(st.st_rdev), os.minor(st.st_rdev))
    if kind not in ("sym", "dev"):
        mod_time = st.st_mtime_ns // 1_000_000_000
    # fields in Record's order (no resource fork, carbon file, SHA1 or alternate names)
    users, groups = names.users, names.groups  # read here: a method call per entry costs
    uname = users[uid] if uid in users else names.user(uid)
    gname = groups[gid] if gid in groups else names.group(gid)
    perms = mode & 0o7777
    return _new_record(
        (
            render(index),
            kind,
            size,
            None,
            None,
            nlink,
            inode,
            device_loc,
            None,
            sym_data,
            device_num,
            mod_time,
            uid,
            uname,
            gid,
            gname,
            perms,
            None,
            None,
        )
    )


def _new_record(fields: tuple[Any, ...]) -> Record:
    """A Record from all its fields in order (tuple.__new__: no keyword handling)."""
    return tuple.__new__(Record, fields)


# ---------------------------------------------------------------------------------------------
# capabilities


@dataclass(frozen=True)
class Capabilities:
    """What a file system (and this process) supports."""

    eas: bool
    acls: bool
    ownership: bool = IS_ROOT
    devices: bool = IS_ROOT


def probe(directory: bytes | str) -> Capabilities:
    """Ask ``directory``'s file system whether it keeps extended attributes and ACLs."""
    path = os.fsencode(directory)
    eas = True
    try:
        os.listxattr(path)
    except OSError as error:
        if error.errno in _UNSUPPORTED:
            eas = False
    acls = posix1e is not None
    if acls:
        try:
            posix1e.ACL(file=path)
        except OSError:
            acls = False
        except Exception:
            acls = False
    return Capabilities(eas=eas, acls=acls)


# ---------------------------------------------------------------------------------------------
# extended attributes


def apply_eas(path: bytes, wanted: EAs) -> None:
    """Make ``path``'s extended attributes exactly ``wanted`` (symlinks: user EAs impossible)."""
    current = dict(read_eas(path))
    target = dict(wanted)
    for name in current:
        if name not in target:
            with contextlib.suppress(OSError):
                os.removexattr(path, name, follow_symlinks=False)
    for name, value in target.items():
        if current.get(name) != value:
            os.setxattr(path, name, value, follow_symlinks=False)


# ---------------------------------------------------------------------------------------------
# ACLs


def has_default_acl(directory: bytes) -> bool:
    """Whether files created in ``directory`` inherit an ACL (it has a default ACL)."""
    try:
        os.getxattr(directory, "system.posix_acl_default")
    except OSError:
        return False  # ENODATA (none), or no ACL support at all
    return True


def apply_acl(path: bytes | int, entries: tuple[ACLEntry, ...], mode: int, is_dir: bool) -> None:
    """Give ``path`` (or an open non-directory) the ACL ``entries`` (``()``: the trivial ACL
    of ``mode``)."""
    if posix1e is None:
        return
    access = [e for e in entries if not e.default]
    default = [e for e in entries if e.default]
    if access:
        posix1e.ACL(text=acl_text(access)).applyto(path)
    elif posix1e.has_extended(path):
        posix1e.ACL(mode=stat.S_IMODE(mode) & 0o777).applyto(path)
    if is_dir:
        if default:
            posix1e.ACL(text=acl_text(default)).applyto(path, posix1e.ACL_TYPE_DEFAULT)
        else:
            with contextlib.suppress(OSError):
                posix1e.delete_default(path)


# ---------------------------------------------------------------------------------------------
# owner, mode, times


def apply_attributes(
    path: bytes | int,
    record: Record,
    *,
    ownership: bool,
    mtime_ns: int | None = None,
    atime_ns: int | None = None,
    had: Record | None = None,
) -> bool:
    """Owner (when allowed), permissions and mtime of ``record`` on ``path`` (no symlink follow)
    or on an open file descriptor (no path lookups: a file just written).

    Symlinks only get their owner. The mtime is ``mtime_ns`` when given (full precision),
    else the record's whole seconds. ``had``: the record ``path`` already matches (a mirror
    copy as the previous session left it): an owner and permissions equal to its are not set
    again (a new owner is, and then the permissions too: ``chown`` clears set-ID bits).
    Returns whether the owner was set (``chown`` also drops a ``security.capability``).
    """
    owner_set = False
    if (
        ownership
        and record.uid is not None
        and record.gid is not None
        and (had is None or (record.uid, record.gid) != (had.uid, had.gid))
    ):
        owner_set = True
        with contextlib.suppress(OSError):
            if isinstance(path, int):
                os.fchown(path, record.uid, record.gid)
            else:
                os.lchown(path, record.uid, record.gid)
    if record.type == "sym":
        return owner_set
    if record.permissions is not None and (
        had is None or owner_set or record.permissions != had.permissions
    ):
        os.chmod(path, record.permissions)
    if record.mod_time is not None or mtime_ns is not None:
        mtime = mtime_ns if mtime_ns is not None else (record.mod_time or 0) * 1_000_000_000
        os.utime(path, ns=(atime_ns if atime_ns is not None else mtime, mtime))
    return owner_set
