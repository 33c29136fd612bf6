"""The transport end to end: a server process through --remote-schema and through the real
test sshd; handshake errors, a killed connection and garbage are each one clear line."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.rdb_remote.echo_server import CODEC, Note
from tests.sshd import SshServer

from rdb_format.errors import ConnectionFailed, ProtocolError, UsageError
from rdb_format.exitcodes import ExitCode
from rdb_remote import (
    Connection,
    Hello,
    RemoteLocation,
    connect,
    default_schema,
    loopback_pair,
    parse_location,
    schema_command,
)
from rdb_remote.connection import QUEUE

SERVER = Path(__file__).with_name("echo_server.py")
HELLO = Hello("rdb-test", "1.0", 1, 1)


def local_schema(*args: str) -> str:
    """A remote schema that runs the echo server as a plain local subprocess (%s ignored)."""
    return shlex.join([sys.executable, str(SERVER)]) + " %s " + shlex.join(args)


def ssh_schema(sshd: SshServer, *args: str) -> str:
    return shlex.join(sshd.ssh_argv()) + " %s " + shlex.join([sys.executable, str(SERVER), *args])


def note(n: int, size: int = 10) -> Note:
    return Note(n, bytes([n % 256]) * size, f"note {n}", None, n % 2 == 0, (b"a", b"b"))


def _round_trip(schema: str, count: int = 200, size: int = 5000) -> tuple[int, int]:
    process, connection, version = connect("127.0.0.1", schema, HELLO, CODEC)
    assert version == 1
    received: list[object] = []

    def reader() -> None:
        for _ in range(count):
            received.append(connection.receive())

    thread = threading.Thread(target=reader)
    thread.start()
    for n in range(count):  # all sent before any answer is read: pipelined, no round trips
        connection.send(note(n, size))
    thread.join(60)
    connection.close()
    assert process.close() == 0
    assert received == [note(n, size) for n in range(count)]
    return connection.bytes_sent, connection.bytes_received


def test_messages_flow_both_ways_through_a_local_subprocess() -> None:
    sent, received = _round_trip(local_schema())
    assert sent == received  # the echo sends back the same frames (plus its hello)
    assert 200 * 5000 < sent < 200 * 5200


def test_messages_flow_both_ways_through_the_real_sshd(sshd: SshServer) -> None:
    sent, _ = _round_trip(ssh_schema(sshd), count=300, size=70_000)
    assert 300 * 70_000 < sent < 300 * 71_000


def test_loopback_pair_carries_messages_over_pipes() -> None:
    client, server = loopback_pair(CODEC, HELLO)
    client.send(note(1))
    assert server.receive() == note(1)
    server.send(note(2))
    assert client.receive() == note(2)
    client.close()
    server.close()
    assert client.bytes_sent == server.bytes_received > 0


def test_remote_command_missing_is_one_line_naming_host_and_what_to_install(
    sshd: SshServer,
) -> None:
    schema = shlex.join(sshd.ssh_argv()) + " %s rdb-no-such-program --server"
    with pytest.raises(ConnectionFailed) as caught:
        connect("127.0.0.1", schema, HELLO, CODEC)
    text = str(caught.value)
    assert caught.value.exit_code == ExitCode.CONNECTION
    assert text.startswith("127.0.0.1: ")
    assert "not found" in text and "install rdb-test 1.0 on 127.0.0.1" in text
    assert "\n" not in text


def test_local_ssh_program_missing() -> None:
    with pytest.raises(ConnectionFailed, match="cannot run 'no-such-ssh': not found"):
        connect("h", "no-such-ssh %s x", HELLO, CODEC)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("--protocol", "3", "--oldest", "3"), "is too new .* upgrade rdb-test here"),
        (("--protocol", "0", "--oldest", "0"), "is too old .* upgrade rdb-test on 127.0.0.1"),
        (("--program", "rdb-other"), "is rdb-other 9.9, not rdb-test"),
    ],
)
def test_incompatible_versions_say_which_side_to_upgrade(args: tuple[str, ...], why: str) -> None:
    with pytest.raises(ProtocolError, match=why) as caught:
        connect("127.0.0.1", local_schema(*args), HELLO, CODEC)
    assert caught.value.exit_code == ExitCode.PROTOCOL


def test_newer_peer_that_still_speaks_ours_is_accepted() -> None:
    process, connection, version = connect(
        "127.0.0.1", local_schema("--protocol", "5", "--oldest", "1"), HELLO, CODEC
    )
    assert version == 1
    connection.close()
    process.close()


def test_a_peer_that_prints_text_is_not_taken_for_a_server() -> None:
    with pytest.raises(ProtocolError, match=r"did not answer as an rdb --server .*Welcome"):
        connect("127.0.0.1", local_schema("--mode", "text"), HELLO, CODEC)


@pytest.mark.parametrize(
    ("mode", "error", "why"),
    [
        ("garbage", ProtocolError, "malformed frame: unknown tag 0x5a"),
        ("huge", ProtocolError, "malformed frame: 4294967295 bytes announced"),
        ("die", ConnectionFailed, "connection was lost .*exited with status 3"),
    ],
)
def test_a_misbehaving_server_is_one_clear_error(
    mode: str, error: type[Exception], why: str
) -> None:
    process, connection, _ = connect("127.0.0.1", local_schema("--mode", mode), HELLO, CODEC)
    with pytest.raises(error, match=why) as caught:
        connection.send(note(1))  # garbage may already have failed the connection
        connection.receive()
    assert "\n" not in str(caught.value)
    with pytest.raises(error):  # and it stays failed
        connection.receive()
    connection.close()
    process.close()


def test_killing_ssh_mid_session_is_a_lost_connection(sshd: SshServer) -> None:
    process, connection, _ = connect(
        "127.0.0.1", ssh_schema(sshd, "--mode", "slow-echo"), HELLO, CODEC
    )
    connection.send(note(1))
    assert connection.receive() == note(1)
    process.kill()
    with pytest.raises(ConnectionFailed, match=r"connection was lost .*killed by SIGKILL"):
        for n in range(100):
            connection.send(note(n))
            connection.receive()
    process.close()


def test_locations_and_schemas() -> None:
    assert parse_location("alice@nas::/backups/home") == RemoteLocation(
        "alice@nas", "/backups/home"
    )
    assert parse_location("nas::rel/path") == RemoteLocation("nas", "rel/path")
    assert parse_location("/local/dir") is None
    assert parse_location("./a::b") is None
    for bad in ("::/x", "nas::", "-oProxyCommand=x::/p"):
        with pytest.raises(UsageError):
            parse_location(bad)
    assert default_schema("rdb-mirror") == "ssh -C %s rdb-mirror --server"
    assert schema_command(default_schema("rdb-mirror"), "u@h") == [
        "ssh", "-C", "u@h", "rdb-mirror", "--server",
    ]  # fmt: skip
    assert schema_command("ssh %s 'a b' 100%%", "h;rm") == ["ssh", "h;rm", "a b", "100%"]
    with pytest.raises(UsageError):
        schema_command("ssh 'unclosed %s", "h")


def test_closing_after_the_peer_vanished_does_not_hang() -> None:
    """The last frames and the end cannot be written (EPIPE): close() returns at once."""
    import io
    import os
    import time

    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    connection = Connection(
        io.FileIO(in_read, "rb"), io.FileIO(out_write, "wb"), CODEC, peer="gone"
    )
    connection.start()
    os.close(out_read)  # the peer stopped reading
    os.close(in_write)  # and its output ended
    started = time.monotonic()
    try:
        connection.send(note(1))  # may already raise: the writer saw EPIPE
    except ConnectionFailed:
        pass
    connection.close(timeout=20)
    assert time.monotonic() - started < 5
    assert isinstance(connection.failure, ConnectionFailed)  # the writer saw EPIPE
    # receive raises it (a frame left in a reused pipe fd by another test's thread, seen once
    # in CI, is read past: the failure still comes, after it)
    with pytest.raises(ConnectionFailed):
        for _ in range(QUEUE + 2):
            connection.receive()


def test_a_peer_sending_big_frames_nobody_reads_is_held_back() -> None:
    """Frames received ahead of the reader are bounded in bytes, not only in number: 96
    frames of 15 MiB that nobody takes leave us holding well under 1.4 GiB (64 of them)."""
    script = Path(__file__).with_name("inbox_memory.py")
    root = Path(__file__).parents[2]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=300,
        check=True,
    )
    peak_kib, sent = map(int, proc.stdout.split())
    assert sent < 96  # the sender was held back
    assert peak_kib < 400 << 10, f"peak RSS {peak_kib >> 10} MiB"


def test_what_a_peer_sent_before_it_left_is_all_received() -> None:
    """The server sends 75 MiB in big messages and exits; the client takes them only 3 s
    later (its inbox full meanwhile, a keep-alive to the gone server failing): every message
    comes, then the end."""
    schema = shlex.join([sys.executable, str(SERVER)]) + " %s --mode flood"
    process, connection, _ = connect("nas", schema, HELLO, CODEC)
    connection.send(note(1))
    assert process.wait(30) == 0  # it said everything and left
    time.sleep(3)  # a keep-alive or two to it fail meanwhile
    received = [connection.receive() for _ in range(15)]
    assert [n.number for n in received] == list(range(15))  # type: ignore[attr-defined]
    assert received[-1].data == b"the end"  # type: ignore[attr-defined]
    with pytest.raises(ConnectionFailed):
        connection.receive()  # and then the end
    connection.close()
    process.close()
