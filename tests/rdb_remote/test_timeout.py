"""The inactivity timeout (--timeout): a peer that stays connected but says nothing ends the
run after that long, on either side; a peer that is busy (its main thread, or our own full
inbox) is never cut off: keep-alives flow while it works."""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.rdb_remote.echo_server import CODEC, Note
from tests.rdb_remote.test_transport import HELLO, note

from rdb_format.errors import ConnectionFailed
from rdb_remote import Connection, connect, loopback_pair
from rdb_remote.handshake import read_hello, write_hello

SERVER = Path(__file__).with_name("echo_server.py")


def _schema(*args: str) -> str:
    return shlex.join([sys.executable, str(SERVER)]) + " %s " + shlex.join(args)


def _receive_within(connection: Connection, seconds: float) -> object:
    """``connection.receive()``, failing the test (not hanging it) if it takes longer."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(_outcome(connection)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"receive() still blocked after {seconds} s"
    return result[0]


def _outcome(connection: Connection) -> object:
    try:
        return connection.receive()
    except ConnectionFailed as error:
        return error


def test_a_stalled_server_ends_the_client_after_the_timeout() -> None:
    process, connection, _ = connect("nas", _schema("--mode", "stall"), HELLO, CODEC, timeout=2)
    connection.send(note(1))
    started = time.monotonic()
    outcome = _receive_within(connection, 30)
    assert isinstance(outcome, ConnectionFailed), outcome
    assert str(outcome).startswith("nas: nothing received or sent for 2 s (--timeout 2)")
    assert "or give a longer --timeout" in str(outcome)
    assert 2 <= time.monotonic() - started < 10
    assert process.wait(10) is not None  # killed (a stopped process too)
    connection.close()


def test_a_busy_server_is_not_cut_off() -> None:
    """Its main thread works for 5 s before answering; both sides' timeouts are 2 s."""
    schema = _schema("--mode", "busy-echo", "--timeout", "2")
    process, connection, _ = connect("nas", schema, HELLO, CODEC, timeout=2)
    connection.send(note(1))
    assert _receive_within(connection, 30) == note(1)
    connection.send(note(2))
    assert _receive_within(connection, 30) == note(2)
    connection.close()
    assert process.close() == 0


def test_a_server_whose_client_stalls_ends() -> None:
    """The client shakes hands, then neither writes nor reads: the server ends by itself."""
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--timeout", "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    assert server.stdin is not None and server.stdout is not None
    write_hello(server.stdin, HELLO)  # type: ignore[arg-type]
    read_hello(server.stdout, peer="server", command="echo")  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        server.wait(30)
    finally:
        server.kill()
        server.stdin.close()
        server.stdout.close()
    assert 2 <= time.monotonic() - started < 15


@pytest.mark.parametrize("busy", ["nobody", "the receiver"])
def test_keepalives_keep_a_quiet_or_busy_link_alive(busy: str) -> None:
    """Nothing to say for 5 s, or a receiver that takes nothing for 5 s while 80 MiB wait
    (its inbox full): a 2-second timeout expires on neither side."""
    client, server = loopback_pair(CODEC, HELLO, timeout=2)
    big = [Note(n, bytes(1 << 20), "", None, False, ()) for n in range(80)]
    if busy == "the receiver":

        def send_all() -> None:
            for message in big:
                client.send(message)

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
    time.sleep(5)
    if busy == "the receiver":
        assert [_receive_within(server, 30) for _ in big] == big
        sender.join(30)
    client.send(note(1))
    assert _receive_within(server, 30) == note(1)
    server.send(note(2))
    assert _receive_within(client, 30) == note(2)
    assert client.failure is None and server.failure is None
    client.close()
    server.close()


@pytest.mark.parametrize("program", ["rdb-mirror", "rdb-restore"])
def test_a_server_whose_client_never_shakes_hands_ends(program: str) -> None:
    """Connected, and not a byte from the client: the server gives up after its --timeout
    (exit status 16) instead of waiting in the handshake forever."""
    command = str(Path(sys.executable).parent / program)
    server = subprocess.Popen(
        [command, "--server", "--timeout", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
    )  # fmt: skip
    started = time.monotonic()
    try:
        status = server.wait(30)
    finally:
        server.kill()
        for stream in (server.stdin, server.stdout, server.stderr):
            assert stream is not None
            stream.close()
    assert status == 16
    assert 2 <= time.monotonic() - started < 15
