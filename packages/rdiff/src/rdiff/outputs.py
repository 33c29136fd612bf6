"""rdiff's files: inputs opened for reading, outputs written atomically.

An output file is written under a temporary name in its own directory and renamed to its
name only when the whole job succeeded, so a failed or interrupted rdiff leaves neither a
partial nor an empty file behind (librsync's rdiff leaves both). Without ``--force`` an
existing output of any kind, ``/dev/null`` included, is refused before any work; with it, a
regular file is replaced atomically (keeping its permission bits) and anything else (a device,
a FIFO) is opened and written in place. ``-`` or an omitted operand is stdin or stdout.
"""

from __future__ import annotations

import os
import stat
import sys

from rdiff.errors import OutputExists, RdiffIOError

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings
if TYPE_CHECKING:
    from typing import BinaryIO

STDIO = "-"


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def open_input(name: str | None) -> tuple[BinaryIO, str]:
    """The file to read and its display name; ``-`` or None is stdin (binary)."""
    if name is None or name == STDIO:
        return sys.stdin.buffer, "stdin"
    try:
        return open(name, "rb"), name
    except OSError as error:
        raise RdiffIOError(f'Error opening "{name}" for read: {_reason(error)}') from error


def make_temp(final: str) -> tuple[int, str]:
    """Create ``.<name>.<random>.tmp`` beside ``final`` (mode 0600, O_EXCL), as mkstemp does.

    tempfile itself is not used: importing it costs more than rdiff's whole start-up budget.
    """
    directory, base = os.path.split(final)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temp = os.path.join(directory, f".{base}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(temp, flags, 0o600), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {final}")


class Output:
    """One output: stdout, a file written in place, or a temporary file renamed at commit.

    ``file`` is the binary file object to write. Call :meth:`commit` after the job succeeded
    and :meth:`discard` otherwise (both are idempotent; ``discard`` after ``commit`` is a no-op).
    """

    def __init__(self, name: str | None, *, force: bool) -> None:
        self.name = name if name is not None and name != STDIO else None
        self.display = self.name or "stdout"
        self._temp: str | None = None
        self._final: str | None = None
        self._owned = False
        self._force = force
        self.done = False
        if self.name is None:
            self.file: BinaryIO = sys.stdout.buffer
            return
        name = self.name
        try:
            st: os.stat_result | None = os.stat(name)
        except FileNotFoundError:
            st = None
            if os.path.islink(name):  # a dangling symlink exists too
                if not force:
                    raise OutputExists(f'File exists "{name}", aborting!') from None
                name = os.path.realpath(name)
        except OSError as error:
            raise RdiffIOError(f'Error opening "{name}" for write: {_reason(error)}') from error
        if st is not None and not force:
            raise OutputExists(f'File exists "{name}", aborting!')
        if st is not None and not stat.S_ISREG(st.st_mode):
            # A device or a FIFO: write it in place, never rename over it.
            try:
                self.file = open(name, "wb")  # noqa: SIM115 - closed by commit/discard
            except OSError as error:
                raise RdiffIOError(f'Error opening "{name}" for write: {_reason(error)}') from error
            self._owned = True
            return
        if st is not None:
            final = os.path.realpath(name)  # write through a symlink, as rdiff -f does
            mode = stat.S_IMODE(st.st_mode)
        else:
            final = name
            umask = os.umask(0o022)
            os.umask(umask)
            mode = 0o666 & ~umask
        try:
            fd, temp = make_temp(final)
        except OSError as error:
            message = f'Error opening "{self.name}" for write: {_reason(error)}'
            raise RdiffIOError(message) from error
        self._temp = temp
        self._final = final
        try:
            os.fchmod(fd, mode)
        except OSError:
            pass
        self.file = os.fdopen(fd, "wb")
        self._owned = True

    def flush(self) -> None:
        try:
            self.file.flush()
        except OSError as error:
            raise RdiffIOError(f"Error writing {self.display}: {_reason(error)}") from error

    def commit(self) -> None:
        """Flush and close; move a temporary file to the output's name."""
        if self.done:
            return
        self.flush()
        if self._owned:
            try:
                self.file.close()
            except OSError as error:
                raise RdiffIOError(f"Error writing {self.display}: {_reason(error)}") from error
        if self._temp is not None and self._final is not None:
            self._publish(self._temp, self._final)
            self._temp = None
        self.done = True

    def _publish(self, temp: str, final: str) -> None:
        if self._force:
            try:
                os.replace(temp, final)
            except OSError as error:
                raise RdiffIOError(f'Error renaming to "{final}": {_reason(error)}') from error
            return
        # Without --force, never clobber a file that appeared while we worked.
        try:
            os.link(temp, final)
        except FileExistsError:
            raise OutputExists(f'File exists "{final}", aborting!') from None
        except OSError:
            if os.path.lexists(final):
                raise OutputExists(f'File exists "{final}", aborting!') from None
            try:
                os.rename(temp, final)
            except OSError as error:
                raise RdiffIOError(f'Error renaming to "{final}": {_reason(error)}') from error
            return
        os.unlink(temp)

    def abandon(self) -> None:
        """Only remove the temporary file (from a signal handler, just before _exit)."""
        temp = self._temp
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass

    def discard(self) -> None:
        """Close without publishing: remove the temporary file. Never raises."""
        if self.done:
            return
        self.done = True
        if self._owned:
            try:
                self.file.close()
            except (OSError, ValueError):
                pass
        if self._temp is not None:
            try:
                os.unlink(self._temp)
            except OSError:
                pass
            self._temp = None
