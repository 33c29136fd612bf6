"""The writer lock that keeps two writers (ours or rdiff-backup's) out of one repository.

Three guards, all inside ``rdiff-backup-data`` (§5.5):

1. ``lock.yml`` held with ``flock(LOCK_EX|LOCK_NB)``, exactly as rdiff-backup 2.2 does under
   API 201, with the same YAML content while held and truncated (kept) on release. The kernel
   drops it when the holder dies, so it is never stale.
2. ``rdb-writer.lock``: created atomically with host, PID, command, start time and a random
   token. It protects where flock does not reach (other hosts on file systems without working
   lock propagation). rdiff-backup ignores the name. A leftover from a dead process on *this*
   host is broken while holding (1), so two breakers cannot both win; one from another host is
   never broken automatically.
3. rdiff-backup API 200 takes no lock; its only trace is a second ``current_mirror`` marker
   whose PID is its own. If two markers exist and the newer one's PID is alive on this host,
   a backup may still be running, so we refuse (unless ``force``), as rdiff-backup does.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from rdb_format.atomic import create_exclusive, fsync_dir, is_temp_name, remove_durable
from rdb_format.errors import RepositoryLocked, RepositoryNotFound
from rdb_format.increments import parse_increment_name
from rdb_format.layout import CURRENT_MIRROR, Layout
from rdb_format.quoting import read_quoting
from rdb_format.repository import pid_alive, read_marker_pid
from rdb_format.timestamps import format_timestring

_FLOCK_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS}
_LINE = re.compile(r"^\s*([A-Za-z_]+):\s*'?(.*?)'?\s*$")
_MAX_LOCK_SIZE = 4096


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or held) a lock, as recorded in the lock file."""

    host: str
    pid: int
    command: str = ""
    started: str = ""
    token: str = ""

    def describe(self) -> str:
        command = f"{self.command} " if self.command else ""
        return f"{command}pid {self.pid} on host {self.host}"


def _parse_fields(content: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in content.decode("utf-8", "replace").splitlines():
        match = _LINE.match(line)
        if match:
            fields[match.group(1)] = match.group(2)
    return fields


def parse_owner(content: bytes) -> LockOwner | None:
    """The owner in our lock file or rdiff-backup's lock.yml; None if empty or garbled."""
    fields = _parse_fields(content)
    host = fields.get("host") or fields.get("hostname")
    pid = fields.get("pid", "")
    if not host or not pid.isdigit():
        return None
    return LockOwner(
        host=host,
        pid=int(pid),
        command=fields.get("command") or fields.get("cmd", ""),
        started=fields.get("started") or fields.get("timestamp", ""),
        token=fields.get("token", ""),
    )


def read_owner(path: Path) -> LockOwner | None:
    """The owner recorded in a lock file, None if it is missing, empty or garbled."""
    try:
        with open(path, "rb") as stream:
            return parse_owner(stream.read(_MAX_LOCK_SIZE))
    except FileNotFoundError:
        return None


def _this_host() -> str:
    import socket  # here: ~10 ms of start-up that only a writer needs

    return socket.gethostname()


class WriterLock:
    """Exclusive writer lock on a repository; use as a context manager.

    ``with WriterLock(layout, command="rdb-backup"):`` raises RepositoryLocked naming the
    holder's host and PID if another writer is active. ``force`` skips only the check of
    rdiff-backup's marker PIDs (guard 3), never the lock files.
    """

    def __init__(self, layout: Layout, *, command: str = "rdb", force: bool = False) -> None:
        self.layout = layout
        self.command = command
        self.force = force
        self._yml_fd: int | None = None
        self._owner: LockOwner | None = None

    @property
    def owner(self) -> LockOwner | None:
        """Our own record while held, else None."""
        return self._owner

    @property
    def held(self) -> bool:
        return self._owner is not None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    # ---- acquiring ----------------------------------------------------------------------

    def acquire(self) -> None:
        if self._owner is not None:
            raise RuntimeError("WriterLock is not re-entrant")
        if not self.layout.data_dir.is_dir():
            raise RepositoryNotFound(
                "has no rdiff-backup-data directory; give the backup destination",
                path=self.layout.root,
            )
        import secrets  # here: its import (hmac, hashlib) is start-up cost for readers

        owner = LockOwner(
            host=_this_host(),
            pid=os.getpid(),
            command=self.command,
            started=format_timestring(int(time.time()), utc_offset=0),
            token=secrets.token_hex(16),
        )
        self._lock_yml()
        try:
            self._create_writer_lock(owner)
            self._owner = owner
            if not self.force:
                self._check_markers()
            self._write_yml(owner)
        except BaseException:
            self.release()
            raise

    def _lock_yml(self) -> None:
        path = self.layout.rdiff_backup_lock
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_owner(path) or read_owner(self.layout.writer_lock)
            who = holder.describe() if holder else "another process"
            raise RepositoryLocked(
                f"the repository is being written by {who}; wait for it to finish", path=path
            ) from None
        except OSError as error:
            if error.errno not in _FLOCK_UNSUPPORTED:
                os.close(fd)
                raise
            os.close(fd)  # no flock here: rely on the writer lock file alone
            return
        self._yml_fd = fd

    def _create_writer_lock(self, owner: LockOwner) -> None:
        path = self.layout.writer_lock
        content = (
            f"host: {owner.host}\npid: {owner.pid}\ncommand: {owner.command}\n"
            f"started: {owner.started}\ntoken: {owner.token}\n"
        ).encode()
        for _ in range(5):
            try:
                create_exclusive(path, content)
                return
            except FileExistsError:
                pass
            self._break_if_stale(path)
        raise RepositoryLocked("the lock keeps changing hands; try again", path=path)

    def _break_if_stale(self, path: Path) -> None:
        """Remove ``path`` if it is provably from a dead process on this host, else raise."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # released meanwhile: try again
        try:
            seen = os.fstat(fd)
            holder = parse_owner(os.read(fd, _MAX_LOCK_SIZE))
        finally:
            os.close(fd)
        if holder is None:
            raise RepositoryLocked(
                "lock file is unreadable; if no backup, regress or remove is running, delete it",
                path=path,
            )
        if holder.host != _this_host():
            raise RepositoryLocked(
                f"locked by {holder.describe()}; this host cannot tell whether it still runs. "
                f"If it does not, delete {os.fsdecode(path)!r}",
                path=path,
            )
        if pid_alive(holder.pid):
            raise RepositoryLocked(
                f"locked by {holder.describe()}, which is still running", path=path
            )
        # Stale. Move it aside under a unique name and check that what we moved is what we
        # judged: another breaker may have replaced it in between.
        import secrets

        aside = path.with_name(f"{path.name}.stale.{secrets.token_hex(8)}")
        try:
            path.rename(aside)
        except FileNotFoundError:
            return
        moved = aside.stat()
        if (moved.st_ino, moved.st_dev) != (seen.st_ino, seen.st_dev):
            # Not the stale file: somebody's fresh lock. Put it back unless a newer one exists.
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            aside.unlink()
            current = read_owner(path)
            who = current.describe() if current else "another process"
            raise RepositoryLocked(f"locked by {who}", path=path)
        aside.unlink()
        fsync_dir(path.parent)

    def _check_markers(self) -> None:
        """Refuse while an rdiff-backup session (API 200, no lock file) may be running."""
        data_dir = self.layout.data_dir
        quoting = read_quoting(data_dir)
        markers: list[tuple[int, Path]] = []
        for raw in os.listdir(os.fsencode(data_dir)):
            if is_temp_name(raw):
                continue
            parsed = parse_increment_name(quoting.unquote(raw, path=data_dir))
            if parsed and parsed.base == CURRENT_MIRROR.encode() and parsed.kind == "data":
                markers.append((parsed.time, data_dir / os.fsdecode(raw)))
        if len(markers) < 2:
            return
        newest = max(markers)[1]
        try:
            pid = read_marker_pid(newest)
        except Exception:  # garbled marker: not our concern here, the state check reports it
            return
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            raise RepositoryLocked(
                f"a backup session (pid {pid}, from this marker) may still be running; "
                "if that process is not rdiff-backup or rdb, retry with --force",
                path=newest,
            )

    def _write_yml(self, owner: LockOwner) -> None:
        if self._yml_fd is None:
            return
        text = (
            f"cmd: {owner.command}\nhostname: {owner.host}\npid: {owner.pid}\n"
            f"timestamp: '{owner.started}'\n"
        ).encode()
        os.ftruncate(self._yml_fd, 0)
        os.pwrite(self._yml_fd, text, 0)

    # ---- releasing ----------------------------------------------------------------------

    def release(self) -> None:
        """Remove our lock file (only if still ours), truncate lock.yml and unlock it."""
        owner, self._owner = self._owner, None
        if owner is not None:
            current = read_owner(self.layout.writer_lock)
            if current is not None and current.token == owner.token:
                remove_durable(self.layout.writer_lock, missing_ok=True)
        fd, self._yml_fd = self._yml_fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
