"""Writing into TARGET without ever leaving it.

Every operation is relative to an open directory descriptor (``*at`` system calls); directories
are opened with ``O_NOFOLLOW``; new entries are made under a temporary name, given their
attributes, then renamed over the final name (a rename replaces a symlink, it never follows
it). Attributes: owner (by name unless numeric ids are asked for; only as root), permissions,
ACL, extended attributes, then mtime last.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import itertools
import os
import pwd
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from rdb_format.eas_acls import ACLEntry
from rdb_format.errors import SourceError, UsageError
from rdb_format.metadata import Record
from rdb_restore.repo import DIR_FLAGS, EAs, Entry
from rdb_restore.staging import Staging, remove_leftovers, stage

IS_ROOT = os.geteuid() == 0
TEMP_PREFIX = b".rdb-restore.tmp."
_counter = itertools.count()
_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


def temp_name() -> bytes:
    """A fresh temporary name: the prefix, this process's id and a counter."""
    return TEMP_PREFIX + b"%d.%d" % (_pid, next(_counter))


class Owners:
    """Maps a record's owner to local ids: by name first (unless ``numeric``), else the id.

    Name lookups are cached; the caches are shared by the worker threads without a lock (a
    race only repeats a lookup)."""

    def __init__(self, *, numeric: bool) -> None:
        self.numeric = numeric
        self._users: dict[str, int | None] = {}
        self._groups: dict[str, int | None] = {}

    def ids(self, record: Record) -> tuple[int, int]:
        uid, gid = record.uid or 0, record.gid or 0
        if self.numeric:
            return uid, gid
        if record.uname is not None:
            found = _cached_id(self._users, record.uname, _uid_of)
            uid = uid if found is None else found
        if record.gname is not None:
            found = _cached_id(self._groups, record.gname, _gid_of)
            gid = gid if found is None else found
        return uid, gid


def _uid_of(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def _gid_of(name: str) -> int:
    return grp.getgrnam(name).gr_gid


def _cached_id(cache: dict[str, int | None], name: str, lookup: Callable[[str], int]) -> int | None:
    """The local id of user or group ``name`` (None: unknown here), looked up once."""
    found = cache.get(name, -1)
    if found == -1:
        try:
            found = lookup(name)
        except KeyError:
            found = None
        cache[name] = found
    return found


Warn = Callable[[str], None]


def apply_acl(
    fd: int | str, acl: tuple[ACLEntry, ...], is_dir: bool, label: str, warn: Warn
) -> None:
    """Give the open file or directory ``fd`` the recorded non-trivial ACL."""
    if not acl:
        return
    # here, not at the top: pylibacl and rdb_increment are only needed for a recorded ACL
    from rdb_increment.fsextras import acl_text, posix1e

    if posix1e is None:
        warn(f"{label}: ACL not restored (pylibacl is not installed)")
        return
    access = [e for e in acl if not e.default]
    default = [e for e in acl if e.default]
    try:
        if access:
            posix1e.ACL(text=acl_text(access)).applyto(fd)
        if is_dir and default:
            where = f"/proc/self/fd/{fd}" if isinstance(fd, int) else fd
            posix1e.ACL(text=acl_text(default)).applyto(where, posix1e.ACL_TYPE_DEFAULT)
    except (OSError, ValueError, TypeError) as error:
        warn(f"{label}: ACL not restored ({error})")


def apply_eas(fd: int | str, eas: EAs, label: str, warn: Warn) -> None:
    for name, value in eas:
        try:
            if isinstance(fd, int):
                os.setxattr(fd, os.fsdecode(name), value)
            else:
                os.setxattr(fd, os.fsdecode(name), value, follow_symlinks=False)
        except OSError as error:
            warn(
                f"{label}: extended attribute {os.fsdecode(name)!r} not restored ({error.strerror})"
            )


def apply_fd(
    fd: int,
    record: Record,
    eas: EAs,
    acl: tuple[ACLEntry, ...],
    owners: Owners,
    label: Callable[[], str],
    warn: Warn,
    owned_by: tuple[int, int] | None = None,
    mode_set: bool = False,
) -> None:
    """Owner, permissions, ACL, EAs and mtime of a regular file or directory open at ``fd``
    (``label()`` names it in warnings; only called when there is something to warn about).
    ``owned_by``: the uid and gid the file already has, if known (the chown is then skipped
    when they are the recorded ones); ``mode_set``: it was created with its recorded mode."""
    if IS_ROOT:
        ids = owners.ids(record)
        if ids != owned_by:
            os.chown(fd, *ids)
    if record.permissions is not None and not mode_set:
        os.chmod(fd, record.permissions)
    if acl:
        apply_acl(fd, acl, record.type == "dir", label(), warn)
    if eas:
        apply_eas(fd, eas, label(), warn)
    if record.mod_time is not None:
        ns = record.mod_time * 1_000_000_000
        os.utime(fd, ns=(ns, ns))


def current_umask() -> int:
    """The process's umask, read without changing it (Linux: /proc; else set and reset)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def creation_mode(permissions: int | None, umask: int | None) -> int | None:
    """The mode to create a regular file with so that it needs no ``fchmod`` afterwards:
    its recorded permissions when the umask keeps them all and there is no set-user-ID,
    set-group-ID or sticky bit (a chown would clear those). None: create it ``0600`` and
    set the mode on the descriptor; always so in a directory with a default ACL (``umask``
    None, see :func:`umask_applies`)."""
    if umask is None or permissions is None or permissions & ~0o777 or permissions & umask:
        return None
    return permissions


def umask_applies(dir_fd: int) -> bool:
    """Whether a file created in the directory ``dir_fd`` gets its mode through the umask:
    not where the directory has a default ACL, whose permissions the file gets instead."""
    try:
        os.getxattr(dir_fd, "system.posix_acl_default")
    except OSError as error:
        # none, or no ACLs here; any other error: unknown, so the mode is set on the
        # descriptor (always right, one system call more)
        return error.errno == errno.ENODATA or error.errno in _UNSUPPORTED
    return False


def new_file_owner(dir_fd: int) -> tuple[int, int]:
    """The uid and gid a file we create in the directory ``dir_fd`` gets: ours, or the
    directory's group when it is set-group-ID."""
    st = os.fstat(dir_fd)
    gid = st.st_gid if st.st_mode & stat.S_ISGID else os.getegid()
    return os.geteuid(), gid


def apply_at(dir_fd: int, name: bytes, record: Record, owners: Owners) -> None:
    """Owner, permissions and mtime of a special file or symlink just made at ``name``."""
    if IS_ROOT:
        uid, gid = owners.ids(record)
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    if record.type == "sym":
        return
    if record.permissions is not None:
        # our own fresh node (never a symlink), so following is harmless here
        os.chmod(name, record.permissions, dir_fd=dir_fd)
    if record.mod_time is not None:
        ns = record.mod_time * 1_000_000_000
        os.utime(name, ns=(ns, ns), dir_fd=dir_fd, follow_symlinks=False)


def apply_special_extras(dir_fd: int, name: bytes, entry: Entry, label: str, warn: Warn) -> None:
    """ACL and EAs of a FIFO, socket or device node we just made (never a symlink)."""
    path = f"/proc/self/fd/{dir_fd}/{os.fsdecode(name)}"
    apply_acl(path, entry.acl, False, label, warn)
    apply_eas(path, entry.eas, label, warn)


def remove_entry(dir_fd: int, name: bytes) -> None:
    """Remove ``name`` in ``dir_fd`` whatever it is (a directory tree too), no symlink followed."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(os.fsdecode(name), dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def place(dir_fd: int, temp: bytes, name: bytes, *, force: bool) -> None:
    """Rename ``temp`` over ``name``; an existing directory there is removed first (--force)."""
    try:
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as error:
        if not force or error.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
            raise
        remove_entry(dir_fd, name)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def make_dir(dir_fd: int, name: bytes, *, force: bool) -> tuple[int, bool]:
    """Create (or with ``force`` reuse) directory ``name``; its fd and whether it existed."""
    existed = False
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        if not force:
            raise
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            existed = True
        else:
            os.unlink(name, dir_fd=dir_fd)  # a file or a symlink: replaced, never followed
            os.mkdir(name, 0o700, dir_fd=dir_fd)
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd), existed


def make_special(dir_fd: int, name: bytes, record: Record, warn: Warn, label: str) -> None:
    """Create a symlink, FIFO, socket or device node at ``name``."""
    perms = (record.permissions or 0) & 0o7777
    if record.type == "sym":
        assert record.sym_data is not None
        os.symlink(record.sym_data, name, dir_fd=dir_fd)
    elif record.type == "fifo":
        os.mkfifo(name, 0o600, dir_fd=dir_fd)
    elif record.type == "sock":
        os.mknod(name, stat.S_IFSOCK | 0o600, dir_fd=dir_fd)
    elif record.type == "dev":
        assert record.device_num is not None
        kind, major, minor = record.device_num
        mode = (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | 0o600
        try:
            os.mknod(name, mode, os.makedev(major, minor), dir_fd=dir_fd)
        except PermissionError:
            warn(f"{label}: cannot create a device node here (not root); an empty file stands in")
            fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd
            )
            os.close(fd)
    else:  # pragma: no cover - types are checked by the caller
        raise ValueError(record.type)
    del perms


@dataclass
class TargetDir:
    """TARGET opened for a tree restore: ``fd`` is where the tree is written (the staging
    directory when ``staging`` is set), ``existed`` whether it had content (--force)."""

    fd: int
    existed: bool
    staging: Staging | None = None
    #: earlier restores' staging directories found: None (removed) or why they are left
    leftovers: list[tuple[bytes, str | None]] = field(default_factory=list)


#: a staging directory cannot be made next to TARGET (its parent is not ours to write in)
_NO_STAGING = {errno.EACCES, errno.EPERM, errno.EROFS}


def _open_parent(parent: str) -> int:
    """TARGET's parent directory; opened ``O_PATH`` when we may search and write it but not
    list it (mode ``0311``): leftovers cannot be seen then, staging still works."""
    try:
        return os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError:
        return os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _staged(target: str, *, exists: bool) -> TargetDir | None:
    """A staging directory next to the new or empty TARGET (see :mod:`rdb_restore.staging`).
    None: TARGET ``exists`` (empty) but its parent is not writable, so it is filled in place."""
    parent = os.path.dirname(os.path.abspath(target))
    try:
        parent_fd = _open_parent(parent)
    except FileNotFoundError:
        raise SourceError("its parent directory does not exist", path=target) from None
    except OSError as error:
        raise SourceError(
            f"cannot open its parent directory: {error.strerror}", path=target
        ) from None
    try:
        final = os.fsencode(os.path.basename(os.path.abspath(target)))
        leftovers = remove_leftovers(parent_fd, final)
        staging = stage(target, parent_fd)
    except OSError as error:
        os.close(parent_fd)
        if exists and error.errno in _NO_STAGING:
            return None
        raise SourceError(
            f"cannot create it in its parent directory: {error.strerror}", path=target
        ) from None
    except BaseException:
        os.close(parent_fd)
        raise
    return TargetDir(staging.fd, False, staging, leftovers)


def refuse_empty(target: str) -> None:
    """An empty TARGET (an unset shell variable) would name the current directory through
    ``abspath``: with --force a single file used to replace it, contents and all."""
    if not target:
        raise UsageError("TARGET is an empty string; give a path, or '-' for stdout")


def refuse_repository(target: str, repo_root: str) -> None:
    """TARGET must not be in the repository restored from (writing there damages its mirror
    and history), nor contain it (--force removes what is not in the backup, or replaces
    TARGET: the repository would go with it)."""
    real_target = os.path.realpath(target)
    real_repo = os.path.realpath(repo_root)
    common = os.path.commonpath([real_target, real_repo])
    if common == real_repo:
        raise SourceError(
            f"is inside the repository restored from ({real_repo}); restore somewhere else",
            path=target,
        )
    if common == real_target:
        raise SourceError(
            f"contains the repository restored from ({real_repo}); restore somewhere else",
            path=target,
        )


def _mount_id(path: str) -> int | None:
    """The id of the mount ``path`` is on (Linux: /proc/self/fdinfo), None if unknown."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as info:
            for line in info:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    finally:
        os.close(fd)
    return None


def _replaceable(target: str, st: os.stat_result) -> bool:
    """Whether the existing directory TARGET can be replaced by a rename: empty, not a mount
    point (another device, or a bind mount of the same one: another mount id), not the
    current directory."""
    parent_path = os.path.dirname(os.path.abspath(target))
    try:
        parent = os.stat(parent_path)
        here = os.stat(".")
        empty = not os.listdir(target)
    except OSError:
        return False
    same = (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)
    if not empty or parent.st_dev != st.st_dev or same:
        return False
    return _mount_id(target) == _mount_id(parent_path)


def prepare_target_dir(target: str, *, force: bool) -> TargetDir:
    """Open the directory TARGET for a tree restore; refuse a non-empty one unless ``force``.
    A TARGET that does not exist, or is an empty directory (not a symlink), is staged."""
    refuse_empty(target)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        staged = _staged(target, exists=False)
        assert staged is not None
        return staged
    if stat.S_ISDIR(st.st_mode) and _replaceable(target, st):
        staged = _staged(target, exists=True)
        if staged is not None:
            return staged
    if stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(OSError):
            st = os.stat(target)
    if not stat.S_ISDIR(st.st_mode):
        if not force:
            raise SourceError(
                "exists and is not a directory; remove it, or give --force to replace it",
                path=target,
            )
        os.unlink(target)
        os.mkdir(target, 0o700)
        return TargetDir(os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), False)
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if os.listdir(fd):
        if not force:
            os.close(fd)
            raise SourceError(
                "is not empty; restore into a new or empty directory, or give --force to "
                "overwrite it (entries not in the backup are then removed)",
                path=target,
            )
        return TargetDir(fd, True)
    return TargetDir(fd, False)


def prepare_target_file(target: str, *, force: bool) -> tuple[int, bytes]:
    """The parent directory fd and the name of a single restored file TARGET."""
    refuse_empty(target)
    absolute = os.path.abspath(target)
    parent, name = os.path.split(absolute)
    if not name:
        raise SourceError("is not a file name", path=target)
    if os.path.lexists(absolute) and not force:
        raise SourceError("exists; remove it, or give --force to replace it", path=target)
    try:
        fd = os.open(parent or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise SourceError(f"cannot open its directory: {error.strerror}", path=target) from None
    return fd, os.fsencode(name)
