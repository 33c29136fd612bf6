"""Two connected :class:`Connection` s in one process, over OS pipes (tests, and the way to
run the remote code paths without a remote: the bytes cross real pipes, framed and encoded)."""

from __future__ import annotations

import io
import os
import threading

from rdb_remote.connection import Connection
from rdb_remote.handshake import Hello, negotiate, read_hello, write_hello
from rdb_remote.wire import Codec

__all__ = ["loopback_pair"]


def loopback_pair(
    codec: Codec, hello: Hello, *, timeout: float | None = None
) -> tuple[Connection, Connection]:
    """(client, server), handshaken and started; bytes counted on each as on a real link;
    ``timeout``: both sides' inactivity timeout."""
    a_read, b_write = os.pipe()
    b_read, a_write = os.pipe()
    client = Connection(
        io.FileIO(a_read, "rb"), io.FileIO(a_write, "wb"), codec, peer="loopback server",
        timeout=timeout,
    )  # fmt: skip
    server = Connection(
        io.FileIO(b_read, "rb"), io.FileIO(b_write, "wb"), codec, peer="loopback client",
        timeout=timeout,
    )  # fmt: skip
    # each side writes its hello before reading the other's; pipes hold far more than a hello
    for side in (client, server):
        write_hello(side.raw_writer, hello)
    results: list[BaseException] = []

    def shake(side: Connection, name: str) -> None:
        try:
            theirs = read_hello(side.raw_reader, peer=name, command=name)
            negotiate(hello, theirs, peer=name, where="here")
        except BaseException as error:
            results.append(error)

    thread = threading.Thread(target=shake, args=(server, "loopback client"))
    thread.start()
    shake(client, "loopback server")
    thread.join()
    if results:
        raise results[0]
    client.start()
    server.start()
    return client, server
