"""A whole-tree restore into a new (or empty) TARGET is built in a staging directory.

The staging directory is made next to TARGET (same parent, so the same file system), under a
private name, mode ``0700``: nobody else can see into it, so its files are written under their
real names (no temporary name and rename per file). When every entry is in place and every
directory has its attributes, one ``renameat`` gives it TARGET's name (it replaces an empty
TARGET directory atomically). A failure removes it; a kill leaves it behind under a name that
says whose it was:

    .rdb-restore-partial.<pid>.<TARGET's name>

The next restore into the same TARGET removes such leftovers whose process is gone (a real
directory only: a symlink of that name is never followed, nor removed), and says so; one it
may not remove (another user's) stays, and that is said too.
An empty TARGET in a parent we may not write in is not staged (see :mod:`rdb_restore.target`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from dataclasses import dataclass

from rdb_format.errors import SourceError

STAGING_PREFIX = b".rdb-restore-partial."
# keeps prefix + pid + '.' + the name within NAME_MAX (255)
_NAME_KEEP = 200
DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def staging_name(final: bytes, pid: int) -> bytes:
    """The staging directory's name for TARGET name ``final`` and process ``pid``."""
    return STAGING_PREFIX + b"%d." % pid + final[:_NAME_KEEP]


def _owner_pid(name: bytes, final: bytes) -> int | None:
    """The pid in ``name`` if it is a staging name for ``final``, else None."""
    if not name.startswith(STAGING_PREFIX):
        return None
    pid, dot, rest = name[len(STAGING_PREFIX) :].partition(b".")
    if not dot or not pid.isdigit() or rest != final[:_NAME_KEEP]:
        return None
    return int(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@dataclass
class Staging:
    """A staging directory being filled: ``fd`` is open on it; ``parent_fd`` on TARGET's
    parent, where it is called ``name`` and is to be called ``final``."""

    parent_fd: int
    name: bytes
    final: bytes
    target: str
    fd: int = -1

    def commit(self) -> None:
        """Give the finished tree TARGET's name (replacing an empty TARGET directory)."""
        try:
            os.rename(self.name, self.final, src_dir_fd=self.parent_fd, dst_dir_fd=self.parent_fd)
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise SourceError(
                    "appeared (or was filled) while the restore ran; nothing was changed "
                    "there, and the restored tree was removed",
                    path=self.target,
                ) from None
            raise SourceError(
                f"cannot move the restored tree into place: {error.strerror}", path=self.target
            ) from None

    def discard(self) -> None:
        """Remove the staging directory and everything in it (no symlink followed)."""
        with contextlib.suppress(OSError):
            _remove_tree(self.parent_fd, self.name)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.parent_fd)


def _remove_tree(parent_fd: int, name: bytes) -> None:
    """Remove directory ``name`` of ``parent_fd`` with its contents; directories left
    read-only by a half-finished restore are made writable first (as their owner)."""
    try:
        shutil.rmtree(os.fsdecode(name), dir_fd=parent_fd)
    except OSError:
        _make_writable(parent_fd, name)
        shutil.rmtree(os.fsdecode(name), dir_fd=parent_fd)


def _make_writable(parent_fd: int, name: bytes) -> None:
    fd = os.open(name, DIR_OPEN, dir_fd=parent_fd)
    try:
        os.chmod(fd, 0o700)
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                _make_writable(fd, os.fsencode(entry.name))
    finally:
        os.close(fd)


def remove_leftovers(parent_fd: int, final: bytes) -> list[tuple[bytes, str | None]]:
    """Remove the staging directories of earlier restores into ``final`` whose process is
    gone: their names, each with None (removed) or why it could not be (another user's, in
    a shared directory: left as it is, it is not in our way)."""
    found: list[tuple[bytes, str | None]] = []
    try:
        names = os.listdir(parent_fd)
    except OSError:
        return found  # a parent we may not list (or opened O_PATH): none to be seen
    for raw in names:
        name = os.fsencode(raw)
        pid = _owner_pid(name, final)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue  # a symlink or a file of that name is not ours: left alone
        try:
            _remove_tree(parent_fd, name)
        except FileNotFoundError:
            continue
        except OSError as error:
            found.append((name, error.strerror or str(error)))
            continue
        found.append((name, None))
    return found


def stage(target: str, parent_fd: int) -> Staging:
    """Make and open the staging directory for ``target`` in its parent ``parent_fd``
    (whose ownership passes to the returned :class:`Staging`)."""
    final = os.fsencode(os.path.basename(os.path.abspath(target)))
    name = staging_name(final, os.getpid())
    staging = Staging(parent_fd, name, final, target)
    try:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    except FileExistsError:
        # a leftover of a run with the same pid (a container's pid 1, a reused pid)
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise SourceError(
                f"{os.fsdecode(name)!r} in its parent directory is in the way of the restore "
                "(not a directory); remove it",
                path=target,
            ) from None
        _remove_tree(parent_fd, name)
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    staging.fd = os.open(name, DIR_OPEN, dir_fd=parent_fd)
    return staging
