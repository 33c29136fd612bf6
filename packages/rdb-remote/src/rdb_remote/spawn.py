"""Remote locations, the remote schema, and the process that carries the connection.

``[user@]host::/path`` names a path on another host (as rdiff-backup writes it). The local
command starts the remote schema's command (default ``ssh -C %s rdb-mirror --server``, ``%s``
replaced by ``[user@]host``) with its stdin/stdout as the connection and its stderr passed
through to ours, shakes hands, and at the end reaps it. A command that cannot start, a remote
program that is missing (exit status 127), or one that dies mid-session becomes one line
naming the host and what to do.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from rdb_format.errors import ConnectionFailed, RdbError, UsageError
from rdb_remote.connection import DEFAULT_TIMEOUT, Connection
from rdb_remote.handshake import Hello, negotiate, read_hello, write_hello
from rdb_remote.wire import Codec

__all__ = [
    "RemoteLocation",
    "RemoteProcess",
    "connect",
    "default_schema",
    "parse_location",
    "schema_command",
    "serve_stdio",
    "server_command",
    "server_timeout",
]


@dataclass(frozen=True)
class RemoteLocation:
    """``host`` (``[user@]host`` as given) and the ``path`` there."""

    host: str
    path: str

    def __str__(self) -> str:
        return f"{self.host}::{self.path}"


def parse_location(argument: str) -> RemoteLocation | None:
    """``[user@]host::path`` → RemoteLocation; None for a local path.

    A path whose part before ``::`` holds a ``/`` (``./a::b``, ``/x/a::b``) is local: that is
    how to name a local file with ``::`` in it.
    """
    host, sep, path = argument.partition("::")
    if not sep or "/" in host:
        return None
    if not host or host.startswith("-") or host.endswith("@"):
        raise UsageError(f"{argument!r}: give a host before '::' ([user@]host::/path)")
    if not path:
        raise UsageError(f"{argument!r}: give a path after '::' ([user@]host::/path)")
    return RemoteLocation(host, path)


def default_schema(program: str) -> str:
    return f"ssh -C %s {program} --server"


def schema_command(schema: str, host: str) -> list[str]:
    """The argv of ``schema`` for ``host``: ``%s`` is the host (quoted), ``%%`` a ``%``."""
    pieces = schema.split("%%")
    text = "%".join(piece.replace("%s", shlex.quote(host)) for piece in pieces)
    try:
        argv = shlex.split(text)
    except ValueError as error:
        raise UsageError(f"--remote-schema {schema!r}: {error}") from None
    if not argv:
        raise UsageError("--remote-schema is empty; give e.g. 'ssh -C %s rdb-mirror --server'")
    return argv


def server_command(schema: str, host: str, timeout: float | None) -> list[str]:
    """The argv that starts the server for ``host``: the schema's, and when it ends with
    ``--server`` (the default schema does), the client's inactivity timeout after it
    (``--timeout SECONDS``, 0 for none), so both ends give up after the same time. Not the
    default, which the server has too: the command stays one that a server of protocol 1
    (no ``--timeout``) starts with, to be told in the handshake to upgrade. A schema that
    ends otherwise (its own ``--timeout``, a wrapper) is run as given."""
    argv = schema_command(schema, host)
    if argv[-1] != "--server" or timeout == DEFAULT_TIMEOUT:
        return argv
    return [*argv, "--timeout", f"{timeout or 0:g}"]


class RemoteProcess:
    """The running remote command: its pipes and its exit status."""

    def __init__(self, argv: list[str], host: str) -> None:
        self.argv = argv
        self.host = host
        try:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
            )
        except FileNotFoundError:
            raise ConnectionFailed(
                f"cannot run {argv[0]!r}: not found; install it (openssh-client for ssh) "
                "or fix --remote-schema",
                path=host,
            ) from None
        except OSError as error:
            raise ConnectionFailed(
                f"cannot run {argv[0]!r}: {error.strerror or error}", path=host
            ) from None

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def stdin(self) -> io.RawIOBase:
        return cast(io.RawIOBase, self._process.stdin)

    @property
    def stdout(self) -> io.RawIOBase:
        return cast(io.RawIOBase, self._process.stdout)

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status (negative: killed by that signal), or None if still running."""
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def describe_exit(self, timeout: float = 5.0) -> str:
        """How the process ended, for a message (waits up to ``timeout`` for it)."""
        status = self.wait(timeout)
        name = os.path.basename(self.argv[0])
        if status is None:
            return f"{name} is still running"
        if status < 0:
            with contextlib.suppress(ValueError):
                return f"{name} was killed by {signal.Signals(-status).name}"
            return f"{name} was killed by signal {-status}"
        if status == 127:
            return f"{name} exited with status 127: the remote command was not found"
        return f"{name} exited with status {status}"

    def close(self, timeout: float = 30.0) -> int | None:
        """End the session: close its stdin, reap it (killed if it hangs), close the pipes."""
        with contextlib.suppress(OSError, ValueError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        status = self.wait(timeout)
        if status is None:
            self.kill()
            status = self.wait(5.0)
        with contextlib.suppress(OSError, ValueError):
            if self._process.stdout is not None:
                self._process.stdout.close()
        return status

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self._process.kill()


def connect(
    location_host: str,
    schema: str,
    hello: Hello,
    codec: Codec,
    *,
    peer: str | None = None,
    timeout: float | None = None,
) -> tuple[RemoteProcess, Connection, int]:
    """Start the remote command, shake hands: (process, started connection, protocol).

    ``peer`` names the other end in messages (default: the host); ``timeout`` is the
    inactivity timeout (the handshake included): when it expires, the process is killed.
    The server gets it too (server_command).
    Raises ConnectionFailed (cannot start, no answer, missing command, timeout) or
    ProtocolError (not us, wrong version), after reaping the process.
    """
    argv = schema_command(schema, location_host)
    name = peer or location_host
    process = RemoteProcess(server_command(schema, location_host, timeout), location_host)
    command = " ".join(argv[-2:]) if len(argv) >= 2 else argv[0]
    connection = Connection(
        process.stdout,
        process.stdin,
        codec,
        peer=name,
        describe_loss=process.describe_exit,
        timeout=timeout,
        on_stall=process.kill,
    )
    fired = threading.Event()  # the handshake took longer than the timeout

    def give_up() -> None:
        fired.set()
        process.kill()

    silent = threading.Timer(timeout, give_up) if timeout else None
    try:
        if silent is not None:
            silent.start()
        try:
            write_hello(connection.raw_writer, hello)
        except (BrokenPipeError, OSError):
            pass  # it died at once: reading its (missing) hello says why
        theirs = read_hello(connection.raw_reader, peer=name, command=command)
        version = negotiate(hello, theirs, peer=name, where=f"on {location_host}")
    except RdbError as error:
        if fired.is_set():
            process.close(timeout=10.0)
            raise connection.stalled() from None
        status = process.close(timeout=10.0)
        if status == 127:
            raise ConnectionFailed(
                f"{command!r} was not found there (exit status 127); install "
                f"{hello.program} {hello.version} on {location_host}, or give its full path "
                "with --remote-schema",
                path=name,
            ) from None
        if isinstance(error, ConnectionFailed):
            raise ConnectionFailed(
                f"{str(error).removeprefix(name + ': ')} ({process.describe_exit(0)})",
                path=name,
            ) from None
        raise
    finally:
        if silent is not None:
            silent.cancel()
    connection.start()
    return process, connection, version


def server_timeout(arguments: Sequence[str]) -> float | None:
    """The inactivity timeout of ``--server [--timeout SECONDS]`` (the arguments after
    ``--server``; a remote schema may add it): DEFAULT_TIMEOUT if not given, None for 0."""
    args = list(arguments)
    if len(args) == 1 and args[0].startswith("--timeout="):
        args = args[0].split("=", 1)
        args[0] = "--timeout"
    if not args:
        return DEFAULT_TIMEOUT
    if len(args) == 2 and args[0] == "--timeout":
        try:
            seconds = float(args[1])
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            return seconds or None
    raise UsageError(f"--server takes only --timeout SECONDS, not {' '.join(arguments)!r}")


def serve_stdio(
    hello: Hello, codec: Codec, *, peer: str = "client", timeout: float | None = None
) -> tuple[Connection, int]:
    """The server's end: the connection on our stdin/stdout, after the handshake, with the
    inactivity timeout ``timeout`` (the handshake included, when called from the main
    thread: a client that says nothing is a ConnectionFailed).

    File descriptor 1 is moved aside for the protocol and replaced by stderr, so that a stray
    print can never corrupt the stream.
    """
    sys.stdout.flush()
    out_fd = os.dup(1)
    os.dup2(2, 1)
    in_fd = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    inbound = io.FileIO(in_fd, "rb", closefd=True)
    outbound = io.FileIO(out_fd, "wb", closefd=True)
    connection = Connection(inbound, outbound, codec, peer=peer, timeout=timeout)
    with _alarm(timeout, connection):
        try:
            write_hello(connection.raw_writer, hello)
        except OSError:
            raise ConnectionFailed("the client went away during the handshake", path=peer) from None
        theirs = read_hello(connection.raw_reader, peer=peer, command="the client")
    version = negotiate(hello, theirs, peer=peer, where="on the client")
    connection.start()
    return connection, version


@contextlib.contextmanager
def _alarm(timeout: float | None, connection: Connection) -> Iterator[None]:
    """Raise ``connection.stalled()`` in the block after ``timeout`` seconds (SIGALRM: it
    interrupts a blocked read; main thread only, else no limit)."""
    if not timeout or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise connection.stalled()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
